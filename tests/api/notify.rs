//! Notifications: outbox, channels, retries, inbox, restart safety, several instances.

use chrono::Duration;
use serde_json::{Value, json};
use yingji::notify::outbox::{self, Message};
use yingji::time::Timestamp;

use crate::common::*;
use crate::receiver::Receiver;

fn message(key: &str, region: &str) -> Message {
    Message {
        key: key.to_string(),
        region_code: region.to_string(),
        kind: "test".into(),
        title: "演练提醒".into(),
        body: "草原火灾应急演练将于 2026-12-01 09:00 开始".into(),
        data: json!({"drill": 1}),
        late: false,
        source: Some(("drill".into(), "1".into())),
    }
}

async fn enqueue(app: &TestApp, m: &Message) -> u64 {
    let mut tx = app.state.db.begin().await.unwrap();
    let n = outbox::enqueue(&mut tx, Timestamp(app.clock.now_utc()), m).await.unwrap();
    tx.commit().await.unwrap();
    n
}

async fn add_channel(app: &TestApp, token: &str, kind: &str, url: &str, secret: Option<&str>) -> Value {
    app.post(
        token,
        "/api/v1/channels",
        &json!({"region": MANDULATU, "kind": kind, "name": "满都拉图镇应急办", "url": url, "secret": secret}),
    )
    .await
    .expect(201)
    .json()
}

#[tokio::test]
async fn a_webhook_that_fails_three_times_gets_the_message_once_more_with_four_attempts() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let rx = Receiver::start(3).await;
    let ch = add_channel(&app, &admin, "webhook", &rx.url("/hook?token=secret"), None).await;
    assert_eq!(ch["url_hint"], format!("http://{}/…", rx.addr));
    assert!(!ch.to_string().contains("token=secret"), "credentials are never shown: {ch}");
    assert_eq!(enqueue(&app, &message("m1", MANDULATU)).await, 2, "in-app and the webhook");
    assert_eq!(enqueue(&app, &message("m1", MANDULATU)).await, 0, "enqueued once");
    for _ in 0..4 {
        app.tick().await;
        app.tick().await; // nothing is due again before the backoff has passed
        app.clock.advance(Duration::minutes(5));
    }
    let got = rx.received();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got.iter().filter(|r| r.accepted).count(), 1);
    assert!(got.iter().all(|r| r.key == got[0].key && !r.key.is_empty()), "a stable idempotency key");
    assert_eq!(got[3].body["title"], "演练提醒");
    assert_eq!(got[3].body["region_code"], MANDULATU);
    let list = app.get(&admin, "/api/v1/outbox").await.expect(200).json();
    let hook = list["items"].as_array().unwrap().iter().find(|d| d["channel_id"].is_number()).unwrap().clone();
    let detail = app.get(&admin, &format!("/api/v1/outbox/{}", hook["id"])).await.expect(200).json();
    assert_eq!(detail["status"], "delivered");
    let attempts: Vec<bool> =
        detail["attempts"].as_array().unwrap().iter().map(|a| a["ok"].as_bool().unwrap()).collect();
    assert_eq!(attempts, vec![false, false, false, true]);
    assert_eq!(detail["attempts"][0]["http_status"], 500);
    // More ticks deliver nothing more.
    app.clock.advance(Duration::hours(2));
    app.tick().await;
    assert_eq!(rx.received().len(), 4);
}

#[tokio::test]
async fn deliveries_give_up_after_the_limit_and_admins_can_retry() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.max_delivery_attempts = 2).await;
    let admin = app.admin().await;
    let rx = Receiver::start(2).await;
    add_channel(&app, &admin, "wecom", &rx.url("/cgi-bin/webhook/send?key=k"), None).await;
    enqueue(&app, &message("m2", MANDULATU)).await;
    app.tick().await;
    app.clock.advance(Duration::hours(1));
    app.tick().await;
    let failed = app.get(&admin, "/api/v1/outbox?status=failed").await.expect(200).json();
    assert_eq!(failed["total"], 1);
    let id = failed["items"][0]["id"].as_i64().unwrap();
    assert!(failed["items"][0]["last_error"].as_str().unwrap().contains("500"));
    let operator = app.token("operator", MANDULATU).await;
    app.post(&operator, &format!("/api/v1/outbox/{id}/retry"), &json!({})).await.problem(403);
    app.post(&admin, &format!("/api/v1/outbox/{id}/retry"), &json!({})).await.expect(200);
    app.post(&admin, &format!("/api/v1/outbox/{id}/retry"), &json!({})).await.problem(409);
    app.tick().await;
    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert!(got[2].accepted);
    assert_eq!(
        got[2].body,
        json!({"msgtype": "text", "text": {"content": "【应急】演练提醒\n草原火灾应急演练将于 2026-12-01 09:00 开始"}})
    );
    assert_eq!(app.audit_rows("delivery", &id.to_string()).await.len(), 1);
}

#[tokio::test]
async fn dingtalk_messages_are_signed() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let rx = Receiver::start(0).await;
    add_channel(&app, &admin, "dingtalk", &rx.url("/robot/send?access_token=abc"), Some("SECabc")).await;
    enqueue(&app, &message("m3", MANDULATU)).await;
    app.tick().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let expected_ts = app.clock.now_utc().timestamp_millis();
    let expected = yingji::notify::channels::dingtalk_sign(expected_ts, "SECabc");
    assert!(got[0].path.contains(&format!("timestamp={expected_ts}&sign={expected}")), "{}", got[0].path);
    assert!(got[0].path.starts_with("/robot/send?access_token=abc&"));
    assert_eq!(got[0].body["msgtype"], "text");
    // The signature is the URL-encoded base64 of a 32-byte HMAC-SHA256.
    let decoded: String = form_urlencoded::parse(format!("s={expected}").as_bytes()).next().unwrap().1.into_owned();
    assert_eq!(decoded.len(), 44, "base64 of a 32-byte MAC");
}

#[tokio::test]
async fn the_in_app_inbox_has_per_user_read_marks_within_the_jurisdiction() {
    let app = TestApp::spawn().await;
    enqueue(&app, &message("m4", MANDULATU)).await;
    enqueue(&app, &message("m5", CHAGANAOBAO)).await;
    app.tick().await;
    let town = app.token("viewer", MANDULATU).await;
    let banner = app.token("viewer", BANNER).await;
    let mine = app.get(&town, "/api/v1/notifications").await.expect(200).json();
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["items"][0]["title"], "演练提醒");
    assert!(mine["items"][0]["read_at"].is_null());
    let id = mine["items"][0]["id"].as_i64().unwrap();
    assert_eq!(app.get(&banner, "/api/v1/notifications").await.expect(200).json()["total"], 2);
    app.post(&town, &format!("/api/v1/notifications/{id}/read"), &json!({})).await.expect(204);
    app.post(&town, &format!("/api/v1/notifications/{id}/read"), &json!({})).await.expect(204);
    assert_eq!(app.get(&town, "/api/v1/notifications?unread=true").await.expect(200).json()["total"], 0);
    assert_eq!(
        app.get(&banner, "/api/v1/notifications?unread=true").await.expect(200).json()["total"],
        2,
        "read marks are per user"
    );
    let other = app.get(&banner, "/api/v1/notifications?region=152523101000").await.expect(200).json();
    let other_id = other["items"][0]["id"].as_i64().unwrap();
    app.post(&town, &format!("/api/v1/notifications/{other_id}/read"), &json!({})).await.problem(403);
    app.get(&town, "/api/v1/notifications?region=152523101000").await.problem(403);
}

#[tokio::test]
async fn nothing_is_lost_or_sent_twice_across_a_restart() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let rx = Receiver::start(0).await;
    let mut first = TestApp::spawn_with(Some(db), &url, |_| {}).await;
    let admin = first.admin().await;
    add_channel(&first, &admin, "webhook", &rx.url("/hook"), None).await;
    for i in 0..5 {
        enqueue(&first, &message(&format!("r{i}"), MANDULATU)).await;
    }
    // The service stops between enqueue and delivery.
    first.stop().await;
    assert!(rx.received().is_empty());
    let second = TestApp::spawn_with(None, &url, |_| {}).await;
    second.tick().await;
    second.tick().await;
    let got = rx.received();
    let mut keys: Vec<String> = got.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!((got.len(), keys.len()), (5, 5), "{got:?}");
    drop(first);
}

#[tokio::test]
async fn two_instances_deliver_every_message_exactly_once() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let rx = Receiver::start(0).await;
    let a = TestApp::spawn_with(Some(db), &url, |c| c.scheduler = true).await;
    let b = TestApp::spawn_with(None, &url, |c| c.scheduler = true).await;
    let admin = a.admin().await;
    add_channel(&a, &admin, "webhook", &rx.url("/hook"), None).await;
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        enqueue(app, &message(&format!("x{i}"), MANDULATU)).await;
        app.state.wake.notify_one();
    }
    a.state.wake.notify_one();
    b.state.wake.notify_one();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rx.received().len() < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Give any duplicate a chance to show up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = rx.received();
    let mut keys: Vec<String> = got.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 40, "every message arrived");
    assert_eq!(got.len(), 40, "none arrived twice");
}
