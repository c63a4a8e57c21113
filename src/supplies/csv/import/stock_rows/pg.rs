//! Staging receipts on PostgreSQL: `COPY … FROM STDIN` ([`crate::imports::copy`]) instead of
//! multi-row inserts.

use sqlx::PgConnection;

use super::StagedStock;
use crate::imports::copy::CopyRows;
use crate::supplies::ledger;

/// Stages a chunk of checked rows.
pub(super) async fn stage(c: &mut PgConnection, rows: &[StagedStock]) -> Result<(), sqlx::Error> {
    let mut out = CopyRows::new();
    for r in rows {
        out.plain(Some(r.line))
            .text(Some(r.depot.as_str()))
            .plain(r.depot_id)
            .text(Some(r.region.as_str()))
            .text(Some(r.item.as_str()))
            .text(Some(r.batch.as_str()))
            .plain(Some(r.quantity))
            .plain(r.production_date)
            .plain(r.expiry_date)
            .text(Some(r.reserve_mode.as_str()));
        out.end_row();
    }
    out.copy_into(
        c,
        ledger::STAGED_RECEIPTS,
        "line, depot_code, depot_id, region_code, item_code, batch, quantity, production_date, expiry_date, reserve_mode",
    )
    .await
    .map(|_| ())
}
