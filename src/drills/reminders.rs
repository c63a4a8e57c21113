//! Drill reminders: one row per (drill, start, offset), planned when a drill is scheduled or
//! moved, enqueued to the outbox exactly once at its moment (or late, once, after downtime if the
//! drill is still ahead), withdrawn when the drill is cancelled.
//!
//! Processing claims due reminders in bounded batches under a lease and writes each one's
//! outcome with a [`transition!`](crate::transition!) guarded by that lease, in one transaction
//! per batch. When a batch fails, its reminders are processed one by one, so a reminder that
//! cannot be processed (its drill unreadable, say) records its own error and next try, and is
//! parked `failed` after the configured attempts, while every other reminder goes out.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::{Drill, store};
use crate::app::AppState;
use crate::db::{Backend, Db, Tx};
use crate::notify::outbox::{self, Message};
use crate::scheduler::GRACE;
use crate::scheduler::lease::{self, Lease};
use crate::time::Timestamp;
use crate::transition::{Lifecycle, TransitionError};
use crate::{with_db, with_tx};

/// The reminder lifecycle: `pending` → `sent`, `skipped`, `cancelled`, or `failed` (parked after
/// repeated failures).
pub const REMINDER: Lifecycle = Lifecycle::new("drill_reminders", "演练提醒");

/// Reminders claimed per batch: one transaction's worth, done in well under a second, far inside
/// any lease.
const BATCH: i64 = 250;

/// "7 天", "1 天", "2 小时", "30 分钟".
pub fn describe_offset(minutes: i64) -> String {
    if minutes % (24 * 60) == 0 {
        format!("{} 天", minutes / (24 * 60))
    } else if minutes % 60 == 0 {
        format!("{} 小时", minutes / 60)
    } else {
        format!("{minutes} 分钟")
    }
}

/// (Re)plans a drill's reminders: pending reminders for another start are cancelled; for an
/// upcoming drill, one reminder per offset is created. A reminder whose moment had already passed
/// when the drill was scheduled is recorded as skipped rather than sent.
pub async fn plan(tx: &mut Tx, d: &Drill, now: Timestamp) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE drill_reminders SET status = 'cancelled', processed_at = $3, note = '演练时间已变更'
         WHERE drill_id = $1 AND status = 'pending' AND starts_at <> $2"
    )
    .bind(d.id)
    .bind(d.starts_at)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))?;
    if !d.status.is_upcoming() {
        return cancel(tx, d.id, now).await;
    }
    for off in &d.reminder_offsets {
        let due = Timestamp(d.starts_at.0 - chrono::Duration::minutes(*off));
        let (status, note) =
            if due <= now { ("skipped", Some("安排演练时提醒时间已过")) } else { ("pending", None) };
        with_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO drill_reminders (drill_id, starts_at, offset_minutes, due_at, status, late, processed_at, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (drill_id, starts_at, offset_minutes) DO NOTHING"
        )
        .bind(d.id)
        .bind(d.starts_at)
        .bind(*off)
        .bind(due)
        .bind(status)
        .bind(false)
        .bind((status == "skipped").then_some(now))
        .bind(note)
        .execute(c)
        .await
        .map(|_| ())
        })?;
    }
    // Offsets removed from the drill: their pending reminders go.
    let pending: Vec<(i64, i64)> = with_tx!(tx, |c| sqlx::query_as(
        "SELECT id, offset_minutes FROM drill_reminders WHERE drill_id = $1 AND status = 'pending'"
    )
    .bind(d.id)
    .fetch_all(c)
    .await)?;
    for (id, off) in pending {
        if !d.reminder_offsets.contains(&off) {
            with_tx!(tx, |c| {
                sqlx::query("UPDATE drill_reminders SET status = 'cancelled', processed_at = $2, note = '提醒设置已变更' WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(c)
                .await
                .map(|_| ())
            })?;
        }
    }
    Ok(())
}

/// Withdraws a drill's pending reminders and any of their deliveries not yet sent.
pub async fn cancel(tx: &mut Tx, drill_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE drill_reminders SET status = 'cancelled', processed_at = $2, note = '演练已取消' WHERE drill_id = $1 AND status = 'pending'"
    )
    .bind(drill_id)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ())
    })?;
    outbox::cancel_source(tx, "drill", &drill_id.to_string()).await?;
    Ok(())
}

/// The earliest moment a pending reminder becomes claimable: its due time or next try, or the
/// end of the lease it is claimed under. Three indexed look-ups, whatever the backlog.
pub async fn earliest_due(db: &Db) -> Result<Option<Timestamp>, sqlx::Error> {
    let mut best: Option<Timestamp> = None;
    for sql in [
        "SELECT MIN(due_at) FROM drill_reminders WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at IS NULL",
        "SELECT MIN(next_attempt_at) FROM drill_reminders WHERE status = 'pending' AND next_attempt_at IS NOT NULL AND lease_until IS NULL",
        "SELECT MIN(lease_until) FROM drill_reminders WHERE status = 'pending' AND lease_until IS NOT NULL",
    ] {
        let t: Option<Timestamp> = with_db!(db, |p| sqlx::query_scalar(sql).fetch_one(p).await)?;
        best = match (best, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(best)
}

/// A reminder as listed for a drill.
#[derive(Debug, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Reminder {
    /// Id.
    pub id: i64,
    /// The start it reminds of.
    pub starts_at: Timestamp,
    /// Minutes before the start.
    pub offset_minutes: i64,
    /// When it is due.
    pub due_at: Timestamp,
    /// `pending`, `sent`, `skipped`, `cancelled` or `failed` (parked after repeated failures).
    pub status: String,
    /// Sent late (after downtime)?
    pub late: bool,
    /// When it was sent, skipped or cancelled.
    pub processed_at: Option<Timestamp>,
    /// Why it was skipped or cancelled.
    pub note: Option<String>,
    /// Failed processing attempts.
    pub attempts: i64,
    /// The last processing error.
    pub last_error: Option<String>,
}

/// A drill's reminders.
pub async fn list(db: &Db, drill_id: i64) -> Result<Vec<Reminder>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as::<_, Reminder>(
        "SELECT id, starts_at, offset_minutes, due_at, status, late, processed_at, note, attempts, last_error FROM drill_reminders
         WHERE drill_id = $1 ORDER BY due_at, id"
    )
    .bind(drill_id)
    .fetch_all(p)
    .await
    })
}

/// What a processing run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Reminders enqueued to the outbox.
    pub sent: u64,
    /// Reminders skipped (the drill no longer ahead).
    pub skipped: u64,
    /// Reminders whose processing failed this time (retried later or parked).
    pub failed: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.failed += o.failed;
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Claimed {
    id: i64,
    drill_id: i64,
    offset_minutes: i64,
    due_at: Timestamp,
    attempts: i64,
}

/// Claims up to `limit` due reminders under `lease` (pending, due, past any retry time, and not
/// under a live lease).
async fn claim(
    db: &Db,
    instance: &str,
    now: Timestamp,
    lease: &Lease,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE drill_reminders SET lease = $2, lease_until = $3, claimed_by = $4
         WHERE id IN (SELECT id FROM drill_reminders
                      WHERE status = 'pending' AND due_at <= $1
                        AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
                        AND (lease_until IS NULL OR lease_until < $1)
                      ORDER BY due_at LIMIT $5 {lock})
         RETURNING id, drill_id, offset_minutes, due_at, attempts"
    );
    let mut rows = with_db!(db, |p| sqlx::query_as::<_, Claimed>(&sql)
        .bind(now)
        .bind(&lease.token)
        .bind(lease.until)
        .bind(instance)
        .bind(limit)
        .fetch_all(p)
        .await)?;
    rows.sort_by_key(|r| (r.due_at, r.id));
    Ok(rows)
}

/// Processes every due reminder, batch by batch, until none is due. Returns what it did; only a
/// failure to claim (the database unreachable) is an error.
pub async fn process_due(state: &Arc<AppState>) -> anyhow::Result<Counts> {
    let mut total = Counts::default();
    let mut batches = 0u64;
    loop {
        if *state.shutdown.borrow() {
            break;
        }
        let now = Timestamp(state.clock.now());
        let lease = Lease::take(state, now);
        let turn = state.background.write_turn(&state.db).await;
        let batch = claim(&state.db, &state.instance_id, now, &lease, BATCH).await?;
        drop(turn);
        if batch.is_empty() {
            break;
        }
        let renewal = lease::renew(state, "drill_reminders", "pending", &lease.token);
        let counts = match process_batch(state, &batch, &lease.token, now).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), size = batch.len(), "reminder batch failed; processing its reminders one by one");
                let mut c = Counts::default();
                for r in &batch {
                    match process_batch(state, std::slice::from_ref(r), &lease.token, now).await {
                        Ok(one) => c += one,
                        Err(e) => {
                            c.failed += 1;
                            record_failure(state, r, &lease.token, now, &format!("{e:#}")).await;
                        }
                    }
                }
                c
            }
        };
        drop(renewal);
        total += counts;
        batches += 1;
        // Wake the loop so the channels' workers start (or restart, if they drained the queue
        // before this batch); wake-ups coalesce.
        if counts.sent > 0 {
            state.wake.notify_one();
        }
    }
    if batches > 0 {
        state.wake.notify_one();
    }
    Ok(total)
}

/// Processes claimed reminders in one transaction: each is moved (fenced by the lease) and its
/// messages are enqueued. Any error rolls the whole batch back.
async fn process_batch(state: &AppState, batch: &[Claimed], token: &str, now: Timestamp) -> anyhow::Result<Counts> {
    let db = &state.db;
    let mut ids: Vec<i64> = batch.iter().map(|r| r.drill_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let drills = store::get_many(db, &ids).await?;
    let _turn = state.background.write_turn(db).await;
    let mut tx = db.begin().await?;
    let mut counts = Counts::default();
    let mut messages = Vec::new();
    let mut regions: HashMap<i64, Vec<String>> = HashMap::new();
    let no_lease: Option<String> = None;
    let no_time: Option<Timestamp> = None;
    // Decide each reminder's outcome, then move each group of equal outcomes in one fenced
    // statement.
    type Outcome = (&'static str, bool, Option<&'static str>);
    let mut groups: std::collections::BTreeMap<Outcome, Vec<&Claimed>> = std::collections::BTreeMap::new();
    for r in batch {
        let d = drills.get(&r.drill_id).ok_or_else(|| anyhow::anyhow!("演练 {} 不存在", r.drill_id))?;
        let ahead = d.status.is_upcoming() && d.starts_at > now;
        let late = now.0 - r.due_at.0 > GRACE;
        let outcome = if ahead {
            ("sent", late, late.then_some("服务停机，恢复后补发"))
        } else {
            ("skipped", late, Some("提醒时演练已开始或已结束"))
        };
        groups.entry(outcome).or_default().push(r);
    }
    for ((status, late, note), group) in groups {
        let ids: Vec<i64> = group.iter().map(|r| r.id).collect();
        let moved = crate::transition_many!(&mut tx, REMINDER, &ids, from ["pending"] => status,
            set { "late" = late, "processed_at" = now, "note" = note, "lease" = &no_lease, "lease_until" = no_time },
            guard { "lease" = token })?;
        let moved: std::collections::HashSet<i64> = moved.into_iter().collect();
        for r in group {
            if !moved.contains(&r.id) {
                // Cancelled meanwhile, or taken over by another instance after our lease lapsed.
                tracing::warn!(reminder = r.id, lease = %token, "write refused: the reminder is no longer pending under this lease");
                continue;
            }
            let d = &drills[&r.drill_id];
            if status == "skipped" {
                tracing::info!(
                    drill = d.id,
                    offset = r.offset_minutes,
                    "reminder skipped: the drill is no longer ahead"
                );
                counts.skipped += 1;
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = regions.entry(d.id) {
                e.insert(recipients(&mut tx, d).await?);
            }
            for region in &regions[&d.id] {
                messages.push(message(d, r.offset_minutes, late, region));
            }
            counts.sent += 1;
        }
    }
    outbox::enqueue_many(&mut tx, now, &messages).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Records a reminder's failure (fenced by the lease): its error, attempt count and next try
/// with backoff, or `failed` when the attempts are used up. Logged, never propagated.
async fn record_failure(state: &AppState, r: &Claimed, token: &str, now: Timestamp, error: &str) {
    let attempts = r.attempts + 1;
    let retry = crate::scheduler::backoff_at(state, attempts, now);
    let (to, processed, note) = match retry {
        Some(_) => ("pending", None, None),
        None => ("failed", Some(now), Some("多次处理失败，已停止重试；修复后由管理员重新安排")),
    };
    tracing::warn!(
        reminder = r.id,
        drill = r.drill_id,
        attempt = attempts,
        parked = retry.is_none(),
        error,
        "reminder failed"
    );
    let no_lease: Option<String> = None;
    let no_time: Option<Timestamp> = None;
    let result: Result<(), TransitionError> = async {
        let _turn = state.background.write_turn(&state.db).await;
        let mut tx = state.db.begin().await?;
        crate::transition!(&mut tx, REMINDER, r.id, from ["pending"] => to,
            set { "attempts" = attempts, "next_attempt_at" = retry, "last_error" = error, "processed_at" = processed,
                  "note" = note, "lease" = &no_lease, "lease_until" = no_time },
            guard { "lease" = token })?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {}
        Err(e) if e.is_conflict() => lease::refused("reminder", r.id, token, &e),
        Err(e) => {
            tracing::warn!(reminder = r.id, error = %e, "cannot record the reminder's failure; it is retried when its lease lapses")
        }
    }
}

/// Who is reminded: the organising region and the home regions of the participating teams.
async fn recipients(tx: &mut Tx, d: &Drill) -> Result<Vec<String>, sqlx::Error> {
    let mut regions = vec![d.region_code.clone()];
    for (_, region) in store::team_regions(tx, &d.team_codes).await? {
        if !regions.contains(&region) {
            regions.push(region);
        }
    }
    Ok(regions)
}

fn message(d: &Drill, offset: i64, late: bool, region: &str) -> Message {
    let when = d.starts_at.local_display();
    let body = format!(
        "「{}」（{}，{}）将于 {when} 在{}开始，组织单位：{}。距开始约 {}{}。",
        d.title,
        d.form.label(),
        d.scope.label(),
        d.place_name,
        d.organiser_unit,
        describe_offset(offset),
        if late { "（服务恢复后补发）" } else { "" }
    );
    Message {
        key: format!("drill:{}:{}:{offset}:{region}", d.id, d.starts_at.0.timestamp()),
        region_code: region.to_string(),
        kind: "drill_reminder".into(),
        title: format!("演练提醒：{}", d.title),
        body,
        data: json!({"drill_id": d.id, "starts_at": d.starts_at, "offset_minutes": offset, "place": d.place_name, "teams": d.team_codes}),
        late,
        source: Some(("drill".into(), d.id.to_string())),
    }
}
