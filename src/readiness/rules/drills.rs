//! DRILL_ACTIONS_OVERDUE: corrective actions from drills past their due date and not done.

use chrono::NaiveDate;
use serde_json::json;

use crate::db::Db;
use crate::readiness::context::Context;
use crate::readiness::{Found, Rule};
use crate::with_db;

/// Adds the drill findings.
pub async fn check(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    let rows: Vec<(i64, i64, String, String, String, NaiveDate, String)> = with_db!(db, |p| sqlx::query_as(
        "SELECT a.id, a.drill_id, a.region_code, a.action, a.owner_unit, a.due_on, d.title
         FROM corrective_actions a JOIN drills d ON d.id = a.drill_id
         WHERE a.status = 'open' AND a.due_on < $1"
    )
    .bind(ctx.today)
    .fetch_all(p)
    .await)?;
    for (id, drill_id, region, action, owner, due, title) in rows {
        let days = (ctx.today - due).num_days();
        out.push(Found {
            rule: Rule::DrillActionsOverdue,
            region_code: region.clone(),
            subject_type: "corrective_action",
            subject_id: id.to_string(),
            requirement: format!("due={due}"),
            facts: json!({"drill_id": drill_id, "drill": title, "action": action, "owner_unit": owner, "due_on": due, "days_overdue": days}),
            message: format!("{}：演练「{title}」的整改措施「{action}」（责任单位：{owner}）应于 {due} 前完成，已逾期 {days} 天", ctx.name(&region)),
            action: format!("督促{owner}完成整改，完成后在系统中标记为已完成并由规划员验证"),
        });
    }
    Ok(())
}
