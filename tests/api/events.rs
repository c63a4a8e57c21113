//! Events (突发事件应对): a 白灾 in 满都拉图镇 from the first report to the assessment, and the
//! test world the other event tests share (`events_drill`: the same run as a drill;
//! `events_watch`: the first-report deadline, escalation, double dispatch and concurrent
//! decisions). The clock stands at 2026-11-27 08:00 Asia/Shanghai.

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::id_number;

pub(crate) const QUILT: &str = "1999905";
pub(crate) const YURT: &str = "1999903";
/// The banner seat: where the event happens.
pub(crate) const SCENE: (f64, f64) = (113.64402, 43.85223);

pub(crate) fn north(km: f64) -> f64 {
    SCENE.1 + km / 111.195
}

/// A township 白灾 plan with levels 2 (100 quilts, 3 snow rescuers within 50 km) and 1 (300, 6).
pub(crate) fn snow_plan() -> Value {
    json!({
        "title": "满都拉图镇白灾应急预案", "kind": "township", "region": MANDULATU,
        "owning_unit": "满都拉图镇人民政府", "lead_department": "镇应急办", "hazards": ["snow_disaster"],
        "sections": {"organization": "镇白灾应急指挥部统一指挥。", "prevention": "气象预警与牧户排查。", "response": "分级响应。", "support": "棉被、饲草料与除雪保障。", "recovery": "棚圈修复。"},
        "response_levels": [
            {"level": 1, "criteria": "大范围牧户被困", "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 300, "unit": "床", "within_km": 50}], "forces": [{"specialty": "snow_rescue", "headcount": 6, "within_km": 50}]},
            {"level": 2, "criteria": "多户牧民被困", "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 100, "unit": "床", "within_km": 50}], "forces": [{"specialty": "snow_rescue", "headcount": 3, "within_km": 50}]}
        ]
    })
}

/// What a test world holds.
pub(crate) struct World {
    pub(crate) admin: String,
    pub(crate) planner: String,
    pub(crate) operator: String,
    pub(crate) plan_id: i64,
    pub(crate) d1: i64,
    pub(crate) d2: i64,
    pub(crate) ag: i64,
    pub(crate) t1_members: Vec<i64>,
}

pub(crate) async fn depot(app: &TestApp, t: &str, code: &str, kind: &str, km: f64, qty: i64, mode: &str) -> i64 {
    let body = json!({"code": code, "name": format!("{code}储备点"), "region_code": MANDULATU, "kind": kind, "lon": SCENE.0, "lat": north(km)});
    let id = app.post(t, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let mv = json!({"kind": "receive", "item_code": QUILT, "quantity": qty, "batch": format!("{code}-B1"), "reserve_mode": mode});
    app.post(t, &format!("/api/v1/depots/{id}/movements"), &mv).await.expect(201);
    id
}

pub(crate) async fn team(app: &TestApp, admin: &str, code: &str, region: &str, km: f64, n: u32, seq0: u32) -> Vec<i64> {
    app.post(admin, "/api/v1/teams", &json!({"code": code, "name": format!("{code}救援队"), "org_type": "volunteer_team", "region_code": region, "lon": SCENE.0, "lat": north(km), "specialties": [{"specialty": "snow_rescue"}]})).await.expect(201);
    app.post(admin, &format!("/api/v1/teams/{code}/approve"), &json!({})).await.expect(200);
    let mut ids = Vec::new();
    for i in 0..n {
        let seq = seq0 + i;
        let v = app
            .post(admin, &format!("/api/v1/teams/{code}/members"), &json!({
                "name": format!("队员{seq}"), "id_number": id_number(seq), "skills": ["snow_rescue"],
                "insurance": [{"insurer": "人保财险", "policy_number": format!("P{seq}"), "start": "2026-01-01", "end": "2027-12-31"}]
            }))
            .await
            .expect(201)
            .json();
        ids.push(v["id"].as_i64().unwrap());
    }
    ids
}

/// The plan in force, three depots (80 and 50 quilts within 50 km, 200 agreement quilts) and
/// three teams (T1: 2 people at 5 km, T2: 3 at 15 km, T3 of 查干敖包镇: 3 at 40 km).
pub(crate) async fn world(app: &TestApp) -> World {
    let admin = app.admin().await;
    let planner = app.token("planner", MANDULATU).await;
    let operator = app.token("operator", MANDULATU).await;
    let plan_id = app.post(&admin, "/api/v1/plans", &snow_plan()).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(&admin, &format!("/api/v1/plans/{plan_id}/submit"), &json!({})).await.expect(200);
    app.post(
        &admin,
        &format!("/api/v1/plans/{plan_id}/approve"),
        &json!({"issued_on": "2026-10-08", "issuing_body": "满都拉图镇人民政府"}),
    )
    .await
    .expect(200);
    let d1 = depot(app, &admin, "D1", "township_point", 10.0, 80, "physical").await;
    let d2 = depot(app, &admin, "D2", "township_point", 20.0, 50, "physical").await;
    let ag = depot(app, &admin, "AG", "agreement_enterprise", 30.0, 200, "agreement").await;
    let t1_members = team(app, &admin, "T1", MANDULATU, 5.0, 2, 1).await;
    team(app, &admin, "T2", MANDULATU, 15.0, 3, 10).await;
    team(app, &admin, "T3", CHAGANAOBAO, 40.0, 3, 20).await;
    World { admin, planner, operator, plan_id, d1, d2, ag, t1_members }
}

pub(crate) fn event_body(exercise: Option<i64>) -> Value {
    let mut v = json!({
        "hazard": "snow_disaster", "title": "满都拉图镇北部白灾", "occurred_at": "2026-11-27T06:30:00+08:00",
        "region_code": MANDULATU, "place": "白音哈拉图嘎查", "lon": SCENE.0, "lat": SCENE.1,
        "description": "连续降雪积雪 40 厘米，12 户牧民被困，牲畜无法采食", "trapped": 30, "affected_people": 46,
        "affected_households": 12, "affected_livestock": 5200, "source": "嘎查长电话报告", "reporter": "嘎查长 巴图",
        "severity": "general"
    });
    if let Some(d) = exercise {
        v["exercise"] = json!(true);
        v["drill_id"] = json!(d);
    }
    v
}

pub(crate) async fn balance(app: &TestApp, depot: i64) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM stock_batches WHERE depot_id = $1 AND item_code = $2"
    )
    .bind(depot)
    .bind(QUILT)
    .fetch_one(p)
    .await
    .unwrap())
}

/// Outbox rows (in-app deliveries) caused by an event: (kind, region, title), in order.
pub(crate) async fn messages(app: &TestApp, event: i64) -> Vec<(String, String, String)> {
    yingji::with_db!(&app.state.db, |p| {
        sqlx::query_as::<_, (String, String, String)>(
        "SELECT kind, region_code, title FROM outbox WHERE source_type = 'event' AND source_id = $1 AND channel_id IS NULL ORDER BY id"
    )
    .bind(event.to_string())
    .fetch_all(p)
    .await
    .unwrap()
    })
}

pub(crate) fn need<'a>(board: &'a Value, kind: &str) -> &'a Value {
    board["resource_plan"].as_array().unwrap().iter().find(|n| n["kind"] == kind).unwrap()
}

pub(crate) fn lines_of<'a>(board: &'a Value, code: &str) -> Vec<&'a Value> {
    board["lines"].as_array().unwrap().iter().filter(|l| l["code"] == code && l["state"] != "superseded").collect()
}

pub(crate) fn proposed_ids(board: &Value) -> Vec<i64> {
    board["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "proposed")
        .map(|l| l["id"].as_i64().unwrap())
        .collect()
}

/// Runs the whole response on a fresh event; returns (event id, board at the end).
pub(crate) async fn respond(app: &TestApp, w: &World, drill: Option<i64>) -> (i64, Value) {
    let b = app.post(&w.operator, "/api/v1/events", &event_body(drill)).await.expect(201).json();
    let id = b["event"]["id"].as_i64().unwrap();
    let base = format!("/api/v1/events/{id}");
    // A 一般 natural disaster known at 08:00: 初报 due within 2 hours.
    assert_eq!(b["event"]["first_report_due"], "2026-11-27T10:00:00+08:00");
    assert_eq!(b["event"]["status"], "reported");
    app.post(&w.operator, &format!("{base}/reports"), &json!({"kind": "follow_up", "content": "x"})).await.problem(422);
    let b = app
        .post(
            &w.operator,
            &format!("{base}/reports"),
            &json!({"kind": "initial", "content": "12 户牧民被困，已组织嘎查干部前往", "trapped": 35}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(b["event"]["first_report_state"], "done");
    assert_eq!(b["event"]["trapped"], 35);
    app.post(&w.operator, &format!("{base}/reports"), &json!({"kind": "initial", "content": "again"}))
        .await
        .problem(409);

    // The township plan is proposed first.
    let plans = app.get(&w.operator, &format!("{base}/plans")).await.expect(200).json();
    assert_eq!(plans["items"][0]["plan_id"], w.plan_id);
    // Activate level 2: operators may not, planners of the township may.
    app.post(&w.operator, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2})).await.problem(403);
    app.post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 3})).await.problem(422);
    let b = app
        .post(
            &w.planner,
            &format!("{base}/activate"),
            &json!({"plan_id": w.plan_id, "level": 2, "reason": "被困牧户超过 10 户"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(b["event"]["status"], "responding");
    assert_eq!(b["event"]["level"], 2);
    app.post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2})).await.problem(409);
    // From the event's point: D1 80 + D2 20 quilts; T1 2 + T2 1 people.
    let q = need(&b, "supply");
    assert_eq!((q["required"].as_i64(), q["proposed"].as_i64(), q["gap"].as_i64()), (Some(100), Some(100), Some(0)));
    assert_eq!(lines_of(&b, "D1")[0]["quantity"], 80);
    assert_eq!(lines_of(&b, "D2")[0]["quantity"], 20);
    let f = need(&b, "force");
    assert_eq!((f["required"].as_i64(), f["proposed"].as_i64(), f["gap"].as_i64()), (Some(3), Some(3), Some(0)));
    assert_eq!(lines_of(&b, "T1")[0]["quantity"], 2);
    assert_eq!(lines_of(&b, "T2")[0]["quantity"], 1);
    assert!(lines_of(&b, "T3").is_empty());

    // Dispatch everything proposed.
    let ids = proposed_ids(&b);
    assert_eq!(ids.len(), 4);
    let d = app
        .post(&w.planner, &format!("{base}/dispatch"), &json!({"lines": ids, "report_at": "2026-11-27T09:30:00+08:00"}))
        .await
        .expect(200)
        .json();
    assert_eq!(d["callups"].as_array().unwrap().len(), 2);
    assert_eq!(d["movements"].as_array().unwrap().len(), if drill.is_some() { 0 } else { 2 });
    app.post(&w.planner, &format!("{base}/dispatch"), &json!({"lines": [ids[0]]})).await.problem(409);

    // T1 accepts with both members, T2 declines.
    let b = app.get(&w.operator, &base).await.expect(200).json();
    let t1 = lines_of(&b, "T1")[0]["callup_id"].as_i64().unwrap();
    let t2 = lines_of(&b, "T2")[0]["callup_id"].as_i64().unwrap();
    let c = app.get(&w.operator, &format!("/api/v1/callups/{t1}")).await.expect(200).json();
    assert_eq!(c["purpose"], if drill.is_some() { "drill" } else { "event" });
    assert!(c["reference"].as_str().unwrap().contains("满都拉图镇北部白灾"));
    app.clock.advance(chrono::Duration::minutes(10));
    app.post(&w.operator, &format!("/api/v1/callups/{t1}/accept"), &json!({"members": w.t1_members})).await.expect(200);
    app.post(&w.operator, &format!("/api/v1/callups/{t2}/decline"), &json!({"reason": "车辆被雪困住"}))
        .await
        .expect(200);
    let b = app.get(&w.operator, &base).await.expect(200).json();
    assert_eq!(lines_of(&b, "T1")[0]["state"], "accepted");
    assert_eq!(lines_of(&b, "T2")[0]["state"], "declined");
    // The plan shows the gap the decline left and the next source: T3 at 40 km.
    let f = need(&b, "force");
    assert_eq!((f["committed"].as_i64(), f["gap"].as_i64()), (Some(2), Some(1)));
    assert_eq!(f["next_sources"][0]["code"], "T3");
    assert_eq!(f["next_sources"][0]["take"], 1);

    // T1 on site; D1's quilts arrive.
    app.clock.advance(chrono::Duration::minutes(50));
    let t1_line = lines_of(&b, "T1")[0]["id"].as_i64().unwrap();
    let d1_line = lines_of(&b, "D1")[0]["id"].as_i64().unwrap();
    let t2_line = lines_of(&b, "T2")[0]["id"].as_i64().unwrap();
    app.post(&w.operator, &format!("{base}/lines/{t2_line}/arrive"), &json!({})).await.problem(409);
    app.post(&w.operator, &format!("{base}/lines/{t1_line}/arrive"), &json!({})).await.expect(200);
    app.post(&w.operator, &format!("{base}/lines/{d1_line}/arrive"), &json!({})).await.expect(200);

    // A herder's yurts are requisitioned for the trapped families.
    let r = app
        .post(&w.operator, "/api/v1/requisitions", &json!({"depot_id": w.d1, "owner": "牧民 额尔敦", "item_code": YURT, "quantity": 2, "condition": "完好", "due_return": "2026-12-10"}))
        .await
        .expect(201)
        .json();
    let req = r["id"].as_i64().unwrap();
    app.post(&w.operator, &format!("{base}/requisitions"), &json!({"requisition_id": req})).await.expect(201);

    // Raise to level 1: 300 quilts and 6 people; what is committed counts.
    let b = app
        .post(&w.planner, &format!("{base}/level"), &json!({"level": 1, "reason": "被困牧户增至 30 户"}))
        .await
        .expect(200)
        .json();
    assert_eq!(b["event"]["level"], 1);
    let q = need(&b, "supply");
    assert_eq!(
        (q["required"].as_i64(), q["committed"].as_i64(), q["proposed"].as_i64(), q["gap"].as_i64()),
        (Some(300), Some(100), Some(30), Some(170))
    );
    assert_eq!(q["next_sources"][0]["source"], "agreement");
    assert_eq!(q["next_sources"][0]["code"], "AG");
    assert_eq!(q["next_sources"][0]["take"], 170);
    let f = need(&b, "force");
    assert_eq!(
        (f["required"].as_i64(), f["committed"].as_i64(), f["proposed"].as_i64(), f["gap"].as_i64()),
        (Some(6), Some(2), Some(3), Some(1))
    );
    assert_eq!(lines_of(&b, "T3")[0]["state"], "proposed");
    assert_eq!(f["next_sources"].as_array().unwrap().last().unwrap()["source"], "request_support");
    assert_eq!(b["activations"].as_array().unwrap().len(), 2);
    assert_eq!(b["activations"][1]["change"], "raise");

    // Terminate: T1 stands down, its members are available again.
    app.clock.advance(chrono::Duration::hours(5));
    let b = app
        .post(&w.planner, &format!("{base}/terminate"), &json!({"decision": "被困牧民全部转移安置，响应终止"}))
        .await
        .expect(200)
        .json();
    assert_eq!(b["event"]["status"], "terminated");
    assert_eq!(lines_of(&b, "T1")[0]["state"], "returned");
    let t3: Vec<&Value> = b["lines"].as_array().unwrap().iter().filter(|l| l["code"] == "T3").collect();
    assert_eq!(t3[0]["state"], "superseded");
    let c = app.get(&w.operator, &format!("/api/v1/callups/{t1}")).await.expect(200).json();
    assert_eq!(c["status"], "closed");
    for m in &w.t1_members {
        assert_eq!(app.get(&w.admin, &format!("/api/v1/members/{m}")).await.expect(200).json()["status"], "available");
    }
    app.post(&w.planner, &format!("{base}/terminate"), &json!({"decision": "again"})).await.problem(409);

    // Close out: the yurts go back; compensation stays to decide.
    let co = app.get(&w.operator, &format!("{base}/close-out")).await.expect(200).json();
    assert_eq!(co["to_return"][0]["id"], req);
    assert_eq!(co["callup_compensation"][0]["callup_id"], t1);
    app.post(&w.operator, &format!("/api/v1/requisitions/{req}/return"), &json!({"condition": "一顶顶棚破损"}))
        .await
        .expect(200);
    let co = app.get(&w.operator, &format!("{base}/close-out")).await.expect(200).json();
    assert_eq!(co["to_return"].as_array().unwrap().len(), 0);
    assert_eq!(co["to_compensate"][0]["id"], req);
    app.post(
        &w.operator,
        &format!("{base}/tasks"),
        &json!({"title": "修复倒塌棚圈 6 处", "owner_unit": "镇农牧业服务中心", "due_on": "2027-04-30"}),
    )
    .await
    .expect(201);

    // Reports.
    let s = app.get(&w.operator, &format!("{base}/report")).await.expect(200);
    assert!(s.content_type.starts_with("text/html"));
    for want in ["态势报告", "满都拉图镇北部白灾", "二级", "一级", "车辆被雪困住", "响应终止", "T3救援队"]
    {
        assert!(s.text.contains(want), "situation report lacks {want}");
    }
    app.post(&w.operator, &format!("{base}/assessment"), &json!({"causes": "c", "summary": "s"})).await.problem(403);
    let lessons = json!([
        {"problem": "二级响应的救援力量在 50 km 内不足", "cause": "雪灾救援队伍少", "revise_plan": true,
         "action": {"action": "与查干敖包镇签订队伍互助协议", "owner_unit": "镇应急办", "due_on": "2027-03-31"}}
    ]);
    let b = app
        .post(
            &w.planner,
            &format!("{base}/assessment"),
            &json!({"causes": "强降雪叠加低温", "summary": "响应及时，队伍不足", "lessons": lessons}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(b["assessment"]["lessons"][0]["revise_plan"], true);
    let a = app.get(&w.operator, &format!("{base}/assessment/report")).await.expect(200);
    for want in [
        "调查评估报告",
        "获知至初报",
        "启动响应至首支队伍到场：1 小时 0 分钟",
        "强降雪叠加低温",
        "与查干敖包镇签订队伍互助协议",
    ] {
        assert!(a.text.contains(want), "assessment report lacks {want}: {}", a.text);
    }
    if drill.is_some() {
        assert!(s.text.contains("【演练】") && a.text.contains("【演练】"));
    } else {
        assert!(!s.text.contains("【演练】") && !a.text.contains("【演练】"));
    }
    (id, b)
}

#[tokio::test]
async fn a_snow_disaster_runs_from_first_report_to_assessment() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let (id, b) = respond(&app, &w, None).await;

    // Stock: D1 sent its 80, D2 its 20; the agreement depot was only proposed.
    assert_eq!((balance(&app, w.d1).await, balance(&app, w.d2).await, balance(&app, w.ag).await), (0, 30, 200));
    let reference = format!("事件{id}：满都拉图镇北部白灾");
    let moved: Vec<(String, i64)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT kind, quantity FROM stock_movements WHERE reference = $1 ORDER BY id"
    )
    .bind(&reference)
    .fetch_all(p)
    .await
    .unwrap());
    assert_eq!(moved, vec![("dispatch".to_string(), -80), ("dispatch".to_string(), -20)]);
    // Call-ups: T1 closed, T2 declined, nothing else.
    let callups: Vec<(String, String, String)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT t.code, c.purpose, c.status FROM callups c JOIN teams t ON t.id = c.team_id ORDER BY c.id"
    )
    .fetch_all(p)
    .await
    .unwrap());
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(callups, vec![s("T1", "event", "closed"), s("T2", "event", "declined")]);
    // Notifications: opened, activated, two call-ups, level raised (to 查干敖包镇 too, whose
    // team T3 the new plan involves), terminated.
    let m: Vec<(String, String)> = messages(&app, id).await.into_iter().map(|(k, r, _)| (k, r)).collect();
    let p = |k: &str, r: &str| (k.to_string(), r.to_string());
    assert_eq!(
        m,
        vec![
            p("event_opened", MANDULATU),
            p("event_opened", BANNER),
            p("event_activated", MANDULATU),
            p("event_activated", BANNER),
            p("event_callup", MANDULATU),
            p("event_callup", MANDULATU),
            p("event_level", MANDULATU),
            p("event_level", BANNER),
            p("event_level", CHAGANAOBAO),
            p("event_terminated", MANDULATU),
            p("event_terminated", BANNER),
        ]
    );
    assert!(messages(&app, id).await.iter().all(|(_, _, t)| !t.contains("演练")));
    // Audit: every step, in order.
    let actions: Vec<String> =
        app.audit_rows("event", &id.to_string()).await.into_iter().rev().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        [
            "create",
            "report",
            "activate",
            "dispatch",
            "arrive",
            "arrive",
            "link_requisition",
            "raise",
            "terminate",
            "task",
            "assess"
        ]
    );
    // The lesson started a revision of the plan, and became a corrective task.
    let plan = app.get(&w.admin, &format!("/api/v1/plans/{}", w.plan_id)).await.expect(200).json();
    assert_eq!(plan["version"]["version"], 2);
    assert_eq!(plan["version"]["revision_reason"], "drill_or_event_findings");
    assert!(b["tasks"].as_array().unwrap().iter().any(|t| t["kind"] == "corrective"));
    // The timeline holds every step in order, the team's answers included.
    let kinds: Vec<&str> = b["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "open",
            "report",
            "activate",
            "dispatch",
            "dispatch",
            "callup",
            "callup",
            "callup_answer",
            "callup_answer",
            "arrive",
            "arrive",
            "requisition",
            "level",
            "terminate",
            "task",
            "assessment"
        ]
    );
    // Jurisdiction: another township sees nothing of it.
    let other = app.token("planner", CHAGANAOBAO).await;
    app.get(&other, &format!("/api/v1/events/{id}")).await.problem(403);
    assert_eq!(app.get(&other, "/api/v1/events").await.expect(200).json()["total"], 0);
}
