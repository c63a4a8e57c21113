//! A member's certificates as a history: list all, add one, renew one (a new certificate of the
//! same kind; the old one is kept, marked `renewed`), revoke one. Each is audited on the member.
//! `CERTIFICATE_EXPIRED` looks at the kind: it fires only when no certificate of that kind is
//! valid any more, so a renewal silences it without erasing the old certificate.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::member_store::{self, Which};
use super::members::{Certificate, MemberRow};
use super::{audit_json, text};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::time::Timestamp;
use crate::transition::Lifecycle;
use crate::with_tx;

const TAG: &str = "社会应急力量";

/// Certificates change state through [`crate::transition!`].
/// The member named in the path.
const ON_MEMBER: &[Region] = &[Region::Path("id", &access::MEMBER)];

const CERTIFICATE: Lifecycle = Lifecycle::new("member_certificates", "证书");

/// Body of `POST /api/v1/members/{id}/certificates/{number}/renew`: the new certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    /// Number of the new certificate.
    pub number: String,
    /// Its issue date.
    pub issued: NaiveDate,
    /// Its expiry date.
    #[serde(default)]
    pub expires: Option<NaiveDate>,
}

/// Body of `POST /api/v1/members/{id}/certificates/{number}/revoke`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Why (e.g. 发证机关注销).
    pub reason: String,
}

/// Routes for certificates.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/members/{id}/certificates",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "队员的全部证书（含已过期、已换证、已注销），即证书历史。",
                response: Some(schema::<Page<Certificate>>()),
                ..Doc::new(TAG, "队员证书")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, ON_MEMBER),
        route(
            Method::POST,
            "/api/v1/members/{id}/certificates",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "为队员添加一张证书（编号在该队员内唯一，重复为 409）。需要修改权限。",
                request: Some(schema::<Certificate>()),
                response: Some(schema::<Certificate>()),
                status: 201,
                ..Doc::new(TAG, "添加证书")
            },
            |c| Box::pin(add(c)),
        )
        .guard(Perm::Write, ON_MEMBER),
        route(
            Method::POST,
            "/api/v1/members/{id}/certificates/{number}/renew",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "换证：登记同种类的新证书，原证书保留并标记为已换证（renewed）。只有有效记录（active）可以换证。",
                request: Some(schema::<Renewal>()),
                response: Some(schema::<Certificate>()),
                status: 201,
                ..Doc::new(TAG, "换证")
            },
            |c| Box::pin(renew(c)),
        )
        .guard(Perm::Write, ON_MEMBER),
        route(
            Method::POST,
            "/api/v1/members/{id}/certificates/{number}/revoke",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "注销一张证书（须说明原因）；证书保留在历史中，不再视为有效。",
                request: Some(schema::<Revocation>()),
                response: Some(schema::<Certificate>()),
                ..Doc::new(TAG, "注销证书")
            },
            |c| Box::pin(revoke(c)),
        )
        .guard(Perm::Write, ON_MEMBER),
    ]
}

async fn load(c: &Ctx, perm: Perm) -> ApiResult<MemberRow> {
    let m = super::routes_members::load(c).await?;
    if perm == Perm::Write && m.anonymised_at.is_some() {
        return Err(ApiError::Conflict("该临时志愿者的个人信息已匿名化，不能再修改".into()));
    }
    Ok(m)
}

async fn certificates_tx(tx: &mut Tx, member: i64) -> ApiResult<Vec<Certificate>> {
    Ok(member_store::details_tx(tx, Which::Id(member)).await?.remove(&member).unwrap_or_default().certificates)
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let m = load(&c, Perm::Read).await?;
    let items = member_store::details(&c.app.db, Which::Id(m.id)).await?.remove(&m.id).unwrap_or_default().certificates;
    json(&Page { total: items.len() as i64, items })
}

/// Validates a new certificate.
fn check(kind: &str, number: &str, issued: NaiveDate, expires: Option<NaiveDate>) -> ApiResult<Certificate> {
    let kind = text("kind", kind, 60)?;
    let number = text("number", number, 60)?;
    if expires.is_some_and(|e| e < issued) {
        return Err(ApiError::invalid("expires", "有效期不能早于发证日期"));
    }
    Ok(Certificate::new(kind, number, issued, expires))
}

async fn insert(tx: &mut Tx, member: i64, cert: &Certificate) -> ApiResult<()> {
    let done = with_tx!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO member_certificates (member_id, kind, number, issued, expires, status) VALUES ($1, $2, $3, $4, $5, 'active')"
    )
    .bind(member)
    .bind(&cert.kind)
    .bind(&cert.number)
    .bind(cert.issued)
    .bind(cert.expires)
    .execute(c)
    .await
    .map(|_| ())
    });
    match done {
        Ok(_) => Ok(()),
        Err(e) if crate::db::is_unique_violation(&e) => {
            Err(ApiError::Conflict(format!("该队员已有编号为 {} 的证书", cert.number)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn row_id(tx: &mut Tx, member: i64, number: &str) -> ApiResult<(i64, String)> {
    let row: Option<(i64, String)> = with_tx!(&mut *tx, |c| sqlx::query_as(
        "SELECT id, kind FROM member_certificates WHERE member_id = $1 AND number = $2"
    )
    .bind(member)
    .bind(number)
    .fetch_optional(c)
    .await)?;
    row.ok_or_else(|| ApiError::NotFound(format!("队员 {member} 没有编号为 {number} 的证书")))
}

/// Audits a certificate change on the member, then commits and answers with the certificate.
#[allow(clippy::too_many_arguments)]
async fn finish(
    c: &Ctx,
    mut tx: Tx,
    m: &MemberRow,
    action: &str,
    before: Vec<Certificate>,
    number: &str,
    now: Timestamp,
    status: StatusCode,
) -> ApiResult<Response> {
    let after = certificates_tx(&mut tx, m.id).await?;
    let change = Change {
        action,
        entity_type: "member",
        entity_id: &m.id.to_string(),
        region_code: Some(&m.region_code),
        before: Some(audit_json(&serde_json::json!({"certificates": before}))?),
        after: Some(audit_json(&serde_json::json!({"certificates": after}))?),
    };
    audit::record(&mut tx, &c.actor()?, now, change).await?;
    tx.commit().await?;
    let cert = after
        .into_iter()
        .find(|x| x.number == number)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("certificate vanished")))?;
    json_status(status, &cert)
}

async fn add(c: Ctx) -> ApiResult<Response> {
    let b: Certificate = c.json()?;
    let m = load(&c, Perm::Write).await?;
    let cert = check(&b.kind, &b.number, b.issued, b.expires)?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let before = certificates_tx(&mut tx, m.id).await?;
    insert(&mut tx, m.id, &cert).await?;
    finish(&c, tx, &m, "certificate_add", before, &cert.number, now, StatusCode::CREATED).await
}

async fn renew(c: Ctx) -> ApiResult<Response> {
    let b: Renewal = c.json()?;
    let m = load(&c, Perm::Write).await?;
    let old = c.param("number").to_string();
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let (old_id, kind) = row_id(&mut tx, m.id, &old).await?;
    let cert = check(&kind, &b.number, b.issued, b.expires)?;
    let before = certificates_tx(&mut tx, m.id).await?;
    crate::transition!(&mut tx, CERTIFICATE, old_id, from ["active"] => "renewed", set { "renewed_by" = cert.number.clone() })?;
    insert(&mut tx, m.id, &cert).await?;
    finish(&c, tx, &m, "certificate_renew", before, &cert.number, now, StatusCode::CREATED).await
}

async fn revoke(c: Ctx) -> ApiResult<Response> {
    let b: Revocation = c.json()?;
    let m = load(&c, Perm::Write).await?;
    let number = c.param("number").to_string();
    let reason = text("reason", &b.reason, 500)?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let (id, _) = row_id(&mut tx, m.id, &number).await?;
    let before = certificates_tx(&mut tx, m.id).await?;
    crate::transition!(&mut tx, CERTIFICATE, id, from ["active", "renewed"] => "revoked",
        set { "revoked_reason" = reason, "revoked_at" = now })?;
    finish(&c, tx, &m, "certificate_revoke", before, &number, now, StatusCode::OK).await
}
