//! Readiness storage: configuration here; runs and their leases ([`runs`]), the findings a run
//! writes ([`findings`]), findings as the API lists them ([`list`]) and scores ([`scores`]).

mod findings;
mod list;
mod runs;
mod scores;

pub use findings::*;
pub use list::*;
pub use runs::*;
pub use scores::*;

use sqlx::types::Json;

use super::Config;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// The stored configuration, or the defaults.
pub async fn config(db: &Db) -> Result<Config, sqlx::Error> {
    let row: Option<Json<Config>> =
        with_db!(db, |p| sqlx::query_scalar("SELECT config FROM readiness_config WHERE id = 1")
            .fetch_optional(p)
            .await)?;
    Ok(row.map(|j| j.0).unwrap_or_default())
}

/// Stores the configuration.
pub async fn save_config(tx: &mut Tx, c: &Config, now: Timestamp) -> Result<(), sqlx::Error> {
    with_tx!(tx, |conn| sqlx::query(
        "INSERT INTO readiness_config (id, config, updated_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at"
    )
    .bind(Json(c))
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ()))
}
