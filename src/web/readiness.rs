//! 检查: the readiness findings of the jurisdiction with the API's filters, the printable report,
//! and running a check now (banner administrators). The run is started in the background through
//! the API (`wait=false`, 202 with the run id); the page then shows its progress bar, which
//! `assets/web/progress.js` refreshes once a second from the run's status (and a link refreshes
//! without JavaScript), and the run's summary once it is done.

use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::layout::Layout;
use super::{Req, WebResult, api, html, redirect};
use crate::readiness::{Rule, Severity};

#[derive(Deserialize)]
struct Finding {
    rule: String,
    severity: String,
    region: String,
    message: String,
    action: String,
    last_seen: String,
}

#[derive(Deserialize)]
struct Answer {
    region_name: String,
    score: Option<i64>,
    #[serde(rename = "items")]
    findings: Vec<Finding>,
    total: i64,
}

#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    run: Option<i64>,
}

/// A run as the page shows it (the API's `GET /api/v1/readiness/runs/{id}`).
#[derive(Deserialize)]
struct Run {
    id: i64,
    status: String,
    progress_done: i64,
    progress_total: i64,
    progress_phase: Option<String>,
    summary: Option<Value>,
    error: Option<String>,
}

impl Run {
    fn total(&self) -> i64 {
        self.progress_total.max(1)
    }
    fn done(&self) -> i64 {
        if self.status == "running" { self.progress_done.min(self.total()) } else { self.total() }
    }
    fn percent(&self) -> i64 {
        self.done() * 100 / self.total()
    }
    fn running(&self) -> bool {
        self.status == "running"
    }
    fn phase(&self) -> &str {
        self.progress_phase.as_deref().unwrap_or("准备中")
    }
}

#[derive(Template)]
#[template(path = "web/readiness.html")]
struct Page {
    layout: Layout,
    a: Answer,
    f: Filters,
    rules: Vec<(&'static str, &'static str)>,
    severities: Vec<(&'static str, &'static str)>,
    can_run: bool,
    report_url: String,
    run: Option<Run>,
}

impl Page {
    fn rule_label(&self, id: &str) -> &'static str {
        Rule::parse(id).map_or("其他", Rule::label)
    }
    fn severity_label(&self, s: &str) -> &'static str {
        match s {
            "critical" => Severity::Critical.label(),
            "warning" => Severity::Warning.label(),
            _ => Severity::Info.label(),
        }
    }
    /// The summary of a run that finished, or why it failed.
    fn ran(&self) -> Option<String> {
        let r = self.run.as_ref()?;
        match r.status.as_str() {
            "succeeded" => {
                let v = r.summary.clone().unwrap_or(Value::Null);
                let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
                Some(format!(
                    "检查完成：新增 {} 项，仍存在 {} 项，已解决 {} 项",
                    n("opened"),
                    n("still_open"),
                    n("resolved")
                ))
            }
            _ => None,
        }
    }

    /// Why a run failed.
    fn failed(&self) -> Option<String> {
        let r = self.run.as_ref()?;
        (r.status == "failed").then(|| format!("检查失败：{}", r.error.as_deref().unwrap_or("未知原因")))
    }

    fn when(&self, at: &str) -> String {
        crate::time::parse_instant(at).map_or_else(|_| at.to_string(), |t| t.local_display())
    }
}

/// `GET /readiness`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    let f: Filters = req.query().unwrap_or_default();
    let mut q = vec!["limit=500".to_string()];
    if ["critical", "warning", "info"].contains(&f.severity.as_str()) {
        q.push(format!("severity={}", f.severity));
    }
    if Rule::parse(&f.rule).is_some() {
        q.push(format!("rule={}", f.rule));
    }
    let a: Answer = api::decode(api::get(&req, &s, "/api/v1/readiness", &q.join("&")).await?)?;
    let run = match f.run {
        Some(id) if id > 0 => {
            Some(api::decode(api::get(&req, &s, &format!("/api/v1/readiness/runs/{id}"), "").await?)?)
        }
        _ => None,
    };
    let p = &s.principal;
    let page = Page {
        layout: Layout::new(&req, &s, "准备情况检查", "readiness").await?,
        a,
        f,
        rules: Rule::ALL.iter().map(|r| (r.id(), r.label())).collect(),
        severities: [Severity::Critical, Severity::Warning, Severity::Info]
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        can_run: p.role.allows(crate::auth::Perm::Approve) && p.scope.level == crate::regions::Level::Banner,
        report_url: format!("/api/v1/readiness/report?region={}", p.scope.code),
        run,
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
struct RunForm {
    csrf: String,
}

/// `POST /readiness/run`: starts a check in the background through the API's handler and shows
/// its progress.
pub async fn run(req: Req) -> WebResult {
    let f: RunForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let started: Value = api::post_query(&req, &s, "/api/v1/readiness/run", "wait=false").await?;
    let id = started.get("run_id").and_then(Value::as_i64).unwrap_or(0);
    Ok(redirect(&format!("/readiness?run={id}#run")))
}

/// `GET /readiness/runs/{id}`: the run's progress as JSON for the page's script.
pub async fn status(req: Req) -> WebResult {
    let s = req.session().await?;
    let id = super::path_id(&req.path.replace("/readiness/runs/", "/runs/"))?;
    let r: Run = api::decode(api::get(&req, &s, &format!("/api/v1/readiness/runs/{id}"), "").await?)?;
    let body = json!({
        "id": r.id, "status": r.status, "done": r.done(), "total": r.total(), "percent": r.percent(),
        "phase": r.phase(),
    });
    let mut resp = warp::reply::Response::new(body.to_string().into());
    let h = resp.headers_mut();
    h.insert(warp::http::header::CONTENT_TYPE, warp::http::HeaderValue::from_static("application/json"));
    h.insert(warp::http::header::CACHE_CONTROL, warp::http::HeaderValue::from_static("no-store"));
    Ok(resp)
}
