//! Delivery: each channel (and the in-app inbox) is delivered by its own worker, concurrently,
//! so a slow or dead receiver delays only itself. A worker claims a bounded batch of its
//! channel's due deliveries under a lease, sends them with a bounded number in flight, and
//! records every attempt fenced by the lease; failures are retried with exponential backoff and
//! parked `failed` after the configured number of attempts.
//!
//! Delivery guarantee: at least once. A delivery is marked delivered only after the receiver
//! accepted it; a crash between the send and that record makes the delivery claimable again when
//! the lease lapses, and it is sent again with the same `Idempotency-Key`, so a webhook receiver
//! drops the repeat. DingTalk and WeCom robots ignore the key, so for them a repeat is made as
//! unlikely as the design allows: one message in flight per robot, its outcome committed the
//! moment the robot answers, so only a crash in that window of milliseconds repeats a message.

use std::sync::Arc;

use chrono::Duration;
use futures_util::StreamExt;
use tokio::task::JoinSet;

use super::channels::{self, ChannelKind, Target};
use super::outbox::{self, Delivery, Outcome};
use crate::app::AppState;
use crate::scheduler::lease::{self, Lease};
use crate::time::Timestamp;

/// Webhook deliveries in flight at once per channel.
pub const WEBHOOK_IN_FLIGHT: usize = 32;

/// Robot deliveries in flight at once per channel (robots ignore idempotency keys, and allow
/// about 20 messages a minute).
pub const ROBOT_IN_FLIGHT: usize = 1;

/// Longest one HTTP attempt may take (the client's timeout).
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// In-app deliveries recorded per transaction.
const INBOX_BATCH: i64 = 500;

/// Delay before retry number `attempt` (1-based count of failures so far): 30 s, 1 min, 2 min, …
/// capped at one hour.
pub fn backoff(attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 8) - 1;
    Duration::seconds((30i64 << exp).min(3600))
}

/// How many deliveries of a channel one claim takes: as many as can be sent in half a lease even
/// if every one of them times out, so a batch always fits well inside its lease (which is also
/// renewed while the batch runs).
pub fn batch_size(state: &AppState, in_flight: usize) -> i64 {
    let rounds = (state.config.lease_seconds / (2 * SEND_TIMEOUT.as_secs())).max(1);
    (in_flight as u64 * rounds) as i64
}

/// Delivers everything due on every channel, channels concurrently; returns when all are done,
/// with the number of attempts made.
pub async fn deliver_due(state: &Arc<AppState>) -> anyhow::Result<usize> {
    let now = Timestamp(state.clock.now());
    let mut set = JoinSet::new();
    for ch in outbox::channels_due(&state.db, now).await? {
        let st = state.clone();
        set.spawn(async move { deliver_channel(&st, ch).await });
    }
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "a channel's delivery stopped early"),
            Err(e) => tracing::warn!(error = %e, "a channel's delivery task failed"),
        }
    }
    Ok(total)
}

/// Delivers one channel's due deliveries (None: the in-app inbox), batch after batch, until none
/// is due. Returns the number of attempts made.
pub async fn deliver_channel(state: &Arc<AppState>, channel: Option<i64>) -> anyhow::Result<usize> {
    let target = match channel {
        None => None,
        Some(id) => Some(channels::target(&state.db, &state.cipher, id).await?),
    };
    let in_flight = match &target {
        Some(Ok(Target { kind: ChannelKind::Webhook, .. })) => WEBHOOK_IN_FLIGHT,
        _ => ROBOT_IN_FLIGHT,
    };
    let limit = if channel.is_none() { INBOX_BATCH } else { batch_size(state, in_flight) };
    let public_url = state.config.public_url.clone().unwrap_or_else(|| format!("http://{}", state.config.listen));
    let mut total = 0;
    loop {
        if *state.shutdown.borrow() {
            return Ok(total);
        }
        let now = Timestamp(state.clock.now());
        let lease = Lease::take(state, now);
        let turn = state.background.write_turn(&state.db).await;
        let batch = outbox::claim(&state.db, &state.instance_id, now, &lease, channel, limit).await?;
        drop(turn);
        if batch.is_empty() {
            return Ok(total);
        }
        total += batch.len();
        let renewal = lease::renew(state, "outbox", "sending", &lease.token);
        match &target {
            None => {
                let outcomes: Vec<Outcome> = batch
                    .into_iter()
                    .map(|d| Outcome { delivery: d, at: now, result: Ok(None), retry_at: None })
                    .collect();
                save(state, &outcomes, &lease.token, true).await;
            }
            Some(Err(reason)) => {
                let outcomes: Vec<Outcome> =
                    batch.into_iter().map(|d| failed(state, d, now, (None, reason.clone()))).collect();
                save(state, &outcomes, &lease.token, false).await;
            }
            Some(Ok(t)) if in_flight == 1 => {
                // Robots ignore idempotency keys: record each answer the moment it arrives. They
                // are also kept within their per-minute limit: over it, the rest of the batch
                // waits without counting an attempt.
                let mut rest = batch.into_iter();
                while let Some(d) = rest.next() {
                    let limited = match channel {
                        Some(ch) => outbox::rate_limited_until(&state.db, ch, Timestamp(state.clock.now())).await?,
                        None => None,
                    };
                    if let Some(until) = limited {
                        for d in std::iter::once(d).chain(rest.by_ref()) {
                            total -= 1;
                            if let Err(e) = outbox::defer(&state.db, d.id, until, &lease.token).await {
                                tracing::warn!(delivery = d.id, error = %e, "cannot defer a rate-limited delivery; retried after its lease");
                            }
                        }
                        break;
                    }
                    let outcome = attempt(state, t, d, &public_url).await;
                    save(state, std::slice::from_ref(&outcome), &lease.token, false).await;
                }
            }
            Some(Ok(t)) => {
                // Webhooks: the batch in flight together, recorded in one transaction.
                let outcomes: Vec<Outcome> = futures_util::stream::iter(batch)
                    .map(|d| attempt(state, t, d, &public_url))
                    .buffer_unordered(in_flight)
                    .collect()
                    .await;
                save(state, &outcomes, &lease.token, false).await;
            }
        }
        drop(renewal);
    }
}

/// One attempt at a delivery: the send, stamped with the moment it was made.
async fn attempt(state: &AppState, t: &Target, d: Delivery, public_url: &str) -> Outcome {
    let at = Timestamp(state.clock.now());
    match channels::send(&state.http, t, &d, at, public_url).await {
        Ok(code) => Outcome { delivery: d, at, result: Ok(code), retry_at: None },
        Err(e) => failed(state, d, at, e),
    }
}

fn failed(state: &AppState, d: Delivery, at: Timestamp, e: (Option<i64>, String)) -> Outcome {
    let retry_at = crate::scheduler::backoff_at(state, d.attempts + 1, at);
    tracing::warn!(delivery = d.id, attempt = d.attempts + 1, parked = retry_at.is_none(), error = %e.1, "delivery failed");
    Outcome { delivery: d, at, result: Err(e), retry_at }
}

/// Records outcomes in one transaction; if that fails, one by one, so one bad row cannot keep the
/// others unrecorded. What cannot be recorded at all stays claimed until its lease lapses and is
/// then attempted again.
async fn save(state: &AppState, outcomes: &[Outcome], token: &str, inbox: bool) {
    let all = async {
        let _turn = state.background.write_turn(&state.db).await;
        let mut tx = state.db.begin().await?;
        outbox::record(&mut tx, outcomes, token, inbox).await?;
        tx.commit().await
    };
    let Err(e) = all.await else { return };
    if outcomes.len() == 1 && !inbox {
        tracing::warn!(delivery = outcomes[0].delivery.id, error = %e, "cannot record a delivery attempt; retried after its lease");
        return;
    }
    tracing::warn!(error = %e, size = outcomes.len(), "cannot record delivery attempts together; recording one by one");
    for o in outcomes {
        let one = async {
            let _turn = state.background.write_turn(&state.db).await;
            let mut tx = state.db.begin().await?;
            outbox::record(&mut tx, std::slice::from_ref(o), token, inbox).await?;
            tx.commit().await
        };
        if let Err(e) = one.await {
            // An in-app delivery whose inbox row cannot be written is a failed attempt of its own.
            let failed_one = failed(state, o.delivery.clone(), o.at, (None, format!("站内通知写入失败：{e}")));
            let again = async {
                let _turn = state.background.write_turn(&state.db).await;
                let mut tx = state.db.begin().await?;
                outbox::record(&mut tx, std::slice::from_ref(&failed_one), token, false).await?;
                tx.commit().await
            };
            if let Err(e) = again.await {
                tracing::warn!(delivery = o.delivery.id, error = %e, "cannot record a delivery attempt; retried after its lease");
            }
        }
    }
}
