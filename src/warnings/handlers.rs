//! Warning handlers: create, issue, cancel, read, acknowledge (receiving a CAP message is
//! [`super::receive`]).

use chrono::Duration;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::area::Tree;
use super::routes::{AckParams, CancelBody, NewWarningBody, WarningView, XmlParams};
use super::store::{self, AckQuery, NewWarning, Warning, WarningQuery};
use super::{CapStatus, DEFAULT_ACK_MINUTES, MsgType, Reference, Status, issue};
use crate::auth::{Perm, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::ctx::{Page, body, json, json_status, page};
use crate::regions::RegionCode;
use crate::time::Timestamp;

/// Loads a warning the caller may see (issued for, or passed to, a region in the jurisdiction)
/// after checking `perm`.
pub(super) async fn load(c: &Ctx, perm: Perm) -> ApiResult<(Principal, Warning)> {
    let p = c.require(perm)?.clone();
    let id = c.id_param("id")?;
    let w = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    let (lo, hi) = p.scope.bounds();
    let visible =
        p.scope.contains(&w.issuing_region) || !store::recipients(&c.app.db, id, (&lo, &hi), None).await?.is_empty();
    if !visible {
        return Err(ApiError::NotFound(format!("预警 {id} 不存在")));
    }
    Ok((p, w))
}

pub(super) async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let q: WarningQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let bounds = crate::drills::handlers::bounds_for(p, q.region.as_ref())?;
    let (items, total) = store::list(&c.app.db, (&bounds.0, &bounds.1), &q, c.now(), limit, offset).await?;
    json(&Page { items, total })
}

pub(super) async fn get(c: Ctx) -> ApiResult<Response> {
    let (p, w) = load(&c, Perm::Read).await?;
    json(&view(&c, &p, w).await?)
}

pub(super) async fn view(c: &Ctx, p: &Principal, warning: Warning) -> ApiResult<WarningView> {
    let (lo, hi) = p.scope.bounds();
    let recipients = store::recipients(&c.app.db, warning.id, (&lo, &hi), None).await?;
    let acknowledged = recipients.iter().filter(|r| r.ack_status == "acknowledged").count() as i64;
    let declared = recipients.iter().filter(|r| r.declared).map(|r| r.region_code.clone()).collect();
    Ok(WarningView { regions: declared, recipients: recipients.len() as i64, acknowledged, warning })
}

fn check_text(field: &str, v: &str, max: usize, required: bool, errors: &mut Vec<FieldError>) {
    if required && v.trim().is_empty() {
        errors.push(FieldError::field(field, "不能为空"));
    } else if v.chars().count() > max {
        errors.push(FieldError::field(field, format!("不能超过 {max} 个字")));
    }
}

pub(super) async fn create(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Plan)?.clone();
    let b: NewWarningBody = c.json()?;
    let now = c.now();
    let mut errors = Vec::new();
    check_text("headline", &b.headline, 200, true, &mut errors);
    check_text("description", &b.description, 4000, false, &mut errors);
    check_text("instruction", &b.instruction, 4000, false, &mut errors);
    check_text("issuer", &b.issuer, 200, true, &mut errors);
    if !(1..=4).contains(&b.level) {
        errors.push(FieldError::field("level", "预警级别应为 1（一级/红色）到 4（四级/蓝色）"));
    }
    let sent = b.sent_at.unwrap_or(now);
    let effective = b.effective_at.unwrap_or(sent);
    if b.expires_at <= effective {
        errors.push(FieldError::field("expires_at", "失效时间应晚于生效时间"));
    }
    let ack = b.ack_within_minutes.unwrap_or(DEFAULT_ACK_MINUTES);
    if !(1..=10080).contains(&ack) {
        errors.push(FieldError::field("ack_within_minutes", "签收时限应在 1 到 10080 分钟之间"));
    }
    if b.msg_type == Some(MsgType::Cancel) {
        errors.push(FieldError::field("msg_type", "解除预警请用 POST /api/v1/warnings/{id}/cancel"));
    }
    let msg_type = b.msg_type.unwrap_or(MsgType::Alert);
    if msg_type == MsgType::Update && b.references.is_empty() {
        errors.push(FieldError::field("references", "变更（update）须引用被变更的预警"));
    }
    if let Some(poly) = &b.polygon {
        if poly.len() < 3 {
            errors.push(FieldError::field("polygon", "多边形至少需要 3 个不同的点"));
        }
        for (i, (lon, lat)) in poly.iter().enumerate() {
            if let Err(m) = crate::regions::check_lon_lat(*lon, *lat) {
                errors.push(FieldError::field(format!("polygon[{i}]"), m));
            }
        }
    }
    let tree = Tree::new(crate::regions::store::all(&c.app.db).await?);
    let mut declared: Vec<String> = Vec::new();
    for (i, r) in b.regions.iter().enumerate() {
        if tree.get(r.as_str()).is_none() {
            errors.push(FieldError::field(format!("regions[{i}]"), format!("区划 {r} 不存在")));
        } else {
            p.require_region(r.as_str())?;
            declared.push(r.to_string());
        }
    }
    if b.regions.is_empty() {
        match &b.polygon {
            Some(poly) if poly.len() >= 3 => {
                let mut ring = poly.clone();
                ring.push(ring[0]);
                declared = tree.map_polygon(&ring).into_iter().filter(|c| p.scope.contains(c)).collect();
                if declared.is_empty() {
                    errors.push(FieldError::field("polygon", "多边形不覆盖辖区内任何区划"));
                }
            }
            _ => errors.push(FieldError::field("regions", "须给出影响区域：区划代码（regions）或多边形（polygon）")),
        }
    }
    let mut refs = Vec::new();
    for (i, rid) in b.references.iter().enumerate() {
        match store::get(&c.app.db, *rid).await? {
            Some(r) if p.scope.contains(&r.issuing_region) => refs.push(Reference {
                sender: r.sender,
                identifier: r.identifier,
                sent: super::cap::cap_time(r.sent_at.0),
            }),
            _ => errors.push(FieldError::field(format!("references[{i}]"), format!("预警 {rid} 不存在或不在辖区内"))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_many("预警信息未通过校验", errors));
    }
    declared.sort();
    declared.dedup();
    let (event, event_code, _) = super::default_event(b.hazard);
    let new = NewWarning {
        identifier: format!("pending-{}", crate::auth::tokens::random_hex16()),
        sender: super::cap::sender(p.scope.code.as_str()),
        origin: "local",
        msg_type,
        cap_status: b.status.unwrap_or(CapStatus::Actual),
        hazard: b.hazard,
        level: b.level,
        event: b.event.clone().unwrap_or_else(|| event.to_string()),
        event_code: b.event_code.clone().or(event_code.map(str::to_string)),
        headline: b.headline.trim().to_string(),
        description: b.description.trim().to_string(),
        instruction: b.instruction.trim().to_string(),
        issuer: b.issuer.trim().to_string(),
        issuing_region: p.scope.code.to_string(),
        sent_at: sent,
        effective_at: effective,
        expires_at: b.expires_at,
        area_desc: b
            .area_desc
            .clone()
            .unwrap_or_else(|| declared.iter().map(|c| tree.name(c)).collect::<Vec<_>>().join("、")),
        // Stored closed (first point = last), as CAP writes it.
        polygon: b.polygon.clone().map(|mut ring| {
            if ring.first() != ring.last() {
                ring.push(ring[0]);
            }
            ring
        }),
        refs,
        ack_within_minutes: ack,
        original_xml: None,
    };
    let recipients = tree.recipients(&declared);
    let actor = c.actor()?;
    let checked = if b.issue.unwrap_or(false) { Some(check(&c, &new, &recipients).await?) } else { None };
    let mut tx = c.app.db.begin().await?;
    let id = issue::create_draft(&mut tx, &new, &recipients, &c.app.config.cap_issuer_code, &actor, now).await?;
    if let Some(checked) = &checked {
        issue::publish(&mut tx, id, &tree, checked.as_ref(), &actor, now).await?;
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    let w = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    json_status(StatusCode::CREATED, &view(&c, &p, w).await?)
}

pub(super) async fn check(
    c: &Ctx,
    new: &NewWarning,
    recipients: &[(String, bool)],
) -> ApiResult<Option<crate::readiness::targeted::Targeted>> {
    let regions: Vec<String> = recipients.iter().map(|(r, _)| r.clone()).collect();
    let v = issue::NewWarningView { msg_type: new.msg_type, hazard: new.hazard, level: new.level, regions: &regions };
    Ok(issue::check_for(&c.app, &v, c.now()).await?)
}

pub(super) async fn issue_draft(c: Ctx) -> ApiResult<Response> {
    let (p, w) = load(&c, Perm::Plan).await?;
    p.require_region(&w.issuing_region)?;
    let now = c.now();
    let tree = Tree::new(crate::regions::store::all(&c.app.db).await?);
    let (lo, hi) = ("000000000000", "999999999999");
    let regions: Vec<String> =
        store::recipients(&c.app.db, w.id, (lo, hi), None).await?.into_iter().map(|r| r.region_code).collect();
    let v = issue::NewWarningView { msg_type: w.msg_type, hazard: w.hazard, level: w.level as u8, regions: &regions };
    let checked = issue::check_for(&c.app, &v, now).await?;
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    let summary = issue::publish(&mut tx, w.id, &tree, checked.as_ref(), &actor, now).await?;
    tx.commit().await?;
    c.app.wake.notify_one();
    json(&summary)
}

pub(super) async fn cancel(c: Ctx) -> ApiResult<Response> {
    let (p, w) = load(&c, Perm::Plan).await?;
    p.require_region(&w.issuing_region)?;
    let b: CancelBody = if c.body.is_empty() { CancelBody::default() } else { c.json()? };
    if w.status != Status::Issued {
        return Err(ApiError::StateConflict {
            detail: format!("预警当前状态为「{}」，只有已发布的预警可以解除", w.status.label()),
            current: w.status.code().to_string(),
        });
    }
    let now = c.now();
    let tree = Tree::new(crate::regions::store::all(&c.app.db).await?);
    let all = store::recipients(&c.app.db, w.id, ("000000000000", "999999999999"), None).await?;
    let recipients: Vec<(String, bool)> = all.into_iter().map(|r| (r.region_code, r.declared)).collect();
    let reason = b.reason.unwrap_or_default();
    let new = NewWarning {
        identifier: format!("pending-{}", crate::auth::tokens::random_hex16()),
        sender: w.sender.clone(),
        origin: "local",
        msg_type: MsgType::Cancel,
        cap_status: w.cap_status,
        hazard: w.hazard,
        level: w.level as u8,
        event: w.event.clone(),
        event_code: w.event_code.clone(),
        headline: format!("解除{}", w.headline),
        description: if reason.trim().is_empty() {
            format!("{}已解除。", w.headline)
        } else {
            reason.trim().to_string()
        },
        instruction: String::new(),
        issuer: w.issuer.clone(),
        issuing_region: w.issuing_region.clone(),
        sent_at: now,
        effective_at: now,
        expires_at: Timestamp(now.0.max(w.expires_at.0) + Duration::hours(1)),
        area_desc: w.area_desc.clone(),
        polygon: w.polygon.as_ref().map(|p| p.0.clone()),
        refs: vec![Reference {
            sender: w.sender.clone(),
            identifier: w.identifier.clone(),
            sent: super::cap::cap_time(w.sent_at.0),
        }],
        ack_within_minutes: w.ack_within_minutes,
        original_xml: None,
    };
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    let id = issue::create_draft(&mut tx, &new, &recipients, &c.app.config.cap_issuer_code, &actor, now).await?;
    let summary = issue::publish(&mut tx, id, &tree, None, &actor, now).await?;
    if summary["ended"].as_array().is_none_or(|e| e.is_empty()) {
        // Expired or cancelled between the read above and now: nothing to cancel.
        return Err(ApiError::StateConflict {
            detail: "预警已不是已发布状态（可能刚刚到期或已被解除）".into(),
            current: "ended".into(),
        });
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    let w = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    json_status(StatusCode::CREATED, &view(&c, &p, w).await?)
}

pub(super) async fn xml(c: Ctx) -> ApiResult<Response> {
    let (_, w) = load(&c, Perm::Read).await?;
    let q: XmlParams = c.query()?;
    if q.original.unwrap_or(false) {
        let original = store::original(&c.app.db, w.id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("预警 {} 不是接收的消息，没有原文", w.id)))?;
        // In the encoding it arrived in (a GBK message as its GBK bytes).
        let (bytes, charset) = super::charset::encode_as_declared(&original);
        let mut r = body("application/cap+xml", bytes.into_owned());
        if let Ok(v) = warp::http::HeaderValue::from_str(&format!("application/cap+xml; charset={charset}")) {
            r.headers_mut().insert(warp::http::header::CONTENT_TYPE, v);
        }
        return Ok(r);
    }
    let all = store::recipients(&c.app.db, w.id, ("000000000000", "999999999999"), None).await?;
    let geocodes: Vec<String> = all.into_iter().filter(|r| r.declared).map(|r| r.region_code).collect();
    Ok(body("application/cap+xml; charset=utf-8", super::cap::render(&w, &geocodes)))
}

pub(super) async fn ack(c: Ctx) -> ApiResult<Response> {
    let (p, w) = load(&c, Perm::Write).await?;
    let q: AckParams = c.query()?;
    let region: RegionCode = q.region.unwrap_or_else(|| p.scope.code.clone());
    p.require_region(region.as_str())?;
    if w.status != Status::Issued {
        return Err(ApiError::StateConflict {
            detail: format!("预警当前状态为「{}」，无需签收", w.status.label()),
            current: w.status.code().to_string(),
        });
    }
    let rid = store::recipient_id(&c.app.db, w.id, region.as_str())
        .await?
        .ok_or_else(|| ApiError::invalid("region", format!("预警未下发到区划 {region}")))?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    issue::acknowledge(&mut tx, rid, &w, region.as_str(), &c.actor()?, now).await?;
    tx.commit().await?;
    let rows = store::recipients(&c.app.db, w.id, (region.as_str(), region.as_str()), None).await?;
    json(&rows.into_iter().next())
}

pub(super) async fn acks(c: Ctx) -> ApiResult<Response> {
    let (p, w) = load(&c, Perm::Read).await?;
    let q: AckQuery = c.query()?;
    let (lo, hi) = p.scope.bounds();
    let items = store::recipients(&c.app.db, w.id, (&lo, &hi), q.pending).await?;
    let total = items.len() as i64;
    json(&Page { items, total })
}

pub(super) async fn readiness(c: Ctx) -> ApiResult<Response> {
    let (p, w) = load(&c, Perm::Read).await?;
    let (lo, hi) = p.scope.bounds();
    let findings = store::findings(&c.app.db, w.id, (&lo, &hi)).await?;
    json(&json!({"warning_id": w.id, "summary": w.readiness.map(|r| r.0), "findings": findings}))
}
