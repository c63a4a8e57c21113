//! 工作台: the Chinese web console served at `/` by the same binary. Pages are server-rendered
//! from compile-time checked, auto-escaping templates (askama, `templates/web/`), call the same
//! store and service functions as the API, and check the same permissions (`auth::Perm`, the
//! user's jurisdiction). JavaScript is used where it earns its place (the map) and is embedded
//! with every other asset ([`assets`]).
//!
//! Console requests are answered here; everything else (the API under `/api/`, health and
//! metrics) falls through to [`crate::http::filter`].

pub mod api;
pub mod assets;
pub mod drill;
pub mod drills;
pub mod event_new;
pub mod event_steps;
pub mod events;
pub mod form;
pub mod imports;
pub mod layout;
pub mod login;
pub mod map;
pub mod plan_edit;
pub mod plans;
pub mod qr;
pub mod readiness;
pub mod session;
pub mod supplies;
pub mod teams;
pub mod today;
pub mod today_warnings;
pub mod users;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::app::AppState;
use crate::auth::login::Session;
use crate::error::ApiError;

/// Largest form body the console accepts (login and action forms; imports have their own limit).
const MAX_FORM_BYTES: u64 = 64 * 1024;

/// A console request.
pub struct Req {
    /// Shared state.
    pub app: Arc<AppState>,
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (form posts).
    pub body: Bytes,
    /// Request id (for the audit log and the logs).
    pub request_id: String,
}

impl Req {
    /// The current time from the app's clock.
    pub fn now(&self) -> crate::time::Timestamp {
        crate::time::Timestamp(self.app.clock.now())
    }

    /// The logged-in session, or a redirect to the login page that comes back here.
    pub async fn session(&self) -> Result<Session, WebError> {
        match session::current(&self.app, &self.headers).await? {
            Some(s) => Ok(s),
            None => Err(WebError::Login(self.path.clone())),
        }
    }

    /// The form fields of a POST body.
    pub fn form<T: serde::de::DeserializeOwned>(&self) -> Result<T, WebError> {
        serde_urlencoded::from_bytes(&self.body).map_err(|e| {
            WebError::Api(ApiError::BadRequest { detail: format!("表单内容无效：{e}"), errors: vec![] })
        })
    }

    /// The query parameters.
    pub fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T, WebError> {
        serde_urlencoded::from_str(&self.query).map_err(|e| {
            WebError::Api(ApiError::BadRequest { detail: format!("查询参数无效：{e}"), errors: vec![] })
        })
    }

    /// The session of a form post whose `csrf` field matches the session's token.
    pub async fn post_session(&self, csrf: &str) -> Result<Session, WebError> {
        let s = self.session().await?;
        if !session::same_secret(csrf, &s.csrf) {
            return Err(WebError::Api(ApiError::Forbidden(
                "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试".into(),
            )));
        }
        Ok(s)
    }
}

/// How a console request fails.
#[derive(Debug)]
pub enum WebError {
    /// Not logged in: go to the login page, then back to this path.
    Login(String),
    /// Any service error, shown as a Chinese error page with its status.
    Api(ApiError),
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Api(e)
    }
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        WebError::Api(e.into())
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Api(ApiError::Internal(e.into()))
    }
}

/// A console handler's result.
pub type WebResult = Result<Response, WebError>;

/// Whether a path belongs to the console (else the API filter answers it).
fn is_console_path(path: &str) -> bool {
    path == "/"
        || ["/login", "/logout", "/today", "/map"].contains(&path)
        || path.starts_with("/assets/")
        || path.starts_with("/map/")
        || ["/plans", "/supplies", "/teams", "/drills", "/readiness", "/readiness/run"].contains(&path)
        || path.starts_with("/teams/")
        || path.starts_with("/plans/")
        || path.starts_with("/supplies/")
        || path.starts_with("/today/")
        || path.starts_with("/drills/")
        || path == "/users"
        || path.starts_with("/users/")
        || path == "/events"
        || path.starts_with("/events/")
        || path.starts_with("/readiness/runs/")
        || path == "/imports"
        || path.starts_with("/imports/")
}

/// The console's warp filter: rejects (falls through) for paths that are not the console's,
/// before reading any body.
pub fn filter(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path::full()
        .and_then(|p: warp::path::FullPath| async move {
            if is_console_path(p.as_str()) { Ok(p.as_str().to_string()) } else { Err(warp::reject::not_found()) }
        })
        .and(warp::any().map(move || state.clone()))
        .and(warp::method())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |path: String, state: Arc<AppState>, method: Method, query: String, headers: HeaderMap, body| async move {
                handle(state, method, path, query, headers, body).await
            },
        )
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
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let started = Instant::now();
    let request_id = crate::auth::tokens::random_hex16();
    let body = if method == Method::POST {
        // An upload to the import page carries a whole file (the API's import limit), accepted
        // only from a logged-in session (else the small form limit), as the API authenticates
        // before it reads an import.
        let upload = path == "/imports" && matches!(session::current(&state, &headers).await, Ok(Some(_)));
        let limit = if upload { state.config.max_import_bytes + MAX_FORM_BYTES } else { MAX_FORM_BYTES };
        crate::http::read_body(&headers, body, limit).await
    } else {
        Ok(Bytes::new())
    };
    let route = path.clone();
    let result = match body {
        Err(e) => Err(WebError::Api(e)),
        Ok(body) => {
            let req = Req {
                app: state.clone(),
                method: method.clone(),
                path,
                query,
                headers,
                body,
                request_id: request_id.clone(),
            };
            dispatch(req).await
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(WebError::Login(next)) => {
            let next = if next == "/" { String::new() } else { format!("?next={}", urlencode(&next)) };
            redirect(&format!("/login{next}"))
        }
        Err(WebError::Api(e)) => error_page(&e, &request_id),
    };
    security_headers(resp.headers_mut(), &state.config.tile_url);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let label = if route.starts_with("/assets/") { "/assets/{hash}/{name}" } else { route.as_str() };
    state.metrics.observe(method.as_str(), label, status, elapsed);
    tracing::info!(request_id = %request_id, %method, route = %label, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "console request");
    resp
}

async fn dispatch(req: Req) -> WebResult {
    let path = req.path.clone();
    match (req.method.clone(), path.as_str()) {
        (Method::GET, "/") => Ok(redirect("/today")),
        (Method::GET, "/login") => login::form(req).await,
        (Method::POST, "/login") => login::submit(req).await,
        (Method::POST, "/logout") => login::logout(req).await,
        (Method::GET, "/today") => today::page(req).await,
        (Method::POST, p) if p.starts_with("/today/warnings/") && p.ends_with("/ack") => {
            today_warnings::acknowledge(req).await
        }
        (Method::GET, "/map") => map::page(req).await,
        (Method::GET, "/map/regions.json") => map::regions(req).await,
        (Method::GET, "/plans") => plans::list(req).await,
        (Method::GET, "/plans/new") => plan_edit::page(req).await,
        (Method::POST, "/plans/new") => plan_edit::save(req).await,
        (Method::GET, p) if p.starts_with("/plans/") && p.ends_with("/edit") => plan_edit::page(req).await,
        (Method::POST, p) if p.starts_with("/plans/") && p.ends_with("/edit") => plan_edit::save(req).await,
        (Method::GET, p) if p.starts_with("/plans/") && p.matches('/').count() == 2 => plans::detail(req).await,
        (Method::POST, p) if p.starts_with("/plans/") && p.matches('/').count() == 3 => plans::step(req).await,
        (Method::GET, "/supplies") => supplies::list(req).await,
        (Method::GET, p) if p.starts_with("/supplies/") && p.matches('/').count() == 2 => supplies::detail(req).await,
        (Method::POST, p) if p.starts_with("/supplies/") && p.ends_with("/movements") => supplies::movement(req).await,
        (Method::GET, "/teams") => teams::list(req).await,
        (Method::GET, p) if p.starts_with("/teams/") && p.matches('/').count() == 2 => teams::detail(req).await,
        (Method::POST, p) if p.starts_with("/teams/") && p.ends_with("/reveal") => teams::reveal(req).await,
        (Method::POST, p) if p.starts_with("/teams/") && (p.ends_with("/approve") || p.ends_with("/reject")) => {
            teams::decide(req).await
        }
        (Method::POST, p) if p.starts_with("/teams/") && p.ends_with("/members") => teams::add_member(req).await,
        (Method::GET, "/drills") => drills::page(req).await,
        (Method::POST, "/drills") => drills::create(req).await,
        (Method::POST, "/drills/feed") => drills::subscribe(req).await,
        (Method::GET, p) if p.starts_with("/drills/") && p.matches('/').count() == 2 => drill::detail(req).await,
        (Method::POST, p) if p.starts_with("/drills/") && p.matches('/').count() == 3 => drill::step(req).await,
        (Method::GET, "/users") => users::page(req).await,
        (Method::POST, "/users") => users::step(req).await,
        (Method::POST, p) if p.starts_with("/users/") && p.matches('/').count() == 3 => users::step(req).await,
        (Method::GET, "/readiness") => readiness::page(req).await,
        (Method::POST, "/readiness/run") => readiness::run(req).await,
        (Method::GET, "/events") => events::list(req).await,
        (Method::GET, "/events/new") => event_new::page(req).await,
        (Method::POST, "/events/new") => event_new::create(req).await,
        (Method::GET, p) if p.starts_with("/events/") && p.matches('/').count() == 2 => events::board(req).await,
        (Method::POST, p)
            if p.starts_with("/events/")
                && p.contains("/lines/")
                && (p.ends_with("/arrive") || p.ends_with("/return")) =>
        {
            event_steps::line_step(req).await
        }
        (Method::POST, p) if p.starts_with("/events/") && p.matches('/').count() == 3 => event_steps::step(req).await,
        (Method::GET, p) if p.starts_with("/readiness/runs/") => readiness::status(req).await,
        (Method::GET, "/imports") => imports::page(req).await,
        (Method::POST, "/imports") => imports::preview(req).await,
        (Method::GET, p) if p.starts_with("/imports/export/") => imports::export(req).await,
        (Method::POST, p) if p.starts_with("/imports/") && p.ends_with("/confirm") => imports::confirm(req).await,
        (Method::GET, p) if p.starts_with("/imports/") && p.matches('/').count() == 2 => imports::upload(req).await,
        (Method::GET, p) if p.starts_with("/assets/") => Ok(asset(p)),
        (_, _) => Err(WebError::Api(ApiError::NotFound(format!("没有这个页面：{path}")))),
    }
}

fn asset(path: &str) -> Response {
    let mut parts = path.trim_start_matches("/assets/").splitn(2, '/');
    let (hash, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match assets::find(hash, name) {
        Some(a) => {
            let mut r = Response::new(a.bytes.into());
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
            r
        }
        None => error_page(&ApiError::NotFound(format!("没有这个文件：{path}")), ""),
    }
}

/// The numeric id in the second segment of a console path (`/plans/7/…` → 7), else 404.
pub fn path_id(path: &str) -> Result<i64, WebError> {
    path.split('/')
        .nth(2)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| WebError::Api(ApiError::NotFound(format!("没有这个页面：{path}"))))
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An HTML page with status 200, not cached (pages show live data and carry CSRF tokens).
pub fn html(body: String) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON response (not cached).
pub fn json_response(v: &serde_json::Value) -> Response {
    let mut r = Response::new(v.to_string().into());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A 303 redirect (after a form post, or to the login page).
pub fn redirect(to: &str) -> Response {
    let mut r = Response::new(Vec::<u8>::new().into());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The origin (`scheme://host[:port]`) of a tile URL template, for the CSP's `img-src`.
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    // A `{s}` subdomain placeholder becomes a wildcard.
    let host = host.replace("{s}", "*");
    (!host.is_empty() && (scheme == "http" || scheme == "https")).then(|| format!("{scheme}://{host}"))
}

fn security_headers(h: &mut HeaderMap, tile_url: &Option<String>) {
    let img = tile_url.as_deref().and_then(tile_origin).map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; img-src 'self' data:{img}; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

fn error_page(e: &ApiError, request_id: &str) -> Response {
    if let ApiError::Internal(cause) = e {
        tracing::error!(request_id, error = ?cause, "console internal error");
    }
    let p = e.problem(Some(request_id));
    let page = layout::ErrorPage {
        title: p.title.clone(),
        detail: p.detail.clone(),
        errors: p.errors.iter().map(|f| f.message.clone()).collect(),
        request_id: request_id.to_string(),
    };
    let body = askama::Template::render(&page).unwrap_or_else(|_| p.detail.clone());
    let mut r = html(body);
    *r.status_mut() = e.status();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths_leave_the_api_alone() {
        assert!(is_console_path("/"));
        assert!(is_console_path("/map"));
        assert!(is_console_path("/assets/abc/app.css"));
        assert!(!is_console_path("/api/v1/plans"));
        assert!(!is_console_path("/healthz"));
        assert_eq!(
            tile_origin("https://t{s}.tianditu.gov.cn/vec_w/wmts?x={x}"),
            Some("https://t*.tianditu.gov.cn".into())
        );
        assert_eq!(tile_origin("nonsense"), None);
    }
}
