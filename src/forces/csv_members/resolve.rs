//! Checking a members file against stored data (outside any transaction): each row resolved to
//! its team and to the existing member it updates (or none: a new member), with every error the
//! one-by-one API would give, and the plan the write follows. The rows stay where the pipeline
//! read them (filtered in place); the plan adds 12 bytes a row.

use std::collections::{HashMap, HashSet};

use super::super::members::{self, MemberRow};
use super::super::teams::TeamRow;
use super::super::{MemberStatus, member_store, store};
use super::row::{Ident, PhoneCell, Row};
use super::{MemberImport, problem_text};
use crate::db::Db;
use crate::error::ApiResult;
use crate::imports::short::Short;
use crate::imports::{Errors, Lined};
use crate::personal::{Field, mask_id, mask_phone};

/// A stored member, decrypted once.
pub struct Existing {
    /// The stored row.
    pub row: MemberRow,
    /// The ID number in clear.
    pub plain_id: String,
    /// The phone in clear.
    pub plain_phone: Option<String>,
    /// Skills, certificates, insurance.
    pub details: members::Details,
}

/// A team named in the file, with its current members.
pub struct Team {
    /// The stored team.
    pub row: TeamRow,
    /// Its members (of teams in the caller's jurisdiction).
    pub members: Vec<Existing>,
}

/// Where a checked row goes.
#[derive(Clone, Copy)]
pub struct Resolved {
    /// Index of the team in [`Plan::teams`].
    pub team: u32,
    /// Index of the existing member in the team's list (None: a new member).
    pub found: Option<u32>,
    /// The status the member ends with.
    pub status: MemberStatus,
}

/// What a members import writes: the checked rows, each with where it goes.
pub struct Plan {
    /// Data rows read.
    pub rows: usize,
    /// Teams named in the file.
    pub teams: Vec<Team>,
    /// The checked rows (empty when the file has errors).
    pub items: Vec<Lined<Row>>,
    /// Where each of `items` goes.
    pub resolved: Vec<Resolved>,
}

impl Plan {
    /// The phone (in clear) a row leaves the member with.
    pub fn phone<'a>(&'a self, row: &'a Row, r: Resolved) -> Option<&'a str> {
        match &row.phone {
            PhoneCell::Set(p) => Some(p.as_str()),
            PhoneCell::Keep | PhoneCell::Masked(_) => self.existing(r).and_then(|e| e.plain_phone.as_deref()),
        }
    }

    /// The existing member a row updates.
    pub fn existing(&self, r: Resolved) -> Option<&Existing> {
        r.found.map(|i| &self.teams[r.team as usize].members[i as usize])
    }
}

/// Why a row cannot be resolved to a team and member, or None with the team and member.
enum Found {
    Yes(u32, Option<u32>),
    No(&'static str, String),
}

/// Identifies the person of a row across the file: team slot and ID number.
type PersonKey = (u32, Short);

impl MemberImport {
    /// The check of [`crate::imports::Import::check`].
    pub(super) async fn resolve(&self, db: &Db, mut rows: Vec<Lined<Row>>, errors: &mut Errors) -> ApiResult<Plan> {
        let (p, cipher) = (&self.principal, &self.cipher);
        // Teams named in the file and their current members, decrypted once: one query for the
        // teams, then one per table for every 500 teams in the jurisdiction (not one per row or
        // per team).
        let named: HashSet<&str> = rows.iter().map(|l| l.row.team.as_str()).collect();
        let all = ("000000000000", "999999999999");
        let mut teams: Vec<Team> = Vec::new();
        let mut slot: HashMap<String, u32> = HashMap::new();
        for t in store::all(db, all, None).await? {
            if named.contains(t.code.as_str()) {
                slot.insert(t.code.clone(), teams.len() as u32);
                teams.push(Team { row: t, members: Vec::new() });
            }
        }
        drop(named);
        let mine: Vec<i64> = teams.iter().filter(|t| p.scope.contains(&t.row.region_code)).map(|t| t.row.id).collect();
        let by_team_id: HashMap<i64, usize> = teams.iter().enumerate().map(|(i, t)| (t.row.id, i)).collect();
        let (stored, mut details) = member_store::of_teams(db, &mine).await?;
        for m in stored {
            let Some(plain_id) = m.id_number.as_deref().and_then(|v| cipher.decrypt(Field::MEMBER_ID_NUMBER, v)) else {
                continue;
            };
            let plain_phone = m.phone.as_deref().and_then(|ph| cipher.decrypt(Field::MEMBER_PHONE, ph));
            let Some(&t) = by_team_id.get(&m.team_id) else { continue };
            teams[t].members.push(Existing {
                details: details.remove(&m.id).unwrap_or_default(),
                row: m,
                plain_id,
                plain_phone,
            });
        }
        let by_id: HashMap<(u32, &str), u32> = teams
            .iter()
            .enumerate()
            .flat_map(|(t, team)| {
                team.members.iter().enumerate().map(move |(i, e)| ((t as u32, e.plain_id.as_str()), i as u32))
            })
            .collect();
        let find = |row: &Row| -> Found {
            let Some(&t) = slot.get(row.team.as_str()) else {
                return Found::No("team_code", format!("队伍 {} 不存在", row.team));
            };
            let team = &teams[t as usize];
            if !p.scope.contains(&team.row.region_code) {
                return Found::No("team_code", format!("队伍 {} 不在您的辖区内", row.team));
            }
            match &row.id {
                Ident::Full(_) => Found::Yes(t, by_id.get(&(t, row.id.full().unwrap_or_default())).copied()),
                Ident::Masked(m) => {
                    let mut hits = team
                        .members
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| mask_id(&e.plain_id) == **m && *e.row.name == *row.name);
                    match (hits.next(), hits.next()) {
                        (Some((i, _)), None) => Found::Yes(t, Some(i as u32)),
                        _ => Found::No(
                            "id_number",
                            "脱敏的身份证号只能用于匹配本队同名的已有队员；登记新队员须填写完整身份证号".into(),
                        ),
                    }
                }
            }
        };
        let person = |t: u32, found: Option<u32>, row: &Row| -> PersonKey {
            match found {
                Some(i) => (t, teams[t as usize].members[i as usize].plain_id.as_str().into()),
                None => match &row.id {
                    Ident::Full(_) => (t, row.id.full().unwrap_or_default().into()),
                    Ident::Masked(m) => (t, Short::from(&**m)),
                },
            }
        };
        // Rows naming the same person twice: sorted keys (a vector, not a hash map, so 1,000,000
        // rows cost 32 MB here, once).
        let mut keys: Vec<(PersonKey, u32)> = Vec::with_capacity(rows.len());
        for (i, l) in rows.iter().enumerate() {
            if let Found::Yes(t, found) = find(&l.row) {
                keys.push((person(t, found, &l.row), i as u32));
            }
        }
        keys.sort_unstable();
        let mut repeats: HashMap<u32, u64> = HashMap::new();
        for w in keys.chunk_by(|a, b| a.0 == b.0) {
            for (_, i) in &w[1..] {
                repeats.insert(*i, rows[w[0].1 as usize].line);
            }
        }
        drop(keys);
        // Resolve every row to (team, existing member or new) and the state it asks for.
        let total = rows.len();
        let mut resolved = Vec::with_capacity(if errors.is_empty() { rows.len() } else { 0 });
        let mut keep = Vec::with_capacity(rows.len());
        for (i, Lined { line, row }) in rows.iter().enumerate() {
            let line = *line;
            let ok = self.check_row(&teams, &find, repeats.get(&(i as u32)).copied(), line, row, errors);
            keep.push(ok.is_some());
            if let Some(r) = ok {
                resolved.push(r);
            }
        }
        if errors.is_empty() {
            let mut i = 0;
            rows.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        } else {
            rows = Vec::new();
            resolved = Vec::new();
        }
        Ok(Plan { rows: total, teams, items: rows, resolved })
    }

    /// Checks one row; its resolution, or None after recording its errors.
    fn check_row(
        &self,
        teams: &[Team],
        find: &impl Fn(&Row) -> Found,
        repeat_of: Option<u64>,
        line: u64,
        row: &Row,
        errors: &mut Errors,
    ) -> Option<Resolved> {
        let (t, found) = match find(row) {
            Found::Yes(t, found) => (t, found),
            Found::No(column, message) => {
                errors.at(line, column, message);
                return None;
            }
        };
        if let Some(first) = repeat_of {
            errors.at(line, "id_number", format!("与第 {first} 行是同一名队员"));
            return None;
        }
        let existing = found.map(|i| &teams[t as usize].members[i as usize]);
        if let (PhoneCell::Masked(m), e) = (&row.phone, existing)
            && e.and_then(|e| e.plain_phone.as_deref()).map(mask_phone).as_deref() != Some(m.as_str())
        {
            errors.at(line, "phone", "脱敏的电话与已登记的不符；请填写完整号码");
            return None;
        }
        let status = match (row.status, existing) {
            (None, Some(e)) => e.row.status,
            (None, None) => MemberStatus::Available,
            (Some(s), Some(e)) => match members::check_status_change(e.row.status, s) {
                Ok(()) => s,
                Err(e) => {
                    errors.at(line, "status", problem_text(&e));
                    return None;
                }
            },
            (Some(s), None) if matches!(s, MemberStatus::Available | MemberStatus::Unavailable) => s,
            (Some(_), None) => {
                errors.at(line, "status", "新队员的状态应为 available 或 unavailable");
                return None;
            }
        };
        // The rules every member's details follow (lengths, dates, duplicates), as the API's.
        let details = match existing {
            Some(e) => row.merged_details(&e.details),
            None => row.new_details(),
        };
        if let Err(e) = members::check_details(&details.skills, &details.certificates, &details.insurance) {
            errors.row(line, problem_text(&e));
            return None;
        }
        Some(Resolved { team: t, found, status })
    }
}
