//! Bulk data for members: `POST /api/v1/import/members` and `GET /api/v1/export/members.csv`
//! (columns `team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,
//! insurance_end,status`).
//!
//! A member is identified by team and ID number. An export made without the personal-data
//! permission carries masked ID numbers and phones; re-importing it must be a no-op, so a masked
//! ID number matches the one existing member of the team with that name and mask (it can never
//! create a member), and a masked phone means "unchanged". Empty cells never erase data.
//!
//! The import is the shared pipeline ([`crate::imports`]) with three parts here: [`row`] (a
//! compact parsed row), [`resolve`] (the check against stored members) and [`write`] (the one
//! transaction, with the personal-data crypto of the next chunk running beside it); [`export`]
//! is the way back out.

use warp::reply::Response;

use crate::audit::Actor;
use crate::auth::Principal;
use crate::csvio::{Column, Record};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::imports::{Errors, Import, Lined};
use crate::personal::Cipher;
use crate::regions::import::ImportSummary;
use crate::time::Timestamp;

mod export;
mod resolve;
mod row;
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
    crate::imports::respond(&c, &imp).await
}

impl Import for MemberImport {
    type Row = row::Row;
    type Plan = resolve::Plan;
    const COLUMNS: &'static [Column] = MEMBER_COLUMNS;

    fn parse(rec: &Record<'_>, _now: Timestamp, errors: &mut Vec<FieldError>) -> Option<row::Row> {
        row::parse(rec, errors)
    }

    async fn check(&self, db: &Db, rows: Vec<Lined<row::Row>>, errors: &mut Errors) -> ApiResult<resolve::Plan> {
        self.resolve(db, rows, errors).await
    }

    async fn write(&self, tx: &mut Tx, plan: resolve::Plan) -> ApiResult<ImportSummary> {
        self.write_plan(tx, plan).await
    }
}

fn problem_text(e: &ApiError) -> String {
    match e {
        ApiError::Conflict(m) => m.clone(),
        ApiError::Validation { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}
