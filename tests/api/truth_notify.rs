//! Notifications people can read (issue 12, item 7): one digest per region per run, a capped
//! number of individual critical messages, channels kept within DingTalk/WeCom rate limits.

use chrono::Duration;
use serde_json::{Value, json};
use yingji::notify::outbox::{self, Message};
use yingji::time::Timestamp;

use crate::common::*;
use crate::readiness::run_check;
use crate::readiness_rules::{approved_plan, plan};
use crate::receiver::Receiver;
use crate::truth_forces::{member, team};

async fn inbox(app: &TestApp, t: &str, kind: &str) -> Vec<Value> {
    let v = app.get(t, &format!("/api/v1/notifications?kind={kind}&limit=1000")).await.expect(200).json();
    v["items"].as_array().unwrap().iter().filter(|n| n["region_code"] == MANDULATU).cloned().collect()
}

#[tokio::test]
async fn a_run_sends_each_region_one_digest_and_a_capped_number_of_critical_messages() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    let mut c = app.get(&admin, "/api/v1/readiness/config").await.expect(200).json();
    assert_eq!(c["max_individual_critical"], 3, "the default");
    c["max_individual_critical"] = json!(2);
    app.put(&admin, "/api/v1/readiness/config", &c).await.expect(200);
    // 满都拉图镇: a plan in force lacking 100 quilts (a shortfall) and twelve members whose
    // insurance lapsed: thirteen critical findings in one township.
    let needs = json!({"response_levels": [{"level": 2, "criteria": "大范围积雪", "supplies": [{"item_code": "1999905", "name": "棉被", "quantity": 100, "unit": "床", "within_km": 50}]}]});
    approved_plan(&app, &admin, &plan("镇白灾预案", "township", MANDULATU, needs), "2026-11-20").await;
    team(&app, &admin, "T", 5.0).await;
    for seq in 1..=12 {
        member(&app, &admin, "T", seq, json!({"insurance": [{"insurer": "人保财险", "policy_number": format!("X{seq}"), "start": "2025-01-01", "end": "2026-11-01"}]})).await;
    }
    let s = run_check(&app).await;
    app.tick().await;
    let individual = inbox(&app, &op, "readiness_finding").await;
    let digests = inbox(&app, &op, "readiness_digest").await;
    assert_eq!(individual.len(), 2, "capped at 2: {individual:?}");
    assert_eq!(digests.len(), 1, "one digest for the township");
    assert!(
        individual.iter().any(|n| n["title"].as_str().unwrap().contains("应急物资缺口")),
        "the shortfall goes first"
    );
    let body = digests[0]["body"].as_str().unwrap();
    assert!(body.contains("队员保险已过期【严重】12 项"), "{body}");
    assert!(body.contains("应急物资缺口【严重】1 项"), "{body}");
    assert!(body.contains("建议：") && body.contains(&format!("/api/v1/readiness?region={MANDULATU}")), "{body}");
    assert!(body.contains("另有 6 项未列出"), "11 left for the digest, 5 listed: {body}");
    assert_eq!(digests[0]["data"]["opened"], 13);
    // Across the banner, no region got more than one digest and two individual messages.
    let all = app.get(&admin, "/api/v1/outbox?limit=1000").await.expect(200).json();
    let mut per_region: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for d in all["items"].as_array().unwrap() {
        *per_region.entry(d["region_code"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert!(per_region.values().all(|n| *n <= 3), "{per_region:?} ({s})");
    // Near miss: a second run with nothing new sends nothing.
    run_check(&app).await;
    app.tick().await;
    assert_eq!(inbox(&app, &op, "readiness_digest").await.len(), 1);
    assert_eq!(inbox(&app, &op, "readiness_finding").await.len(), 2);
    // A new warning the next day: a new digest naming only it.
    app.patch(&admin, &format!("/api/v1/members/{}", individual_member(&app).await), &json!({"insurance": [{"insurer": "人保财险", "policy_number": "R", "start": "2026-11-01", "end": "2026-12-20"}]})).await.expect(200);
    run_check(&app).await;
    app.tick().await;
    let digests = inbox(&app, &op, "readiness_digest").await;
    assert_eq!(digests.len(), 2);
    assert_eq!(digests[0]["data"]["opened"], 1, "{}", digests[0]);
    assert!(digests[0]["body"].as_str().unwrap().contains("队员保险即将到期【警告】1 项"));
}

async fn individual_member(app: &TestApp) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>("SELECT MIN(id) FROM members")
        .fetch_one(p)
        .await
        .unwrap())
}

#[tokio::test]
async fn channels_stay_within_the_robots_rate_limit() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let rx = Receiver::start(0).await;
    app.post(
        &admin,
        "/api/v1/channels",
        &json!({"region": MANDULATU, "kind": "wecom", "name": "镇应急群", "url": rx.url("/wecom")}),
    )
    .await
    .expect(201);
    let now = Timestamp(app.clock.now_utc());
    let mut tx = app.state.db.begin().await.unwrap();
    for i in 0..25 {
        let m = Message {
            key: format!("m{i}"),
            region_code: MANDULATU.into(),
            kind: "test".into(),
            title: format!("消息{i}"),
            body: "正文".into(),
            data: json!({}),
            late: false,
            source: None,
        };
        outbox::enqueue(&mut tx, now, &m).await.unwrap();
    }
    tx.commit().await.unwrap();
    // 20 a minute: the first pass sends 20 (trigger for the limit), the rest wait.
    app.tick().await;
    assert_eq!(rx.received().len(), 20);
    app.clock.advance(Duration::seconds(30));
    app.tick().await;
    assert_eq!(rx.received().len(), 20, "still within the same minute");
    // A minute after the first sends, the rest go (resolution); none was counted as a failed attempt.
    app.clock.advance(Duration::seconds(31));
    app.tick().await;
    assert_eq!(rx.received().len(), 25);
    let failed = app.get(&admin, "/api/v1/outbox?status=failed").await.expect(200).json();
    assert_eq!(failed["total"], 0);
    let attempts: i64 = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id WHERE o.channel_id IS NOT NULL"
    )
    .fetch_one(p)
    .await
    .unwrap()
    });
    assert_eq!(attempts, 25, "one attempt per message");
}
