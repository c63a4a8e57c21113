//! The data shipped with the service, loaded into an empty database on first start.

use crate::audit::Actor;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::regions::{self, BANNER_CODE, BANNER_SEAT};
use crate::time::Timestamp;
use crate::with_db;

/// Loads the banner's regions (and sets the seat location) when the region table is empty.
/// Later modules add their shipped data here.
pub async fn load_shipped(db: &Db, clock: &SharedClock) -> anyhow::Result<()> {
    crate::supplies::catalogue::load_shipped(db, Timestamp(clock.now())).await?;
    let count: i64 = with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM regions").fetch_one(p).await)?;
    if count > 0 {
        return Ok(());
    }
    let now = Timestamp(clock.now());
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
