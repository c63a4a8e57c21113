//! The staging tables of the teams import, on the import's own connection ([`Held`]): one row
//! per readable line, and the specialties of the teams whose specialties are written.

use super::StagedTeam;
use crate::db::{Backend, Held};
use crate::error::ApiResult;
use crate::imports::{Errors, bulk};
use crate::with_held;

mod pg;

/// The staging table of the teams.
pub(super) const TEAMS: &str = "import_teams";

/// The staging table of their specialties (`line` names the team's row).
pub(super) const SPECIALTIES: &str = "import_team_specialties";

/// Creates both staging tables.
pub(super) async fn create(conn: &mut Held) -> Result<(), sqlx::Error> {
    let (int, real, time) = match conn.backend() {
        Backend::Sqlite => ("INTEGER", "REAL", "TEXT"),
        Backend::Postgres => ("BIGINT", "DOUBLE PRECISION", "TIMESTAMPTZ"),
    };
    let teams = format!(
        "CREATE TEMP TABLE {TEAMS} (line {int} PRIMARY KEY, change {int} NOT NULL, specs {int} NOT NULL, id {int}, code TEXT NOT NULL,
            name TEXT, org_type TEXT, region_code TEXT, lon {real}, lat {real}, filing_status TEXT, old_status TEXT,
            submitted_by TEXT, submitted_at {time}, decided_by TEXT, decided_at {time}, approved_by TEXT, approved_at {time},
            created_at {time}, updated_at {time}, before_state TEXT, after_state TEXT)"
    );
    let specs = format!(
        "CREATE TEMP TABLE {SPECIALTIES} (line {int} NOT NULL, position {int} NOT NULL, specialty TEXT NOT NULL, grade {int})"
    );
    for sql in [teams, specs] {
        with_held!(&mut *conn, |c| sqlx::query(&sql).execute(c).await.map(|_| ()))?;
    }
    if let Held::Postgres(c) = conn {
        pg::json_columns(c).await?;
    }
    Ok(())
}

/// Stages a chunk of checked rows: multi-row inserts into both tables (PostgreSQL: `COPY`, see
/// [`pg`]).
pub(super) async fn stage(conn: &mut Held, rows: &[StagedTeam]) -> Result<(), sqlx::Error> {
    if let Held::Postgres(c) = conn {
        return pg::stage(c, rows).await;
    }
    for rows in rows.chunks(bulk::chunk(22)) {
        with_held!(&mut *conn, |c| {
            let mut q = sqlx::QueryBuilder::new(format!(
                "INSERT INTO {TEAMS} (line, change, specs, id, code, name, org_type, region_code, lon, lat, filing_status, old_status,
                    submitted_by, submitted_at, decided_by, decided_at, approved_by, approved_at, created_at, updated_at,
                    before_state, after_state) "
            ));
            q.push_values(rows, |mut b, s| {
                let t = s.team.as_ref();
                b.push_bind(s.line as i64)
                    .push_bind(i64::from(t.is_some()))
                    .push_bind(i64::from(s.specs_changed))
                    .push_bind(t.map(|t| t.id).filter(|id| *id != 0))
                    .push_bind(&s.code)
                    .push_bind(t.map(|t| t.name.as_str()))
                    .push_bind(t.map(|t| t.org_type.as_str()))
                    .push_bind(t.map(|t| t.region_code.as_str()))
                    .push_bind(t.map(|t| t.lon))
                    .push_bind(t.map(|t| t.lat))
                    .push_bind(t.map(|t| t.filing_status.as_str()))
                    .push_bind(s.old_status.map(|f| f.as_str()))
                    .push_bind(t.map(|t| t.submitted_by.as_str()))
                    .push_bind(t.map(|t| t.submitted_at))
                    .push_bind(t.and_then(|t| t.decided_by.as_deref()))
                    .push_bind(t.and_then(|t| t.decided_at))
                    .push_bind(t.and_then(|t| t.approved_by.as_deref()))
                    .push_bind(t.and_then(|t| t.approved_at))
                    .push_bind(t.map(|t| t.created_at))
                    .push_bind(t.map(|t| t.updated_at))
                    .push_bind(s.before.as_deref())
                    .push_bind(s.after.as_deref());
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    let specs: Vec<(i64, i64, &super::SpecialtyGrade)> = rows
        .iter()
        .flat_map(|s| s.specialties.iter().enumerate().map(move |(i, g)| (s.line as i64, i as i64, g)))
        .collect();
    for chunk in specs.chunks(bulk::chunk(4)) {
        with_held!(&mut *conn, |c| {
            let mut q =
                sqlx::QueryBuilder::new(format!("INSERT INTO {SPECIALTIES} (line, position, specialty, grade) "));
            q.push_values(chunk, |mut b, (line, position, g)| {
                b.push_bind(*line).push_bind(*position).push_bind(g.specialty.code()).push_bind(g.grade.map(i64::from));
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Codes twice in the file: each later line names the first. On PostgreSQL the staged tables are
/// then analysed, so the write's joins are planned on their real sizes (a temporary table has no
/// statistics until then).
pub(super) async fn duplicates(conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
    use futures_util::TryStreamExt;
    let sql = format!(
        "SELECT line, code, first FROM (
           SELECT line, code, MIN(line) OVER (PARTITION BY code) AS first FROM {TEAMS}) AS d
         WHERE line > first ORDER BY line"
    );
    with_held!(&mut *conn, |c| {
        let mut dups = sqlx::query_as::<_, (i64, String, i64)>(&sql).fetch(c);
        while let Some((line, code, first)) = dups.try_next().await? {
            errors.at(line as u64, "code", format!("队伍编码 {code} 与第 {first} 行重复"));
        }
        Ok::<_, sqlx::Error>(())
    })?;
    if errors.is_empty()
        && let Held::Postgres(c) = conn
    {
        sqlx::query(&format!("ANALYZE {TEAMS}, {SPECIALTIES}")).execute(&mut **c).await?;
    }
    Ok(())
}
