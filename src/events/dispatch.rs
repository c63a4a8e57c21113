//! Dispatch and call-up from the resource plan's chosen lines (supply lines become ledger
//! `dispatch` movements, force lines call-ups; an exercise moves no stock and calls up for a
//! drill), arrival at the scene, and a team's return before the response ends.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;

use super::board::board;
use super::handlers::load_tx;
use super::lines::{self, Line};
use super::{Event, EventStatus, LINE, audit_event, entry, notify};
use crate::audit::Actor;
use crate::auth::Perm;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::forces::callups::{self, CallUpRow, CallUpStatus, Close, NewCallUp, Purpose};
use crate::forces::{callup_store, opt_text};
use crate::http::Ctx;
use crate::http::ctx::json;
use crate::supplies::MovementKind;
use crate::supplies::ledger::{self, Details};
use crate::time::Timestamp;
use crate::vocab::Specialty;
use crate::{transition, with_tx};

/// Body of `POST /api/v1/events/{id}/dispatch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// Ids of proposed lines to act on: supply lines are dispatched from their depot, force lines
    /// call their team up.
    pub lines: Vec<i64>,
    /// When called-up teams report (default now).
    #[serde(default)]
    pub report_at: Option<Timestamp>,
    /// Where they report (default the event's place).
    #[serde(default)]
    pub report_place: Option<String>,
}

/// What a dispatch did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Dispatched {
    /// Ledger movements written (none for an exercise).
    pub movements: Vec<i64>,
    /// Call-ups created.
    pub callups: Vec<i64>,
    /// The lines after the step.
    pub lines: Vec<Line>,
}

/// Creates the call-up of a force line (purpose `event`, or `drill` for an exercise).
#[allow(clippy::too_many_arguments)]
async fn call_up(
    tx: &mut Tx,
    ev: &Event,
    line: &Line,
    actor: &Actor,
    now: Timestamp,
    report_at: Timestamp,
    report_place: &str,
) -> ApiResult<CallUpRow> {
    let specialty = Specialty::parse(&line.need)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("line {} has unknown specialty", line.id)))?;
    let b = NewCallUp {
        team_code: line.code.clone(),
        purpose: if ev.exercise { Purpose::Drill } else { Purpose::Event },
        reference: ev.reference(),
        specialty,
        headcount: line.quantity,
        report_at,
        report_place: report_place.to_string(),
        report_lon: Some(ev.lon),
        report_lat: Some(ev.lat),
        note: Some(format!("{}资源方案条目 {}", ev.tag(), line.id)),
    };
    let detail = serde_json::json!({"event_id": ev.id, "line_id": line.id});
    callups::create(tx, actor, now, b, Some(detail)).await
}

pub(super) async fn dispatch(c: Ctx) -> ApiResult<Response> {
    let b: Dispatch = c.json()?;
    if b.lines.is_empty() {
        return Err(ApiError::invalid("lines", "请选择要执行的资源方案条目"));
    }
    let place = opt_text("report_place", b.report_place.as_deref(), 200)?;
    let (actor, now) = (c.actor()?, c.now());
    let report_at = b.report_at.unwrap_or(now);
    crate::supplies::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        let ev = load_tx(&c, &mut tx, Perm::Decide).await?;
        if ev.status != EventStatus::Responding {
            return Err(ApiError::StateConflict {
                detail: format!("突发事件当前状态为「{}」，只有响应中的事件可以调度", ev.status.label()),
                current: ev.status.code().into(),
            });
        }
        let all = lines::of_event_tx(&mut tx, ev.id).await?;
        let place = place.clone().unwrap_or_else(|| ev.place.clone());
        let (mut movements, mut callups, mut regions) = (Vec::new(), Vec::new(), Vec::new());
        for (i, id) in b.lines.iter().enumerate() {
            let line = all
                .iter()
                .find(|l| l.id == *id)
                .ok_or_else(|| ApiError::invalid(format!("lines[{i}]"), format!("条目 {id} 不属于本事件")))?;
            if line.kind == "supply" {
                // The line's transition decides a double dispatch: the loser finds it dispatched
                // (409) and its transaction, with any movement, is dropped.
                transition!(&mut tx, LINE, line.id, from ["proposed"] => "dispatched",
                    set { "acted_by" = &actor.name, "acted_at" = now, "updated_at" = now })?;
                let depot =
                    line.depot_id.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("supply line without depot")))?;
                if !ev.exercise {
                    let d = Details {
                        destination: Some(place.clone()),
                        reference: Some(ev.reference()),
                        ..Details::default()
                    };
                    for (_, m) in ledger::take(
                        &mut tx,
                        depot,
                        &line.need,
                        None,
                        line.quantity,
                        MovementKind::Dispatch,
                        &d,
                        now,
                        &actor.name,
                    )
                    .await?
                    {
                        movements.push(m.id);
                    }
                }
                let what = if ev.exercise { "（演练，不动用库存）" } else { "" };
                entry(
                    &mut tx,
                    &ev,
                    &actor,
                    now,
                    "dispatch",
                    &format!(
                        "{}从{}调出物资 {} 共 {}{what}，送往 {place}",
                        ev.tag(),
                        line.name,
                        line.need,
                        line.quantity
                    ),
                )
                .await?;
            } else {
                transition!(&mut tx, LINE, line.id, from ["proposed"] => "requested",
                    set { "acted_by" = &actor.name, "acted_at" = now, "updated_at" = now })?;
                let row = call_up(&mut tx, &ev, line, &actor, now, report_at, &place).await?;
                with_tx!(&mut tx, |conn| sqlx::query("UPDATE event_lines SET callup_id = $2 WHERE id = $1")
                    .bind(line.id)
                    .bind(row.id)
                    .execute(conn)
                    .await
                    .map(|_| ()))?;
                entry(
                    &mut tx,
                    &ev,
                    &actor,
                    now,
                    "callup",
                    &format!(
                        "{}调用队伍 {}（{}）{} 人，{} 到 {place} 报到",
                        ev.tag(),
                        line.name,
                        row.specialty.label(),
                        line.quantity,
                        report_at.local_display()
                    ),
                )
                .await?;
                notify(
                    &mut tx,
                    &ev,
                    now,
                    &format!("callup:{}", row.id),
                    "event_callup",
                    std::slice::from_ref(&row.region_code),
                    &format!("调用通知：{}", line.name),
                    &format!(
                        "因{}，请队伍 {} 派出{} {} 人，于 {} 到 {place} 报到",
                        ev.title,
                        line.name,
                        row.specialty.label(),
                        line.quantity,
                        report_at.local_display()
                    ),
                )
                .await?;
                callups.push(row.id);
            }
            regions.push(line.region_code.clone());
        }
        audit_event(
            &mut tx,
            &actor,
            now,
            "dispatch",
            Some(&ev),
            &ev,
            Some(serde_json::json!({"lines": b.lines, "movements": movements, "callups": callups})),
        )
        .await?;
        let lines = lines::of_event_tx(&mut tx, ev.id).await?;
        let out = Dispatched { movements, callups, lines };
        Ok((tx, crate::supplies::to_audit(&out)?))
    })
    .await
}

/// The event of the path (the caller may write in its region) and its line `{line}`, read in
/// `tx`.
async fn event_line(c: &Ctx, tx: &mut Tx) -> ApiResult<(Event, Line)> {
    let line_id = c.id_param("line")?;
    let ev = load_tx(c, tx, Perm::Write).await?;
    let line = lines::of_event_tx(tx, ev.id)
        .await?
        .into_iter()
        .find(|l| l.id == line_id)
        .ok_or_else(|| ApiError::NotFound(format!("本事件没有条目 {line_id}")))?;
    Ok((ev, line))
}

pub(super) async fn arrive(c: Ctx) -> ApiResult<Response> {
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let (ev, line) = event_line(&c, &mut tx).await?;
    if line.kind == "supply" {
        transition!(&mut tx, LINE, line.id, from ["dispatched"] => "arrived", set { "arrived_at" = now, "updated_at" = now })?;
        entry(
            &mut tx,
            &ev,
            &actor,
            now,
            "arrive",
            &format!("{}{}调出的物资 {} 共 {} 已送达", ev.tag(), line.name, line.need, line.quantity),
        )
        .await?;
    } else {
        if line.callup_status.as_deref() != Some("accepted") {
            return Err(ApiError::StateConflict {
                detail: format!("队伍 {} 尚未接受调用，不能登记到场", line.name),
                current: line.board_state().to_string(),
            });
        }
        transition!(&mut tx, LINE, line.id, from ["requested"] => "on_site", set { "arrived_at" = now, "updated_at" = now })?;
        entry(&mut tx, &ev, &actor, now, "arrive", &format!("{}队伍 {} 到达现场", ev.tag(), line.name)).await?;
    }
    audit_event(&mut tx, &actor, now, "arrive", Some(&ev), &ev, Some(serde_json::json!({"line_id": line.id}))).await?;
    tx.commit().await?;
    json(&board(&c, ev).await?)
}

/// `POST /api/v1/events/{id}/lines/{line}/return`: a team stands down before the response ends
/// (its call-up closes: members back to available, hours recorded) and its line is `returned`.
/// Supply lines are not returned this way (what is left over is received back at a depot).
pub(super) async fn return_team(c: Ctx) -> ApiResult<Response> {
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let (ev, line) = event_line(&c, &mut tx).await?;
    let state = line.board_state().to_string();
    if line.kind != "force" || !matches!(state.as_str(), "accepted" | "on_site") {
        return Err(ApiError::StateConflict {
            detail: format!("只有已接受调用或已到场的队伍可以登记返回（{} 当前为「{state}」）", line.name),
            current: state,
        });
    }
    // The line's transition decides a double return; the call-up closes in the same transaction.
    transition!(&mut tx, LINE, line.id, from ["requested", "on_site"] => "returned", set { "updated_at" = now })?;
    if let Some(cid) = line.callup_id
        && let Some(row) = callup_store::get_tx(&mut tx, cid).await?
        && matches!(row.status, CallUpStatus::Requested | CallUpStatus::Accepted)
    {
        callups::close(&mut tx, &c.app.cipher, &actor, now, row, &Close::default()).await?;
    }
    entry(&mut tx, &ev, &actor, now, "return", &format!("{}队伍 {} 撤离现场，返回驻地", ev.tag(), line.name)).await?;
    audit_event(&mut tx, &actor, now, "return", Some(&ev), &ev, Some(serde_json::json!({"line_id": line.id}))).await?;
    tx.commit().await?;
    json(&board(&c, ev).await?)
}
