//! The in-app inbox: notifications addressed to a region, read by the users whose jurisdiction
//! covers it; read marks are per user.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::outbox::Delivery;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Writes the inbox rows of many in-app deliveries at once (multi-row inserts).
pub async fn insert_many(tx: &mut Tx, ds: &[&Delivery], now: Timestamp) -> Result<(), sqlx::Error> {
    for chunk in ds.chunks(50) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    chunk.len() * 6 + 1
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO notifications (outbox_id, region_code, kind, title, body, data, created_at) VALUES {}
             ON CONFLICT (outbox_id) DO NOTHING",
            values.join(", ")
        );
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q.bind(d.id).bind(&d.region_code).bind(&d.kind).bind(&d.title).bind(&d.body).bind(&d.data);
            }
            q.bind(now).execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// A notification in a user's inbox.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// Region it is addressed to.
    pub region_code: String,
    /// Kind.
    pub kind: String,
    /// Title (Chinese).
    pub title: String,
    /// Text (Chinese).
    pub body: String,
    /// Data.
    #[schemars(with = "Value")]
    pub data: sqlx::types::Json<Value>,
    /// When it arrived.
    pub created_at: Timestamp,
    /// When this user read it.
    pub read_at: Option<Timestamp>,
}

/// Filters of the inbox.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Only unread (true) or only read (false).
    pub unread: Option<bool>,
    /// Only this region (within the jurisdiction).
    pub region: Option<crate::regions::RegionCode>,
    /// Only this kind (`drill_reminder`, `readiness_finding`, …).
    pub kind: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// The inbox of `user_id` over the jurisdiction bounds, newest first.
pub async fn list(
    db: &Db,
    user_id: i64,
    bounds: (&str, &str),
    q: &InboxQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Notification>, i64), sqlx::Error> {
    const FROM: &str =
        "FROM notifications n LEFT JOIN notification_reads r ON r.notification_id = n.id AND r.user_id = $1
         WHERE n.region_code >= $2 AND n.region_code <= $3 AND ($4 IS NULL OR n.region_code = $4)
           AND ($5 IS NULL OR ($5 = (r.read_at IS NULL))) AND ($6 IS NULL OR n.kind = $6)";
    let sql = format!(
        "SELECT n.id, n.region_code, n.kind, n.title, n.body, n.data, n.created_at, r.read_at {FROM} ORDER BY n.id DESC LIMIT $7 OFFSET $8"
    );
    let count = format!("SELECT COUNT(*) {FROM}");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, Notification>(&sql)
            .bind(user_id)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(q.region.as_ref().map(|r| r.as_str()))
            .bind(q.unread)
            .bind(&q.kind)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(user_id)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(q.region.as_ref().map(|r| r.as_str()))
            .bind(q.unread)
            .bind(&q.kind)
            .fetch_one(p)
            .await?;
        Ok((items, total))
    })
}

/// The region of a notification.
pub async fn region_of(db: &Db, id: i64) -> Result<Option<String>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT region_code FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_optional(p)
        .await)
}

/// Marks a notification read for a user (idempotent).
pub async fn mark_read(db: &Db, id: i64, user_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    with_db!(db, |p| sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id, read_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .execute(p)
    .await
    .map(|_| ()))
}
