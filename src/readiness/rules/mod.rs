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

/// Runs every rule.
pub async fn gather(db: &Db, ctx: &Context, calendar: &Calendar) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    let current = crate::plans::store::current_plans(db, ("000000000000", "999999999999")).await?;
    plans::check(db, ctx, calendar, &current, &mut found).await?;
    drills::check(db, ctx, &mut found).await?;
    forces::check(db, ctx, &current, &mut found).await?;
    supplies::check(db, ctx, &current, &mut found).await?;
    Ok(found)
}
