//! Notification channels configured per region: a generic JSON webhook, and DingTalk and WeCom
//! group robots. URLs and secrets carry credentials, so they are stored encrypted and shown only
//! as a hint.

use base64::Engine;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use super::outbox::Delivery;
use crate::db::{Db, Tx};
use crate::personal::{Cipher, Field};
use crate::regions::RegionCode;
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Channel kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Generic JSON webhook (POST, `Idempotency-Key` header).
    Webhook,
    /// 钉钉群机器人 (text message; signed when a secret is set).
    Dingtalk,
    /// 企业微信群机器人 (text message).
    Wecom,
}

impl ChannelKind {
    /// Messages the channel accepts per minute: DingTalk and WeCom group robots take at most 20
    /// a minute (DingTalk then throttles the robot for 10 minutes); a generic webhook has no
    /// limit here.
    pub fn per_minute_limit(self) -> Option<i64> {
        match self {
            ChannelKind::Dingtalk | ChannelKind::Wecom => Some(20),
            ChannelKind::Webhook => None,
        }
    }

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Wecom => "wecom",
        }
    }
}

impl TryFrom<String> for ChannelKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "webhook" => Ok(ChannelKind::Webhook),
            "dingtalk" => Ok(ChannelKind::Dingtalk),
            "wecom" => Ok(ChannelKind::Wecom),
            _ => Err(format!("unknown channel kind {s:?}")),
        }
    }
}

/// Body of `POST /api/v1/channels`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// Region whose notifications the channel receives.
    pub region: RegionCode,
    /// Kind.
    pub kind: ChannelKind,
    /// Name.
    #[schemars(length(min = 1), regex(pattern = r"\S"))]
    pub name: String,
    /// Webhook URL (http or https; for robots, the URL with its access token).
    #[schemars(length(max = 2000), regex(pattern = r"^https?://"))]
    pub url: String,
    /// DingTalk signing secret (加签密钥), when the robot uses one.
    pub secret: Option<String>,
}

/// A channel as the API shows it (no credentials).
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Channel {
    /// Id.
    pub id: i64,
    /// Region whose notifications it receives.
    pub region_code: String,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: ChannelKind,
    /// Name, e.g. 满都拉图镇应急办钉钉群.
    pub name: String,
    /// Scheme and host of the URL (the rest is a credential).
    pub url_hint: String,
    /// Whether a signing secret is set.
    #[sqlx(skip)]
    pub has_secret: bool,
    /// Whether it receives notifications.
    pub enabled: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct Secrets {
    kind: String,
    url_enc: String,
    secret_enc: Option<String>,
}

const SELECT: &str =
    "SELECT id, region_code, kind, name, url_hint, enabled, created_at, updated_at, secret_enc FROM channels";

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    channel: Channel,
    secret_enc: Option<String>,
}

fn finish(r: Row) -> Channel {
    Channel { has_secret: r.secret_enc.is_some(), ..r.channel }
}

/// The hint shown for a URL: scheme and host.
pub fn url_hint(url: &str) -> String {
    let rest = url.split_once("://").map(|(s, r)| (s, r.split('/').next().unwrap_or(""))).unwrap_or(("", ""));
    format!("{}://{}/…", rest.0, rest.1)
}

/// Creates a channel.
pub async fn create(tx: &mut Tx, cipher: &Cipher, now: Timestamp, new: &NewChannel) -> Result<i64, sqlx::Error> {
    let url = new.url.trim();
    let url_enc = cipher.encrypt(Field::CHANNEL_URL, url);
    let secret_enc = new.secret.as_deref().map(|s| cipher.encrypt(Field::CHANNEL_SECRET, s));
    with_tx!(tx, |c| sqlx::query_scalar(
        "INSERT INTO channels (region_code, kind, name, url_enc, url_hint, secret_enc, enabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(new.region.as_str())
    .bind(new.kind.as_str())
    .bind(new.name.trim())
    .bind(&url_enc)
    .bind(url_hint(url))
    .bind(&secret_enc)
    .bind(true)
    .bind(now)
    .fetch_one(c)
    .await)
}

/// Sets whether a channel is enabled.
pub async fn set_enabled(tx: &mut Tx, id: i64, enabled: bool, now: Timestamp) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("UPDATE channels SET enabled = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(enabled)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Channels in the jurisdiction bounds.
pub async fn list(db: &Db, bounds: (&str, &str)) -> Result<Vec<Channel>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE region_code >= $1 AND region_code <= $2 ORDER BY region_code, id");
    let rows = with_db!(db, |p| sqlx::query_as::<_, Row>(&sql).bind(bounds.0).bind(bounds.1).fetch_all(p).await)?;
    Ok(rows.into_iter().map(finish).collect())
}

/// One channel.
pub async fn get(db: &Db, id: i64) -> Result<Option<Channel>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    let row = with_db!(db, |p| sqlx::query_as::<_, Row>(&sql).bind(id).fetch_optional(p).await)?;
    Ok(row.map(finish))
}

/// Ids of the enabled channels of each of `regions` (in id order), in one query per 500
/// regions: a readiness run enqueues messages for thousands of regions, and a lookup per region
/// was most of its notification time on PostgreSQL.
pub async fn enabled_ids_by_region_tx(
    tx: &mut Tx,
    regions: &[&str],
) -> Result<std::collections::HashMap<String, Vec<i64>>, sqlx::Error> {
    let mut out: std::collections::HashMap<String, Vec<i64>> =
        regions.iter().map(|r| (r.to_string(), Vec::new())).collect();
    for chunk in regions.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT region_code, id FROM channels WHERE enabled = $1 AND region_code IN ({}) ORDER BY region_code, id",
            list.join(", ")
        );
        let rows: Vec<(String, i64)> = with_tx!(tx, |c| {
            let mut q = sqlx::query_as(&sql).bind(true);
            for r in chunk {
                q = q.bind(*r);
            }
            q.fetch_all(c).await
        })?;
        for (region, id) in rows {
            out.entry(region).or_default().push(id);
        }
    }
    Ok(out)
}

/// WeCom group robots take text messages of at most 2,048 bytes (UTF-8).
pub const WECOM_TEXT_MAX_BYTES: usize = 2048;

/// DingTalk group robots: the custom-robot page documents no text limit; DingTalk's robot
/// message API documents 15,000 bytes for a message's content, which is used here (messages
/// this long are truncated with a link to the full text).
pub const DINGTALK_TEXT_MAX_BYTES: usize = 15_000;

/// WeCom group robots refuse markdown content over 4,096 bytes.
pub const WECOM_MARKDOWN_MAX_BYTES: usize = 4096;

/// Where a channel's deliveries go, decrypted once per batch.
#[derive(Debug, Clone)]
pub struct Target {
    /// Kind.
    pub kind: ChannelKind,
    /// URL with its credential.
    url: String,
    /// DingTalk signing secret.
    secret: Option<String>,
}

/// Loads and decrypts a channel's address. Err is a permanent, human-readable reason.
pub async fn target(db: &Db, cipher: &Cipher, id: i64) -> Result<Result<Target, String>, sqlx::Error> {
    let secrets =
        with_db!(db, |p| sqlx::query_as::<_, Secrets>("SELECT kind, url_enc, secret_enc FROM channels WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await)?;
    let Some(secrets) = secrets else { return Ok(Err("渠道已删除".to_string())) };
    let Some(url) = cipher.decrypt(Field::CHANNEL_URL, &secrets.url_enc) else {
        return Ok(Err("无法解密渠道地址（密钥不符）".to_string()));
    };
    let secret = secrets.secret_enc.as_deref().and_then(|s| cipher.decrypt(Field::CHANNEL_SECRET, s));
    Ok(ChannelKind::try_from(secrets.kind).map(|kind| Target { kind, url, secret }))
}

/// Cuts `text` to at most `max` bytes (on a character boundary), ending with a note and the
/// link where the full text can be read. Unchanged when it fits.
pub fn fit(text: &str, max: usize, link: &str) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let tail = format!("……（内容过长已截断，全文：{link}）");
    let room = max.saturating_sub(tail.len());
    let mut cut = room.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &text[..cut])
}

/// The text a robot shows for a delivery, within the robot's size limit.
pub fn robot_text(kind: ChannelKind, d: &Delivery, public_url: &str) -> String {
    let text = format!("【应急】{}{}\n{}", d.title, if d.late { "（延迟送达）" } else { "" }, d.body);
    let link = format!("{}/api/v1/outbox/{}", public_url.trim_end_matches('/'), d.id);
    match kind {
        ChannelKind::Wecom => fit(&text, WECOM_TEXT_MAX_BYTES, &link),
        ChannelKind::Dingtalk => fit(&text, DINGTALK_TEXT_MAX_BYTES, &link),
        ChannelKind::Webhook => text,
    }
}

/// Sends one delivery to its channel. Ok(status) on success; Err((status, error)) otherwise.
pub async fn send(
    http: &reqwest::Client,
    target: &Target,
    d: &Delivery,
    now: Timestamp,
    public_url: &str,
) -> Result<Option<i64>, (Option<i64>, String)> {
    let url = target.url.clone();
    let (url, payload) = match target.kind {
        ChannelKind::Webhook => (
            url,
            json!({
                "id": d.idempotency_key,
                "kind": d.kind,
                "region_code": d.region_code,
                "title": d.title,
                "text": d.body,
                "late": d.late,
                "data": d.data.0,
                "created_at": d.created_at,
            }),
        ),
        ChannelKind::Dingtalk => {
            let url = match &target.secret {
                Some(s) => {
                    let ts = now.0.timestamp_millis();
                    format!(
                        "{url}{}timestamp={ts}&sign={}",
                        if url.contains('?') { '&' } else { '?' },
                        dingtalk_sign(ts, s)
                    )
                }
                None => url,
            };
            (url, robot_payload(target.kind, d, public_url, "markdown"))
        }
        ChannelKind::Wecom => (url, robot_payload(target.kind, d, public_url, "markdown_wecom")),
    };
    let resp = http
        .post(&url)
        .header("Idempotency-Key", &d.idempotency_key)
        .json(&payload)
        .send()
        .await
        .map_err(|e| (None, format!("请求失败：{}", e.without_url())))?;
    let status = resp.status().as_u16() as i64;
    if !resp.status().is_success() {
        return Err((Some(status), format!("对方返回 HTTP {status}")));
    }
    // The robots answer 200 with an error code in the body when they refuse a message.
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match body.get("errcode").and_then(Value::as_i64) {
        Some(code) if code != 0 => Err((
            Some(status),
            format!("机器人返回错误 {code}：{}", body.get("errmsg").and_then(Value::as_str).unwrap_or("")),
        )),
        _ => Ok(Some(status)),
    }
}

/// A robot message: markdown when the message carries it in `data.<field>` (e.g. a warning with
/// its colour and level), plain text otherwise.
fn robot_payload(kind: ChannelKind, d: &Delivery, public_url: &str, field: &str) -> Value {
    let link = format!("{}/api/v1/outbox/{}", public_url.trim_end_matches('/'), d.id);
    match d.data.0.get(field).or_else(|| d.data.0.get("markdown")).and_then(Value::as_str) {
        Some(md) if kind == ChannelKind::Dingtalk => {
            json!({"msgtype": "markdown", "markdown": {"title": d.title, "text": fit(md, DINGTALK_TEXT_MAX_BYTES, &link)}})
        }
        Some(md) => json!({"msgtype": "markdown", "markdown": {"content": fit(md, WECOM_MARKDOWN_MAX_BYTES, &link)}}),
        None => json!({"msgtype": "text", "text": {"content": robot_text(kind, d, public_url)}}),
    }
}

/// DingTalk robot signature: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")), URL-encoded.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    form_urlencoded::byte_serialize(sig.as_bytes()).collect()
}
