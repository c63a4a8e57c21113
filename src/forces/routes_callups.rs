//! Call-up and compensation endpoints.

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::callups::{self, Accept, CallUp, CallUpRow, CallUpStatus, Close, NewCallUp, Reason, audit_callup};
use super::{callup_store, opt_text, teams, text};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::refs::{self, Kind, Within};
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
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// The call-up named in the path.
pub(super) const ON_CALLUP: &[Region] = &[Region::Path("id", &access::CALLUP)];

/// Most members one call-up can send (its headcount limit).
pub const MAX_CALLUP_MEMBERS: usize = 1000;

/// A token-authenticated route.
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
        )
        .guard(Perm::Read, &[Region::Query("region")]),
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
        )
        .guard(Perm::Read, super::routes::ON_TEAM),
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
        )
        .guard(Perm::Decide, &[Region::Global]),
        r!(
            GET,
            "/api/v1/callups/{id}",
            None,
            Doc { response: Some(schema::<CallUp>()), ..Doc::new(TAG, "查看调用") },
            get
        )
        .guard(Perm::Read, ON_CALLUP),
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
        )
        .guard(Perm::Write, ON_CALLUP),
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
        )
        .guard(Perm::Write, ON_CALLUP),
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
        )
        .guard(Perm::Decide, ON_CALLUP),
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
        )
        .guard(Perm::Decide, ON_CALLUP),
    ]
}

async fn view(c: &Ctx, row: CallUpRow) -> ApiResult<CallUp> {
    let members = callup_store::sent(&c.app.db, row.id).await?;
    Ok(CallUp { status_label: row.status.label(), callup: row, members })
}

async fn list_for(c: &Ctx, team: Option<String>) -> ApiResult<Response> {
    let p = c.caller()?;
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
    let p = c.caller()?;
    let b: NewCallUp = c.json()?;
    let (actor, now) = (c.actor()?, c.now());
    if !(1..=MAX_CALLUP_MEMBERS as i64).contains(&b.headcount) {
        return Err(ApiError::invalid("headcount", "人数应在 1 到 1000 之间"));
    }
    let mut errors = Vec::new();
    let mine = [Within { scope: &p.scope, reason: "您的管辖范围" }];
    refs::check_one(&c.app.db, "team_code", Kind::Team, &b.team_code, &mine, &mut errors).await?;
    ApiError::fail_with(errors)?;
    match (b.report_lon, b.report_lat) {
        (Some(lon), Some(lat)) => check_lon_lat(lon, lat).map_err(|m| ApiError::invalid("report_lon", m))?,
        (None, None) => {}
        _ => return Err(ApiError::invalid("report_lon", "经度和纬度须同时给出")),
    }
    let b = NewCallUp {
        reference: text("reference", &b.reference, 200)?,
        report_place: text("report_place", &b.report_place, 200)?,
        note: opt_text("note", b.note.as_deref(), 1000)?,
        ..b
    };
    let mut tx = c.app.db.begin().await?;
    let row = callups::create(&mut tx, &actor, now, b, None).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view(&c, row).await?)
}

/// Loads the call-up named in the path in a transaction (the route's guard has checked access).
pub(super) async fn load_tx(c: &Ctx, tx: &mut crate::db::Tx) -> ApiResult<CallUpRow> {
    let id = c.id_param("id")?;
    callup_store::get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 不存在")))
}

fn expect_status(row: &CallUpRow, allowed: &[CallUpStatus], what: &str) -> ApiResult<()> {
    if allowed.contains(&row.status) {
        Ok(())
    } else {
        Err(ApiError::StateConflict {
            detail: format!(
                "调用 {} 当前状态为「{}」（{}），不能{what}",
                row.id,
                row.status.label(),
                row.status.as_str()
            ),
            current: row.status.as_str().to_string(),
        })
    }
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let id = c.id_param("id")?;
    let row = callup_store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("调用 {id} 不存在")))?;
    json(&view(&c, row).await?)
}

async fn accept(c: Ctx) -> ApiResult<Response> {
    let b: Accept = c.json()?;
    let mut errors = Vec::new();
    let mine = [Within { scope: &c.caller()?.scope, reason: "您的管辖范围" }];
    refs::check(&c.app.db, "members", Kind::Member, &b.members, MAX_CALLUP_MEMBERS, &mine, &mut errors).await?;
    ApiError::fail_with(errors)?;
    let mut tx = c.app.db.begin().await?;
    let row = load_tx(&c, &mut tx).await?;
    expect_status(&row, &[CallUpStatus::Requested], "接受")?;
    // Only approved teams count: a team suspended since the request cannot serve it.
    let team = teams::load_tx(&mut tx, &row.team_code).await?;
    callups::check_team_available(team.filing_status, &team.code)?;
    let row = callups::accept(&mut tx, &c.actor()?, c.now(), row, &b.members).await?;
    tx.commit().await?;
    json(&view(&c, row).await?)
}

async fn decline(c: Ctx) -> ApiResult<Response> {
    let b: Reason = c.json()?;
    let reason = text("reason", &b.reason, 2000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let mut row = load_tx(&c, &mut tx).await?;
    expect_status(&row, &[CallUpStatus::Requested], "拒绝")?;
    let before = row.clone();
    row.status = CallUpStatus::Declined;
    row.responded_by = Some(actor.name.clone());
    row.responded_at = Some(now);
    row.decline_reason = Some(reason);
    callup_store::update_state(&mut tx, &row, before.status).await?;
    // A declined call-up ends the purpose the temporary volunteers' data was collected for.
    let erased = if row.retention_assessment.is_none() {
        callups::erase_temporaries(&mut tx, &c.app.cipher, &actor, now, row.id).await?
    } else {
        vec![]
    };
    let detail = serde_json::json!({ "temporaries_erased": erased });
    audit_callup(&mut tx, &actor, now, "decline", Some(&before), &row, Some(detail)).await?;
    tx.commit().await?;
    if !erased.is_empty() {
        c.app.db.forget_old_pages().await;
    }
    json(&view(&c, row).await?)
}

async fn retention(c: Ctx) -> ApiResult<Response> {
    let b: Reason = c.json()?;
    let assessment = text("reason", &b.reason, 2000)?;
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let mut row = load_tx(&c, &mut tx).await?;
    expect_status(&row, &[CallUpStatus::Requested, CallUpStatus::Accepted, CallUpStatus::Declined], "登记留存评估")?;
    let before = row.clone();
    row.retention_assessment = Some(assessment);
    row.retention_by = Some(actor.name.clone());
    row.retention_at = Some(now);
    callup_store::update_state(&mut tx, &row, before.status).await?;
    audit_callup(&mut tx, &actor, now, "retention", Some(&before), &row, None).await?;
    tx.commit().await?;
    json(&view(&c, row).await?)
}

async fn close(c: Ctx) -> ApiResult<Response> {
    let b: Close = if c.body.iter().all(u8::is_ascii_whitespace) { Close::default() } else { c.json()? };
    let mut tx = c.app.db.begin().await?;
    let row = load_tx(&c, &mut tx).await?;
    expect_status(&row, &[CallUpStatus::Requested, CallUpStatus::Accepted, CallUpStatus::Declined], "结束")?;
    let row = callups::close(&mut tx, &c.app.cipher, &c.actor()?, c.now(), row, &b).await?;
    tx.commit().await?;
    // Temporary volunteers may have been erased: old page images must not keep them.
    c.app.db.forget_old_pages().await;
    json(&view(&c, row).await?)
}
