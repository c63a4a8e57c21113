//! The drill calendar as an RFC 5545 iCalendar feed, and the per-user feed tokens that let
//! calendar apps (which cannot send a Bearer header) subscribe read-only.

use chrono::Utc;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Drill, Status};
use crate::auth::tokens::{hash_token, new_token};
use crate::db::Db;
use crate::time::{LOCAL_TZ, Timestamp};
use crate::with_db;

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn text(s: &str) -> String {
    s.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace("\r\n", "\\n").replace('\n', "\\n")
}

/// Folds a content line at 75 octets (RFC 5545 §3.1), never splitting a UTF-8 character.
fn fold(line: &str, out: &mut String) {
    let mut used = 0;
    for ch in line.chars() {
        let n = ch.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(ch);
        used += n;
    }
    out.push_str("\r\n");
}

fn local(t: Timestamp) -> String {
    t.0.with_timezone(&LOCAL_TZ).format("%Y%m%dT%H%M%S").to_string()
}

fn utc(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Renders drills as a VCALENDAR. UIDs are stable (`drill-{id}@yingji`), times are in
/// Asia/Shanghai with its VTIMEZONE, and each reminder offset is a VALARM.
pub fn render(drills: &[Drill], now: Timestamp) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        "PRODID:-//yingji//苏尼特左旗应急演练日历//ZH".into(),
        "CALSCALE:GREGORIAN".into(),
        "METHOD:PUBLISH".into(),
        "X-WR-CALNAME:应急演练".into(),
        "X-WR-TIMEZONE:Asia/Shanghai".into(),
        "BEGIN:VTIMEZONE".into(),
        "TZID:Asia/Shanghai".into(),
        "BEGIN:STANDARD".into(),
        "DTSTART:19700101T000000".into(),
        "TZOFFSETFROM:+0800".into(),
        "TZOFFSETTO:+0800".into(),
        "TZNAME:CST".into(),
        "END:STANDARD".into(),
        "END:VTIMEZONE".into(),
    ];
    for d in drills {
        lines.push("BEGIN:VEVENT".into());
        lines.push(format!("UID:drill-{}@yingji", d.id));
        lines.push(format!("DTSTAMP:{}", utc(now.0)));
        lines.push(format!("LAST-MODIFIED:{}", utc(d.updated_at.0)));
        lines.push(format!("SEQUENCE:{}", d.sequence));
        lines.push(format!("DTSTART;TZID=Asia/Shanghai:{}", local(d.starts_at)));
        lines.push(format!("DTEND;TZID=Asia/Shanghai:{}", local(d.ends_at)));
        lines.push(format!("SUMMARY:{}", text(&format!("【{}】{}", d.form.label(), d.title))));
        lines.push(format!("LOCATION:{}", text(&d.place_name)));
        if let (Some(lon), Some(lat)) = (d.lon, d.lat) {
            lines.push(format!("GEO:{lat};{lon}"));
        }
        let desc = format!(
            "组织单位：{}\n形式：{}；{}；{}\n状态：{}\n目的：{}",
            d.organiser_unit,
            d.form.label(),
            d.scope.label(),
            d.purpose.label(),
            d.status.label(),
            d.objective
        );
        lines.push(format!("DESCRIPTION:{}", text(&desc)));
        lines.push(format!("STATUS:{}", if d.status == Status::Cancelled { "CANCELLED" } else { "CONFIRMED" }));
        lines.push("CATEGORIES:应急演练".into());
        if d.status.is_upcoming() {
            for off in &d.reminder_offsets {
                lines.push("BEGIN:VALARM".into());
                lines.push("ACTION:DISPLAY".into());
                lines.push(format!("TRIGGER:-PT{off}M"));
                lines.push(format!("DESCRIPTION:{}", text(&format!("演练提醒：{}", d.title))));
                lines.push("END:VALARM".into());
            }
        }
        lines.push("END:VEVENT".into());
    }
    lines.push("END:VCALENDAR".into());
    let mut out = String::new();
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

/// A calendar feed token as listed.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct FeedToken {
    /// Id.
    pub id: i64,
    /// Created.
    pub created_at: Timestamp,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A new feed token with its subscription path (shown once).
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssuedFeedToken {
    /// Id.
    pub id: i64,
    /// The token (shown only now).
    pub token: String,
    /// Path to subscribe to, e.g. `/api/v1/drills.ics?token=…`.
    pub path: String,
}

/// Issues a feed token for a user.
pub async fn issue(db: &Db, user_id: i64, now: Timestamp) -> Result<IssuedFeedToken, sqlx::Error> {
    let token = new_token();
    let id: i64 = with_db!(db, |p| sqlx::query_scalar(
        "INSERT INTO feed_tokens (user_id, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id"
    )
    .bind(user_id)
    .bind(hash_token(&token))
    .bind(now)
    .fetch_one(p)
    .await)?;
    Ok(IssuedFeedToken { id, path: format!("/api/v1/drills.ics?token={token}"), token })
}

/// A user's feed tokens.
pub async fn list(db: &Db, user_id: i64) -> Result<Vec<FeedToken>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as::<_, FeedToken>(
        "SELECT id, created_at, revoked_at FROM feed_tokens WHERE user_id = $1 ORDER BY id"
    )
    .bind(user_id)
    .fetch_all(p)
    .await)
}

/// Revokes one of a user's feed tokens; false when it is not theirs.
pub async fn revoke(db: &Db, user_id: i64, id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let n = with_db!(db, |p| sqlx::query(
        "UPDATE feed_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND user_id = $2"
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The user behind a valid feed token. The feed lives as long as its user may still get in: not
/// disabled, and with a password (console users) or a valid API token (a program's user whose
/// tokens are all revoked keeps no feed either).
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<i64>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_scalar(
        "SELECT f.user_id FROM feed_tokens f JOIN users u ON u.id = f.user_id
          WHERE f.token_hash = $1 AND f.revoked_at IS NULL AND u.disabled_at IS NULL
            AND (u.password_hash IS NOT NULL
                 OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.user_id = f.user_id AND t.revoked_at IS NULL))"
    )
    .bind(hash_token(token))
    .fetch_optional(p)
    .await)
}
