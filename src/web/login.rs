//! The login page, logging in and out. The check itself is [`crate::auth::login`]'s (one
//! interface, ready for single sign-on); this module only speaks HTML, cookies and CSRF.

use askama::Template;
use serde::Deserialize;
use warp::http::{HeaderValue, header};

use super::session::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use super::{Req, WebError, WebResult, assets, html, redirect};
use crate::auth::login::{self, PasswordLogin, Refusal};

#[derive(Template)]
#[template(path = "web/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
}

impl LoginPage {
    fn asset(&self, name: &str) -> String {
        assets::url(name)
    }
}

/// Only a local path may be the place to return to (no `//host` or `https://…`).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && next != "/login" {
        next.to_string()
    } else {
        "/today".to_string()
    }
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
}

fn render(req: &Req, csrf: String, next: String, name: String, error: Option<String>) -> WebResult {
    let page = LoginPage { csrf: csrf.clone(), next, name, error: error.clone() };
    let mut r = html(page.render()?);
    if error.is_some() {
        *r.status_mut() = warp::http::StatusCode::UNAUTHORIZED;
    }
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&req.headers, LOGIN_CSRF_COOKIE, &csrf, None)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /login`: the form (or straight on, when already logged in).
pub async fn form(req: Req) -> WebResult {
    let q: NextQuery = req.query().unwrap_or_default();
    let next = safe_next(q.next.as_deref().unwrap_or("/today"));
    if session::current(&req.app, &req.headers).await?.is_some() {
        return Ok(redirect(&next));
    }
    let csrf = session::cookie(&req.headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 48)
        .map(str::to_string)
        .unwrap_or_else(session::random_token);
    render(&req, csrf, next, String::new(), None)
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: checks the CSRF pair, then name and password; on success sets the session
/// cookie and goes on to `next`.
pub async fn submit(req: Req) -> WebResult {
    let f: LoginForm = req.form()?;
    let next = safe_next(&f.next);
    let cookie_csrf = session::cookie(&req.headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_csrf.is_empty() || !session::same_secret(cookie_csrf, &f.csrf) {
        return render(&req, session::random_token(), next, f.name, Some("登录表单已过期，请重新输入后再登录".into()));
    }
    match login::login(&req.app.db, &PasswordLogin, req.now(), &f.name, &f.password, &req.request_id).await? {
        Ok((new, _principal)) => {
            let mut r = redirect(&next);
            let cookie = session::set_cookie(&req.headers, SESSION_COOKIE, &new.cookie, None);
            let clear = session::set_cookie(&req.headers, LOGIN_CSRF_COOKIE, "", Some(0));
            for c in [cookie, clear] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            Ok(r)
        }
        Err(refusal) => {
            let msg = match refusal {
                Refusal::BadCredentials => "用户名或密码不正确".to_string(),
                Refusal::Locked => format!(
                    "登录失败次数过多，该用户名已暂停登录，请 {} 分钟后再试或联系管理员",
                    login::FAILURE_WINDOW_MINUTES
                ),
            };
            render(&req, f.csrf, next, f.name, Some(msg))
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /logout`: ends the session (CSRF-checked, so no other site can log a user out).
pub async fn logout(req: Req) -> WebResult {
    let f: CsrfForm = req.form()?;
    let s = match req.post_session(&f.csrf).await {
        Ok(s) => s,
        Err(WebError::Login(_)) => return Ok(redirect("/login")),
        Err(e) => return Err(e),
    };
    login::logout(&req.app.db, &s, req.now(), &req.request_id).await.map_err(WebError::Api)?;
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&req.headers, SESSION_COOKIE, "", Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/map"), "/map");
        assert_eq!(safe_next("//evil.example/x"), "/today");
        assert_eq!(safe_next("https://evil.example"), "/today");
        assert_eq!(safe_next("/\\evil"), "/today");
    }
}
