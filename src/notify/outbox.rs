//! The outbox: whatever causes a notification writes it here in the same transaction; the
//! dispatcher delivers it later. One row per (message, channel), unique on its idempotency key.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channels;
use crate::db::{Backend, Db, Tx};
use crate::scheduler::lease::{self, Lease};
use crate::time::Timestamp;
use crate::transition::Lifecycle;
use crate::{with_db, with_tx};

/// The delivery lifecycle: `pending` → `sending` (claimed under a lease) → `delivered`, back to
/// `pending` (a retry after a failed attempt) or `failed` (parked); `pending` → `cancelled`.
pub const DELIVERY: Lifecycle = Lifecycle::new("outbox", "通知投递");

/// Rows per multi-row insert: SQLite binds numbered parameters in time growing with the square of
/// their number, so statements stay small (50 rows of 11 values).
const INSERT_CHUNK: usize = 50;

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
    enqueue_many(tx, now, std::slice::from_ref(m)).await
}

/// Enqueues many messages at once (one channel lookup for all their regions, multi-row inserts). Returns
/// how many deliveries were newly enqueued.
pub async fn enqueue_many(tx: &mut Tx, now: Timestamp, messages: &[Message]) -> Result<u64, sqlx::Error> {
    let mut regions: Vec<&str> = messages.iter().map(|m| m.region_code.as_str()).collect();
    regions.sort_unstable();
    regions.dedup();
    let by_region: HashMap<String, Vec<i64>> = channels::enabled_ids_by_region_tx(tx, &regions).await?;
    let mut rows: Vec<(String, Option<i64>, &Message)> = Vec::new();
    for m in messages {
        rows.push((format!("{}:inapp", m.key), None, m));
        for id in by_region.get(&m.region_code).into_iter().flatten() {
            rows.push((format!("{}:ch{id}", m.key), Some(*id), m));
        }
    }
    let mut n = 0;
    for chunk in rows.chunks(INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 11;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9,
                    b + 10,
                    b + 11,
                    b + 9
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO outbox (idempotency_key, channel_id, region_code, kind, title, body, data, late, status, attempts,
                                 next_attempt_at, source_type, source_id, created_at)
             VALUES {} ON CONFLICT (idempotency_key) DO NOTHING",
            values.join(", ")
        );
        n += with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql);
            for (key, channel, m) in chunk {
                let (source_type, source_id) = match &m.source {
                    Some((t, i)) => (Some(t.as_str()), Some(i.as_str())),
                    None => (None, None),
                };
                q = q
                    .bind(key)
                    .bind(*channel)
                    .bind(&m.region_code)
                    .bind(&m.kind)
                    .bind(&m.title)
                    .bind(&m.body)
                    .bind(sqlx::types::Json(&m.data))
                    .bind(m.late)
                    .bind(now)
                    .bind(source_type)
                    .bind(source_id);
            }
            q.execute(c).await.map(|r| r.rows_affected())
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

/// For every channel with deliveries waiting (None: the in-app inbox), the earliest moment one
/// becomes claimable: a pending delivery's next attempt, or the end of a claim's lease. Two
/// indexed look-ups per channel, whatever the length of the queue.
pub async fn due_per_channel(db: &Db) -> Result<Vec<(Option<i64>, Option<Timestamp>)>, sqlx::Error> {
    let ids: Vec<i64> = with_db!(db, |p| sqlx::query_scalar("SELECT id FROM channels ORDER BY id").fetch_all(p).await)?;
    let mut out = Vec::with_capacity(ids.len() + 1);
    for ch in std::iter::once(None).chain(ids.into_iter().map(Some)) {
        let which = if ch.is_some() { "channel_id = $1" } else { "channel_id IS NULL" };
        let pending = format!("SELECT MIN(next_attempt_at) FROM outbox WHERE {which} AND status = 'pending'");
        let sending = format!(
            "SELECT MIN(COALESCE(lease_until, next_attempt_at)) FROM outbox WHERE {which} AND status = 'sending'"
        );
        let mut best: Option<Timestamp> = None;
        for sql in [&pending, &sending] {
            let t: Option<Timestamp> = with_db!(db, |p| {
                let q = sqlx::query_scalar(sql);
                let q = match ch {
                    Some(id) => q.bind(id),
                    None => q,
                };
                q.fetch_one(p).await
            })?;
            best = match (best, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if best.is_some() {
            out.push((ch, best));
        }
    }
    Ok(out)
}

/// Channels (None: the in-app inbox) with a delivery claimable at `now`.
pub async fn channels_due(db: &Db, now: Timestamp) -> Result<Vec<Option<i64>>, sqlx::Error> {
    Ok(due_per_channel(db).await?.into_iter().filter(|(_, t)| t.is_some_and(|t| t <= now)).map(|(c, _)| c).collect())
}

/// The earliest claimable moment per channel, for the scheduler's sleep.
pub async fn earliest_due_per_channel(db: &Db) -> Result<Vec<(Option<i64>, Option<Timestamp>)>, sqlx::Error> {
    due_per_channel(db).await
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

/// Claims up to `limit` claimable deliveries of one channel (None: the in-app inbox) for
/// `instance` under `lease`: pending ones due at `now`, and ones whose claimant's lease lapsed.
/// The claim is stamped with `now`, the moment of the claim. PostgreSQL: `FOR UPDATE SKIP
/// LOCKED`, so two instances never claim the same row; SQLite: one writer at a time.
pub async fn claim(
    db: &Db,
    instance: &str,
    now: Timestamp,
    lease: &Lease,
    channel: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let which = if channel.is_some() { "channel_id = $6" } else { "channel_id IS NULL" };
    // Two claims, each served by an index: first what a lapsed lease left behind, then pending
    // deliveries in the order they fell due.
    let lapsed = "status = 'sending' AND (lease_until IS NULL OR lease_until < $1)";
    let due = "status = 'pending' AND next_attempt_at <= $1";
    let mut rows: Vec<Delivery> = Vec::new();
    for (cond, order) in [(lapsed, "lease_until"), (due, "next_attempt_at")] {
        let room = limit - rows.len() as i64;
        if room <= 0 {
            break;
        }
        let sql = format!(
            "UPDATE outbox SET status = 'sending', claimed_at = $1, claimed_by = $2, lease = $3, lease_until = $4
             WHERE id IN (SELECT id FROM outbox WHERE {which} AND {cond} ORDER BY {order} LIMIT $5 {lock})
             RETURNING {COLUMNS}"
        );
        let got = with_db!(db, |p| {
            let q = sqlx::query_as::<_, Delivery>(&sql)
                .bind(now)
                .bind(instance)
                .bind(&lease.token)
                .bind(lease.until)
                .bind(room);
            let q = match channel {
                Some(id) => q.bind(id),
                None => q,
            };
            q.fetch_all(p).await
        })?;
        rows.extend(got);
    }
    rows.sort_by_key(|d| (d.next_attempt_at, d.id));
    Ok(rows)
}

/// The outcome of one attempt at a claimed delivery.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The delivery, as claimed.
    pub delivery: Delivery,
    /// When the attempt was made.
    pub at: Timestamp,
    /// Ok(HTTP status) or Err((HTTP status, error)).
    pub result: Result<Option<i64>, (Option<i64>, String)>,
    /// When to try again after a failure (None: give up, `failed`).
    pub retry_at: Option<Timestamp>,
}

/// Records attempts in one transaction, each fenced by the claim's lease: the delivery moves
/// from `sending` to `delivered`, back to `pending` (retry) or to `failed`, and its attempt row
/// is written. With `inbox`, a successful in-app delivery also writes its inbox row. A delivery
/// whose lease passed to another instance is refused and logged, and nothing of it is written.
/// Returns how many outcomes were applied.
pub async fn record(tx: &mut Tx, outcomes: &[Outcome], token: &str, inbox: bool) -> Result<usize, sqlx::Error> {
    let mut applied: Vec<(&Outcome, Option<String>)> = Vec::new();
    let none: Option<String> = None;
    let no_time: Option<Timestamp> = None;
    // Successes: one fenced statement per attempt number (usually one per batch).
    let mut by_attempt: std::collections::BTreeMap<i64, Vec<&Outcome>> = std::collections::BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.result.is_ok()) {
        by_attempt.entry(o.delivery.attempts + 1).or_default().push(o);
    }
    for (attempt, group) in by_attempt {
        let ids: Vec<i64> = group.iter().map(|o| o.delivery.id).collect();
        let at = group.iter().map(|o| o.at).max().unwrap_or_else(|| group[0].at);
        let moved = crate::transition_many!(tx, DELIVERY, &ids, from ["sending"] => "delivered",
            set { "attempts" = attempt, "delivered_at" = Some(at), "last_error" = &none, "lease" = &none,
                  "lease_until" = no_time },
            guard { "lease" = token });
        let moved: std::collections::HashSet<i64> = match moved {
            Ok(m) => m.into_iter().collect(),
            Err(crate::transition::TransitionError::Db(e)) => return Err(e),
            Err(e) => return Err(sqlx::Error::Protocol(e.to_string())),
        };
        let mut delivered = Vec::new();
        for o in group {
            if moved.contains(&o.delivery.id) {
                delivered.push(&o.delivery);
                applied.push((o, None));
            } else {
                tracing::warn!(delivery = o.delivery.id, lease = %token, "write refused: this instance no longer holds the lease");
            }
        }
        if inbox {
            super::inbox::insert_many(tx, &delivered, at).await?;
        }
    }
    // Failures: one fenced transition each (their next try differs).
    for o in outcomes.iter().filter(|o| o.result.is_err()) {
        let d = &o.delivery;
        let attempt = d.attempts + 1;
        let error = o.result.as_ref().err().map(|(_, e)| e.clone());
        let (status, next_at) = match o.retry_at {
            Some(n) => ("pending", n),
            None => ("failed", d.next_attempt_at),
        };
        let moved = crate::transition!(tx, DELIVERY, d.id, from ["sending"] => status,
            set { "attempts" = attempt, "next_attempt_at" = next_at, "last_error" = &error, "lease" = &none,
                  "lease_until" = no_time },
            guard { "lease" = token });
        match moved {
            Ok(()) => applied.push((o, error)),
            Err(crate::transition::TransitionError::Db(e)) => return Err(e),
            Err(e) => lease::refused("delivery", d.id, token, &e),
        }
    }
    for chunk in applied.chunks(INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 6;
                format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
            })
            .collect();
        let sql = format!(
            "INSERT INTO delivery_attempts (outbox_id, attempt, at, ok, http_status, error) VALUES {}
             ON CONFLICT (outbox_id, attempt) DO NOTHING",
            values.join(", ")
        );
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql);
            for (o, error) in chunk {
                let code = match &o.result {
                    Ok(c) => *c,
                    Err((c, _)) => *c,
                };
                q = q
                    .bind(o.delivery.id)
                    .bind(o.delivery.attempts + 1)
                    .bind(o.at)
                    .bind(o.result.is_ok())
                    .bind(code)
                    .bind(error);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(applied.len())
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
    let window = chrono::Duration::minutes(1);
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
/// channel is at its rate limit), fenced by the claim's lease like every other write of the
/// claimant.
pub async fn defer(db: &Db, id: i64, at: Timestamp, token: &str) -> Result<(), crate::transition::TransitionError> {
    let mut tx = db.begin().await?;
    let none: Option<String> = None;
    let no_time: Option<Timestamp> = None;
    crate::transition!(&mut tx, DELIVERY, id, from ["sending"] => "pending",
        set { "next_attempt_at" = at, "claimed_at" = no_time, "claimed_by" = &none, "lease" = &none,
              "lease_until" = no_time },
        guard { "lease" = token })?;
    tx.commit().await?;
    Ok(())
}

/// Filters of the delivery list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
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

/// Puts a failed delivery back in the queue (admin retry); false when it is not `failed`.
pub async fn retry(tx: &mut Tx, id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let none: Option<String> = None;
    match crate::transition!(tx, DELIVERY, id, from ["failed"] => "pending",
        set { "next_attempt_at" = now, "last_error" = &none })
    {
        Ok(()) => Ok(true),
        Err(crate::transition::TransitionError::Db(e)) => Err(e),
        Err(_) => Ok(false),
    }
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
