//! 今日: what needs doing in the user's region, on one page: the readiness score and its trend,
//! open findings by severity with the action to take (overdue plans, expiring batches and
//! insurance, team filings waiting are findings of the readiness rules), and this week's drills
//! and reminders. Everything comes from the readiness and drill stores the API uses.

use askama::Template;
use chrono::{Datelike, Duration, TimeZone};

use super::layout::Layout;
use super::{Req, WebResult, html};
use crate::auth::Perm;
use crate::drills::Drill;
use crate::readiness::store::{self as readiness, Finding, FindingQuery, ScorePoint};
use crate::readiness::{Rule, Severity};
use crate::time::{LOCAL_TZ, Timestamp};

/// Most findings listed on the page (the rest are counted and reachable in the report).
const MAX_FINDINGS: i64 = 200;

/// Findings of one kind of problem.
struct Group {
    label: &'static str,
    severity: Severity,
    items: Vec<Finding>,
}

/// A drill this week and its reminders falling in the week.
struct WeekDrill {
    drill: Drill,
    reminders: Vec<String>,
}

/// One bar of the score trend.
struct Bar {
    x: i64,
    y: i64,
    h: i64,
    label: String,
}

#[derive(Template)]
#[template(path = "web/today.html")]
struct TodayPage {
    layout: Layout,
    score: Option<ScorePoint>,
    change: Option<i64>,
    bars: Vec<Bar>,
    counts: [(Severity, i64); 3],
    groups: Vec<Group>,
    total: i64,
    shown: usize,
    more: bool,
    week: Vec<WeekDrill>,
    week_label: String,
    report_url: String,
    warnings: Vec<super::today_warnings::ActiveWarning>,
    can_ack: bool,
}

impl TodayPage {
    fn severity_class(&self, s: &Severity) -> &'static str {
        s.as_str()
    }

    /// Where the finding is fixed: the plan, depot or team page it is about.
    fn finding_link(&self, f: &Finding) -> Option<(String, &'static str)> {
        let team = f.facts.0.get("team").and_then(|v| v.as_str());
        match f.subject_type.as_str() {
            "plan" => Some((format!("/plans/{}", f.subject_id), "办理预案")),
            "depot" => Some((format!("/supplies/{}", f.subject_id), "查看储备库")),
            "batch" => Some(("/supplies".to_string(), "查看储备库")),
            "team" | "member" => team.map(|t| (format!("/teams/{}", super::urlencode(t)), "查看队伍")),
            "region" => {
                let draft = f
                    .facts
                    .0
                    .get("drafts")
                    .and_then(|d| d.get(0))
                    .and_then(|d| d.get("plan_id"))
                    .and_then(|v| v.as_i64());
                Some(match draft {
                    Some(id) => (format!("/plans/{id}"), "办理预案草稿"),
                    None => ("/plans".to_string(), "查看预案"),
                })
            }
            _ => None,
        }
    }

    fn trend_text(&self) -> String {
        match self.change {
            Some(d) if d > 0 => format!("较上次 ↑{d}"),
            Some(d) if d < 0 => format!("较上次 ↓{}", -d),
            Some(_) => "与上次持平".into(),
            None => "首次检查".into(),
        }
    }
}

/// Monday 00:00 of this week and of the next, Asia/Shanghai.
fn week_bounds(now: Timestamp) -> (Timestamp, Timestamp) {
    let today = now.0.with_timezone(&LOCAL_TZ).date_naive();
    let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
    let start = LOCAL_TZ
        .from_local_datetime(&monday.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| Timestamp(t.with_timezone(&chrono::Utc)))
        .unwrap_or(now);
    (start, Timestamp(start.0 + Duration::days(7)))
}

/// `GET /today`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    let p = &s.principal;
    p.require(Perm::Read)?;
    let db = &req.app.db;
    let (lo, hi) = p.scope.bounds();
    let (history, _) = readiness::history(db, p.scope.code.as_str(), 12, 0).await?;
    let score = history.first().map(|h| ScorePoint { ..*h });
    let change = (history.len() >= 2).then(|| history[0].score - history[1].score);
    let bars = history
        .iter()
        .rev()
        .enumerate()
        .map(|(i, h)| Bar {
            x: i as i64 * 14,
            y: 100 - h.score,
            h: h.score.max(1),
            label: format!("{} 得分 {}", h.run_at.local_display(), h.score),
        })
        .collect();
    let (findings, total) = readiness::list(db, (&lo, &hi), None, &FindingQuery::default(), MAX_FINDINGS, 0).await?;
    let mut counts = [(Severity::Critical, 0), (Severity::Warning, 0), (Severity::Info, 0)];
    for sev in &mut counts {
        let q = FindingQuery { severity: Some(sev.0), ..FindingQuery::default() };
        sev.1 = readiness::list(db, (&lo, &hi), None, &q, 1, 0).await?.1;
    }
    let shown = findings.len();
    let mut groups: Vec<Group> = Vec::new();
    for f in findings {
        let rule: Rule = f.rule.0;
        match groups.iter_mut().find(|g| g.label == rule.label()) {
            Some(g) => g.items.push(f),
            None => groups.push(Group { label: rule.label(), severity: f.severity, items: vec![f] }),
        }
    }
    let (from, to) = week_bounds(req.now());
    let filter = crate::drills::store::Filter {
        bounds: (lo.clone(), hi.clone()),
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let (drills, _) = crate::drills::store::list(db, &filter, 100, 0).await?;
    let week = drills
        .into_iter()
        .map(|d| {
            let reminders = d
                .reminder_offsets
                .iter()
                .map(|m| Timestamp(d.starts_at.0 - Duration::minutes(*m)))
                .filter(|t| *t >= from && *t < to)
                .map(|t| t.local_display())
                .collect();
            WeekDrill { drill: d, reminders }
        })
        .collect();
    let week_label = format!(
        "{} 至 {}",
        from.0.with_timezone(&LOCAL_TZ).format("%m月%d日"),
        (to.0 - Duration::days(1)).with_timezone(&LOCAL_TZ).format("%m月%d日")
    );
    let page = TodayPage {
        layout: Layout::new(&req, &s, "今日", "today").await?,
        score,
        change,
        bars,
        counts,
        groups,
        total,
        shown,
        more: total > shown as i64,
        week,
        week_label,
        report_url: format!("/api/v1/readiness/report?region={}", p.scope.code),
        warnings: super::today_warnings::active(&req, &s).await?,
        can_ack: p.role.allows(Perm::Write),
    };
    Ok(html(page.render()?))
}
