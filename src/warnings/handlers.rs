//! Warning handlers: create, issue, cancel, import, read, acknowledge.

use chrono::Duration;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::area::{GeocodeError, Tree};
use super::cap_in::{self, CapError};
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

async fn view(c: &Ctx, p: &Principal, warning: Warning) -> ApiResult<WarningView> {
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
    let id = issue::create_draft(&mut tx, &new, &recipients, &actor, now).await?;
    if let Some(checked) = &checked {
        issue::publish(&mut tx, id, &tree, checked.as_ref(), &actor, now).await?;
    }
    tx.commit().await?;
    c.app.wake.notify_one();
    let w = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    json_status(StatusCode::CREATED, &view(&c, &p, w).await?)
}

async fn check(
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
    let id = issue::create_draft(&mut tx, &new, &recipients, &actor, now).await?;
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
        return Ok(body("application/cap+xml; charset=utf-8", original));
    }
    let all = store::recipients(&c.app.db, w.id, ("000000000000", "999999999999"), None).await?;
    let geocodes: Vec<String> = all.into_iter().filter(|r| r.declared).map(|r| r.region_code).collect();
    Ok(body("application/cap+xml; charset=utf-8", super::cap::render(&w, &geocodes)))
}

fn cap_problem(e: CapError) -> ApiError {
    let detail = format!("CAP 消息被拒绝：{}（{}）", e.message, if e.element.is_empty() { "文档" } else { &e.element });
    let errors = vec![FieldError { field: Some(e.element.clone()), line: e.line, column: None, message: e.message }];
    if e.malformed { ApiError::BadRequest { detail, errors } } else { ApiError::Validation { detail, errors } }
}

fn invalid_at(element: &str, message: String) -> ApiError {
    ApiError::Validation {
        detail: format!("CAP 消息被拒绝：{message}（{element}）"),
        errors: vec![FieldError::field(element, message)],
    }
}

pub(super) async fn import(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Plan)?.clone();
    let text = std::str::from_utf8(&c.body)
        .map_err(|_| ApiError::BadRequest { detail: "CAP 消息应为 UTF-8 编码的 XML".into(), errors: vec![] })?;
    let received = cap_in::read(text).map_err(cap_problem)?;
    let now = c.now();
    let tree = Tree::new(crate::regions::store::all(&c.app.db).await?);

    // Earlier messages it refers to (already received or issued here).
    let mut earlier: Vec<Warning> = Vec::new();
    for r in &received.refs {
        let id: Option<i64> =
            crate::with_db!(&c.app.db, |pool| sqlx::query_scalar("SELECT id FROM warnings WHERE identifier = $1")
                .bind(&r.identifier)
                .fetch_optional(pool)
                .await)?;
        if let Some(id) = id
            && let Some(w) = store::get(&c.app.db, id).await?
        {
            earlier.push(w);
        }
    }
    if received.msg_type == MsgType::Cancel && earlier.is_empty() {
        return Err(invalid_at("alert/references", "要解除的预警均未收到过，无法解除".into()));
    }

    // Hazard, level, area: from the info, or (a cancel without info) from what it cancels.
    let (hazard, level, event, event_code, declared, info) = match &received.info {
        Some(info) => {
            let code = info.event_codes.iter().find_map(|(_, v)| super::event_by_code(v));
            let hazard = code.map(|e| e.hazard).or_else(|| super::hazard_of_event(&info.event)).ok_or_else(|| {
                invalid_at(
                    &format!("{}/event", info.path),
                    format!("无法识别预警事件「{}」：事件代码和名称均不在对照表中（见 README 预警一节）", info.event),
                )
            })?;
            let level = match info.level {
                Some(l) => l,
                None => match earlier.first() {
                    Some(w) => w.level as u8,
                    None => {
                        return Err(invalid_at(
                            &format!("{}/severity", info.path),
                            "severity 为 Unknown，无法确定预警级别".into(),
                        ));
                    }
                },
            };
            let mut declared: Vec<String> = Vec::new();
            for a in &info.areas {
                for (_, value, path) in &a.geocodes {
                    match tree.map_geocode(value) {
                        Ok(codes) => declared.extend(codes),
                        Err(GeocodeError::Malformed(v)) => {
                            return Err(invalid_at(
                                path,
                                format!("geocode {v:?} 不是行政区划代码（应为 6、9 或 12 位数字）"),
                            ));
                        }
                        Err(GeocodeError::Unknown(v)) => {
                            return Err(invalid_at(
                                path,
                                format!("geocode {v} 不是已知的区划：请先导入该区划或更正代码"),
                            ));
                        }
                    }
                }
                if a.geocodes.is_empty() {
                    for poly in &a.polygons {
                        declared.extend(tree.map_polygon(poly));
                    }
                }
            }
            if declared.is_empty() && received.msg_type == MsgType::Cancel {
                declared = declared_of(&c, &earlier).await?;
            }
            let code = code.map(|e| e.code.to_string()).or_else(|| info.event_codes.first().map(|(_, v)| v.clone()));
            (hazard, level, info.event.clone(), code, declared, Some(info))
        }
        None => {
            let w = earlier.iter().find(|w| w.status == Status::Issued).unwrap_or(&earlier[0]);
            (w.hazard, w.level as u8, w.event.clone(), w.event_code.clone(), declared_of(&c, &earlier).await?, None)
        }
    };
    let mut declared: Vec<String> = declared.into_iter().filter(|d| p.scope.contains(d)).collect();
    declared.sort();
    declared.dedup();
    if declared.is_empty() {
        return Err(invalid_at("alert/info/area", format!("预警区域不涉及您辖区（{}）内的任何已知区划", p.scope.code)));
    }
    let first_area = info.and_then(|i| i.areas.first());
    let sent = received.sent;
    let effective = info.and_then(|i| i.effective).unwrap_or(sent);
    // A message without an expiry time stays active a day (the scheduler needs an end).
    let expires = info.and_then(|i| i.expires).unwrap_or(Timestamp(effective.0 + Duration::hours(24)));
    let new = NewWarning {
        identifier: received.identifier.clone(),
        sender: received.sender.clone(),
        origin: "import",
        msg_type: received.msg_type,
        cap_status: received.status,
        hazard,
        level,
        event: if event.is_empty() { hazard.label().to_string() } else { event },
        event_code,
        headline: info
            .and_then(|i| i.headline.clone())
            .or_else(|| earlier.first().map(|w| format!("解除{}", w.headline)))
            .unwrap_or_else(|| format!("{}{}预警", hazard.label(), super::level_colour(level))),
        description: info.and_then(|i| i.description.clone()).unwrap_or_default(),
        instruction: info.and_then(|i| i.instruction.clone()).unwrap_or_default(),
        issuer: info.and_then(|i| i.sender_name.clone()).unwrap_or_else(|| received.sender.clone()),
        issuing_region: p.scope.code.to_string(),
        sent_at: sent,
        effective_at: effective,
        expires_at: expires,
        area_desc: first_area
            .map(|a| a.desc.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| declared.iter().map(|c| tree.name(c)).collect::<Vec<_>>().join("、")),
        polygon: first_area.and_then(|a| a.polygons.first().cloned()),
        refs: received.refs.clone(),
        ack_within_minutes: DEFAULT_ACK_MINUTES,
        original_xml: Some(text.to_string()),
    };
    let recipients = tree.recipients(&declared);
    let checked = check(&c, &new, &recipients).await?;
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    // Deduplicated by identifier: the same message again is answered with the stored warning.
    if let Some((id, original)) = store::by_identifier(&mut tx, &new.identifier).await? {
        drop(tx);
        if original.as_deref().is_some_and(|o| o != text) {
            return Err(ApiError::Conflict(format!(
                "标识符 {} 已用于另一条内容不同的消息（预警 {id}）；CAP 标识符不得重复使用",
                new.identifier
            )));
        }
        let w = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
        let mut v = serde_json::to_value(view(&c, &p, w).await?).map_err(|e| ApiError::Internal(e.into()))?;
        v["duplicate"] = json!(true);
        return json(&v);
    }
    let id = issue::create_draft(&mut tx, &new, &recipients, &actor, now).await?;
    issue::publish(&mut tx, id, &tree, checked.as_ref(), &actor, now).await?;
    tx.commit().await?;
    c.app.wake.notify_one();
    let w = store::get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("预警 {id} 不存在")))?;
    let mut v = serde_json::to_value(view(&c, &p, w).await?).map_err(|e| ApiError::Internal(e.into()))?;
    v["duplicate"] = json!(false);
    json_status(StatusCode::CREATED, &v)
}

/// The regions named by the earlier warnings a message refers to (the active ones when any is
/// still active: an update chain's older links were already replaced).
async fn declared_of(c: &Ctx, earlier: &[Warning]) -> ApiResult<Vec<String>> {
    let active: Vec<&Warning> = earlier.iter().filter(|w| w.status == Status::Issued).collect();
    let chosen: Vec<&Warning> = if active.is_empty() { earlier.iter().collect() } else { active };
    let mut out = Vec::new();
    for w in chosen {
        let rows = store::recipients(&c.app.db, w.id, ("000000000000", "999999999999"), None).await?;
        out.extend(rows.into_iter().filter(|r| r.declared).map(|r| r.region_code));
    }
    Ok(out)
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
