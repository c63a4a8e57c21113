//! HTTP: one warp filter that hands every request to the route table, with request ids,
//! authentication, body limits, metrics and logging around it.

pub mod access;
pub mod ctx;
pub mod refs;
pub mod router;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::Stream;
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::Response;

pub use ctx::{Ctx, Page};
use router::{Access, BodyKind, Match};

use crate::app::AppState;
use crate::error::ApiError;

/// Longest request target (path plus query) the service reads; longer ones are answered 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// The single warp filter serving every route.
pub fn filter(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || state.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |state: Arc<AppState>,
             method: Method,
             path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             body| async move { handle(state, method, path.as_str().to_string(), query, headers, body).await },
        )
}

/// Picks the request id: the client's `X-Request-Id` when it is short and plain, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(crate::auth::tokens::random_hex16)
}

async fn handle<S, B>(
    state: Arc<AppState>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let started = Instant::now();
    let rid = request_id(&headers);
    // Overload answers 503 at once rather than queueing without bound; the permit is held until
    // the answer is ready.
    let permit = state.in_flight.try_acquire();
    let (route_label, result) = match state.router.find(&method, &path) {
        _ if permit.is_err() => {
            ("overloaded".to_string(), Err(ApiError::Unavailable("同时处理的请求已达上限，请稍后重试".into())))
        }
        // No route is that long; the HTTP layer itself refuses targets over 64 KiB (bare 414).
        _ if path.len() + query.len() > MAX_TARGET_BYTES => {
            ("unmatched".to_string(), Err(ApiError::UriTooLong(MAX_TARGET_BYTES)))
        }
        Match::NotFound => {
            let shown: String = path.chars().take(200).collect();
            let more = if shown.len() < path.len() { "…" } else { "" };
            (
                "unmatched".to_string(),
                Err(ApiError::NotFound(format!("没有这个接口：{shown}{more}；接口列表见 /api/v1/openapi.json"))),
            )
        }
        // Labels are route templates (or "unmatched"), never raw paths: metrics stay bounded.
        Match::WrongMethod(template, allowed) => (template.to_string(), Err(ApiError::MethodNotAllowed(allowed))),
        Match::Found(route, params) => {
            let label = route.path.to_string();
            let tz = display_tz(&headers);
            let r = match tz {
                Err(e) => Err(e),
                Ok(tz) => {
                    let limit = state.config.request_timeout;
                    let run = run_route(state.clone(), route, params, query, headers, body, rid.clone());
                    // Dropping a handler at the limit rolls back its open transaction.
                    match tokio::time::timeout(limit, crate::time::DISPLAY_TZ.scope(tz, run)).await {
                        Ok(r) => r,
                        Err(_) => Err(ApiError::Timeout(format!(
                            "请求超过 {} 秒未完成，已中止，未写入任何数据",
                            limit.as_secs()
                        ))),
                    }
                }
            };
            (label, r)
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(&rid),
    };
    secure_headers(&mut resp);
    if resp.status() == warp::http::StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    drop(permit);
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.observe(method.as_str(), &route_label, status, elapsed);
    tracing::info!(request_id = %rid, %method, route = %route_label, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
    resp
}

/// Every response: `X-Content-Type-Options: nosniff`. HTML pages also get a strict
/// Content-Security-Policy: nothing loads from elsewhere, no scripts unless served by us, no
/// framing (the pages are printable documents; their styles are inline).
fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    }
}

fn display_tz(headers: &HeaderMap) -> Result<chrono_tz::Tz, ApiError> {
    match headers.get("x-timezone").map(|v| v.to_str()) {
        None => Ok(crate::time::LOCAL_TZ),
        Some(Ok(name)) => name.parse::<chrono_tz::Tz>().map_err(|_| ApiError::BadRequest {
            detail: format!("X-Timezone {name:?} 不是有效的 IANA 时区名，例如 Asia/Shanghai 或 UTC"),
            errors: vec![],
        }),
        Some(Err(_)) => Err(ApiError::BadRequest { detail: "X-Timezone 请求头无效".into(), errors: vec![] }),
    }
}

async fn run_route<S, B>(
    state: Arc<AppState>,
    route: &router::Route,
    params: Vec<(&'static str, String)>,
    query: String,
    headers: HeaderMap,
    body: S,
    request_id: String,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    // One check of the read caches' change record per request, made after it arrived (see
    // `crate::freshness`): the token cache and the handler's caches use its generations.
    let fresh = match route.access {
        Access::Token | Access::Scrape => state.freshness.check(&state.db).await,
        Access::Public | Access::FeedToken => None,
    };
    let principal = match route.access {
        Access::Public => None,
        Access::Token => {
            // A console page reading through the API (the map's layers and "nearest" queries)
            // is recognised by its session cookie; only for GET, since forms carry CSRF tokens.
            let reader = if route.method == Method::GET {
                crate::web::session::api_reader(&state, &headers).await?
            } else {
                None
            };
            match reader {
                Some(p) => Some(p),
                None => Some(authenticate_fresh(&state, &headers, &request_id, fresh).await?),
            }
        }
        Access::FeedToken => None,
        // The scrape token is checked here and carries no principal (so no guard applies: it
        // reads the metrics and nothing else); any other bearer token goes through the guard.
        Access::Scrape => match scrape_token_matches(&state, &headers) {
            true => None,
            false => Some(authenticate_fresh(&state, &headers, &request_id, fresh).await?),
        },
    };
    let mut upload = None;
    let body = match route.body {
        BodyKind::None => Bytes::new(),
        BodyKind::Json => {
            check_content_type(&headers, "application/json")?;
            read_body(&headers, body, state.config.max_body_bytes).await?
        }
        BodyKind::Csv => {
            // Imports take CSV or an Excel workbook (`.xlsx`).
            if check_content_type(&headers, crate::imports::xlsx::MEDIA_TYPE).is_err() {
                check_content_type(&headers, "text/csv")?;
            }
            // Read chunk by chunk, counted against the limit, and spooled to a temporary file
            // when large: an import file is never held whole in memory.
            upload = Some(crate::imports::upload::receive(&headers, body, state.config.max_import_bytes).await?);
            Bytes::new()
        }
        BodyKind::Xml => {
            if check_content_type(&headers, "text/xml").is_err()
                && check_content_type(&headers, "application/cap+xml").is_err()
            {
                check_content_type(&headers, "application/xml")?;
            }
            read_body(&headers, body, state.config.max_body_bytes).await?
        }
    };
    dispatch(state, route, principal, fresh, params, query, headers, body, upload, request_id).await
}

/// The one way a matched route's handler runs, for requests and for the console's in-process
/// calls alike: a caller is checked against the route's declared guard before the handler.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: Arc<AppState>,
    route: &router::Route,
    principal: Option<crate::auth::Principal>,
    fresh: Option<crate::freshness::Generations>,
    params: Vec<(&'static str, String)>,
    query: String,
    headers: HeaderMap,
    body: Bytes,
    upload: Option<crate::imports::Upload>,
    request_id: String,
) -> Result<Response, ApiError> {
    if let Some(p) = &principal {
        let Some(guard) = &route.guard else {
            return Err(ApiError::Forbidden("此接口未声明访问规则".into()));
        };
        access::enforce(&state.db, guard, p, &params, &query, &body).await?;
    }
    let (method, path) = (route.method.clone(), route.path);
    let ctx =
        Ctx { app: state, principal, params, query, headers, body, upload, request_id, method, route: path, fresh };
    let result = (route.handler)(ctx).await;
    if route.method == Method::GET {
        // A GET has no body: whatever it finds invalid is a query value (a range, a point outside
        // the banner), and a bad query value is 400 everywhere, whether the query parser or the
        // handler found it.
        return result.map_err(|e| match e {
            ApiError::Validation { detail, errors } => ApiError::BadRequest { detail, errors },
            other => other,
        });
    }
    result
}

/// Authenticates the `Authorization: Bearer` header, counting and logging failures.
pub async fn authenticate_headers(
    state: &AppState,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<crate::auth::Principal, ApiError> {
    let fresh = state.freshness.check(&state.db).await;
    authenticate_fresh(state, headers, request_id, fresh).await
}

/// [`authenticate_headers`] under the generations already checked for this request.
async fn authenticate_fresh(
    state: &AppState,
    headers: &HeaderMap,
    request_id: &str,
    fresh: Option<crate::freshness::Generations>,
) -> Result<crate::auth::Principal, ApiError> {
    let fail = |reason: &'static str, msg: &str| {
        state.metrics.auth_failure(reason);
        tracing::warn!(request_id, reason, "authentication failed");
        ApiError::Unauthorized(msg.to_string())
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(fail("missing", "缺少 Authorization 请求头；请使用 Authorization: Bearer <令牌>"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(fail("malformed", "Authorization 请求头格式应为 Bearer <令牌>"));
    };
    match crate::auth::tokens::authenticate_fresh(&state.db, &state.principals, fresh, token).await? {
        Some(p) => Ok(p),
        None => Err(fail("invalid", "令牌无效或已吊销")),
    }
}

/// Whether the request carries the configured scrape token (compared in constant time).
fn scrape_token_matches(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.config.metrics_token.as_deref().filter(|t| !t.is_empty()) else {
        return false;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_content_type(headers: &HeaderMap, expected: &'static str) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(expected))
        .unwrap_or(false);
    if ok { Ok(()) } else { Err(ApiError::UnsupportedMediaType(format!("{expected}; charset=utf-8"))) }
}

pub use crate::imports::upload::read_body;

/// Runs the API route for `method path` as `principal`, exactly as a request with that
/// principal's token would: the console's list pages and action forms use it, so a page and the
/// API can never answer differently. Only token routes can be called this way. Whatever access
/// check the route table declares for the route must apply here as it does in [`run_route`].
pub async fn call_as(
    state: Arc<AppState>,
    principal: crate::auth::Principal,
    method: Method,
    path: &str,
    query: &str,
    body: Bytes,
    request_id: &str,
) -> Result<Response, ApiError> {
    match state.router.find(&method, path) {
        Match::Found(route, params) if route.access == Access::Token => {
            let (query, request_id) = (query.to_string(), request_id.to_string());
            dispatch(
                state.clone(),
                route,
                Some(principal),
                None,
                params,
                query,
                HeaderMap::new(),
                body,
                None,
                request_id,
            )
            .await
        }
        Match::Found(..) | Match::NotFound => Err(ApiError::NotFound(format!("没有这个接口：{path}"))),
        Match::WrongMethod(_, allowed) => Err(ApiError::MethodNotAllowed(allowed)),
    }
}
