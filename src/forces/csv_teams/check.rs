//! The check of one team row against the stored data loaded once ([`lookup`]), and the team and
//! audit states it will write, prepared here, outside the write transaction.

use sqlx::types::Json;

use super::row::Row;
use super::{StagedTeam, Stored, TeamImport, TeamLookup};
use crate::auth::Perm;
use crate::csvio::Record;
use crate::db::Db;
use crate::error::{ApiResult, FieldError};
use crate::forces::personal::Disclosure;
use crate::forces::teams::{Team, TeamRow};
use crate::forces::{FilingStatus, SpecialtyGrade, store};

/// Loads every stored team with its specialties (two queries) and every region.
pub(super) async fn lookup(imp: &TeamImport, db: &Db) -> ApiResult<TeamLookup> {
    let all = ("000000000000", "999999999999");
    let mut specs = store::specialties_in(db, all).await?;
    let existing = store::all(db, all, None)
        .await?
        .into_iter()
        .map(|t| {
            let sp = specs.remove(&t.id).unwrap_or_default();
            (t.code.clone(), (t, sp))
        })
        .collect();
    let regions = crate::regions::store::all(db).await?.into_iter().map(|r| r.code).collect();
    Ok(TeamLookup {
        principal: imp.principal.clone(),
        actor: imp.actor.name.clone(),
        now: imp.now,
        cipher: imp.cipher.clone(),
        existing,
        regions,
    })
}

/// Parses and checks one row (see [`crate::imports::staged::Staged::check`]).
pub(super) fn check(l: &TeamLookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<StagedTeam> {
    let row = Row::parse(rec, l.now, errors)?;
    if !errors.is_empty() {
        return None;
    }
    let p = &l.principal;
    if !p.scope.contains(row.region.as_str()) {
        errors.push(rec.err("region_code", format!("区划 {} 不在您的辖区内", row.region)));
    }
    if !l.regions.contains(row.region.as_str()) {
        errors.push(rec.err("region_code", format!("区划 {} 不存在", row.region)));
    }
    let old = l.existing.get(&row.code);
    if let Some((t, _)) = old
        && !p.scope.contains(&t.region_code)
    {
        errors.push(rec.err("code", format!("队伍 {} 属于区划 {}，不在您的辖区内", row.code, t.region_code)));
    }
    let current = old.map(|(t, _)| t.filing_status);
    if let Some(s) = row.status
        && Some(s) != current
        && !(current.is_none() && s == FilingStatus::Submitted)
        && !p.role.allows(Perm::Decide)
    {
        errors.push(rec.err("filing_status", format!("角色「{}」无权设置备案状态「{}」", p.role.label(), s.label())));
    }
    let mut staged = StagedTeam {
        line: rec.line,
        code: String::new(),
        team: None,
        specs_changed: false,
        old_status: current,
        specialties: Vec::new(),
        before: None,
        after: None,
    };
    if errors.is_empty() {
        match old {
            None => {
                let team = new_team(l, &row);
                staged.after = view(l, &team, &row.specialties);
                staged.team = Some(team);
                staged.specs_changed = true;
            }
            Some(stored) => {
                if let Some(team) = changed_team(l, &row, stored) {
                    (staged.before, staged.after) = (view(l, &stored.0, &stored.1), view(l, &team, &row.specialties));
                    staged.team = Some(team);
                    staged.specs_changed = stored.1 != row.specialties;
                }
            }
        }
    }
    // A row with errors, or one that changes nothing, is staged for the duplicate check only.
    if staged.specs_changed {
        staged.specialties = row.specialties;
    }
    staged.code = row.code;
    Some(staged)
}

/// The audit state of a team as JSON text: the masked view `teams::create` / `teams::update`
/// record, serialised exactly as `audit::record_many` writes it (keys in serde's sorted order).
fn view(l: &TeamLookup, t: &TeamRow, specialties: &[SpecialtyGrade]) -> Option<String> {
    let view = Team::view(t, specialties.to_vec(), &l.cipher, Disclosure::MASKED);
    crate::forces::audit_json(&view).ok().map(|v| v.to_string())
}

/// A new team from a row.
fn new_team(l: &TeamLookup, row: &Row) -> TeamRow {
    let (actor, now) = (&l.actor, l.now);
    let status = row.status.unwrap_or(FilingStatus::Submitted);
    let decided = status != FilingStatus::Submitted;
    TeamRow {
        id: 0,
        code: row.code.clone(),
        name: row.name.clone(),
        org_type: row.org_type,
        registration_no: None,
        region_code: row.region.to_string(),
        lon: row.lon,
        lat: row.lat,
        equipment: Json(vec![]),
        leader_name: None,
        leader_phone: None,
        contact_name: None,
        contact_phone: None,
        filing_status: status,
        status_reason: None,
        submitted_by: actor.clone(),
        submitted_at: row.submitted_at,
        decided_by: decided.then(|| actor.clone()),
        decided_at: decided.then_some(now),
        approved_by: (status == FilingStatus::Approved).then(|| actor.clone()),
        approved_at: (status == FilingStatus::Approved).then_some(now),
        created_at: now,
        updated_at: now,
    }
}

/// The stored team as the row changes it, or None when the row matches what is stored.
fn changed_team(l: &TeamLookup, row: &Row, (old, old_specs): &Stored) -> Option<TeamRow> {
    let (actor, now) = (&l.actor, l.now);
    let status = row.status.unwrap_or(old.filing_status);
    if old.name == row.name
        && old.org_type == row.org_type
        && old.region_code == row.region.as_str()
        && old.lon == row.lon
        && old.lat == row.lat
        && *old_specs == row.specialties
        && old.filing_status == status
    {
        return None;
    }
    let mut t = old.clone();
    t.name = row.name.clone();
    t.org_type = row.org_type;
    t.region_code = row.region.to_string();
    (t.lon, t.lat) = (row.lon, row.lat);
    if status != old.filing_status {
        t.filing_status = status;
        t.decided_by = Some(actor.clone());
        t.decided_at = Some(now);
        if status == FilingStatus::Approved {
            t.approved_by = Some(actor.clone());
            t.approved_at = Some(now);
        }
    }
    t.updated_at = now;
    Some(t)
}
