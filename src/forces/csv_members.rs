//! Bulk data for members: `POST /api/v1/import/members` and `GET /api/v1/export/members.csv`
//! (columns `team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,
//! insurance_end,status`).
//!
//! A member is identified by team and ID number. An export made without the personal-data
//! permission carries masked ID numbers and phones; re-importing it must be a no-op, so a masked
//! ID number matches the one existing member of the team with that name and mask (it can never
//! create a member), and a masked phone means "unchanged". Empty cells never erase data.

use std::collections::HashMap;

use chrono::NaiveDate;
use warp::reply::Response;

use super::csv::ExportQuery;
use super::idnumber::{IdNumber, Phone};
use super::member_store::{self, Which};
use super::members::{
    self, Certificate, CertificateStatus, Details, Insurance, Member, MemberRow, check_status_change,
};
use super::personal::{Disclosure, record_reveal};
use super::{MemberStatus, bulk, store};
use crate::audit::{Actor, Change};
use crate::auth::Principal;
use crate::csvio::{self, Column, Record};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::imports::{Errors, Import, Lined};
use crate::personal::Cipher;
use crate::personal::{Field, mask_id, mask_phone};
use crate::regions::import::ImportSummary;
use crate::time::Timestamp;
use crate::vocab::Specialty;

/// Columns of the members file.
pub const MEMBER_COLUMNS: &[Column] = &[
    Column { name: "team_code", zh: "队伍编码", aliases: &[], required: true },
    Column { name: "name", zh: "姓名", aliases: &[], required: true },
    Column { name: "id_number", zh: "身份证号", aliases: &["身份证号码"], required: true },
    Column { name: "phone", zh: "电话", aliases: &["手机", "联系电话"], required: false },
    Column { name: "skills", zh: "专业技能", aliases: &["技能"], required: false },
    Column::optional("insurer", "保险公司"),
    Column::optional("policy_number", "保单号"),
    Column::optional("insurance_start", "保险起期"),
    Column::optional("insurance_end", "保险止期"),
    Column { name: "status", zh: "状态", aliases: &[], required: false },
    Column::optional("certificate_kind", "证书种类"),
    Column::optional("certificate_number", "证书编号"),
    Column::optional("certificate_issued", "发证日期"),
    Column::optional("certificate_expires", "证书有效期至"),
];

/// The certificate columns: several certificates per member, `;`-separated and aligned.
const CERT_COLS: [&str; 4] = ["certificate_kind", "certificate_number", "certificate_issued", "certificate_expires"];

enum Ident {
    Full(IdNumber),
    Masked(String),
}

enum PhoneCell {
    Keep,
    Set(Phone),
    Masked(String),
}

/// A member row as parsed.
pub struct Row {
    team: String,
    name: String,
    id: Ident,
    phone: PhoneCell,
    skills: Option<Vec<Specialty>>,
    insurance: Option<Insurance>,
    certificates: Vec<Certificate>,
    status: Option<MemberStatus>,
}

fn date(rec: &Record, col: &'static str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let v = rec.get(col)?;
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(v, "%Y/%m/%d"))
        .map_err(|_| errors.push(rec.err(col, format!("日期「{v}」无效，应为 YYYY-MM-DD"))))
        .ok()
}

fn parse_row(rec: &Record, errors: &mut Vec<FieldError>) -> Option<Row> {
    let n = errors.len();
    let team = rec.need("team_code", errors).map(str::to_string);
    let name = rec.need("name", errors).map(str::to_string);
    if name.as_ref().is_some_and(|v| v.chars().count() > 50) {
        errors.push(rec.err("name", "超过 50 个字符"));
    }
    let id = rec.need("id_number", errors).and_then(|v| {
        if v.contains('*') {
            Some(Ident::Masked(v.to_string()))
        } else {
            IdNumber::parse(v).map(Ident::Full).map_err(|m| errors.push(rec.err("id_number", m))).ok()
        }
    });
    let phone = match rec.get("phone") {
        None => PhoneCell::Keep,
        Some(v) if v.contains('*') => PhoneCell::Masked(v.to_string()),
        Some(v) => match Phone::parse(v) {
            Ok(p) => PhoneCell::Set(p),
            Err(m) => {
                errors.push(rec.err("phone", m));
                PhoneCell::Keep
            }
        },
    };
    let skills = rec.get("skills").map(|v| {
        let mut out: Vec<Specialty> = Vec::new();
        for s in v.split([';', '；']).map(str::trim).filter(|s| !s.is_empty()) {
            match Specialty::parse(s) {
                Some(k) if !out.contains(&k) => out.push(k),
                Some(_) => {}
                None => errors.push(rec.err("skills", format!("专业「{s}」无效"))),
            }
        }
        out.sort();
        out
    });
    let cols = ["insurer", "policy_number", "insurance_start", "insurance_end"];
    let insurance = if cols.iter().all(|c| rec.get(c).is_none()) {
        None
    } else {
        let insurer = rec.need("insurer", errors).map(str::to_string);
        let policy = rec.need("policy_number", errors).map(str::to_string);
        let start = rec.need("insurance_start", errors).and(date(rec, "insurance_start", errors));
        let end = rec.need("insurance_end", errors).and(date(rec, "insurance_end", errors));
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            errors.push(rec.err("insurance_end", "保险止期不能早于起期"));
        }
        match (insurer, policy, start, end) {
            (Some(insurer), Some(policy_number), Some(start), Some(end)) => {
                Some(Insurance { insurer, policy_number, start, end })
            }
            _ => None,
        }
    };
    let certificates = certificates(rec, errors);
    let status = rec.get("status").and_then(|v| {
        MemberStatus::parse(v).or_else(|| {
            errors.push(rec.err("status", format!("状态「{v}」无效，应为 {}", MemberStatus::choices())));
            None
        })
    });
    if errors.len() != n {
        return None;
    }
    Some(Row { team: team?, name: name?, id: id?, phone, skills, insurance, certificates, status })
}

/// The certificates of a row: kind, number, issue date and expiry date, each column holding
/// one value per certificate separated by `;` (an empty expiry: does not expire).
fn certificates(rec: &Record, errors: &mut Vec<FieldError>) -> Vec<Certificate> {
    let split = |c: &str| -> Vec<String> {
        rec.get(c).map(|v| v.split([';', '；']).map(|s| s.trim().to_string()).collect()).unwrap_or_default()
    };
    let [kinds, numbers, issued, expires] = CERT_COLS.map(split);
    if kinds.is_empty() && numbers.is_empty() && issued.is_empty() && expires.is_empty() {
        return Vec::new();
    }
    let n = kinds.len();
    for (col, v) in CERT_COLS.iter().zip([&kinds, &numbers, &issued, &expires]).skip(1) {
        // An expiry column may be left out entirely (no certificate expires).
        if v.len() != n && !(*col == "certificate_expires" && v.is_empty()) {
            errors.push(rec.err(col, format!("有 {} 项，证书种类有 {n} 项，应一一对应（用 ; 分隔）", v.len())));
            return Vec::new();
        }
    }
    let mut day = |col: &'static str, v: &str| -> Option<NaiveDate> {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(v, "%Y/%m/%d"))
            .map_err(|_| errors.push(rec.err(col, format!("日期「{v}」无效，应为 YYYY-MM-DD"))))
            .ok()
    };
    let mut parsed = Vec::new();
    let mut bad = Vec::new();
    for i in 0..n {
        let (kind, number) = (kinds[i].clone(), numbers[i].clone());
        if kind.is_empty() || number.is_empty() || kind.chars().count() > 60 || number.chars().count() > 60 {
            bad.push(
                rec.err("certificate_number", format!("第 {} 张证书的种类和编号不能为空，且不超过 60 个字符", i + 1)),
            );
            continue;
        }
        let Some(iss) = day("certificate_issued", &issued[i]) else { continue };
        let exp = match expires.get(i).map(String::as_str) {
            None | Some("") => None,
            Some(v) => match day("certificate_expires", v) {
                Some(d) => Some(d),
                None => continue,
            },
        };
        if exp.is_some_and(|e| e < iss) {
            bad.push(rec.err("certificate_expires", format!("证书 {number} 的有效期早于发证日期")));
            continue;
        }
        if parsed.iter().any(|c: &Certificate| c.number == number) {
            bad.push(rec.err("certificate_number", format!("证书编号 {number} 在本行重复")));
            continue;
        }
        parsed.push(Certificate::new(kind, number, iss, exp));
    }
    errors.extend(bad);
    parsed
}

/// A resolved row: the row, the member it updates (None: new), and the wanted details, phone
/// (plain) and status.
/// What a members import writes: each row with the stored member it matches (an index into its
/// team's list), the details, phone and status it asks for.
pub struct Plan {
    rows: usize,
    teams: HashMap<String, (super::teams::TeamRow, Vec<Existing>)>,
    items: Vec<Planned>,
}

/// A row, the index of the stored member it matches, and the details, phone and status it asks for.
type Planned = (Row, Option<usize>, Details, Option<String>, MemberStatus);

/// A stored member, decrypted once.
pub struct Existing {
    row: MemberRow,
    plain_id: String,
    plain_phone: Option<String>,
    details: Details,
}

/// A members file, for a caller: members matched by team and ID number.
pub struct MemberImport {
    principal: Principal,
    actor: Actor,
    now: Timestamp,
    cipher: Cipher,
}

/// `POST /api/v1/import/members`.
pub async fn import(c: Ctx) -> ApiResult<Response> {
    let imp =
        MemberImport { principal: c.caller()?.clone(), actor: c.actor()?, now: c.now(), cipher: c.app.cipher.clone() };
    crate::imports::respond(&c, &imp).await
}

impl Import for MemberImport {
    type Row = Row;
    type Plan = Plan;
    const COLUMNS: &'static [Column] = MEMBER_COLUMNS;

    fn parse(rec: &Record<'_>, _now: Timestamp, errors: &mut Vec<FieldError>) -> Option<Row> {
        parse_row(rec, errors)
    }

    async fn check(&self, db: &Db, rows: Vec<Lined<Row>>, errors: &mut Errors) -> ApiResult<Plan> {
        let (p, cipher) = (&self.principal, &self.cipher);
        // Teams named in the file and their current members, decrypted once: one query for the
        // teams, then one per table for every 500 teams in the jurisdiction (not one per row or
        // per team).
        let named: std::collections::HashSet<&str> = rows.iter().map(|l| l.row.team.as_str()).collect();
        let all = ("000000000000", "999999999999");
        let mut teams: HashMap<String, Option<(super::teams::TeamRow, Vec<Existing>)>> =
            named.iter().map(|code| (code.to_string(), None)).collect();
        for t in store::all(db, all, None).await? {
            if let Some(slot) = teams.get_mut(&t.code) {
                *slot = Some((t, Vec::new()));
            }
        }
        let mine: Vec<i64> =
            teams.values().flatten().filter(|(t, _)| p.scope.contains(&t.region_code)).map(|(t, _)| t.id).collect();
        let (stored, mut details) = member_store::of_teams(db, &mine).await?;
        let code_of: HashMap<i64, String> = teams.values().flatten().map(|(t, _)| (t.id, t.code.clone())).collect();
        for m in stored {
            let Some(plain_id) = m.id_number.as_deref().and_then(|v| cipher.decrypt(Field::MEMBER_ID_NUMBER, v)) else {
                continue;
            };
            let plain_phone = m.phone.as_deref().and_then(|ph| cipher.decrypt(Field::MEMBER_PHONE, ph));
            let Some(Some((_, list))) = code_of.get(&m.team_id).and_then(|c| teams.get_mut(c)) else { continue };
            list.push(Existing { details: details.remove(&m.id).unwrap_or_default(), row: m, plain_id, plain_phone });
        }
        let by_id: HashMap<(&str, &str), usize> = teams
            .iter()
            .filter_map(|(code, t)| Some((code, &t.as_ref()?.1)))
            .flat_map(|(code, list)| {
                list.iter().enumerate().map(move |(i, e)| ((code.as_str(), e.plain_id.as_str()), i))
            })
            .collect();
        // Resolve every row to (team, existing member or new) and the state it asks for.
        let mut items = Vec::new();
        let mut seen: HashMap<(String, String), u64> = HashMap::new();
        let total = rows.len();
        for Lined { line, row } in rows {
            let Some(Some((team, list))) = teams.get(&row.team) else {
                errors.at(line, "team_code", format!("队伍 {} 不存在", row.team));
                continue;
            };
            if !p.scope.contains(&team.region_code) {
                errors.at(line, "team_code", format!("队伍 {} 不在您的辖区内", row.team));
                continue;
            }
            let found: Option<usize> = match &row.id {
                Ident::Full(id) => by_id.get(&(row.team.as_str(), id.as_str())).copied(),
                Ident::Masked(m) => {
                    let hits: Vec<usize> = (0..list.len())
                        .filter(|i| mask_id(&list[*i].plain_id) == *m && list[*i].row.name == row.name)
                        .collect();
                    if hits.len() != 1 {
                        errors.at(
                            line,
                            "id_number",
                            "脱敏的身份证号只能用于匹配本队同名的已有队员；登记新队员须填写完整身份证号",
                        );
                        continue;
                    }
                    Some(hits[0])
                }
            };
            let existing = found.map(|i| &list[i]);
            let key = (
                row.team.clone(),
                existing.map_or_else(
                    || match &row.id {
                        Ident::Full(i) => i.as_str().to_string(),
                        Ident::Masked(m) => m.clone(),
                    },
                    |e| e.plain_id.clone(),
                ),
            );
            if let Some(first) = seen.insert(key, line) {
                errors.at(line, "id_number", format!("与第 {first} 行是同一名队员"));
                continue;
            }
            let phone = match (&row.phone, existing) {
                (PhoneCell::Keep, e) => e.and_then(|e| e.plain_phone.clone()),
                (PhoneCell::Set(ph), _) => Some(ph.as_str().to_string()),
                (PhoneCell::Masked(m), Some(e))
                    if e.plain_phone.as_deref().map(mask_phone).as_deref() == Some(m.as_str()) =>
                {
                    e.plain_phone.clone()
                }
                (PhoneCell::Masked(_), _) => {
                    errors.at(line, "phone", "脱敏的电话与已登记的不符；请填写完整号码");
                    continue;
                }
            };
            let mut details = existing.map(|e| e.details.clone()).unwrap_or_default();
            if let Some(s) = &row.skills {
                details.skills = s.clone();
            }
            for cert in &row.certificates {
                // Added, or corrected in place by number; never removed (certificates are a history).
                match details.certificates.iter_mut().find(|c| c.number == cert.number) {
                    Some(c) => (c.kind, c.issued, c.expires) = (cert.kind.clone(), cert.issued, cert.expires),
                    None => details.certificates.push(cert.clone()),
                }
            }
            if let Some(ins) = &row.insurance {
                details.insurance.retain(|i| i.policy_number != ins.policy_number);
                details.insurance.push(ins.clone());
                details.insurance.sort_by(|a, b| (a.start, &a.policy_number).cmp(&(b.start, &b.policy_number)));
            }
            let status = match (row.status, existing) {
                (None, Some(e)) => e.row.status,
                (None, None) => MemberStatus::Available,
                (Some(s), Some(e)) => match check_status_change(e.row.status, s) {
                    Ok(()) => s,
                    Err(e) => {
                        errors.at(line, "status", problem_text(&e));
                        continue;
                    }
                },
                (Some(s), None) if matches!(s, MemberStatus::Available | MemberStatus::Unavailable) => s,
                (Some(_), None) => {
                    errors.at(line, "status", "新队员的状态应为 available 或 unavailable");
                    continue;
                }
            };
            // The rules every member's details follow (lengths, dates, duplicates), as the API's.
            let details = match members::check_details(&details.skills, &details.certificates, &details.insurance) {
                Ok(checked) if found.is_none() => checked,
                Ok(_) => details,
                Err(e) => {
                    errors.row(line, problem_text(&e));
                    continue;
                }
            };
            if errors.is_empty() {
                // The details now live in `details`: the row keeps only what the write needs.
                let row = Row { skills: None, insurance: None, certificates: Vec::new(), ..row };
                items.push((row, found, details, phone, status));
            }
        }
        let teams = teams.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
        Ok(Plan { rows: total, teams, items })
    }

    async fn write(&self, tx: &mut Tx, plan: Plan) -> ApiResult<ImportSummary> {
        let mut s = ImportSummary { rows: plan.rows, ..Default::default() };
        // In chunks: new and changed members with multi-row statements, then their details,
        // person keys and audit rows (the same rows members::create and an edit write one by one).
        for chunk in plan.items.chunks(1_000) {
            let mut new: Vec<(MemberRow, &Details)> = Vec::new();
            let mut changed: Vec<(MemberRow, &Existing, &Details)> = Vec::new();
            for (row, found, details, phone, status) in chunk {
                let Some((team, list)) = plan.teams.get(&row.team) else { continue };
                match found.map(|i| &list[i]) {
                    None => {
                        let Ident::Full(id) = &row.id else { continue };
                        new.push((self.new_member(team, row, id, phone.as_deref(), *status), details));
                    }
                    Some(e) => match self.changed_member(e, row, details, phone, *status) {
                        Some(m) => changed.push((m, e, details)),
                        None => s.unchanged += 1,
                    },
                }
            }
            let ids = bulk::insert_members(tx, &new.iter().map(|(m, _)| m).collect::<Vec<_>>()).await?;
            for ((m, _), id) in new.iter_mut().zip(ids) {
                m.id = id;
            }
            let moves: Vec<(&MemberRow, MemberStatus)> = changed.iter().map(|(m, e, _)| (m, e.row.status)).collect();
            bulk::update_members(tx, &moves).await?;
            let details: Vec<(i64, &Details)> =
                new.iter().map(|(m, d)| (m.id, *d)).chain(changed.iter().map(|(m, _, d)| (m.id, *d))).collect();
            bulk::set_member_details(tx, &details).await?;
            let mut keys =
                bulk::person_keys(tx, &self.cipher, &new.iter().map(|(m, _)| m.id).collect::<Vec<_>>(), true).await?;
            keys.extend(
                bulk::person_keys(tx, &self.cipher, &changed.iter().map(|(m, ..)| m.id).collect::<Vec<_>>(), false)
                    .await?,
            );
            let mut audit = Vec::with_capacity(new.len() + changed.len());
            for (m, d) in &new {
                audit.push((m, None, Some(self.sealed(m, d, &keys)?)));
            }
            for (m, e, d) in &changed {
                audit.push((m, Some(self.sealed(&e.row, &e.details, &keys)?), Some(self.sealed(m, d, &keys)?)));
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
            s.created += new.len();
            s.updated += changed.len();
        }
        Ok(s)
    }
}

impl MemberImport {
    /// A new member from a row: ID number and phone encrypted, blind index set.
    fn new_member(
        &self,
        team: &super::teams::TeamRow,
        row: &Row,
        id: &IdNumber,
        phone: Option<&str>,
        status: MemberStatus,
    ) -> MemberRow {
        let (cipher, now) = (&self.cipher, self.now);
        MemberRow {
            id: 0,
            team_id: team.id,
            team_code: team.code.clone(),
            region_code: team.region_code.clone(),
            name: row.name.clone(),
            id_number: Some(cipher.encrypt(Field::MEMBER_ID_NUMBER, id.as_str())),
            id_index: Some(cipher.blind_index(id.as_str())),
            phone: phone.map(|ph| cipher.encrypt(Field::MEMBER_PHONE, ph)),
            status,
            temp_callup_id: None,
            anonymised_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The stored member as the row changes it, or None when the row matches what is stored.
    fn changed_member(
        &self,
        e: &Existing,
        row: &Row,
        details: &Details,
        phone: &Option<String>,
        status: MemberStatus,
    ) -> Option<MemberRow> {
        let mut old_skills = e.details.skills.clone();
        old_skills.sort();
        let mut new_skills = details.skills.clone();
        new_skills.sort();
        if e.row.name == row.name
            && e.plain_phone == *phone
            && old_skills == new_skills
            && norm(&e.details.insurance) == norm(&details.insurance)
            && e.details.certificates == details.certificates
            && e.row.status == status
        {
            return None;
        }
        let mut m = e.row.clone();
        m.name = row.name.clone();
        if e.plain_phone != *phone {
            m.phone = phone.as_deref().map(|ph| self.cipher.encrypt(Field::MEMBER_PHONE, ph));
        }
        m.status = status;
        m.updated_at = self.now;
        Some(m)
    }

    /// A member's audit view (masked), its personal fields sealed under the person's key.
    fn sealed(
        &self,
        m: &MemberRow,
        d: &Details,
        keys: &HashMap<i64, crate::personal::PersonKey>,
    ) -> ApiResult<serde_json::Value> {
        let key = keys.get(&m.id).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no person key for {}", m.id)))?;
        let view = Member::view(m, d.clone(), &self.cipher, Disclosure::MASKED, self.now);
        Ok(members::seal_personal(super::audit_json(&view)?, key))
    }
}

fn norm(v: &[Insurance]) -> Vec<Insurance> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| (a.start, &a.policy_number).cmp(&(b.start, &b.policy_number)));
    v
}

fn problem_text(e: &ApiError) -> String {
    match e {
        ApiError::Conflict(m) => m.clone(),
        ApiError::Validation { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// `GET /api/v1/export/members.csv`.
pub async fn export(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: ExportQuery = c.query()?;
    let d = Disclosure::ask(p, q.reveal, p.scope.code.as_str())?;
    let (lo, hi) = p.scope.bounds();
    let (cipher, now) = (&c.app.cipher, c.now());
    let mut out = Vec::new();
    let mut revealed = Vec::new();
    for t in store::all(&c.app.db, (&lo, &hi), None).await? {
        let mut details = member_store::details(&c.app.db, Which::Team(t.id)).await?;
        for m in member_store::rows(&c.app.db, Which::Team(t.id)).await? {
            if m.anonymised_at.is_some() || m.id_number.is_none() {
                continue;
            }
            let det = details.remove(&m.id).unwrap_or_default();
            let latest = det.insurance.iter().max_by_key(|i| (i.end, i.start));
            let skills: Vec<&str> = det.skills.iter().map(|s| s.code()).collect();
            out.push(vec![
                t.code.clone(),
                m.name.clone(),
                d.id_number(cipher, m.id_number.as_deref()).unwrap_or_default(),
                d.phone(cipher, Field::MEMBER_PHONE, m.phone.as_deref()).unwrap_or_default(),
                skills.join(";"),
                latest.map(|i| i.insurer.clone()).unwrap_or_default(),
                latest.map(|i| i.policy_number.clone()).unwrap_or_default(),
                latest.map(|i| i.start.to_string()).unwrap_or_default(),
                latest.map(|i| i.end.to_string()).unwrap_or_default(),
                m.status.as_str().to_string(),
            ]);
            // The certificates in force (renewed and revoked ones stay in the member's history).
            let certs: Vec<&Certificate> =
                det.certificates.iter().filter(|c| c.status == CertificateStatus::Active).collect();
            let join = |f: &dyn Fn(&Certificate) -> String| certs.iter().map(|c| f(c)).collect::<Vec<_>>().join(";");
            let row = out.last_mut().expect("just pushed");
            row.push(join(&|c| c.kind.clone()));
            row.push(join(&|c| c.number.clone()));
            row.push(join(&|c| c.issued.to_string()));
            row.push(join(&|c| c.expires.map(|e| e.to_string()).unwrap_or_default()));
            revealed.push((m.id, m.region_code.clone()));
        }
    }
    if d.reveal {
        let mut tx = c.app.db.begin().await?;
        for (id, region) in &revealed {
            record_reveal(
                &mut tx,
                &c.actor()?,
                now,
                "member",
                &id.to_string(),
                region,
                &["id_number", "phone"],
                "GET /api/v1/export/members.csv",
            )
            .await?;
        }
        tx.commit().await?;
    }
    csvio::export(c.route, "队员", csvio::header_row(MEMBER_COLUMNS, q.chinese()?), out).await
}
