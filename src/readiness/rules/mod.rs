//! The rules. Each module checks one area with set-based queries (no query per region) and
//! returns what it found.

pub mod drills;
pub mod forces;
pub mod plans;
pub mod supplies;

use super::Found;
use super::context::Context;
use crate::db::Db;
use crate::plans::calendar::Calendar;

/// Runs every rule, recording progress after each group.
pub async fn gather(
    db: &Db,
    ctx: &Context,
    calendar: &Calendar,
    progress: &super::engine::Progress,
) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    let current = crate::plans::store::current_plans(db, ("000000000000", "999999999999")).await?;
    plans::check(db, ctx, calendar, &current, &mut found).await?;
    progress.step("检查演练").await;
    drills::check(db, ctx, &mut found).await?;
    progress.step("检查应急力量").await;
    forces::check(db, ctx, &current, &mut found).await?;
    progress.step("检查应急物资").await;
    supplies::check(db, ctx, &current, &mut found).await?;
    progress.step("写入检查结果").await;
    Ok(found)
}
