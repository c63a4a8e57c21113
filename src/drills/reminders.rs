//! Drill reminders: one row per (drill, start, offset), planned when a drill is scheduled or
//! moved, enqueued to the outbox exactly once at its moment (or late, once, after downtime if the
//! drill is still ahead), withdrawn when the drill is cancelled.

use serde_json::json;

use super::{Drill, store};
use crate::db::{Db, Tx};
use crate::notify::outbox::{self, Message};
use crate::scheduler::GRACE;
use crate::time::Timestamp;
use crate::{with_db, with_tx};

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

/// The earliest pending reminder.
pub async fn earliest_due(db: &Db) -> Result<Option<Timestamp>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT MIN(due_at) FROM drill_reminders WHERE status = 'pending'")
        .fetch_one(p)
        .await)
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
    /// `pending`, `sent`, `skipped` or `cancelled`.
    pub status: String,
    /// Sent late (after downtime)?
    pub late: bool,
    /// When it was sent, skipped or cancelled.
    pub processed_at: Option<Timestamp>,
    /// Why it was skipped or cancelled.
    pub note: Option<String>,
}

/// A drill's reminders.
pub async fn list(db: &Db, drill_id: i64) -> Result<Vec<Reminder>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, Reminder>(
        "SELECT id, starts_at, offset_minutes, due_at, status, late, processed_at, note FROM drill_reminders
         WHERE drill_id = $1 ORDER BY due_at, id"
    )
    .bind(drill_id)
    .fetch_all(p)
    .await)
}

/// Enqueues every reminder due at `now`. Each is taken by a conditional update, so across
/// instances only one enqueues it; the outbox key is a second guard. Returns (sent, skipped).
pub async fn enqueue_due(db: &Db, now: Timestamp) -> anyhow::Result<(u64, u64)> {
    let due: Vec<(i64, i64, i64, Timestamp)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT id, drill_id, offset_minutes, due_at FROM drill_reminders WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT 500"
    )
    .bind(now)
    .fetch_all(p)
    .await
    })?;
    let mut ids: Vec<i64> = due.iter().map(|r| r.1).collect();
    ids.sort_unstable();
    ids.dedup();
    let drills = store::get_many(db, &ids).await?;
    let (mut sent, mut skipped) = (0, 0);
    for (id, drill_id, offset, due_at) in due {
        let Some(d) = drills.get(&drill_id) else { continue };
        let mut tx = db.begin().await?;
        let ahead = d.status.is_upcoming() && d.starts_at > now;
        let late = now.0 - due_at.0 > GRACE;
        let (status, note) = if ahead {
            ("sent", late.then_some("服务停机，恢复后补发"))
        } else {
            ("skipped", Some("提醒时演练已开始或已结束"))
        };
        let taken = with_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE drill_reminders SET status = $2, late = $3, processed_at = $4, note = $5 WHERE id = $1 AND status = 'pending'"
        )
        .bind(id)
        .bind(status)
        .bind(late)
        .bind(now)
        .bind(note)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        if taken == 0 {
            continue;
        }
        if !ahead {
            tracing::info!(drill = drill_id, offset, "reminder skipped: the drill is no longer ahead");
            tx.commit().await?;
            skipped += 1;
            continue;
        }
        for region in recipients(&mut tx, d).await? {
            let m = message(d, offset, late, &region);
            outbox::enqueue(&mut tx, now, &m).await?;
        }
        tx.commit().await?;
        sent += 1;
    }
    Ok((sent, skipped))
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
