//! `Idempotency-Key` on movement-creating POSTs: the same key (per user) twice creates one
//! movement; the second request gets the first one's response. The key row is inserted at the
//! start of the same transaction as the movement, so a concurrent retry waits for the first
//! (PostgreSQL: on the unique index; SQLite: on the write lock) and then replays it.
//!
//! A key is scoped to (user, method, route template) and hashed with the path parameters and the
//! body: the same key on another route (`ship`, then `receive`) or with another body is rejected
//! with 422, never replayed. A key is remembered for [`Config::idempotency_ttl_hours`]
//! (default [`DEFAULT_TTL_HOURS`]); after that it is treated as new, and the hourly
//! `idempotency_purge` job deletes it.
//!
//! [`Config::idempotency_ttl_hours`]: crate::app::Config::idempotency_ttl_hours

use std::future::Future;

use serde_json::Value;
use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::db::{Db, Tx, is_unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::json_status;
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// How long a key is remembered by default (hours).
pub const DEFAULT_TTL_HOURS: i64 = 24;

/// A key presented by a request, with its scope and the hash of what it asked.
#[derive(Debug, Clone)]
pub struct Claim {
    key: String,
    scope: String,
    hash: String,
}

/// Reads the header; None when absent. The key is scoped to the calling user, the method and the
/// route template; the hash covers those, the path parameters and the body.
pub fn claim(c: &Ctx) -> ApiResult<Option<Claim>> {
    let Some(v) = c.headers.get(HEADER) else { return Ok(None) };
    let key = v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200).ok_or_else(|| {
        ApiError::BadRequest {
            detail: "Idempotency-Key 应为 1 到 200 个可见 ASCII 字符".into(), errors: vec![]
        }
    })?;
    let scope = format!("{} {}", c.method, c.route);
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    for (name, value) in &c.params {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        h.update([0]);
    }
    h.update(&c.body);
    let hash = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(Claim { key: format!("{}:{key}", c.principal()?.user_id), scope, hash }))
}

/// The oldest creation time of a key still remembered at `now`.
fn cutoff(c: &Ctx) -> Timestamp {
    Timestamp(c.now().0 - chrono::Duration::hours(c.app.config.idempotency_ttl_hours))
}

async fn stored(db: &Db, claim: &Claim, cutoff: Timestamp) -> ApiResult<Option<Response>> {
    let row: Option<(String, String, i64, String)> = with_db!(db, |p| sqlx::query_as(
        "SELECT scope, request_hash, status, response FROM idempotency_keys WHERE key = $1 AND created_at >= $2"
    )
    .bind(&claim.key)
    .bind(cutoff)
    .fetch_optional(p)
    .await)?;
    let Some((scope, hash, status, response)) = row else { return Ok(None) };
    if scope != claim.scope {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("此 Idempotency-Key 已用于另一个操作（{scope}），不能用于 {}；请为新请求使用新的键", claim.scope),
        ));
    }
    if hash != claim.hash {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "此 Idempotency-Key 已用于另一个不同的请求；请为新请求使用新的键",
        ));
    }
    let mut r = Response::new(response.into());
    *r.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Some(r))
}

/// Runs a movement-creating change under the request's idempotency key (if any): `f` gets the
/// open transaction and returns it with the response body; the response is stored with the key
/// in the same transaction.
pub async fn run<F, Fut>(c: &Ctx, status: StatusCode, f: F) -> ApiResult<Response>
where
    F: FnOnce(Tx) -> Fut,
    Fut: Future<Output = ApiResult<(Tx, Value)>>,
{
    let claim = claim(c)?;
    let cutoff = cutoff(c);
    if let Some(cl) = &claim
        && let Some(r) = stored(&c.app.db, cl, cutoff).await?
    {
        return Ok(r);
    }
    let mut tx = c.app.db.begin().await?;
    if let Some(cl) = &claim {
        let inserted = with_tx!(&mut tx, |conn| {
            // An expired use of the same key is forgotten first.
            sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND created_at < $2")
                .bind(&cl.key)
                .bind(cutoff)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO idempotency_keys (key, scope, request_hash, status, response, created_at) VALUES ($1, $2, $3, 0, '', $4)",
            )
            .bind(&cl.key)
            .bind(&cl.scope)
            .bind(&cl.hash)
            .bind(c.now())
            .execute(conn)
            .await
            .map(|_| ())
        });
        match inserted {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                return stored(&c.app.db, cl, cutoff)
                    .await?
                    .ok_or_else(|| ApiError::Conflict("同一 Idempotency-Key 的请求正在处理，请稍后重试".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (mut tx, value) = f(tx).await?;
    if let Some(cl) = &claim {
        let body = serde_json::to_string(&value).map_err(|e| ApiError::Internal(e.into()))?;
        with_tx!(&mut tx, |conn| sqlx::query("UPDATE idempotency_keys SET status = $2, response = $3 WHERE key = $1")
            .bind(&cl.key)
            .bind(status.as_u16() as i64)
            .bind(&body)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    tx.commit().await?;
    json_status(status, &value)
}

/// The `idempotency_purge` job: deletes the keys that expired by `now`, and the change log's rows
/// no in-process index can still need (`crate::change_feed::prune`: indexes prune it when they
/// build, this keeps it bounded on an instance that never builds one); returns the counts.
pub async fn purge_expired(state: &crate::app::AppState, now: Timestamp) -> Result<Value, sqlx::Error> {
    let before = Timestamp(now.0 - chrono::Duration::hours(state.config.idempotency_ttl_hours));
    let deleted = purge(&state.db, before).await?;
    let pruned = crate::change_feed::prune(&state.db).await?;
    Ok(serde_json::json!({ "keys_purged": deleted, "change_log_pruned": pruned }))
}

/// Deletes keys older than `before` (housekeeping; keys are only needed while clients retry).
pub async fn purge(db: &Db, before: Timestamp) -> Result<u64, sqlx::Error> {
    with_db!(db, |p| sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
