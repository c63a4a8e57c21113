//! Receiving a CAP message (`POST /api/v1/warnings/import`): decoded in its declared encoding,
//! read and checked ([`super::cap_in`]), mapped to regions and a hazard, deduplicated by
//! identifier, applied to the warnings it references, and passed down like a warning issued here.

use chrono::Duration;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::area::{GeocodeError, Tree};
use super::cap_in::{self, CapError};
use super::handlers::{check, view};
use super::store::{self, NewWarning, Warning};
use super::{DEFAULT_ACK_MINUTES, MsgType, Status, issue};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::ctx::{json, json_status};
use crate::time::Timestamp;

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

/// `POST /api/v1/warnings/import`.
pub(super) async fn import(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Plan)?.clone();
    // UTF-8, or the encoding its XML declaration names (GBK, GB2312, GB18030 from Chinese feeds).
    let (decoded, _) = super::charset::decode(&c.body)
        .map_err(|e| ApiError::BadRequest { detail: format!("CAP 消息被拒绝：{}", e.0), errors: vec![] })?;
    let text: &str = &decoded;
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
    let id = issue::create_draft(&mut tx, &new, &recipients, &c.app.config.cap_issuer_code, &actor, now).await?;
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
