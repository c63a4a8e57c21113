//! Bulk data for members: `POST /api/v1/import/members` and `GET /api/v1/export/members.csv`
//! (columns `team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,
//! insurance_end,status`).
//!
//! A member is identified by team and ID number. An export made without the personal-data
//! permission carries masked ID numbers and phones; re-importing it must be a no-op, so a masked
//! ID number matches the one existing member of the team with that name and mask (it can never
//! create a member), and a masked phone means "unchanged". Empty cells never erase data.
//!
//! The import is a staged one ([`crate::imports::staged`]), in four parts here: [`row`] (a
//! parsed row), [`stage`] (each row checked against its team, a new member's personal data
//! encrypted and sealed, and the row written into `TEMP` tables as the file streams by),
//! [`resolve`] (the checks across rows and against stored members, as SQL on the staged rows,
//! and the changes to stored members prepared), [`prepare`] (SQLite: the new members copied into
//! the order the write inserts them in, outside any lock) and [`write`] (the one short
//! transaction of set-based statements); [`export`] is the way back out.

use warp::reply::Response;

use crate::audit::Actor;
use crate::auth::Principal;
use crate::csvio::{Column, Record};
use crate::db::{Db, Held, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::imports::Errors;
use crate::imports::staged::Staged;
use crate::personal::{Cipher, PersonKey};
use crate::regions::import::ImportSummary;
use crate::time::Timestamp;

use super::members::{self, Details, Member, MemberRow};
use super::personal::Disclosure;

mod export;
mod prepare;
mod resolve;
mod row;
mod stage;
mod write;

pub use export::export;

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
    crate::imports::staged::respond(&c, &imp).await
}

#[cfg(feature = "bench")]
impl MemberImport {
    /// A members import by `principal` outside a request (tests: see
    /// [`crate::imports::staged::run_with_meanwhile`]).
    pub fn for_tests(principal: Principal, cipher: Cipher, now: Timestamp) -> MemberImport {
        let actor =
            Actor { name: principal.name.clone(), role: Some(principal.role.as_str().into()), request_id: None };
        MemberImport { principal, actor, now, cipher }
    }
}

impl Staged for MemberImport {
    type Lookup = stage::Lookup;
    type Row = stage::StagedMember;
    const COLUMNS: &'static [Column] = MEMBER_COLUMNS;

    async fn lookup(&self, db: &Db) -> ApiResult<stage::Lookup> {
        self.lookup_teams(db).await
    }

    fn check(lookup: &stage::Lookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<stage::StagedMember> {
        stage::check(lookup, rec, errors)
    }

    async fn create(conn: &mut Held) -> Result<(), sqlx::Error> {
        stage::create(conn).await
    }

    async fn stage(conn: &mut Held, rows: &[stage::StagedMember]) -> Result<(), sqlx::Error> {
        stage::stage(conn, rows).await
    }

    async fn check_staged(&self, conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
        self.resolve(conn, errors).await
    }

    async fn write(&self, tx: &mut Tx, rows: usize) -> ApiResult<ImportSummary> {
        self.write_staged(tx, rows).await
    }

    async fn prepare_write(&self, conn: &mut Held) -> ApiResult<()> {
        self.prepare(conn).await
    }
}

/// A member's audit view (masked) as JSON text, its personal fields sealed under the person's key:
/// what [`members::audit_member`] writes.
fn sealed(m: &MemberRow, d: Details, cipher: &Cipher, now: Timestamp, key: &PersonKey) -> ApiResult<String> {
    let view = Member::view(m, d, cipher, Disclosure::MASKED, now);
    let sealed = members::seal_personal(super::audit_json(&view)?, key);
    serde_json::to_string(&sealed).map_err(|e| ApiError::Internal(e.into()))
}

fn problem_text(e: &ApiError) -> String {
    match e {
        ApiError::Conflict(m) => m.clone(),
        ApiError::Validation { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}
