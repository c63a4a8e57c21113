//! Call-ups (调用): the bureau asks an approved team for a specialty and headcount, for an event
//! or a drill; the team accepts (sending members, who become `deployed` for an event; a drill
//! records their participation and leaves their real availability alone) or declines (with a
//! reason); closing returns an event's members to `available`, records their hours, and erases the
//! temporary volunteers collected for this call-up unless a retention assessment was recorded
//! (应对法 art. 85).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::callup_store::{self, SentMember};
use super::member_store::{self, Which};
use super::members::{self, Details, Member};
use super::personal::Disclosure;
use super::{FilingStatus, MemberStatus, audit_json};
use crate::audit::{self, Actor, Change};
use crate::db::Tx;
use crate::error::ApiError;
use crate::personal::Cipher;
use crate::time::Timestamp;
use crate::vocab::Specialty;

crate::vocabulary! {
    /// What a call-up is for.
    Purpose {
        Event = "event", "突发事件";
        Drill = "drill", "演练";
    }
}

crate::vocabulary! {
    /// State of a call-up.
    CallUpStatus {
        Requested = "requested", "待响应";
        Accepted = "accepted", "已接受";
        Declined = "declined", "已拒绝";
        Closed = "closed", "已结束";
    }
}

/// A call-up as stored and shown.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct CallUpRow {
    /// Id.
    pub id: i64,
    /// Team row id.
    #[serde(skip)]
    pub team_id: i64,
    /// Team code.
    pub team_code: String,
    /// Team name.
    pub team_name: String,
    /// The team's region.
    pub region_code: String,
    /// Event or drill.
    #[sqlx(try_from = "String")]
    pub purpose: Purpose,
    /// Which event or drill (name or number).
    pub reference: String,
    /// Specialty requested.
    #[sqlx(try_from = "String")]
    pub specialty: Specialty,
    /// Headcount requested.
    pub headcount: i64,
    /// When to report.
    pub report_at: Timestamp,
    /// Where to report.
    pub report_place: String,
    /// Reporting point longitude.
    pub report_lon: Option<f64>,
    /// Reporting point latitude.
    pub report_lat: Option<f64>,
    /// Remarks.
    pub note: Option<String>,
    /// State.
    #[sqlx(try_from = "String")]
    pub status: CallUpStatus,
    /// Who called the team up.
    pub requested_by: String,
    /// When.
    pub requested_at: Timestamp,
    /// Who answered for the team.
    pub responded_by: Option<String>,
    /// When.
    pub responded_at: Option<Timestamp>,
    /// Why the team declined.
    pub decline_reason: Option<String>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// When.
    pub closed_at: Option<Timestamp>,
    /// Retention assessment allowing temporary volunteers' data to be kept (应对法 art. 85).
    pub retention_assessment: Option<String>,
    /// Who recorded it.
    pub retention_by: Option<String>,
    /// When.
    pub retention_at: Option<Timestamp>,
}

/// A call-up with the members sent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CallUp {
    /// The call-up.
    #[serde(flatten)]
    pub callup: CallUpRow,
    /// Chinese label of the state.
    pub status_label: &'static str,
    /// Members the team sent.
    pub members: Vec<SentMember>,
}

/// Body of `POST /api/v1/callups`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCallUp {
    /// Team code (the team must be approved).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,40}$"))]
    pub team_code: String,
    /// `event` or `drill`.
    pub purpose: Purpose,
    /// Which event or drill (name or number).
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub reference: String,
    /// Specialty requested.
    pub specialty: Specialty,
    /// Headcount requested (1–1000).
    #[schemars(range(min = 1, max = 1000))]
    pub headcount: i64,
    /// When to report.
    pub report_at: Timestamp,
    /// Where to report.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub report_place: String,
    /// Reporting point longitude.
    #[serde(default)]
    #[schemars(range(min = -180, max = 180))]
    pub report_lon: Option<f64>,
    /// Reporting point latitude.
    #[serde(default)]
    #[schemars(range(min = -90, max = 90))]
    pub report_lat: Option<f64>,
    /// Remarks.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub note: Option<String>,
}

/// Body of `POST /api/v1/callups/{id}/accept`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// Ids of the members sent (available members of the team).
    pub members: Vec<i64>,
}

/// Body of decline, retention and other steps that need a text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Reason or assessment text.
    #[schemars(length(min = 1, max = 2000), regex(pattern = r"\S"))]
    pub reason: String,
}

/// Hours one member served.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberHours {
    /// Member id.
    pub member_id: i64,
    /// Hours (0–10000).
    pub hours: f64,
}

/// Body of `POST /api/v1/callups/{id}/close` (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Close {
    /// Hours per member; members not listed get the time from `report_at` to closing.
    #[serde(default)]
    pub hours: Vec<MemberHours>,
}

/// Writes an audit row for a call-up.
pub async fn audit_callup(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    action: &str,
    before: Option<&CallUpRow>,
    after: &CallUpRow,
    extra: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let mut a = audit_json(after)?;
    if let (Some(extra), Some(obj)) = (extra, a.as_object_mut()) {
        obj.insert("detail".into(), extra);
    }
    audit::record(
        tx,
        actor,
        now,
        Change {
            action,
            entity_type: "callup",
            entity_id: &after.id.to_string(),
            region_code: Some(&after.region_code),
            before: before.map(audit_json).transpose()?,
            after: Some(a),
        },
    )
    .await?;
    Ok(())
}

/// Checks the team may be called up.
pub fn check_team_available(status: FilingStatus, code: &str) -> Result<(), ApiError> {
    if status != FilingStatus::Approved {
        return Err(ApiError::Conflict(format!(
            "队伍 {code} 备案状态为「{}」，只有已备案的队伍可以调用",
            status.label()
        )));
    }
    Ok(())
}

/// Creates a call-up in the caller's transaction, the one constructor of a call-up (used by
/// `POST /api/v1/callups` and by an event's dispatch): the team must exist and be approved;
/// the row is written `requested` and audited (`create`, with `detail` when given). The
/// caller has checked the request's texts and reporting point.
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    b: NewCallUp,
    detail: Option<serde_json::Value>,
) -> Result<CallUpRow, ApiError> {
    let team = super::teams::load_tx(tx, b.team_code.trim()).await?;
    check_team_available(team.filing_status, &team.code)?;
    let mut row = CallUpRow {
        id: 0,
        team_id: team.id,
        team_code: team.code,
        team_name: team.name,
        region_code: team.region_code,
        purpose: b.purpose,
        reference: b.reference,
        specialty: b.specialty,
        headcount: b.headcount,
        report_at: b.report_at,
        report_place: b.report_place,
        report_lon: b.report_lon,
        report_lat: b.report_lat,
        note: b.note,
        status: CallUpStatus::Requested,
        requested_by: actor.name.clone(),
        requested_at: now,
        responded_by: None,
        responded_at: None,
        decline_reason: None,
        closed_by: None,
        closed_at: None,
        retention_assessment: None,
        retention_by: None,
        retention_at: None,
    };
    row.id = callup_store::insert(tx, &row).await?;
    audit_callup(tx, actor, now, "create", None, &row, detail).await?;
    Ok(row)
}

/// Accepts a call-up: the listed members (distinct, of this team, `available`) are recorded as
/// sent; for an event they become `deployed`, for a drill (演练) their status is untouched.
pub async fn accept(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    mut row: CallUpRow,
    ids: &[i64],
) -> Result<CallUpRow, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid("members", "接受调用须列出选派的队员"));
    }
    let mut seen = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if seen.contains(id) {
            return Err(ApiError::invalid(format!("members[{i}]"), format!("队员 {id} 重复")));
        }
        seen.push(*id);
    }
    let found = member_store::rows_by_ids_tx(tx, ids).await?;
    for (i, id) in ids.iter().enumerate() {
        let field = format!("members[{i}]");
        let Some(m) = found.iter().find(|m| m.id == *id && m.team_id == row.team_id) else {
            return Err(ApiError::invalid(field, format!("队员 {id} 不是队伍 {} 的队员", row.team_code)));
        };
        if m.status != MemberStatus::Available {
            return Err(ApiError::StateConflict {
                detail: format!(
                    "{field}：队员 {id} 当前状态为「{}」（{}），不能选派",
                    m.status.label(),
                    m.status.as_str()
                ),
                current: m.status.as_str().to_string(),
            });
        }
    }
    let before = row.clone();
    row.status = CallUpStatus::Accepted;
    row.responded_by = Some(actor.name.clone());
    row.responded_at = Some(now);
    callup_store::update_state(tx, &row, before.status).await?;
    for id in ids {
        callup_store::add_sent(tx, row.id, *id).await?;
        // Real and exercise never mix: a drill call-up records the member's participation and
        // leaves the real availability (nearest teams, readiness, real call-ups) alone.
        if row.purpose == Purpose::Event {
            member_store::set_status(tx, *id, MemberStatus::Available, MemberStatus::Deployed, now).await?;
        }
    }
    audit_callup(tx, actor, now, "accept", Some(&before), &row, Some(serde_json::json!({ "members_sent": ids })))
        .await?;
    Ok(row)
}

/// Closes a call-up: hours recorded, sent members back to `available`, temporary volunteers
/// erased unless a retention assessment was recorded.
pub async fn close(
    tx: &mut Tx,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    mut row: CallUpRow,
    body: &Close,
) -> Result<CallUpRow, ApiError> {
    let sent = callup_store::sent_tx(tx, row.id).await?;
    for (i, h) in body.hours.iter().enumerate() {
        if !sent.iter().any(|s| s.member_id == h.member_id) {
            return Err(ApiError::invalid(
                format!("hours[{i}].member_id"),
                format!("队员 {} 未参加此次调用", h.member_id),
            ));
        }
        if !(0.0..=10_000.0).contains(&h.hours) || !h.hours.is_finite() {
            return Err(ApiError::invalid(format!("hours[{i}].hours"), "时长应在 0 到 10000 小时之间"));
        }
    }
    let default_hours = {
        let secs = (now.0 - row.report_at.0).num_seconds().max(0) as f64;
        (secs / 360.0).round() / 10.0
    };
    let before = row.clone();
    let mut returned = Vec::new();
    for s in &sent {
        let hours = body.hours.iter().find(|h| h.member_id == s.member_id).map_or(default_hours, |h| h.hours);
        callup_store::set_hours(tx, row.id, s.member_id, hours).await?;
        // A drill call-up never deployed anyone: a member it sent who is deployed now is on a
        // real call-up and stays so.
        if row.purpose == Purpose::Event
            && let Some(m) = member_store::rows_tx(tx, Which::Id(s.member_id)).await?.into_iter().next()
            && m.status == MemberStatus::Deployed
        {
            // A member whose status someone changed meanwhile keeps that status.
            match member_store::set_status(tx, m.id, MemberStatus::Deployed, MemberStatus::Available, now).await {
                Ok(()) => returned.push(m.id),
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    row.status = CallUpStatus::Closed;
    row.closed_by = Some(actor.name.clone());
    row.closed_at = Some(now);
    callup_store::update_state(tx, &row, before.status).await?;
    let erased = if row.retention_assessment.is_none() {
        erase_temporaries(tx, cipher, actor, now, row.id).await?
    } else {
        vec![]
    };
    let detail = serde_json::json!({ "members_returned": returned, "temporaries_erased": erased });
    audit_callup(tx, actor, now, "close", Some(&before), &row, Some(detail)).await?;
    Ok(row)
}

/// Anonymises the temporary volunteers of a call-up: name replaced, ID number, phone,
/// certificates and insurance removed, status `retired`. Service hours stay (without a person).
/// Each erasure is audited (action `erase`).
pub async fn erase_temporaries(
    tx: &mut Tx,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    callup_id: i64,
) -> Result<Vec<i64>, ApiError> {
    let mut erased = Vec::new();
    for m in member_store::temporaries_tx(tx, callup_id).await? {
        let details = member_store::details_tx(tx, Which::Id(m.id)).await?.remove(&m.id).unwrap_or_default();
        let before = Member::view(&m, details.clone(), cipher, Disclosure::MASKED, now);
        let mut after = m.clone();
        after.name = format!("（已匿名）临时志愿者 {}", m.id);
        after.id_number = None;
        after.id_index = None;
        after.phone = None;
        after.status = MemberStatus::Retired;
        after.anonymised_at = Some(now);
        after.updated_at = now;
        member_store::update(tx, &after, m.status).await?;
        let kept = Details { skills: details.skills, ..Details::default() };
        member_store::set_details(tx, m.id, &kept).await?;
        member_store::erase_certificates(tx, m.id).await?;
        let a = Member::view(&after, kept, cipher, Disclosure::MASKED, now);
        members::audit_member(tx, cipher, actor, now, "erase", &after, Some(&before), Some(&a)).await?;
        // Crypto-shredding: the person's fields in every audit row (this one included) were
        // encrypted under this key only.
        members::shred_person_key(tx, m.id).await?;
        erased.push(m.id);
    }
    Ok(erased)
}

/// A member's service record.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceRecord {
    /// Member id.
    pub member_id: i64,
    /// Number of real (event) call-ups the member was sent on.
    pub callups: i64,
    /// Total hours served on closed real call-ups.
    pub hours: f64,
    /// Number of drill (演练) call-ups the member took part in, counted apart.
    pub exercise_callups: i64,
    /// Total hours of closed drill call-ups.
    pub exercise_hours: f64,
    /// The call-ups, newest first.
    pub items: Vec<callup_store::ServiceEntry>,
}

impl ServiceRecord {
    /// A member's record from their call-ups: real service and exercise participation apart.
    pub fn of(member_id: i64, items: Vec<callup_store::ServiceEntry>) -> ServiceRecord {
        let sum = |drill: bool| {
            let mine = items.iter().filter(|i| (i.purpose == Purpose::Drill.as_str()) == drill);
            let hours = mine.clone().filter_map(|i| i.hours).fold(0.0, |a, h| a + h);
            (mine.count() as i64, (hours * 10.0).round() / 10.0)
        };
        let ((callups, hours), (exercise_callups, exercise_hours)) = (sum(false), sum(true));
        ServiceRecord { member_id, callups, hours, exercise_callups, exercise_hours, items }
    }
}
