//! Issuing a warning (or taking in a received one): the lifecycle step, the earlier warnings it
//! updates or cancels, the targeted readiness check of the hazard in the affected regions, and
//! one message per affected region (inbox and channels) carrying the warning, that region's top
//! shortfalls with links to act, and the acknowledgement deadline — all in one transaction.

use std::collections::BTreeMap;

use chrono::Duration;
use serde_json::{Value, json};

use super::area::Tree;
use super::cap::{self, IssuerCode};
use super::store::{self, NewWarning, Warning, WarningFinding};
use super::{ACK, MsgType, WARNING, level_colour, level_name, level_severity};
use crate::app::AppState;
use crate::audit::{self, Actor, Change};
use crate::db::Tx;
use crate::error::ApiError;
use crate::notify::outbox::{self, Message};
use crate::readiness::targeted::{self, Targeted};
use crate::time::Timestamp;

/// Findings listed per region in its message (the rest are counted and kept with the warning).
pub const TOP_FINDINGS: usize = 5;

/// Resource lines listed per region in a red or orange warning's message.
const TOP_RESOURCES: usize = 5;

/// Creates a warning as a draft with its recipients; for local warnings the identifier is built
/// from the issuing region, the issuing `unit`'s codes, the issue time and the serial within
/// that second. Returns the id.
pub async fn create_draft(
    tx: &mut Tx,
    new: &NewWarning,
    recipients: &[(String, bool)],
    unit: &IssuerCode,
    actor: &Actor,
    now: Timestamp,
) -> Result<i64, ApiError> {
    let id = match store::insert(tx, new, &actor.name, now).await {
        Ok(id) => id,
        // The same message arriving twice at once: the unique identifier decides.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(ApiError::Conflict(format!(
                "标识符 {} 的预警已存在（同一消息正在或已经接收）",
                new.identifier
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if new.origin == "local" {
        let identifier = local_identifier(tx, &new.issuing_region, unit, new.sent_at).await?;
        store::set_identifier(tx, id, &identifier).await?;
    }
    store::insert_recipients(tx, id, recipients).await?;
    let w = store::get_tx(tx, id).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("warning vanished")))?;
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: if new.origin == "import" { "import" } else { "create" },
            entity_type: "warning",
            entity_id: &id.to_string(),
            region_code: Some(&w.issuing_region),
            before: None,
            after: Some(serde_json::to_value(&w).unwrap_or(Value::Null)),
        },
    )
    .await?;
    Ok(id)
}

/// A new identifier for a warning issued here: the next serial of the unit in the issue's
/// second, skipping any identifier already taken (a received message may carry the same unit
/// codes). More than [`cap::SERIALS_PER_SECOND`] warnings of one unit in one second is 409.
async fn local_identifier(tx: &mut Tx, region: &str, unit: &IssuerCode, sent: Timestamp) -> Result<String, ApiError> {
    let key = cap::unit_second(region, unit, sent);
    loop {
        let serial = store::next_serial(tx, &key).await?;
        if serial >= cap::SERIALS_PER_SECOND {
            return Err(ApiError::Conflict(format!(
                "同一发布单位在同一秒内最多编号 {} 条预警（GB/T 35965.1 序列号 0–9）：请稍后再发布",
                cap::SERIALS_PER_SECOND
            )));
        }
        let candidate = cap::identifier(&key, serial);
        if store::by_identifier(tx, &candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
}

/// Runs the targeted readiness check a warning calls for (none for a cancellation): the
/// affected regions, the hazard, and for red and orange warnings the resource plan of the
/// matching response level.
pub async fn check_for(state: &AppState, w: &NewWarningView<'_>, now: Timestamp) -> anyhow::Result<Option<Targeted>> {
    if w.msg_type == MsgType::Cancel {
        return Ok(None);
    }
    let level = (w.level <= 2).then_some(w.level);
    Ok(Some(targeted::check(&state.db, now, w.regions, w.hazard, level).await?))
}

/// What [`check_for`] needs to know about a warning.
pub struct NewWarningView<'a> {
    /// Message type.
    pub msg_type: MsgType,
    /// Hazard.
    pub hazard: crate::vocab::Hazard,
    /// Level.
    pub level: u8,
    /// Every affected region (declared and below).
    pub regions: &'a [String],
}

/// Publishes a draft inside `tx`: draft → issued (a cancellation: draft → cancelled), the
/// warnings it references → updated or cancelled, the check's findings kept, one message per
/// recipient region, reminders planned, audited. Returns a summary.
pub async fn publish(
    tx: &mut Tx,
    id: i64,
    tree: &Tree,
    checked: Option<&Targeted>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Value, ApiError> {
    let before = store::get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    let ended: Option<Timestamp> = (before.msg_type == MsgType::Cancel).then_some(now);
    let to = if before.msg_type == MsgType::Cancel { "cancelled" } else { "issued" };
    crate::transition!(tx, WARNING, id, from ["draft"] => to,
        set { "issued_at" = now, "ended_at" = ended, "updated_at" = now })?;
    // The warnings this one updates or cancels end now (those already ended stay as they are).
    let mut ended_refs = Vec::new();
    let ref_to = if before.msg_type == MsgType::Cancel { "cancelled" } else { "updated" };
    for r in &before.refs.0 {
        let Some((rid, _)) = store::by_identifier(tx, &r.identifier).await? else { continue };
        if rid == id || before.msg_type == MsgType::Alert {
            continue;
        }
        match crate::transition!(tx, WARNING, rid, from ["issued"] => ref_to,
            set { "ended_at" = now, "ended_by" = id, "updated_at" = now })
        {
            Ok(()) => ended_refs.push(rid),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let w = store::get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    let recipients = store::recipient_codes(tx, id).await?;

    // Findings per region, kept with the warning.
    let mut kept: Vec<WarningFinding> = Vec::new();
    let mut summary = json!({"ran": false});
    if let Some(t) = checked {
        for f in &t.findings {
            kept.push(WarningFinding {
                region_code: f.found.region_code.clone(),
                rule: f.found.rule.id().to_string(),
                severity: f.severity.as_str().to_string(),
                message: f.found.message.clone(),
                action: f.found.action.clone(),
                link: f.link.clone(),
                facts: sqlx::types::Json(f.found.facts.clone()),
            });
        }
        store::insert_findings(tx, id, &kept).await?;
        let mut by_rule: BTreeMap<&str, i64> = BTreeMap::new();
        for f in &kept {
            *by_rule.entry(f.rule.as_str()).or_default() += 1;
        }
        let short: i64 = t.resource_plan.iter().filter(|l| l.shortfall > 0).count() as i64;
        summary = json!({
            "ran": true, "ran_at": now, "hazard": w.hazard, "regions": recipients.len(), "plans": t.plans,
            "findings": kept.len(), "by_rule": by_rule,
            "resource_level": (w.level <= 2).then_some(w.level),
            "resource_plan": t.resource_plan, "resource_lines_short": short,
        });
        store::set_readiness(tx, id, &summary).await?;
    }

    // One message per recipient region.
    let remind_at = Timestamp(now.0 + Duration::minutes(w.ack_within_minutes));
    let messages: Vec<Message> =
        recipients.iter().map(|(code, _)| message(&w, code, tree, &kept, checked, remind_at)).collect();
    let sent = outbox::enqueue_many(tx, now, &messages).await?;
    if w.msg_type != MsgType::Cancel {
        store::mark_notified(tx, id, now, remind_at).await?;
    } else {
        // Nothing to acknowledge on a cancellation: its rows record who was told.
        acknowledge_all(tx, id, now).await?;
    }
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: if w.msg_type == MsgType::Cancel { "cancel" } else { "issue" },
            entity_type: "warning",
            entity_id: &id.to_string(),
            region_code: Some(&w.issuing_region),
            before: Some(json!({"status": before.status})),
            after: Some(json!({"status": w.status, "identifier": w.identifier, "ended": ended_refs, "recipients": recipients.len()})),
        },
    )
    .await?;
    Ok(json!({
        "warning_id": id, "status": w.status, "recipients": recipients.len(), "deliveries": sent,
        "ended": ended_refs, "readiness": summary,
    }))
}

async fn acknowledge_all(tx: &mut Tx, id: i64, now: Timestamp) -> Result<(), ApiError> {
    crate::with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE warning_regions SET ack_status = 'acknowledged', notified_at = $2, acked_at = $2, acked_by = 'system' WHERE warning_id = $1"
    )
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ())
    })?;
    Ok(())
}

/// The title of a warning as people see it: 【演练】【橙色预警】headline.
pub fn title(w: &Warning) -> String {
    let drill = if w.cap_status == super::CapStatus::Exercise { "【演练】" } else { "" };
    match w.msg_type {
        MsgType::Cancel => format!("{drill}【预警解除】{}", w.headline),
        MsgType::Update => format!("{drill}【{}预警·更新】{}", level_colour(w.level as u8), w.headline),
        MsgType::Alert => format!("{drill}【{}预警】{}", level_colour(w.level as u8), w.headline),
    }
}

fn message(
    w: &Warning,
    region: &str,
    tree: &Tree,
    findings: &[WarningFinding],
    checked: Option<&Targeted>,
    remind_at: Timestamp,
) -> Message {
    let mut body = vec![
        format!("{}：{}", tree.name(region), w.headline),
        format!("预警级别：{}　事件：{}", level_name(w.level as u8), w.event),
        format!("发布单位：{}　发布时间：{}", w.issuer, w.sent_at.local_display()),
        format!("有效时间：{} 至 {}", w.effective_at.local_display(), w.expires_at.local_display()),
        format!("影响区域：{}", w.area_desc),
    ];
    if !w.description.is_empty() {
        body.push(w.description.clone());
    }
    if !w.instruction.is_empty() {
        body.push(format!("防御指南：{}", w.instruction));
    }
    // This region's (and its villages') top shortfalls for the hazard.
    let prefix_len = tree.get(region).map(|r| r.level.prefix_len()).unwrap_or(12);
    let own: Vec<&WarningFinding> =
        findings.iter().filter(|f| f.region_code.starts_with(&region[..prefix_len.min(region.len())])).collect();
    let mut links = Vec::new();
    if checked.is_some() {
        if own.is_empty() {
            body.push(format!("本地准备情况（{}）：未发现缺口。", w.hazard.label()));
        } else {
            body.push(format!("本地准备情况（{}，共 {} 项）：", w.hazard.label(), own.len()));
            for f in own.iter().take(TOP_FINDINGS) {
                let link = f.link.as_deref().map(|l| format!("（处理：{l}）")).unwrap_or_default();
                body.push(format!("· {}{link}", f.message));
                links.extend(f.link.clone());
            }
            if own.len() > TOP_FINDINGS {
                body.push(format!("……另有 {} 项，见 /api/v1/warnings/{}/readiness", own.len() - TOP_FINDINGS, w.id));
            }
        }
    }
    if let Some(t) = checked.filter(|_| w.level <= 2) {
        let lines: Vec<_> = t.resource_plan.iter().filter(|l| l.region_code == region).collect();
        if !lines.is_empty() {
            body.push(format!("{}响应所需资源：", crate::plans::types::level_label(lines[0].level)));
            for l in lines.iter().take(TOP_RESOURCES) {
                let gap = if l.shortfall > 0 { format!("，缺口 {}", l.shortfall) } else { "，已满足".into() };
                body.push(format!("· {} {} {}（{} km 内{gap}）", l.name, l.required, l.unit, l.within_km));
            }
        }
    }
    if w.msg_type != MsgType::Cancel {
        body.push(format!(
            "请于 {} 前签收：POST /api/v1/warnings/{}/ack?region={region}；预警信息单：/api/v1/warnings/{}/notice?region={region}",
            remind_at.local_display(),
            w.id,
            w.id
        ));
    }
    let title = title(w);
    let body = body.join("\n");
    let (markdown, markdown_wecom) = robot_markdown(w, &title, &body);
    Message {
        key: format!("warning:{}:{region}", w.id),
        region_code: region.to_string(),
        kind: "warning".into(),
        data: json!({
            "markdown": markdown, "markdown_wecom": markdown_wecom,
            "warning_id": w.id, "identifier": w.identifier, "msg_type": w.msg_type, "cap_status": w.cap_status,
            "hazard": w.hazard, "level": w.level, "colour": level_colour(w.level as u8),
            "severity": level_severity(w.level as u8), "expires_at": w.expires_at,
            "findings": own.len(), "links": links,
        }),
        title,
        body,
        late: false,
        source: Some(("warning".into(), w.id.to_string())),
    }
}

/// The DingTalk and WeCom robot texts of a warning message: the title in the level's colour
/// (DingTalk takes any colour; WeCom only its three named ones), then the body. The level is
/// written out as well, so the colour is never the only sign.
pub fn robot_markdown(w: &Warning, title: &str, body: &str) -> (String, String) {
    let hex = match w.level {
        1 => "#E00000",
        2 => "#FF8C00",
        3 => "#D4B000",
        _ => "#1E64FF",
    };
    let wecom = if w.level <= 2 { "warning" } else { "info" };
    let lines: String = body.lines().map(|l| format!("> {l}\n")).collect();
    let dingtalk = format!("### <font color=\"{hex}\">{title}</font>\n{lines}");
    let wecom = format!("**<font color=\"{wecom}\">{title}</font>**\n{lines}");
    (dingtalk, wecom)
}

/// Acknowledges a warning for a region (pending or reminded → acknowledged), audited.
pub async fn acknowledge(
    tx: &mut Tx,
    recipient_id: i64,
    warning: &Warning,
    region: &str,
    actor: &Actor,
    now: Timestamp,
) -> Result<(), ApiError> {
    crate::transition!(tx, ACK, recipient_id, from ["pending", "reminded"] => "acknowledged",
        set { "acked_at" = now, "acked_by" = actor.name.clone() })?;
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: "acknowledge",
            entity_type: "warning",
            entity_id: &warning.id.to_string(),
            region_code: Some(region),
            before: None,
            after: Some(json!({"region": region, "acked_at": now})),
        },
    )
    .await?;
    Ok(())
}
