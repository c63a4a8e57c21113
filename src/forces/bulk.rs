//! Multi-row writes of teams and members, for the CSV imports: the same rows, encrypted personal
//! data, person keys and audit rows that [`super::teams::create`] / [`super::teams::update`] and
//! [`super::members::create`] write one at a time, in a few statements per chunk (see
//! [`crate::imports::bulk`]). Status and filing changes go through
//! [`transition_many!`](crate::transition_many!), and every data update is conditional on the
//! state the import checked, with an affected-row check: a team or member that another request
//! moved meanwhile is a 409 conflict and the import's transaction writes nothing.

use std::collections::HashMap;

use super::members::{Details, MemberRow};
use super::{FilingStatus, MemberStatus, SpecialtyGrade, member_store, store};
use crate::db::Tx;
use crate::error::ApiError;
use crate::imports::bulk;
use crate::personal::Cipher;
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

/// Inserts new members (ID number and phone already encrypted, blind index set); returns the
/// id of each, in the order given.
pub async fn insert_members(tx: &mut Tx, rows: &[&MemberRow]) -> Result<Vec<i64>, ApiError> {
    let mut ids: HashMap<(i64, String), i64> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(bulk::chunk(10)) {
        let got: Result<Vec<(i64, i64, Option<String>)>, sqlx::Error> = with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO members (team_id, name, id_number, id_index, phone, status, temp_callup_id, anonymised_at, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.team_id)
                    .push_bind(&r.name)
                    .push_bind(&r.id_number)
                    .push_bind(&r.id_index)
                    .push_bind(&r.phone)
                    .push_bind(r.status.as_str())
                    .push_bind(r.temp_callup_id)
                    .push_bind(r.anonymised_at)
                    .push_bind(r.created_at)
                    .push_bind(r.updated_at);
            });
            // RETURNING order is not guaranteed: rows are matched back by (team, blind index),
            // which the unique index `members_team_person` makes unique.
            q.push(" RETURNING id, team_id, id_index");
            q.build_query_as().fetch_all(c).await
        });
        match got {
            Ok(got) => ids.extend(got.into_iter().map(|(id, team, index)| ((team, index.unwrap_or_default()), id))),
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(ApiError::Conflict(
                    "文件中的队员已被其他请求同时登记到同一队伍；未写入任何数据，请重新导入".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    rows.iter()
        .map(|r| {
            ids.get(&(r.team_id, r.id_index.clone().unwrap_or_default()))
                .copied()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("inserted member not returned")))
        })
        .collect()
}

/// Writes edited members' name, phone and status: status changes through
/// [`transition_many!`](crate::transition_many!) (grouped by step), then one
/// `UPDATE … FROM (VALUES …)` per chunk where the status is still the expected one. A member
/// whose status changed since the import checked it (a call-up deployed them) is a conflict.
pub async fn update_members(tx: &mut Tx, rows: &[(&MemberRow, MemberStatus)]) -> Result<(), ApiError> {
    let mut steps: HashMap<(MemberStatus, MemberStatus), Vec<i64>> = HashMap::new();
    for (r, from) in rows {
        if *from != r.status {
            steps.entry((*from, r.status)).or_default().push(r.id);
        }
    }
    let now = rows.first().map(|(r, _)| r.updated_at);
    for ((from, to), ids) in steps {
        let moved = crate::transition_many!(&mut *tx, member_store::MEMBER, &ids, from [from.as_str()] => to.as_str(), set { "updated_at" = now })?;
        if moved.len() != ids.len() {
            return Err(conflict("队员", from.label()));
        }
    }
    for chunk in rows.chunks(bulk::chunk(5)) {
        let done: Result<Vec<i64>, sqlx::Error> = with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "UPDATE members SET name = v.column2, phone = v.column3, updated_at = v.column5 FROM (",
            );
            q.push_values(chunk, |mut b, (r, _)| {
                b.push_bind(r.id)
                    .push_bind(&r.name)
                    .push_bind(&r.phone)
                    .push_bind(r.status.as_str())
                    .push_bind(r.updated_at);
            });
            q.push(") AS v WHERE members.id = v.column1 AND members.status = v.column4 RETURNING members.id");
            q.build_query_scalar().fetch_all(c).await
        });
        if done?.len() != chunk.len() {
            return Err(conflict("队员", "导入检查时的状态"));
        }
    }
    Ok(())
}

/// Writes members' skills and insurance (replaced) and certificates (added, or corrected in place
/// by number; never removed), as [`member_store::set_details`] does for one member. `fresh`:
/// the members were just inserted, so there is nothing to replace.
pub async fn set_member_details(tx: &mut Tx, members: &[(i64, &Details)], fresh: bool) -> Result<(), sqlx::Error> {
    if !fresh {
        let ids: Vec<i64> = members.iter().map(|(id, _)| *id).collect();
        delete_in(tx, "member_skills", "member_id", &ids).await?;
        delete_in(tx, "member_insurance", "member_id", &ids).await?;
    }
    let skills: Vec<(i64, &str)> =
        members.iter().flat_map(|(id, d)| d.skills.iter().map(move |s| (*id, s.code()))).collect();
    for chunk in skills.chunks(bulk::chunk(2)) {
        with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO member_skills (member_id, specialty) ");
            q.push_values(chunk, |mut b, (id, s)| {
                b.push_bind(*id).push_bind(*s);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    let certs: Vec<_> = members.iter().flat_map(|(id, d)| d.certificates.iter().map(move |k| (*id, k))).collect();
    for chunk in certs.chunks(bulk::chunk(5)) {
        with_tx!(&mut *tx, |c| {
            let mut q =
                sqlx::QueryBuilder::new("INSERT INTO member_certificates (member_id, kind, number, issued, expires) ");
            q.push_values(chunk, |mut b, (id, k)| {
                b.push_bind(*id).push_bind(&k.kind).push_bind(&k.number).push_bind(k.issued).push_bind(k.expires);
            });
            q.push(
                " ON CONFLICT (member_id, number) DO UPDATE SET kind = excluded.kind, issued = excluded.issued, expires = excluded.expires",
            );
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    let policies: Vec<_> = members.iter().flat_map(|(id, d)| d.insurance.iter().map(move |i| (*id, i))).collect();
    for chunk in policies.chunks(bulk::chunk(5)) {
        with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO member_insurance (member_id, insurer, policy_number, start_date, end_date) ",
            );
            q.push_values(chunk, |mut b, (id, i)| {
                b.push_bind(*id).push_bind(&i.insurer).push_bind(&i.policy_number).push_bind(i.start).push_bind(i.end);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// The person keys of the members (see [`super::members::person_key`]), created for those who
/// have none yet, in bulk. `new`: the members were just inserted (none can have a key yet).
pub async fn person_keys(
    tx: &mut Tx,
    cipher: &Cipher,
    ids: &[i64],
    new: bool,
) -> Result<HashMap<i64, crate::personal::PersonKey>, ApiError> {
    let mut keys = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK).filter(|_| !new) {
        let stored: Vec<(i64, String)> = with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new("SELECT member_id, key_enc FROM person_keys WHERE member_id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            q.build_query_as().fetch_all(c).await
        })?;
        for (id, enc) in stored {
            let key = cipher
                .open_person_key(&enc)
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("person key of member {id} does not decrypt")))?;
            keys.insert(id, key);
        }
    }
    let missing: Vec<i64> = ids.iter().copied().filter(|id| !keys.contains_key(id)).collect();
    let mut fresh = Vec::with_capacity(missing.len());
    for id in missing {
        let (key, enc) = cipher.new_person_key();
        keys.insert(id, key);
        fresh.push((id, enc));
    }
    insert_person_keys(tx, &fresh.iter().map(|(id, enc)| (*id, enc.as_str())).collect::<Vec<_>>()).await?;
    Ok(keys)
}

/// Stores the person keys of just-inserted members (`(member id, encrypted key)`), in bulk.
pub async fn insert_person_keys(tx: &mut Tx, keys: &[(i64, &str)]) -> Result<(), sqlx::Error> {
    for chunk in keys.chunks(bulk::chunk(2)) {
        with_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO person_keys (member_id, key_enc) ");
            q.push_values(chunk, |mut b, (id, enc)| {
                b.push_bind(*id).push_bind(*enc);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}
