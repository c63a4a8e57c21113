//! 今日's warnings: the active warnings passed to the user's region, with its acknowledgement
//! and a form to acknowledge (operators and up). Read and written through the warnings API as
//! the logged-in user, so who may see and who may acknowledge is the API's rule.

use serde::Deserialize;
use serde_json::json;

use super::api;
use super::{Req, WebResult, redirect};
use crate::auth::login::Session;
use crate::error::ApiError;

/// Most active warnings shown.
const MAX_WARNINGS: usize = 20;

/// An active warning on the page.
pub struct ActiveWarning {
    /// Id.
    pub id: i64,
    /// Level 1–4.
    pub level: i64,
    /// 【橙色预警】… as in the messages.
    pub level_name: String,
    /// Headline.
    pub headline: String,
    /// Issuer and issue time.
    pub issued: String,
    /// Until.
    pub expires: String,
    /// Whether it is an exercise (演练).
    pub exercise: bool,
    /// The region's acknowledgement: `pending`, `reminded`, `acknowledged`, or None when the
    /// warning was not passed to the user's own region (only to regions below it).
    pub ack_status: Option<String>,
    /// When and by whom it was acknowledged.
    pub acked: Option<String>,
    /// Printable notice for the region.
    pub notice_url: String,
}

impl ActiveWarning {
    /// CSS class of the level's colour.
    pub fn colour_class(&self) -> &'static str {
        match self.level {
            1 => "red",
            2 => "orange",
            3 => "yellow",
            _ => "blue",
        }
    }
}

#[derive(Deserialize)]
struct Item {
    id: i64,
    level: i64,
    headline: String,
    issuer: String,
    sent_at: crate::time::Timestamp,
    expires_at: crate::time::Timestamp,
    cap_status: String,
}

#[derive(Deserialize)]
struct AckRow {
    region_code: String,
    ack_status: String,
    acked_at: Option<crate::time::Timestamp>,
    acked_by: Option<String>,
}

/// The active warnings of the session's jurisdiction, newest first.
pub async fn active(req: &Req, s: &Session) -> Result<Vec<ActiveWarning>, super::WebError> {
    let region = s.principal.scope.code.to_string();
    let list = api::get(req, s, "/api/v1/warnings", &format!("active=true&limit={MAX_WARNINGS}")).await?;
    let items: Vec<Item> = api::decode(list["items"].clone())?;
    let mut out = Vec::with_capacity(items.len());
    for w in items {
        let acks = api::get(req, s, &format!("/api/v1/warnings/{}/acks", w.id), "").await?;
        let rows: Vec<AckRow> = api::decode(acks["items"].clone())?;
        let own = rows.into_iter().find(|r| r.region_code == region);
        out.push(ActiveWarning {
            id: w.id,
            level: w.level,
            level_name: crate::warnings::level_name(w.level as u8),
            headline: w.headline,
            issued: format!("{} · {}", w.issuer, w.sent_at.local_display()),
            expires: w.expires_at.local_display(),
            exercise: w.cap_status == "exercise",
            acked: own.as_ref().and_then(|r| {
                r.acked_at.map(|t| format!("{} {}", t.local_display(), r.acked_by.clone().unwrap_or_default()))
            }),
            ack_status: own.map(|r| r.ack_status),
            notice_url: format!("/api/v1/warnings/{}/notice?region={region}", w.id),
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct AckForm {
    csrf: String,
}

/// `POST /today/warnings/{id}/ack`: acknowledges the warning for the user's region through the
/// API (which checks the role, the region and the warning's state).
pub async fn acknowledge(req: Req) -> WebResult {
    let id = req
        .path
        .split('/')
        .nth(3)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| super::WebError::Api(ApiError::NotFound(format!("没有这个页面：{}", req.path))))?;
    let f: AckForm = req.form()?;
    let s = req.post_session(&f.csrf).await?;
    api::post(&req, &s, &format!("/api/v1/warnings/{id}/ack"), &json!({})).await?;
    Ok(redirect(&format!("/today?acked={id}#warnings")))
}
