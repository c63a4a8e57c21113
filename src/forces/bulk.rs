//! Multi-row writes of members, for the CSV import: the same rows, encrypted personal data,
//! person keys and audit rows that [`super::members::create`] writes one at a time, in a few
//! statements per chunk (see [`crate::imports::bulk`]). Status changes go through
//! [`transition_many!`](crate::transition_many!), and every data update is conditional on the
//! state the import checked, with an affected-row check: a member that another request moved
//! meanwhile is a 409 conflict and the import's transaction writes nothing. (Teams are staged:
//! [`super::csv_teams`].)

use std::collections::HashMap;

use super::members::{Details, MemberRow};
use super::{MemberStatus, member_store};
use crate::db::Tx;
use crate::error::ApiError;
use crate::imports::bulk;
use crate::personal::Cipher;
use crate::with_tx;

/// Keys bound in one `IN (…)` list.
const IN_CHUNK: usize = 500;

fn conflict(noun: &str, expected: &str) -> ApiError {
    ApiError::Conflict(format!("导入期间有{noun}被其他请求修改（不再是「{expected}」）；未写入任何数据，请重新导入"))
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
