//! Token and audit endpoints (admins only).

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};

use super::tokens::{self, IssuedToken, TokenInfo};
use super::{Perm, Role};
use crate::audit::{self, AuditEntry, AuditQuery};
use crate::error::ApiResult;
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{self, Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;
use warp::reply::Response;

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// User name (created if new; an existing user keeps its role and region).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"\S"))]
    pub name: String,
    /// Role: admin, planner, operator or viewer.
    pub role: Role,
    /// Jurisdiction: a region code within the caller's.
    pub region: RegionCode,
    /// What the token is for.
    pub label: Option<String>,
}

/// Paging only.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/tokens",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "管理员：列出辖区内用户的令牌（不含令牌明文）。",
                query: Some(schema::<PageQuery>()),
                response: Some(schema::<Page<TokenInfo>>()),
                ..Doc::new("令牌与审计", "列出令牌")
            },
            |c| Box::pin(list_tokens(c)),
        )
        .guard(Perm::ManageTokens, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/tokens",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "管理员：为辖区内的用户签发令牌。令牌明文只在此响应中出现一次。",
                request: Some(schema::<NewToken>()),
                status: 201,
                response: Some(schema::<IssuedToken>()),
                ..Doc::new("令牌与审计", "签发令牌")
            },
            |c| Box::pin(create_token(c)),
        )
        .guard(Perm::ManageTokens, &[Region::Body("region")]),
        route(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "管理员：吊销令牌（幂等）。",
                response: Some(schema::<TokenInfo>()),
                ..Doc::new("令牌与审计", "吊销令牌")
            },
            |c| Box::pin(revoke_token(c)),
        )
        .guard(Perm::ManageTokens, &[Region::Path("id", &access::TOKEN)]),
        route(
            Method::GET,
            "/api/v1/audit",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "管理员：辖区内的审计记录，按时间倒序；可按实体、操作人和时间段筛选。审计记录不可修改或删除。",
                query: Some(schema::<AuditQuery>()),
                response: Some(schema::<Page<AuditEntry>>()),
                ..Doc::new("令牌与审计", "审计日志")
            },
            |c| Box::pin(list_audit(c)),
        )
        .guard(Perm::ReadAudit, &[Region::Query("region")]),
    ]
}

async fn list_tokens(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: PageQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let (items, total) = tokens::list(&c.app.db, (&lo, &hi), limit, offset).await?;
    json(&Page { items, total })
}

async fn create_token(c: Ctx) -> ApiResult<Response> {
    let body: NewToken = c.json()?;
    let issued =
        tokens::issue(&c.app.db, &c.actor()?, c.now(), &body.name, body.role, &body.region, body.label.as_deref())
            .await?;
    json_status(StatusCode::CREATED, &issued)
}

async fn revoke_token(c: Ctx) -> ApiResult<Response> {
    let id = c.id_param("id")?;
    let after = tokens::revoke(&c.app.db, &c.actor()?, c.now(), id).await?;
    json(&after)
}

async fn list_audit(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: AuditQuery = c.query()?;
    let (limit, offset) = ctx::page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let global = p.scope.level == crate::regions::Level::Banner;
    let (items, total) = audit::list(&c.app.db, (&lo, &hi), global, &q, limit, offset).await?;
    json(&Page { items, total })
}
