//! Reading and staging a members file: each row parsed, its team checked, and everything a new
//! member needs prepared outside any lock (AES-GCM of the ID number and phone, the blind index,
//! a person key, the sealed audit view), then written at once into `TEMP` tables on the import's
//! own connection. Whether a row makes a new member or updates a stored one is decided after the
//! whole file is staged ([`super::resolve`]).

use std::collections::HashMap;

use super::super::MemberStatus;
use super::super::members::{self, Certificate, Insurance, MemberRow};
use super::super::store;
use super::row::{self, Ident, PhoneCell};
use super::{MemberImport, problem_text, sealed};
use crate::csvio::Record;
use crate::db::{Backend, Db, Held};
use crate::error::{ApiResult, FieldError};
use crate::imports::bulk;
use crate::personal::{Cipher, Field};
use crate::time::Timestamp;
use crate::with_held;

mod pg;

/// The staged rows: one per readable row whose team exists in the caller's jurisdiction.
pub const STAGE: &str = "import_members";
/// The wide part of each staged row (`line`, `id_enc`, `phone_enc`, `key_enc`, `before_state`,
/// `after_state`): apart from [`STAGE`], so the checks that scan and update the staged rows
/// read a few dozen bytes a row, not the sealed audit views.
pub const DATA: &str = "import_member_data";
/// The skills each staged row writes (`line`, `specialty`).
pub const SKILLS: &str = "import_member_skills";
/// The certificates each staged row writes (`line`, `pos`, …).
pub const CERTS: &str = "import_member_certs";
/// The policies each staged row writes (`line`, `pos`, …).
pub const POLICIES: &str = "import_member_policies";

/// The phone cell as staged (`phone_kind`).
pub const PHONE_KEEP: i64 = 0;
/// A full phone, staged encrypted.
pub const PHONE_SET: i64 = 1;
/// A masked phone, staged as read.
pub const PHONE_MASKED: i64 = 2;

/// A team a row may name.
struct TeamRef {
    id: i64,
    code: String,
    region: String,
    /// In the caller's jurisdiction.
    mine: bool,
}

/// What the check of a row needs: every team by code, the key, the clock.
pub struct Lookup {
    teams: HashMap<String, TeamRef>,
    cipher: Cipher,
    now: Timestamp,
}

/// A checked row, as staged.
pub struct StagedMember {
    line: u64,
    team_id: i64,
    region: String,
    name: String,
    /// The blind index of a full ID number (None: masked).
    id_index: Option<String>,
    /// A masked ID number as read.
    masked_id: Option<String>,
    /// The ID number, encrypted (full numbers only).
    id_enc: Option<String>,
    phone_kind: i64,
    /// A full phone, encrypted.
    phone_enc: Option<String>,
    /// A masked phone as read.
    phone_mask: Option<String>,
    skills: Option<row::Skills>,
    status: Option<MemberStatus>,
    /// The status a new member gets.
    status_to: MemberStatus,
    /// Why the row cannot make a new member (column, message), should it turn out to be new.
    new_error: Option<(&'static str, String)>,
    /// A new member's person key, encrypted.
    key_enc: Option<String>,
    /// A new member's audit view (personal fields sealed; `id` filled in by the write).
    after: Option<String>,
    certs: Vec<Certificate>,
    policy: Option<Insurance>,
}

impl MemberImport {
    /// Every team (a few hundred bytes each, once): rows name them by code.
    pub(super) async fn lookup_teams(&self, db: &Db) -> ApiResult<Lookup> {
        let all = ("000000000000", "999999999999");
        let teams = store::all(db, all, None)
            .await?
            .into_iter()
            .map(|t| {
                let mine = self.principal.scope.contains(&t.region_code);
                (t.code.clone(), TeamRef { id: t.id, code: t.code, region: t.region_code, mine })
            })
            .collect();
        Ok(Lookup { teams, cipher: self.cipher.clone(), now: self.now })
    }
}

/// Parses and checks one record; the row to stage, or None after recording its errors.
pub fn check(lookup: &Lookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<StagedMember> {
    let row = row::parse(rec, errors)?;
    let Some(team) = lookup.teams.get(row.team.as_str()) else {
        errors.push(rec.err("team_code", format!("队伍 {} 不存在", row.team)));
        return None;
    };
    if !team.mine {
        errors.push(rec.err("team_code", format!("队伍 {} 不在您的辖区内", row.team)));
        return None;
    }
    let cipher = &lookup.cipher;
    let (phone_kind, phone_enc, phone_mask) = match &row.phone {
        PhoneCell::Keep => (PHONE_KEEP, None, None),
        PhoneCell::Set(p) => (PHONE_SET, Some(cipher.encrypt(Field::MEMBER_PHONE, p)), None),
        PhoneCell::Masked(m) => (PHONE_MASKED, None, Some(m.to_string())),
    };
    let details = row.new_details();
    let mut s = StagedMember {
        line: rec.line,
        team_id: team.id,
        region: team.region.clone(),
        name: row.name.to_string(),
        id_index: None,
        masked_id: None,
        id_enc: None,
        phone_kind,
        phone_enc,
        phone_mask,
        skills: row.skills,
        status: row.status,
        status_to: MemberStatus::Available,
        new_error: None,
        key_enc: None,
        after: None,
        certs: details.certificates.clone(),
        policy: details.insurance.first().cloned(),
    };
    let id = match &row.id {
        Ident::Masked(m) => {
            s.masked_id = Some(m.to_string());
            return Some(s);
        }
        Ident::Full(_) => row.id.full().unwrap_or_default(),
    };
    s.id_index = Some(cipher.blind_index(id));
    s.id_enc = Some(cipher.encrypt(Field::MEMBER_ID_NUMBER, id));
    // The checks a new member passes (the one-by-one API's), in the order the import reports.
    s.status_to = match row.status {
        None => MemberStatus::Available,
        Some(st @ (MemberStatus::Available | MemberStatus::Unavailable)) => st,
        Some(_) => MemberStatus::Available,
    };
    if matches!(row.phone, PhoneCell::Masked(_)) {
        s.new_error = Some(("phone", "脱敏的电话与已登记的不符；请填写完整号码".into()));
    } else if row.status.is_some_and(|st| !matches!(st, MemberStatus::Available | MemberStatus::Unavailable)) {
        s.new_error = Some(("status", "新队员的状态应为 available 或 unavailable".into()));
    } else if let Err(e) = members::check_details(&details.skills, &details.certificates, &details.insurance) {
        s.new_error = Some(("", problem_text(&e)));
    }
    if s.new_error.is_some() {
        return Some(s);
    }
    let m = MemberRow {
        id: 0,
        team_id: team.id,
        team_code: team.code.clone(),
        region_code: team.region.clone(),
        name: s.name.clone(),
        id_number: s.id_enc.clone(),
        id_index: s.id_index.clone(),
        phone: s.phone_enc.clone(),
        status: s.status_to,
        temp_callup_id: None,
        anonymised_at: None,
        created_at: lookup.now,
        updated_at: lookup.now,
    };
    let (key, key_enc) = cipher.new_person_key();
    match sealed(&m, details, cipher, lookup.now, &key) {
        // The write fills in the id where the view has `"id":0,` (see `write`).
        Ok(after) if after.matches("\"id\":0,").count() == 1 => (s.after, s.key_enc) = (Some(after), Some(key_enc)),
        Ok(_) => s.new_error = Some(("", "内部错误：审计视图的格式不符".into())),
        Err(e) => s.new_error = Some(("", problem_text(&e))),
    }
    Some(s)
}

/// Creates the staging tables on the import's connection.
pub async fn create(conn: &mut Held) -> Result<(), sqlx::Error> {
    let (int, date) = match conn.backend() {
        Backend::Sqlite => ("INTEGER", "TEXT"),
        Backend::Postgres => ("BIGINT", "DATE"),
    };
    let sqls = [
        format!(
            "CREATE TEMP TABLE {STAGE} (line {int} PRIMARY KEY, team_id {int} NOT NULL, region_code TEXT NOT NULL,
               name TEXT NOT NULL, id_index TEXT, masked_id TEXT, phone_kind {int} NOT NULL,
               phone_mask TEXT, skills {int}, status TEXT, status_to TEXT NOT NULL,
               new_error_column TEXT, new_error TEXT,
               member_id {int}, dup {int} NOT NULL DEFAULT 0, action {int} NOT NULL DEFAULT 0,
               from_status TEXT, seq {int})"
        ),
        format!(
            "CREATE TEMP TABLE {DATA} (line {int} PRIMARY KEY, id_enc TEXT, phone_enc TEXT, key_enc TEXT, before_state TEXT, after_state TEXT)"
        ),
        format!("CREATE TEMP TABLE {SKILLS} (line {int} NOT NULL, specialty TEXT NOT NULL, PRIMARY KEY (line, specialty))"),
        format!(
            "CREATE TEMP TABLE {CERTS} (line {int} NOT NULL, pos {int} NOT NULL, kind TEXT NOT NULL, number TEXT NOT NULL,
               issued {date} NOT NULL, expires {date}, PRIMARY KEY (line, pos))"
        ),
        format!(
            "CREATE TEMP TABLE {POLICIES} (line {int} NOT NULL, pos {int} NOT NULL, insurer TEXT NOT NULL,
               policy_number TEXT NOT NULL, start_date {date} NOT NULL, end_date {date} NOT NULL, PRIMARY KEY (line, pos))"
        ),
    ];
    for sql in sqls {
        with_held!(&mut *conn, |c| sqlx::query(&sql).execute(c).await.map(|_| ()))?;
    }
    if let Held::Postgres(c) = conn {
        pg::add_columns(c).await?;
    }
    Ok(())
}

/// Stages a chunk of checked rows: multi-row inserts into the staging tables (PostgreSQL: `COPY`,
/// see [`pg`]).
pub async fn stage(conn: &mut Held, rows: &[StagedMember]) -> Result<(), sqlx::Error> {
    if let Held::Postgres(c) = conn {
        return pg::stage(c, rows).await;
    }
    for chunk in rows.chunks(bulk::chunk(13)) {
        with_held!(&mut *conn, |c| {
            let mut q = sqlx::QueryBuilder::new(format!(
                "INSERT INTO {STAGE} (line, team_id, region_code, name, id_index, masked_id, phone_kind,
                   phone_mask, skills, status, status_to, new_error_column, new_error) "
            ));
            q.push_values(chunk, |mut b, s| {
                b.push_bind(s.line as i64)
                    .push_bind(s.team_id)
                    .push_bind(&s.region)
                    .push_bind(&s.name)
                    .push_bind(&s.id_index)
                    .push_bind(&s.masked_id)
                    .push_bind(s.phone_kind)
                    .push_bind(&s.phone_mask)
                    .push_bind(s.skills.map(|k| i64::from(k.bits())))
                    .push_bind(s.status.map(MemberStatus::as_str))
                    .push_bind(s.status_to.as_str())
                    .push_bind(s.new_error.as_ref().map(|e| e.0))
                    .push_bind(s.new_error.as_ref().map(|e| e.1.as_str()));
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    for chunk in rows.chunks(bulk::chunk(5)) {
        with_held!(&mut *conn, |c| {
            let mut q =
                sqlx::QueryBuilder::new(format!("INSERT INTO {DATA} (line, id_enc, phone_enc, key_enc, after_state) "));
            q.push_values(chunk, |mut b, s| {
                b.push_bind(s.line as i64)
                    .push_bind(&s.id_enc)
                    .push_bind(&s.phone_enc)
                    .push_bind(&s.key_enc)
                    .push_bind(&s.after);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    let skills: Vec<(i64, &'static str)> = rows
        .iter()
        .flat_map(|s| {
            s.skills.map(row::Skills::list).unwrap_or_default().into_iter().map(|k| (s.line as i64, k.code()))
        })
        .collect();
    stage_skills(conn, &skills).await?;
    let certs: Vec<(i64, i64, &Certificate)> =
        rows.iter().flat_map(|s| s.certs.iter().enumerate().map(|(i, c)| (s.line as i64, i as i64, c))).collect();
    for chunk in certs.chunks(bulk::chunk(6)) {
        with_held!(&mut *conn, |c| {
            let mut q =
                sqlx::QueryBuilder::new(format!("INSERT INTO {CERTS} (line, pos, kind, number, issued, expires) "));
            q.push_values(chunk, |mut b, (line, pos, k)| {
                b.push_bind(*line)
                    .push_bind(*pos)
                    .push_bind(&k.kind)
                    .push_bind(&k.number)
                    .push_bind(k.issued)
                    .push_bind(k.expires);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    let policies: Vec<(i64, &Insurance)> =
        rows.iter().filter_map(|s| s.policy.as_ref().map(|p| (s.line as i64, p))).collect();
    stage_policies(conn, &policies).await
}

/// Stages skills rows (`line`, specialty code).
pub async fn stage_skills(conn: &mut Held, skills: &[(i64, &str)]) -> Result<(), sqlx::Error> {
    for chunk in skills.chunks(bulk::chunk(2)) {
        with_held!(&mut *conn, |c| {
            let mut q = sqlx::QueryBuilder::new(format!("INSERT INTO {SKILLS} (line, specialty) "));
            q.push_values(chunk, |mut b, (line, k)| {
                b.push_bind(*line).push_bind(*k);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Stages policies (`line`, policy), each line's in the order given.
pub async fn stage_policies(conn: &mut Held, policies: &[(i64, &Insurance)]) -> Result<(), sqlx::Error> {
    let mut pos = Vec::with_capacity(policies.len());
    for (i, (line, _)) in policies.iter().enumerate() {
        let n = if i > 0 && policies[i - 1].0 == *line { pos[i - 1] + 1 } else { 0i64 };
        pos.push(n);
    }
    let rows: Vec<(i64, i64, &Insurance)> = policies.iter().zip(pos).map(|((l, p), n)| (*l, n, *p)).collect();
    for chunk in rows.chunks(bulk::chunk(6)) {
        with_held!(&mut *conn, |c| {
            let mut q = sqlx::QueryBuilder::new(format!(
                "INSERT INTO {POLICIES} (line, pos, insurer, policy_number, start_date, end_date) "
            ));
            q.push_values(chunk, |mut b, (line, pos, p)| {
                b.push_bind(*line)
                    .push_bind(*pos)
                    .push_bind(&p.insurer)
                    .push_bind(&p.policy_number)
                    .push_bind(p.start)
                    .push_bind(p.end);
            });
            q.build().execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}
