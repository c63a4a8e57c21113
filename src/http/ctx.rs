//! What a handler gets: the app, the caller, path parameters, query, headers and body; and the
//! helpers that turn input into typed values with problem+json errors on the way.

use std::sync::Arc;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::app::AppState;
use crate::audit::Actor;
use crate::auth::{Perm, Principal};
use crate::error::{ApiError, FieldError};
use crate::time::Timestamp;

/// Default and maximum page sizes of list endpoints.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 1000;

/// A request as a handler sees it.
pub struct Ctx {
    /// Shared application state.
    pub app: Arc<AppState>,
    /// The authenticated caller (None on public routes).
    pub principal: Option<Principal>,
    /// Path parameters by template name.
    pub params: Vec<(&'static str, String)>,
    /// Raw query string (without `?`).
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Body (empty for routes without one, and for an import file received as [`Ctx::upload`]).
    pub body: Bytes,
    /// An import file as received over HTTP (spooled to a temporary file when large); None for
    /// other routes and for in-process calls, whose import file is [`Ctx::body`].
    pub upload: Option<crate::imports::Upload>,
    /// Request id.
    pub request_id: String,
    /// HTTP method of the matched route.
    pub method: warp::http::Method,
    /// Path template of the matched route, e.g. `/api/v1/transfers/{id}/ship`.
    pub route: &'static str,
    /// The read caches' generations checked after this request arrived (None: not checked,
    /// e.g. a console page's in-process call; read from the database).
    pub fresh: Option<crate::freshness::Generations>,
}

impl Ctx {
    /// The caller; routes with token access always have one.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or_else(|| ApiError::Unauthorized("需要登录令牌".into()))
    }

    /// The caller of a token route, whose access the route's guard has already checked.
    pub fn caller(&self) -> Result<&Principal, ApiError> {
        self.principal()
    }

    /// The caller, after checking the role carries `perm` (for checks that depend on the body,
    /// beyond the route's guard).
    pub fn require(&self, perm: Perm) -> Result<&Principal, ApiError> {
        let p = self.principal()?;
        p.require(perm)?;
        Ok(p)
    }

    /// The audit actor for this request.
    pub fn actor(&self) -> Result<Actor, ApiError> {
        Ok(Actor::user(self.principal()?, &self.request_id))
    }

    /// The read caches' generations for this request: those checked when it arrived, else a
    /// check now (see `crate::freshness`); None when the check failed (read from the database).
    pub async fn fresh(&self) -> Option<crate::freshness::Generations> {
        match self.fresh {
            Some(g) => Some(g),
            None => self.app.freshness.check(&self.app.db).await,
        }
    }

    /// The current time from the app's clock.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.app.clock.now())
    }

    /// A path parameter.
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// A path parameter parsed as an integer id.
    pub fn id_param(&self, name: &str) -> Result<i64, ApiError> {
        let raw = self.param(name);
        raw.parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| ApiError::NotFound(format!("{name} {raw:?} 不是有效的编号")))
    }

    /// Parses the query string strictly: unknown parameters and bad values are 400s naming them.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        // PostgreSQL cannot store NUL in text; SQLite can. Refuse it on both, the same way.
        if let Some((name, _)) =
            form_urlencoded::parse(self.query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let message = "查询参数不能包含 NUL 字符 (U+0000)".to_string();
            let name = name.replace('\0', "\\0");
            return Err(ApiError::BadRequest {
                detail: format!("{name}：{message}"),
                errors: vec![FieldError::field(name, message)],
            });
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(self.query.as_bytes()));
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let message = format!("查询参数无效：{}", e.inner());
            ApiError::BadRequest {
                detail: message.clone(),
                errors: vec![FieldError::field(if field == "." { "query".into() } else { field }, message)],
            }
        })
    }

    /// Parses the JSON body strictly: syntax errors are 400 with line and column; wrong types,
    /// missing and unknown fields are 422 naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.body)
    }

    /// The body as UTF-8 text with any byte-order mark removed (CSV imports).
    pub fn text(&self) -> Result<&str, ApiError> {
        decode_text(&self.body)
    }
}

/// The body as UTF-8 text without a byte-order mark; a bad byte is a 400 naming its line.
pub fn decode_text(body: &[u8]) -> Result<&str, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(body);
    let line_at = |at: usize| body[..at].iter().filter(|b| **b == b'\n').count() as u64 + 1;
    if let Some(at) = body.iter().position(|b| *b == 0) {
        return Err(nul_error(line_at(at)));
    }
    std::str::from_utf8(body).map_err(|e| utf8_error(line_at(e.valid_up_to())))
}

/// The 422 of a text holding a NUL character on `line`: PostgreSQL cannot store NUL in text
/// (SQLite can), so it is refused on both, naming the line.
pub fn nul_error(line: u64) -> ApiError {
    ApiError::invalid_many(
        format!("第 {line} 行含有 NUL 字符 (U+0000)，无法保存"),
        vec![FieldError::line(line, None, "不能包含 NUL 字符 (U+0000)")],
    )
}

/// The 400 of a text that is not UTF-8 from `line` on.
pub fn utf8_error(line: u64) -> ApiError {
    ApiError::BadRequest {
        detail: format!("第 {line} 行不是有效的 UTF-8 文本；请以 UTF-8 编码保存 CSV"),
        errors: vec![FieldError::line(line, None, "不是有效的 UTF-8")],
    }
}

/// Parses JSON strictly (see [`Ctx::json`]).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::BadRequest { detail: "请求体为空，应为 JSON 对象".into(), errors: vec![] });
    }
    // serde also accepts a struct written as a positional array; every body here is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid("body", "请求体应为 JSON 对象（{…}），不接受数组"));
    }
    // Syntax first (400 with line and column), into a value that is then read into `T`.
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        detail: format!("请求体不是有效的 JSON（第 {} 行第 {} 列）：{e}", e.line(), e.column()),
        errors: vec![FieldError {
            field: None,
            line: Some(e.line() as u64),
            column: Some(e.column() as u64),
            message: e.to_string(),
        }],
    })?;
    // PostgreSQL cannot store NUL in text (SQLite can): refuse it on both, naming the field.
    if let Some(path) = nul_path(&value, String::new()) {
        let message = "不能包含 NUL 字符 (U+0000)".to_string();
        return Err(ApiError::Validation {
            detail: format!("字段 {path} {message}"),
            errors: vec![FieldError::field(path, message)],
        });
    }
    // JSON Schema's `integer` includes `3.0`; serde would refuse it for an integer field.
    integral_floats(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." { "body".to_string() } else { path };
        let msg = describe_data_error(&e.into_inner().to_string());
        ApiError::Validation {
            detail: format!("字段 {field} 无效：{msg}"),
            errors: vec![FieldError::field(field, msg)],
        }
    })
}

/// Turns every float without a fraction that fits an `i64` (`3.0`, `-0.0`) into an integer, so a
/// value the OpenAPI document calls an integer is read as one whichever way it is written.
fn integral_floats(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f > i64::MIN as f64
                && f < i64::MAX as f64
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => map.values_mut().for_each(integral_floats),
        _ => {}
    }
}

/// The path (`members[2].name`) of the first string or key in `v` that contains NUL.
fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    let here = || if at.is_empty() { "body".to_string() } else { at.clone() };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, x)| nul_path(x, format!("{}[{i}]", here()))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            let path = if at.is_empty() { k.replace('\0', "\\0") } else { format!("{at}.{}", k.replace('\0', "\\0")) };
            if k.contains('\0') { Some(path) } else { nul_path(x, path) }
        }),
        _ => None,
    }
}

/// Turns serde's English messages into Chinese ones a person can act on, keeping the original.
fn describe_data_error(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        format!("未知字段 {rest}")
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        format!("缺少必填字段 {rest}")
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        // Never echo the value (it may be an ID number sent as a number): keep only the types.
        let mut parts = rest.splitn(3, '`');
        let (kind, _value, tail) = (parts.next().unwrap_or(""), parts.next(), parts.next());
        format!("类型错误：{}{}", kind.trim(), tail.unwrap_or(""))
    } else if let Some(rest) = msg.strip_prefix("unknown variant ") {
        format!("取值无效：{rest}")
    } else {
        msg.to_string()
    }
}

/// A page size as a query parameter: 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]). Anything else
/// is refused while the query is parsed (400), and the OpenAPI document declares the same range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    /// The page size.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n == 0 || n > MAX_LIMIT {
            return Err(serde::de::Error::custom(format!("limit 应在 1 到 {MAX_LIMIT} 之间")));
        }
        Ok(Limit(n))
    }
}

impl JsonSchema for Limit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Limit".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT,
            "description": "每页条数 (page size)"
        })
    }
}

/// How many items of a list to skip: 0 to 2³² − 1 (declared so in the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Offset(u32);

impl JsonSchema for Offset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Offset".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": u32::MAX,
            "default": 0,
            "description": "跳过的条数 (items to skip)"
        })
    }
}

/// Resolves `limit`/`offset` with the defaults every list shares.
pub fn page(limit: Option<Limit>, offset: Option<Offset>) -> Result<(i64, i64), ApiError> {
    let limit = limit.map_or(DEFAULT_LIMIT, Limit::get);
    Ok((limit as i64, offset.map_or(0, |o| o.0) as i64))
}

/// A page of a list: `{"items": [...], "total": N}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// How many items match in all.
    pub total: i64,
}

/// A JSON response with status 200.
pub fn json<T: Serialize>(v: &T) -> Result<Response, ApiError> {
    json_status(StatusCode::OK, v)
}

/// A JSON response with the given status.
pub fn json_status<T: Serialize>(status: StatusCode, v: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(v).map_err(|e| ApiError::Internal(e.into()))?;
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// A 200 response with a JSON body already serialized (a cached page).
pub fn json_bytes(body: Bytes) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A response with a body of the given media type.
pub fn body(content_type: &'static str, data: impl Into<Vec<u8>>) -> Response {
    let mut r = Response::new(data.into().into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A 204 No Content response.
pub fn no_content() -> Response {
    let mut r = Response::new(Vec::<u8>::new().into());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
