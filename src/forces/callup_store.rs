//! Call-up storage.

use schemars::JsonSchema;
use serde::Serialize;

use super::callups::{CallUpRow, CallUpStatus};
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

const SELECT: &str = "SELECT c.id, c.team_id, t.code AS team_code, t.name AS team_name, c.region_code, c.purpose,
    c.reference, c.specialty, c.headcount, c.report_at, c.report_place, c.report_lon, c.report_lat, c.note, c.status,
    c.requested_by, c.requested_at, c.responded_by, c.responded_at, c.decline_reason, c.closed_by, c.closed_at,
    c.retention_assessment, c.retention_by, c.retention_at
    FROM callups c JOIN teams t ON t.id = c.team_id";

/// One call-up.
pub async fn get(db: &Db, id: i64) -> Result<Option<CallUpRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE c.id = $1");
    with_db!(db, |p| sqlx::query_as::<_, CallUpRow>(&sql).bind(id).fetch_optional(p).await)
}

/// One call-up inside a transaction.
pub async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<CallUpRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE c.id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, CallUpRow>(&sql).bind(id).fetch_optional(c).await)
}

/// Call-ups in the bounds, newest first, optionally of one team and in one state.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    team_id: Option<i64>,
    status: Option<CallUpStatus>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CallUpRow>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE c.region_code >= $1 AND c.region_code <= $2 AND ($3 IS NULL OR c.team_id = $3)
        AND ($4 IS NULL OR c.status = $4)";
    let sql = format!("{SELECT} {WHERE} ORDER BY c.id DESC LIMIT $5 OFFSET $6");
    let count = format!("SELECT COUNT(*) FROM callups c {WHERE}");
    let status = status.map(CallUpStatus::as_str);
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, CallUpRow>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(team_id)
            .bind(status)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 =
            sqlx::query_scalar(&count).bind(bounds.0).bind(bounds.1).bind(team_id).bind(status).fetch_one(p).await?;
        Ok((items, total))
    })
}

/// Inserts a call-up; returns its id.
pub async fn insert(tx: &mut Tx, r: &CallUpRow) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO callups (team_id, region_code, purpose, reference, specialty, headcount, report_at, report_place,
                report_lon, report_lat, note, status, requested_by, requested_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(r.team_id)
        .bind(&r.region_code)
        .bind(r.purpose.as_str())
        .bind(&r.reference)
        .bind(r.specialty.code())
        .bind(r.headcount)
        .bind(r.report_at)
        .bind(&r.report_place)
        .bind(r.report_lon)
        .bind(r.report_lat)
        .bind(&r.note)
        .bind(r.status.as_str())
        .bind(&r.requested_by)
        .bind(r.requested_at)
        .fetch_one(c)
        .await
    })
}

/// The call-up lifecycle.
pub const CALLUP: crate::transition::Lifecycle = crate::transition::Lifecycle::new("callups", "调用");

/// Moves a call-up from `from` to `r.status` (the [`transition!`](crate::transition!) that
/// decides) and writes its state columns; a call-up no longer in `from` is a conflict.
pub async fn update_state(
    tx: &mut Tx,
    r: &CallUpRow,
    from: CallUpStatus,
) -> Result<(), crate::transition::TransitionError> {
    crate::transition!(tx, CALLUP, r.id, from [from.as_str()] => r.status.as_str())?;
    with_tx!(tx, |c| {
        sqlx::query(
            "UPDATE callups SET status = $2, responded_by = $3, responded_at = $4, decline_reason = $5, closed_by = $6,
                closed_at = $7, retention_assessment = $8, retention_by = $9, retention_at = $10 WHERE id = $1 AND status = $11",
        )
        .bind(r.id)
        .bind(r.status.as_str())
        .bind(&r.responded_by)
        .bind(r.responded_at)
        .bind(&r.decline_reason)
        .bind(&r.closed_by)
        .bind(r.closed_at)
        .bind(&r.retention_assessment)
        .bind(&r.retention_by)
        .bind(r.retention_at)
        .bind(r.status.as_str())
        .execute(c)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// A member sent on a call-up.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct SentMember {
    /// Member id.
    pub member_id: i64,
    /// Name (anonymised for erased temporary volunteers).
    pub name: String,
    /// Hours served (set when the call-up closes).
    pub hours: Option<f64>,
}

/// Members sent on a call-up.
pub async fn sent(db: &Db, callup_id: i64) -> Result<Vec<SentMember>, sqlx::Error> {
    const SQL: &str =
        "SELECT cm.member_id, m.name, cm.hours FROM callup_members cm JOIN members m ON m.id = cm.member_id
        WHERE cm.callup_id = $1 ORDER BY cm.member_id";
    with_db!(db, |p| sqlx::query_as::<_, SentMember>(SQL).bind(callup_id).fetch_all(p).await)
}

/// Members sent on a call-up, inside a transaction.
pub async fn sent_tx(tx: &mut Tx, callup_id: i64) -> Result<Vec<SentMember>, sqlx::Error> {
    const SQL: &str =
        "SELECT cm.member_id, m.name, cm.hours FROM callup_members cm JOIN members m ON m.id = cm.member_id
        WHERE cm.callup_id = $1 ORDER BY cm.member_id";
    with_tx!(tx, |c| sqlx::query_as::<_, SentMember>(SQL).bind(callup_id).fetch_all(c).await)
}

/// Records a member as sent.
pub async fn add_sent(tx: &mut Tx, callup_id: i64, member_id: i64) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("INSERT INTO callup_members (callup_id, member_id) VALUES ($1, $2)")
        .bind(callup_id)
        .bind(member_id)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Records a sent member's hours.
pub async fn set_hours(tx: &mut Tx, callup_id: i64, member_id: i64, hours: f64) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("UPDATE callup_members SET hours = $3 WHERE callup_id = $1 AND member_id = $2")
        .bind(callup_id)
        .bind(member_id)
        .bind(hours)
        .execute(c)
        .await
        .map(|_| ()))
}

/// One call-up in a member's service record.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ServiceEntry {
    /// Call-up id.
    pub callup_id: i64,
    /// `event` or `drill`.
    pub purpose: String,
    /// Event or drill reference.
    pub reference: String,
    /// Specialty requested.
    pub specialty: String,
    /// When to report.
    pub report_at: Timestamp,
    /// Call-up state.
    pub status: String,
    /// When it closed.
    pub closed_at: Option<Timestamp>,
    /// Hours served (null until it closes).
    pub hours: Option<f64>,
}

/// A member's call-ups, newest first.
pub async fn service(db: &Db, member_id: i64) -> Result<Vec<ServiceEntry>, sqlx::Error> {
    const SQL: &str = "SELECT c.id AS callup_id, c.purpose, c.reference, c.specialty, c.report_at, c.status, c.closed_at, cm.hours
        FROM callup_members cm JOIN callups c ON c.id = cm.callup_id WHERE cm.member_id = $1 ORDER BY c.report_at DESC, c.id DESC";
    with_db!(db, |p| sqlx::query_as::<_, ServiceEntry>(SQL).bind(member_id).fetch_all(p).await)
}
