//! Lifecycle transitions, each inside the caller's transaction and audited there:
//! create → (update)* → submit → approve (previous version in force → superseded) → file;
//! revise (new draft version of an approved/filed plan); reject (review → draft); retire;
//! evaluate. Permission and jurisdiction are checked by the routes before calling in.
//!
//! Every status change of a version is one [`transition!`](crate::transition!) on that version
//! ([`PLAN`]) in the caller's transaction: reads before it are for validation and messages; of two
//! steps arriving together (approve and reject, two submits) one wins and the other gets 409
//! naming the current state. Two revisions of one version race on the unique version number.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;

use super::store::{self, PlanRow};
use super::validate;
use super::{PlanContent, PlanStatus, PlanVersion, RevisionReason};
use crate::audit::{self, Actor, Change};
use crate::db::Tx;
use crate::error::ApiError;
use crate::time::Timestamp;

/// Body of `POST /api/v1/plans/{id}/approve`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Issue date (印发日期); filing is due 20 working days later.
    pub issued_on: NaiveDate,
    /// Issuing body (印发机关), e.g. 苏尼特左旗人民政府办公室.
    pub issuing_body: String,
}

/// Body of `POST /api/v1/plans/{id}/file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filing {
    /// Filed with whom (备案机关), e.g. 锡林郭勒盟应急管理局.
    pub filed_with: String,
    /// Filing date (not before the issue date).
    pub filed_on: NaiveDate,
    /// Receipt number (备案回执编号).
    pub receipt_no: String,
}

/// Body of `POST /api/v1/plans/{id}/revise`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// Why the plan is revised (the legal trigger).
    pub reason: RevisionReason,
    /// Explanation (required when the reason is `other`).
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `reject` and `retire`: an optional note.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Why.
    #[serde(default)]
    pub note: Option<String>,
}

pub(super) fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))
}

async fn audit_plan(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    action: &str,
    plan: &PlanRow,
    before: Option<&PlanVersion>,
    after: Option<&PlanVersion>,
) -> Result<(), ApiError> {
    let id = plan.id.to_string();
    let change = Change {
        action,
        entity_type: "plan",
        entity_id: &id,
        region_code: Some(&plan.region_code),
        before: before.map(to_value).transpose()?,
        after: after.map(to_value).transpose()?,
    };
    audit::record(tx, actor, now, change).await?;
    Ok(())
}

/// The plan lifecycle, on its versions (keyed by plan, the version number as guard); a miss
/// reports the latest version's state.
pub const PLAN: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("plan_versions", "预案").keyed_by("plan_id").latest_by("version");

/// Moves version `version` of plan `id` from one of `from` to `to` (the transition that decides).
async fn move_version(
    tx: &mut Tx,
    id: i64,
    version: i64,
    from: &[PlanStatus],
    to: PlanStatus,
    now: Timestamp,
) -> Result<(), ApiError> {
    let from: Vec<&str> = from.iter().map(|s| s.code()).collect();
    crate::transition!(tx, PLAN, id, from_any &from => to.code(), set { "updated_at" = now }, guard { "version" = version })?;
    Ok(())
}

/// Reads a plan and its latest version (validation and audit; transitions decide).
pub async fn load(tx: &mut Tx, id: i64) -> Result<(PlanRow, PlanVersion), ApiError> {
    let plan = store::get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("预案 {id} 不存在")))?;
    let latest = store::version_tx(tx, id, plan.latest_version)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plan {id} lacks version {}", plan.latest_version)))?;
    Ok((plan, latest))
}

pub(super) fn state_error(v: &PlanVersion, wanted: &str) -> ApiError {
    ApiError::StateConflict {
        detail: format!("预案第 {} 版当前状态为「{}」（{}），{wanted}", v.version, v.status.label(), v.status.code()),
        current: v.status.code().to_string(),
    }
}

fn new_version(version: i64, content: PlanContent, actor: &Actor, now: Timestamp) -> PlanVersion {
    PlanVersion {
        version,
        status: PlanStatus::Draft,
        status_label: PlanStatus::Draft.label(),
        revision_reason: None,
        revision_note: None,
        issued_on: None,
        issuing_body: None,
        approved_by: None,
        filed_with: None,
        filed_on: None,
        filing_receipt: None,
        content,
        created_by: actor.name.clone(),
        created_at: now,
        updated_at: now,
    }
}

fn set_status(v: &mut PlanVersion, s: PlanStatus, now: Timestamp) {
    v.status = s;
    v.status_label = s.label();
    v.updated_at = now;
}

/// Creates a plan with version 1 as a draft. The owner region must exist; the key, when
/// given, must be unused.
pub async fn create(tx: &mut Tx, actor: &Actor, now: Timestamp, content: PlanContent) -> Result<i64, ApiError> {
    if crate::regions::store::get_tx(tx, content.region.as_str()).await?.is_none() {
        return Err(ApiError::invalid("region", format!("区划 {} 不存在；请先导入官方区划", content.region)));
    }
    if let Some(key) = &content.key
        && store::by_key_tx(tx, key).await?.is_some()
    {
        return Err(ApiError::Conflict(format!("已有 key 为 {key} 的预案")));
    }
    let id = store::insert_plan(tx, &content, now).await.map_err(|e| {
        // Two requests creating the same key at once: the loser sees the unique constraint.
        if crate::db::is_unique_violation(&e) {
            ApiError::Conflict(format!("已有 key 为 {} 的预案", content.key.as_deref().unwrap_or("")))
        } else {
            e.into()
        }
    })?;
    let v = new_version(1, content, actor, now);
    store::insert_version(tx, id, &v).await?;
    let plan = store::get_tx(tx, id).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plan vanished")))?;
    audit_plan(tx, actor, now, "create", &plan, None, Some(&v)).await?;
    Ok(id)
}

/// Checks that a new content keeps the plan's identity (key, kind, region).
pub fn check_identity(plan: &PlanRow, c: &PlanContent) -> Result<(), ApiError> {
    if c.kind != plan.kind {
        return Err(ApiError::invalid("kind", "预案类别不可更改；如需其他类别，请新建预案"));
    }
    if c.region.as_str() != plan.region_code {
        return Err(ApiError::invalid("region", "所属区划不可更改；如需其他区划，请新建预案"));
    }
    if c.key != plan.plan_key {
        return Err(ApiError::invalid("key", "key 不可更改"));
    }
    Ok(())
}

/// Replaces the content of the latest version, which must be a draft.
pub async fn update(tx: &mut Tx, actor: &Actor, now: Timestamp, id: i64, content: PlanContent) -> Result<(), ApiError> {
    let (mut plan, before) = load(tx, id).await?;
    if before.status != PlanStatus::Draft {
        return Err(state_error(&before, "只有草稿可以修改；已印发或已备案的预案请先修订（revise）生成新版本"));
    }
    check_identity(&plan, &content)?;
    move_version(tx, id, before.version, &[PlanStatus::Draft], PlanStatus::Draft, now).await?;
    let mut after = before.clone();
    after.content = content;
    after.updated_at = now;
    store::update_version(tx, id, &after).await?;
    plan.updated_at = now;
    store::update_pointers(tx, &plan).await?;
    audit_plan(tx, actor, now, "update", &plan, Some(&before), Some(&after)).await
}

/// Moves the latest version `from` → `to` (submit, reject); a note (why a review was sent
/// back) is kept in the audit row.
#[allow(clippy::too_many_arguments)]
pub async fn simple_transition(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    id: i64,
    action: &str,
    from: PlanStatus,
    to: PlanStatus,
    note: Option<&str>,
) -> Result<(), ApiError> {
    let (mut plan, before) = load(tx, id).await?;
    if before.status != from {
        return Err(state_error(&before, &format!("只有「{}」状态可以执行此操作", from.label())));
    }
    move_version(tx, id, before.version, &[from], to, now).await?;
    let mut after = before.clone();
    set_status(&mut after, to, now);
    store::update_version(tx, id, &after).await?;
    plan.updated_at = now;
    store::update_pointers(tx, &plan).await?;
    let mut after_value = to_value(&after)?;
    if let (Some(n), Some(obj)) = (note.map(str::trim).filter(|n| !n.is_empty()), after_value.as_object_mut()) {
        obj.insert("note".into(), serde_json::Value::String(n.to_string()));
    }
    let id_s = id.to_string();
    let change = Change {
        action,
        entity_type: "plan",
        entity_id: &id_s,
        region_code: Some(&plan.region_code),
        before: Some(to_value(&before)?),
        after: Some(after_value),
    };
    audit::record(tx, actor, now, change).await?;
    Ok(())
}

/// Approves the version under review; the version previously in force becomes superseded.
/// The issue date may not lie after `today`.
pub async fn approve(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    today: NaiveDate,
    id: i64,
    a: &Approval,
) -> Result<(), ApiError> {
    if a.issuing_body.trim().is_empty() {
        return Err(ApiError::invalid("issuing_body", "印发机关不能为空"));
    }
    if a.issued_on > today {
        return Err(ApiError::invalid("issued_on", "印发日期不能晚于今天"));
    }
    let (mut plan, before) = load(tx, id).await?;
    if before.status != PlanStatus::Review {
        return Err(state_error(&before, "只有审核中的预案可以批准"));
    }
    move_version(tx, id, before.version, &[PlanStatus::Review], PlanStatus::Approved, now).await?;
    if let Some(cur) = plan.current_version {
        let old = store::version_tx(tx, id, cur).await?;
        if let Some(old) = old {
            if a.issued_on < old.issued_on.unwrap_or(NaiveDate::MIN) {
                return Err(ApiError::invalid("issued_on", "新版本的印发日期不能早于被替代版本的印发日期"));
            }
            move_version(tx, id, cur, &[PlanStatus::Approved, PlanStatus::Filed], PlanStatus::Superseded, now).await?;
            let mut sup = old.clone();
            set_status(&mut sup, PlanStatus::Superseded, now);
            store::update_version(tx, id, &sup).await?;
            audit_plan(tx, actor, now, "supersede", &plan, Some(&old), Some(&sup)).await?;
        }
    }
    let mut after = before.clone();
    set_status(&mut after, PlanStatus::Approved, now);
    after.issued_on = Some(a.issued_on);
    after.issuing_body = Some(a.issuing_body.trim().to_string());
    after.approved_by = Some(actor.name.clone());
    store::update_version(tx, id, &after).await?;
    plan.current_version = Some(after.version);
    plan.updated_at = now;
    store::update_pointers(tx, &plan).await?;
    audit_plan(tx, actor, now, "approve", &plan, Some(&before), Some(&after)).await
}

/// Records the filing (备案) of the approved version in force. The filing date may not lie
/// after `today` nor before the issue date.
pub async fn file(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    today: NaiveDate,
    id: i64,
    f: &Filing,
) -> Result<(), ApiError> {
    if f.filed_on > today {
        return Err(ApiError::invalid("filed_on", "备案日期不能晚于今天"));
    }
    for (field, v) in [("filed_with", &f.filed_with), ("receipt_no", &f.receipt_no)] {
        if v.trim().is_empty() {
            return Err(ApiError::invalid(field, format!("{field} 不能为空")));
        }
    }
    let (mut plan, latest) = load(tx, id).await?;
    let Some(cur) = plan.current_version else {
        return Err(state_error(&latest, "尚无已印发的版本，不能登记备案"));
    };
    let before =
        store::version_tx(tx, id, cur).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("missing version")))?;
    if before.status != PlanStatus::Approved {
        return Err(state_error(&before, "只有已印发、未备案的版本可以登记备案"));
    }
    if before.issued_on.is_some_and(|i| f.filed_on < i) {
        return Err(ApiError::invalid("filed_on", "备案日期不能早于印发日期"));
    }
    move_version(tx, id, cur, &[PlanStatus::Approved], PlanStatus::Filed, now).await?;
    let mut after = before.clone();
    set_status(&mut after, PlanStatus::Filed, now);
    after.filed_with = Some(f.filed_with.trim().to_string());
    after.filed_on = Some(f.filed_on);
    after.filing_receipt = Some(f.receipt_no.trim().to_string());
    store::update_version(tx, id, &after).await?;
    plan.updated_at = now;
    store::update_pointers(tx, &plan).await?;
    audit_plan(tx, actor, now, "file", &plan, Some(&before), Some(&after)).await
}

/// Starts a revision: a new draft version with the content of the version in force (or, with
/// `content`, new content: file imports). The latest version must be approved or filed, or
/// (imports only, `allow_draft`) a draft, which is then superseded by the new one.
#[allow(clippy::too_many_arguments)]
pub async fn revise(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    id: i64,
    r: &Revision,
    content: Option<PlanContent>,
    allow_draft: bool,
) -> Result<i64, ApiError> {
    let note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if r.reason == RevisionReason::Other && note.is_none() {
        return Err(ApiError::invalid("note", "修订原因为「其他」时须说明原因"));
    }
    let (mut plan, latest) = load(tx, id).await?;
    let draft_replaced = allow_draft && latest.status == PlanStatus::Draft;
    if !latest.status.in_force() && !draft_replaced {
        return Err(state_error(&latest, "只有已印发或已备案的预案可以修订；草稿可直接修改"));
    }
    if let Some(c) = &content {
        check_identity(&plan, c)?;
    }
    if draft_replaced {
        move_version(tx, id, latest.version, &[PlanStatus::Draft], PlanStatus::Superseded, now).await?;
        let mut sup = latest.clone();
        set_status(&mut sup, PlanStatus::Superseded, now);
        store::update_version(tx, id, &sup).await?;
        audit_plan(tx, actor, now, "supersede", &plan, Some(&latest), Some(&sup)).await?;
    } else {
        // Still in force (the status stays); a concurrent revision of the same version loses on
        // the unique version number below.
        move_version(tx, id, latest.version, &[latest.status], latest.status, now).await?;
    }
    let mut v = new_version(latest.version + 1, content.unwrap_or_else(|| latest.content.clone()), actor, now);
    v.revision_reason = Some(r.reason);
    v.revision_note = note.map(str::to_string);
    store::insert_version(tx, id, &v).await.map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            ApiError::StateConflict {
                detail: format!("预案第 {} 版已由另一修订创建，当前为草稿（draft）", v.version),
                current: PlanStatus::Draft.code().to_string(),
            }
        } else {
            e.into()
        }
    })?;
    plan.latest_version = v.version;
    plan.updated_at = now;
    store::update_pointers(tx, &plan).await?;
    audit_plan(tx, actor, now, "revise", &plan, Some(&latest), Some(&v)).await?;
    Ok(v.version)
}

/// Retires the plan: every version not already superseded or retired becomes retired, and
/// nothing is in force any more.
pub async fn retire(tx: &mut Tx, actor: &Actor, now: Timestamp, id: i64, note: &Note) -> Result<(), ApiError> {
    let (mut plan, latest) = load(tx, id).await?;
    if latest.status == PlanStatus::Retired {
        return Err(state_error(&latest, "预案已废止"));
    }
    let mut numbers = vec![plan.latest_version];
    if let Some(cur) = plan.current_version.filter(|c| *c != plan.latest_version) {
        numbers.push(cur);
    }
    for n in numbers {
        let Some(before) = store::version_tx(tx, id, n).await? else { continue };
        if matches!(before.status, PlanStatus::Superseded | PlanStatus::Retired) {
            continue;
        }
        move_version(tx, id, n, &[before.status], PlanStatus::Retired, now).await?;
        let mut after = before.clone();
        set_status(&mut after, PlanStatus::Retired, now);
        after.revision_note = note.note.clone().or(after.revision_note);
        store::update_version(tx, id, &after).await?;
        audit_plan(tx, actor, now, "retire", &plan, Some(&before), Some(&after)).await?;
    }
    plan.current_version = None;
    plan.updated_at = now;
    store::update_pointers(tx, &plan).await.map_err(ApiError::from)
}

/// Validates API content (422 by field path).
pub fn check(content: &PlanContent) -> Result<(), ApiError> {
    validate::check_api(content)
}
