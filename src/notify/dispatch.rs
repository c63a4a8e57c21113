//! Delivery: claims due outbox rows, sends them, records every attempt, retries with exponential
//! backoff and gives up after the configured number of attempts.

use chrono::Duration;

use super::{channels, inbox, outbox};
use crate::app::AppState;
use crate::time::Timestamp;

/// Deliveries handled per pass.
const BATCH: i64 = 50;

/// Delay before retry number `attempt` (1-based count of failures so far): 30 s, 1 min, 2 min, …
/// capped at one hour.
pub fn backoff(attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 8) - 1;
    Duration::seconds((30i64 << exp).min(3600))
}

/// Delivers everything due at `now`. Returns how many deliveries were attempted.
pub async fn deliver_due(state: &AppState, now: Timestamp) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let batch = outbox::claim(&state.db, &state.instance_id, now, BATCH).await?;
        if batch.is_empty() {
            return Ok(total);
        }
        total += batch.len();
        for d in batch {
            let mut tx = state.db.begin().await?;
            if d.channel_id.is_none() {
                // The in-app inbox: the notification row and the delivered mark commit together.
                inbox::insert(&mut tx, &d, now).await?;
                outbox::record_attempt(&mut tx, &d, now, Ok(None), None).await?;
                tx.commit().await?;
                continue;
            }
            drop(tx);
            // Channels are kept within their per-minute limit (DingTalk, WeCom): a delivery over
            // it waits, without counting an attempt.
            if let Some(channel) = d.channel_id
                && let Some(until) = outbox::rate_limited_until(&state.db, channel, now).await?
            {
                outbox::defer(&state.db, d.id, until).await?;
                total -= 1;
                continue;
            }
            let outcome = channels::send(&state.db, &state.cipher, &state.http, &d, now).await;
            let next = match &outcome {
                Ok(_) => None,
                Err(_) if d.attempts + 1 >= state.config.max_delivery_attempts => None,
                Err(_) => Some(Timestamp(now.0 + backoff(d.attempts + 1))),
            };
            if let Err((_, e)) = &outcome {
                tracing::warn!(delivery = d.id, attempt = d.attempts + 1, error = %e, "delivery failed");
            }
            let mut tx = state.db.begin().await?;
            outbox::record_attempt(&mut tx, &d, now, outcome, next).await?;
            tx.commit().await?;
        }
    }
}
