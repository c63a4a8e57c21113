//! 检查: the readiness findings of the jurisdiction with the API's filters, the printable report,
//! and running a check now (banner administrators; the API's handler runs it and answers with the
//! summary when it is done).

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
    ran: Option<String>,
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
    /// The summary of a run just made (`ran=opened,still_open,resolved`).
    fn ran(&self) -> Option<String> {
        let n: Vec<i64> = self.f.ran.as_deref()?.split(',').filter_map(|v| v.parse().ok()).collect();
        (n.len() == 3).then(|| format!("检查完成：新增 {} 项，仍存在 {} 项，已解决 {} 项", n[0], n[1], n[2]))
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
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
struct RunForm {
    csrf: String,
}

/// `POST /readiness/run`: runs a check through the API's handler and shows the summary.
pub async fn run(req: Req) -> WebResult {
    let f: RunForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    let summary: Value = api::post(&req, &s, "/api/v1/readiness/run", &json!({})).await?;
    let n = |k: &str| summary.get(k).and_then(Value::as_i64).unwrap_or(0);
    Ok(redirect(&format!("/readiness?ran={},{},{}", n("opened"), n("still_open"), n("resolved"))))
}
