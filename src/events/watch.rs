//! The `event_watch` job (every minute): flags first reports (初报) that are overdue and escalates
//! call-ups of events that nobody answered — first a reminder to the team's region, then to the
//! banner. Each step is a transition on its own state column, so it happens once however many
//! instances run the job.

use chrono::Duration;
use serde_json::{Value, json};

use super::{ESCALATION, FIRST_REPORT, banner_of, entry, notify, settings, store};
use crate::app::AppState;
use crate::audit::Actor;
use crate::time::Timestamp;
use crate::{transition, with_db};

/// Runs the watch at `now`; returns counts.
pub async fn run(state: &AppState, now: Timestamp) -> anyhow::Result<Value> {
    let config = settings::load(&state.db).await?;
    let actor = Actor::system();
    let overdue: Vec<i64> = with_db!(&state.db, |p| sqlx::query_scalar(
        "SELECT id FROM events WHERE first_report_state = 'pending' AND first_report_due < $1 ORDER BY id"
    )
    .bind(now)
    .fetch_all(p)
    .await)?;
    let mut flagged = 0;
    for id in overdue {
        let mut tx = state.db.begin().await?;
        match transition!(&mut tx, FIRST_REPORT, id, from ["pending"] => "overdue", set { "updated_at" = now }) {
            Ok(()) => {}
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
        let Some(ev) = store::get_tx(&mut tx, id).await? else { continue };
        let text = format!(
            "{}初报逾期：事件「{}」获知于 {}，初报时限 {}，至今未报",
            ev.tag(),
            ev.title,
            ev.known_at.local_display(),
            ev.first_report_due.local_display()
        );
        entry(&mut tx, &ev, &actor, now, "overdue", &text).await?;
        let regions = vec![ev.region_code.clone(), banner_of(&ev.region_code)];
        notify(&mut tx, &ev, now, "first_report_overdue", "event_report_overdue", &regions, "初报逾期", &text).await?;
        tx.commit().await?;
        flagged += 1;
    }

    // Unanswered call-ups of events: (line, event, team region, requested at, escalation, team).
    type Waiting = (i64, i64, String, Timestamp, String, String);
    let waiting: Vec<Waiting> = with_db!(&state.db, |p| sqlx::query_as(
        "SELECT l.id, l.event_id, c.region_code, c.requested_at, l.escalation, t.name
         FROM event_lines l JOIN callups c ON c.id = l.callup_id JOIN teams t ON t.id = c.team_id
         WHERE l.kind = 'force' AND l.status = 'requested' AND l.escalation IN ('none', 'region')
           AND c.status = 'requested' AND c.requested_at < $1 ORDER BY l.id"
    )
    .bind(Timestamp(now.0 - Duration::minutes(config.escalate_to_region_minutes)))
    .fetch_all(p)
    .await)?;
    let (mut to_region, mut to_banner) = (0, 0);
    for (line_id, event_id, team_region, requested_at, escalation, team) in waiting {
        let waited = now.0 - requested_at.0;
        let step = if waited >= Duration::minutes(config.escalate_to_banner_minutes) {
            "banner"
        } else if escalation == "none" {
            "region"
        } else {
            continue;
        };
        let mut tx = state.db.begin().await?;
        match transition!(&mut tx, ESCALATION, line_id, from ["none", "region"] => step) {
            Ok(()) => {}
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
        let Some(ev) = store::get_tx(&mut tx, event_id).await? else { continue };
        let minutes = waited.num_minutes();
        let (target, text) = if step == "region" {
            to_region += 1;
            (
                team_region.clone(),
                format!("{}调用催办：队伍 {team} 已 {minutes} 分钟未答复事件「{}」的调用", ev.tag(), ev.title),
            )
        } else {
            to_banner += 1;
            (
                banner_of(&ev.region_code),
                format!(
                    "{}调用升级：队伍 {team} 已 {minutes} 分钟未答复事件「{}」的调用，请旗应急管理局协调",
                    ev.tag(),
                    ev.title
                ),
            )
        };
        entry(&mut tx, &ev, &actor, now, "escalation", &text).await?;
        notify(
            &mut tx,
            &ev,
            now,
            &format!("escalation:{line_id}:{step}"),
            "event_callup_escalation",
            &[target],
            "调用未答复",
            &text,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(json!({"first_reports_overdue": flagged, "escalated_to_region": to_region, "escalated_to_banner": to_banner}))
}
