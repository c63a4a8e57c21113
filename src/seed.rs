//! The data shipped with the service, loaded into an empty database on first start.

use std::path::Path;

use crate::audit::Actor;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::plans;
use crate::regions::{self, BANNER_CODE, BANNER_SEAT};
use crate::time::Timestamp;
use crate::with_db;

/// Loads the banner's regions (and sets the seat location) when the region table is empty, then
/// the plan set when the plan table is empty (the shipped files, or those in `plans_dir`).
/// Later modules add their shipped data here.
pub async fn load_shipped(db: &Db, clock: &SharedClock, plans_dir: Option<&Path>) -> anyhow::Result<()> {
    crate::scheduler::schedules::ensure_built_in(db, Timestamp(clock.now())).await?;
    crate::supplies::catalogue::load_shipped(db, Timestamp(clock.now())).await?;
    load_regions(db, clock).await?;
    load_plans(db, clock, plans_dir).await
}

async fn load_plans(db: &Db, clock: &SharedClock, dir: Option<&Path>) -> anyhow::Result<()> {
    let count: i64 = with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM plans").fetch_one(p).await)?;
    if count > 0 {
        return Ok(());
    }
    let parsed = match dir {
        Some(d) => plans::files::check_dir(d),
        None => plans::files::shipped(),
    };
    let files = parsed.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the plan files have errors:\n{}", lines.join("\n"))
    })?;
    match plans::files::import(db, &Actor::system(), Timestamp(clock.now()), &files).await {
        Ok(s) => tracing::info!(created = s.created, "loaded the plan set"),
        Err(e) => {
            // Another instance seeding at the same moment wins the race; its rows are the same.
            let again: i64 = with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM plans").fetch_one(p).await)?;
            if again == 0 {
                anyhow::bail!("loading the plan files failed: {e:?}");
            }
        }
    }
    Ok(())
}

async fn load_regions(db: &Db, clock: &SharedClock) -> anyhow::Result<()> {
    let now = Timestamp(clock.now());
    let count: i64 = with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM regions").fetch_one(p).await)?;
    if count > 0 {
        return Ok(());
    }
    let text = format!(
        "{}\n",
        regions::SHIPPED_DIVISIONS
            .lines()
            .enumerate()
            .map(|(i, l)| match i {
                0 => format!("{l},lon,lat"),
                _ if l.starts_with(BANNER_CODE) => format!("{l},{},{}", BANNER_SEAT.0, BANNER_SEAT.1),
                _ => format!("{l},,"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    );
    match regions::import::import(db, &Actor::system(), now, None, &text).await {
        Ok(s) => tracing::info!(created = s.created, "loaded the banner's regions"),
        // Another instance seeding at the same moment wins the race; its rows are the same.
        Err(e) => {
            let again: i64 = with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM regions").fetch_one(p).await)?;
            if again == 0 {
                anyhow::bail!("loading the shipped regions failed: {e:?}");
            }
        }
    }
    Ok(())
}
