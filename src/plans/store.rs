//! Plan storage. A `plans` row is the stable identity (key, owner region, kind, pointers to the
//! latest version and the version in force, last drill); `plan_versions` holds each version's
//! content and lifecycle data; `plan_evaluations` the recorded evaluations.

use chrono::NaiveDate;
use sqlx::types::Json;

use super::{DrillForm, PlanContent, PlanKind, PlanStatus, PlanVersion, ResponseLevel, RevisionReason};
use crate::audit::Actor;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// A plan's identity row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    /// Id.
    pub id: i64,
    /// Stable key (files).
    pub plan_key: Option<String>,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: PlanKind,
    /// Number of the latest version.
    pub latest_version: i64,
    /// Number of the version in force (approved or filed), if any.
    pub current_version: Option<i64>,
    /// Last drill.
    pub last_drilled_on: Option<NaiveDate>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

#[derive(Debug, sqlx::FromRow)]
struct VersionRow {
    version: i64,
    #[sqlx(try_from = "String")]
    status: PlanStatus,
    content: Json<PlanContent>,
    revision_reason: Option<String>,
    revision_note: Option<String>,
    issued_on: Option<NaiveDate>,
    issuing_body: Option<String>,
    approved_by: Option<String>,
    filed_with: Option<String>,
    filed_on: Option<NaiveDate>,
    filing_receipt: Option<String>,
    created_by: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<VersionRow> for PlanVersion {
    fn from(r: VersionRow) -> PlanVersion {
        PlanVersion {
            version: r.version,
            status: r.status,
            status_label: r.status.label(),
            revision_reason: r.revision_reason.as_deref().and_then(RevisionReason::parse),
            revision_note: r.revision_note,
            issued_on: r.issued_on,
            issuing_body: r.issuing_body,
            approved_by: r.approved_by,
            filed_with: r.filed_with,
            filed_on: r.filed_on,
            filing_receipt: r.filing_receipt,
            content: r.content.0,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const PLAN_COLS: &str =
    "id, plan_key, region_code, kind, latest_version, current_version, last_drilled_on, created_at, updated_at";
const VERSION_COLS: &str = "version, status, content, revision_reason, revision_note, issued_on, issuing_body, approved_by, filed_with, filed_on, filing_receipt, created_by, created_at, updated_at";

/// One plan by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<PlanRow>, sqlx::Error> {
    let sql = format!("SELECT {PLAN_COLS} FROM plans WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, PlanRow>(&sql).bind(id).fetch_optional(p).await)
}

/// One plan by id inside a transaction (for validation and audit: the lifecycle's transitions
/// decide, see [`super::lifecycle`]).
pub async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<PlanRow>, sqlx::Error> {
    let sql = format!("SELECT {PLAN_COLS} FROM plans WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, PlanRow>(&sql).bind(id).fetch_optional(c).await)
}

/// One plan by key inside a transaction (import).
pub async fn by_key_tx(tx: &mut Tx, key: &str) -> Result<Option<PlanRow>, sqlx::Error> {
    let sql = format!("SELECT {PLAN_COLS} FROM plans WHERE plan_key = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, PlanRow>(&sql).bind(key).fetch_optional(c).await)
}

/// Every version of a plan, oldest first.
pub async fn versions(db: &Db, plan_id: i64) -> Result<Vec<PlanVersion>, sqlx::Error> {
    let sql = format!("SELECT {VERSION_COLS} FROM plan_versions WHERE plan_id = $1 ORDER BY version");
    let rows = with_db!(db, |p| sqlx::query_as::<_, VersionRow>(&sql).bind(plan_id).fetch_all(p).await)?;
    Ok(rows.into_iter().map(PlanVersion::from).collect())
}

/// One version of a plan.
pub async fn version(db: &Db, plan_id: i64, version: i64) -> Result<Option<PlanVersion>, sqlx::Error> {
    let sql = format!("SELECT {VERSION_COLS} FROM plan_versions WHERE plan_id = $1 AND version = $2");
    let row =
        with_db!(db, |p| sqlx::query_as::<_, VersionRow>(&sql).bind(plan_id).bind(version).fetch_optional(p).await)?;
    Ok(row.map(PlanVersion::from))
}

/// One version of a plan, inside a transaction.
pub async fn version_tx(tx: &mut Tx, plan_id: i64, version: i64) -> Result<Option<PlanVersion>, sqlx::Error> {
    let sql = format!("SELECT {VERSION_COLS} FROM plan_versions WHERE plan_id = $1 AND version = $2");
    let row =
        with_tx!(tx, |c| sqlx::query_as::<_, VersionRow>(&sql).bind(plan_id).bind(version).fetch_optional(c).await)?;
    Ok(row.map(PlanVersion::from))
}

/// Inserts the identity row of a new plan (latest_version 1, nothing in force); returns its id.
pub async fn insert_plan(tx: &mut Tx, c: &PlanContent, now: Timestamp) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |conn| {
        sqlx::query_scalar(
            "INSERT INTO plans (plan_key, region_code, kind, latest_version, current_version, last_drilled_on, created_at, updated_at)
             VALUES ($1, $2, $3, 1, NULL, NULL, $4, $4) RETURNING id",
        )
        .bind(&c.key)
        .bind(c.region.as_str())
        .bind(c.kind.code())
        .bind(now)
        .fetch_one(conn)
        .await
    })
}

fn hazards_text(c: &PlanContent) -> String {
    let mut s = String::from(",");
    for h in &c.hazards {
        s.push_str(h.code());
        s.push(',');
    }
    s
}

/// Inserts a version (content, status, revision reason; lifecycle fields from `v`).
pub async fn insert_version(tx: &mut Tx, plan_id: i64, v: &PlanVersion) -> Result<(), sqlx::Error> {
    let c = &v.content;
    with_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO plan_versions (plan_id, version, status, title, hazards, content, content_hash, drill_months, evaluation_months,
                revision_reason, revision_note, issued_on, issuing_body, approved_by, filed_with, filed_on, filing_receipt,
                created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(plan_id)
        .bind(v.version)
        .bind(v.status.code())
        .bind(&c.title)
        .bind(hazards_text(c))
        .bind(Json(c))
        .bind(c.hash())
        .bind(c.drill_months() as i64)
        .bind(c.evaluation_months() as i64)
        .bind(v.revision_reason.map(RevisionReason::code))
        .bind(&v.revision_note)
        .bind(v.issued_on)
        .bind(&v.issuing_body)
        .bind(&v.approved_by)
        .bind(&v.filed_with)
        .bind(v.filed_on)
        .bind(&v.filing_receipt)
        .bind(&v.created_by)
        .bind(v.created_at)
        .bind(v.updated_at)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

/// Writes a version's content and lifecycle fields (the row is found by plan and number).
pub async fn update_version(tx: &mut Tx, plan_id: i64, v: &PlanVersion) -> Result<(), sqlx::Error> {
    let c = &v.content;
    with_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE plan_versions SET status = $3, title = $4, hazards = $5, content = $6, content_hash = $7, drill_months = $8,
                evaluation_months = $9, issued_on = $10, issuing_body = $11, approved_by = $12, filed_with = $13, filed_on = $14,
                filing_receipt = $15, updated_at = $16
             WHERE plan_id = $1 AND version = $2",
        )
        .bind(plan_id)
        .bind(v.version)
        .bind(v.status.code())
        .bind(&c.title)
        .bind(hazards_text(c))
        .bind(Json(c))
        .bind(c.hash())
        .bind(c.drill_months() as i64)
        .bind(c.evaluation_months() as i64)
        .bind(v.issued_on)
        .bind(&v.issuing_body)
        .bind(&v.approved_by)
        .bind(&v.filed_with)
        .bind(v.filed_on)
        .bind(&v.filing_receipt)
        .bind(v.updated_at)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

/// Writes the plan's version pointers and `updated_at`.
pub async fn update_pointers(tx: &mut Tx, p: &PlanRow) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query("UPDATE plans SET latest_version = $2, current_version = $3, updated_at = $4 WHERE id = $1")
            .bind(p.id)
            .bind(p.latest_version)
            .bind(p.current_version)
            .bind(p.updated_at)
            .execute(c)
            .await
            .map(|_| ())
    })
}

/// Records that a plan was drilled on `date` in `form` (for the drills module, when a drill is
/// completed), with an audit row on the plan. Only a form the plan lists as counting
/// (`drill.forms` of the version in force, or of the latest version while none is in force) moves
/// `last_drilled_on` (a tabletop exercise does not satisfy a plan that requires field drills), and
/// only when the plan lies within `lo..=hi` (the jurisdiction of whoever completed the drill).
/// Keeps the latest date: an earlier drill recorded late does not move `last_drilled_on` back.
/// Returns whether the plan changed.
#[allow(clippy::too_many_arguments)]
pub async fn record_drilled(
    tx: &mut Tx,
    actor: &Actor,
    at: Timestamp,
    plan_id: i64,
    date: NaiveDate,
    form: DrillForm,
    (lo, hi): (&str, &str),
) -> Result<bool, sqlx::Error> {
    let content: Option<Json<PlanContent>> = with_tx!(tx, |c| sqlx::query_scalar(
        "SELECT v.content FROM plans p JOIN plan_versions v ON v.plan_id = p.id
           AND v.version = COALESCE(p.current_version, p.latest_version)
         WHERE p.id = $1"
    )
    .bind(plan_id)
    .fetch_optional(c)
    .await)?;
    let Some(content) = content else { return Ok(false) };
    if !content.0.drill_forms().contains(&form) {
        return Ok(false);
    }
    let before: Option<(String, Option<NaiveDate>)> = with_tx!(tx, |c| sqlx::query_as(
        "SELECT region_code, last_drilled_on FROM plans WHERE id = $1 AND region_code BETWEEN $2 AND $3"
    )
    .bind(plan_id)
    .bind(lo)
    .bind(hi)
    .fetch_optional(c)
    .await)?;
    let Some((region, last)) = before else { return Ok(false) };
    if last.is_some_and(|l| l >= date) {
        return Ok(false);
    }
    with_tx!(tx, |c| {
        sqlx::query(
            "UPDATE plans SET last_drilled_on = $2 WHERE id = $1 AND (last_drilled_on IS NULL OR last_drilled_on < $2)",
        )
        .bind(plan_id)
        .bind(date)
        .execute(c)
        .await
        .map(|_| ())
    })?;
    crate::audit::record(
        tx,
        actor,
        at,
        crate::audit::Change {
            action: "drilled",
            entity_type: "plan",
            entity_id: &plan_id.to_string(),
            region_code: Some(&region),
            before: Some(serde_json::json!({ "last_drilled_on": last })),
            after: Some(serde_json::json!({ "last_drilled_on": date })),
        },
    )
    .await?;
    Ok(true)
}

/// A plan in force (its current approved or filed version) with what each response level needs:
/// what readiness checks and drills build on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CurrentPlan {
    /// Plan id.
    pub plan_id: i64,
    /// Stable key, if any.
    pub plan_key: Option<String>,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: PlanKind,
    /// Version in force.
    pub version: i64,
    /// Its status (approved or filed).
    #[sqlx(try_from = "String")]
    pub status: PlanStatus,
    /// Its issue date.
    pub issued_on: Option<NaiveDate>,
    /// Its content (hazards, response levels with supplies and forces, drill requirement).
    pub content: Json<PlanContent>,
    /// Last drill of the plan.
    pub last_drilled_on: Option<NaiveDate>,
}

impl CurrentPlan {
    /// The response levels with their requirements.
    pub fn response_levels(&self) -> &[ResponseLevel] {
        &self.content.0.response_levels
    }
}

/// Plans in force whose owner region lies in `bounds` (inclusive code range, e.g. from
/// `Scope::bounds()`; pass `(code, code)` for one region), ordered by region and id. Plans
/// with no approved or filed version (drafts only, or retired) are not listed.
pub async fn current_plans(db: &Db, bounds: (&str, &str)) -> Result<Vec<CurrentPlan>, sqlx::Error> {
    let sql = "SELECT p.id AS plan_id, p.plan_key, p.region_code, p.kind, c.version, c.status, c.issued_on, c.content, p.last_drilled_on
               FROM plans p JOIN plan_versions c ON c.plan_id = p.id AND c.version = p.current_version
               WHERE p.region_code >= $1 AND p.region_code <= $2 AND c.status IN ('approved', 'filed')
               ORDER BY p.region_code, p.id";
    with_db!(db, |p| sqlx::query_as::<_, CurrentPlan>(sql).bind(bounds.0).bind(bounds.1).fetch_all(p).await)
}

/// A row of the plan list: the latest version's headline and what the deadlines need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SummaryRow {
    /// Plan id.
    pub id: i64,
    /// Key.
    pub plan_key: Option<String>,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: PlanKind,
    /// Latest version number.
    pub latest_version: i64,
    /// Version in force.
    pub current_version: Option<i64>,
    /// Last drill.
    pub last_drilled_on: Option<NaiveDate>,
    /// Title of the latest version.
    pub title: String,
    /// Status of the latest version.
    #[sqlx(try_from = "String")]
    pub status: PlanStatus,
    /// Status of the version in force.
    pub current_status: Option<String>,
    /// Issue date of the version in force.
    pub current_issued_on: Option<NaiveDate>,
    /// Filing date of the version in force.
    pub current_filed_on: Option<NaiveDate>,
    /// Drill interval of the version in force.
    pub current_drill_months: Option<i64>,
    /// Evaluation interval of the version in force.
    pub current_evaluation_months: Option<i64>,
    /// Latest evaluation date.
    pub last_evaluated_on: Option<NaiveDate>,
    /// Hazards of the latest version, `,a,b,`.
    pub hazards: String,
}

/// Filters of the plan list, already parsed.
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Region subtree bounds.
    pub region: Option<(String, String)>,
    /// Kind.
    pub kind: Option<PlanKind>,
    /// Hazard code.
    pub hazard: Option<&'a str>,
    /// Status of the latest version or of the version in force.
    pub status: Option<PlanStatus>,
}

/// Every plan in the jurisdiction bounds matching the filters (plans are few: hundreds per
/// banner; the caller computes deadlines and paginates).
pub async fn list(db: &Db, bounds: (&str, &str), f: &ListFilter<'_>) -> Result<Vec<SummaryRow>, sqlx::Error> {
    let sql = "SELECT p.id, p.plan_key, p.region_code, p.kind, p.latest_version, p.current_version, p.last_drilled_on,
                      v.title, v.status, v.hazards, c.status AS current_status, c.issued_on AS current_issued_on,
                      c.filed_on AS current_filed_on, c.drill_months AS current_drill_months,
                      c.evaluation_months AS current_evaluation_months,
                      (SELECT MAX(e.evaluated_on) FROM plan_evaluations e WHERE e.plan_id = p.id) AS last_evaluated_on
               FROM plans p
               JOIN plan_versions v ON v.plan_id = p.id AND v.version = p.latest_version
               LEFT JOIN plan_versions c ON c.plan_id = p.id AND c.version = p.current_version
               WHERE p.region_code >= $1 AND p.region_code <= $2
                 AND ($3 IS NULL OR p.region_code >= $3) AND ($4 IS NULL OR p.region_code <= $4)
                 AND ($5 IS NULL OR p.kind = $5) AND ($6 IS NULL OR v.hazards LIKE $6)
                 AND ($7 IS NULL OR v.status = $7 OR c.status = $7)
               ORDER BY p.region_code, p.id";
    let (rlo, rhi) = f.region.clone().unzip();
    let kind = f.kind.map(PlanKind::code);
    let hazard = f.hazard.map(|h| format!("%,{h},%"));
    let status = f.status.map(PlanStatus::code);
    with_db!(db, |p| sqlx::query_as::<_, SummaryRow>(sql)
        .bind(bounds.0)
        .bind(bounds.1)
        .bind(&rlo)
        .bind(&rhi)
        .bind(kind)
        .bind(&hazard)
        .bind(status)
        .fetch_all(p)
        .await)
}
