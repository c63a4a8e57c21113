//! Warning storage: the warnings, the regions each is passed down to, and the findings of each
//! warning's targeted readiness check.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::{CapStatus, MsgType, Reference, Status};
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::vocab::Hazard;
use crate::{with_db, with_tx};

/// A warning as stored and shown.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Warning {
    /// Id.
    pub id: i64,
    /// CAP identifier (`152523000000XX_YYYYMMDDhhmmss` for warnings issued here; as received for
    /// imported ones). Never reused.
    pub identifier: String,
    /// CAP sender.
    pub sender: String,
    /// `local` (issued here) or `import` (received).
    pub origin: String,
    /// Alert, update or cancel.
    #[sqlx(try_from = "String")]
    pub msg_type: MsgType,
    /// Actual or exercise.
    #[sqlx(try_from = "String")]
    pub cap_status: CapStatus,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// Hazard.
    #[sqlx(try_from = "String")]
    pub hazard: Hazard,
    /// Level 1 (一级, red) to 4 (四级, blue).
    pub level: i64,
    /// Event name (CAP `event`), e.g. 暴雪.
    pub event: String,
    /// Event code, when known (e.g. 11B04).
    pub event_code: Option<String>,
    /// Headline (Chinese).
    pub headline: String,
    /// Description (Chinese): what is coming, what to watch.
    pub description: String,
    /// Measures (防御指南).
    pub instruction: String,
    /// Issuer (发布单位), e.g. 苏尼特左旗气象台.
    pub issuer: String,
    /// Region the warning is issued for (its own jurisdiction).
    pub issuing_region: String,
    /// Issue time (CAP `sent`).
    pub sent_at: Timestamp,
    /// Effective from.
    pub effective_at: Timestamp,
    /// Expires at (the scheduler moves an issued warning to `expired` then).
    pub expires_at: Timestamp,
    /// Area description (CAP `areaDesc`).
    pub area_desc: String,
    /// Polygon as (lon, lat) points, when known.
    #[schemars(with = "Option<Vec<(f64, f64)>>")]
    pub polygon: Option<Json<Vec<(f64, f64)>>>,
    /// Earlier messages this one updates or cancels.
    #[schemars(with = "Vec<Reference>")]
    pub refs: Json<Vec<Reference>>,
    /// Minutes a region has to acknowledge before it is reminded.
    pub ack_within_minutes: i64,
    /// Summary of the targeted readiness check run when it was issued.
    #[schemars(with = "Option<Value>")]
    pub readiness: Option<Json<Value>>,
    /// When it was issued (or imported) here.
    pub issued_at: Option<Timestamp>,
    /// When it stopped being active (updated, cancelled, expired).
    pub ended_at: Option<Timestamp>,
    /// The message that ended it (update or cancel).
    pub ended_by: Option<i64>,
    /// Who created the record.
    pub created_by: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "id, identifier, sender, origin, msg_type, cap_status, status, hazard, level, event, event_code, headline, description, instruction, issuer, issuing_region, sent_at, effective_at, expires_at, area_desc, polygon, refs, ack_within_minutes, readiness, issued_at, ended_at, ended_by, created_by, created_at, updated_at";

/// A warning to store.
#[derive(Debug, Clone)]
pub struct NewWarning {
    /// CAP identifier.
    pub identifier: String,
    /// CAP sender.
    pub sender: String,
    /// `local` or `import`.
    pub origin: &'static str,
    /// Message type.
    pub msg_type: MsgType,
    /// Actual or exercise.
    pub cap_status: CapStatus,
    /// Hazard.
    pub hazard: Hazard,
    /// Level 1–4.
    pub level: u8,
    /// Event name.
    pub event: String,
    /// Event code.
    pub event_code: Option<String>,
    /// Headline.
    pub headline: String,
    /// Description.
    pub description: String,
    /// Measures.
    pub instruction: String,
    /// Issuer.
    pub issuer: String,
    /// Issuing region.
    pub issuing_region: String,
    /// Sent.
    pub sent_at: Timestamp,
    /// Effective.
    pub effective_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Area description.
    pub area_desc: String,
    /// Polygon (lon, lat).
    pub polygon: Option<Vec<(f64, f64)>>,
    /// References.
    pub refs: Vec<Reference>,
    /// Acknowledgement window, minutes.
    pub ack_within_minutes: i64,
    /// The message as received (imports only), kept verbatim.
    pub original_xml: Option<String>,
}

/// Inserts a warning as a draft; returns its id.
pub async fn insert(tx: &mut Tx, w: &NewWarning, by: &str, now: Timestamp) -> Result<i64, sqlx::Error> {
    let polygon = w.polygon.as_ref().map(Json);
    let refs = Json(&w.refs);
    with_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO warnings (identifier, sender, origin, msg_type, cap_status, status, hazard, level, event, event_code,
             headline, description, instruction, issuer, issuing_region, sent_at, effective_at, expires_at, area_desc,
             polygon, refs, ack_within_minutes, original_xml, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $24)
         RETURNING id"
    )
    .bind(&w.identifier)
    .bind(&w.sender)
    .bind(w.origin)
    .bind(w.msg_type.code())
    .bind(w.cap_status.code())
    .bind(w.hazard.code())
    .bind(w.level as i64)
    .bind(&w.event)
    .bind(&w.event_code)
    .bind(&w.headline)
    .bind(&w.description)
    .bind(&w.instruction)
    .bind(&w.issuer)
    .bind(&w.issuing_region)
    .bind(w.sent_at)
    .bind(w.effective_at)
    .bind(w.expires_at)
    .bind(&w.area_desc)
    .bind(polygon)
    .bind(refs)
    .bind(w.ack_within_minutes)
    .bind(&w.original_xml)
    .bind(by)
    .bind(now)
    .fetch_one(c)
    .await
    })
}

/// Sets a warning's identifier (local warnings get theirs once their id is known).
pub async fn set_identifier(tx: &mut Tx, id: i64, identifier: &str) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("UPDATE warnings SET identifier = $2 WHERE id = $1")
        .bind(id)
        .bind(identifier)
        .execute(c)
        .await
        .map(|_| ()))
}

/// The next serial of an issuing unit within one second (0 for the first), counted in
/// `cap_serials`. The upsert takes the row's lock, so two issuers in the same second wait for
/// each other and never get the same number.
pub async fn next_serial(tx: &mut Tx, unit_second: &str) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_scalar(
        "INSERT INTO cap_serials (unit_second, last) VALUES ($1, 0)
         ON CONFLICT (unit_second) DO UPDATE SET last = cap_serials.last + 1 RETURNING last"
    )
    .bind(unit_second)
    .fetch_one(c)
    .await)
}

/// Keeps the summary of the targeted readiness check.
pub async fn set_readiness(tx: &mut Tx, id: i64, summary: &Value) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("UPDATE warnings SET readiness = $2 WHERE id = $1")
        .bind(id)
        .bind(Json(summary))
        .execute(c)
        .await
        .map(|_| ()))
}

/// One warning.
pub async fn get(db: &Db, id: i64) -> Result<Option<Warning>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM warnings WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, Warning>(&sql).bind(id).fetch_optional(p).await)
}

/// One warning, inside a transaction.
pub async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<Warning>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM warnings WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Warning>(&sql).bind(id).fetch_optional(c).await)
}

/// Id and original message of the warning with this identifier, if any (inside a transaction).
pub async fn by_identifier(tx: &mut Tx, identifier: &str) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_as("SELECT id, original_xml FROM warnings WHERE identifier = $1")
        .bind(identifier)
        .fetch_optional(c)
        .await)
}

/// The message as received, for an imported warning.
pub async fn original(db: &Db, id: i64) -> Result<Option<String>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar::<_, Option<String>>("SELECT original_xml FROM warnings WHERE id = $1")
        .bind(id)
        .fetch_optional(p)
        .await)
    .map(Option::flatten)
}

/// Filters of the warning list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningQuery {
    /// Only warnings touching this region (within the jurisdiction; default: the jurisdiction).
    pub region: Option<crate::regions::RegionCode>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only active ones (issued, not yet expired).
    pub active: Option<bool>,
    /// Only this hazard.
    pub hazard: Option<Hazard>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Warnings passed to any region within `bounds`, newest first.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    q: &WarningQuery,
    now: Timestamp,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Warning>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE EXISTS (SELECT 1 FROM warning_regions r WHERE r.warning_id = w.id AND r.region_code >= $1 AND r.region_code <= $2)
          AND ($3 IS NULL OR w.status = $3) AND ($4 IS NULL OR w.hazard = $4)
          AND ($5 = 0 OR (w.status = 'issued' AND w.msg_type <> 'cancel' AND w.expires_at > $6))";
    let cols = COLUMNS.split(", ").map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {cols} FROM warnings w {WHERE} ORDER BY w.sent_at DESC, w.id DESC LIMIT $7 OFFSET $8");
    let count = format!("SELECT COUNT(*) FROM warnings w {WHERE}");
    let status = q.status.map(|s| s.code());
    let hazard = q.hazard.map(|h| h.code());
    let active: i64 = if q.active.unwrap_or(false) { 1 } else { 0 };
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, Warning>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(status)
            .bind(hazard)
            .bind(active)
            .bind(now)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(status)
            .bind(hazard)
            .bind(active)
            .bind(now)
            .fetch_one(p)
            .await?;
        Ok((items, total))
    })
}

/// A region a warning is passed to, with its acknowledgement.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Recipient {
    /// Row id.
    pub id: i64,
    /// Region.
    pub region_code: String,
    /// Region name.
    pub region_name: String,
    /// Named in the warning's area (true) or below a named region (passed down).
    pub declared: bool,
    /// `pending`, `reminded` or `acknowledged`.
    pub ack_status: String,
    /// When it was notified.
    pub notified_at: Option<Timestamp>,
    /// When it is (was) due to be reminded if it has not acknowledged.
    pub remind_at: Option<Timestamp>,
    /// When it was reminded.
    pub reminded_at: Option<Timestamp>,
    /// When it acknowledged.
    pub acked_at: Option<Timestamp>,
    /// Who acknowledged.
    pub acked_by: Option<String>,
}

/// Adds the recipients of a warning (declared regions and every region below them).
pub async fn insert_recipients(tx: &mut Tx, warning_id: i64, regions: &[(String, bool)]) -> Result<(), sqlx::Error> {
    for chunk in regions.chunks(200) {
        let mut sql =
            String::from("INSERT INTO warning_regions (warning_id, region_code, declared, ack_status) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${}, ${}, 'pending')", 2 + 2 * i, 3 + 2 * i));
        }
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(warning_id);
            for (code, declared) in chunk {
                q = q.bind(code).bind(*declared);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Stamps the notification time and the reminder due time of every recipient of a warning.
pub async fn mark_notified(
    tx: &mut Tx,
    warning_id: i64,
    now: Timestamp,
    remind_at: Timestamp,
) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("UPDATE warning_regions SET notified_at = $2, remind_at = $3 WHERE warning_id = $1")
        .bind(warning_id)
        .bind(now)
        .bind(remind_at)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Region codes of a warning's recipients (declared first flag), inside a transaction.
pub async fn recipient_codes(tx: &mut Tx, warning_id: i64) -> Result<Vec<(String, bool)>, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_as(
        "SELECT region_code, declared FROM warning_regions WHERE warning_id = $1 ORDER BY region_code"
    )
    .bind(warning_id)
    .fetch_all(c)
    .await)
}

/// Filters of the acknowledgement list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckQuery {
    /// Only those that have not acknowledged (true) or only those that have (false).
    pub pending: Option<bool>,
}

/// Recipients of a warning within `bounds`, by region code.
pub async fn recipients(
    db: &Db,
    warning_id: i64,
    bounds: (&str, &str),
    pending: Option<bool>,
) -> Result<Vec<Recipient>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as::<_, Recipient>(
        "SELECT r.id, r.region_code, COALESCE(g.name, r.region_code) AS region_name, r.declared, r.ack_status, r.notified_at,
                r.remind_at, r.reminded_at, r.acked_at, r.acked_by
         FROM warning_regions r LEFT JOIN regions g ON g.code = r.region_code
         WHERE r.warning_id = $1 AND r.region_code >= $2 AND r.region_code <= $3
           AND ($4 IS NULL OR ($4 = (r.ack_status <> 'acknowledged')))
         ORDER BY r.region_code"
    )
    .bind(warning_id)
    .bind(bounds.0)
    .bind(bounds.1)
    .bind(pending)
    .fetch_all(p)
    .await
    })
}

/// The recipient row of a region, if the warning was passed to it.
pub async fn recipient_id(db: &Db, warning_id: i64, region: &str) -> Result<Option<i64>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar("SELECT id FROM warning_regions WHERE warning_id = $1 AND region_code = $2")
        .bind(warning_id)
        .bind(region)
        .fetch_optional(p)
        .await)
}

/// A finding of a warning's targeted readiness check, as kept with the warning.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct WarningFinding {
    /// Region.
    pub region_code: String,
    /// Readiness rule id.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// The finding in one Chinese sentence.
    pub message: String,
    /// What to do.
    pub action: String,
    /// Where to act (an API path).
    pub link: Option<String>,
    /// The numbers behind it.
    #[schemars(with = "Value")]
    pub facts: Json<Value>,
}

/// Keeps the findings of a warning's check (multi-row inserts: a warning over a whole banner
/// keeps thousands, and a round trip each is most of the cost on PostgreSQL).
pub async fn insert_findings(tx: &mut Tx, warning_id: i64, findings: &[WarningFinding]) -> Result<(), sqlx::Error> {
    for chunk in findings.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO warning_findings (warning_id, region_code, rule, severity, message, action, link, facts) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = 2 + 7 * i;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
        }
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(warning_id);
            for f in chunk {
                q = q
                    .bind(&f.region_code)
                    .bind(&f.rule)
                    .bind(&f.severity)
                    .bind(&f.message)
                    .bind(&f.action)
                    .bind(&f.link)
                    .bind(&f.facts);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Findings of a warning's check within `bounds`.
pub async fn findings(db: &Db, warning_id: i64, bounds: (&str, &str)) -> Result<Vec<WarningFinding>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, WarningFinding>(
        "SELECT region_code, rule, severity, message, action, link, facts FROM warning_findings
         WHERE warning_id = $1 AND region_code >= $2 AND region_code <= $3 ORDER BY id"
    )
    .bind(warning_id)
    .bind(bounds.0)
    .bind(bounds.1)
    .fetch_all(p)
    .await)
}
