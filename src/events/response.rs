//! The response: activation (启动响应) with its resource plan, level changes, and termination
//! (响应终止). Dispatch and call-up from the plan's lines are in [`super::dispatch`].

use schemars::JsonSchema;
use serde::Deserialize;
use warp::reply::Response;

use super::board::{board, level_of};
use super::handlers::{load, load_tx};
use super::lines;
use super::matching::matching_plans;
use super::store::{self, Activation};
use super::{EVENT, Event, EventStatus, LINE, LineStatus, audit_event, banner_of, entry, notify, resource};
use crate::audit::Actor;
use crate::auth::Perm;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::forces::callups::{self, CallUpStatus, Close};
use crate::forces::{callup_store, opt_text, text};
use crate::http::Ctx;
use crate::http::ctx::json;
use crate::plans::level_label;
use crate::transition;

/// Body of `POST /api/v1/events/{id}/activate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    /// Plan in force (one of `GET /api/v1/events/{id}/plans`).
    pub plan_id: i64,
    /// Response level of the plan (1 highest).
    pub level: u8,
    /// Why (the decision).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `POST /api/v1/events/{id}/level`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeLevel {
    /// New level (1 highest).
    pub level: u8,
    /// Why.
    pub reason: String,
}

/// Body of `POST /api/v1/events/{id}/terminate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    /// The termination decision (响应终止).
    pub decision: String,
}

fn decision_text(level: i64) -> String {
    level_label(u8::try_from(level).unwrap_or(0)).to_string()
}

/// Records one response decision (activation or level change) in the caller's transaction:
/// the activation row, the resource plan of the new level (stored as proposed lines), the
/// timeline entry, the audit row, and notifications to the event's region, the banner and every
/// region whose depots or teams the plan involves.
async fn decide(
    c: &Ctx,
    tx: &mut Tx,
    before: &Event,
    after: &Event,
    actor: &Actor,
    a: Activation,
    text: &str,
) -> ApiResult<()> {
    let now = a.decided_at;
    let level = after.level.unwrap_or_default();
    let rl = level_of(&c.app.db, after)
        .await?
        .ok_or_else(|| ApiError::invalid("level", format!("预案没有{}响应", decision_text(level))))?;
    let aid = store::insert_activation(tx, after.id, &a).await?;
    let existing = lines::of_event_tx(tx, after.id).await?;
    let proposed = resource::propose(&c.app.db, &c.app.team_index, after, &rl, &existing, now).await?;
    lines::insert(tx, after.id, aid, after.exercise, &proposed, now).await?;
    let (kind, message, title) = match a.change.as_str() {
        "activate" => ("activate", "event_activated", "启动响应"),
        _ => ("level", "event_level", "响应级别调整"),
    };
    entry(tx, after, actor, now, kind, text).await?;
    audit_event(tx, actor, now, &a.change, Some(before), after, Some(serde_json::json!({"activation_id": aid})))
        .await?;
    let mut regions = vec![after.region_code.clone(), banner_of(&after.region_code)];
    regions.extend(proposed.into_iter().map(|l| l.region_code));
    notify(tx, after, now, &format!("activation:{aid}"), message, &regions, &format!("{title}：{}", after.title), text)
        .await?;
    Ok(())
}

pub(super) async fn activate(c: Ctx) -> ApiResult<Response> {
    let b: Activate = c.json()?;
    let reason = opt_text("reason", b.reason.as_deref(), 2000)?;
    let (actor, now) = (c.actor()?, c.now());
    let ev = load(&c, Perm::Decide).await?;
    let plan = matching_plans(&c.app.db, &ev).await?.into_iter().find(|p| p.plan_id == b.plan_id).ok_or_else(|| {
        ApiError::invalid("plan_id", format!("预案 {} 不是覆盖本事件灾种和区划的现行预案", b.plan_id))
    })?;
    if !plan.levels.contains(&b.level) {
        return Err(ApiError::invalid("level", format!("预案「{}」没有{}响应", plan.title, level_label(b.level))));
    }
    let mut tx = c.app.db.begin().await?;
    let before = load_tx(&c, &mut tx, Perm::Decide).await?;
    let level = i64::from(b.level);
    // Concurrent activations: one winner, the other finds the event responding (409).
    transition!(&mut tx, EVENT, ev.id, from ["reported"] => "responding",
        set { "plan_id" = plan.plan_id, "plan_version" = plan.version, "level" = level, "activated_at" = now, "updated_at" = now })?;
    let mut after = before.clone();
    after.status = EventStatus::Responding;
    after.plan_id = Some(plan.plan_id);
    after.plan_version = Some(plan.version);
    after.level = Some(level);
    after.activated_at = Some(now);
    let a = Activation {
        id: 0,
        plan_id: plan.plan_id,
        plan_version: plan.version,
        level,
        change: "activate".into(),
        reason: reason.clone(),
        decided_by: actor.name.clone(),
        decided_at: now,
    };
    let text = format!(
        "{}启动《{}》{}响应{}",
        after.tag(),
        plan.title,
        level_label(b.level),
        reason.as_deref().map(|r| format!("：{r}")).unwrap_or_default()
    );
    decide(&c, &mut tx, &before, &after, &actor, a, &text).await?;
    tx.commit().await?;
    json(&board(&c, after).await?)
}

pub(super) async fn change_level(c: Ctx) -> ApiResult<Response> {
    let b: ChangeLevel = c.json()?;
    let reason = text("reason", &b.reason, 2000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let before = load_tx(&c, &mut tx, Perm::Decide).await?;
    let Some(old) = before.level else {
        return Err(ApiError::StateConflict {
            detail: "尚未启动响应，不能调整级别".into(),
            current: before.status.code().into(),
        });
    };
    let new = i64::from(b.level);
    if new == old {
        return Err(ApiError::invalid("level", format!("当前已是{}响应", decision_text(old))));
    }
    // The guard on the level in force makes two simultaneous changes end with one winner.
    transition!(&mut tx, EVENT, before.id, from ["responding"] => "responding",
        set { "level" = new, "updated_at" = now }, guard { "level" = old })?;
    let mut after = before.clone();
    after.level = Some(new);
    // Proposals of the previous level that nobody acted on are replaced by the new plan.
    for l in lines::of_event_tx(&mut tx, before.id).await? {
        if l.status == LineStatus::Proposed {
            transition!(&mut tx, LINE, l.id, from ["proposed"] => "superseded", set { "updated_at" = now })?;
        }
    }
    let change = if new < old { "raise" } else { "lower" };
    let a = Activation {
        id: 0,
        plan_id: before.plan_id.unwrap_or_default(),
        plan_version: before.plan_version.unwrap_or_default(),
        level: new,
        change: change.into(),
        reason: Some(reason.clone()),
        decided_by: actor.name.clone(),
        decided_at: now,
    };
    let verb = if change == "raise" { "提升" } else { "降低" };
    let text = format!("{}响应级别由{}{verb}为{}：{reason}", after.tag(), decision_text(old), decision_text(new));
    decide(&c, &mut tx, &before, &after, &actor, a, &text).await?;
    tx.commit().await?;
    json(&board(&c, after).await?)
}

pub(super) async fn terminate(c: Ctx) -> ApiResult<Response> {
    let b: Terminate = c.json()?;
    let decision = text("decision", &b.decision, 2000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let before = load_tx(&c, &mut tx, Perm::Decide).await?;
    transition!(&mut tx, EVENT, before.id, from ["responding"] => "terminated",
        set { "terminated_at" = now, "terminated_by" = &actor.name, "termination_note" = &decision, "updated_at" = now })?;
    let mut after = before.clone();
    after.status = EventStatus::Terminated;
    after.terminated_at = Some(now);
    after.terminated_by = Some(actor.name.clone());
    after.termination_note = Some(decision.clone());
    // Teams stand down: open call-ups close (members back to available, hours recorded) and
    // their lines are returned; proposals nobody acted on are superseded.
    let mut closed = Vec::new();
    for l in lines::of_event_tx(&mut tx, before.id).await? {
        match l.status {
            LineStatus::Proposed => {
                transition!(&mut tx, LINE, l.id, from ["proposed"] => "superseded", set { "updated_at" = now })?;
            }
            LineStatus::Requested | LineStatus::OnSite => {
                if let Some(cid) = l.callup_id
                    && let Some(row) = callup_store::get_tx(&mut tx, cid).await?
                    && matches!(row.status, CallUpStatus::Requested | CallUpStatus::Accepted)
                {
                    callups::close(&mut tx, &c.app.cipher, &actor, now, row, &Close::default()).await?;
                    closed.push(cid);
                }
                if l.board_state() != "declined" {
                    transition!(&mut tx, LINE, l.id, from ["requested", "on_site"] => "returned", set { "updated_at" = now })?;
                }
            }
            _ => {}
        }
    }
    let text = format!("{}响应终止：{decision}", after.tag());
    entry(&mut tx, &after, &actor, now, "terminate", &text).await?;
    audit_event(
        &mut tx,
        &actor,
        now,
        "terminate",
        Some(&before),
        &after,
        Some(serde_json::json!({"callups_closed": closed})),
    )
    .await?;
    let regions = vec![after.region_code.clone(), banner_of(&after.region_code)];
    notify(
        &mut tx,
        &after,
        now,
        "terminate",
        "event_terminated",
        &regions,
        &format!("响应终止：{}", after.title),
        &text,
    )
    .await?;
    tx.commit().await?;
    json(&board(&c, after).await?)
}
