//! Event routes.

use warp::http::Method;
use warp::reply::Response;

use super::board::{self, Board, EventQuery};
use super::closeout::{self, CloseOut, LinkRequisition, NewAssessment, NewTask};
use super::dispatch::{self, Dispatch, Dispatched};
use super::handlers::{self, NewEvent, NewReport, Note, load};
use super::matching::{self, MatchingPlan};
use super::response::{self, Activate, ChangeLevel, Terminate};
use super::settings::Settings;
use super::store::{Entry, Task};
use super::{Event, report};
use crate::auth::Perm;
use crate::error::ApiResult;
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, body};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

const TAG: &str = "突发事件应对";

/// The event named in the path.
const ON_EVENT: &[Region] = &[Region::Path("id", &access::EVENT)];

/// A token-authenticated route.
macro_rules! r {
    ($m:ident, $path:literal, $body:ident, $doc:expr, $h:expr) => {
        route(Method::$m, $path, Access::Token, BodyKind::$body, $doc, |c| Box::pin($h(c)))
    };
}

/// Routes of the events module.
pub fn routes() -> Vec<Route> {
    vec![
        r!(
            GET,
            "/api/v1/events",
            None,
            Doc {
                description: "辖区内的突发事件，新的在前；exercise=true 只列演练，false 只列真实事件。",
                query: Some(schema::<EventQuery>()),
                response: Some(schema::<Page<Event>>()),
                ..Doc::new(TAG, "列出突发事件")
            },
            board::list
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        r!(
            POST,
            "/api/v1/events",
            Json,
            Doc {
                description: "接报：灾种、标题、发生与获知时间、区划与坐标、描述、伤亡与受灾（含牲畜）、来源、报告人、事件分级估计。按分级与灾种计算初报时限。exercise=true 须关联演练（drill_id）。操作员及以上，限辖区。",
                request: Some(schema::<NewEvent>()),
                response: Some(schema::<Board>()),
                status: 201,
                ..Doc::new(TAG, "接报突发事件")
            },
            handlers::create
        )
        .guard(Perm::Write, &[Region::Body("region_code")]),
        r!(
            GET,
            "/api/v1/events/settings",
            None,
            Doc {
                description: "初报时限（按事件分级；自然灾害不超过 2 小时，应急〔2020〕19号）与调用催办时间。其余数值为本地政策占位值。",
                response: Some(schema::<Settings>()),
                ..Doc::new(TAG, "事件设置")
            },
            handlers::get_settings
        )
        .guard(Perm::Read, &[Region::Global]),
        r!(
            PUT,
            "/api/v1/events/settings",
            Json,
            Doc {
                description: "修改事件设置（旗级管理员）。",
                request: Some(schema::<Settings>()),
                response: Some(schema::<Settings>()),
                ..Doc::new(TAG, "修改事件设置")
            },
            handlers::put_settings
        )
        .guard(Perm::Approve, &[Region::Banner]),
        r!(
            GET,
            "/api/v1/events/{id}",
            None,
            Doc {
                description: "事件看板：事件、信息报告、响应决定、现行级别的资源方案（需求、已落实、缺口、下一来源）、调度清单、事件日志、征用、任务、评估。",
                response: Some(schema::<Board>()),
                ..Doc::new(TAG, "事件看板")
            },
            board::get
        )
        .guard(Perm::Read, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/reports",
            Json,
            Doc {
                description: "信息报告（初报/续报/核报/终报），可修订分级与伤亡受灾数字。第一份须为初报。操作员及以上。",
                request: Some(schema::<NewReport>()),
                response: Some(schema::<Board>()),
                status: 201,
                ..Doc::new(TAG, "信息报告")
            },
            handlers::add_report
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/notes",
            Json,
            Doc {
                description: "在事件日志中记一笔。操作员及以上。",
                request: Some(schema::<Note>()),
                response: Some(schema::<Vec<Entry>>()),
                status: 201,
                ..Doc::new(TAG, "记录事件日志")
            },
            handlers::add_note
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            GET,
            "/api/v1/events/{id}/plans",
            None,
            Doc {
                description: "覆盖本事件灾种和区划的现行预案，从事件所在区划起逐级向上至旗。",
                response: Some(schema::<Page<MatchingPlan>>()),
                ..Doc::new(TAG, "可启动的预案")
            },
            matching::plans
        )
        .guard(Perm::Read, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/activate",
            Json,
            Doc {
                description: "启动响应：选择预案与级别，记录决定人和时间，按该级别的物资与力量需求从事件地点计算资源方案（最近分配、缺口与下一来源），通知事件区划、旗和涉及的区划。管理员、规划员。",
                request: Some(schema::<Activate>()),
                response: Some(schema::<Board>()),
                ..Doc::new(TAG, "启动响应")
            },
            response::activate
        )
        .guard(Perm::Decide, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/level",
            Json,
            Doc {
                description: "提升或降低响应级别：重新计算资源方案（已落实的计入，未执行的建议被替代），保留历史。管理员、规划员。",
                request: Some(schema::<ChangeLevel>()),
                response: Some(schema::<Board>()),
                ..Doc::new(TAG, "调整响应级别")
            },
            response::change_level
        )
        .guard(Perm::Decide, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/dispatch",
            Json,
            Doc {
                description: "执行资源方案条目：物资条目从储备库调出（dispatch 出库，reference 为本事件；演练不动库存），队伍条目发起调用（purpose event，演练为 drill）。重复执行同一条目为 409。支持 Idempotency-Key。管理员、规划员。",
                request: Some(schema::<Dispatch>()),
                response: Some(schema::<Dispatched>()),
                ..Doc::new(TAG, "调度与调用")
            },
            dispatch::dispatch
        )
        .guard(Perm::Decide, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/lines/{line}/arrive",
            None,
            Doc {
                description: "登记物资送达或队伍到场（队伍须已接受调用）。操作员及以上。",
                response: Some(schema::<Board>()),
                ..Doc::new(TAG, "登记送达/到场")
            },
            dispatch::arrive
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/lines/{line}/return",
            None,
            Doc {
                description: "登记队伍返回（响应终止前撤离）：结束该队伍的调用（队员恢复可调用，记录时长），条目为已返回。只适用于已接受调用或已到场的队伍条目。操作员及以上。",
                response: Some(schema::<Board>()),
                ..Doc::new(TAG, "登记队伍返回")
            },
            dispatch::return_team
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/terminate",
            Json,
            Doc {
                description: "响应终止：记录决定；未结束的调用结束（队员恢复可调用），未执行的建议作废。管理员、规划员。",
                request: Some(schema::<Terminate>()),
                response: Some(schema::<Board>()),
                ..Doc::new(TAG, "响应终止")
            },
            response::terminate
        )
        .guard(Perm::Decide, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/requisitions",
            Json,
            Doc {
                description: "把一条征用记录（POST /api/v1/requisitions 登记）关联到本事件。操作员及以上。",
                request: Some(schema::<LinkRequisition>()),
                response: Some(schema::<Board>()),
                status: 201,
                ..Doc::new(TAG, "关联征用")
            },
            closeout::link_requisition
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            GET,
            "/api/v1/events/{id}/close-out",
            None,
            Doc {
                description: "善后清单：待归还与待补偿的征用、本事件调用的补偿申请、未完成的任务。",
                response: Some(schema::<CloseOut>()),
                ..Doc::new(TAG, "善后清单")
            },
            closeout::close_out
        )
        .guard(Perm::Read, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/tasks",
            Json,
            Doc {
                description: "恢复重建任务（责任单位、期限）。操作员及以上。",
                request: Some(schema::<NewTask>()),
                response: Some(schema::<Vec<Task>>()),
                status: 201,
                ..Doc::new(TAG, "恢复重建任务")
            },
            closeout::add_task
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/tasks/{task}/done",
            None,
            Doc {
                description: "任务完成。操作员及以上。",
                response: Some(schema::<Vec<Task>>()),
                ..Doc::new(TAG, "任务完成")
            },
            closeout::task_done
        )
        .guard(Perm::Write, ON_EVENT),
        r!(
            POST,
            "/api/v1/events/{id}/assessment",
            Json,
            Doc {
                description: "调查评估（响应终止后）：原因、应对评估、经验教训；revise_plan 的教训使预案进入修订（drill_or_event_findings），改进措施成为整改任务；演练事件的教训成为演练的问题与整改措施。管理员、规划员。",
                request: Some(schema::<NewAssessment>()),
                response: Some(schema::<Board>()),
                status: 201,
                ..Doc::new(TAG, "调查评估")
            },
            closeout::assess
        )
        .guard(Perm::Decide, ON_EVENT),
        r!(
            GET,
            "/api/v1/events/{id}/report",
            None,
            Doc {
                description: "可打印的中文态势报告（HTML），由事件日志与看板生成；演练标注【演练】。",
                response_type: Some("text/html; charset=utf-8"),
                ..Doc::new(TAG, "态势报告")
            },
            situation_report
        )
        .guard(Perm::Read, ON_EVENT),
        r!(
            GET,
            "/api/v1/events/{id}/assessment/report",
            None,
            Doc {
                description: "可打印的中文调查评估报告（HTML）：事件日志、资源计划与实际使用、响应时效、经验教训。",
                response_type: Some("text/html; charset=utf-8"),
                ..Doc::new(TAG, "调查评估报告")
            },
            assessment_report
        )
        .guard(Perm::Read, ON_EVENT),
    ]
}

async fn situation_report(c: Ctx) -> ApiResult<Response> {
    let ev = load(&c, Perm::Read).await?;
    let b = board::board(&c, ev).await?;
    Ok(body("text/html; charset=utf-8", report::situation(&b, c.now())))
}

async fn assessment_report(c: Ctx) -> ApiResult<Response> {
    let ev = load(&c, Perm::Read).await?;
    let b = board::board(&c, ev).await?;
    Ok(body("text/html; charset=utf-8", report::assessment(&b)))
}
