//! Background work under a fake clock: missed-run policies over a long outage, cron names and
//! daylight saving, fair per-channel delivery, two instances with a slow receiver, fencing of a
//! stale claimant, poison items, and robot size limits.

use std::time::Duration as StdDuration;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use yingji::notify::outbox::{self, Message, Outcome};
use yingji::scheduler::lease::Lease;
use yingji::time::Timestamp;

use crate::common::*;
use crate::receiver::Receiver;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

async fn runs(app: &TestApp, token: &str, schedule: &str) -> Vec<Value> {
    let v = app.get(token, &format!("/api/v1/jobs/runs?schedule={schedule}&limit=1000")).await.expect(200).json();
    v["items"].as_array().unwrap().clone()
}

async fn add_channel(app: &TestApp, token: &str, region: &str, kind: &str, url: &str) -> i64 {
    app.post(token, "/api/v1/channels", &json!({"region": region, "kind": kind, "name": "应急办", "url": url}))
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap()
}

fn message(key: &str, region: &str) -> Message {
    Message {
        key: key.to_string(),
        region_code: region.to_string(),
        kind: "test".into(),
        title: "演练提醒".into(),
        body: "草原火灾应急演练将于 2026-12-01 09:00 开始".into(),
        data: json!({}),
        late: false,
        source: None,
    }
}

async fn enqueue(app: &TestApp, m: &Message) {
    let mut tx = app.state.db.begin().await.unwrap();
    outbox::enqueue(&mut tx, Timestamp(app.clock.now_utc()), m).await.unwrap();
    tx.commit().await.unwrap();
}

async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn scalar_i64(app: &TestApp, sql: &str) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap())
}

#[tokio::test]
async fn a_ten_day_outage_holds_each_missed_run_policy() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Every minute from 00:00 to 22:59; the service comes back at 23:30, so nothing is on time.
    for (name, mut body) in [
        ("drill_reminders", json!({"missed_policy": "skip"})),
        ("expiry_sweep", json!({"missed_policy": "run_once"})),
        ("readiness_check", json!({"missed_policy": "run_all", "max_catchup": 2})),
    ] {
        body["cron"] = json!("* 0-22 * * *");
        app.patch(&admin, &format!("/api/v1/jobs/{name}"), &body).await.expect(200);
    }
    // The clock stands at 2026-11-27 08:00: the first occurrence is 08:01. Then ten full days.
    let missed = (15 * 60 - 1) + 10 * 23 * 60;
    assert!(missed > 10_000, "more than the old two-pass threshold");
    app.clock.set(at(2026, 12, 7, 23, 30));
    app.tick().await;
    app.tick().await;
    app.clock.advance(Duration::minutes(1));
    app.tick().await;

    let skip = runs(&app, &admin, "drill_reminders").await;
    assert_eq!(skip.len(), 1, "skip: one history row: {skip:?}");
    assert_eq!(skip[0]["status"], "skipped");
    assert_eq!(skip[0]["counts"]["skipped"], missed);
    assert_eq!(skip[0]["counts"]["from"], "2026-11-27T08:01:00+08:00");
    assert_eq!(skip[0]["counts"]["to"], "2026-12-07T22:59:00+08:00");

    let once = runs(&app, &admin, "expiry_sweep").await;
    assert_eq!(once.len(), 2, "run_once: one late run and one skipped row: {once:?}");
    assert_eq!(
        (once[0]["due_at"].as_str(), once[0]["status"].as_str()),
        (Some("2026-12-07T22:59:00+08:00"), Some("succeeded"))
    );
    assert_eq!(once[0]["late"], true);
    assert_eq!(
        (once[1]["status"].as_str(), once[1]["counts"]["skipped"].as_i64()),
        (Some("skipped"), Some(missed - 1))
    );

    let all = runs(&app, &admin, "readiness_check").await;
    assert_eq!(all.len(), 3, "run_all with max_catchup 2: {all:?}");
    let late: Vec<&str> =
        all.iter().filter(|r| r["status"] == "succeeded").map(|r| r["due_at"].as_str().unwrap()).collect();
    assert_eq!(late, vec!["2026-12-07T22:59:00+08:00", "2026-12-07T22:58:00+08:00"]);
    assert_eq!(all[2]["counts"]["skipped"], missed - 2);
    assert_eq!(all[2]["counts"]["to"], "2026-12-07T22:57:00+08:00");
    let jobs = app.get(&admin, "/api/v1/jobs").await.expect(200).json();
    for s in jobs["items"].as_array().unwrap() {
        if ["drill_reminders", "expiry_sweep", "readiness_check"].contains(&s["name"].as_str().unwrap()) {
            assert_eq!(s["next_due_at"], "2026-12-08T00:00:00+08:00", "{s}");
        }
    }
}

#[tokio::test]
async fn cron_names_and_daylight_saving_through_the_api() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let path = "/api/v1/jobs/readiness_check";
    for (cron, next) in [
        ("0 9 * JUL *", "2027-07-01T09:00:00+08:00"),
        ("0 9 1 DEC *", "2026-12-01T09:00:00+08:00"),
        ("30 7 * * SUN", "2026-11-29T07:30:00+08:00"),
    ] {
        let s = app.patch(&admin, path, &json!({"cron": cron})).await.expect(200).json();
        assert_eq!(s["next_due_at"], next, "{cron}");
    }
    for (cron, field, range) in
        [("60 * * * *", "「分」", "0–59"), ("-1 * * * *", "「分」", "0–59"), ("0 9 * * 8", "「星期」", "0–7")]
    {
        let p = app.patch(&admin, path, &json!({"cron": cron})).await.problem(422);
        let text = p.to_string();
        assert!(text.contains(field) && text.contains(range) && p["errors"][0]["field"] == "cron", "{cron}: {p}");
    }
    // Europe/Berlin, 2027-03-28: 02:00 CET jumps to 03:00 CEST. 02:30 runs at 03:00 CEST.
    app.clock.set(at(2027, 3, 27, 12, 0));
    let s =
        app.patch(&admin, path, &json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"})).await.expect(200).json();
    assert_eq!(s["next_due_at"], "2027-03-28T09:00:00+08:00", "01:00 UTC, the moment of the change");
    app.clock.set(at(2027, 3, 28, 9, 0) + Duration::seconds(10));
    app.tick().await;
    let r = runs(&app, &admin, "readiness_check").await;
    assert_eq!(
        (r.len(), r[0]["due_at"].as_str(), r[0]["late"].as_bool()),
        (1, Some("2027-03-28T09:00:00+08:00"), Some(false))
    );
    let s = app.get(&admin, "/api/v1/jobs").await.expect(200).json();
    let s = s["items"].as_array().unwrap().iter().find(|s| s["name"] == "readiness_check").unwrap().clone();
    assert_eq!(s["next_due_at"], "2027-03-29T08:30:00+08:00", "02:30 CEST the next day");
    // 2027-10-31: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice; it runs once.
    app.clock.set(at(2027, 10, 30, 12, 0));
    let s = app.patch(&admin, path, &json!({"cron": "30 2 1-31 * *"})).await.expect(200).json();
    assert_eq!(s["next_due_at"], "2027-10-31T08:30:00+08:00", "the first 02:30 (CEST)");
    app.clock.set(at(2027, 10, 31, 8, 30) + Duration::seconds(10));
    app.tick().await;
    app.clock.set(at(2027, 10, 31, 9, 30) + Duration::seconds(10)); // the second 02:30 (CET)
    app.tick().await;
    let r = runs(&app, &admin, "readiness_check").await;
    let dues: Vec<&str> = r.iter().map(|x| x["due_at"].as_str().unwrap()).collect();
    assert_eq!(dues, vec!["2027-10-31T08:30:00+08:00", "2027-03-28T09:00:00+08:00"]);
}

#[tokio::test]
async fn a_slow_channel_does_not_hold_up_a_fast_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let slow = Receiver::start_slow(StdDuration::from_millis(400)).await;
    let fast = Receiver::start(0).await;
    add_channel(&app, &admin, MANDULATU, "wecom", &slow.url("/cgi-bin/webhook/send?key=k")).await;
    add_channel(&app, &admin, CHAGANAOBAO, "webhook", &fast.url("/hook")).await;
    for i in 0..6 {
        enqueue(&app, &message(&format!("slow{i}"), MANDULATU)).await;
        enqueue(&app, &message(&format!("fast{i}"), CHAGANAOBAO)).await;
    }
    let state = app.state.clone();
    let now = Timestamp(app.clock.now_utc());
    let tick = tokio::spawn(async move { yingji::scheduler::tick(&state, now).await });
    wait_until("the fast channel", 10, || fast.received().len() == 6).await;
    assert!(slow.received().len() <= 2, "the fast channel finished while the slow one was still sending");
    tick.await.unwrap().unwrap();
    assert_eq!(slow.keys().len(), 6);
    assert_eq!(fast.keys().len(), 6);
    assert_eq!(slow.received().len(), 6, "one robot message each");
}

#[tokio::test]
async fn two_instances_with_a_receiver_slower_than_a_batch_send_each_message_once() {
    let db = fresh_db().await;
    let url = db.url.clone();
    // Each request takes 150 ms: a batch of 48 takes the claimant about half a second.
    let rx = Receiver::start_slow(StdDuration::from_millis(150)).await;
    let a = TestApp::spawn_with(Some(db), &url, |c| c.scheduler = true).await;
    let b = TestApp::spawn_with(None, &url, |c| c.scheduler = true).await;
    let admin = a.admin().await;
    add_channel(&a, &admin, MANDULATU, "webhook", &rx.url("/hook")).await;
    for i in 0..120 {
        enqueue(if i % 2 == 0 { &a } else { &b }, &message(&format!("s{i}"), MANDULATU)).await;
    }
    a.state.wake.notify_one();
    b.state.wake.notify_one();
    wait_until("every message", 30, || rx.keys().len() == 120).await;
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(rx.received().len(), 120, "none sent twice");
    let attempts = scalar_i64(&a, "SELECT COUNT(*) FROM delivery_attempts").await;
    assert_eq!(attempts, 240, "one attempt per delivery (webhook and inbox)");
    let sending = scalar_i64(&a, "SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'").await;
    assert_eq!(sending, 0);
}

#[tokio::test]
async fn a_stale_claimant_write_is_refused_after_another_instance_took_its_lease_over() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let a = TestApp::spawn_with(Some(db), &url, |_| {}).await;
    let b = TestApp::spawn_with(None, &url, |_| {}).await;
    let admin = a.admin().await;
    let rx = Receiver::start(0).await;
    let ch = add_channel(&a, &admin, MANDULATU, "webhook", &rx.url("/hook")).await;
    enqueue(&a, &message("stale", MANDULATU)).await;
    let t0 = Timestamp(a.clock.now_utc());
    let lease_a = Lease { token: "lease-a".into(), until: Timestamp(t0.0 + Duration::seconds(60)) };
    let claimed = outbox::claim(&a.state.db, "a", t0, &lease_a, Some(ch), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Not claimable while the lease runs …
    let lease_b = Lease { token: "lease-b".into(), until: Timestamp(t0.0 + Duration::seconds(120)) };
    let t1 = Timestamp(t0.0 + Duration::seconds(30));
    assert!(outbox::claim(&b.state.db, "b", t1, &lease_b, Some(ch), 10).await.unwrap().is_empty());
    // … and taken over once it lapsed (A stalled past its lease).
    let t2 = Timestamp(t0.0 + Duration::seconds(61));
    let lease_b = Lease { token: "lease-b".into(), until: Timestamp(t2.0 + Duration::seconds(60)) };
    let taken = outbox::claim(&b.state.db, "b", t2, &lease_b, Some(ch), 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    let ok = |d: &yingji::notify::outbox::Delivery, at| Outcome {
        delivery: d.clone(),
        at,
        result: Ok(Some(200)),
        retry_at: None,
    };
    let mut tx = b.state.db.begin().await.unwrap();
    assert_eq!(outbox::record(&mut tx, &[ok(&taken[0], t2)], "lease-b", false).await.unwrap(), 1);
    tx.commit().await.unwrap();
    // A wakes up and writes its (failed) result: refused, nothing of it written.
    let failed = Outcome {
        delivery: claimed[0].clone(),
        at: t2,
        result: Err((Some(500), "stale".into())),
        retry_at: Some(Timestamp(t2.0 + Duration::minutes(1))),
    };
    let mut tx = a.state.db.begin().await.unwrap();
    assert_eq!(outbox::record(&mut tx, &[failed], "lease-a", false).await.unwrap(), 0, "refused");
    tx.commit().await.unwrap();
    let d = outbox::get(&a.state.db, claimed[0].id).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts, d.last_error), ("delivered", 1, None));
    assert_eq!(outbox::attempts(&a.state.db, d.id).await.unwrap().len(), 1);

    // The same for a job run: B takes over a run whose claimant stalled; A's finish is refused.
    a.clock.set(at(2026, 11, 28, 8, 0) + Duration::seconds(5));
    yingji::with_db!(&a.state.db, |p| sqlx::query(
        "INSERT INTO job_runs (schedule_id, due_at, status, late, enqueued_at, attempts)
         SELECT id, next_due_at, 'pending', $1, next_due_at, 0 FROM schedules WHERE name = 'expiry_sweep'"
    )
    .bind(false)
    .execute(p)
    .await
    .map(|_| ())
    .unwrap());
    let now = Timestamp(a.clock.now_utc());
    let la = Lease { token: "run-a".into(), until: Timestamp(now.0 + Duration::seconds(60)) };
    let run = yingji::scheduler::runs::claim(&a.state.db, "a", now, &la).await.unwrap().unwrap();
    let later = Timestamp(now.0 + Duration::seconds(90));
    let lb = Lease { token: "run-b".into(), until: Timestamp(later.0 + Duration::seconds(60)) };
    let again = yingji::scheduler::runs::claim(&b.state.db, "b", later, &lb).await.unwrap().unwrap();
    assert_eq!(again.id, run.id);
    let mut tx = b.state.db.begin().await.unwrap();
    yingji::scheduler::runs::finish(&mut tx, &again, "run-b", later, Ok(json!({"n": 1})), None).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = a.state.db.begin().await.unwrap();
    let e =
        yingji::scheduler::runs::finish(&mut tx, &run, "run-a", later, Err("stale".into()), None).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    drop(tx);
    let r = runs(&a, &admin, "expiry_sweep").await;
    assert_eq!(
        (r[0]["status"].as_str(), r[0]["counts"]["n"].as_i64(), r[0]["error"].as_str()),
        (Some("succeeded"), Some(1), None)
    );
}

async fn drill_with_reminder(app: &TestApp, op: &str, title: &str, place: &str, organiser: &str, start: &str) -> i64 {
    let body = json!({
        "title": title,
        "form": "tabletop",
        "scope": "single",
        "purpose": "test",
        "objective": "检验预警响应",
        "region": MANDULATU,
        "organiser_unit": organiser,
        "participating_units": ["满都拉图镇政府"],
        "place_name": place,
        "lon": 113.7,
        "lat": 43.9,
        "starts_at": start,
        "ends_at": "2026-12-30T12:00:00+08:00",
        "reminder_offsets": [60]
    });
    app.post(op, "/api/v1/drills", &body).await.expect(201).json()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn poison_items_are_parked_with_their_error_and_everything_else_goes_out_on_time() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| {
        c.scheduler = true;
        c.max_delivery_attempts = 2;
    })
    .await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    let good = Receiver::start(0).await;
    add_channel(&app, &admin, MANDULATU, "webhook", &good.url("/hook")).await;
    // A poison delivery: a channel whose receiver is gone (connection refused).
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    add_channel(&app, &admin, CHAGANAOBAO, "webhook", &format!("http://{dead}/hook")).await;
    // Five drills on 2026-12-01 at 10:00 … 10:04, reminded an hour before; one of them poisoned:
    // its stored reminder offsets are unreadable, so loading it fails.
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            drill_with_reminder(
                &app,
                &op,
                &format!("演练{i}"),
                "白音哈拉图嘎查",
                "满都拉图镇应急办",
                &format!("2026-12-01T10:0{i}:00+08:00"),
            )
            .await,
        );
    }
    yingji::with_db!(&app.state.db, |p| sqlx::query(&format!(
        "UPDATE drills SET reminder_offsets = '{{\"broken\": true}}' WHERE id = {}",
        ids[2]
    ))
    .execute(p)
    .await
    .map(|_| ())
    .unwrap());
    // A poison job: the readiness configuration is unreadable (a manual edit gone wrong), so the
    // readiness check and the expiry sweep that read it fail every time.
    let now = Timestamp(app.clock.now_utc());
    yingji::with_db!(&app.state.db, |p| sqlx::query(
        "INSERT INTO readiness_config (id, config, updated_at) VALUES (1, '\"broken\"', $1)
         ON CONFLICT (id) DO UPDATE SET config = excluded.config"
    )
    .bind(now)
    .execute(p)
    .await
    .map(|_| ())
    .unwrap());
    enqueue(&app, &message("to-the-dead", CHAGANAOBAO)).await;

    // 09:00: the reminders of 09:00 … 09:04 fall due one a minute; the poison job is due too.
    for minute in 0..5 {
        app.clock.set(at(2026, 12, 1, 9, minute) + Duration::seconds(1));
        app.state.wake.notify_one();
        let expected = (minute as usize + 1) - usize::from(minute >= 2);
        wait_until("the good reminders", 10, || good.keys().len() == expected).await;
    }
    let got = good.received();
    assert_eq!(got.len(), 4, "each good reminder once, on time: {got:?}");
    // The poison is retried with backoff, then parked with its error.
    for _ in 0..3 {
        app.clock.advance(Duration::hours(2));
        app.state.wake.notify_one();
        tokio::time::sleep(StdDuration::from_millis(300)).await;
    }
    let mut parked = false;
    for _ in 0..100 {
        let failed = app.get(&admin, "/api/v1/outbox?status=failed").await.expect(200).json();
        let jobs = app.get(&admin, "/api/v1/jobs/runs?status=failed").await.expect(200).json();
        let reminder = scalar_i64(
            &app,
            &format!("SELECT COUNT(*) FROM drill_reminders WHERE drill_id = {} AND status = 'failed'", ids[2]),
        )
        .await;
        if failed["total"] == 1 && jobs["total"] == 2 && reminder == 1 {
            let d = &failed["items"][0];
            assert_eq!(d["region_code"], CHAGANAOBAO);
            assert_eq!(d["attempts"], 2);
            assert!(d["last_error"].as_str().unwrap().contains("请求失败"), "{d}");
            let j = &jobs["items"][0];
            assert!(["readiness_check", "expiry_sweep"].contains(&j["schedule"].as_str().unwrap()), "{j}");
            assert!(!j["error"].as_str().unwrap().is_empty(), "{j}");
            assert_eq!(j["attempts"], 2);
            parked = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(parked, "poison parked");
    let error: Option<String> = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(&format!(
        "SELECT last_error FROM drill_reminders WHERE drill_id = {}",
        ids[2]
    ))
    .fetch_one(p)
    .await
    .unwrap());
    assert!(error.is_some_and(|e| !e.is_empty()));
    // Every good delivery went out once, and the in-app inbox of the dead channel's region too.
    assert_eq!(good.received().len(), 4);
    let inbox_pending =
        scalar_i64(&app, "SELECT COUNT(*) FROM outbox WHERE channel_id IS NULL AND status <> 'delivered'").await;
    assert_eq!(inbox_pending, 0);
    // Idle afterwards: the loop sleeps until the next due moment instead of spinning.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    let before = app.state.background.passes();
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    let passes = app.state.background.passes() - before;
    assert!(passes <= 1, "the loop made {passes} passes in 2.5 s while nothing was due");
}

#[tokio::test]
async fn a_wecom_message_built_from_200_character_fields_fits_the_robot_limit() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    let rx = Receiver::start(0).await;
    add_channel(&app, &admin, MANDULATU, "wecom", &rx.url("/cgi-bin/webhook/send?key=k")).await;
    let title: String = "草原火灾扑救综合实战演练".chars().cycle().take(200).collect();
    let place: String = "白音哈拉图嘎查北草场".chars().cycle().take(200).collect();
    let organiser: String = "满都拉图镇人民政府应急管理办公室".chars().cycle().take(200).collect();
    drill_with_reminder(&app, &op, &title, &place, &organiser, "2026-12-01T10:00:00+08:00").await;
    app.clock.set(at(2026, 12, 1, 9, 0) + Duration::seconds(1));
    app.tick().await;
    // (The day's readiness check and expiry sweep may write to the same robot: look at the reminder.)
    let got: Vec<_> = rx.received().into_iter().filter(|r| r.body.to_string().contains("演练提醒")).collect();
    assert_eq!(got.len(), 1);
    let content = got[0].body["text"]["content"].as_str().unwrap();
    assert!(content.len() <= 2048, "{} bytes", content.len());
    assert!(content.starts_with("【应急】演练提醒：草原火灾"), "{content}");
    let d = app.get(&admin, "/api/v1/outbox?status=delivered").await.expect(200).json();
    let wecom = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["channel_id"].is_number() && x["kind"] == "drill_reminder")
        .unwrap()
        .clone();
    let full_len = wecom["title"].as_str().unwrap().len() + wecom["body"].as_str().unwrap().len();
    assert!(full_len > 2048, "the message really was too long ({full_len} bytes)");
    let link = format!("全文：{}/api/v1/outbox/{}）", app.base, wecom["id"]);
    assert!(content.ends_with(&link), "a link to the full text: {content}");
    assert!(content.contains("内容过长已截断"));
}

#[tokio::test]
async fn a_delivery_slower_than_its_lease_keeps_its_claim_by_renewing_it() {
    let db = fresh_db().await;
    let url = db.url.clone();
    // The receiver takes 4 s to answer; the lease is 3 s, renewed every second while the send runs.
    let rx = Receiver::start_slow(StdDuration::from_secs(4)).await;
    let a = TestApp::spawn_with(Some(db), &url, |c| {
        c.scheduler = true;
        c.lease_seconds = 3;
    })
    .await;
    let b = TestApp::spawn_with(None, &url, |c| c.lease_seconds = 3).await;
    let admin = a.admin().await;
    add_channel(&a, &admin, MANDULATU, "webhook", &rx.url("/hook")).await;
    enqueue(&a, &message("slow", MANDULATU)).await;
    a.state.wake.notify_one();
    wait_until("the request to arrive", 10, || rx.arrived() == 1).await;
    // The claimant's clock moves 2 s on and it renews (to its now + 3 s); the other instance then
    // looks 4 s after the claim: past the first lease, inside the renewed one.
    a.clock.advance(Duration::seconds(2));
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    b.clock.advance(Duration::seconds(4));
    b.tick().await;
    assert_eq!(rx.arrived(), 1, "a renewed claim is not taken over");
    wait_until("the delivery", 15, || rx.keys().len() == 1).await;
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(rx.arrived(), 1, "sent once");
    let open =
        scalar_i64(&a, "SELECT COUNT(*) FROM outbox WHERE channel_id IS NOT NULL AND status <> 'delivered'").await;
    assert_eq!(open, 0, "recorded as delivered by the claimant that renewed its lease");
}
