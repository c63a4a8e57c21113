//! Member endpoints: list and add members of a team, read and change one, service record.

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::callups::{CallUpStatus, ServiceRecord};
use super::idnumber::IdNumber;
use super::member_store::{self, Which};
use super::members::{self, Member, MemberPatch, MemberRow, NewMember, check_details, check_status_change};
use super::personal::{Disclosure, record_reveal};
use super::routes::ON_TEAM;
use super::routes::RevealQuery;
use super::{MemberStatus, callup_store, teams};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::personal::Field;

const TAG: &str = "社会应急力量";

/// Filters of `GET /api/v1/teams/{code}/members`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberQuery {
    /// Only this status.
    pub status: Option<MemberStatus>,
    /// Show ID numbers and phones in full (admins; every revealed member is audited).
    #[serde(default)]
    pub reveal: bool,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Body of `POST /api/v1/members/search`. The number travels in the body, not the URL, so it
/// never lands in access logs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberSearch {
    /// The ID number to look for.
    pub id_number: IdNumber,
}

/// The member named in the path.
const ON_MEMBER: &[Region] = &[Region::Path("id", &access::MEMBER)];

/// Routes for members.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/teams/{code}/members",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "队伍的队员（含已退出）。身份证号和电话默认脱敏；管理员加 reveal=true 可查看完整信息，每名队员记一条审计（reveal）。",
                query: Some(schema::<MemberQuery>()),
                response: Some(schema::<Page<Member>>()),
                ..Doc::new(TAG, "列出队员")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, ON_TEAM),
        route(
            Method::POST,
            "/api/v1/teams/{code}/members",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "登记队员。身份证号按 GB 11643 校验，与电话一起加密存储。temporary_for_callup 标记仅为某次调用收集的临时志愿者（调用结束时匿名化，除非已登记留存评估）。需要修改权限。",
                request: Some(schema::<NewMember>()),
                response: Some(schema::<Member>()),
                status: 201,
                ..Doc::new(TAG, "登记队员")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Write, ON_TEAM),
        route(
            Method::GET,
            "/api/v1/members/{id}",
            Access::Token,
            BodyKind::None,
            Doc {
                query: Some(schema::<RevealQuery>()),
                response: Some(schema::<Member>()),
                ..Doc::new(TAG, "查看队员")
            },
            |c| Box::pin(get(c)),
        )
        .guard(Perm::Read, ON_MEMBER),
        route(
            Method::PATCH,
            "/api/v1/members/{id}",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "修改队员（任意字段子集）。status 可设为 available、unavailable 或 retired（退出，不可恢复；队员从不删除）。需要修改权限。",
                request: Some(schema::<MemberPatch>()),
                response: Some(schema::<Member>()),
                ..Doc::new(TAG, "修改队员")
            },
            |c| Box::pin(patch(c)),
        )
        .guard(Perm::Write, ON_MEMBER),
        route(
            Method::POST,
            "/api/v1/members/search",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "按身份证号查找辖区内的队员（各队伍中的同一人），用加密存储的盲索引比对，结果脱敏。",
                request: Some(schema::<MemberSearch>()),
                response: Some(schema::<Page<Member>>()),
                ..Doc::new(TAG, "按身份证号查找队员")
            },
            |c| Box::pin(search(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/members/{id}/service",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "队员参加过的调用与累计服务时长。",
                response: Some(schema::<ServiceRecord>()),
                ..Doc::new(TAG, "队员服务记录")
            },
            |c| Box::pin(service(c)),
        )
        .guard(Perm::Read, ON_MEMBER),
    ]
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: MemberQuery = c.query()?;
    let team = teams::load(&c.app.db, c.param("code")).await?;
    let d = Disclosure::ask(p, q.reveal, &team.region_code)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let rows: Vec<MemberRow> = member_store::rows(&c.app.db, Which::Team(team.id))
        .await?
        .into_iter()
        .filter(|m| q.status.is_none_or(|s| m.status == s))
        .collect();
    let total = rows.len() as i64;
    // Only the page is shown, so only the page is revealed (and audited).
    let rows: Vec<MemberRow> = rows.into_iter().skip(offset as usize).take(limit as usize).collect();
    let mut details = member_store::details(&c.app.db, Which::Team(team.id)).await?;
    let now = c.now();
    if d.reveal {
        let mut tx = c.app.db.begin().await?;
        for m in rows.iter().filter(|m| m.id_number.is_some() || m.phone.is_some()) {
            record_reveal(
                &mut tx,
                &c.actor()?,
                now,
                "member",
                &m.id.to_string(),
                &m.region_code,
                &["id_number", "phone"],
                "GET /api/v1/teams/{code}/members",
            )
            .await?;
        }
        tx.commit().await?;
    }
    let items: Vec<Member> = rows
        .iter()
        .map(|m| Member::view(m, details.remove(&m.id).unwrap_or_default(), &c.app.cipher, d, now))
        .collect();
    json(&Page { items, total })
}

/// Loads the member named in the path (the route's guard has checked access to it).
pub(super) async fn load(c: &Ctx) -> ApiResult<MemberRow> {
    let id = c.id_param("id")?;
    member_store::rows(&c.app.db, Which::Id(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("队员 {id} 不存在")))
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let q: RevealQuery = c.query()?;
    let m = load(&c).await?;
    let d = Disclosure::ask(c.principal()?, q.reveal, &m.region_code)?;
    let details = member_store::details(&c.app.db, Which::Id(m.id)).await?.remove(&m.id).unwrap_or_default();
    if d.reveal {
        let mut tx = c.app.db.begin().await?;
        record_reveal(
            &mut tx,
            &c.actor()?,
            c.now(),
            "member",
            &m.id.to_string(),
            &m.region_code,
            &["id_number", "phone"],
            "GET /api/v1/members/{id}",
        )
        .await?;
        tx.commit().await?;
    }
    json(&Member::view(&m, details, &c.app.cipher, d, c.now()))
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let body: NewMember = c.json()?;
    let (actor, now) = (c.actor()?, c.now());
    let name = members::check_name(&body.name)?;
    let details = check_details(&body.skills, &body.certificates, &body.insurance)?;
    let status = body.status.unwrap_or(MemberStatus::Available);
    if !matches!(status, MemberStatus::Available | MemberStatus::Unavailable) {
        return Err(ApiError::invalid("status", "新队员的状态应为 available 或 unavailable"));
    }
    let mut tx = c.app.db.begin().await?;
    let team = teams::load_tx(&mut tx, c.param("code")).await?;
    if let Some(cid) = body.temporary_for_callup {
        let call = callup_store::get_tx(&mut tx, cid).await?;
        match call {
            Some(k) if k.team_id == team.id && matches!(k.status, CallUpStatus::Requested | CallUpStatus::Accepted) => {
            }
            _ => {
                return Err(ApiError::invalid(
                    "temporary_for_callup",
                    format!("调用 {cid} 不存在、不属于队伍 {} 或已结束/已拒绝", team.code),
                ));
            }
        }
    }
    let row = MemberRow {
        id: 0,
        team_id: team.id,
        team_code: team.code.clone(),
        region_code: team.region_code.clone(),
        name,
        id_number: None,
        id_index: None,
        phone: body.phone.as_ref().map(|ph| c.app.cipher.encrypt(Field::MEMBER_PHONE, ph.as_str())),
        status,
        temp_callup_id: body.temporary_for_callup,
        anonymised_at: None,
        created_at: now,
        updated_at: now,
    };
    let row = members::create(&mut tx, &c.app.cipher, &actor, now, row, &body.id_number, &details, "create").await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &Member::view(&row, details, &c.app.cipher, Disclosure::MASKED, now))
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let body: MemberPatch = c.json()?;
    let id = c.id_param("id")?;
    let (actor, now) = (c.actor()?, c.now());
    let cipher = &c.app.cipher;
    let mut tx = c.app.db.begin().await?;
    let before = member_store::rows_tx(&mut tx, Which::Id(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("队员 {id} 不存在")))?;
    if before.anonymised_at.is_some() {
        return Err(ApiError::Conflict("该临时志愿者的个人信息已匿名化，不能再修改".into()));
    }
    let old = member_store::details_tx(&mut tx, Which::Id(id)).await?.remove(&id).unwrap_or_default();
    let mut row = before.clone();
    if let Some(n) = &body.name {
        row.name = members::check_name(n)?;
    }
    if let Some(idn) = &body.id_number {
        row.id_number = Some(cipher.encrypt(Field::MEMBER_ID_NUMBER, idn.as_str()));
        row.id_index = Some(cipher.blind_index(idn.as_str()));
    }
    if let Some(ph) = &body.phone {
        row.phone = ph.as_ref().map(|ph| cipher.encrypt(Field::MEMBER_PHONE, ph.as_str()));
    }
    if let Some(s) = body.status {
        check_status_change(before.status, s)?;
        row.status = s;
    }
    let details = check_details(
        body.skills.as_deref().unwrap_or(&old.skills),
        body.certificates.as_deref().unwrap_or(&old.certificates),
        body.insurance.as_deref().unwrap_or(&old.insurance),
    )?;
    row.updated_at = now;
    // A status change (or a body asking only for a status) is a transition from the states that
    // change may start from: of two retirements arriving together one wins, the other is 409.
    let only_status = body.name.is_none()
        && body.id_number.is_none()
        && body.phone.is_none()
        && body.skills.is_none()
        && body.certificates.is_none()
        && body.insurance.is_none();
    let from: &[MemberStatus] = match body.status {
        Some(s) if s != before.status || only_status => members::user_change_from(s),
        _ => std::slice::from_ref(&before.status),
    };
    if from.is_empty() {
        return Err(ApiError::invalid("status", "「执行任务中」只能由调用任务设置（接受调用时选派队员）"));
    }
    match member_store::update_from(&mut tx, &row, from).await {
        Ok(()) => {}
        Err(crate::transition::TransitionError::Db(e)) if crate::db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!("队伍 {} 已有此身份证号的队员", row.team_code)));
        }
        Err(e) => return Err(e.into()),
    }
    member_store::set_details(&mut tx, id, &details).await?;
    let b = Member::view(&before, old, cipher, Disclosure::MASKED, now);
    let a = Member::view(&row, details, cipher, Disclosure::MASKED, now);
    let action =
        if row.status == MemberStatus::Retired && before.status != MemberStatus::Retired { "retire" } else { "update" };
    members::audit_member(&mut tx, cipher, &actor, now, action, &row, Some(&b), Some(&a)).await?;
    tx.commit().await?;
    json(&a)
}

async fn service(c: Ctx) -> ApiResult<Response> {
    let m = load(&c).await?;
    let items = callup_store::service(&c.app.db, m.id).await?;
    json(&ServiceRecord::of(m.id, items))
}

async fn search(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let b: MemberSearch = c.json()?;
    let (lo, hi) = p.scope.bounds();
    let index = c.app.cipher.blind_index(b.id_number.as_str());
    let now = c.now();
    let mut items = Vec::new();
    for m in member_store::rows_by_index(&c.app.db, &index, (&lo, &hi)).await? {
        let d = member_store::details(&c.app.db, Which::Id(m.id)).await?.remove(&m.id).unwrap_or_default();
        items.push(Member::view(&m, d, &c.app.cipher, Disclosure::MASKED, now));
    }
    let total = items.len() as i64;
    json(&Page { items, total })
}
