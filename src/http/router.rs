//! The route table: one entry per served route, carrying its handler, its documentation and its
//! access rule, so the OpenAPI document is built from exactly what is served and guarded.
//!
//! # Declaring access (every `Access::Token` route must)
//!
//! ```ignore
//! use crate::auth::Perm;
//! use crate::http::access::{self, Region};
//!
//! route(Method::POST, "/api/v1/plans/{id}/approve", Access::Token, BodyKind::Json, doc, handler)
//!     .guard(Perm::Approve, &[Region::Path("id", &access::PLAN)])
//! ```
//!
//! A guard names the permission the caller's role must carry and where the region(s) of what the
//! route touches come from, each of which must lie in the caller's jurisdiction:
//!
//! - `Region::Path(param, &OBJECT)`: the object named in the path (its region found by the
//!   object's lookup in `http/access.rs`; add an `Object` there for a new kind of thing);
//! - `Region::Body("field")`: a region code in a top-level body field (creating something);
//! - `Region::Query("region")`: lists and reports over the jurisdiction, with an optional region
//!   filter that must lie inside it;
//! - `Region::Banner`: acts on the whole banner, so only banner-level callers;
//! - `Region::Rows`: imports, which check each row's region and answer line errors;
//! - `Region::Global`: nothing regional (the catalogue, scheduler jobs).
//!
//! [`access::enforce`] checks the guard after authentication and before the handler: 403 for a
//! missing permission, 404 for a path object that does not exist, 403 for anything outside the
//! jurisdiction. Handlers then use [`Ctx::caller`](super::Ctx::caller) and do no access checks of
//! their own. Ids and codes referenced *inside* a body are checked with [`super::refs`].

use std::future::Future;
use std::pin::Pin;

use warp::http::Method;
use warp::reply::Response;

use super::Ctx;
use super::access::{self, Guard, Region};
use crate::auth::Perm;
use crate::error::ApiError;

/// A handler's future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;

/// A route handler.
pub type Handler = fn(Ctx) -> HandlerFuture;

/// A schema generator for a documented type.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// Returns the schema generator for `T`.
pub fn schema<T: schemars::JsonSchema>() -> SchemaFn {
    |g| g.subschema_for::<T>()
}

/// What a route accepts as body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body is read.
    None,
    /// `application/json`, up to the JSON size limit.
    Json,
    /// `text/csv` (UTF-8, BOM allowed), up to the import size limit.
    Csv,
    /// `application/xml` (also `text/xml`, `application/cap+xml`), up to the JSON size limit.
    Xml,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication (health, metrics, API description).
    Public,
    /// `Authorization: Bearer <token>` required.
    Token,
    /// A calendar feed token in the `token` query parameter (subscribing apps cannot send headers).
    FeedToken,
    /// Monitoring (`/metrics`): `Authorization: Bearer` with the scrape token configured by
    /// `YINGJI_METRICS_TOKEN` (a credential that can read nothing else), or an API token that
    /// passes the route's guard.
    Scrape,
}

/// Documentation of a route, for the OpenAPI document.
#[derive(Clone, Copy)]
pub struct Doc {
    /// Group (OpenAPI tag).
    pub tag: &'static str,
    /// One-line summary (Chinese).
    pub summary: &'static str,
    /// Longer description: who may call it, what it does.
    pub description: &'static str,
    /// Query parameters, as the schema of the query struct.
    pub query: Option<SchemaFn>,
    /// Request body schema (JSON routes).
    pub request: Option<SchemaFn>,
    /// Success status.
    pub status: u16,
    /// Success response schema (JSON), or None for non-JSON responses.
    pub response: Option<SchemaFn>,
    /// Media type of a non-JSON success response.
    pub response_type: Option<&'static str>,
}

impl Doc {
    /// A doc with the given tag and summary; the rest defaulted.
    pub const fn new(tag: &'static str, summary: &'static str) -> Doc {
        Doc {
            tag,
            summary,
            description: "",
            query: None,
            request: None,
            status: 200,
            response: None,
            response_type: None,
        }
    }
}

/// One served route.
#[derive(Clone)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path template: literal segments and `{name}` parameters (a segment may add a literal
    /// suffix, e.g. `{kind}.csv`).
    pub path: &'static str,
    /// Authentication.
    pub access: Access,
    /// Body.
    pub body: BodyKind,
    /// Documentation.
    pub doc: Doc,
    /// The handler.
    pub handler: Handler,
    /// The access rule of a token route (see the module doc); None only on public routes.
    pub guard: Option<Guard>,
}

impl Route {
    /// Declares the route's permission and where the regions it touches come from.
    pub fn guard(mut self, perm: Perm, regions: &'static [Region]) -> Route {
        self.guard = Some(Guard { perm, regions });
        self
    }

    /// The access rule in words (OpenAPI, README).
    pub fn access_text(&self) -> String {
        match (&self.access, &self.guard) {
            (Access::Public, _) => "公开，无需令牌".to_string(),
            (Access::FeedToken, _) => "日历订阅令牌（查询参数 token）".to_string(),
            (Access::Scrape, Some(g)) => {
                format!("监控抓取令牌（YINGJI_METRICS_TOKEN），或 API 令牌：{}", access::describe(g))
            }
            (Access::Scrape, None) => "监控抓取令牌（YINGJI_METRICS_TOKEN）".to_string(),
            (Access::Token, Some(g)) => access::describe(g),
            (Access::Token, None) => "未声明".to_string(),
        }
    }
}

/// Builds a [`Route`] (used by each domain module's `routes()`); token routes add a
/// [`Route::guard`].
pub fn route(method: Method, path: &'static str, access: Access, body: BodyKind, doc: Doc, handler: Handler) -> Route {
    Route { method, path, access, body, doc, handler, guard: None }
}

/// Path parameters by template name.
pub type Params = Vec<(&'static str, String)>;

/// The outcome of matching a request path.
pub enum Match<'a> {
    /// A route matched, with its path parameters.
    Found(&'a Route, Vec<(&'static str, String)>),
    /// The path exists but not for this method: the template (the metrics label) and the
    /// methods it does serve (the `Allow` header).
    WrongMethod(&'static str, Vec<String>),
    /// No route has this path.
    NotFound,
}

/// All served routes.
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// A router over these routes.
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    /// The routes, in registration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a request. Where several templates match, the one with the most
    /// literal segments wins (so `/depots.geojson` beats `/depots/{code}`-like templates).
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<(usize, &Route, Params)> = None;
        // Methods of the most specific template(s) only: a literal route shadows `{id}`.
        let mut allowed: Option<(usize, &'static str, Vec<String>)> = None;
        for r in &self.routes {
            let Some((score, params)) = match_path(r.path, &segs) else { continue };
            if r.method != method {
                match &mut allowed {
                    Some((s, _, methods)) if *s == score => methods.push(r.method.to_string()),
                    Some((s, _, _)) if *s > score => {}
                    _ => allowed = Some((score, r.path, vec![r.method.to_string()])),
                }
                continue;
            }
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, r, params));
            }
        }
        match (best, allowed) {
            (Some((_, r, params)), _) => Match::Found(r, params),
            (None, Some((_, template, mut methods))) => {
                methods.sort();
                methods.dedup();
                Match::WrongMethod(template, methods)
            }
            (None, None) => Match::NotFound,
        }
    }
}

fn match_path(template: &'static str, segs: &[&str]) -> Option<(usize, Vec<(&'static str, String)>)> {
    let tsegs: Vec<&'static str> = template.split('/').collect();
    if tsegs.len() != segs.len() {
        return None;
    }
    let mut literal = 0;
    let mut params = Vec::new();
    for (t, s) in tsegs.iter().zip(segs) {
        match (t.find('{'), t.find('}')) {
            (Some(open), Some(close)) if open < close => {
                let (prefix, suffix) = (&t[..open], &t[close + 1..]);
                let name = &t[open + 1..close];
                if s.len() < prefix.len() + suffix.len() + 1 || !s.starts_with(prefix) || !s.ends_with(suffix) {
                    return None;
                }
                let raw = &s[prefix.len()..s.len() - suffix.len()];
                params.push((name, percent_decode(raw)?));
            }
            _ => {
                if t != s {
                    return None;
                }
                literal += 1;
            }
        }
    }
    Some((literal, params))
}

/// Decodes `%XX` escapes in a path segment; None when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // NUL cannot be stored (PostgreSQL) and names nothing: such a path matches no route.
    String::from_utf8(out).ok().filter(|s| !s.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_with_params_and_suffixes() {
        let segs: Vec<&str> = "/api/v1/export/stock.csv".split('/').collect();
        let (score, params) = match_path("/api/v1/export/{kind}.csv", &segs).unwrap();
        assert_eq!(score, 4);
        assert_eq!(params, vec![("kind", "stock".to_string())]);
        assert!(match_path("/api/v1/regions/{code}", &segs).is_none());
        let segs: Vec<&str> = "/api/v1/regions/%E6%BB%A1".split('/').collect();
        let (_, params) = match_path("/api/v1/regions/{code}", &segs).unwrap();
        assert_eq!(params[0].1, "满");
    }

    #[test]
    fn every_token_route_declares_its_access() {
        let router = crate::routes::router();
        let missing: Vec<String> = router
            .routes()
            .iter()
            .filter(|r| r.access == Access::Token && r.guard.is_none())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(missing.is_empty(), "token routes without a guard: {missing:#?}");
    }
}
