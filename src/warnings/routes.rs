//! Warning endpoints: request types and the route table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::Method;

use super::store::{AckQuery, Recipient, Warning, WarningQuery};
use super::{CapStatus, MsgType, feed, handlers, notice};
use crate::auth::Perm;
use crate::http::access::{self, Region};
use crate::http::ctx::Page;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;
use crate::time::Timestamp;
use crate::vocab::Hazard;

const TAG: &str = "预警";

/// The warning named in the path (visible from its issuer and every region it covers).
const ON_WARNING: &[Region] = &[Region::Path("id", &access::WARNING)];

/// Body of `POST /api/v1/warnings`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWarningBody {
    /// Hazard.
    pub hazard: Hazard,
    /// Level: 1 (一级/红色, highest) to 4 (四级/蓝色).
    #[schemars(range(min = 1, max = 4))]
    pub level: u8,
    /// Event name (default: from the hazard, e.g. 暴雪).
    pub event: Option<String>,
    /// Event code (default: from the hazard, e.g. 11B04).
    pub event_code: Option<String>,
    /// Headline (Chinese).
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub headline: String,
    /// Description: what is coming, what to watch.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub description: String,
    /// Measures (防御指南).
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub instruction: String,
    /// Issuer (发布单位).
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub issuer: String,
    /// Issue time (default now).
    pub sent_at: Option<Timestamp>,
    /// Effective from (default the issue time).
    pub effective_at: Option<Timestamp>,
    /// Expires at.
    pub expires_at: Timestamp,
    /// Affected regions (within the caller's jurisdiction); the warning is passed down to every
    /// region below them.
    #[serde(default)]
    pub regions: Vec<RegionCode>,
    /// Affected area as [lon, lat] points (WGS84); without `regions`, the regions are found from it.
    pub polygon: Option<Vec<(f64, f64)>>,
    /// Area description (default: the regions' names).
    pub area_desc: Option<String>,
    /// `actual` (default) or `exercise` (演练).
    pub status: Option<CapStatus>,
    /// `alert` (default) or `update` (升级/降级/变更, with `references`).
    pub msg_type: Option<MsgType>,
    /// Ids of earlier warnings this one updates.
    #[serde(default)]
    pub references: Vec<i64>,
    /// Minutes each region has to acknowledge before it is reminded (default 60).
    #[schemars(range(min = 1, max = 10080))]
    pub ack_within_minutes: Option<i64>,
    /// Issue at once (default false: a draft).
    pub issue: Option<bool>,
}

/// Body of `POST /api/v1/warnings/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why it is lifted (the cancel message's description).
    pub reason: Option<String>,
}

/// Query of `POST /api/v1/warnings/{id}/ack`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckParams {
    /// Region acknowledging (default: the caller's own region).
    pub region: Option<RegionCode>,
}

/// Query of `GET /api/v1/warnings/{id}.xml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XmlParams {
    /// The message exactly as received (imported warnings).
    pub original: Option<bool>,
}

/// Query of `GET /api/v1/warnings/{id}/notice`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeParams {
    /// Region the notice is for (default: the caller's own region).
    pub region: Option<RegionCode>,
}

/// Query of `GET /api/v1/warnings.atom`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    /// Feed token (feed readers cannot send a Bearer header): `POST /api/v1/feed-tokens`.
    pub token: Option<String>,
}

/// A warning with its area and acknowledgement counts (within the caller's jurisdiction).
#[derive(Debug, Serialize, JsonSchema)]
pub struct WarningView {
    /// The warning.
    #[serde(flatten)]
    pub warning: Warning,
    /// Regions named in its area.
    pub regions: Vec<String>,
    /// Regions it was passed to.
    pub recipients: i64,
    /// Of those, how many acknowledged.
    pub acknowledged: i64,
}

fn r(method: Method, path: &'static str, body: BodyKind, doc: Doc, h: crate::http::router::Handler) -> Route {
    route(method, path, Access::Token, body, doc, h)
}

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        r(
            Method::GET,
            "/api/v1/warnings",
            BodyKind::None,
            Doc {
                query: Some(schema::<WarningQuery>()),
                response: Some(schema::<Page<Warning>>()),
                description: "下发到辖区内任一区划的预警，最新在前；active=true 只列生效中的预警。",
                ..Doc::new(TAG, "预警列表")
            },
            |c| Box::pin(handlers::list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        r(
            Method::POST,
            "/api/v1/warnings",
            BodyKind::Json,
            Doc {
                request: Some(schema::<NewWarningBody>()),
                status: 201,
                response: Some(schema::<WarningView>()),
                description: "规划员、管理员在辖区内发布预警（旗级为全旗，苏木镇为其嘎查）：默认为草稿，issue=true 立即发布。发布时按灾种做影响区域的定向准备情况检查，向每个受影响区划（含下级）发送预警消息。",
                ..Doc::new(TAG, "新建预警")
            },
            |c| Box::pin(handlers::create(c)),
        )
        .guard(Perm::Plan, &[Region::Global]),
        r(
            Method::POST,
            "/api/v1/warnings/import",
            BodyKind::Xml,
            Doc {
                status: 201,
                response: Some(schema::<WarningView>()),
                description: "接收 CAP 1.2 / GB/T 35965.1 预警消息（application/xml）：按 CAP 1.2 规则校验（拒绝 DTD 与实体、错误命名空间），按 geocode 或多边形对应区划，按事件代码/名称对应灾种；原文保存；按 identifier 去重（重复返回 200），references 所指的预警被更新或解除。",
                ..Doc::new(TAG, "接收 CAP 预警")
            },
            |c| Box::pin(super::receive::import(c)),
        )
        .guard(Perm::Plan, &[Region::Global]),
        route(
            Method::GET,
            "/api/v1/warnings.atom",
            Access::FeedToken,
            BodyKind::None,
            Doc {
                query: Some(schema::<FeedParams>()),
                response_type: Some("application/atom+xml"),
                description: "辖区内生效中预警的 Atom 订阅源，每条链接到其 CAP 消息。订阅器无法发送 Bearer 请求头：在 URL 中带订阅令牌 token。",
                ..Doc::new(TAG, "预警订阅源")
            },
            |c| Box::pin(feed::feed(c)),
        ),
        r(
            Method::GET,
            "/api/v1/warnings/{id}.xml",
            BodyKind::None,
            Doc {
                query: Some(schema::<XmlParams>()),
                response_type: Some("application/cap+xml"),
                description: "预警的 CAP 1.2 消息（GB/T 35965.1 格式）；接收的预警加 original=true 得到原文。",
                ..Doc::new(TAG, "CAP 消息")
            },
            |c| Box::pin(handlers::xml(c)),
        )
        .guard(Perm::Read, ON_WARNING),
        r(
            Method::GET,
            "/api/v1/warnings/{id}",
            BodyKind::None,
            Doc { response: Some(schema::<WarningView>()), ..Doc::new(TAG, "查看预警") },
            |c| Box::pin(handlers::get(c)),
        )
        .guard(Perm::Read, ON_WARNING),
        r(
            Method::POST,
            "/api/v1/warnings/{id}/issue",
            BodyKind::None,
            Doc { description: "发布草稿（规划员、管理员）。", ..Doc::new(TAG, "发布预警") },
            |c| Box::pin(handlers::issue_draft(c)),
        )
        .guard(Perm::Plan, &[Region::Path("id", &access::WARNING_ISSUER)]),
        r(
            Method::POST,
            "/api/v1/warnings/{id}/cancel",
            BodyKind::Json,
            Doc {
                request: Some(schema::<CancelBody>()),
                status: 201,
                response: Some(schema::<WarningView>()),
                description: "解除已发布的预警：生成引用它的解除（Cancel）消息并通知所有收到预警的区划。",
                ..Doc::new(TAG, "解除预警")
            },
            |c| Box::pin(handlers::cancel(c)),
        )
        .guard(Perm::Plan, &[Region::Path("id", &access::WARNING_ISSUER)]),
        r(
            Method::POST,
            "/api/v1/warnings/{id}/ack",
            BodyKind::None,
            Doc {
                query: Some(schema::<AckParams>()),
                response: Some(schema::<Recipient>()),
                description: "苏木镇、嘎查/社区（操作员及以上）签收预警；默认为本人所在区划。",
                ..Doc::new(TAG, "签收预警")
            },
            |c| Box::pin(handlers::ack(c)),
        )
        .guard(Perm::Write, ON_WARNING),
        r(
            Method::GET,
            "/api/v1/warnings/{id}/acks",
            BodyKind::None,
            Doc {
                query: Some(schema::<AckQuery>()),
                response: Some(schema::<Page<Recipient>>()),
                description: "各区划签收情况；pending=true 为尚未签收的区划。",
                ..Doc::new(TAG, "签收情况")
            },
            |c| Box::pin(handlers::acks(c)),
        )
        .guard(Perm::Read, ON_WARNING),
        r(
            Method::GET,
            "/api/v1/warnings/{id}/readiness",
            BodyKind::None,
            Doc {
                description: "发布时对影响区域、该灾种预案所做定向准备情况检查的结果（缺口、过期物资、未投保队员），红色、橙色预警含对应响应级别的资源需求。",
                ..Doc::new(TAG, "预警定向检查")
            },
            |c| Box::pin(handlers::readiness(c)),
        )
        .guard(Perm::Read, ON_WARNING),
        r(
            Method::GET,
            "/api/v1/warnings/{id}/notice",
            BodyKind::None,
            Doc {
                query: Some(schema::<NoticeParams>()),
                response_type: Some("text/html"),
                description: "可打印的中文预警信息单（按区划）。",
                ..Doc::new(TAG, "预警信息单")
            },
            |c| Box::pin(notice::notice(c)),
        )
        .guard(Perm::Read, ON_WARNING),
    ]
}
