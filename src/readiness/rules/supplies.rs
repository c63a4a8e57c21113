//! Supply rules: SUPPLY_SHORTFALL, SUPPLY_BELOW_MINIMUM, SUPPLY_EXPIRING, SUPPLY_EXPIRED.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use serde_json::json;

use crate::db::Db;
use crate::plans::store::CurrentPlan;
use crate::plans::types::level_label;
use crate::readiness::context::Context;
use crate::readiness::spatial::{Grid, reach};
use crate::readiness::{Found, Rule};
use crate::with_db;

/// Adds the supply findings.
pub async fn check(db: &Db, ctx: &Context, plans: &[CurrentPlan], out: &mut Vec<Found>) -> anyhow::Result<()> {
    let items: HashMap<String, (String, String)> =
        with_db!(db, |p| sqlx::query_as::<_, (String, String, String)>("SELECT code, name, unit FROM supply_items")
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(|(c, n, u)| (c, (n, u)))
        .collect();
    shortfall(db, ctx, plans, &items, out).await?;
    below_minimum(db, ctx, &items, out).await?;
    expiry(db, ctx, &items, out).await?;
    Ok(())
}

fn item_name<'a>(items: &'a HashMap<String, (String, String)>, code: &str, fallback: &'a str) -> (&'a str, &'a str) {
    match items.get(code) {
        Some((n, u)) => (n.as_str(), u.as_str()),
        None => (if fallback.is_empty() { "物资" } else { fallback }, ""),
    }
}

/// For every response level of every plan in force: unexpired physical stock of each required
/// item within the required distance of the plan's region must cover the required quantity.
pub async fn shortfall(
    db: &Db,
    ctx: &Context,
    plans: &[CurrentPlan],
    items: &HashMap<String, (String, String)>,
    out: &mut Vec<Found>,
) -> anyhow::Result<()> {
    // One pass over the batches of the depots within reach of some requirement (for a warning's
    // check, a box around its regions, not the province): unexpired physical stock per depot and
    // item.
    let circles =
        plans.iter().filter_map(|p| Some((p, ctx.regions.get(&p.region_code)?.location?))).flat_map(|(p, at)| {
            p.response_levels().iter().flat_map(move |l| l.supplies.iter().map(move |n| (at, n.within_km)))
        });
    let Some(bb) = reach(circles) else { return Ok(()) };
    let rows: Vec<(f64, f64, String, i64)> = with_db!(db, |p| sqlx::query_as(
        "SELECT d.lon, d.lat, b.item_code, CAST(SUM(b.quantity) AS BIGINT)
         FROM depots d JOIN stock_batches b ON b.depot_id = d.id
         WHERE d.lat >= $2 AND d.lat <= $3 AND d.lon >= $4 AND d.lon <= $5
           AND b.reserve_mode = 'physical' AND b.quantity > 0 AND (b.expiry_date IS NULL OR b.expiry_date >= $1)
         GROUP BY d.id, d.lon, d.lat, b.item_code"
    )
    .bind(ctx.today)
    .bind(bb.lat_min)
    .bind(bb.lat_max)
    .bind(bb.lon_min)
    .bind(bb.lon_max)
    .fetch_all(p)
    .await)?;
    let mut grids: HashMap<String, Grid<i64>> = HashMap::new();
    for (lon, lat, item, qty) in rows {
        grids.entry(item).or_default().insert(lon, lat, qty);
    }
    let mut cache: HashMap<(String, String, u64), i64> = HashMap::new();
    for plan in plans {
        let Some(at) = ctx.regions.get(&plan.region_code).and_then(|r| r.location) else { continue };
        for level in plan.response_levels() {
            for need in &level.supplies {
                let code = need.item_code.as_str().to_string();
                let key = (plan.region_code.clone(), code.clone(), need.within_km.to_bits());
                let available = *cache.entry(key).or_insert_with(|| {
                    grids
                        .get(&code)
                        .map(|g| g.within(at, need.within_km).into_iter().map(|(q, _)| *q).sum())
                        .unwrap_or(0)
                });
                let required = need.quantity.ceil() as i64;
                if available >= required {
                    continue;
                }
                let (name, unit) = item_name(items, &code, &need.name);
                let unit = if unit.is_empty() { need.unit.as_str() } else { unit };
                let title = &plan.content.0.title;
                out.push(Found {
                    rule: Rule::SupplyShortfall,
                    region_code: plan.region_code.clone(),
                    subject_type: "plan",
                    subject_id: plan.plan_id.to_string(),
                    requirement: format!("level={};item={code};km={}", level.level, need.within_km),
                    facts: json!({
                        "plan_id": plan.plan_id, "plan": title, "level": level.level, "item": code, "item_name": name, "unit": unit,
                        "required": required, "available": available, "shortfall": required - available, "distance_km": need.within_km,
                    }),
                    message: format!(
                        "{}：《{title}》{}响应需要 {} km 内{name} {required} {unit}；可用 {available} {unit}；缺口 {} {unit}",
                        ctx.name(&plan.region_code),
                        level_label(level.level),
                        need.within_km,
                        required - available
                    ),
                    action: format!("补充{name}储备（采购入库、从其他储备库调拨或与企业签订协议储备），使 {} km 内可用量达到 {required} {unit}", need.within_km),
                });
            }
        }
    }
    Ok(())
}

/// Depots holding less unexpired physical stock of an item than its minimum (stock held by an
/// enterprise under agreement, or past its expiry date, does not fill a depot's minimum).
async fn below_minimum(
    db: &Db,
    ctx: &Context,
    items: &HashMap<String, (String, String)>,
    out: &mut Vec<Found>,
) -> anyhow::Result<()> {
    let rows: Vec<(i64, String, String, String, i64, i64)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT d.id, d.code, d.region_code, m.item_code, m.minimum,
                CAST(COALESCE((SELECT SUM(b.quantity) FROM stock_batches b WHERE b.depot_id = m.depot_id AND b.item_code = m.item_code
                          AND b.reserve_mode = 'physical' AND (b.expiry_date IS NULL OR b.expiry_date >= $1)), 0) AS BIGINT) AS held
         FROM stock_minimums m JOIN depots d ON d.id = m.depot_id
         WHERE m.minimum > 0"
    )
    .bind(ctx.today)
    .fetch_all(p)
    .await
    })?;
    for (depot_id, depot, region, item, minimum, held) in rows {
        if held >= minimum {
            continue;
        }
        let (name, unit) = item_name(items, &item, "");
        out.push(Found {
            rule: Rule::SupplyBelowMinimum,
            region_code: region.clone(),
            subject_type: "depot",
            subject_id: depot_id.to_string(),
            requirement: format!("item={item}"),
            facts: json!({"depot": depot, "item": item, "item_name": name, "minimum": minimum, "held": held, "shortfall": minimum - held}),
            message: format!("{}：储备点 {depot} 的{name}现有 {held} {unit}，低于最低储备 {minimum} {unit}，差 {} {unit}", ctx.name(&region), minimum - held),
            action: format!("补充{name}至最低储备以上（采购入库或调拨）"),
        });
    }
    Ok(())
}

/// Batches past their expiry date and not written off, and batches expiring within the window.
async fn expiry(
    db: &Db,
    ctx: &Context,
    items: &HashMap<String, (String, String)>,
    out: &mut Vec<Found>,
) -> anyhow::Result<()> {
    let edge = ctx.today + Duration::days(ctx.config.expiry_warning_days);
    let rows: Vec<(i64, String, String, String, String, i64, NaiveDate)> = with_db!(db, |p| sqlx::query_as(
        "SELECT b.id, d.code, d.region_code, b.item_code, b.batch, b.quantity, b.expiry_date
         FROM stock_batches b JOIN depots d ON d.id = b.depot_id
         WHERE b.quantity > 0 AND b.expiry_date IS NOT NULL AND b.expiry_date <= $1"
    )
    .bind(edge)
    .fetch_all(p)
    .await)?;
    for (id, depot, region, item, batch, qty, expiry) in rows {
        let (name, unit) = item_name(items, &item, "");
        let facts = json!({"depot": depot, "item": item, "item_name": name, "batch": batch, "quantity": qty, "expiry_date": expiry});
        let (rule, message, action) = if expiry < ctx.today {
            (
                Rule::SupplyExpired,
                format!(
                    "{}：储备点 {depot} 的{name}（批次 {batch}）{qty} {unit} 已于 {expiry} 过期，尚未核销",
                    ctx.name(&region)
                ),
                "按规定报废核销（调整出库，原因：过期）并补充新批次".to_string(),
            )
        } else {
            (
                Rule::SupplyExpiring,
                format!(
                    "{}：储备点 {depot} 的{name}（批次 {batch}）{qty} {unit} 将于 {expiry} 过期（{} 天后）",
                    ctx.name(&region),
                    (expiry - ctx.today).num_days()
                ),
                "安排轮换：优先调拨使用或与供货企业协商更换，并采购补充".to_string(),
            )
        };
        out.push(Found {
            rule,
            region_code: region.clone(),
            subject_type: "batch",
            subject_id: id.to_string(),
            requirement: format!("expiry={expiry}"),
            facts,
            message,
            action,
        });
    }
    Ok(())
}
