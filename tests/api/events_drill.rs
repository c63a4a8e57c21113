//! Drill mode (演练模式): the 白灾 run as an exercise moves no stock, leaves readiness and real
//! call-ups alone and feeds the drill; an exercise call-up never changes members' real
//! availability.

use serde_json::json;

use crate::common::*;
use crate::events::*;
use crate::readiness::run_check;

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

/// A member's status.
async fn status(app: &TestApp, admin: &str, member: i64) -> String {
    app.get(admin, &format!("/api/v1/members/{member}")).await.expect(200).json()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_exercise_callup_leaves_members_real_availability_alone() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let drill = json!({
        "title": "满都拉图镇白灾应急演练", "form": "field", "scope": "comprehensive", "purpose": "test",
        "objective": "检验队伍集结", "region": MANDULATU, "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府"], "place_name": "白音哈拉图嘎查",
        "starts_at": "2026-11-27T08:00:00+08:00", "ends_at": "2026-11-27T18:00:00+08:00"
    });
    let drill_id = app.post(&w.admin, "/api/v1/drills", &drill).await.expect(201).json()["id"].as_i64().unwrap();
    let id =
        app.post(&w.operator, "/api/v1/events", &event_body(Some(drill_id))).await.expect(201).json()["event"]["id"]
            .as_i64()
            .unwrap();
    let base = format!("/api/v1/events/{id}");
    let b = app
        .post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2}))
        .await
        .expect(200)
        .json();
    let t1_line = lines_of(&b, "T1")[0]["id"].as_i64().unwrap();
    app.post(&w.planner, &format!("{base}/dispatch"), &json!({"lines": [t1_line]})).await.expect(200);
    let b = app.get(&w.operator, &base).await.expect(200).json();
    let exercise = lines_of(&b, "T1")[0]["callup_id"].as_i64().unwrap();
    app.post(&w.operator, &format!("/api/v1/callups/{exercise}/accept"), &json!({"members": w.t1_members}))
        .await
        .expect(200);
    // The exercise took part; nobody is deployed and the nearest teams still count T1's two.
    for m in &w.t1_members {
        assert_eq!(status(&app, &w.admin, *m).await, "available");
    }
    let near = format!("/api/v1/teams/nearest?specialty=snow_rescue&lon={}&lat={}&max_km=10", SCENE.0, SCENE.1);
    let v = app.get(&w.admin, &near).await.expect(200).json();
    assert_eq!(v["items"][0]["team_code"], "T1", "{v}");
    assert_eq!(v["items"][0]["qualified_members"], 2, "{v}");

    // A real call-up meanwhile takes one of them: the real deployment is real.
    let real = app
        .post(&w.planner, "/api/v1/callups", &json!({"team_code": "T1", "purpose": "event", "reference": "满都拉图镇牧户走失搜救", "specialty": "snow_rescue", "headcount": 1, "report_at": "2026-11-27T09:00:00+08:00", "report_place": "满都拉图镇"}))
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let sent = w.t1_members[0];
    app.post(&w.operator, &format!("/api/v1/callups/{real}/accept"), &json!({"members": [sent]})).await.expect(200);
    assert_eq!(status(&app, &w.admin, sent).await, "deployed");

    // Ending the exercise closes its call-up and leaves the real deployment alone.
    app.clock.advance(chrono::Duration::hours(3));
    app.post(&w.planner, &format!("{base}/terminate"), &json!({"decision": "演练结束"})).await.expect(200);
    let c = app.get(&w.admin, &format!("/api/v1/callups/{exercise}")).await.expect(200).json();
    assert_eq!(c["status"], "closed");
    assert_eq!(status(&app, &w.admin, sent).await, "deployed");
    assert_eq!(status(&app, &w.admin, w.t1_members[1]).await, "available");
    let audit = app.audit_rows("callup", &exercise.to_string()).await;
    assert_eq!(audit.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["close", "accept", "create"]);

    // Participation is recorded apart from real service.
    let s = app.get(&w.admin, &format!("/api/v1/members/{sent}/service")).await.expect(200).json();
    assert_eq!((s["callups"].as_i64(), s["exercise_callups"].as_i64()), (Some(1), Some(1)), "{s}");
    assert_eq!((s["hours"].as_f64(), s["exercise_hours"].as_f64()), (Some(0.0), Some(3.0)), "{s}");
    let s = app.get(&w.admin, &format!("/api/v1/members/{}/service", w.t1_members[1])).await.expect(200).json();
    assert_eq!((s["callups"].as_i64(), s["exercise_callups"].as_i64()), (Some(0), Some(1)), "{s}");
    app.post(&w.planner, &format!("/api/v1/callups/{real}/close"), &json!({})).await.expect(200);
    assert_eq!(status(&app, &w.admin, sent).await, "available");
}
