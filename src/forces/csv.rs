//! Bulk data for teams: `POST /api/v1/import/teams` and `GET /api/v1/export/teams.csv`
//! (columns `code,name,org_type,region_code,lon,lat,specialties,grades,filing_status`;
//! specialties and grades `;`-separated and aligned, an empty grade meaning "not graded").
//! Imports are all-or-nothing, report every error with line and column, and re-importing the
//! same file changes nothing: the teams import is in [`super::csv_teams`], members in
//! [`super::csv_members`].

use warp::http::Method;
use warp::reply::Response;

use super::store;
use crate::auth::Perm;
use crate::csvio::{self, Column};
use crate::error::{ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::imports::ImportQuery;

/// Columns of the teams file.
pub const TEAM_COLUMNS: &[Column] = &[
    Column { name: "code", zh: "队伍编码", aliases: &["编码"], required: true },
    Column { name: "name", zh: "队伍名称", aliases: &["名称"], required: true },
    Column { name: "org_type", zh: "组织类型", aliases: &[], required: true },
    Column { name: "region_code", zh: "所属区划", aliases: &["区划代码"], required: true },
    Column::required("lon", "经度"),
    Column::required("lat", "纬度"),
    Column { name: "specialties", zh: "专业", aliases: &["专业类别"], required: false },
    Column { name: "grades", zh: "等级", aliases: &["专业等级"], required: false },
    Column { name: "filing_status", zh: "备案状态", aliases: &[], required: false },
    Column { name: "submitted_on", zh: "备案提交日期", aliases: &["提交日期"], required: false },
];

pub use crate::csvio::ExportQuery;
use crate::csvio::HeaderQuery;

/// The summary text of a failed import.
pub fn summary(errors: &[FieldError]) -> String {
    let first = errors.first().map(|e| e.message.as_str()).unwrap_or("");
    format!("导入文件有 {} 处错误，未写入任何数据。首个错误：{first}", errors.len())
}

/// Routes for CSV import and export.
pub fn routes() -> Vec<Route> {
    let mut routes = vec![
        route(
            Method::POST,
            "/api/v1/import/teams",
            Access::Token,
            BodyKind::Csv,
            Doc {
                description: "导入队伍（表头 code,name,org_type,region_code,lon,lat,specialties,grades,filing_status 或中文表头）。专业与等级以 ; 分隔并一一对应。全有或全无；重复导入不产生变化。设置备案状态需审核权限（管理员、规划员），否则新队伍为 submitted。",
                query: Some(schema::<ImportQuery>()),
                response: Some(schema::<crate::imports::Outcome>()),
                ..Doc::new("社会应急力量", "导入队伍")
            },
            |c| Box::pin(super::csv_teams::import(c)),
        )
        .guard(Perm::Write, &[Region::Rows]),
        route(
            Method::GET,
            "/api/v1/export/teams.csv",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "导出辖区内队伍（默认中文表头，header=en 为英文；UTF-8 带 BOM）。可直接重新导入。",
                query: Some(schema::<HeaderQuery>()),
                response_type: Some("text/csv"),
                ..Doc::new("社会应急力量", "导出队伍")
            },
            |c| Box::pin(export_teams(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/import/members",
            Access::Token,
            BodyKind::Csv,
            Doc {
                description: "导入队员（表头 team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,status 或中文表头）。以队伍+身份证号识别队员；脱敏的身份证号（导出时无权限者所得）按姓名匹配已有队员，空单元格表示不修改。全有或全无；重复导入不产生变化。",
                query: Some(schema::<ImportQuery>()),
                response: Some(schema::<crate::imports::Outcome>()),
                ..Doc::new("社会应急力量", "导入队员")
            },
            |c| Box::pin(super::csv_members::import(c)),
        )
        .guard(Perm::Write, &[Region::Rows]),
        route(
            Method::GET,
            "/api/v1/export/members.csv",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "导出辖区内队员（不含已匿名的临时志愿者）。身份证号和电话默认脱敏；管理员加 reveal=true 导出完整信息，每名队员记一条审计（reveal）。",
                query: Some(schema::<ExportQuery>()),
                response_type: Some("text/csv"),
                ..Doc::new("社会应急力量", "导出队员")
            },
            |c| Box::pin(super::csv_members::export(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
    ];
    for (i, path) in [(1, "/api/v1/export/teams.xlsx"), (3, "/api/v1/export/members.xlsx")] {
        let twin = crate::imports::xlsx::twin(&routes[i], path);
        routes.push(twin);
    }
    routes
}

async fn export_teams(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: HeaderQuery = c.query()?;
    let (lo, hi) = p.scope.bounds();
    let teams = store::all(&c.app.db, (&lo, &hi), None).await?;
    let mut specs = store::specialties_in(&c.app.db, (&lo, &hi)).await?;
    let rows = teams
        .iter()
        .map(|t| {
            let sp = specs.remove(&t.id).unwrap_or_default();
            let codes: Vec<&str> = sp.iter().map(|s| s.specialty.code()).collect();
            let grades: Vec<String> = sp.iter().map(|s| s.grade.map(|g| g.to_string()).unwrap_or_default()).collect();
            let graded = sp.iter().any(|s| s.grade.is_some());
            vec![
                t.code.clone(),
                t.name.clone(),
                t.org_type.as_str().to_string(),
                t.region_code.clone(),
                t.lon.to_string(),
                t.lat.to_string(),
                codes.join(";"),
                if graded { grades.join(";") } else { String::new() },
                t.filing_status.as_str().to_string(),
                t.submitted_at.0.with_timezone(&crate::time::LOCAL_TZ).date_naive().to_string(),
            ]
        })
        .collect();
    csvio::export(c.route, "队伍", csvio::header_row(TEAM_COLUMNS, q.chinese()?), rows).await
}
