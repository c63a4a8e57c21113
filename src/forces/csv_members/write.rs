//! Writing a checked members file in the import's one transaction: chunk after chunk, the
//! personal-data work of the next chunk (AES-GCM of ID numbers and phones, blind indexes, person
//! keys, the sealed audit views) runs on the blocking pool, split over both cores, while the
//! current chunk's multi-row statements run, so the crypto does not lengthen the write lock.
//! The stored rows are exactly those [`super::super::members::create`] and an edit write one by
//! one.

use std::sync::Arc;

use super::super::members::{self, Details, Member, MemberRow};
use super::super::personal::Disclosure;
use super::super::{audit_json, bulk};
use super::MemberImport;
use super::resolve::{Plan, Resolved};
use super::row::Row;
use crate::audit::Change;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::imports::Lined;
use crate::personal::{Cipher, Field};
use crate::regions::import::ImportSummary;
use crate::time::Timestamp;

/// Rows per chunk: one multi-row statement per table (the members insert binds 10 values a row).
const CHUNK: usize = 2_000;

/// A new member ready to insert.
struct NewOne {
    row: MemberRow,
    details: Details,
    /// The person key, encrypted for `person_keys`.
    key_enc: String,
    /// The audit view, personal fields sealed under the person key; `id` set once inserted.
    after: serde_json::Value,
}

/// A changed member ready to update.
struct ChangedOne {
    row: MemberRow,
    resolved: Resolved,
    details: Details,
}

/// A chunk with its personal data encrypted.
#[derive(Default)]
struct Prepared {
    new: Vec<NewOne>,
    changed: Vec<ChangedOne>,
    unchanged: usize,
}

type Chunk = Vec<(Lined<Row>, Resolved)>;

/// What the preparing threads share.
struct Shared {
    plan: Plan,
    cipher: Cipher,
    now: Timestamp,
}

impl MemberImport {
    /// The write of [`crate::imports::Import::write`].
    pub(super) async fn write_plan(&self, tx: &mut Tx, mut plan: Plan) -> ApiResult<ImportSummary> {
        let mut s = ImportSummary { rows: plan.rows, ..Default::default() };
        let items = std::mem::take(&mut plan.items);
        let resolved = std::mem::take(&mut plan.resolved);
        let shared = Arc::new(Shared { plan, cipher: self.cipher.clone(), now: self.now });
        let mut rows = items.into_iter().zip(resolved);
        let mut take = || -> Option<Chunk> {
            let chunk: Chunk = rows.by_ref().take(CHUNK).collect();
            (!chunk.is_empty()).then_some(chunk)
        };
        let mut next = take().map(|c| spawn_prepare(&shared, c));
        while let Some(pending) = next {
            let prepared = join(pending).await?;
            // The next chunk's crypto runs while this one is written.
            next = take().map(|c| spawn_prepare(&shared, c));
            s.unchanged += prepared.unchanged;
            s.created += prepared.new.len();
            s.updated += prepared.changed.len();
            self.write_chunk(tx, &shared.plan, prepared).await?;
        }
        Ok(s)
    }

    async fn write_chunk(&self, tx: &mut Tx, plan: &Plan, mut p: Prepared) -> ApiResult<()> {
        let ids = bulk::insert_members(tx, &p.new.iter().map(|n| &n.row).collect::<Vec<_>>()).await?;
        for (n, id) in p.new.iter_mut().zip(ids) {
            n.row.id = id;
            n.after["id"] = serde_json::json!(id);
        }
        let moves: Vec<(&MemberRow, _)> =
            p.changed.iter().filter_map(|c| Some((&c.row, plan.existing(c.resolved)?.row.status))).collect();
        bulk::update_members(tx, &moves).await?;
        let fresh: Vec<(i64, &Details)> = p.new.iter().map(|n| (n.row.id, &n.details)).collect();
        bulk::set_member_details(tx, &fresh, true).await?;
        let edited: Vec<(i64, &Details)> = p.changed.iter().map(|c| (c.row.id, &c.details)).collect();
        bulk::set_member_details(tx, &edited, false).await?;
        bulk::insert_person_keys(tx, &p.new.iter().map(|n| (n.row.id, n.key_enc.as_str())).collect::<Vec<_>>()).await?;
        let keys =
            bulk::person_keys(tx, &self.cipher, &p.changed.iter().map(|c| c.row.id).collect::<Vec<_>>(), false).await?;
        let mut audit = Vec::with_capacity(p.new.len() + p.changed.len());
        for n in p.new.iter_mut() {
            audit.push((&n.row, None, Some(std::mem::take(&mut n.after))));
        }
        for c in &p.changed {
            let Some(e) = plan.existing(c.resolved) else { continue };
            let key = keys
                .get(&c.row.id)
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no person key for {}", c.row.id)))?;
            let before = sealed(&e.row, &e.details, &self.cipher, self.now, key)?;
            audit.push((&c.row, Some(before), Some(sealed(&c.row, &c.details, &self.cipher, self.now, key)?)));
        }
        let names: Vec<String> = audit.iter().map(|(m, ..)| m.id.to_string()).collect();
        let mut changes = Vec::with_capacity(audit.len());
        for ((m, before, after), name) in audit.into_iter().zip(&names) {
            changes.push(Change {
                action: "import",
                entity_type: "member",
                entity_id: name,
                region_code: Some(&m.region_code),
                before,
                after,
            });
        }
        crate::audit::record_many(tx, &self.actor, self.now, changes).await?;
        Ok(())
    }
}

/// Prepares a chunk on the blocking pool, in two halves (two cores).
fn spawn_prepare(shared: &Arc<Shared>, mut chunk: Chunk) -> [tokio::task::JoinHandle<ApiResult<Prepared>>; 2] {
    let second = chunk.split_off(chunk.len() / 2);
    [chunk, second].map(|half| {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || prepare(&shared, half))
    })
}

async fn join(pending: [tokio::task::JoinHandle<ApiResult<Prepared>>; 2]) -> ApiResult<Prepared> {
    let mut out = Prepared::default();
    for handle in pending {
        let p = handle.await.map_err(|e| ApiError::Internal(anyhow::anyhow!("preparing members failed: {e}")))??;
        out.new.extend(p.new);
        out.changed.extend(p.changed);
        out.unchanged += p.unchanged;
    }
    Ok(out)
}

/// Encrypts a chunk's personal data and builds its stored rows (CPU only).
fn prepare(shared: &Shared, chunk: Chunk) -> ApiResult<Prepared> {
    let Shared { plan, cipher, now } = shared;
    let now = *now;
    let mut out = Prepared::default();
    for (Lined { row, .. }, r) in chunk {
        let team = &plan.teams[r.team as usize].row;
        let phone = plan.phone(&row, r);
        match plan.existing(r) {
            None => {
                let Some(id) = row.id.full() else { continue };
                let m = MemberRow {
                    id: 0,
                    team_id: team.id,
                    team_code: team.code.clone(),
                    region_code: team.region_code.clone(),
                    name: row.name.to_string(),
                    id_number: Some(cipher.encrypt(Field::MEMBER_ID_NUMBER, id)),
                    id_index: Some(cipher.blind_index(id)),
                    phone: phone.map(|ph| cipher.encrypt(Field::MEMBER_PHONE, ph)),
                    status: r.status,
                    temp_callup_id: None,
                    anonymised_at: None,
                    created_at: now,
                    updated_at: now,
                };
                let details = row.new_details();
                let (key, key_enc) = cipher.new_person_key();
                let after = sealed(&m, &details, cipher, now, &key)?;
                out.new.push(NewOne { row: m, details, key_enc, after });
            }
            Some(e) => {
                let details = row.merged_details(&e.details);
                let mut old_skills = e.details.skills.clone();
                old_skills.sort();
                let mut new_skills = details.skills.clone();
                new_skills.sort();
                if *e.row.name == *row.name
                    && e.plain_phone.as_deref() == phone
                    && old_skills == new_skills
                    && norm(&e.details.insurance) == norm(&details.insurance)
                    && e.details.certificates == details.certificates
                    && e.row.status == r.status
                {
                    out.unchanged += 1;
                    continue;
                }
                let mut m = e.row.clone();
                m.name = row.name.to_string();
                if e.plain_phone.as_deref() != phone {
                    m.phone = phone.map(|ph| cipher.encrypt(Field::MEMBER_PHONE, ph));
                }
                m.status = r.status;
                m.updated_at = now;
                out.changed.push(ChangedOne { row: m, resolved: r, details });
            }
        }
    }
    Ok(out)
}

/// A member's audit view (masked), its personal fields sealed under the person's key.
fn sealed(
    m: &MemberRow,
    d: &Details,
    cipher: &Cipher,
    now: Timestamp,
    key: &crate::personal::PersonKey,
) -> ApiResult<serde_json::Value> {
    let view = Member::view(m, d.clone(), cipher, Disclosure::MASKED, now);
    Ok(members::seal_personal(audit_json(&view)?, key))
}

fn norm(v: &[members::Insurance]) -> Vec<members::Insurance> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| (a.start, &a.policy_number).cmp(&(b.start, &b.policy_number)));
    v
}
