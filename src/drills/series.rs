//! Recurring drill series: one occurrence always materialised beyond the current one.

use super::reminders;
use super::validate::*;
use super::{Drill, Status, store};
use crate::audit::{self, Change};
use crate::error::ApiResult;
use crate::scheduler::cron_expr::CronExpr;
use crate::time::Timestamp;

/// Keeps one materialised occurrence ahead in a recurring series: when fewer than two are still
/// upcoming, the occurrence after the latest is created (with its own record and reminders).
pub(super) async fn ensure_next(
    tx: &mut crate::db::Tx,
    actor: &audit::Actor,
    series: i64,
    now: Timestamp,
) -> ApiResult<()> {
    let upcoming = store::upcoming_in_series(tx, series).await?;
    if upcoming >= 2 {
        return Ok(());
    }
    let Some((latest_id, _)) = store::latest_in_series(tx, series).await? else { return Ok(()) };
    let Some(latest) = store::get_tx(tx, latest_id).await? else { return Ok(()) };
    let Some(expr) = latest.recurrence.as_deref().and_then(|e| CronExpr::parse(e).ok()) else { return Ok(()) };
    let after = latest.postponed_from.unwrap_or(latest.starts_at);
    let Some(next) = expr.next_after(&after.0.with_timezone(&crate::time::LOCAL_TZ)) else { return Ok(()) };
    let start = Timestamp(next.with_timezone(&chrono::Utc));
    let d = Drill {
        id: 0,
        starts_at: start,
        ends_at: Timestamp(start.0 + (latest.ends_at.0 - latest.starts_at.0)),
        status: Status::Planned,
        status_label: Status::Planned.label(),
        postponed_from: None,
        cancel_reason: None,
        actual: None,
        evaluation: None,
        sequence: 0,
        created_at: now,
        updated_at: now,
        ..latest
    };
    let id = store::insert(tx, &d).await?;
    let d = Drill { id, ..d };
    reminders::plan(tx, &d, now).await?;
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: "create",
            entity_type: "drill",
            entity_id: &id.to_string(),
            region_code: Some(&d.region_code),
            before: None,
            after: Some(to_value(&d)?),
        },
    )
    .await?;
    Ok(())
}
