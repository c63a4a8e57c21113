//! Browser sessions on the console side: the session cookie, the login form's pre-session CSRF
//! cookie, and the CSRF check every form post goes through.

use warp::http::{HeaderMap, header};

use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::login::{self, Session};
use crate::time::Timestamp;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "yj_session";
/// Name of the login form's CSRF cookie (before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "yj_login_csrf";

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over HTTPS (directly or through a proxy that says so), so cookies
/// can be marked `Secure`.
fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, Secure behind HTTPS; `max_age` None
/// for a browser-session cookie, `Some(0)` to delete.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure(headers) {
        c.push_str("; Secure");
    }
    c
}

/// The live session of the request, if its cookie names one.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, sqlx::Error> {
    match cookie(headers, SESSION_COOKIE) {
        Some(v) => login::session(&state.db, v, Timestamp(state.clock.now())).await,
        None => Ok(None),
    }
}

/// The caller of an API `GET` made by a console page (the map's layers and "nearest" queries):
/// the session behind the cookie, when the request carries no `Authorization` header. Only
/// reads use this: every change goes through a console form, which checks its CSRF token.
pub async fn api_reader(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, sqlx::Error> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    Ok(current(state, headers).await?.map(|s| s.principal))
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token (48 hex digits).
pub fn random_token() -> String {
    login::random_secret()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    #[test]
    fn finds_cookies_among_several() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; yj_session=abc; b=2"));
        assert_eq!(cookie(&h, "yj_session"), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(set_cookie(&h, "x", "y", None).contains("HttpOnly; SameSite=Lax"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
