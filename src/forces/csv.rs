//! Bulk data for teams: `POST /api/v1/import/teams` and `GET /api/v1/export/teams.csv`
//! (columns `code,name,org_type,region_code,lon,lat,specialties,grades,filing_status`;
//! specialties and grades `;`-separated and aligned, an empty grade meaning "not graded").
//! Imports are all-or-nothing, report every error with line and column, and re-importing the
//! same file changes nothing. Members are in [`super::csv_members`].

use std::collections::{HashMap, HashSet};

use sqlx::types::Json;
use warp::http::Method;
use warp::reply::Response;

use super::personal::Disclosure;
use super::teams::{TeamRow, check_code};
use super::{FilingStatus, OrgType, SpecialtyGrade, bulk, check_specialties, store};
use crate::audit::{Actor, Change};
use crate::auth::{Perm, Principal};
use crate::csvio::{self, Column};
use crate::db::{Db, Tx};
use crate::error::{ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::imports::{Errors, Import, ImportQuery, Lined};
use crate::personal::Cipher;
use crate::regions::import::ImportSummary;
use crate::regions::{RegionCode, check_lon_lat};
use crate::time::Timestamp;
use crate::vocab::Specialty;

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
            |c| Box::pin(import_teams(c)),
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

/// A team row as parsed.
pub struct Row {
    code: String,
    name: String,
    org_type: OrgType,
    region: RegionCode,
    lon: f64,
    lat: f64,
    specialties: Vec<SpecialtyGrade>,
    status: Option<FilingStatus>,
    /// When a new team's filing counts as submitted (the day on paper, or now).
    submitted_at: Timestamp,
}

fn parse_specialties(rec: &csvio::Record, errors: &mut Vec<FieldError>) -> Option<Vec<SpecialtyGrade>> {
    let split = |v: Option<&str>| -> Vec<String> {
        v.map(|v| v.split([';', '；']).map(|s| s.trim().to_string()).collect()).unwrap_or_default()
    };
    let specs = split(rec.get("specialties"));
    let grades = split(rec.get("grades"));
    if !grades.is_empty() && grades.len() != specs.len() {
        errors.push(rec.err(
            "grades",
            format!("等级有 {} 项，专业有 {} 项，应一一对应（未定级的留空）", grades.len(), specs.len()),
        ));
        return None;
    }
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let Some(specialty) = Specialty::parse(s) else {
            errors.push(rec.err("specialties", format!("专业「{s}」无效")));
            return None;
        };
        let grade = match grades.get(i).map(String::as_str).unwrap_or("") {
            "" => None,
            "1" | "一级" => Some(1),
            "2" | "二级" => Some(2),
            "3" | "三级" => Some(3),
            g => {
                errors.push(rec.err("grades", format!("等级「{g}」无效：应为 1、2、3 或留空")));
                return None;
            }
        };
        out.push(SpecialtyGrade { specialty, grade });
    }
    if let Err(m) = check_specialties(&out) {
        errors.push(rec.err("specialties", m));
        return None;
    }
    Some(out)
}

/// A teams file, for a caller: teams matched by code, within the caller's jurisdiction.
pub struct TeamImport {
    principal: Principal,
    actor: Actor,
    now: Timestamp,
    cipher: Cipher,
}

impl TeamImport {
    /// An import by `principal`.
    pub fn new(principal: Principal, actor: Actor, now: Timestamp, cipher: Cipher) -> TeamImport {
        TeamImport { principal, actor, now, cipher }
    }
}

/// What a teams import writes: each row with the stored team (and its specialties) it changes.
pub struct Plan {
    rows: usize,
    items: Vec<(Row, Option<Stored>)>,
}

/// A stored team with its specialties.
type Stored = (TeamRow, Vec<SpecialtyGrade>);

impl Import for TeamImport {
    type Row = Row;
    type Plan = Plan;
    const COLUMNS: &'static [Column] = TEAM_COLUMNS;

    fn parse(rec: &csvio::Record<'_>, now: Timestamp, errors: &mut Vec<FieldError>) -> Option<Row> {
        let code =
            rec.need("code", errors).and_then(|v| check_code(v).map_err(|m| errors.push(rec.err("code", m))).ok());
        let name = rec.need("name", errors).map(str::to_string);
        if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
            errors.push(rec.err("name", "超过 100 个字符"));
        }
        let org_type = rec.need("org_type", errors).and_then(|v| {
            OrgType::parse(v).or_else(|| {
                errors.push(rec.err("org_type", format!("组织类型「{v}」无效，应为 {}", OrgType::choices())));
                None
            })
        });
        let region = rec
            .need("region_code", errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("region_code", m))).ok());
        let lon = rec.need("lon", errors).and(csvio::opt_f64(rec, "lon", errors));
        let lat = rec.need("lat", errors).and(csvio::opt_f64(rec, "lat", errors));
        if let (Some(lon), Some(lat)) = (lon, lat)
            && let Err(m) = check_lon_lat(lon, lat)
        {
            errors.push(rec.err(if (-180.0..=180.0).contains(&lon) { "lat" } else { "lon" }, m));
        }
        let specialties = parse_specialties(rec, errors);
        let status = rec.get("filing_status").and_then(|v| {
            FilingStatus::parse(v).or_else(|| {
                errors.push(rec.err("filing_status", format!("备案状态「{v}」无效，应为 {}", FilingStatus::choices())));
                None
            })
        });
        let submitted_on = crate::supplies::csv::date(rec, "submitted_on", errors);
        let submitted_at = match super::paper::submitted_at(submitted_on, now) {
            Ok(t) => t,
            Err(m) => {
                errors.push(rec.err("submitted_on", m));
                now
            }
        };
        Some(Row {
            code: code?,
            name: name?,
            org_type: org_type?,
            region: region?,
            lon: lon?,
            lat: lat?,
            specialties: specialties?,
            status,
            submitted_at,
        })
    }

    async fn check(&self, db: &Db, rows: Vec<Lined<Row>>, errors: &mut Errors) -> ApiResult<Plan> {
        let p = &self.principal;
        let may_decide = p.role.allows(Perm::Decide);
        // Team codes are unique across the banner, so teams outside the jurisdiction are looked
        // up too (one query each for teams, their specialties and the regions).
        let all = ("000000000000", "999999999999");
        let mut specs = store::specialties_in(db, all).await?;
        let mut existing: HashMap<String, (TeamRow, Vec<SpecialtyGrade>)> = store::all(db, all, None)
            .await?
            .into_iter()
            .map(|t| {
                let sp = specs.remove(&t.id).unwrap_or_default();
                (t.code.clone(), (t, sp))
            })
            .collect();
        let regions: HashSet<String> = crate::regions::store::all(db).await?.into_iter().map(|r| r.code).collect();
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut plan = Plan { rows: rows.len(), items: Vec::new() };
        for Lined { line, row } in rows {
            if let Some(first) = seen.insert(row.code.clone(), line) {
                errors.at(line, "code", format!("队伍编码 {} 与第 {first} 行重复", row.code));
                continue;
            }
            if !p.scope.contains(row.region.as_str()) {
                errors.at(line, "region_code", format!("区划 {} 不在您的辖区内", row.region));
            }
            if !regions.contains(row.region.as_str()) {
                errors.at(line, "region_code", format!("区划 {} 不存在", row.region));
            }
            let old = existing.remove(&row.code);
            if let Some((t, _)) = &old
                && !p.scope.contains(&t.region_code)
            {
                errors.at(line, "code", format!("队伍 {} 属于区划 {}，不在您的辖区内", row.code, t.region_code));
            }
            let current = old.as_ref().map(|(t, _)| t.filing_status);
            if let Some(s) = row.status
                && Some(s) != current
                && !(current.is_none() && s == FilingStatus::Submitted)
                && !may_decide
            {
                errors.at(
                    line,
                    "filing_status",
                    format!("角色「{}」无权设置备案状态「{}」", p.role.label(), s.label()),
                );
            }
            if errors.is_empty() {
                plan.items.push((row, old));
            }
        }
        Ok(plan)
    }

    async fn write(&self, tx: &mut Tx, plan: Plan) -> ApiResult<ImportSummary> {
        let (actor, now) = (&self.actor, self.now);
        let mut s = ImportSummary { rows: plan.rows, ..Default::default() };
        // In chunks: new and changed teams with multi-row statements, then their specialties and
        // audit rows (the same rows teams::create / teams::update write one by one).
        for chunk in plan.items.chunks(1_000) {
            let mut new: Vec<(TeamRow, &[SpecialtyGrade])> = Vec::new();
            let mut changed: Vec<(TeamRow, &Stored, &[SpecialtyGrade])> = Vec::new();
            for (row, old) in chunk {
                match old {
                    None => new.push((self.new_team(row), &row.specialties)),
                    Some(stored) => {
                        if let Some(t) = self.changed_team(row, stored) {
                            changed.push((t, stored, &row.specialties));
                        } else {
                            s.unchanged += 1;
                        }
                    }
                }
            }
            let ids: HashMap<String, i64> = bulk::insert_teams(tx, &new.iter().map(|(t, _)| t).collect::<Vec<_>>())
                .await?
                .into_iter()
                .map(|(id, code)| (code, id))
                .collect();
            for (t, _) in &mut new {
                t.id = ids.get(&t.code).copied().unwrap_or_default();
            }
            let moves: Vec<(&TeamRow, FilingStatus)> =
                changed.iter().map(|(t, (old, _), _)| (t, old.filing_status)).collect();
            bulk::update_teams(tx, &moves).await?;
            let fresh: Vec<(i64, &[SpecialtyGrade])> = new.iter().map(|(t, sp)| (t.id, *sp)).collect();
            bulk::set_specialties(tx, &fresh, true).await?;
            let edited: Vec<(i64, &[SpecialtyGrade])> = changed.iter().map(|(t, _, sp)| (t.id, *sp)).collect();
            bulk::set_specialties(tx, &edited, false).await?;
            let mut audit = Vec::with_capacity(new.len() + changed.len());
            for (t, sp) in &new {
                audit.push((t, None, Some(self.view(t, sp)?)));
            }
            for (t, (old, old_specs), sp) in &changed {
                audit.push((t, Some(self.view(old, old_specs)?), Some(self.view(t, sp)?)));
            }
            let mut changes = Vec::with_capacity(audit.len());
            for (t, before, after) in audit {
                changes.push(Change {
                    action: "import",
                    entity_type: "team",
                    entity_id: &t.code,
                    region_code: Some(&t.region_code),
                    before,
                    after,
                });
            }
            crate::audit::record_many(tx, actor, now, changes).await?;
            s.created += new.len();
            s.updated += changed.len();
        }
        Ok(s)
    }
}

impl TeamImport {
    /// The audit view of a team (masked, as teams::create writes it).
    fn view(&self, t: &TeamRow, specialties: &[SpecialtyGrade]) -> ApiResult<serde_json::Value> {
        super::audit_json(&super::teams::Team::view(t, specialties.to_vec(), &self.cipher, Disclosure::MASKED))
    }

    /// A new team from a row.
    fn new_team(&self, row: &Row) -> TeamRow {
        let (actor, now) = (&self.actor, self.now);
        let status = row.status.unwrap_or(FilingStatus::Submitted);
        let decided = status != FilingStatus::Submitted;
        TeamRow {
            id: 0,
            code: row.code.clone(),
            name: row.name.clone(),
            org_type: row.org_type,
            registration_no: None,
            region_code: row.region.to_string(),
            lon: row.lon,
            lat: row.lat,
            equipment: Json(vec![]),
            leader_name: None,
            leader_phone: None,
            contact_name: None,
            contact_phone: None,
            filing_status: status,
            status_reason: None,
            submitted_by: actor.name.clone(),
            submitted_at: row.submitted_at,
            decided_by: decided.then(|| actor.name.clone()),
            decided_at: decided.then_some(now),
            approved_by: (status == FilingStatus::Approved).then(|| actor.name.clone()),
            approved_at: (status == FilingStatus::Approved).then_some(now),
            created_at: now,
            updated_at: now,
        }
    }

    /// The stored team as the row changes it, or None when the row matches what is stored.
    fn changed_team(&self, row: &Row, (old, old_specs): &Stored) -> Option<TeamRow> {
        let (actor, now) = (&self.actor, self.now);
        let status = row.status.unwrap_or(old.filing_status);
        if old.name == row.name
            && old.org_type == row.org_type
            && old.region_code == row.region.as_str()
            && old.lon == row.lon
            && old.lat == row.lat
            && *old_specs == row.specialties
            && old.filing_status == status
        {
            return None;
        }
        let mut t = old.clone();
        t.name = row.name.clone();
        t.org_type = row.org_type;
        t.region_code = row.region.to_string();
        (t.lon, t.lat) = (row.lon, row.lat);
        if status != old.filing_status {
            t.filing_status = status;
            t.decided_by = Some(actor.name.clone());
            t.decided_at = Some(now);
            if status == FilingStatus::Approved {
                t.approved_by = Some(actor.name.clone());
                t.approved_at = Some(now);
            }
        }
        t.updated_at = now;
        Some(t)
    }
}

async fn import_teams(c: Ctx) -> ApiResult<Response> {
    let imp = TeamImport::new(c.caller()?.clone(), c.actor()?, c.now(), c.app.cipher.clone());
    crate::imports::respond(&c, &imp).await
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
