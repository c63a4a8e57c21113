//! The outbox: whatever causes a notification writes it here in the same transaction; the
//! dispatcher delivers it later. One row per (message, channel), unique on its idempotency key.

use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channels;
use crate::db::{Backend, Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// A delivery claimed but not finished within this long belongs to a dead instance and may be
/// claimed again (the receiver drops the duplicate by its idempotency key).
pub const LEASE: Duration = Duration::minutes(5);

/// A message to deliver to a region.
#[derive(Debug, Clone)]
pub struct Message {
    /// Stable key of the message (e.g. `drill:42:reminder:10080`); each channel's delivery key
    /// is derived from it.
    pub key: String,
    /// Region whose inbox and channels receive it.
    pub region_code: String,
    /// Kind: `drill_reminder`, `finding`, `expiry`, …
    pub kind: String,
    /// Chinese title.
    pub title: String,
    /// Chinese text.
    pub body: String,
    /// Structured data for webhooks.
    pub data: Value,
    /// Whether it is sent after its moment (the service was down).
    pub late: bool,
    /// What caused it (type and id), so pending deliveries can be withdrawn.
    pub source: Option<(String, String)>,
}

/// Enqueues a message for the region's in-app inbox and every enabled channel of the region.
/// Returns how many deliveries were newly enqueued (0 when the message was enqueued before).
pub async fn enqueue(tx: &mut Tx, now: Timestamp, m: &Message) -> Result<u64, sqlx::Error> {
    let channel_ids = channels::enabled_ids_tx(tx, &m.region_code).await?;
    let mut targets: Vec<Option<i64>> = vec![None];
    targets.extend(channel_ids.into_iter().map(Some));
    let data = sqlx::types::Json(&m.data);
    let (source_type, source_id) = match &m.source {
        Some((t, i)) => (Some(t.as_str()), Some(i.as_str())),
        None => (None, None),
    };
    let mut n = 0;
    for channel in targets {
        let key = match channel {
            None => format!("{}:inapp", m.key),
            Some(id) => format!("{}:ch{id}", m.key),
        };
        n += with_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO outbox (idempotency_key, channel_id, region_code, kind, title, body, data, late, status, attempts,
                                 next_attempt_at, source_type, source_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10, $11, $9)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&key)
        .bind(channel)
        .bind(&m.region_code)
        .bind(&m.kind)
        .bind(&m.title)
        .bind(&m.body)
        .bind(data)
        .bind(m.late)
        .bind(now)
        .bind(source_type)
        .bind(source_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    Ok(n)
}

/// Withdraws pending deliveries caused by a source (e.g. a cancelled drill's reminders).
pub async fn cancel_source(tx: &mut Tx, source_type: &str, source_id: &str) -> Result<u64, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = 'cancelled' WHERE source_type = $1 AND source_id = $2 AND status = 'pending'"
    )
    .bind(source_type)
    .bind(source_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}

/// The earliest pending delivery attempt.
pub async fn earliest_due(db: &Db) -> Result<Option<Timestamp>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
        .fetch_one(p)
        .await)
}

/// A delivery as the dispatcher and the admin list see it.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Delivery {
    /// Id.
    pub id: i64,
    /// Stable key the receiver can deduplicate on.
    pub idempotency_key: String,
    /// Channel (None: the in-app inbox).
    pub channel_id: Option<i64>,
    /// Region.
    pub region_code: String,
    /// Kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// Data.
    #[schemars(with = "Value")]
    pub data: sqlx::types::Json<Value>,
    /// Sent late?
    pub late: bool,
    /// `pending`, `sending`, `delivered`, `failed` or `cancelled`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Next attempt.
    pub next_attempt_at: Timestamp,
    /// Last error.
    pub last_error: Option<String>,
    /// Enqueued.
    pub created_at: Timestamp,
    /// Delivered.
    pub delivered_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, idempotency_key, channel_id, region_code, kind, title, body, data, late, status, attempts, next_attempt_at, last_error, created_at, delivered_at";

/// Claims up to `limit` due deliveries for `instance` (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
/// two instances never claim the same row).
pub async fn claim(db: &Db, instance: &str, now: Timestamp, limit: i64) -> Result<Vec<Delivery>, sqlx::Error> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE outbox SET status = 'sending', claimed_at = $1, claimed_by = $2
         WHERE id IN (SELECT id FROM outbox
                      WHERE (status = 'pending' AND next_attempt_at <= $1) OR (status = 'sending' AND claimed_at < $3)
                      ORDER BY next_attempt_at, id LIMIT $4 {lock})
         RETURNING {COLUMNS}"
    );
    let stale = Timestamp(now.0 - LEASE);
    with_db!(db, |p| sqlx::query_as::<_, Delivery>(&sql)
        .bind(now)
        .bind(instance)
        .bind(stale)
        .bind(limit)
        .fetch_all(p)
        .await)
}

/// Records an attempt and its outcome in one transaction. `next` is when to retry (None: give
/// up, `failed`).
pub async fn record_attempt(
    tx: &mut Tx,
    d: &Delivery,
    now: Timestamp,
    outcome: Result<Option<i64>, (Option<i64>, String)>,
    next: Option<Timestamp>,
) -> Result<(), sqlx::Error> {
    let attempt = d.attempts + 1;
    let (ok, status_code, error) = match &outcome {
        Ok(code) => (true, *code, None),
        Err((code, e)) => (false, *code, Some(e.clone())),
    };
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, attempt, at, ok, http_status, error) VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(d.id)
    .bind(attempt)
    .bind(now)
    .bind(ok)
    .bind(status_code)
    .bind(&error)
    .execute(c)
    .await
    .map(|_| ()))?;
    let (status, delivered, next_at) = match (ok, next) {
        (true, _) => ("delivered", Some(now), d.next_attempt_at),
        (false, Some(n)) => ("pending", None, n),
        (false, None) => ("failed", None, d.next_attempt_at),
    };
    with_tx!(tx, |c| sqlx::query(
        "UPDATE outbox SET status = $2, attempts = $3, delivered_at = $4, next_attempt_at = $5, last_error = $6,
                claimed_at = NULL, claimed_by = NULL WHERE id = $1",
    )
    .bind(d.id)
    .bind(status)
    .bind(attempt)
    .bind(delivered)
    .bind(next_at)
    .bind(&error)
    .execute(c)
    .await
    .map(|_| ()))
}

/// When a delivery to `channel_id` may next be attempted without exceeding the channel's
/// per-minute limit ([`channels::ChannelKind::per_minute_limit`]); None when it may go now.
/// Counts the attempts of every instance (they are rows), so instances sharing a database share
/// the limit.
pub async fn rate_limited_until(db: &Db, channel_id: i64, now: Timestamp) -> Result<Option<Timestamp>, sqlx::Error> {
    let kind: Option<String> = with_db!(db, |p| sqlx::query_scalar("SELECT kind FROM channels WHERE id = $1")
        .bind(channel_id)
        .fetch_optional(p)
        .await)?;
    let Some(limit) = kind.and_then(|k| channels::ChannelKind::try_from(k).ok()).and_then(|k| k.per_minute_limit())
    else {
        return Ok(None);
    };
    let window = Duration::minutes(1);
    let recent: Vec<Timestamp> = with_db!(db, |p| sqlx::query_scalar(
        "SELECT a.at FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id
         WHERE o.channel_id = $1 AND a.at > $2 ORDER BY a.at DESC LIMIT $3"
    )
    .bind(channel_id)
    .bind(Timestamp(now.0 - window))
    .bind(limit)
    .fetch_all(p)
    .await)?;
    if (recent.len() as i64) < limit {
        return Ok(None);
    }
    // The oldest of the last `limit` attempts leaves the window first.
    Ok(recent.last().map(|oldest| Timestamp(oldest.0 + window)))
}

/// Puts a claimed delivery back in the queue until `at` without counting an attempt (the
/// channel is at its rate limit).
pub async fn defer(db: &Db, id: i64, at: Timestamp) -> Result<(), sqlx::Error> {
    with_db!(db, |p| sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $2, claimed_at = NULL, claimed_by = NULL
         WHERE id = $1 AND status = 'sending'"
    )
    .bind(id)
    .bind(at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Filters of the delivery list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

/// Deliveries in the jurisdiction bounds, newest first.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    q: &OutboxQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Delivery>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR status = $3)";
    let sql = format!("SELECT {COLUMNS} FROM outbox {WHERE} ORDER BY id DESC LIMIT $4 OFFSET $5");
    let count = format!("SELECT COUNT(*) FROM outbox {WHERE}");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, Delivery>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(&q.status)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(bounds.0).bind(bounds.1).bind(&q.status).fetch_one(p).await?;
        Ok((items, total))
    })
}

/// One delivery by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<Delivery>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, Delivery>(&sql).bind(id).fetch_optional(p).await)
}

/// Puts a failed delivery back in the queue (admin retry).
pub async fn retry(tx: &mut Tx, id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let n = with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $2, last_error = NULL WHERE id = $1 AND status = 'failed'"
    )
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(n == 1)
}

/// An attempt, for the delivery detail.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: i64,
    /// When.
    pub at: Timestamp,
    /// Succeeded?
    pub ok: bool,
    /// HTTP status, when there was a response.
    pub http_status: Option<i64>,
    /// Error.
    pub error: Option<String>,
}

/// The attempts of a delivery, in order.
pub async fn attempts(db: &Db, outbox_id: i64) -> Result<Vec<Attempt>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, Attempt>(
        "SELECT attempt, at, ok, http_status, error FROM delivery_attempts WHERE outbox_id = $1 ORDER BY attempt"
    )
    .bind(outbox_id)
    .fetch_all(p)
    .await)
}
