//! Staging teams on PostgreSQL: `COPY … FROM STDIN` ([`crate::imports::copy`]) instead of
//! multi-row inserts, and the audit states staged as `JSONB` (parsed here, while the file is
//! still being read, so the write copies them: its `CAST(… AS JSONB)` is then a no-op).

use sqlx::PgConnection;

use super::super::StagedTeam;
use super::{SPECIALTIES, TEAMS};
use crate::imports::copy::CopyRows;
use crate::time::Timestamp;

/// Makes the staged audit states `JSONB` (the tables are empty).
pub(super) async fn json_columns(c: &mut PgConnection) -> Result<(), sqlx::Error> {
    let sql = format!(
        "ALTER TABLE {TEAMS} ALTER COLUMN before_state TYPE JSONB USING CAST(before_state AS JSONB),
           ALTER COLUMN after_state TYPE JSONB USING CAST(after_state AS JSONB)"
    );
    sqlx::query(&sql).execute(&mut *c).await.map(|_| ())
}

/// A time as `COPY` reads it: what sqlx binds (UTC, microseconds).
fn time(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// Stages a chunk of checked rows into both tables.
pub(super) async fn stage(c: &mut PgConnection, rows: &[StagedTeam]) -> Result<(), sqlx::Error> {
    let (mut teams, mut specs) = (CopyRows::new(), CopyRows::new());
    for s in rows {
        let t = s.team.as_ref();
        teams
            .plain(Some(s.line))
            .plain(Some(i64::from(t.is_some())))
            .plain(Some(i64::from(s.specs_changed)))
            .plain(t.map(|t| t.id).filter(|id| *id != 0))
            .text(Some(&s.code))
            .text(t.map(|t| t.name.as_str()))
            .text(t.map(|t| t.org_type.as_str()))
            .text(t.map(|t| t.region_code.as_str()))
            .plain(t.map(|t| t.lon))
            .plain(t.map(|t| t.lat))
            .text(t.map(|t| t.filing_status.as_str()))
            .text(s.old_status.map(|f| f.as_str()))
            .text(t.map(|t| t.submitted_by.as_str()))
            .text(time(t.map(|t| t.submitted_at)).as_deref())
            .text(t.and_then(|t| t.decided_by.as_deref()))
            .text(time(t.and_then(|t| t.decided_at)).as_deref())
            .text(t.and_then(|t| t.approved_by.as_deref()))
            .text(time(t.and_then(|t| t.approved_at)).as_deref())
            .text(time(t.map(|t| t.created_at)).as_deref())
            .text(time(t.map(|t| t.updated_at)).as_deref())
            .text(s.before.as_deref())
            .text(s.after.as_deref());
        teams.end_row();
        for (position, g) in s.specialties.iter().enumerate() {
            specs.plain(Some(s.line)).plain(Some(position)).text(Some(g.specialty.code())).plain(g.grade);
            specs.end_row();
        }
    }
    teams
        .copy_into(
            c,
            TEAMS,
            "line, change, specs, id, code, name, org_type, region_code, lon, lat, filing_status, old_status,
             submitted_by, submitted_at, decided_by, decided_at, approved_by, approved_at, created_at, updated_at,
             before_state, after_state",
        )
        .await?;
    specs.copy_into(c, SPECIALTIES, "line, position, specialty, grade").await?;
    Ok(())
}
