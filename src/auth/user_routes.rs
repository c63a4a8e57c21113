//! User management for administrators: `/api/v1/users`. The same functions as `yingji user`
//! ([`super::users`]: argon2id hashes, audited changes, sessions ended on a new password or a
//! disable), so the command line and the console cannot drift apart. Passwords go in, never
//! out: no answer carries a password or its hash.

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::users::{self, UserInfo};
use super::{Perm, Role};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;

const TAG: &str = "用户";

/// Body of `POST /api/v1/users`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Log-in name.
    pub name: String,
    /// Role: admin, planner, operator or viewer.
    pub role: Role,
    /// Jurisdiction: a region code within the caller's.
    pub region: RegionCode,
    /// Password (10 to 128 characters); stored only as an argon2id hash.
    pub password: String,
}

/// Body of `PUT /api/v1/users/{id}/password`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password (10 to 128 characters). The user's sessions end.
    pub password: String,
}

/// Body of `PATCH /api/v1/users/{id}`: a new role and/or jurisdiction.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Role.
    pub role: Option<Role>,
    /// Jurisdiction (within the caller's).
    pub region: Option<RegionCode>,
}

/// The user named in the path.
const ON_USER: &[Region] = &[Region::Path("id", &access::USER)];

fn r(method: Method, path: &'static str, body: BodyKind, doc: Doc, h: crate::http::router::Handler) -> Route {
    route(method, path, Access::Token, body, doc, h)
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        r(
            Method::GET,
            "/api/v1/users",
            BodyKind::None,
            Doc {
                description: "管理员：辖区内的用户（不含密码）。",
                response: Some(schema::<Page<UserInfo>>()),
                ..Doc::new(TAG, "用户列表")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::ManageUsers, &[Region::Query("region")]),
        r(
            Method::POST,
            "/api/v1/users",
            BodyKind::Json,
            Doc {
                description: "管理员：在辖区内创建可登录工作台的用户（密码以 argon2id 散列保存）。用户名已被使用时返回 409。",
                request: Some(schema::<NewUser>()),
                status: 201,
                response: Some(schema::<UserInfo>()),
                ..Doc::new(TAG, "创建用户")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::ManageUsers, &[Region::Body("region")]),
        r(
            Method::PATCH,
            "/api/v1/users/{id}",
            BodyKind::Json,
            Doc {
                description: "管理员：修改用户的角色或辖区（新辖区须在本人辖区内）；立即对其会话和令牌生效。不能修改自己。",
                request: Some(schema::<Assignment>()),
                response: Some(schema::<UserInfo>()),
                ..Doc::new(TAG, "修改角色与辖区")
            },
            |c| Box::pin(assign(c)),
        )
        .guard(Perm::ManageUsers, &[Region::Path("id", &access::USER), Region::Body("region")]),
        r(
            Method::PUT,
            "/api/v1/users/{id}/password",
            BodyKind::Json,
            Doc {
                description: "管理员：设置新密码；该用户的所有会话随即结束。",
                request: Some(schema::<NewPassword>()),
                response: Some(schema::<UserInfo>()),
                ..Doc::new(TAG, "设置密码")
            },
            |c| Box::pin(set_password(c)),
        )
        .guard(Perm::ManageUsers, ON_USER),
        r(
            Method::POST,
            "/api/v1/users/{id}/disable",
            BodyKind::None,
            Doc {
                description: "管理员：停用用户：不能再登录，会话全部结束，令牌全部吊销（幂等）。不能停用自己。",
                response: Some(schema::<UserInfo>()),
                ..Doc::new(TAG, "停用用户")
            },
            |c| Box::pin(disable(c)),
        )
        .guard(Perm::ManageUsers, ON_USER),
        r(
            Method::POST,
            "/api/v1/users/{id}/enable",
            BodyKind::None,
            Doc {
                description: "管理员：重新启用用户（幂等）；旧会话和令牌不会恢复。",
                response: Some(schema::<UserInfo>()),
                ..Doc::new(TAG, "启用用户")
            },
            |c| Box::pin(enable(c)),
        )
        .guard(Perm::ManageUsers, ON_USER),
    ]
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let (lo, hi) = p.scope.bounds();
    let items = users::list(&c.app.db, (&lo, &hi)).await?;
    let total = items.len() as i64;
    json(&Page { items, total })
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewUser = c.json()?;
    let u = users::create(&c.app.db, &c.actor()?, c.now(), &b.name, b.role, &b.region, &b.password).await?;
    json_status(StatusCode::CREATED, &u)
}

/// The user in the path, who may not be the caller (an administrator cannot lock themselves out).
async fn target(c: &Ctx, what: &str) -> ApiResult<UserInfo> {
    let id = c.id_param("id")?;
    let u = users::by_id(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("用户 {id} 不存在")))?;
    if u.id == c.caller()?.user_id && !what.is_empty() {
        return Err(ApiError::Conflict(format!("不能{what}自己的账号；请另一位管理员操作")));
    }
    Ok(u)
}

async fn assign(c: Ctx) -> ApiResult<Response> {
    let b: Assignment = c.json()?;
    let u = target(&c, "修改").await?;
    json(&users::assign(&c.app.db, &c.actor()?, c.now(), &u.name, b.role, b.region.as_ref()).await?)
}

async fn set_password(c: Ctx) -> ApiResult<Response> {
    let b: NewPassword = c.json()?;
    let u = target(&c, "").await?;
    json(&users::set_password(&c.app.db, &c.actor()?, c.now(), &u.name, &b.password).await?)
}

async fn disable(c: Ctx) -> ApiResult<Response> {
    let u = target(&c, "停用").await?;
    json(&users::disable(&c.app.db, &c.actor()?, c.now(), &u.name).await?)
}

async fn enable(c: Ctx) -> ApiResult<Response> {
    let u = target(&c, "").await?;
    json(&users::enable(&c.app.db, &c.actor()?, c.now(), &u.name).await?)
}
