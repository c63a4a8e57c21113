//! Staging depots on PostgreSQL: `COPY … FROM STDIN` ([`crate::imports::copy`]) instead of
//! multi-row inserts, and the audit states staged as `JSONB` (parsed here, while the file is
//! still being read, so the write no longer parses them: its `CAST(… AS JSONB)` is a no-op).

use sqlx::PgConnection;

use super::{DEPOT_STAGE, StagedDepot};
use crate::imports::copy::CopyRows;

/// Makes the staged audit states `JSONB` (the table is empty).
pub(super) async fn json_columns(c: &mut PgConnection) -> Result<(), sqlx::Error> {
    let sql = format!(
        "ALTER TABLE {DEPOT_STAGE} ALTER COLUMN before_state TYPE JSONB USING CAST(before_state AS JSONB),
           ALTER COLUMN after_state TYPE JSONB USING CAST(after_state AS JSONB)"
    );
    sqlx::query(&sql).execute(&mut *c).await.map(|_| ())
}

/// Stages a chunk of checked rows.
pub(super) async fn stage(c: &mut PgConnection, rows: &[StagedDepot]) -> Result<(), sqlx::Error> {
    // Times as sqlx binds them: UTC, microseconds.
    let time = |t: crate::time::Timestamp| t.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut out = CopyRows::new();
    for s in rows {
        let d = &s.row;
        out.plain(Some(s.line))
            .plain(Some(i64::from(s.change)))
            .plain((d.id != 0).then_some(d.id))
            .text(Some(&d.code))
            .text(Some(&d.name))
            .text(Some(&d.region_code))
            .text(Some(d.kind.as_str()))
            .plain(Some(d.lon))
            .plain(Some(d.lat))
            .text(d.address.as_deref())
            .text(d.manager.as_deref())
            .text(d.phone_enc.as_deref())
            .text(d.notes.as_deref())
            .text(Some(&time(d.created_at)))
            .text(Some(&time(d.updated_at)))
            .text(s.before.as_deref())
            .text(s.after.as_deref());
        out.end_row();
    }
    out.copy_into(
        c,
        DEPOT_STAGE,
        "line, change, id, code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at, before_state, after_state",
    )
    .await
    .map(|_| ())
}
