//! Team endpoints: filing, lists, nearest teams, the map, and the route table of the module.

use schemars::JsonSchema;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::filing::{self, Step};
use super::nearest::{NearTeam, NearestQuery, Search};
use super::personal::{Disclosure, record_reveal};
use super::store::{self, TeamFilter};
use super::teams::{self, Team, TeamInput};
use super::{FilingStatus, geojson};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::check_lon_lat;
use crate::vocab::Specialty;

const TAG: &str = "社会应急力量";

/// Filters of `GET /api/v1/teams`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamQuery {
    /// Only this filing state.
    pub filing_status: Option<FilingStatus>,
    /// Only teams holding this specialty.
    pub specialty: Option<Specialty>,
    /// Name or code contains.
    pub q: Option<String>,
    /// Show leader and contact phones in full (admins only; each reveal is audited).
    #[serde(default)]
    pub reveal: bool,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// `?reveal=true` on single reads.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealQuery {
    /// Show ID numbers and phones in full (needs the personal-information permission; each
    /// reveal is audited).
    #[serde(default)]
    pub reveal: bool,
}

/// Body of filing steps. `reason` is required to reject, suspend or revoke. Each step documents
/// only what it takes: [`StepNote`] (approve, reinstate), [`StepReason`] (reject, suspend,
/// revoke), this whole body (resubmit).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilingBody {
    /// Reason (shown to the team).
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub reason: Option<String>,
    /// `resubmit` only: the day the corrected filing was submitted, when it came on paper
    /// (default: now; not in the future).
    #[serde(default)]
    pub submitted_on: Option<chrono::NaiveDate>,
}

/// Body of approve and reinstate: an optional note.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepNote {
    /// Note (shown to the team).
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub reason: Option<String>,
}

/// Body of reject, suspend and revoke: the reason is required.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReason {
    /// Reason (shown to the team).
    #[schemars(length(min = 1, max = 500), regex(pattern = r"\S"))]
    pub reason: String,
}

/// The nearest-teams answer.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct NearestAnswer {
    /// Teams, nearest first, each with its own count of qualified members.
    pub items: Vec<NearTeam>,
    /// Number of teams.
    pub total: i64,
    /// Distinct qualified people across the teams: one person (same ID number) who is a member of
    /// two teams counts once here, though in both teams' `qualified_members`.
    pub qualified_people: i64,
}

/// The team named in the path.
pub(super) const ON_TEAM: &[Region] = &[Region::Path("code", &access::TEAM)];

macro_rules! step_route {
    ($step:expr, $body:ty, $path:literal, $summary:literal, $desc:literal) => {
        route(
            Method::POST,
            $path,
            Access::Token,
            BodyKind::Json,
            Doc {
                description: $desc,
                request: Some(schema::<$body>()),
                response: Some(schema::<Team>()),
                ..Doc::new(TAG, $summary)
            },
            |c| Box::pin(filing_step(c, $step)),
        )
        .guard($step.perm(), ON_TEAM)
    };
}

/// Routes of the forces module.
pub fn routes() -> Vec<Route> {
    let mut r = vec![
        route(
            Method::GET,
            "/api/v1/teams",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "辖区内的社会应急力量队伍。负责人和联系人电话默认脱敏；管理员可加 reveal=true 查看完整号码（逐条记入审计日志）。",
                query: Some(schema::<TeamQuery>()),
                response: Some(schema::<Page<Team>>()),
                ..Doc::new(TAG, "列出队伍")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/teams",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "登记队伍并提交备案（状态 submitted）。需要修改权限（操作员及以上），限辖区内。",
                request: Some(schema::<TeamInput>()),
                response: Some(schema::<Team>()),
                status: 201,
                ..Doc::new(TAG, "登记并提交队伍备案")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Write, &[Region::Body("region_code")]),
        route(
            Method::GET,
            "/api/v1/teams/{code}",
            Access::Token,
            BodyKind::None,
            Doc {
                query: Some(schema::<RevealQuery>()), response: Some(schema::<Team>()), ..Doc::new(TAG, "查看队伍")
            },
            |c| Box::pin(get(c)),
        )
        .guard(Perm::Read, ON_TEAM),
        route(
            Method::PUT,
            "/api/v1/teams/{code}",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "修改队伍信息（编码不可改，备案状态不变）。需要修改权限，限辖区内。",
                request: Some(schema::<TeamInput>()),
                response: Some(schema::<Team>()),
                ..Doc::new(TAG, "修改队伍")
            },
            |c| Box::pin(update(c)),
        )
        .guard(Perm::Write, &[Region::Path("code", &access::TEAM), Region::Body("region_code")]),
        step_route!(
            Step::Approve,
            StepNote,
            "/api/v1/teams/{code}/approve",
            "批准备案",
            "submitted → approved。管理员、规划员（队伍所在辖区）。"
        ),
        step_route!(
            Step::Reject,
            StepReason,
            "/api/v1/teams/{code}/reject",
            "不予备案",
            "submitted → rejected，须说明理由。管理员、规划员。"
        ),
        step_route!(
            Step::Suspend,
            StepReason,
            "/api/v1/teams/{code}/suspend",
            "暂停队伍",
            "approved → suspended，须说明理由。管理员、规划员。"
        ),
        step_route!(
            Step::Reinstate,
            StepNote,
            "/api/v1/teams/{code}/reinstate",
            "恢复队伍",
            "suspended → approved。管理员、规划员。"
        ),
        step_route!(
            Step::Revoke,
            StepReason,
            "/api/v1/teams/{code}/revoke",
            "撤销备案",
            "approved/suspended → revoked，须说明理由。管理员、规划员。"
        ),
        step_route!(
            Step::Resubmit,
            FilingBody,
            "/api/v1/teams/{code}/resubmit",
            "重新提交备案",
            "rejected → submitted（修改后重新提交）。操作员及以上。"
        ),
        route(
            Method::GET,
            "/api/v1/teams/nearest",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "距离给定点最近的已备案队伍：在 at 时刻（默认现在）至少有 min_members 名队员状态为可调用、具备该专业且保险有效；按球面距离（Haversine）由近到远，限 max_km 以内，限辖区内。",
                query: Some(schema::<NearestQuery>()),
                response: Some(schema::<NearestAnswer>()),
                ..Doc::new(TAG, "最近的合格队伍")
            },
            |c| Box::pin(nearest_teams(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/teams.geojson",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "队伍驻地的 GeoJSON FeatureCollection（默认只含已备案队伍，可用 filing_status 选择），不含任何个人信息。",
                query: Some(schema::<geojson::MapQuery>()),
                response_type: Some("application/geo+json"),
                ..Doc::new(TAG, "队伍地图数据")
            },
            |c| Box::pin(geojson::handler(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
    ];
    r.extend(super::routes_members::routes());
    r.extend(super::routes_certificates::routes());
    r.extend(super::routes_callups::routes());
    r.extend(super::routes_compensation::routes());
    r.extend(super::csv::routes());
    r
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: TeamQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let d = Disclosure::ask(p, q.reveal, p.scope.code.as_str())?;
    let (lo, hi) = p.scope.bounds();
    let filter = TeamFilter { status: q.filing_status, specialty: q.specialty, q: q.q.as_deref() };
    let (rows, total) = store::list(&c.app.db, (&lo, &hi), &filter, limit, offset).await?;
    let mut specs = store::specialties_in(&c.app.db, (&lo, &hi)).await?;
    let items: Vec<Team> =
        rows.iter().map(|r| Team::view(r, specs.remove(&r.id).unwrap_or_default(), &c.app.cipher, d)).collect();
    if d.reveal {
        let mut tx = c.app.db.begin().await?;
        for t in rows.iter().filter(|t| t.leader_phone.is_some() || t.contact_phone.is_some()) {
            record_reveal(
                &mut tx,
                &c.actor()?,
                c.now(),
                "team",
                &t.code,
                &t.region_code,
                &["leader.phone", "contact.phone"],
                "GET /api/v1/teams",
            )
            .await?;
        }
        tx.commit().await?;
    }
    json(&Page { items, total })
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let input: TeamInput = c.json()?;
    let (actor, now) = (c.actor()?, c.now());
    let mut row = teams::to_row(&input, &c.app.cipher, &actor, now, None)?;
    row.submitted_at =
        super::paper::submitted_at(input.submitted_on, now).map_err(|m| ApiError::invalid("submitted_on", m))?;
    let mut tx = c.app.db.begin().await?;
    let row = teams::create(&mut tx, &c.app.cipher, &actor, now, row, &input.specialties, "create").await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &Team::view(&row, input.specialties, &c.app.cipher, Disclosure::MASKED))
}

async fn get(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: RevealQuery = c.query()?;
    let row = teams::load(&c.app.db, c.param("code")).await?;
    let d = Disclosure::ask(p, q.reveal, &row.region_code)?;
    let specs = store::specialties(&c.app.db, row.id).await?;
    if d.reveal {
        let mut tx = c.app.db.begin().await?;
        record_reveal(
            &mut tx,
            &c.actor()?,
            c.now(),
            "team",
            &row.code,
            &row.region_code,
            &["leader.phone", "contact.phone"],
            "GET /api/v1/teams/{code}",
        )
        .await?;
        tx.commit().await?;
    }
    json(&Team::view(&row, specs, &c.app.cipher, d))
}

async fn update(c: Ctx) -> ApiResult<Response> {
    let input: TeamInput = c.json()?;
    if input.code.trim() != c.param("code") {
        return Err(ApiError::invalid("code", "队伍编码不可修改（请求体中的 code 应与路径一致）"));
    }
    let (actor, now) = (c.actor()?, c.now());
    let mut tx = c.app.db.begin().await?;
    let before = teams::load_tx(&mut tx, c.param("code")).await?;
    let row = teams::to_row(&input, &c.app.cipher, &actor, now, Some(&before))?;
    teams::update(&mut tx, &c.app.cipher, &actor, now, &before, &row, &input.specialties, "update").await?;
    tx.commit().await?;
    json(&Team::view(&row, input.specialties, &c.app.cipher, Disclosure::MASKED))
}

async fn filing_step(c: Ctx, step: Step) -> ApiResult<Response> {
    let body: FilingBody = if c.body.iter().all(u8::is_ascii_whitespace) { FilingBody::default() } else { c.json()? };
    let reason = super::opt_text("reason", body.reason.as_deref(), 500)?;
    if body.submitted_on.is_some() && step != Step::Resubmit {
        return Err(ApiError::invalid("submitted_on", "备案提交日期只在重新提交（resubmit）时填写"));
    }
    let now = c.now();
    let submitted_at =
        super::paper::submitted_at(body.submitted_on, now).map_err(|m| ApiError::invalid("submitted_on", m))?;
    let team =
        filing::apply(&c.app.db, &c.app.cipher, &c.actor()?, now, c.param("code"), step, reason, submitted_at).await?;
    json(&team)
}

async fn nearest_teams(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: NearestQuery = c.query()?;
    check_lon_lat(q.lon, q.lat).map_err(|m| ApiError::invalid("lon", m))?;
    if !(q.max_km.is_finite() && q.max_km > 0.0 && q.max_km <= 5000.0) {
        return Err(ApiError::invalid("max_km", "max_km 应大于 0、不超过 5000"));
    }
    let min_members = q.min_members.unwrap_or(1);
    if !(1..=10_000).contains(&min_members) {
        return Err(ApiError::invalid("min_members", "min_members 应在 1 到 10000 之间"));
    }
    let s = Search {
        specialty: q.specialty,
        min_members,
        point: (q.lon, q.lat),
        max_km: q.max_km,
        at: q.at.unwrap_or(c.now()),
    };
    let (lo, hi) = p.scope.bounds();
    let (found, source) = c.app.team_index.near(&c.app.db, c.fresh().await, (&lo, &hi), &s).await?;
    let mut r =
        json(&NearestAnswer { total: found.teams.len() as i64, qualified_people: found.people, items: found.teams })?;
    r.headers_mut().insert("x-nearest-source", warp::http::HeaderValue::from_static(source.as_str()));
    Ok(r)
}
