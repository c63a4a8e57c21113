//! Drills: the calendar, reminders across midnight and month ends, postponement and
//! cancellation, the lifecycle with evaluation and corrective actions, recurrence, the iCalendar
//! feed.

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::common::*;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

fn drill(start: &str, end: &str) -> Value {
    json!({
        "title": "满都拉图镇草原火灾扑救实战演练",
        "form": "field",
        "scope": "comprehensive",
        "purpose": "test",
        "objective": "检验草原火灾专项预案的响应启动和队伍集结",
        "region": MANDULATU,
        "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府", "旗消防救援大队"],
        "place_name": "白音哈拉图嘎查北草场",
        "lon": 113.7,
        "lat": 43.9,
        "starts_at": start,
        "ends_at": end
    })
}

async fn reminders(app: &TestApp, token: &str, id: i64) -> Vec<Value> {
    app.get(token, &format!("/api/v1/drills/{id}/reminders")).await.expect(200).json().as_array().unwrap().clone()
}

async fn inbox_titles(app: &TestApp, token: &str) -> Vec<String> {
    let v = app.get(token, "/api/v1/notifications?kind=drill_reminder").await.expect(200).json();
    v["items"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn drills_are_scheduled_within_the_jurisdiction_and_validated() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let viewer = app.token("viewer", MANDULATU).await;
    let other = app.token("operator", CHAGANAOBAO).await;
    let body = drill("2026-12-01T01:00:00+08:00", "2026-12-01T05:00:00+08:00");
    app.post(&viewer, "/api/v1/drills", &body).await.problem(403);
    app.post(&other, "/api/v1/drills", &body).await.problem(403);
    let d = app.post(&op, "/api/v1/drills", &body).await.expect(201).json();
    assert_eq!(d["status"], "planned");
    assert_eq!(d["status_label"], "计划中");
    assert_eq!(d["reminder_offsets"], json!([10080, 1440, 120]));
    assert_eq!(d["starts_at"], "2026-12-01T01:00:00+08:00");
    // Exists but not yours: 403, as everywhere.
    assert_eq!(app.get(&other, &format!("/api/v1/drills/{}", d["id"])).await.status, 403);
    assert_eq!(app.get(&other, "/api/v1/drills").await.expect(200).json()["total"], 0);
    assert_eq!(app.get(&viewer, "/api/v1/drills").await.expect(200).json()["total"], 1);
    let id = d["id"].as_i64().unwrap();
    assert_eq!(app.audit_rows("drill", &id.to_string()).await.len(), 1);

    let mut bad = drill("2026-12-01T05:00:00+08:00", "2026-12-01T01:00:00+08:00");
    bad["reminder_offsets"] = json!([0, 60, 60]);
    bad["recurrence"] = json!("every day");
    let p = app.post(&op, "/api/v1/drills", &bad).await.problem(422);
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(
        fields.contains(&"ends_at")
            && fields.contains(&"reminder_offsets[0]")
            && fields.contains(&"reminder_offsets[2]")
            && fields.contains(&"recurrence"),
        "{p}"
    );
    let mut bad = drill("2026-12-01T01:00:00+08:00", "2026-12-01T05:00:00+08:00");
    bad["form"] = json!("online");
    app.post(&op, "/api/v1/drills", &bad).await.problem(422);
}

#[tokio::test]
async fn reminders_fire_at_their_moment_across_midnight_and_a_month_end() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    // Starts 2026-12-01 01:00 local: reminders at 11-24 01:00 (already past when scheduled),
    // 11-30 01:00, and 11-30 23:00 (two hours before, across midnight and the month end).
    let d = app
        .post(&op, "/api/v1/drills", &drill("2026-12-01T01:00:00+08:00", "2026-12-01T05:00:00+08:00"))
        .await
        .expect(201)
        .json();
    let id = d["id"].as_i64().unwrap();
    let r = reminders(&app, &op, id).await;
    let dues: Vec<(&str, &str)> =
        r.iter().map(|x| (x["due_at"].as_str().unwrap(), x["status"].as_str().unwrap())).collect();
    assert_eq!(
        dues,
        vec![
            ("2026-11-24T01:00:00+08:00", "skipped"),
            ("2026-11-30T01:00:00+08:00", "pending"),
            ("2026-11-30T23:00:00+08:00", "pending"),
        ]
    );
    app.clock.set(at(2026, 11, 30, 1, 0) - Duration::seconds(1));
    app.tick().await;
    assert!(inbox_titles(&app, &op).await.is_empty(), "not a second early");
    app.clock.set(at(2026, 11, 30, 1, 0));
    app.tick().await;
    app.tick().await;
    assert_eq!(inbox_titles(&app, &op).await, vec!["演练提醒：满都拉图镇草原火灾扑救实战演练"]);
    app.clock.set(at(2026, 11, 30, 22, 59));
    app.tick().await;
    assert_eq!(inbox_titles(&app, &op).await.len(), 1);
    app.clock.set(at(2026, 11, 30, 23, 0) + Duration::seconds(30));
    app.tick().await;
    let v = app.get(&op, "/api/v1/notifications?kind=drill_reminder").await.expect(200).json();
    assert_eq!(v["total"], 2);
    let body = v["items"][0]["body"].as_str().unwrap();
    assert!(
        body.contains("2026-12-01 01:00") && body.contains("2 小时") && body.contains("白音哈拉图嘎查北草场"),
        "{body}"
    );
    let r = reminders(&app, &op, id).await;
    assert!(r[1..].iter().all(|x| x["status"] == "sent" && x["late"] == false), "{r:?}");
    // The banner sees the township's reminders; the other township does not.
    let other = app.token("viewer", CHAGANAOBAO).await;
    assert!(inbox_titles(&app, &other).await.is_empty());
}

#[tokio::test]
async fn postponing_moves_the_reminders_and_cancelling_withdraws_them() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let admin = app.admin().await;
    let rx = crate::receiver::Receiver::start(1000).await;
    app.post(
        &admin,
        "/api/v1/channels",
        &json!({"region": MANDULATU, "kind": "webhook", "name": "镇应急办", "url": rx.url("/hook")}),
    )
    .await
    .expect(201);
    let d = app
        .post(&op, "/api/v1/drills", &drill("2026-12-05T09:00:00+08:00", "2026-12-05T12:00:00+08:00"))
        .await
        .expect(201)
        .json();
    let id = d["id"].as_i64().unwrap();
    let p = app
        .post(
            &op,
            &format!("/api/v1/drills/{id}/postpone"),
            &json!({"starts_at": "2026-12-10T09:00:00+08:00", "ends_at": "2026-12-10T12:00:00+08:00"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(p["status"], "postponed");
    assert_eq!(p["postponed_from"], "2026-12-05T09:00:00+08:00");
    assert_eq!(p["sequence"], 1);
    let r = reminders(&app, &op, id).await;
    let pending: Vec<&str> =
        r.iter().filter(|x| x["status"] == "pending").map(|x| x["due_at"].as_str().unwrap()).collect();
    assert_eq!(pending, vec!["2026-12-03T09:00:00+08:00", "2026-12-09T09:00:00+08:00", "2026-12-10T07:00:00+08:00"]);
    assert_eq!(r.iter().filter(|x| x["status"] == "cancelled").count(), 3, "the old date's three reminders; {r:?}");
    // The old moment passes: nothing is sent.
    app.clock.set(at(2026, 12, 4, 9, 0));
    app.tick().await;
    assert_eq!(inbox_titles(&app, &op).await.len(), 1, "only the 7-day reminder of the new date");
    // The webhook keeps failing, so that delivery waits for a retry; cancelling withdraws it.
    assert_eq!(rx.received().iter().filter(|r| r.body["kind"] == "drill_reminder").count(), 1);
    app.post(&op, &format!("/api/v1/drills/{id}/cancel"), &json!({"reason": "暴雪封路"})).await.expect(200);
    let out = app.get(&admin, "/api/v1/outbox?status=cancelled").await.expect(200).json();
    assert_eq!(out["total"], 1);
    let r = reminders(&app, &op, id).await;
    assert!(r.iter().all(|x| x["status"] != "pending"), "{r:?}");
    app.clock.set(at(2026, 12, 10, 8, 0));
    app.tick().await;
    assert_eq!(
        rx.received().iter().filter(|r| r.body["kind"] == "drill_reminder").count(),
        1,
        "nothing more is sent for a cancelled drill"
    );
    app.post(&op, &format!("/api/v1/drills/{id}/cancel"), &json!({"reason": "again"})).await.problem(409);
}

#[tokio::test]
async fn reminders_missed_while_down_are_sent_late_once_if_the_drill_is_still_ahead() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let d = app
        .post(&op, "/api/v1/drills", &drill("2026-12-02T09:00:00+08:00", "2026-12-02T12:00:00+08:00"))
        .await
        .expect(201)
        .json();
    let id = d["id"].as_i64().unwrap();
    // The 7-day reminder (11-25) had passed when the drill was scheduled. Then the service is
    // down from before the 1-day reminder (12-01 09:00) until 12-02 08:00, after the 2-hour one.
    app.clock.set(at(2026, 12, 2, 8, 0));
    app.tick().await;
    app.tick().await;
    let r = reminders(&app, &op, id).await;
    let states: Vec<(&str, bool)> =
        r.iter().map(|x| (x["status"].as_str().unwrap(), x["late"].as_bool().unwrap())).collect();
    assert_eq!(states, vec![("skipped", false), ("sent", true), ("sent", true)]);
    let v = app.get(&op, "/api/v1/notifications?kind=drill_reminder").await.expect(200).json();
    assert_eq!(v["total"], 2, "each late reminder once");
    assert!(v["items"][0]["body"].as_str().unwrap().contains("补发"));
    // A drill already under way gets no reminder at all.
    let d2 = app
        .post(&op, "/api/v1/drills", &drill("2026-12-03T09:00:00+08:00", "2026-12-03T12:00:00+08:00"))
        .await
        .expect(201)
        .json();
    app.clock.set(at(2026, 12, 3, 10, 0));
    app.tick().await;
    let r = reminders(&app, &op, d2["id"].as_i64().unwrap()).await;
    assert!(r.iter().all(|x| x["status"] == "skipped"), "{r:?}");
    assert_eq!(app.get(&op, "/api/v1/notifications?kind=drill_reminder").await.expect(200).json()["total"], 2);
}

#[tokio::test]
async fn a_drill_is_completed_evaluated_and_reported_with_corrective_actions() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let planner = app.token("planner", MANDULATU).await;
    let d = app
        .post(&op, "/api/v1/drills", &drill("2026-12-01T09:00:00+08:00", "2026-12-01T12:00:00+08:00"))
        .await
        .expect(201)
        .json();
    let id = d["id"].as_i64().unwrap();
    app.post(
        &op,
        &format!("/api/v1/drills/{id}/evaluate"),
        &json!({"evaluator": "x", "indicators": [], "conclusion": "x"}),
    )
    .await
    .problem(409);
    app.post(&op, &format!("/api/v1/drills/{id}/start"), &json!({})).await.expect(200);
    let actual = json!({
        "participant_count": 86,
        "units": ["满都拉图镇政府", "旗消防救援大队"],
        "teams": [],
        "scenario": "蒙古国境内草原火越境，风力 6 级，火线长 3 公里",
        "outline": "接警、研判、启动二级响应、集结扑火队、打隔离带",
        "timeline": [{"at": "2026-12-01T09:05:00+08:00", "event": "接到边防站火情报告"}, {"at": "2026-12-01T09:20:00+08:00", "event": "启动二级响应"}]
    });
    let done = app.post(&op, &format!("/api/v1/drills/{id}/complete"), &actual).await.expect(200).json();
    assert_eq!(done["status"], "completed");
    let f = app
        .post(
            &op,
            &format!("/api/v1/drills/{id}/findings"),
            &json!({"problem": "风力灭火机燃油储备不足", "cause": "储备点未按季度补油"}),
        )
        .await
        .expect(201)
        .json();
    let a = app
        .post(&op, &format!("/api/v1/drills/{id}/actions"), &json!({"finding_id": f["id"], "action": "每季度检查并补足风力灭火机燃油", "owner_unit": "镇应急办", "due_on": "2026-12-20"}))
        .await
        .expect(201)
        .json();
    app.post(
        &op,
        &format!("/api/v1/drills/{id}/actions"),
        &json!({"finding_id": 999, "action": "x", "owner_unit": "y", "due_on": "2026-12-20"}),
    )
    .await
    .problem(422);
    // Evaluation: every field indicator must be scored.
    let field_set =
        app.get(&op, "/api/v1/drills/indicators").await.expect(200).json()["field"].as_array().unwrap().clone();
    let mut scores: Vec<Value> = field_set.iter().map(|i| json!({"code": i["code"], "score": 80})).collect();
    scores.pop();
    let p = app
        .post(
            &op,
            &format!("/api/v1/drills/{id}/evaluate"),
            &json!({"evaluator": "旗应急管理局", "indicators": scores, "conclusion": "基本达到目的"}),
        )
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("recovery"), "{p}");
    scores.push(json!({"code": "recovery", "score": 100}));
    scores[0]["score"] = json!(50);
    let e = app
        .post(&op, &format!("/api/v1/drills/{id}/evaluate"), &json!({"evaluator": "旗应急管理局", "indicators": scores, "conclusion": "基本达到目的", "lessons": "越境火情信息传递要快", "suggestions": "与边防站建立直通电话"}))
        .await
        .expect(200)
        .json();
    assert_eq!(e["status"], "evaluated");
    // Weighted: plan_fit (10) at 50, recovery (5) at 100, the rest (85) at 80 → 5 + 5 + 68 = 78.
    assert_eq!(e["evaluation"]["total"], 78.0);
    assert_eq!(e["evaluation"]["grade"], "良好");
    // Corrective action: open → done → verified (verifying takes a planner or admin).
    let aid = a["id"].as_i64().unwrap();
    app.patch(&op, &format!("/api/v1/actions/{aid}"), &json!({"status": "verified"})).await.problem(409);
    app.patch(&op, &format!("/api/v1/actions/{aid}"), &json!({"status": "done"})).await.expect(200);
    app.patch(&op, &format!("/api/v1/actions/{aid}"), &json!({"status": "verified"})).await.problem(403);
    let v =
        app.patch(&planner, &format!("/api/v1/actions/{aid}"), &json!({"status": "verified"})).await.expect(200).json();
    assert_eq!(v["status"], "verified");
    assert_eq!(app.audit_rows("corrective_action", &aid.to_string()).await.len(), 3);
    // Overdue actions are listed.
    app.post(
        &op,
        &format!("/api/v1/drills/{id}/actions"),
        &json!({"action": "修订预案中越境火情报告流程", "owner_unit": "镇应急办", "due_on": "2026-11-30"}),
    )
    .await
    .expect(201);
    let overdue = app.get(&op, "/api/v1/actions?overdue=true").await.expect(200).json();
    assert_eq!(overdue["total"], 0, "not yet overdue on 11-27");
    app.clock.set(at(2026, 12, 1, 9, 0));
    let overdue = app.get(&op, "/api/v1/actions?overdue=true").await.expect(200).json();
    assert_eq!(overdue["total"], 1);
    // The summary report.
    let r = app.get(&op, &format!("/api/v1/drills/{id}/report")).await.expect(200);
    assert!(r.content_type.starts_with("text/html"));
    for part in [
        "演练总结报告",
        "一、演练目的",
        "二、时间与地点",
        "三、参演单位与人员",
        "86 人",
        "四、演练概况",
        "蒙古国境内草原火越境",
        "五、发现的问题及原因",
        "风力灭火机燃油储备不足",
        "六、经验教训",
        "越境火情信息传递要快",
        "七、改进建议",
        "与边防站建立直通电话",
        "良好",
    ] {
        assert!(r.text.contains(part), "report lacks {part}");
    }
    let actions: Vec<String> = app.audit_rows("drill", &id.to_string()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(actions, vec!["evaluate", "complete", "start", "create"]);
}

#[tokio::test]
async fn a_recurring_drill_keeps_one_occurrence_ahead() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let mut body = drill("2026-12-01T09:00:00+08:00", "2026-12-01T11:00:00+08:00");
    body["recurrence"] = json!("0 9 1 */3 *");
    let first = app.post(&op, "/api/v1/drills", &body).await.expect(201).json();
    let id = first["id"].as_i64().unwrap();
    assert_eq!(first["series_id"], id);
    let list = app.get(&op, "/api/v1/drills").await.expect(200).json();
    let starts: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|d| d["starts_at"].as_str().unwrap()).collect();
    assert_eq!(starts, vec!["2026-12-01T09:00:00+08:00", "2027-01-01T09:00:00+08:00"]);
    let second = &list["items"][1];
    assert_eq!(second["series_id"], id);
    assert_eq!(second["ends_at"], "2027-01-01T11:00:00+08:00");
    assert_eq!(
        reminders(&app, &op, second["id"].as_i64().unwrap()).await.len(),
        3,
        "each occurrence has its own reminders"
    );
    // When the first leaves the schedule, the next-but-one is materialised.
    app.post(&op, &format!("/api/v1/drills/{id}/start"), &json!({})).await.expect(200);
    let list = app.get(&op, "/api/v1/drills").await.expect(200).json();
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][2]["starts_at"], "2027-04-01T09:00:00+08:00");
}

#[tokio::test]
async fn the_calendar_feed_is_valid_icalendar_behind_a_revocable_feed_token() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let d = app
        .post(&op, "/api/v1/drills", &drill("2026-12-01T09:00:00+08:00", "2026-12-01T12:00:00+08:00"))
        .await
        .expect(201)
        .json();
    let mut other = drill("2026-12-02T09:00:00+08:00", "2026-12-02T12:00:00+08:00");
    other["region"] = json!(CHAGANAOBAO);
    other["title"] = json!("查干敖包镇雪灾救援桌面推演; 含逗号, 和分号");
    other["form"] = json!("tabletop");
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/drills", &other).await.expect(201);
    let issued = app.post(&op, "/api/v1/feed-tokens", &json!({})).await.expect(201).json();
    let path = issued["path"].as_str().unwrap().to_string();
    let r = app.send(reqwest::Method::GET, &path, None, None).await.expect(200);
    assert!(r.content_type.starts_with("text/calendar"));
    assert!(r.text.contains("\r\n"), "CRLF line endings");
    assert!(r.text.lines().all(|l| l.len() <= 76), "lines folded at 75 octets");
    let unfolded = icalendar::parser::unfold(&r.text);
    let cal = icalendar::parser::read_calendar(&unfolded).expect("an independent parser reads the feed");
    let events: Vec<_> = cal.components.iter().filter(|c| c.name == "VEVENT").collect();
    assert_eq!(events.len(), 1, "only the township's drill");
    let ev = events[0];
    assert_eq!(ev.find_prop("UID").unwrap().val.as_str(), format!("drill-{}@yingji", d["id"]));
    let start = ev.find_prop("DTSTART").unwrap();
    assert_eq!(start.val.as_str(), "20261201T090000");
    assert!(
        start
            .params
            .iter()
            .any(|p| p.key.as_str() == "TZID" && p.val.as_ref().map(|v| v.as_str()) == Some("Asia/Shanghai"))
    );
    let alarms: Vec<String> = ev
        .components
        .iter()
        .filter(|c| c.name == "VALARM")
        .map(|a| a.find_prop("TRIGGER").unwrap().val.as_str().to_string())
        .collect();
    assert_eq!(alarms, vec!["-PT10080M", "-PT1440M", "-PT120M"]);
    assert!(cal.components.iter().any(|c| c.name == "VTIMEZONE"));
    // The banner's feed holds both, with escaped text, and the UID does not change on update.
    let banner = app.post(&admin, "/api/v1/feed-tokens", &json!({})).await.expect(201).json();
    let text = app.send(reqwest::Method::GET, banner["path"].as_str().unwrap(), None, None).await.expect(200).text;
    let unfolded = icalendar::parser::unfold(&text);
    let cal = icalendar::parser::read_calendar(&unfolded).unwrap();
    let events: Vec<_> = cal.components.iter().filter(|c| c.name == "VEVENT").collect();
    assert_eq!(events.len(), 2);
    let summary = events[1].find_prop("SUMMARY").unwrap().val.as_str().to_string();
    // Escaped on the wire, read back intact.
    assert!(unfolded.contains("桌面推演\\; 含逗号\\, 和分号"));
    assert_eq!(summary, "【桌面推演】查干敖包镇雪灾救援桌面推演; 含逗号, 和分号");
    // Revoked or unknown tokens get nothing.
    let fid = issued["id"].as_i64().unwrap();
    app.delete(&op, &format!("/api/v1/feed-tokens/{fid}")).await.expect(204);
    app.send(reqwest::Method::GET, &path, None, None).await.problem(401);
    app.send(reqwest::Method::GET, "/api/v1/drills.ics?token=yj_nope", None, None).await.problem(401);
    app.send(reqwest::Method::GET, "/api/v1/drills.ics", None, None).await.problem(401);
    // A Bearer token works too.
    app.get(&op, "/api/v1/drills.ics").await.expect(200);
}

#[tokio::test]
async fn two_instances_deliver_every_drill_reminder_exactly_once() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let rx = crate::receiver::Receiver::start(0).await;
    let a = TestApp::spawn_with(Some(db), &url, |c| c.scheduler = true).await;
    let b = TestApp::spawn_with(None, &url, |c| c.scheduler = true).await;
    let admin = a.admin().await;
    a.post(
        &admin,
        "/api/v1/channels",
        &json!({"region": MANDULATU, "kind": "webhook", "name": "镇应急办", "url": rx.url("/hook")}),
    )
    .await
    .expect(201);
    for i in 0..10 {
        let mut body = drill("2026-12-01T09:00:00+08:00", "2026-12-01T12:00:00+08:00");
        body["title"] = json!(format!("演练{i}"));
        a.post(&admin, "/api/v1/drills", &body).await.expect(201);
    }
    // Both instances wake after the 1-day and 2-hour reminders fell due (the drills still ahead).
    for app in [&a, &b] {
        app.clock.set(at(2026, 12, 1, 8, 0));
        app.state.wake.notify_one();
    }
    let reminders = || rx.received().into_iter().filter(|r| r.body["kind"] == "drill_reminder").collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reminders().len() < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = reminders();
    let mut keys: Vec<String> = got.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 20, "ten drills, two reminders each");
    assert_eq!(got.len(), 20, "none twice");
}
