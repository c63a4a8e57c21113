//! 导入 / 导出: upload a CSV or Excel (`.xlsx`) file for any import, see what the API's dry run
//! read (first rows) and every error with its line and column, then confirm; download every export
//! as CSV or `.xlsx`. Every step is the API's route called in-process as the user
//! ([`crate::http::call_as`]), so who may import or export what is exactly the API's rule.
//!
//! Between the preview and the confirmation the uploaded file is kept in memory, server-side, for
//! [`KEEP`] (at most [`MAX_PENDING`] files, [`MAX_PENDING_BYTES`] in all), bound to the session that uploaded it: confirming
//! never asks for the file again, and works without JavaScript. A restart forgets pending files
//! (the page then asks to upload again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use warp::http::{HeaderValue, Method, StatusCode, header};

use super::layout::Layout;
use super::{Req, WebError, WebResult, html, redirect};
use crate::auth::login::Session;
use crate::csvio::Column;
use crate::error::ApiError;
use crate::http::router::Match;

/// How long an uploaded file waits for its confirmation.
const KEEP: Duration = Duration::from_secs(30 * 60);

/// Most files kept at once (the oldest is dropped first).
const MAX_PENDING: usize = 16;

/// Most bytes of files kept at once (the oldest are dropped first).
const MAX_PENDING_BYTES: usize = 256 * 1024 * 1024;

/// Import kinds: `(kind, label, the file's columns in order)`.
const IMPORTS: &[(&str, &str, &[Column])] = &[
    ("depots", "储备库", crate::supplies::csv::DEPOTS),
    ("stock", "库存（入库）", crate::supplies::csv::STOCK),
    ("catalogue", "物资目录", crate::supplies::csv::CATALOGUE),
    ("teams", "社会应急力量队伍", crate::forces::csv::TEAM_COLUMNS),
    ("members", "队员", crate::forces::csv_members::MEMBER_COLUMNS),
    ("regions", "行政区划", crate::regions::import::COLUMNS),
];

/// Export kinds: `(kind, label)`.
const EXPORTS: &[(&str, &str)] =
    &[("depots", "储备库"), ("stock", "库存"), ("catalogue", "物资目录"), ("teams", "队伍"), ("members", "队员")];

/// An uploaded file waiting for its confirmation, with what the dry run (and then the import)
/// answered.
struct Pending {
    csrf: String,
    kind: &'static str,
    file_name: String,
    bytes: Bytes,
    preview: Value,
    outcome: Option<Result<Value, ApiError>>,
    at: Instant,
}

fn pending() -> &'static Mutex<HashMap<String, Pending>> {
    static P: std::sync::OnceLock<Mutex<HashMap<String, Pending>>> = std::sync::OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

fn keep(p: Pending) -> String {
    let token = crate::auth::tokens::random_hex16();
    let mut map = pending().lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, v| v.at.elapsed() < KEEP);
    let size = |m: &HashMap<String, Pending>| m.values().map(|v| v.bytes.len()).sum::<usize>();
    while !map.is_empty() && (map.len() >= MAX_PENDING || size(&map) + p.bytes.len() > MAX_PENDING_BYTES) {
        let Some(oldest) = map.iter().min_by_key(|(_, v)| v.at).map(|(k, _)| k.clone()) else { break };
        map.remove(&oldest);
    }
    map.insert(token.clone(), p);
    token
}

fn gone() -> WebError {
    WebError::Api(ApiError::NotFound("上传的文件已过期或不属于本次登录，请重新上传".into()))
}

/// Whether the user's role may call `method path` (the route's declared permission; the
/// jurisdiction is checked by the API on each row).
fn allowed(req: &Req, s: &Session, method: &Method, path: &str) -> bool {
    match req.app.router.find(method, path) {
        Match::Found(route, _) => route.guard.as_ref().is_some_and(|g| s.principal.role.allows(g.perm)),
        _ => false,
    }
}

#[derive(Template)]
#[template(path = "web/imports.html")]
struct Page {
    layout: Layout,
    /// Import kinds the user may use: `(kind, label)`.
    kinds: Vec<(&'static str, &'static str)>,
    /// Export kinds the user may read: `(kind, label)`.
    exports: Vec<(&'static str, &'static str)>,
    /// The upload being previewed or imported.
    upload: Option<Shown>,
}

/// One error of a file (the API's `FieldError`, as read back from its answer).
#[derive(Deserialize)]
struct FieldError {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    column: Option<u64>,
    message: String,
}

/// What the page shows about an upload.
struct Shown {
    token: String,
    kind_label: &'static str,
    file_name: String,
    rows: u64,
    columns: Vec<String>,
    preview: Vec<Vec<String>>,
    errors: Vec<FieldError>,
    total_errors: u64,
    /// After the confirmation: `(created, updated, unchanged)`.
    result: Option<(u64, u64, u64)>,
    /// After a failed confirmation: what went wrong.
    failure: Option<String>,
}

impl Page {
    fn column_of(&self, e: &FieldError) -> String {
        match (&e.column, &e.field) {
            (Some(c), Some(f)) => format!("{c}（{f}）"),
            (Some(c), None) => c.to_string(),
            (None, Some(f)) => f.clone(),
            (None, None) => "—".into(),
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn shown(token: &str, p: &Pending) -> Shown {
    let (kind_label, order) =
        IMPORTS.iter().find(|(k, ..)| *k == p.kind).map(|(_, l, o)| (*l, *o)).unwrap_or(("", &[]));
    let rows: Vec<&serde_json::Map<String, Value>> =
        p.preview["preview"].as_array().map(|a| a.iter().filter_map(Value::as_object).collect()).unwrap_or_default();
    // Known columns in the file's order (under their Chinese headers), then any others.
    let mut keys: Vec<String> =
        order.iter().filter(|c| rows.iter().any(|r| r.contains_key(c.name))).map(|c| c.name.to_string()).collect();
    for r in &rows {
        for k in r.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let columns = keys
        .iter()
        .map(|k| order.iter().find(|c| c.name == k).map_or_else(|| k.clone(), |c| c.zh.to_string()))
        .collect();
    let preview = rows.iter().map(|r| keys.iter().map(|k| r.get(k).map(cell).unwrap_or_default()).collect()).collect();
    let mut errors: Vec<FieldError> = serde_json::from_value(p.preview["errors"].clone()).unwrap_or_default();
    let mut total_errors = p.preview["total_errors"].as_u64().unwrap_or(errors.len() as u64);
    let (mut result, mut failure) = (None, None);
    match &p.outcome {
        Some(Ok(v)) => {
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            result = Some((n("created"), n("updated"), n("unchanged")));
        }
        Some(Err(e)) => {
            let problem = e.problem(None);
            if !problem.errors.is_empty() {
                total_errors = problem.total_errors.unwrap_or(problem.errors.len()) as u64;
                errors = problem
                    .errors
                    .into_iter()
                    .map(|e| FieldError { field: e.field, line: e.line, column: e.column, message: e.message })
                    .collect();
            }
            failure = Some(problem.detail);
        }
        None => {}
    }
    Shown {
        token: token.to_string(),
        kind_label,
        file_name: p.file_name.clone(),
        rows: p.preview["rows"].as_u64().unwrap_or(0),
        columns,
        preview,
        errors,
        total_errors,
        result,
        failure,
    }
}

async fn render(req: &Req, s: &Session, upload: Option<Shown>) -> WebResult {
    let kinds = IMPORTS
        .iter()
        .filter(|(k, ..)| allowed(req, s, &Method::POST, &format!("/api/v1/import/{k}")))
        .map(|(k, l, _)| (*k, *l))
        .collect();
    let exports = EXPORTS
        .iter()
        .filter(|(k, _)| allowed(req, s, &Method::GET, &format!("/api/v1/export/{k}.csv")))
        .copied()
        .collect();
    let page = Page { layout: Layout::new(req, s, "导入 / 导出", "imports").await?, kinds, exports, upload };
    Ok(html(page.render()?))
}

/// `GET /imports`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    render(&req, &s, None).await
}

/// `GET /imports/{token}`: the preview of an upload, or the result of its import.
pub async fn upload(req: Req) -> WebResult {
    let s = req.session().await?;
    let token = req.path.trim_start_matches("/imports/").to_string();
    let shown = {
        let map = pending().lock().unwrap_or_else(|e| e.into_inner());
        let p = map
            .get(&token)
            .filter(|p| p.at.elapsed() < KEEP && super::session::same_secret(&p.csrf, &s.csrf))
            .ok_or_else(gone)?;
        shown(&token, p)
    };
    render(&req, &s, Some(shown)).await
}

/// `POST /imports` (multipart: `csrf`, `kind`, `file`): the API's dry run of the file, kept for
/// the confirmation; then the preview page.
pub async fn preview(req: Req) -> WebResult {
    let ct = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parts = multipart(ct, &req.body).ok_or_else(|| {
        WebError::Api(ApiError::BadRequest {
            detail: "请以表单（multipart/form-data）上传文件".into(), errors: vec![]
        })
    })?;
    let field = |name: &str| parts.iter().find(|p| p.name == name);
    let text = |name: &str| {
        field(name).map(|p| String::from_utf8_lossy(&req.body[p.body.clone()]).into_owned()).unwrap_or_default()
    };
    let s = req.post_session(&text("csrf")).await?;
    let kind_in = text("kind");
    let Some(&(kind, ..)) = IMPORTS.iter().find(|(k, ..)| *k == kind_in) else {
        return Err(WebError::Api(ApiError::invalid("kind", "请选择要导入的数据类型")));
    };
    let file = field("file")
        .filter(|f| !f.body.is_empty())
        .ok_or_else(|| WebError::Api(ApiError::invalid("file", "请选择要上传的 CSV 或 Excel（.xlsx）文件")))?;
    let bytes = req.body.slice(file.body.clone());
    let preview = call(&req, &s, kind, "dry_run=true", bytes.clone()).await?;
    let token = keep(Pending {
        csrf: s.csrf.clone(),
        kind,
        file_name: file.file_name.clone().unwrap_or_default(),
        bytes,
        preview,
        outcome: None,
        at: Instant::now(),
    });
    Ok(redirect(&format!("/imports/{token}")))
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
}

/// `POST /imports/{token}/confirm`: the import for real, with the kept file.
pub async fn confirm(req: Req) -> WebResult {
    let f: ConfirmForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let token = req.path.trim_start_matches("/imports/").trim_end_matches("/confirm").to_string();
    let (kind, bytes) = {
        let map = pending().lock().unwrap_or_else(|e| e.into_inner());
        let p = map
            .get(&token)
            .filter(|p| p.at.elapsed() < KEEP && super::session::same_secret(&p.csrf, &s.csrf))
            .ok_or_else(gone)?;
        if p.outcome.as_ref().is_some_and(Result::is_ok) {
            return Ok(redirect(&format!("/imports/{token}")));
        }
        (p.kind, p.bytes.clone())
    };
    let outcome = match call(&req, &s, kind, "", bytes).await {
        Ok(v) => Ok(v),
        Err(WebError::Api(e @ (ApiError::Validation { .. } | ApiError::ValidationCapped { .. }))) => Err(e),
        Err(e) => return Err(e),
    };
    let mut map = pending().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get_mut(&token) {
        if outcome.is_ok() {
            // The file is no longer needed; the result stays for the page.
            p.bytes = Bytes::new();
        }
        p.outcome = Some(outcome);
    }
    Ok(redirect(&format!("/imports/{token}")))
}

async fn call(req: &Req, s: &Session, kind: &str, query: &str, body: Bytes) -> Result<Value, WebError> {
    let path = format!("/api/v1/import/{kind}");
    let resp =
        crate::http::call_as(req.app.clone(), s.principal.clone(), Method::POST, &path, query, body, &req.request_id)
            .await?;
    let bytes = body_bytes(resp).await?;
    serde_json::from_slice(&bytes).map_err(|e| WebError::Api(ApiError::Internal(e.into())))
}

async fn body_bytes(resp: warp::reply::Response) -> Result<Bytes, WebError> {
    use http_body_util::BodyExt;
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| WebError::Api(ApiError::Internal(anyhow::anyhow!("reading an API response: {e}"))))
}

/// `GET /imports/export/{kind}.{csv,xlsx}`: the API's export as a download.
pub async fn export(req: Req) -> WebResult {
    let s = req.session().await?;
    let file = req.path.trim_start_matches("/imports/export/");
    let known = file
        .rsplit_once('.')
        .filter(|(k, ext)| EXPORTS.iter().any(|(e, _)| e == k) && (*ext == "csv" || *ext == "xlsx"));
    let Some((kind, ext)) = known else {
        return Err(WebError::Api(ApiError::NotFound(format!("没有这个导出：{file}"))));
    };
    let path = format!("/api/v1/export/{kind}.{ext}");
    let mut resp = crate::http::call_as(
        req.app.clone(),
        s.principal.clone(),
        Method::GET,
        &path,
        &req.query,
        Bytes::new(),
        &req.request_id,
    )
    .await?;
    if resp.status() == StatusCode::OK {
        let disposition = format!("attachment; filename=\"{kind}.{ext}\"");
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}

/// One part of a `multipart/form-data` body.
struct Part {
    name: String,
    file_name: Option<String>,
    /// Where its contents are in the body.
    body: std::ops::Range<usize>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| hay[i] == needle[0] && &hay[i..i + needle.len()] == needle)
}

/// A quoted (or bare) parameter of a header value: `name="file"`.
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts of a `multipart/form-data` body (RFC 7578), or None when it is not one.
fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return None;
    }
    let boundary = param(content_type, "boundary")?;
    let delim = format!("--{boundary}").into_bytes();
    let next = format!("\r\n--{boundary}").into_bytes();
    let mut at = find(body, &delim, 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Some(parts);
        }
        at += body[at..].starts_with(b"\r\n").then_some(2)?;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let start = head_end + 4;
        let end = find(body, &next, start)?;
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        parts.push(Part {
            name: param(disposition, "name").unwrap_or_default(),
            file_name: param(disposition, "filename"),
            body: start..end,
        });
        at = end + next.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_are_read_with_their_names_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.csv\"\r\nContent-Type: text/csv\r\n\r\ncode,name\r\nD1,x\r\n\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), &body[parts[0].body.clone()]), ("csrf", &b"abc"[..]));
        assert_eq!(parts[1].file_name.as_deref(), Some("d.csv"));
        assert_eq!(&body[parts[1].body.clone()], b"code,name\r\nD1,x\r\n");
        assert!(multipart("application/x-www-form-urlencoded", body).is_none());
        assert!(multipart("multipart/form-data; boundary=XyZ", b"--XyZ\r\nbroken").is_none());
    }
}
