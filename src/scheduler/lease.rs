//! Leases: how background work is claimed and fenced.
//!
//! A claim (of a delivery batch, a reminder batch or a job run) writes a fresh random token and
//! an expiry (`lease`, `lease_until`) on the rows it takes. Every later write by the claimant is
//! a [`transition!`](crate::transition!) guarded by that token, so once another instance has
//! taken the rows over (after the expiry), the old claimant's writes match no row: they are
//! refused and logged, never applied. While work is in progress a [`Renewal`] pushes the expiry
//! forward every third of the lease; an instance that dies stops renewing, and its claims are
//! taken over as soon as the lease runs out.

use std::sync::Arc;

use chrono::Duration;

use crate::app::AppState;
use crate::time::Timestamp;
use crate::with_db;

/// A claim's token and expiry.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Random token written on the claimed rows.
    pub token: String,
    /// When the claim lapses unless renewed.
    pub until: Timestamp,
}

impl Lease {
    /// A new lease taken at `now`, lasting the configured lease time.
    pub fn take(state: &AppState, now: Timestamp) -> Lease {
        Lease { token: crate::auth::tokens::random_hex16(), until: Timestamp(now.0 + length(state)) }
    }
}

/// How long a claim lasts without renewal (`YINGJI_LEASE_SECONDS`, default 60 s).
pub fn length(state: &AppState) -> Duration {
    Duration::seconds(state.config.lease_seconds.max(2) as i64)
}

/// Keeps a lease alive while its work runs; stops (and the lease then lapses) when dropped.
pub struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lease `token` on the rows of `table` still in state `active`, every third of the
/// lease length (real time), until the returned guard is dropped. When a renewal finds no row,
/// the work is done or was taken over; either way renewing stops (a taken-over claimant's own
/// writes are then refused by their guard).
pub fn renew(state: &Arc<AppState>, table: &'static str, active: &'static str, token: &str) -> Renewal {
    let state = state.clone();
    let token = token.to_string();
    let period = std::time::Duration::from_secs(state.config.lease_seconds.max(3) / 3);
    Renewal(tokio::spawn(async move {
        let sql = format!("UPDATE {table} SET lease_until = $1 WHERE lease = $2 AND status = $3");
        loop {
            tokio::time::sleep(period).await;
            let until = Timestamp(state.clock.now() + length(&state));
            let n = with_db!(&state.db, |p| sqlx::query(&sql)
                .bind(until)
                .bind(&token)
                .bind(active)
                .execute(p)
                .await
                .map(|r| r.rows_affected()));
            match n {
                Ok(0) => {
                    tracing::debug!(table, lease = %token, "nothing left to renew (done, or taken over)");
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(table, error = %e, "lease renewal failed"),
            }
        }
    }))
}

/// Logs a write refused because the lease had passed to another claimant.
pub fn refused(what: &str, id: i64, token: &str, e: &crate::transition::TransitionError) {
    tracing::warn!(item = what, id, lease = %token, error = %e, "write refused: this instance no longer holds the lease");
}
