//! API errors, rendered as RFC 9457 `application/problem+json`.
//!
//! A 500 logs its cause and tells the client nothing internal.

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

/// One thing wrong with the input: where (a field path or a line/column) and what.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct FieldError {
    /// JSON path or CSV column of the bad value, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line of the bad value in an imported file, when it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column (CSV: the column number), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// What is wrong, in Chinese.
    pub message: String,
}

impl FieldError {
    /// An error about a named field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: Some(field.into()), line: None, column: None, message: message.into() }
    }

    /// An error about a line of an imported file (and optionally a column, by name and number).
    pub fn line(line: u64, column: Option<(&str, u64)>, message: impl Into<String>) -> Self {
        FieldError {
            field: column.map(|(name, _)| name.to_string()),
            line: Some(line),
            column: column.map(|(_, n)| n),
            message: message.into(),
        }
    }
}

/// Most errors one problem lists; the rest are only counted (`total_errors`), so no input can make
/// an error response (or the list behind it) grow without bound.
pub const MAX_ERRORS: usize = 100;

/// Keeps at most `MAX_ERRORS - 1` errors while a long input is checked, counting the rest in
/// `dropped` (call after each line); [`finish_errors`] then adds one entry saying how many more
/// there were. Memory stays bounded however many lines are wrong.
pub fn cap_errors(errors: &mut Vec<FieldError>, dropped: &mut usize) {
    if errors.len() >= MAX_ERRORS {
        *dropped += errors.len() + 1 - MAX_ERRORS;
        errors.truncate(MAX_ERRORS - 1);
    }
}

/// Closes a list kept by [`cap_errors`]: when errors were dropped, the last entry gives the total.
pub fn finish_errors(errors: &mut Vec<FieldError>, mut dropped: usize) {
    cap_errors(errors, &mut dropped);
    if dropped > 0 {
        let total = errors.len() + dropped;
        errors.push(FieldError::field("errors", format!("另有 {dropped} 处错误未列出（共 {total} 处）")));
    }
}

/// The problem document (RFC 9457) every error response carries.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Problem {
    /// URI reference naming the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem (Chinese, with English).
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this request and how to fix it.
    pub detail: String,
    /// Individual validation errors: the first [`MAX_ERRORS`] (see `total_errors`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// How many errors there were in all, present when the list was cut at [`MAX_ERRORS`]. (CSV
    /// files checked line by line keep at most 99 errors and say the total in the last entry.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_errors: Option<usize>,
    /// For a state conflict (409 from a lifecycle step): the state the object is in now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// Request id (also in the `X-Request-Id` header), for finding the log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Syntactically malformed request (bad JSON, bad query string).
    #[error("bad request: {detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// Where.
        errors: Vec<FieldError>,
    },
    /// Well-formed but invalid input.
    #[error("validation failed: {detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Each error with its field or line.
        errors: Vec<FieldError>,
    },
    /// No valid bearer token.
    #[error("unauthorized")]
    Unauthorized(String),
    /// Valid token but outside role or jurisdiction.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such thing (or not visible to the caller).
    #[error("not found: {0}")]
    NotFound(String),
    /// Too many requests in progress: try again shortly.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The request took longer than the configured limit (its transaction was rolled back).
    #[error("request timeout: {0}")]
    Timeout(String),
    /// Path exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed(Vec<String>),
    /// State conflict (duplicate, wrong lifecycle state).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A lifecycle step that does not start from the object's current state (or lost a race to
    /// a concurrent step): see [`crate::transition`].
    #[error("state conflict: {detail}")]
    StateConflict {
        /// What happened, naming the current state.
        detail: String,
        /// The state the object is in now.
        current: String,
    },
    /// Request target (path and query) longer than the service reads.
    #[error("URI too long")]
    UriTooLong(usize),
    /// Body over the limit.
    #[error("payload too large")]
    PayloadTooLarge(u64),
    /// Wrong `Content-Type`.
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    /// Anything else: logged, hidden from the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// Invalid input with more errors than one problem lists (a rejected import): the first
    /// [`MAX_ERRORS`] and how many there were in all. Rendered like [`ApiError::Validation`].
    #[error("validation failed: {detail}")]
    ValidationCapped {
        /// Summary.
        detail: String,
        /// The first errors (at most [`MAX_ERRORS`]).
        errors: Vec<FieldError>,
        /// How many errors there were in all.
        total: usize,
    },
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    /// A validation error with a single field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation { detail: message.clone(), errors: vec![FieldError::field(field, message)] }
    }

    /// A validation error with many field errors.
    pub fn invalid_many(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::Validation { detail: detail.into(), errors }
    }

    /// Ok when `errors` is empty, else a 422 whose detail quotes the first error.
    pub fn fail_with(errors: Vec<FieldError>) -> Result<(), ApiError> {
        match errors.first() {
            None => Ok(()),
            Some(e) => {
                let detail = format!("{}：{}", e.field.clone().unwrap_or_default(), e.message);
                Err(ApiError::invalid_many(detail, errors))
            }
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } | ApiError::ValidationCapped { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) | ApiError::StateConflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self, request_id: Option<&str>) -> Problem {
        let (kind, title, detail, errors) = match self {
            ApiError::BadRequest { detail, errors } => {
                ("bad-request", "请求格式错误 (Bad request)", detail.clone(), errors.clone())
            }
            ApiError::Validation { detail, errors } | ApiError::ValidationCapped { detail, errors, .. } => {
                ("validation", "输入未通过校验 (Validation failed)", detail.clone(), errors.clone())
            }
            ApiError::Unauthorized(d) => ("unauthorized", "未认证 (Unauthorized)", d.clone(), vec![]),
            ApiError::Forbidden(d) => ("forbidden", "无权操作 (Forbidden)", d.clone(), vec![]),
            ApiError::NotFound(d) => ("not-found", "未找到 (Not found)", d.clone(), vec![]),
            ApiError::MethodNotAllowed(allowed) => (
                "method-not-allowed",
                "方法不允许 (Method not allowed)",
                format!("此路径只支持：{}", allowed.join(", ")),
                vec![],
            ),
            ApiError::Conflict(d) => ("conflict", "冲突 (Conflict)", d.clone(), vec![]),
            ApiError::Unavailable(d) => ("unavailable", "服务繁忙 (Service unavailable)", d.clone(), vec![]),
            ApiError::Timeout(d) => ("timeout", "请求超时 (Request timeout)", d.clone(), vec![]),
            ApiError::StateConflict { detail, .. } => {
                ("state-conflict", "状态冲突 (State conflict)", detail.clone(), vec![])
            }
            ApiError::PayloadTooLarge(limit) => {
                ("payload-too-large", "请求体过大 (Payload too large)", format!("请求体超过上限 {limit} 字节"), vec![])
            }
            ApiError::UriTooLong(limit) => {
                ("uri-too-long", "请求地址过长 (URI too long)", format!("路径和查询参数合计超过 {limit} 字节"), vec![])
            }
            ApiError::UnsupportedMediaType(expected) => (
                "unsupported-media-type",
                "内容类型不支持 (Unsupported media type)",
                format!("Content-Type 应为 {expected}"),
                vec![],
            ),
            ApiError::Internal(_) => (
                "internal",
                "服务器内部错误 (Internal error)",
                "服务器内部错误，已记录日志；请凭请求编号联系管理员".to_string(),
                vec![],
            ),
        };
        let (errors, total_errors) = match self {
            ApiError::Validation { .. } | ApiError::BadRequest { .. } if errors.len() > MAX_ERRORS => {
                let total = errors.len();
                (errors.into_iter().take(MAX_ERRORS).collect(), Some(total))
            }
            ApiError::ValidationCapped { total, .. } if *total > errors.len() => (errors, Some(*total)),
            _ => (errors, None),
        };
        Problem {
            kind: format!("/problems/{kind}"),
            title: title.to_string(),
            status: self.status().as_u16(),
            detail,
            errors,
            total_errors,
            current_status: match self {
                ApiError::StateConflict { current, .. } => Some(current.clone()),
                _ => None,
            },
            request_id: request_id.map(str::to_string),
        }
    }

    /// Renders the error as a `problem+json` response, logging internal errors with their cause.
    pub fn into_response(self, request_id: &str) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(request_id, error = ?e, "internal error");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem(Some(request_id))).unwrap_or_default();
        let mut resp = Response::new(body.into());
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(warp::http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let ApiError::Unauthorized(_) = self {
            resp.headers_mut()
                .insert(warp::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"yingji\""));
        }
        if let ApiError::MethodNotAllowed(allowed) = &self
            && let Ok(v) = HeaderValue::from_str(&allowed.join(", "))
        {
            resp.headers_mut().insert(warp::http::header::ALLOW, v);
        }
        resp
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
