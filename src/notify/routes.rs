//! Notification endpoints: channels, the in-app inbox, and the delivery queue.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::channels::{self, Channel, NewChannel};
use super::inbox::{self, InboxQuery, Notification};
use super::outbox::{self, Attempt, Delivery, OutboxQuery};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status, no_content, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

/// Body of `PATCH /api/v1/channels/{id}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// Whether the channel receives notifications.
    pub enabled: bool,
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/channels",
            Access::Token,
            BodyKind::None,
            Doc { response: Some(schema::<Page<Channel>>()), ..Doc::new("通知", "列出通知渠道") },
            |c| Box::pin(list_channels(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/channels",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "管理员：为区划配置通知渠道（通用 JSON Webhook、钉钉群机器人、企业微信群机器人）。地址和密钥加密保存，只显示主机名。",
                request: Some(schema::<NewChannel>()),
                status: 201,
                response: Some(schema::<Channel>()),
                ..Doc::new("通知", "新增通知渠道")
            },
            |c| Box::pin(create_channel(c)),
        )
        .guard(Perm::Approve, &[Region::Body("region")]),
        route(
            Method::PATCH,
            "/api/v1/channels/{id}",
            Access::Token,
            BodyKind::Json,
            Doc {
                request: Some(schema::<ChannelPatch>()),
                response: Some(schema::<Channel>()),
                ..Doc::new("通知", "启用或停用通知渠道")
            },
            |c| Box::pin(patch_channel(c)),
        )
        .guard(Perm::Approve, &[Region::Path("id", &access::CHANNEL)]),
        route(
            Method::GET,
            "/api/v1/notifications",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "站内通知：发给本人辖区内各区划的通知，已读状态按用户记录。",
                query: Some(schema::<InboxQuery>()),
                response: Some(schema::<Page<Notification>>()),
                ..Doc::new("通知", "站内通知")
            },
            |c| Box::pin(list_inbox(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/notifications/{id}/read",
            Access::Token,
            BodyKind::None,
            Doc { status: 204, ..Doc::new("通知", "标记通知已读") },
            |c| Box::pin(mark_read(c)),
        )
        .guard(Perm::Read, &[Region::Path("id", &access::NOTIFICATION)]),
        route(
            Method::GET,
            "/api/v1/outbox",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "管理员：通知投递队列（待发、已送达、失败、已撤回），含重试次数和最后错误。",
                query: Some(schema::<OutboxQuery>()),
                response: Some(schema::<Page<Delivery>>()),
                ..Doc::new("通知", "投递队列")
            },
            |c| Box::pin(list_outbox(c)),
        )
        .guard(Perm::Approve, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/outbox/{id}",
            Access::Token,
            BodyKind::None,
            Doc {
                response: Some(schema::<DeliveryDetail>()), ..Doc::new("通知", "投递详情（含每次尝试）")
            },
            |c| Box::pin(get_delivery(c)),
        )
        .guard(Perm::Approve, &[Region::Path("id", &access::DELIVERY)]),
        route(
            Method::POST,
            "/api/v1/outbox/{id}/retry",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "管理员：把投递失败的通知重新放回队列。",
                response: Some(schema::<Delivery>()),
                ..Doc::new("通知", "重试失败的投递")
            },
            |c| Box::pin(retry(c)),
        )
        .guard(Perm::Approve, &[Region::Path("id", &access::DELIVERY)]),
    ]
}

async fn list_channels(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let (lo, hi) = p.scope.bounds();
    let items = channels::list(&c.app.db, (&lo, &hi)).await?;
    let total = items.len() as i64;
    json(&Page { items, total })
}

async fn create_channel(c: Ctx) -> ApiResult<Response> {
    let b: NewChannel = c.json()?;
    let url = b.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2000 {
        return Err(ApiError::invalid("url", "地址应以 http:// 或 https:// 开头"));
    }
    if b.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "名称不能为空"));
    }
    if crate::regions::store::get(&c.app.db, b.region.as_str()).await?.is_none() {
        return Err(ApiError::invalid("region", format!("区划 {} 不存在", b.region)));
    }
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let id = channels::create(&mut tx, &c.app.cipher, now, &b).await?;
    let after = serde_json::json!({"id": id, "region_code": b.region, "kind": b.kind, "name": b.name.trim(), "url_hint": channels::url_hint(url)});
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "create",
            entity_type: "channel",
            entity_id: &id.to_string(),
            region_code: Some(b.region.as_str()),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    tx.commit().await?;
    let ch = channels::get(&c.app.db, id).await?.ok_or_else(|| anyhow::anyhow!("channel vanished"))?;
    json_status(StatusCode::CREATED, &ch)
}

async fn patch_channel(c: Ctx) -> ApiResult<Response> {
    let b: ChannelPatch = c.json()?;
    let id = c.id_param("id")?;
    let before =
        channels::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("通知渠道 {id} 不存在")))?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    channels::set_enabled(&mut tx, id, b.enabled, now).await?;
    let after = Channel { enabled: b.enabled, updated_at: now, ..before.clone() };
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "update",
            entity_type: "channel",
            entity_id: &id.to_string(),
            region_code: Some(&before.region_code),
            before: Some(serde_json::to_value(&before).map_err(anyhow::Error::from)?),
            after: Some(serde_json::to_value(&after).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    tx.commit().await?;
    json(&after)
}

async fn list_inbox(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: InboxQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let (items, total) = inbox::list(&c.app.db, p.user_id, (&lo, &hi), &q, limit, offset).await?;
    json(&Page { items, total })
}

async fn mark_read(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let id = c.id_param("id")?;
    inbox::mark_read(&c.app.db, id, p.user_id, c.now()).await?;
    Ok(no_content())
}

async fn list_outbox(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: OutboxQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let (items, total) = outbox::list(&c.app.db, (&lo, &hi), &q, limit, offset).await?;
    json(&Page { items, total })
}

/// Loads the delivery named in the path (the route's guard has checked access to it).
async fn load_delivery(c: &Ctx) -> ApiResult<Delivery> {
    let id = c.id_param("id")?;
    outbox::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("投递 {id} 不存在")))
}

async fn get_delivery(c: Ctx) -> ApiResult<Response> {
    let delivery = load_delivery(&c).await?;
    let attempts = outbox::attempts(&c.app.db, delivery.id).await?;
    json(&DeliveryDetail { delivery, attempts })
}

async fn retry(c: Ctx) -> ApiResult<Response> {
    let before = load_delivery(&c).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    if !outbox::retry(&mut tx, before.id, now).await? {
        return Err(ApiError::Conflict(format!(
            "投递 {} 的状态为 {}，只有失败的投递可以重试",
            before.id, before.status
        )));
    }
    audit::record(
        &mut tx,
        &c.actor()?,
        now,
        Change {
            action: "retry",
            entity_type: "delivery",
            entity_id: &before.id.to_string(),
            region_code: Some(&before.region_code),
            before: Some(serde_json::json!({"status": before.status})),
            after: Some(serde_json::json!({"status": "pending"})),
        },
    )
    .await?;
    tx.commit().await?;
    c.app.wake.notify_one();
    let after = outbox::get(&c.app.db, before.id).await?.ok_or_else(|| anyhow::anyhow!("delivery vanished"))?;
    json(&after)
}
