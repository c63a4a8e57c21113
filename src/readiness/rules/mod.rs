//! The rules. Each module checks one area with set-based queries (no query per region) and
//! returns what it found.

pub mod drills;

use super::Found;
use super::context::Context;
use crate::db::Db;

/// Runs every rule.
pub async fn gather(db: &Db, ctx: &Context) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    drills::check(db, ctx, &mut found).await?;
    Ok(found)
}
