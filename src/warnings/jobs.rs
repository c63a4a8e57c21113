//! The `warning_sweep` schedule: issued warnings past their expiry time become `expired` (and
//! every region they were passed to is told), and regions that have not acknowledged a warning
//! by its deadline are reminded once, with the issuing region told who has not confirmed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ACK, WARNING};
use crate::app::AppState;
use crate::audit::{self, Actor, Change};
use crate::notify::outbox::{self, Message};
use crate::time::Timestamp;
use crate::with_db;

/// Rows handled per transaction.
const BATCH: usize = 200;

/// Runs the sweep at `now`; returns counts.
pub async fn run(state: &AppState, now: Timestamp) -> anyhow::Result<Value> {
    let expired = expire(state, now).await?;
    let reminded = remind(state, now).await?;
    if expired + reminded > 0 {
        state.wake.notify_one();
    }
    Ok(json!({"expired": expired, "reminded": reminded}))
}

/// Issued warnings whose expiry time has come: issued → expired, each recipient told once.
async fn expire(state: &AppState, now: Timestamp) -> anyhow::Result<u64> {
    let due: Vec<(i64, String, String, i64)> = with_db!(&state.db, |p| {
        sqlx::query_as(
        "SELECT id, headline, issuing_region, level FROM warnings WHERE status = 'issued' AND expires_at <= $1 ORDER BY id"
    )
    .bind(now)
    .fetch_all(p)
    .await
    })?;
    let mut n = 0;
    for (id, headline, issuing_region, level) in due {
        let mut tx = state.db.begin().await?;
        match crate::transition!(&mut tx, WARNING, id, from ["issued"] => "expired",
            set { "ended_at" = now, "updated_at" = now })
        {
            Ok(()) => {}
            // Another instance (or an update or cancel) got there first.
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
        let regions = super::store::recipient_codes(&mut tx, id).await?;
        for (region, _) in &regions {
            let m = Message {
                key: format!("warning:{id}:{region}:expired"),
                region_code: region.clone(),
                kind: "warning_expired".into(),
                title: format!("【预警到期】{headline}"),
                body: format!(
                    "{}预警「{headline}」已于 {} 到期，自动解除。",
                    super::level_colour(level as u8),
                    now.local_display()
                ),
                data: json!({"warning_id": id, "status": "expired"}),
                late: false,
                source: Some(("warning".into(), id.to_string())),
            };
            outbox::enqueue(&mut tx, now, &m).await?;
        }
        audit::record(
            &mut tx,
            &Actor::system(),
            now,
            Change {
                action: "expire",
                entity_type: "warning",
                entity_id: &id.to_string(),
                region_code: Some(&issuing_region),
                before: Some(json!({"status": "issued"})),
                after: Some(json!({"status": "expired"})),
            },
        )
        .await?;
        tx.commit().await?;
        n += 1;
    }
    Ok(n)
}

/// Regions of issued warnings still unacknowledged at their deadline: pending → reminded (once),
/// a reminder to the region, and to each warning's issuing region the list of who has not
/// confirmed.
async fn remind(state: &AppState, now: Timestamp) -> anyhow::Result<u64> {
    type Row = (i64, i64, String, String, String, Option<String>);
    let due: Vec<Row> = with_db!(&state.db, |p| sqlx::query_as(
        "SELECT r.id, w.id, r.region_code, w.headline, w.issuing_region, g.name
         FROM warning_regions r JOIN warnings w ON w.id = r.warning_id LEFT JOIN regions g ON g.code = r.region_code
         WHERE r.ack_status = 'pending' AND r.remind_at <= $1 AND w.status = 'issued' AND w.expires_at > $1
         ORDER BY w.id, r.region_code"
    )
    .bind(now)
    .fetch_all(p)
    .await)?;
    let mut n = 0;
    let mut unconfirmed: BTreeMap<(i64, String, String), Vec<String>> = BTreeMap::new();
    for chunk in due.chunks(BATCH) {
        let mut tx = state.db.begin().await?;
        for (rid, wid, region, headline, issuing, name) in chunk {
            match crate::transition!(&mut tx, ACK, *rid, from ["pending"] => "reminded", set { "reminded_at" = now }) {
                Ok(()) => {}
                // Acknowledged meanwhile, or reminded by another instance.
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
            let name = name.clone().unwrap_or_else(|| region.clone());
            let m = Message {
                key: format!("warning:{wid}:{region}:reminder"),
                region_code: region.clone(),
                kind: "warning_reminder".into(),
                title: format!("【请签收】{headline}"),
                body: format!(
                    "{name}尚未签收预警「{headline}」。请立即落实防御措施并签收：POST /api/v1/warnings/{wid}/ack?region={region}"
                ),
                data: json!({"warning_id": wid, "region": region}),
                late: false,
                source: Some(("warning".into(), wid.to_string())),
            };
            outbox::enqueue(&mut tx, now, &m).await?;
            unconfirmed.entry((*wid, headline.clone(), issuing.clone())).or_default().push(name);
            n += 1;
        }
        tx.commit().await?;
    }
    if !unconfirmed.is_empty() {
        let mut tx = state.db.begin().await?;
        for ((wid, headline, issuing), names) in &unconfirmed {
            let shown: Vec<&str> = names.iter().take(30).map(String::as_str).collect();
            let more = if names.len() > 30 { format!("等 {} 个", names.len()) } else { String::new() };
            let m = Message {
                key: format!("warning:{wid}:unconfirmed:{}", now.0.timestamp()),
                region_code: issuing.clone(),
                kind: "warning_unconfirmed".into(),
                title: format!("【未签收】{headline}：{} 个区划未签收", names.len()),
                body: format!(
                    "以下区划到期仍未签收预警「{headline}」，已发送催办提醒：{}{more}。名单：/api/v1/warnings/{wid}/acks?pending=true",
                    shown.join("、")
                ),
                data: json!({"warning_id": wid, "unconfirmed": names.len()}),
                late: false,
                source: Some(("warning".into(), wid.to_string())),
            };
            outbox::enqueue(&mut tx, now, &m).await?;
        }
        tx.commit().await?;
    }
    Ok(n)
}
