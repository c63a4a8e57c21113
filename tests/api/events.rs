//! Events (突发事件应对): a 白灾 in 满都拉图镇 from the first report to the assessment, the same
//! run as a drill, the first-report deadline, escalation of an unanswered call-up, and a double
//! dispatch. The clock stands at 2026-11-27 08:00 Asia/Shanghai.

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::run_check;

const QUILT: &str = "1999905";
const YURT: &str = "1999903";
/// The banner seat: where the event happens.
const SCENE: (f64, f64) = (113.64402, 43.85223);

fn north(km: f64) -> f64 {
    SCENE.1 + km / 111.195
}

/// A township 白灾 plan with levels 2 (100 quilts, 3 snow rescuers within 50 km) and 1 (300, 6).
fn snow_plan() -> Value {
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
struct World {
    admin: String,
    planner: String,
    operator: String,
    plan_id: i64,
    d1: i64,
    d2: i64,
    ag: i64,
    t1_members: Vec<i64>,
}

async fn depot(app: &TestApp, t: &str, code: &str, kind: &str, km: f64, qty: i64, mode: &str) -> i64 {
    let body = json!({"code": code, "name": format!("{code}储备点"), "region_code": MANDULATU, "kind": kind, "lon": SCENE.0, "lat": north(km)});
    let id = app.post(t, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let mv = json!({"kind": "receive", "item_code": QUILT, "quantity": qty, "batch": format!("{code}-B1"), "reserve_mode": mode});
    app.post(t, &format!("/api/v1/depots/{id}/movements"), &mv).await.expect(201);
    id
}

async fn team(app: &TestApp, admin: &str, code: &str, region: &str, km: f64, n: u32, seq0: u32) -> Vec<i64> {
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
async fn world(app: &TestApp) -> World {
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

fn event_body(exercise: Option<i64>) -> Value {
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

async fn balance(app: &TestApp, depot: i64) -> i64 {
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
async fn messages(app: &TestApp, event: i64) -> Vec<(String, String, String)> {
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

fn need<'a>(board: &'a Value, kind: &str) -> &'a Value {
    board["resource_plan"].as_array().unwrap().iter().find(|n| n["kind"] == kind).unwrap()
}

fn lines_of<'a>(board: &'a Value, code: &str) -> Vec<&'a Value> {
    board["lines"].as_array().unwrap().iter().filter(|l| l["code"] == code && l["state"] != "superseded").collect()
}

fn proposed_ids(board: &Value) -> Vec<i64> {
    board["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "proposed")
        .map(|l| l["id"].as_i64().unwrap())
        .collect()
}

/// Runs the whole response on a fresh event; returns (event id, board at the end).
async fn respond(app: &TestApp, w: &World, drill: Option<i64>) -> (i64, Value) {
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

/// Open findings as (rule, region, subject, facts), sorted.
async fn open_findings(app: &TestApp, admin: &str) -> Vec<String> {
    let v = app.get(admin, "/api/v1/readiness?limit=1000").await.expect(200).json();
    let mut out: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {} {} {}", f["rule"], f["region_code"], f["subject_id"], f["facts"]))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_same_run_as_a_drill_moves_no_stock_and_feeds_the_drill() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let drill = json!({
        "title": "满都拉图镇白灾应急演练", "form": "field", "scope": "comprehensive", "purpose": "test",
        "objective": "检验白灾预案的响应启动、物资调度和队伍集结", "region": MANDULATU, "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府"], "place_name": "白音哈拉图嘎查",
        "starts_at": "2026-11-27T08:00:00+08:00", "ends_at": "2026-11-27T18:00:00+08:00"
    });
    let drill_id = app.post(&w.admin, "/api/v1/drills", &drill).await.expect(201).json()["id"].as_i64().unwrap();
    // Drill mode needs a drill, and only drill mode may name one.
    let mut bad = event_body(None);
    bad["exercise"] = json!(true);
    app.post(&w.operator, "/api/v1/events", &bad).await.problem(422);
    run_check(&app).await;
    let findings_before = open_findings(&app, &w.admin).await;
    assert!(!findings_before.is_empty());

    let (id, _) = respond(&app, &w, Some(drill_id)).await;

    // No stock moved, no real call-up exists.
    assert_eq!((balance(&app, w.d1).await, balance(&app, w.d2).await, balance(&app, w.ag).await), (80, 50, 200));
    let dispatches: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM stock_movements WHERE kind = 'dispatch'"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(dispatches, 0);
    let purposes: Vec<String> =
        yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT purpose FROM callups ORDER BY id")
            .fetch_all(p)
            .await
            .unwrap());
    assert_eq!(purposes, ["drill", "drill"]);
    // Every message is labelled 【演练】.
    let m = messages(&app, id).await;
    assert_eq!(m.len(), 11);
    assert!(m.iter().all(|(_, _, t)| t.starts_with("【演练】")), "{m:?}");
    // Readiness findings are exactly as before.
    run_check(&app).await;
    assert_eq!(open_findings(&app, &w.admin).await, findings_before);
    // Real and exercise events are listed apart.
    assert_eq!(app.get(&w.admin, "/api/v1/events?exercise=false").await.expect(200).json()["total"], 0);
    assert_eq!(app.get(&w.admin, "/api/v1/events?exercise=true").await.expect(200).json()["total"], 1);
    // The assessment's lesson is the drill's finding and corrective action, in its report.
    let report = app.get(&w.admin, &format!("/api/v1/drills/{drill_id}/report")).await.expect(200).text;
    assert!(report.contains("二级响应的救援力量在 50 km 内不足"), "{report}");
    assert!(report.contains("与查干敖包镇签订队伍互助协议"));
}

/// The messages of one kind an event caused, as "region title".
async fn of_kind(app: &TestApp, event: i64, kind: &str) -> Vec<String> {
    messages(app, event).await.into_iter().filter(|(k, _, _)| k == kind).map(|(_, r, t)| format!("{r} {t}")).collect()
}

async fn simple_event(app: &TestApp, t: &str, hazard: &str, severity: &str) -> i64 {
    let mut b = event_body(None);
    b["hazard"] = json!(hazard);
    b["severity"] = json!(severity);
    app.post(t, "/api/v1/events", &b).await.expect(201).json()["event"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn an_overdue_first_report_is_flagged_and_notified_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = simple_event(&app, &admin, "snow_disaster", "general").await;
    // A non-natural 重大 event gets the local placeholder of 60 minutes.
    let other = simple_event(&app, &admin, "social_security", "serious").await;
    let b = app.get(&admin, &format!("/api/v1/events/{other}")).await.expect(200).json();
    assert_eq!(b["event"]["first_report_due"], "2026-11-27T09:00:00+08:00");
    let report = json!({"kind": "initial", "content": "已核实"});
    app.post(&admin, &format!("/api/v1/events/{other}/reports"), &report).await.expect(201);

    app.clock.advance(chrono::Duration::minutes(119));
    app.tick().await;
    assert!(of_kind(&app, id, "event_report_overdue").await.is_empty());
    let b = app.get(&admin, &format!("/api/v1/events/{id}")).await.expect(200).json();
    assert_eq!(b["first_report_overdue"], false);
    app.clock.advance(chrono::Duration::minutes(2));
    app.tick().await;
    assert_eq!(
        of_kind(&app, id, "event_report_overdue").await,
        [format!("{MANDULATU} 初报逾期"), format!("{BANNER} 初报逾期")]
    );
    let b = app.get(&admin, &format!("/api/v1/events/{id}")).await.expect(200).json();
    assert_eq!(b["event"]["first_report_state"], "overdue");
    assert_eq!(b["first_report_overdue"], true);
    app.clock.advance(chrono::Duration::minutes(5));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_report_overdue").await.len(), 2, "notified once");
    // The late report closes the deadline and is marked late on the timeline.
    let b = app.post(&admin, &format!("/api/v1/events/{id}/reports"), &report).await.expect(201).json();
    assert_eq!(b["event"]["first_report_state"], "done");
    assert!(b["timeline"].as_array().unwrap().iter().any(|e| e["text"].as_str().unwrap().contains("初报（迟报）")));
    assert_eq!(messages(&app, other).await.iter().filter(|(k, _, _)| k == "event_report_overdue").count(), 0);
}

#[tokio::test]
async fn an_unanswered_callup_escalates_to_the_teams_region_then_the_banner() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = simple_event(&app, &w.operator, "snow_disaster", "general").await;
    let base = format!("/api/v1/events/{id}");
    let b = app
        .post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2}))
        .await
        .expect(200)
        .json();
    let t2 = lines_of(&b, "T2")[0]["id"].as_i64().unwrap();
    let t1 = lines_of(&b, "T1")[0]["id"].as_i64().unwrap();
    app.post(&w.planner, &format!("{base}/dispatch"), &json!({"lines": [t1, t2]})).await.expect(200);
    let b = app.get(&w.planner, &base).await.expect(200).json();
    let t1_callup = lines_of(&b, "T1")[0]["callup_id"].as_i64().unwrap();
    // T1 answers in time; T2 never does.
    app.clock.advance(chrono::Duration::minutes(10));
    app.post(&w.operator, &format!("/api/v1/callups/{t1_callup}/accept"), &json!({"members": w.t1_members}))
        .await
        .expect(200);
    app.clock.advance(chrono::Duration::minutes(19));
    app.tick().await;
    assert!(of_kind(&app, id, "event_callup_escalation").await.is_empty());
    app.clock.advance(chrono::Duration::minutes(2));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_callup_escalation").await, [format!("{MANDULATU} 调用未答复")]);
    app.clock.advance(chrono::Duration::minutes(10));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_callup_escalation").await.len(), 1);
    app.clock.advance(chrono::Duration::minutes(21));
    app.tick().await;
    assert_eq!(
        of_kind(&app, id, "event_callup_escalation").await,
        [format!("{MANDULATU} 调用未答复"), format!("{BANNER} 调用未答复")]
    );
    app.clock.advance(chrono::Duration::minutes(30));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_callup_escalation").await.len(), 2);
    let b = app.get(&w.planner, &base).await.expect(200).json();
    assert_eq!(lines_of(&b, "T2")[0]["escalation"], "banner");
    assert_eq!(lines_of(&b, "T1")[0]["escalation"], "none");
    assert_eq!(b["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "escalation").count(), 2);
}

#[tokio::test]
async fn a_double_dispatch_has_one_winner() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = simple_event(&app, &w.operator, "snow_disaster", "general").await;
    let base = format!("/api/v1/events/{id}");
    let b = app
        .post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2}))
        .await
        .expect(200)
        .json();
    let d1 = lines_of(&b, "D1")[0]["id"].as_i64().unwrap();
    let t1 = lines_of(&b, "T1")[0]["id"].as_i64().unwrap();
    let body = json!({"lines": [d1, t1]});
    let path = format!("{base}/dispatch");
    let (a, c) = tokio::join!(app.post(&w.planner, &path, &body), app.post(&w.planner, &path, &body));
    let mut statuses = [a.status.as_u16(), c.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, c.text);
    let loser = if a.status.as_u16() == 409 { a } else { c };
    assert_eq!(loser.json()["current_status"], "dispatched");
    assert_eq!(balance(&app, w.d1).await, 0);
    let n: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM stock_movements WHERE kind = 'dispatch'"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(n, 1);
    let n: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM callups")
        .fetch_one(p)
        .await
        .unwrap());
    assert_eq!(n, 1);
    // The same request retried with an idempotency key replays instead of failing.
    let t2 = lines_of(&b, "T2")[0]["id"].as_i64().unwrap();
    let send = || {
        app.client
            .post(app.url(&path))
            .bearer_auth(&w.planner)
            .header("Idempotency-Key", "dispatch-t2")
            .json(&json!({"lines": [t2]}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let again = send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let n: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM callups")
        .fetch_one(p)
        .await
        .unwrap());
    assert_eq!(n, 2);
}

#[tokio::test]
async fn concurrent_activations_and_level_changes_have_one_winner() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = simple_event(&app, &w.operator, "snow_disaster", "general").await;
    let base = format!("/api/v1/events/{id}");
    let activate = json!({"plan_id": w.plan_id, "level": 2});
    let path = format!("{base}/activate");
    let (a, b) = tokio::join!(app.post(&w.planner, &path, &activate), app.post(&w.planner, &path, &activate));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
    let level = json!({"level": 1, "reason": "灾情扩大"});
    let path = format!("{base}/level");
    let (a, b) = tokio::join!(app.post(&w.planner, &path, &level), app.post(&w.admin, &path, &level));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    // The loser finds the level already changed: either the guard missed (409) or, having
    // started after the winner committed, it asks for the level already in force (422).
    assert_eq!(statuses[0], 200, "{} / {}", a.text, b.text);
    assert!(statuses[1] == 409 || statuses[1] == 422, "{} / {}", a.text, b.text);
    let b = app.get(&w.planner, &base).await.expect(200).json();
    assert_eq!(b["activations"].as_array().unwrap().len(), 2);
    // One set of proposals per decision: nothing duplicated.
    let proposed: i64 = b["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "proposed" && l["kind"] == "supply")
        .map(|l| l["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(proposed, 300);
    let a = app.audit_rows("event", &id.to_string()).await;
    assert_eq!(a.iter().filter(|(x, _)| x == "activate").count(), 1);
    assert_eq!(a.iter().filter(|(x, _)| x == "raise").count(), 1);
}
