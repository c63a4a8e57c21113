//! A readiness check limited to some regions and one hazard, run when a warning is issued or
//! received: the plans in force of those regions for that hazard are measured against supplies
//! and forces within their distances (same rules as the daily check), and the regions' expired
//! or expiring stock and uninsured members are listed. Nothing is written to the daily check's
//! findings: the caller keeps the result with whatever triggered it.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDate};

use serde::Serialize;
use serde_json::{Value, json};

use super::context::Context;
use super::{Found, Rule, Severity, rules, store};
use crate::db::Db;
use crate::plans::store::CurrentPlan;
use crate::time::Timestamp;
use crate::vocab::Hazard;
use crate::with_db;

/// Rules a targeted check reports: what a hazard needs now, not the paperwork.
pub const TARGETED_RULES: &[Rule] = &[
    Rule::SupplyShortfall,
    Rule::ForceShortfall,
    Rule::SupplyExpired,
    Rule::SupplyBelowMinimum,
    Rule::InsuranceExpired,
    Rule::SupplyExpiring,
    Rule::InsuranceExpiring,
];

/// One line of the resources a response level needs, with what is at hand.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ResourceLine {
    /// Region of the plan.
    pub region_code: String,
    /// Plan id.
    pub plan_id: i64,
    /// Plan title.
    pub plan: String,
    /// Response level (1–4).
    pub level: u8,
    /// `supply` or `force`.
    pub kind: String,
    /// Item code or specialty code.
    pub code: String,
    /// Item or specialty name.
    pub name: String,
    /// Required quantity (or headcount).
    pub required: i64,
    /// Unit.
    pub unit: String,
    /// Distance within which it counts, km.
    pub within_km: f64,
    /// Shortfall (0 when covered).
    pub shortfall: i64,
}

/// A finding of a targeted check.
#[derive(Debug, Clone)]
pub struct TargetedFinding {
    /// The finding.
    pub found: Found,
    /// Its severity under the configuration.
    pub severity: Severity,
    /// Where to act on it (an API path).
    pub link: Option<String>,
}

/// What a targeted check found.
#[derive(Debug, Clone)]
pub struct Targeted {
    /// Findings in the regions, most severe first.
    pub findings: Vec<TargetedFinding>,
    /// Plans in force for the hazard in the regions.
    pub plans: usize,
    /// For `resource_level`: each plan's requirements at that response level (or its highest).
    pub resource_plan: Vec<ResourceLine>,
}

/// Runs the check for `regions` (codes) and `hazard` at `now`. With `resource_level` (1 or 2
/// for a red or orange warning), also lists what that response level of each plan needs.
pub async fn check(
    db: &Db,
    now: Timestamp,
    regions: &[String],
    hazard: Hazard,
    resource_level: Option<u8>,
) -> anyhow::Result<Targeted> {
    let config = store::config(db).await?;
    let all = crate::regions::store::all(db).await?;
    let ctx = Context::new(now, config, all);
    let wanted: HashSet<&str> = regions.iter().map(String::as_str).collect();
    let (Some(lo), Some(hi)) = (regions.iter().min(), regions.iter().max()) else {
        return Ok(Targeted { findings: vec![], plans: 0, resource_plan: vec![] });
    };
    let plans: Vec<CurrentPlan> = crate::plans::store::current_plans(db, (lo, hi))
        .await?
        .into_iter()
        .filter(|p| wanted.contains(p.region_code.as_str()) && p.content.0.hazards.contains(&hazard))
        .collect();
    let mut found = Vec::new();
    let items: HashMap<String, (String, String)> =
        with_db!(db, |p| sqlx::query_as::<_, (String, String, String)>("SELECT code, name, unit FROM supply_items")
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(|(c, n, u)| (c, (n, u)))
        .collect();
    // The plan rules of the daily check, on the hazard's plans only; stock and members read
    // within the regions' code range only (a whole-province scan would be most of the cost).
    rules::supplies::shortfall(db, &ctx, &plans, &items, &mut found).await?;
    rules::forces::shortfall(db, &ctx, &plans, &mut found).await?;
    stock(db, &ctx, (lo, hi), &items, &mut found).await?;
    insurance(db, &ctx, (lo, hi), &mut found).await?;
    let mut findings: Vec<TargetedFinding> = found
        .into_iter()
        .filter(|f| wanted.contains(f.region_code.as_str()) && TARGETED_RULES.contains(&f.rule))
        .map(|f| {
            let severity = ctx.config.severity(f.rule);
            let link = link(&f, ctx.regions.get(&f.region_code).and_then(|r| r.location));
            TargetedFinding { found: f, severity, link }
        })
        .collect();
    let rank = |r: Rule| TARGETED_RULES.iter().position(|x| *x == r).unwrap_or(usize::MAX);
    findings.sort_by(|a, b| {
        (a.severity, rank(a.found.rule), &a.found.region_code).cmp(&(
            b.severity,
            rank(b.found.rule),
            &b.found.region_code,
        ))
    });
    let resource_plan = match resource_level {
        Some(level) => resource_plan(&plans, level, &findings),
        None => vec![],
    };
    Ok(Targeted { findings, plans: plans.len(), resource_plan })
}

/// Each plan's requirements at `level` (or, when the plan has no such level, its highest), with
/// the shortfall the shortfall rules found for that line.
fn resource_plan(plans: &[CurrentPlan], level: u8, findings: &[TargetedFinding]) -> Vec<ResourceLine> {
    let shortfall_of = |plan_id: i64, lvl: u8, key: &str, code: &str| -> i64 {
        findings
            .iter()
            .map(|t| &t.found)
            .filter(|f| f.subject_id == plan_id.to_string())
            .filter(|f| matches!(f.rule, Rule::SupplyShortfall | Rule::ForceShortfall))
            .find(|f| f.facts["level"] == lvl && f.facts[key] == code)
            .and_then(|f| f.facts["shortfall"].as_i64())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for plan in plans {
        let levels = plan.response_levels();
        let Some(chosen) = levels.iter().find(|l| l.level == level).or_else(|| levels.iter().min_by_key(|l| l.level))
        else {
            continue;
        };
        let title = plan.content.0.title.clone();
        for s in &chosen.supplies {
            let code = s.item_code.as_str().to_string();
            out.push(ResourceLine {
                region_code: plan.region_code.clone(),
                plan_id: plan.plan_id,
                plan: title.clone(),
                level: chosen.level,
                kind: "supply".into(),
                shortfall: shortfall_of(plan.plan_id, chosen.level, "item", &code),
                code,
                name: s.name.clone(),
                required: s.quantity.ceil() as i64,
                unit: s.unit.clone(),
                within_km: s.within_km,
            });
        }
        for f in &chosen.forces {
            let code = f.specialty.code().to_string();
            out.push(ResourceLine {
                region_code: plan.region_code.clone(),
                plan_id: plan.plan_id,
                plan: title.clone(),
                level: chosen.level,
                kind: "force".into(),
                shortfall: shortfall_of(plan.plan_id, chosen.level, "specialty", &code),
                code,
                name: f.specialty.label().to_string(),
                required: f.headcount as i64,
                unit: "人".into(),
                within_km: f.within_km,
            });
        }
    }
    out
}

/// Where a person acts on a finding (an API path), from its facts and the region's location.
pub fn link(f: &Found, at: Option<(f64, f64)>) -> Option<String> {
    let facts: &Value = &f.facts;
    let (lon, lat) = at.unwrap_or(crate::regions::BANNER_SEAT);
    match f.rule {
        Rule::SupplyShortfall => Some(format!(
            "/api/v1/supplies/nearest?item={}&quantity={}&lon={lon}&lat={lat}",
            facts["item"].as_str().unwrap_or(""),
            facts["shortfall"].as_i64().unwrap_or(1)
        )),
        Rule::ForceShortfall => Some(format!(
            "/api/v1/teams/nearest?specialty={}&min_members={}&lon={lon}&lat={lat}&max_km={}",
            facts["specialty"].as_str().unwrap_or(""),
            facts["shortfall"].as_i64().unwrap_or(1),
            facts["distance_km"].as_f64().unwrap_or(50.0) * 2.0
        )),
        Rule::SupplyExpired | Rule::SupplyExpiring => Some(format!("/api/v1/stock?region={}", f.region_code)),
        Rule::SupplyBelowMinimum => Some(format!("/api/v1/depots/{}", f.subject_id)),
        Rule::InsuranceExpired | Rule::InsuranceExpiring => Some(format!("/api/v1/members/{}", f.subject_id)),
        _ => None,
    }
}

/// Stock in depots of the regions: batches expired and not written off, or expiring within the
/// window; depots below their minimum.
async fn stock(
    db: &Db,
    ctx: &Context,
    bounds: (&str, &str),
    items: &HashMap<String, (String, String)>,
    out: &mut Vec<Found>,
) -> anyhow::Result<()> {
    let edge = ctx.today + Duration::days(ctx.config.expiry_warning_days);
    let name = |code: &str| items.get(code).cloned().unwrap_or_else(|| ("物资".into(), String::new()));
    let rows: Vec<(i64, String, String, String, String, i64, NaiveDate)> = with_db!(db, |p| sqlx::query_as(
        "SELECT b.id, d.code, d.region_code, b.item_code, b.batch, b.quantity, b.expiry_date
         FROM depots d JOIN stock_batches b ON b.depot_id = d.id
         WHERE d.region_code >= $1 AND d.region_code <= $2
           AND b.quantity > 0 AND b.expiry_date IS NOT NULL AND b.expiry_date <= $3"
    )
    .bind(bounds.0)
    .bind(bounds.1)
    .bind(edge)
    .fetch_all(p)
    .await)?;
    for (id, depot, region, item, batch, qty, expiry) in rows {
        let (item_name, unit) = name(&item);
        let expired = expiry < ctx.today;
        let (rule, message, action) = if expired {
            (
                Rule::SupplyExpired,
                format!(
                    "{}：储备点 {depot} 的{item_name}（批次 {batch}）{qty} {unit} 已于 {expiry} 过期，尚未核销",
                    ctx.name(&region)
                ),
                "按规定报废核销（调整出库，原因：过期）并补充新批次",
            )
        } else {
            (
                Rule::SupplyExpiring,
                format!(
                    "{}：储备点 {depot} 的{item_name}（批次 {batch}）{qty} {unit} 将于 {expiry} 过期",
                    ctx.name(&region)
                ),
                "安排轮换：优先调拨使用或与供货企业协商更换，并采购补充",
            )
        };
        out.push(Found {
            rule,
            region_code: region,
            subject_type: "batch",
            subject_id: id.to_string(),
            requirement: format!("expiry={expiry}"),
            facts: json!({"depot": depot, "item": item, "item_name": item_name, "batch": batch, "quantity": qty, "expiry_date": expiry}),
            message,
            action: action.into(),
        });
    }
    let minimums: Vec<(i64, String, String, String, i64, i64)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT d.id, d.code, d.region_code, m.item_code, m.minimum,
                CAST(COALESCE((SELECT SUM(b.quantity) FROM stock_batches b WHERE b.depot_id = m.depot_id AND b.item_code = m.item_code
                          AND b.reserve_mode = 'physical' AND (b.expiry_date IS NULL OR b.expiry_date >= $3)), 0) AS BIGINT)
         FROM depots d JOIN stock_minimums m ON m.depot_id = d.id
         WHERE d.region_code >= $1 AND d.region_code <= $2 AND m.minimum > 0"
    )
    .bind(bounds.0)
    .bind(bounds.1)
    .bind(ctx.today)
    .fetch_all(p)
    .await
    })?;
    for (depot_id, depot, region, item, minimum, held) in minimums.into_iter().filter(|r| r.5 < r.4) {
        let (item_name, unit) = name(&item);
        out.push(Found {
            rule: Rule::SupplyBelowMinimum,
            region_code: region.clone(),
            subject_type: "depot",
            subject_id: depot_id.to_string(),
            requirement: format!("item={item}"),
            facts: json!({"depot": depot, "item": item, "item_name": item_name, "minimum": minimum, "held": held, "shortfall": minimum - held}),
            message: format!("{}：储备点 {depot} 的{item_name}现有 {held} {unit}，低于最低储备 {minimum} {unit}", ctx.name(&region)),
            action: format!("补充{item_name}至最低储备以上（采购入库或调拨）"),
        });
    }
    Ok(())
}

/// Active members of the regions' teams whose latest policy has ended or ends within the window
/// (or who have none).
async fn insurance(db: &Db, ctx: &Context, bounds: (&str, &str), out: &mut Vec<Found>) -> anyhow::Result<()> {
    let edge = ctx.today + Duration::days(ctx.config.expiry_warning_days);
    let rows: Vec<(i64, String, String, String, Option<NaiveDate>)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT m.id, m.name, t.code, t.region_code, (SELECT MAX(i.end_date) FROM member_insurance i WHERE i.member_id = m.id)
         FROM teams t JOIN members m ON m.team_id = t.id
         WHERE t.region_code >= $1 AND t.region_code <= $2 AND t.filing_status IN ('submitted', 'approved', 'suspended')
           AND m.status <> 'retired' AND m.anonymised_at IS NULL"
    )
    .bind(bounds.0)
    .bind(bounds.1)
    .fetch_all(p)
    .await
    })?;
    for (id, name, team, region, end) in rows {
        let (rule, message) = match end {
            Some(end) if end > edge => continue,
            None => (
                Rule::InsuranceExpired,
                format!("{}：队伍 {team} 的队员{name}没有人身意外伤害保险记录", ctx.name(&region)),
            ),
            Some(end) if end < ctx.today => (
                Rule::InsuranceExpired,
                format!("{}：队伍 {team} 的队员{name}的人身意外伤害保险已于 {end} 到期", ctx.name(&region)),
            ),
            Some(end) => (
                Rule::InsuranceExpiring,
                format!("{}：队伍 {team} 的队员{name}的人身意外伤害保险将于 {end} 到期", ctx.name(&region)),
            ),
        };
        out.push(Found {
            rule,
            region_code: region,
            subject_type: "member",
            subject_id: id.to_string(),
            requirement: format!("insurance_end={}", end.map(|e| e.to_string()).unwrap_or_else(|| "-".into())),
            facts: json!({"team": team, "member": name, "end_date": end}),
            message,
            action: "为该队员续保或投保并录入保单；未投保前不得参加危险救援任务".into(),
        });
    }
    Ok(())
}
