//! Compensation endpoints: a claim after a call-up closes, `claimed` → `approved` → `paid`.

use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::callups::{CallUpRow, CallUpStatus};
use super::compensation::{self, Claim, ClaimRow, ClaimStatus, NewClaim, Payment};
use super::routes_callups::ON_CALLUP;
use super::routes_callups::load_tx;
use super::{audit_json, opt_text};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{json, json_status};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

const TAG: &str = "调用与补偿";

macro_rules! r {
    ($m:ident, $path:literal, $body:ident, $doc:expr, $h:expr) => {
        route(Method::$m, $path, Access::Token, BodyKind::$body, $doc, |c| Box::pin($h(c)))
    };
}

/// Routes for compensation claims.
pub fn routes() -> Vec<Route> {
    vec![
        r!(
            GET,
            "/api/v1/callups/{id}/compensation",
            None,
            Doc { response: Some(schema::<Claim>()), ..Doc::new(TAG, "查看补偿申请") },
            get_claim
        )
        .guard(Perm::Read, ON_CALLUP),
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
        )
        .guard(Perm::Write, ON_CALLUP),
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
        )
        .guard(Perm::Decide, ON_CALLUP),
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
        )
        .guard(Perm::Decide, ON_CALLUP),
    ]
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
    let id = c.id_param("id")?;
    let claim =
        compensation::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 尚无补偿申请")))?;
    json(&Claim::from(&claim))
}

async fn claim(c: Ctx) -> ApiResult<Response> {
    let b: NewClaim = c.json()?;
    let note = opt_text("note", b.note.as_deref(), 1000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let call = load_tx(&c, &mut tx).await?;
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
    let call = load_tx(&c, &mut tx).await?;
    let mut row = compensation::get_tx(&mut tx, call.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("调用 {} 尚无补偿申请", call.id)))?;
    let from = if to == ClaimStatus::Approved { ClaimStatus::Claimed } else { ClaimStatus::Approved };
    if row.status != from {
        return Err(ApiError::StateConflict {
            detail: format!(
                "补偿申请当前状态为「{}」（{}），只有「{}」状态可以改为「{}」",
                row.status.label(),
                row.status.as_str(),
                from.label(),
                to.label()
            ),
            current: row.status.as_str().to_string(),
        });
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
    compensation::update_state(&mut tx, &row, from).await?;
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
