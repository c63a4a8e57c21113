//! Call-up and compensation endpoints.

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::callups::{self, Accept, CallUp, CallUpRow, CallUpStatus, Close, NewCallUp, Reason, audit_callup};
use super::compensation::{self, Claim, ClaimRow, ClaimStatus, NewClaim, Payment};
use super::{audit_json, callup_store, opt_text, teams, text};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::check_lon_lat;

const TAG: &str = "调用与补偿";

/// Filters of call-up lists.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallUpQuery {
    /// Only this state.
    pub status: Option<CallUpStatus>,
    /// Only this team (code).
    pub team: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

macro_rules! r {
    ($m:ident, $path:literal, $body:ident, $doc:expr, $h:expr) => {
        route(Method::$m, $path, Access::Token, BodyKind::$body, $doc, |c| Box::pin($h(c)))
    };
}

/// Routes for call-ups and compensation.
pub fn routes() -> Vec<Route> {
    vec![
        r!(
            GET,
            "/api/v1/callups",
            None,
            Doc {
                description: "辖区内的调用任务，新的在前。",
                query: Some(schema::<CallUpQuery>()),
                response: Some(schema::<Page<CallUp>>()),
                ..Doc::new(TAG, "列出调用")
            },
            list
        ),
        r!(
            GET,
            "/api/v1/teams/{code}/callups",
            None,
            Doc {
                description: "队伍的调用历史，新的在前。",
                query: Some(schema::<CallUpQuery>()),
                response: Some(schema::<Page<CallUp>>()),
                ..Doc::new(TAG, "队伍调用历史")
            },
            team_history
        ),
        r!(
            POST,
            "/api/v1/callups",
            Json,
            Doc {
                description: "为突发事件或演练调用已备案队伍（专业、人数、报到时间和地点）。管理员、规划员，限队伍所在辖区。",
                request: Some(schema::<NewCallUp>()),
                response: Some(schema::<CallUp>()),
                status: 201,
                ..Doc::new(TAG, "发起调用")
            },
            create
        ),
        r!(
            GET,
            "/api/v1/callups/{id}",
            None,
            Doc { response: Some(schema::<CallUp>()), ..Doc::new(TAG, "查看调用") },
            get
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/accept",
            Json,
            Doc {
                description: "队伍接受调用并列出选派的队员（须为本队可调用队员），队员状态变为执行任务中。操作员及以上。",
                request: Some(schema::<Accept>()),
                response: Some(schema::<CallUp>()),
                ..Doc::new(TAG, "接受调用")
            },
            accept
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/decline",
            Json,
            Doc {
                description: "队伍拒绝调用并说明理由。操作员及以上。",
                request: Some(schema::<Reason>()),
                response: Some(schema::<CallUp>()),
                ..Doc::new(TAG, "拒绝调用")
            },
            decline
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/retention",
            Json,
            Doc {
                description: "登记个人信息留存评估（合法性、必要性、安全性），使本次调用的临时志愿者信息在调用结束后不被删除（应对法第 85 条）。管理员、规划员；须在结束前登记。",
                request: Some(schema::<Reason>()),
                response: Some(schema::<CallUp>()),
                ..Doc::new(TAG, "登记留存评估")
            },
            retention
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/close",
            Json,
            Doc {
                description: "结束调用：记录服务时长（未列出的队员按报到时间至结束时间计），队员恢复为可调用；本次调用的临时志愿者个人信息被匿名化（已登记留存评估的除外），逐人审计（erase）。管理员、规划员。请求体可为 {}。",
                request: Some(schema::<Close>()),
                response: Some(schema::<CallUp>()),
                ..Doc::new(TAG, "结束调用")
            },
            close
        ),
        r!(
            GET,
            "/api/v1/callups/{id}/compensation",
            None,
            Doc { response: Some(schema::<Claim>()), ..Doc::new(TAG, "查看补偿申请") },
            get_claim
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/compensation",
            Json,
            Doc {
                description: "调用结束后申请补偿（误工、交通、物资消耗、装备损耗，单位元）。每次调用一份。操作员及以上。",
                request: Some(schema::<NewClaim>()),
                response: Some(schema::<Claim>()),
                status: 201,
                ..Doc::new(TAG, "申请补偿")
            },
            claim
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/compensation/approve",
            None,
            Doc {
                description: "claimed → approved。管理员、规划员。",
                response: Some(schema::<Claim>()),
                ..Doc::new(TAG, "核准补偿")
            },
            approve_claim
        ),
        r!(
            POST,
            "/api/v1/callups/{id}/compensation/pay",
            Json,
            Doc {
                description: "approved → paid，可附支付凭证号。管理员、规划员。",
                request: Some(schema::<Payment>()),
                response: Some(schema::<Claim>()),
                ..Doc::new(TAG, "登记补偿支付")
            },
            pay_claim
        ),
    ]
}

async fn view(c: &Ctx, row: CallUpRow) -> ApiResult<CallUp> {
    let members = callup_store::sent(&c.app.db, row.id).await?;
    Ok(CallUp { status_label: row.status.label(), callup: row, members })
}

async fn list_for(c: &Ctx, team: Option<String>) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let q: CallUpQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let team_id = match team.or(q.team) {
        None => None,
        Some(code) => {
            let t = teams::load(&c.app.db, &code).await?;
            p.require_region(&t.region_code)?;
            Some(t.id)
        }
    };
    let (lo, hi) = p.scope.bounds();
    let (rows, total) = callup_store::list(&c.app.db, (&lo, &hi), team_id, q.status, limit, offset).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(view(c, r).await?);
    }
    json(&Page { items, total })
}

async fn list(c: Ctx) -> ApiResult<Response> {
    list_for(&c, None).await
}

async fn team_history(c: Ctx) -> ApiResult<Response> {
    let code = c.param("code").to_string();
    list_for(&c, Some(code)).await
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Decide)?;
    let b: NewCallUp = c.json()?;
    let (actor, now) = (c.actor()?, c.now());
    if !(1..=1000).contains(&b.headcount) {
        return Err(ApiError::invalid("headcount", "人数应在 1 到 1000 之间"));
    }
    match (b.report_lon, b.report_lat) {
        (Some(lon), Some(lat)) => check_lon_lat(lon, lat).map_err(|m| ApiError::invalid("report_lon", m))?,
        (None, None) => {}
        _ => return Err(ApiError::invalid("report_lon", "经度和纬度须同时给出")),
    }
    let mut tx = c.app.db.begin().await?;
    let team = teams::load_tx(&mut tx, b.team_code.trim()).await?;
    p.require_in(Perm::Decide, &team.region_code)?;
    callups::check_team_available(team.filing_status, &team.code)?;
    let mut row = CallUpRow {
        id: 0,
        team_id: team.id,
        team_code: team.code.clone(),
        team_name: team.name.clone(),
        region_code: team.region_code.clone(),
        purpose: b.purpose,
        reference: text("reference", &b.reference, 200)?,
        specialty: b.specialty,
        headcount: b.headcount,
        report_at: b.report_at,
        report_place: text("report_place", &b.report_place, 200)?,
        report_lon: b.report_lon,
        report_lat: b.report_lat,
        note: opt_text("note", b.note.as_deref(), 1000)?,
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
    row.id = callup_store::insert(&mut tx, &row).await?;
    audit_callup(&mut tx, &actor, now, "create", None, &row, None).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view(&c, row).await?)
}

/// Loads a call-up in a transaction and checks the caller's permission in its region.
async fn load_tx(c: &Ctx, tx: &mut crate::db::Tx, perm: Perm) -> ApiResult<CallUpRow> {
    let p = c.require(perm)?;
    let id = c.id_param("id")?;
    let row = callup_store::get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 不存在")))?;
    p.require_in(perm, &row.region_code)?;
    Ok(row)
}

fn expect_status(row: &CallUpRow, allowed: &[CallUpStatus], what: &str) -> ApiResult<()> {
    if allowed.contains(&row.status) {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!("调用 {} 当前状态为「{}」，不能{what}", row.id, row.status.label())))
    }
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let id = c.id_param("id")?;
    let row = callup_store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 不存在")))?;
    p.require_region(&row.region_code)?;
    json(&view(&c, row).await?)
}

async fn accept(c: Ctx) -> ApiResult<Response> {
    let b: Accept = c.json()?;
    let mut tx = c.app.db.begin().await?;
    let row = load_tx(&c, &mut tx, Perm::Write).await?;
    expect_status(&row, &[CallUpStatus::Requested], "接受")?;
    let row = callups::accept(&mut tx, &c.actor()?, c.now(), row, &b.members).await?;
    tx.commit().await?;
    json(&view(&c, row).await?)
}

async fn decline(c: Ctx) -> ApiResult<Response> {
    let b: Reason = c.json()?;
    let reason = text("reason", &b.reason, 500)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let mut row = load_tx(&c, &mut tx, Perm::Write).await?;
    expect_status(&row, &[CallUpStatus::Requested], "拒绝")?;
    let before = row.clone();
    row.status = CallUpStatus::Declined;
    row.responded_by = Some(actor.name.clone());
    row.responded_at = Some(now);
    row.decline_reason = Some(reason);
    callup_store::update_state(&mut tx, &row).await?;
    audit_callup(&mut tx, &actor, now, "decline", Some(&before), &row, None).await?;
    tx.commit().await?;
    json(&view(&c, row).await?)
}

async fn retention(c: Ctx) -> ApiResult<Response> {
    let b: Reason = c.json()?;
    let assessment = text("reason", &b.reason, 2000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let mut row = load_tx(&c, &mut tx, Perm::Decide).await?;
    expect_status(&row, &[CallUpStatus::Requested, CallUpStatus::Accepted, CallUpStatus::Declined], "登记留存评估")?;
    let before = row.clone();
    row.retention_assessment = Some(assessment);
    row.retention_by = Some(actor.name.clone());
    row.retention_at = Some(now);
    callup_store::update_state(&mut tx, &row).await?;
    audit_callup(&mut tx, &actor, now, "retention", Some(&before), &row, None).await?;
    tx.commit().await?;
    json(&view(&c, row).await?)
}

async fn close(c: Ctx) -> ApiResult<Response> {
    let b: Close = if c.body.iter().all(u8::is_ascii_whitespace) { Close::default() } else { c.json()? };
    let mut tx = c.app.db.begin().await?;
    let row = load_tx(&c, &mut tx, Perm::Decide).await?;
    expect_status(&row, &[CallUpStatus::Requested, CallUpStatus::Accepted, CallUpStatus::Declined], "结束")?;
    let row = callups::close(&mut tx, &c.app.cipher, &c.actor()?, c.now(), row, &b).await?;
    tx.commit().await?;
    json(&view(&c, row).await?)
}

async fn audit_claim(
    tx: &mut crate::db::Tx,
    c: &Ctx,
    action: &str,
    call: &CallUpRow,
    before: Option<&Claim>,
    after: &Claim,
) -> ApiResult<()> {
    audit::record(
        tx,
        &c.actor()?,
        c.now(),
        Change {
            action,
            entity_type: "compensation",
            entity_id: &call.id.to_string(),
            region_code: Some(&call.region_code),
            before: before.map(audit_json).transpose()?,
            after: Some(audit_json(after)?),
        },
    )
    .await?;
    Ok(())
}

async fn get_claim(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let id = c.id_param("id")?;
    let call =
        callup_store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 不存在")))?;
    p.require_region(&call.region_code)?;
    let claim =
        compensation::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 尚无补偿申请")))?;
    json(&Claim::from(&claim))
}

async fn claim(c: Ctx) -> ApiResult<Response> {
    let b: NewClaim = c.json()?;
    let note = opt_text("note", b.note.as_deref(), 1000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let call = load_tx(&c, &mut tx, Perm::Write).await?;
    if call.status != CallUpStatus::Closed || call.responded_at.is_none() || call.decline_reason.is_some() {
        return Err(ApiError::Conflict(format!("调用 {} 须由队伍接受并已结束，才能申请补偿", call.id)));
    }
    if compensation::get_tx(&mut tx, call.id).await?.is_some() {
        return Err(ApiError::Conflict(format!("调用 {} 已有补偿申请", call.id)));
    }
    let row = ClaimRow {
        id: 0,
        callup_id: call.id,
        labour_fen: b.labour.0,
        transport_fen: b.transport.0,
        supplies_fen: b.supplies.0,
        equipment_fen: b.equipment_wear.0,
        note,
        status: ClaimStatus::Claimed,
        claimed_by: actor.name.clone(),
        claimed_at: now,
        approved_by: None,
        approved_at: None,
        paid_by: None,
        paid_at: None,
        payment_ref: None,
    };
    compensation::insert(&mut tx, &row).await?;
    let view = Claim::from(&row);
    audit_claim(&mut tx, &c, "claim", &call, None, &view).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view)
}

async fn advance_claim(c: Ctx, to: ClaimStatus) -> ApiResult<Response> {
    let payment: Payment = if c.body.iter().all(u8::is_ascii_whitespace) { Payment::default() } else { c.json()? };
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let call = load_tx(&c, &mut tx, Perm::Decide).await?;
    let mut row = compensation::get_tx(&mut tx, call.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("调用 {} 尚无补偿申请", call.id)))?;
    let from = if to == ClaimStatus::Approved { ClaimStatus::Claimed } else { ClaimStatus::Approved };
    if row.status != from {
        return Err(ApiError::Conflict(format!(
            "补偿申请当前状态为「{}」，只有「{}」状态可以改为「{}」",
            row.status.label(),
            from.label(),
            to.label()
        )));
    }
    let before = Claim::from(&row);
    row.status = to;
    if to == ClaimStatus::Approved {
        row.approved_by = Some(actor.name.clone());
        row.approved_at = Some(now);
    } else {
        row.paid_by = Some(actor.name.clone());
        row.paid_at = Some(now);
        row.payment_ref = opt_text("payment_ref", payment.payment_ref.as_deref(), 100)?;
    }
    compensation::update_state(&mut tx, &row).await?;
    let after = Claim::from(&row);
    let action = if to == ClaimStatus::Approved { "approve" } else { "pay" };
    audit_claim(&mut tx, &c, action, &call, Some(&before), &after).await?;
    tx.commit().await?;
    json(&after)
}

async fn approve_claim(c: Ctx) -> ApiResult<Response> {
    advance_claim(c, ClaimStatus::Approved).await
}

async fn pay_claim(c: Ctx) -> ApiResult<Response> {
    advance_claim(c, ClaimStatus::Paid).await
}
