//! Notifications people can read: a run sends each region at most one digest, however many
//! findings it opened there (counts by rule and severity, the most urgent findings with their
//! actions, a link to the full list), plus at most `max_individual_critical` individual messages
//! for the newly opened critical findings that most need someone now (shortfalls of a plan's
//! response level first). Everything goes through the notify outbox, whose dispatcher keeps each
//! channel within its rate limit.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::context::Context;
use super::{Found, Rule, Severity};
use crate::db::Db;
use crate::notify::outbox::{self, Message};
use crate::time::Timestamp;

/// Findings named in a digest with their actions.
const DIGEST_TOP: usize = 5;

/// A finding the run opened.
pub struct Opened<'a> {
    /// Stored id.
    pub id: i64,
    /// The finding.
    pub found: &'a Found,
    /// Severity under the configuration.
    pub severity: Severity,
}

/// How urgent a finding is: lower is more urgent. Critical before warning before info; among
/// criticals, a plan's response level lacking supplies or people first (someone must act now),
/// then a missing plan, then the rest.
fn urgency(o: &Opened) -> (u8, u8, String) {
    let severity = match o.severity {
        Severity::Critical => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    };
    let rule = match o.found.rule {
        Rule::SupplyShortfall | Rule::ForceShortfall => 0,
        Rule::PlanMissing => 1,
        _ => 2,
    };
    (severity, rule, o.found.identity())
}

/// What the notifications of a run came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Individual messages.
    pub individual: u64,
    /// Digests.
    pub digests: u64,
    /// Findings covered by a message (individually or counted in a digest).
    pub findings: u64,
}

/// Regions whose messages are enqueued per transaction (a province run reaches thousands of
/// regions; short transactions keep the API answering).
const REGIONS_PER_TX: usize = 100;

/// Enqueues the run's messages.
pub async fn notify(
    db: &Db,
    ctx: &Context,
    run_id: i64,
    now: Timestamp,
    opened: Vec<Opened<'_>>,
) -> Result<Sent, sqlx::Error> {
    let mut by_region: BTreeMap<String, Vec<Opened>> = BTreeMap::new();
    for o in opened {
        by_region.entry(o.found.region_code.clone()).or_default().push(o);
    }
    let cap = ctx.config.max_individual_critical.max(0) as usize;
    let mut sent = Sent::default();
    let mut regions: Vec<(String, Vec<Opened>)> = by_region.into_iter().collect();
    for group in regions.chunks_mut(REGIONS_PER_TX) {
        // One transaction and one multi-row enqueue per group of regions.
        let mut messages = Vec::new();
        for (region, list) in group.iter_mut() {
            list.sort_by_key(urgency);
            let individual = list.iter().take_while(|o| o.severity == Severity::Critical).take(cap).count();
            for o in &list[..individual] {
                messages.push(individual_message(ctx, o));
                sent.individual += 1;
                sent.findings += 1;
            }
            let rest = &list[individual..];
            if rest.iter().any(|o| o.severity != Severity::Info) {
                messages.push(digest_message(ctx, run_id, region, list, rest));
                sent.digests += 1;
                sent.findings += rest.len() as u64;
            }
        }
        let mut tx = db.begin().await?;
        outbox::enqueue_many(&mut tx, now, &messages).await?;
        tx.commit().await?;
    }
    Ok(sent)
}

fn individual_message(ctx: &Context, o: &Opened) -> Message {
    let f = o.found;
    Message {
        key: format!("finding:{}", o.id),
        region_code: f.region_code.clone(),
        kind: "readiness_finding".into(),
        title: format!("准备情况严重问题：{}（{}）", f.rule.label(), ctx.name(&f.region_code)),
        body: format!("{}\n建议：{}", f.message, f.action),
        data: json!({"finding_id": o.id, "rule": f.rule.id(), "facts": f.facts}),
        late: false,
        source: Some(("finding".into(), o.id.to_string())),
    }
}

/// One message for the region: what the run opened there, by severity and rule, and the most
/// urgent findings not already sent individually.
fn digest_message(ctx: &Context, run_id: i64, region: &str, all: &[Opened], rest: &[Opened]) -> Message {
    let name = ctx.name(region);
    let mut counts: BTreeMap<(Severity, Rule), u64> = BTreeMap::new();
    for o in all {
        *counts.entry((o.severity, o.found.rule)).or_default() += 1;
    }
    let mut per_severity: HashMap<Severity, u64> = HashMap::new();
    for ((s, _), n) in &counts {
        *per_severity.entry(*s).or_default() += n;
    }
    let link = format!("/api/v1/readiness?region={region}");
    let report = format!("/api/v1/readiness/report?region={region}");
    let mut body = format!(
        "本次检查新发现 {} 项问题：严重 {} 项、警告 {} 项、提示 {} 项。\n",
        all.len(),
        per_severity.get(&Severity::Critical).unwrap_or(&0),
        per_severity.get(&Severity::Warning).unwrap_or(&0),
        per_severity.get(&Severity::Info).unwrap_or(&0)
    );
    for ((s, r), n) in &counts {
        body.push_str(&format!("· {}【{}】{n} 项\n", r.label(), s.label()));
    }
    body.push_str("最紧急的问题：\n");
    for (i, o) in rest.iter().take(DIGEST_TOP).enumerate() {
        body.push_str(&format!("{}. {}\n   建议：{}\n", i + 1, o.found.message, o.found.action));
    }
    if rest.len() > DIGEST_TOP {
        body.push_str(&format!("另有 {} 项未列出。\n", rest.len() - DIGEST_TOP));
    }
    body.push_str(&format!("完整清单：{link}；可打印报告：{report}"));
    Message {
        key: format!("readiness:run:{run_id}:region:{region}"),
        region_code: region.to_string(),
        kind: "readiness_digest".into(),
        title: format!("准备情况检查摘要：{name}新发现 {} 项问题", all.len()),
        body,
        data: json!({
            "run_id": run_id,
            "region": region,
            "opened": all.len(),
            "counts": counts.iter().map(|((s, r), n)| json!({"rule": r.id(), "severity": s.as_str(), "count": n})).collect::<Vec<_>>(),
            "top": rest.iter().take(DIGEST_TOP).map(|o| json!({"finding_id": o.id, "rule": o.found.rule.id(), "severity": o.severity.as_str(), "message": o.found.message, "action": o.found.action})).collect::<Vec<_>>(),
            "link": link,
            "report": report,
        }),
        late: false,
        source: Some(("readiness_run".into(), run_id.to_string())),
    }
}
