//! The write of a staged teams file: one transaction of set-based statements from the staging
//! tables (see [`super::stage`]).

use std::collections::HashMap;

use super::stage::{SPECIALTIES, TEAMS};
use crate::audit::Actor;
use crate::db::{Backend, Tx};
use crate::error::{ApiError, ApiResult};
use crate::forces::{FilingStatus, store};
use crate::imports::ImportSummary;
use crate::time::Timestamp;
use crate::with_tx;

/// Writes the staged teams: new ones inserted; changed ones moved to their new filing state
/// through [`transition_many!`](crate::transition_many!) (grouped by step, from the state the
/// check saw), then their columns updated where the state is the one just written; their
/// specialties replaced, and one audit row each with the states prepared by the check. A team
/// created, moved or deleted by another request since the check is a 409 and nothing is written.
pub(super) async fn write(tx: &mut Tx, actor: &Actor, now: Timestamp, rows: usize) -> ApiResult<ImportSummary> {
    let counts = format!(
        "SELECT COALESCE(SUM(CASE WHEN id IS NULL THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN id IS NULL THEN 0 ELSE 1 END), 0)
         FROM {TEAMS} WHERE change = 1"
    );
    let (new, old): (i64, i64) = with_tx!(&mut *tx, |c| sqlx::query_as(&counts).fetch_one(c).await)?;
    // Each changed team is one key of the change log: more than a few thousand are logged as one
    // change of every team (migration 0030), not one trigger run per team, specialty and row.
    let log = crate::imports::staged::BulkLog::begin(tx, crate::change_feed::Topic::Forces, new + old).await?;
    // In file order, so new teams get their ids in the order of the file's lines.
    let insert = format!(
        "INSERT INTO teams (code, name, org_type, region_code, lon, lat, filing_status, submitted_by, submitted_at,
            decided_by, decided_at, approved_by, approved_at, created_at, updated_at)
         SELECT code, name, org_type, region_code, lon, lat, filing_status, submitted_by, submitted_at,
            decided_by, decided_at, approved_by, approved_at, created_at, updated_at
         FROM {TEAMS} WHERE change = 1 AND id IS NULL ORDER BY line"
    );
    let created = match with_tx!(&mut *tx, |c| sqlx::query(&insert).execute(c).await.map(|r| r.rows_affected())) {
        Ok(n) => n,
        // A team with one of these codes was created since the file was checked.
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict("文件中的队伍编码已被其他请求同时登记；未写入任何数据，请重新导入".into()));
        }
        Err(e) => return Err(e.into()),
    };
    // Filing changes first, the one way a state changes: each step from the state the check saw.
    let steps_sql = format!(
        "SELECT id, old_status, filing_status FROM {TEAMS} WHERE change = 1 AND id IS NOT NULL AND filing_status <> old_status"
    );
    let moves: Vec<(i64, String, String)> = with_tx!(&mut *tx, |c| sqlx::query_as(&steps_sql).fetch_all(c).await)?;
    let mut steps: HashMap<(FilingStatus, FilingStatus), Vec<i64>> = HashMap::new();
    for (id, from, to) in moves {
        let (Some(from), Some(to)) = (FilingStatus::parse(&from), FilingStatus::parse(&to)) else {
            return Err(ApiError::Internal(anyhow::anyhow!("team {id}: staged filing state unknown")));
        };
        steps.entry((from, to)).or_default().push(id);
    }
    for ((from, to), ids) in steps {
        let moved = crate::transition_many!(&mut *tx, store::TEAM, &ids, from [from.as_str()] => to.as_str(), set { "updated_at" = now })?;
        if moved.len() != ids.len() {
            return Err(moved_meanwhile(tx).await);
        }
    }
    // Then the columns, where the state is the one the file leaves (a team another request moved
    // meanwhile matches no row).
    let update = format!(
        "UPDATE teams SET name = s.name, org_type = s.org_type, region_code = s.region_code, lon = s.lon, lat = s.lat,
            decided_by = s.decided_by, decided_at = s.decided_at,
            approved_by = s.approved_by, approved_at = s.approved_at, updated_at = s.updated_at
         FROM {TEAMS} AS s
         WHERE s.change = 1 AND s.id IS NOT NULL AND teams.id = s.id AND teams.filing_status = s.filing_status"
    );
    let updated = with_tx!(&mut *tx, |c| sqlx::query(&update).execute(c).await.map(|r| r.rows_affected()))?;
    if created != new as u64 {
        return Err(ApiError::Internal(anyhow::anyhow!("{new} new teams staged but {created} inserted")));
    }
    if updated != old as u64 {
        return Err(moved_meanwhile(tx).await);
    }
    let delete = format!(
        "DELETE FROM team_specialties WHERE team_id IN (SELECT id FROM {TEAMS} WHERE change = 1 AND specs = 1 AND id IS NOT NULL)"
    );
    with_tx!(&mut *tx, |c| sqlx::query(&delete).execute(c).await.map(|_| ()))?;
    let specialties = format!(
        "INSERT INTO team_specialties (team_id, specialty, grade, position)
         SELECT t.id, p.specialty, p.grade, p.position
         FROM {SPECIALTIES} p JOIN {TEAMS} s ON s.line = p.line JOIN teams t ON t.code = s.code
         WHERE s.change = 1 AND s.specs = 1"
    );
    with_tx!(&mut *tx, |c| sqlx::query(&specialties).execute(c).await.map(|_| ()))?;
    // The audit rows `audit::record_many` would write (the entity is named by its code). Not
    // sorted: on PostgreSQL sorting 500,000 rows with their JSON spilled 400 MB to disk.
    let (before, after) = match tx.backend() {
        Backend::Sqlite => ("before_state", "after_state"),
        Backend::Postgres => ("CAST(before_state AS JSONB)", "CAST(after_state AS JSONB)"),
    };
    let audit = format!(
        "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)
         SELECT $1, $2, $3, 'import', 'team', code, region_code, {before}, {after}, $4
         FROM {TEAMS} WHERE change = 1"
    );
    crate::imports::staged::audit_staged(tx, &audit, now, actor, created + updated, "teams").await?;
    log.end(tx).await?;
    let changed = (created + updated) as usize;
    Ok(ImportSummary { rows, created: created as usize, updated: updated as usize, unchanged: rows - changed })
}

/// The 409 of a changed team that another request moved to another filing state or deleted since
/// the check, naming one of them.
async fn moved_meanwhile(tx: &mut Tx) -> ApiError {
    // A team the update wrote is in the state it started from (no filing change) or in the new
    // one; a team another request moved to the very state the file asks for is not named.
    let sql = format!(
        "SELECT s.code, t.filing_status FROM {TEAMS} s LEFT JOIN teams t ON t.id = s.id
         WHERE s.change = 1 AND s.id IS NOT NULL AND (t.id IS NULL OR t.filing_status <> s.old_status AND t.filing_status <> s.filing_status)
         ORDER BY s.line LIMIT 1"
    );
    let found: Result<Option<(String, Option<String>)>, sqlx::Error> =
        with_tx!(&mut *tx, |c| sqlx::query_as(&sql).fetch_optional(c).await);
    let which = match found {
        Ok(Some((code, Some(status)))) => {
            let label = crate::forces::FilingStatus::parse(&status).map_or(status.as_str(), |s| s.label());
            format!("队伍 {code} 的备案状态已变为「{label}」")
        }
        Ok(Some((code, None))) => format!("队伍 {code} 已被删除"),
        Ok(None) => "有队伍的备案状态已变化".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "finding the team an import conflicted on");
            "有队伍的备案状态已变化".to_string()
        }
    };
    ApiError::Conflict(format!("导入期间{which}（不再是导入检查时的状态）；未写入任何数据，请重新导入"))
}
