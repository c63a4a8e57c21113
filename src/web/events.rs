//! 事件: the event list and the event board (事件看板): the timeline, the resource plan with its
//! lines' states and the plan drawn on the map, the dispatch list, and the everyday actions
//! (information report with revised grade and figures, activation and level change, dispatch of
//! chosen lines, arrival and on-site, termination, the assessment) as forms, each refused form
//! shown again with its errors beside the fields ([`super::form`]). Everything goes through the
//! events API as the logged-in user ([`super::api`]); drill mode events carry 【演练】
//! everywhere. The steps' posts are [`super::event_steps`]; opening a new event is
//! [`super::event_new`].

use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::form::FormState;
use super::layout::Layout;
use super::{Req, WebError, WebResult, api, html};
use crate::auth::Perm;
use crate::auth::login::Session;
use crate::events::Severity;
use crate::plans::level_label;
use crate::vocab::Hazard;
use crate::with_db;

/// An event as the API shows it (the fields the pages use).
#[derive(Deserialize)]
struct Ev {
    id: i64,
    title: String,
    hazard: Hazard,
    region_code: String,
    place: String,
    lon: f64,
    lat: f64,
    severity: Severity,
    status: String,
    exercise: bool,
    level: Option<i64>,
    known_at: String,
    first_report_due: String,
    first_report_state: String,
    #[serde(flatten)]
    d: EvDetail,
}

/// The parts of an event only the board shows.
#[derive(Deserialize)]
struct EvDetail {
    occurred_at: String,
    description: String,
    source: String,
    reporter: String,
    dead: i64,
    injured: i64,
    missing: i64,
    trapped: i64,
    affected_people: i64,
    affected_households: i64,
    affected_livestock: i64,
    activated_at: Option<String>,
    terminated_at: Option<String>,
    termination_note: Option<String>,
}

impl Ev {
    fn tag(&self) -> &'static str {
        if self.exercise { "【演练】" } else { "" }
    }
    fn level_text(&self) -> String {
        self.level.map_or_else(|| "未启动".into(), |l| format!("{}响应", level_label(u8::try_from(l).unwrap_or(0))))
    }
}

#[derive(Deserialize)]
struct EvPage {
    items: Vec<Ev>,
    total: i64,
}

#[derive(Template)]
#[template(path = "web/events.html")]
struct ListPage {
    layout: Layout,
    items: Vec<Ev>,
    total: i64,
    can_write: bool,
}

/// Shows an API instant in Asia/Shanghai.
fn when(at: &str) -> String {
    crate::time::parse_instant(at).map_or_else(|_| at.to_string(), |t| t.local_display())
}

fn status_label(code: &str) -> &'static str {
    crate::events::EventStatus::parse(code).map_or("未知", |s| s.label())
}

/// `GET /events`: the events of the jurisdiction, newest first.
pub async fn list(req: Req) -> WebResult {
    let s = req.session().await?;
    let page: EvPage = api::decode(api::get(&req, &s, "/api/v1/events", "limit=200").await?)?;
    let p = ListPage {
        layout: Layout::new(&req, &s, "突发事件", "events").await?,
        items: page.items,
        total: page.total,
        can_write: s.principal.role.allows(Perm::Write),
    };
    Ok(html(p.render()?))
}

#[derive(Deserialize)]
struct Report {
    kind: crate::events::ReportKind,
    reported_at: String,
    content: String,
    reporter: String,
}

#[derive(Deserialize)]
struct Entry {
    at: String,
    actor: String,
    text: String,
}

#[derive(Deserialize)]
struct Source {
    source: String,
    name: String,
    distance_km: Option<f64>,
    take: i64,
}

impl Source {
    fn label(&self) -> &'static str {
        match self.source.as_str() {
            "agreement" => "协议储备",
            "nearest" => "最近",
            "beyond" => "更远（相邻地区）",
            "requisition" => "征用",
            _ => "请求支援",
        }
    }
}

#[derive(Deserialize)]
struct Need {
    kind: String,
    need: String,
    label: String,
    unit: String,
    required: i64,
    within_km: f64,
    committed: i64,
    proposed: i64,
    gap: i64,
    next_sources: Vec<Source>,
}

#[derive(Deserialize)]
struct Line {
    id: i64,
    kind: String,
    need: String,
    source: String,
    depot_id: Option<i64>,
    name: String,
    code: String,
    quantity: i64,
    distance_km: f64,
    state: String,
}

impl Line {
    fn state_label(&self) -> &'static str {
        match self.state.as_str() {
            "proposed" => "建议",
            "requested" => "已调用，待响应",
            "accepted" => "已接受",
            "declined" => "已拒绝",
            "dispatched" => "已调出",
            "arrived" => "已送达",
            "on_site" => "已到场",
            "returned" => "已返回",
            "superseded" => "已作废",
            _ => "未知",
        }
    }
    fn source_label(&self) -> &'static str {
        match self.source.as_str() {
            "agreement" => "协议储备",
            "beyond" => "更远（相邻地区）",
            _ => "最近",
        }
    }
    fn kind_label(&self) -> &'static str {
        if self.kind == "supply" { "物资" } else { "队伍" }
    }
}

/// The assessment, once made (what the board shows of it).
#[derive(Deserialize)]
struct Assessment {
    assessed_by: String,
    assessed_at: String,
    summary: String,
}

#[derive(Deserialize)]
struct Board {
    event: Ev,
    assessment: Option<Assessment>,
    severity_label: String,
    status_label: String,
    first_report_overdue: bool,
    reports: Vec<Report>,
    resource_plan: Vec<Need>,
    lines: Vec<Line>,
    timeline: Vec<Entry>,
}

/// A plan (and level) the event may activate.
struct Choice {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "web/event.html")]
struct BoardPage {
    layout: Layout,
    b: Board,
    done: Option<&'static str>,
    choices: Vec<Choice>,
    levels: Vec<(u8, &'static str)>,
    map_json: String,
    can_write: bool,
    can_decide: bool,
    severities: Vec<(&'static str, &'static str)>,
    form: FormState,
}

impl BoardPage {
    fn when(&self, at: &str) -> String {
        when(at)
    }
    fn report_kinds(&self) -> Vec<(&'static str, &'static str)> {
        crate::events::ReportKind::ALL.iter().map(|k| (k.code(), k.label())).collect()
    }
    /// The Chinese name of a line's item or specialty (from the resource plan).
    fn need_label(&self, l: &Line) -> String {
        self.b.resource_plan.iter().find(|n| n.need == l.need).map_or_else(|| l.need.clone(), |n| n.label.clone())
    }
    fn proposed(&self) -> Vec<&Line> {
        self.b.lines.iter().filter(|l| l.state == "proposed").collect()
    }
    /// The steps a line offers now, as `(step, label)`: a dispatched supply line can be marked
    /// delivered; a team that accepted its call-up on site or returned, a team on site returned.
    fn line_steps(&self, l: &Line) -> Vec<(&'static str, &'static str)> {
        if !self.can_write || self.b.event.status != "responding" {
            return vec![];
        }
        match (l.kind.as_str(), l.state.as_str()) {
            ("supply", "dispatched") => vec![("arrive", "登记送达")],
            ("force", "accepted") => vec![("arrive", "登记到场"), ("return", "登记返回")],
            ("force", "on_site") => vec![("return", "登记返回")],
            _ => vec![],
        }
    }
    /// Whether `l` is the level in force (the level form's default).
    fn level_is(&self, l: &u8) -> bool {
        self.b.event.level == Some(i64::from(*l))
    }
    /// The figures a report may revise: field, label, current value (the placeholder).
    fn figure_fields(&self) -> Vec<(&'static str, &'static str, i64)> {
        FIGURES.iter().zip(self.figures()).map(|(f, (l, v))| (*f, l, v)).collect()
    }
    /// The casualty and damage figures as `(label, value)`.
    fn figures(&self) -> Vec<(&'static str, i64)> {
        let d = &self.b.event.d;
        vec![
            ("死亡", d.dead),
            ("受伤", d.injured),
            ("失踪", d.missing),
            ("被困", d.trapped),
            ("受灾人口", d.affected_people),
            ("受灾户数", d.affected_households),
            ("受灾牲畜（头只）", d.affected_livestock),
        ]
    }
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

fn done_label(step: &str) -> Option<&'static str> {
    match step {
        "report" => Some("信息报告已登记"),
        "activate" => Some("已启动响应，资源方案已生成"),
        "level" => Some("响应级别已调整，资源方案已重新计算"),
        "dispatch" => Some("已调度所选条目"),
        "terminate" => Some("响应已终止"),
        "created" => Some("事件已登记，请在时限内报送初报"),
        "arrive" => Some("已登记送达/到场"),
        "return" => Some("已登记队伍返回，调用已结束"),
        "note" => Some("已记入事件日志"),
        "assess" => Some("调查评估已登记，可打开调查评估报告"),
        _ => None,
    }
}

/// `(lon, lat)` of the depots and teams the lines name, in one query each.
async fn places(req: &Req, lines: &[Line]) -> Result<(Vec<(i64, f64, f64)>, Vec<(String, f64, f64)>), WebError> {
    let depots: Vec<i64> = lines.iter().filter_map(|l| l.depot_id).collect();
    let teams: Vec<&str> = lines.iter().filter(|l| l.kind == "force").map(|l| l.code.as_str()).collect();
    let marks = |n: usize| (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let db = &req.app.db;
    let mut d = Vec::new();
    if !depots.is_empty() {
        let sql = format!("SELECT id, lon, lat FROM depots WHERE id IN ({})", marks(depots.len()));
        d = with_db!(db, |p| {
            let mut q = sqlx::query_as::<_, (i64, f64, f64)>(&sql);
            for id in &depots {
                q = q.bind(*id);
            }
            q.fetch_all(p).await
        })?;
    }
    let mut t = Vec::new();
    if !teams.is_empty() {
        let sql = format!("SELECT code, lon, lat FROM teams WHERE code IN ({})", marks(teams.len()));
        t = with_db!(db, |p| {
            let mut q = sqlx::query_as::<_, (String, f64, f64)>(&sql);
            for code in &teams {
                q = q.bind(*code);
            }
            q.fetch_all(p).await
        })?;
    }
    Ok((d, t))
}

/// What the map draws: the event's point and a line to each depot and team of the plan.
async fn map_json(req: &Req, b: &Board) -> Result<String, WebError> {
    let (depots, teams) = places(req, &b.lines).await?;
    let mut marks = Vec::new();
    for l in b.lines.iter().filter(|l| l.state != "superseded") {
        let at = if l.kind == "supply" {
            depots.iter().find(|d| Some(d.0) == l.depot_id).map(|d| (d.1, d.2))
        } else {
            teams.iter().find(|t| t.0 == l.code).map(|t| (t.1, t.2))
        };
        if let Some((lon, lat)) = at {
            marks.push(json!({
                "kind": l.kind, "name": l.name, "lon": lon, "lat": lat, "state": l.state_label(),
                "what": format!("{} {}", l.need, l.quantity), "km": l.distance_km
            }));
        }
    }
    let v = json!({
        "event": {"title": format!("{}{}", b.event.tag(), b.event.title), "lon": b.event.lon, "lat": b.event.lat},
        "lines": marks,
        "tile_url": req.app.config.tile_url.clone().unwrap_or_default(),
        "tile_attribution": req.app.config.tile_attribution.clone().unwrap_or_default(),
    });
    Ok(v.to_string())
}

/// `GET /events/{id}`: the board.
pub async fn board(req: Req) -> WebResult {
    let s = req.session().await?;
    let id = super::path_id(&req.path)?;
    render(&req, &s, id, FormState::none()).await
}

/// The board of event `id`, with `form` (a refused form shown again, or none).
pub(super) async fn render(req: &Req, s: &Session, id: i64, form: FormState) -> WebResult {
    let b: Board = api::decode(api::get(req, s, &format!("/api/v1/events/{id}"), "").await?)?;
    let role = s.principal.role;
    let can_decide = role.allows(Perm::Decide);
    let mut choices = Vec::new();
    if can_decide && b.event.status == "reported" {
        let plans = api::get(req, s, &format!("/api/v1/events/{id}/plans"), "").await?;
        for p in plans["items"].as_array().into_iter().flatten() {
            for l in p["levels"].as_array().into_iter().flatten().filter_map(Value::as_u64) {
                choices.push(Choice {
                    value: format!("{}:{l}", p["plan_id"]),
                    label: format!("《{}》{}响应", p["title"].as_str().unwrap_or(""), level_label(l as u8)),
                });
            }
        }
    }
    let done: Done = req.query().unwrap_or_default();
    let title = format!("{}{}", b.event.tag(), b.event.title);
    let page = BoardPage {
        layout: Layout::new(req, s, title, "events").await?,
        map_json: map_json(req, &b).await?,
        b,
        done: done.done.as_deref().and_then(done_label),
        choices,
        levels: (1..=4).map(|l| (l, level_label(l))).collect(),
        can_write: role.allows(Perm::Write),
        can_decide,
        severities: Severity::ALL.iter().map(|v| (v.code(), v.label())).collect(),
        form,
    };
    Ok(html(page.render()?))
}

/// Figures a follow-up report may revise.
pub(super) const FIGURES: [&str; 7] =
    ["dead", "injured", "missing", "trapped", "affected_people", "affected_households", "affected_livestock"];
