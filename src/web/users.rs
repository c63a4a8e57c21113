//! 用户 (administrators only): the jurisdiction's users, creating one, a new password, another
//! role or jurisdiction, disabling and enabling. Every step is the API's `/api/v1/users`
//! handler ([`super::api`]), itself the same code as `yingji user`; passwords are never shown
//! back, not even in a refused form.

use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::Method;

use super::form::{self, FormState};
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html, redirect};
use crate::auth::Role;
use crate::auth::login::Session;
use crate::error::ApiError;

#[derive(Deserialize)]
struct User {
    id: i64,
    name: String,
    role: String,
    region_code: String,
    has_password: bool,
    disabled_at: Option<String>,
}

#[derive(Deserialize)]
struct UserPage {
    items: Vec<User>,
}

#[derive(Template)]
#[template(path = "web/users.html")]
struct Page {
    layout: Layout,
    users: Vec<User>,
    regions: Vec<api::RegionChoice>,
    roles: Vec<(&'static str, &'static str)>,
    me: i64,
    home: String,
    done: Option<&'static str>,
    form: FormState,
}

impl Page {
    fn role_label(&self, code: &str) -> &'static str {
        Role::parse(code).map_or("未知", Role::label)
    }
    fn region_name(&self, code: &str) -> String {
        self.regions.iter().find(|r| r.code == code).map_or_else(|| code.to_string(), |r| r.name.clone())
    }
    /// The id of user `id`'s form for `step` (`user-7-password`).
    fn fid(&self, id: &i64, step: &str) -> String {
        format!("user-{id}-{step}")
    }
    /// The step that switches user `u` on or off.
    fn toggle(&self, u: &User) -> &'static str {
        if u.disabled_at.is_some() { "enable" } else { "disable" }
    }
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

/// `GET /users`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    render(&req, &s, FormState::none()).await
}

async fn render(req: &Req, s: &Session, form: FormState) -> WebResult {
    let users: UserPage = api::decode(api::get(req, s, "/api/v1/users", "").await?)?;
    let regions = api::regions(req, s).await?;
    let done: Done = req.query().unwrap_or_default();
    let p = Page {
        layout: Layout::new(req, s, "用户", "users").await?,
        users: users.items,
        regions,
        roles: Role::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
        me: s.principal.user_id,
        home: s.principal.scope.code.to_string(),
        done: match done.done.as_deref() {
            Some("create") => Some("已创建用户"),
            Some("password") => Some("已设置新密码，该用户需重新登录"),
            Some("assign") => Some("已修改角色和辖区"),
            Some("disable") => Some("已停用用户，其会话和令牌已全部失效"),
            Some("enable") => Some("已启用用户"),
            _ => None,
        },
        form,
    };
    Ok(html(p.render()?))
}

/// `POST /users` (create) and `POST /users/{id}/{password|assign|disable|enable}`.
pub async fn step(req: Req) -> WebResult {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let s = req.post_session(&field("csrf")).await?;
    let (form_id, step, result) = if req.path == "/users" {
        let body = json!({ "name": field("name"), "role": field("role"), "region": field("region"),
                           "password": pairs.iter().find(|(n, _)| n == "password").map(|(_, v)| v.as_str()).unwrap_or("") });
        ("user-create".to_string(), "create", api::post(&req, &s, "/api/v1/users", &body).await)
    } else {
        let id = super::path_id(&req.path)?;
        let step = req.path.rsplit('/').next().unwrap_or("");
        let (step, result) = match step {
            "password" => {
                let pw = pairs.iter().find(|(n, _)| n == "password").map(|(_, v)| v.as_str()).unwrap_or("");
                let path = format!("/api/v1/users/{id}/password");
                ("password", api::send(&req, &s, Method::PUT, &path, &json!({ "password": pw })).await)
            }
            "assign" => {
                let body = json!({ "role": field("role"), "region": field("region") });
                ("assign", api::send(&req, &s, Method::PATCH, &format!("/api/v1/users/{id}"), &body).await)
            }
            "disable" | "enable" => {
                let path = format!("/api/v1/users/{id}/{step}");
                (if step == "disable" { "disable" } else { "enable" }, api::post_empty(&req, &s, &path).await)
            }
            _ => return Err(WebError::Api(ApiError::NotFound(format!("没有这个操作：{step}")))),
        };
        (format!("user-{id}-{step}"), step, result)
    };
    let result = result.map(|_: Value| redirect(&format!("/users?done={step}")));
    let mut req = req;
    req.path = "/users".into();
    req.query = String::new();
    form::again(&form_id, &req.body, result, |form| render(&req, &s, form)).await
}
