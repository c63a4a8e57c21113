//! The daily expiry sweep: supply batches, members' certificates and insurance expiring within
//! the warning window (default 30 days). Each region with something expiring gets one digest a
//! day in its inbox and channels (the readiness check keeps the per-item findings).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::notify::outbox::{self, Message};
use crate::time::{LOCAL_TZ, Timestamp};
use crate::with_db;

/// One expiring thing, for the digest.
struct Line {
    kind: &'static str,
    text: String,
}

/// Runs the sweep at `now`; returns counts.
pub async fn run(state: &AppState, now: Timestamp) -> anyhow::Result<Value> {
    let config = crate::readiness::store::config(&state.db).await?;
    let today = now.0.with_timezone(&LOCAL_TZ).date_naive();
    let edge = today + Duration::days(config.expiry_warning_days);
    let mut by_region: BTreeMap<String, Vec<Line>> = BTreeMap::new();

    let batches: Vec<(String, String, String, String, i64, NaiveDate)> = with_db!(&state.db, |p| sqlx::query_as(
        "SELECT d.region_code, d.code, COALESCE(i.name, b.item_code), b.batch, b.quantity, b.expiry_date
         FROM stock_batches b JOIN depots d ON d.id = b.depot_id LEFT JOIN supply_items i ON i.code = b.item_code
         WHERE b.quantity > 0 AND b.expiry_date IS NOT NULL AND b.expiry_date >= $1 AND b.expiry_date <= $2
         ORDER BY b.expiry_date"
    )
    .bind(today)
    .bind(edge)
    .fetch_all(p)
    .await)?;
    for (region, depot, item, batch, qty, expiry) in batches {
        by_region
            .entry(region)
            .or_default()
            .push(Line {
                kind: "batch", text: format!("储备点 {depot} 的{item}（批次 {batch}，{qty}）{expiry} 过期")
            });
    }
    let certificates: Vec<(String, String, String, String, NaiveDate)> = with_db!(&state.db, |p| {
        sqlx::query_as(
        "SELECT t.region_code, t.code, m.name, c.kind, c.expires
         FROM member_certificates c JOIN members m ON m.id = c.member_id JOIN teams t ON t.id = m.team_id
         WHERE c.status = 'active' AND m.status <> 'retired' AND m.anonymised_at IS NULL AND c.expires IS NOT NULL AND c.expires >= $1 AND c.expires <= $2
         ORDER BY c.expires"
    )
    .bind(today)
    .bind(edge)
    .fetch_all(p)
    .await
    })?;
    for (region, team, member, kind, expires) in certificates {
        by_region
            .entry(region)
            .or_default()
            .push(Line {
                kind: "certificate", text: format!("队伍 {team} 队员{member}的{kind}证书 {expires} 到期")
            });
    }
    let insurance: Vec<(String, String, String, NaiveDate)> = with_db!(&state.db, |p| sqlx::query_as(
        "SELECT t.region_code, t.code, m.name, MAX(i.end_date)
         FROM member_insurance i JOIN members m ON m.id = i.member_id JOIN teams t ON t.id = m.team_id
         WHERE m.status <> 'retired' AND m.anonymised_at IS NULL
         GROUP BY t.region_code, t.code, m.id, m.name
         HAVING MAX(i.end_date) >= $1 AND MAX(i.end_date) <= $2"
    )
    .bind(today)
    .bind(edge)
    .fetch_all(p)
    .await)?;
    for (region, team, member, end) in insurance {
        by_region
            .entry(region)
            .or_default()
            .push(Line {
                kind: "insurance", text: format!("队伍 {team} 队员{member}的人身意外伤害保险 {end} 到期")
            });
    }

    let (mut regions, mut items) = (0, 0);
    let mut counts = json!({"batches": 0, "certificates": 0, "insurance": 0});
    for lines in by_region.values() {
        for l in lines {
            let key = match l.kind {
                "batch" => "batches",
                "certificate" => "certificates",
                _ => "insurance",
            };
            counts[key] = json!(counts[key].as_i64().unwrap_or(0) + 1);
        }
    }
    let mut tx = state.db.begin().await?;
    for (region, lines) in &by_region {
        let shown: Vec<String> = lines.iter().take(20).map(|l| format!("· {}", l.text)).collect();
        let more = if lines.len() > 20 {
            format!("\n……另有 {} 项，详见准备情况检查", lines.len() - 20)
        } else {
            String::new()
        };
        let m = Message {
            key: format!("expiry:{today}:{region}"),
            region_code: region.clone(),
            kind: "expiry_digest".into(),
            title: format!("到期提醒：{} 天内有 {} 项到期", config.expiry_warning_days, lines.len()),
            body: format!("{}{more}", shown.join("\n")),
            data: json!({"date": today, "count": lines.len()}),
            late: false,
            source: None,
        };
        outbox::enqueue(&mut tx, now, &m).await?;
        regions += 1;
        items += lines.len();
    }
    tx.commit().await?;
    if regions > 0 {
        state.wake.notify_one();
    }
    Ok(json!({"regions": regions, "items": items, "by_kind": counts, "window_days": config.expiry_warning_days}))
}
