//! The event board (事件看板) in a real browser: a response run from the board, and drill mode.

use fantoccini::Locator;
use serde_json::{Value, json};
use yingji::auth::Role;

use crate::browser::{Steps, browser, seed};
use crate::common::*;
use crate::console::{PASSWORD, create_user};

const QUILT: &str = "1999905";

/// A grassland-fire plan of 满都拉图镇 in force: level 2 needs 50 quilts and 2 firefighters
/// within 100 km.
async fn fire_plan(app: &TestApp, admin: &str) -> i64 {
    let plan = json!({
        "title": "满都拉图镇草原火灾应急预案", "kind": "township", "region": MANDULATU,
        "owning_unit": "满都拉图镇人民政府", "lead_department": "镇应急办", "hazards": ["grassland_fire"],
        "sections": {"organization": "镇防火指挥部统一指挥。", "prevention": "火险预警与巡护。", "response": "分级响应。", "support": "物资与队伍保障。", "recovery": "草场恢复。"},
        "response_levels": [{"level": 2, "criteria": "火场面积超过 100 公顷", "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 50, "unit": "床", "within_km": 100}], "forces": [{"specialty": "grassland_fire", "headcount": 2, "within_km": 100}]}]
    });
    let id = app.post(admin, "/api/v1/plans", &plan).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(admin, &format!("/api/v1/plans/{id}/submit"), &json!({})).await.expect(200);
    let approve = json!({"issued_on": "2026-10-08", "issuing_body": "满都拉图镇人民政府"});
    app.post(admin, &format!("/api/v1/plans/{id}/approve"), &approve).await.expect(200);
    id
}

fn fire_event(drill: Option<i64>) -> Value {
    let mut v = json!({
        "hazard": "grassland_fire", "title": "满都拉图镇北部草原火灾", "occurred_at": "2026-11-27T07:30:00+08:00",
        "region_code": MANDULATU, "place": "白音哈拉图嘎查北", "lon": 113.644, "lat": 43.852,
        "description": "境外火入境，火线约 3 公里", "severity": "relatively_serious",
        "source": "护林员电话报告", "reporter": "护林员 巴特尔"
    });
    if let Some(d) = drill {
        v["exercise"] = json!(true);
        v["drill_id"] = json!(d);
        v["title"] = json!("草原火灾扑救演练");
    }
    v
}

#[tokio::test]
async fn the_event_board_runs_a_response_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    seed(&app).await;
    let admin = app.admin().await;
    fire_plan(&app, &admin).await;
    let id =
        app.post(&admin, "/api/v1/events", &fire_event(None)).await.expect(201).json()["event"]["id"].as_i64().unwrap();
    create_user(&app, "li", Role::Admin, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.goto("open", "/login").await;
    s.fill("name", "#name", "li").await;
    s.fill("password", "#password", PASSWORD).await;
    s.click("submit", "button[type=submit]").await;
    s.wait_for("today", "#score-h").await;

    // The list, then the board: 初报, activation, dispatch of the proposed lines.
    s.goto("events", "/events").await;
    s.wait_for("events-table", "#events").await;
    assert!(s.text("listed", "#events").await.contains("满都拉图镇北部草原火灾"));
    s.axe("events").await;
    s.click("open-event", "#events tbody tr:first-child a").await;
    s.wait_for("board", "#report-form").await;
    s.fill("report", "#report-content", "火线约 3 公里，已组织扑救").await;
    s.click("report-submit", "#report-form button").await;
    s.wait_url("reported", "done=report").await;
    assert!(s.text("timeline", "#timeline").await.contains("火线约 3 公里"));
    let choice = s
        .check(
            "choice",
            async { s.c.find(Locator::Css("#choice option:nth-child(2)")).await?.attr("value").await }.await,
        )
        .await
        .unwrap_or_default();
    s.select("choose", "#choice", &choice).await;
    s.fill("reason", "#activate-reason", "火场面积超过 100 公顷").await;
    s.click("activate", "#activate-form button").await;
    s.wait_url("activated", "done=activate").await;
    assert!(s.text("level", "#event-level").await.contains("二级"));
    let lines = s.text("lines", "#lines").await;
    assert!(lines.contains("D1储备点") && lines.contains("T1"), "{lines}");
    assert!(s.text("plan", "#resource-plan").await.contains("棉被"));
    s.wait_for("map", "#event-map[data-loaded=true]").await;
    s.shot("event-board-1280").await;
    let r = s.c.execute("document.getElementById('resource-plan').scrollIntoView(); return true;", vec![]).await;
    s.check("scroll-to-plan", r).await;
    s.shot("event-board-plan-1280").await;
    s.click("dispatch", "#dispatch-form button[type=submit]").await;
    s.wait_url("dispatched", "done=dispatch").await;
    let lines = s.text("lines-after", "#lines").await;
    assert!(lines.contains("已调出") && lines.contains("已调用，待响应"), "{lines}");
    let movements: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM stock_movements WHERE kind = 'dispatch'"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert!(movements >= 1, "the dispatch wrote ledger movements");
    s.axe("event").await;
    s.width(375, 812).await;
    s.shot("event-board-375").await;
    s.width(1280, 900).await;
    s.fill("decision", "#decision", "明火扑灭，响应终止").await;
    s.click("terminate", "#terminate-form button").await;
    s.wait_url("terminated", "done=terminate").await;
    assert!(s.text("status", "#event-status").await.contains("终止"));

    // Drill mode: labelled 【演练】 everywhere.
    let drill = json!({
        "title": "草原火灾扑救演练", "form": "field", "scope": "comprehensive", "purpose": "test",
        "objective": "检验响应", "region": MANDULATU, "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府"], "place_name": "白音哈拉图嘎查",
        "starts_at": "2026-11-27T08:00:00+08:00", "ends_at": "2026-11-27T18:00:00+08:00"
    });
    let drill_id = app.post(&admin, "/api/v1/drills", &drill).await.expect(201).json()["id"].as_i64().unwrap();
    let ex = app.post(&admin, "/api/v1/events", &fire_event(Some(drill_id))).await.expect(201).json()["event"]["id"]
        .as_i64()
        .unwrap();
    s.goto("exercise", &format!("/events/{ex}")).await;
    s.wait_for("exercise-board", ".drill-banner").await;
    assert!(s.text("exercise-title", "h1").await.starts_with("【演练】"));
    assert!(s.text("exercise-status", "#event-status").await.starts_with("【演练】"));
    s.select("ex-choose", "#choice", &choice).await;
    s.click("ex-activate", "#activate-form button").await;
    s.wait_url("ex-activated", "done=activate").await;
    assert!(s.text("ex-lines", "#lines").await.contains("【演练】建议"));
    s.shot("event-board-drill-1280").await;
    s.width(375, 812).await;
    s.shot("event-board-drill-375").await;
    s.goto("events-again", "/events").await;
    assert!(s.text("listed-drill", "#events").await.contains("【演练】草原火灾扑救演练"));
    assert_eq!(
        app.get(&admin, &format!("/api/v1/events/{id}")).await.expect(200).json()["event"]["status"],
        "terminated"
    );
}
