//! Multi-row writes of teams and members, for the CSV imports: the same rows, encrypted personal
//! data, person keys and audit rows that [`super::teams::create`] / [`super::teams::update`] and
//! [`super::members::create`] write one at a time, in a few statements per chunk (see
//! [`crate::imports::bulk`]). Status and filing changes go through
//! [`transition_many!`](crate::transition_many!), and every data update is conditional on the
//! state the import checked, with an affected-row check: a team or member that another request
//! moved meanwhile is a 409 conflict and the import's transaction writes nothing.

use std::collections::HashMap;

use super::{FilingStatus, SpecialtyGrade, store};
use crate::db::Tx;
use crate::error::ApiError;
use crate::imports::bulk;
use crate::with_tx;

/// Keys bound in one `IN (…)` list.
const IN_CHUNK: usize = 500;

/// Inserts new teams (one multi-row statement per chunk); returns `(id, code)` of each.
pub async fn insert_teams(tx: &mut Tx, rows: &[&super::teams::TeamRow]) -> Result<Vec<(i64, String)>, ApiError> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(bulk::chunk(22)) {
        let got: Result<Vec<(i64, String)>, sqlx::Error> = with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO teams (code, name, org_type, registration_no, region_code, lon, lat, equipment, leader_name,
                    leader_phone, contact_name, contact_phone, filing_status, status_reason, submitted_by, submitted_at,
                    decided_by, decided_at, created_at, updated_at, approved_by, approved_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.code)
                    .push_bind(&r.name)
                    .push_bind(r.org_type.as_str())
                    .push_bind(&r.registration_no)
                    .push_bind(&r.region_code)
                    .push_bind(r.lon)
                    .push_bind(r.lat)
                    .push_bind(&r.equipment)
                    .push_bind(&r.leader_name)
                    .push_bind(&r.leader_phone)
                    .push_bind(&r.contact_name)
                    .push_bind(&r.contact_phone)
                    .push_bind(r.filing_status.as_str())
                    .push_bind(&r.status_reason)
                    .push_bind(&r.submitted_by)
                    .push_bind(r.submitted_at)
                    .push_bind(&r.decided_by)
                    .push_bind(r.decided_at)
                    .push_bind(r.created_at)
                    .push_bind(r.updated_at)
                    .push_bind(&r.approved_by)
                    .push_bind(r.approved_at);
            });
            q.push(" RETURNING id, code");
            q.build_query_as().fetch_all(c).await
        });
        match got {
            Ok(ids) => out.extend(ids),
            // A team with one of these codes was created since the file was checked.
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(ApiError::Conflict("文件中的队伍编码已被其他请求同时登记；请重新导入".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Writes edited teams: each `(row, from)` moves from filing state `from` to `row.filing_status`
/// through [`transition_many!`](crate::transition_many!) (grouped by step), then its columns are
/// written with one `UPDATE … FROM (VALUES …)` per chunk, only where the state is still the
/// expected one. A team no longer in the state the import checked is a conflict.
pub async fn update_teams(tx: &mut Tx, rows: &[(&super::teams::TeamRow, FilingStatus)]) -> Result<(), ApiError> {
    let mut steps: HashMap<(FilingStatus, FilingStatus), Vec<i64>> = HashMap::new();
    for (r, from) in rows {
        if *from != r.filing_status {
            steps.entry((*from, r.filing_status)).or_default().push(r.id);
        }
    }
    let now = rows.first().map(|(r, _)| r.updated_at);
    for ((from, to), ids) in steps {
        let moved = crate::transition_many!(&mut *tx, store::TEAM, &ids, from [from.as_str()] => to.as_str(), set { "updated_at" = now })?;
        if moved.len() != ids.len() {
            return Err(conflict("队伍", from.label()));
        }
    }
    for chunk in rows.chunks(bulk::chunk(12)) {
        let done: Result<Vec<i64>, sqlx::Error> = with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "UPDATE teams SET name = v.column2, org_type = v.column3, region_code = v.column4, lon = v.column5,
                    lat = v.column6, decided_by = v.column8, decided_at = v.column9, approved_by = v.column10,
                    approved_at = v.column11, updated_at = v.column12 FROM (",
            );
            q.push_values(chunk, |mut b, (r, _)| {
                b.push_bind(r.id)
                    .push_bind(&r.name)
                    .push_bind(r.org_type.as_str())
                    .push_bind(&r.region_code)
                    .push_bind(r.lon)
                    .push_bind(r.lat)
                    .push_bind(r.filing_status.as_str())
                    .push_bind(&r.decided_by)
                    .push_bind(r.decided_at)
                    .push_bind(&r.approved_by)
                    .push_bind(r.approved_at)
                    .push_bind(r.updated_at);
            });
            q.push(") AS v WHERE teams.id = v.column1 AND teams.filing_status = v.column7 RETURNING teams.id");
            q.build_query_scalar().fetch_all(c).await
        });
        if done?.len() != chunk.len() {
            return Err(conflict("队伍", "导入检查时的备案状态"));
        }
    }
    Ok(())
}

fn conflict(noun: &str, expected: &str) -> ApiError {
    ApiError::Conflict(format!("导入期间有{noun}被其他请求修改（不再是「{expected}」）；未写入任何数据，请重新导入"))
}

/// Replaces the specialties of the given teams (delete, then one multi-row insert per chunk).
/// `fresh`: the teams were just inserted, so there is nothing to delete.
pub async fn set_specialties(tx: &mut Tx, teams: &[(i64, &[SpecialtyGrade])], fresh: bool) -> Result<(), sqlx::Error> {
    if !fresh {
        let ids: Vec<i64> = teams.iter().map(|(id, _)| *id).collect();
        delete_in(tx, "team_specialties", "team_id", &ids).await?;
    }
    let rows: Vec<(i64, &SpecialtyGrade, i64)> =
        teams.iter().flat_map(|(id, list)| list.iter().enumerate().map(move |(i, s)| (*id, s, i as i64))).collect();
    for chunk in rows.chunks(bulk::chunk(4)) {
        with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO team_specialties (team_id, specialty, grade, position) ");
            q.push_values(chunk, |mut b, (id, s, pos)| {
                b.push_bind(*id).push_bind(s.specialty.code()).push_bind(s.grade.map(i64::from)).push_bind(*pos);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// `DELETE FROM table WHERE column IN (ids…)`, in chunks.
async fn delete_in(tx: &mut Tx, table: &str, column: &str, ids: &[i64]) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(IN_CHUNK) {
        with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(format!("DELETE FROM {table} WHERE {column} IN ("));
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}
