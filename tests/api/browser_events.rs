//! The event board (事件看板) in a real browser: a response run from the board, and drill mode.

use fantoccini::Locator;
use serde_json::{Value, json};
use yingji::auth::Role;

use crate::browser::{Steps, browser, seed};
use crate::common::*;
use crate::console::create_user;

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

/// A field drill of 满都拉图镇 today.
fn drill_body(title: &str) -> Value {
    json!({
        "title": title, "form": "field", "scope": "comprehensive", "purpose": "test",
        "objective": "检验响应", "region": MANDULATU, "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府"], "place_name": "白音哈拉图嘎查",
        "starts_at": "2026-11-27T08:00:00+08:00", "ends_at": "2026-11-27T18:00:00+08:00"
    })
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
    s.login("li").await;

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
    let drill_id = app.post(&admin, "/api/v1/drills", &drill_body("草原火灾扑救演练")).await.expect(201).json()["id"]
        .as_i64()
        .unwrap();
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

/// The id of the board being shown (`/events/{id}`).
async fn board_id(s: &Steps) -> i64 {
    s.path().await.trim_start_matches("/events/").parse().expect("on an event board")
}

/// A line of the board (through the API): `(line id, call-up id)` of the line from `code`
/// in `state`.
async fn line_of(app: &TestApp, tok: &str, event: i64, code: &str, state: &str) -> (i64, Option<i64>) {
    let b = app.get(tok, &format!("/api/v1/events/{event}")).await.expect(200).json();
    let l = b["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == code && l["state"] == state)
        .unwrap_or_else(|| panic!("no {code} line in state {state}: {:#}", b["lines"]))
        .clone();
    (l["id"].as_i64().unwrap(), l["callup_id"].as_i64())
}

/// Fills the 事件上报 form (everything but the times and the point).
async fn fill_new_event(s: &Steps, title: &str) {
    s.select("hazard", "#e-hazard", "snow_disaster").await;
    s.fill("title", "#e-title", title).await;
    s.select("severity", "#e-severity", "relatively_serious").await;
    s.fill("description", "#e-description", "连续降雪积雪 40 厘米，12 户牧民被困，牲畜无法采食").await;
    s.fill("trapped", "#e-trapped", "30").await;
    s.fill("households", "#e-households", "12").await;
    s.fill("livestock", "#e-livestock", "5200").await;
    s.fill("source", "#e-source", "嘎查长电话报告").await;
    s.fill("reporter", "#e-reporter", "嘎查长 巴图").await;
    s.fill("place", "#e-place", "白音哈拉图嘎查").await;
}

/// A township planner (满都拉图镇) runs a 白灾 event from the pages alone: reports it (a refused
/// time shown beside its field first, the point picked on the map), sees the first report
/// overdue, sends the 初报, activates the proposed plan's level 2, dispatches the proposed lines
/// (stock out, teams called up), marks the quilts delivered and the team that accepted on site,
/// then returned, raises to level 1, terminates, records the assessment and opens the assessment report. Then
/// the same in drill mode from the drill's page (【演练】 everywhere, no stock moved), and a
/// viewer of the township sees the board without a single action.
#[tokio::test]
async fn a_township_user_runs_a_snow_disaster_from_report_to_assessment_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    let w = crate::events::world(&app).await;
    let (lon, lat) = crate::events::SCENE;
    app.patch(&w.admin, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": lon, "lat": lat})).await.expect(200);
    create_user(&app, "bao", Role::Planner, MANDULATU).await;
    create_user(&app, "kan", Role::Viewer, MANDULATU).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("bao").await;

    // 事件上报: an occurrence after the moment it became known is refused beside its field,
    // with what was typed kept.
    s.goto("events", "/events").await;
    s.click("new-event", "#new-event").await;
    s.wait_for("new-form", "#event-form").await;
    s.wait_for("pick-map", "#pick-map[data-loaded=true]").await;
    s.axe("event-new").await;
    s.shot("event-new-1280").await;
    fill_new_event(&s, "满都拉图镇北部白灾").await;
    s.set("occurred-late", "#e-occurred", "2026-11-27T09:00").await;
    s.set("known-early", "#e-known", "2026-11-27T05:00").await;
    s.click("map-pick", "#pick-map").await;
    assert!(!s.value("picked-lon", "#lon").await.is_empty(), "a click on the map sets the point");
    s.click("submit-bad", "#event-submit").await;
    s.wait_for("time-error", "#event-form-occurred_at-error").await;
    assert!(s.text("time-error-text", "#event-form-occurred_at-error").await.contains("发生时间不能晚于获知时间"));
    assert_eq!(s.value("kept-title", "#e-title").await, "满都拉图镇北部白灾");
    s.shot("event-new-error-1280").await;
    s.scroll_to("#e-livestock").await;
    s.shot("event-new-lower-1280").await;
    s.width(375, 812).await;
    s.shot("event-new-error-375").await;
    s.axe("event-new-375").await;
    s.width(1280, 900).await;
    s.set("occurred", "#e-occurred", "2026-11-27T05:00").await;
    s.set("known", "#e-known", "2026-11-27T05:30").await;
    s.fill("lon", "#lon", &lon.to_string()).await;
    s.fill("lat", "#lat", &lat.to_string()).await;
    s.click("submit", "#event-submit").await;
    s.wait_url("created", "done=created").await;
    let id = board_id(&s).await;
    let ev = app.get(&w.admin, &format!("/api/v1/events/{id}")).await.expect(200).json()["event"].clone();
    assert_eq!(
        (
            ev["hazard"].as_str(),
            ev["region_code"].as_str(),
            ev["affected_livestock"].as_i64(),
            ev["exercise"].as_bool()
        ),
        (Some("snow_disaster"), Some(MANDULATU), Some(5200), Some(false))
    );
    assert_eq!(ev["created_by"], "bao");
    // Known at 05:30, now 08:00: the first report is overdue and flagged.
    assert!(s.text("overdue", "#first-report").await.contains("逾期"));
    assert!(s.text("figures", "#figures").await.contains("受灾牲畜（头只） 5200"));

    // 初报 (the first report kind is preselected), then the deadline is met.
    s.fill("report", "#report-content", "积雪 40 厘米，30 人被困，已组织救援").await;
    s.click("report-submit", "#report-form button[type=submit]").await;
    s.wait_url("reported", "done=report").await;
    assert!(s.text("first-report-done", "#first-report").await.contains("已报送"));
    s.fill("note", "#note-text", "镇长赶赴现场").await;
    s.click("note-submit", "#note-form button").await;
    s.wait_url("noted", "done=note").await;
    assert!(s.text("noted-timeline", "#timeline").await.contains("镇长赶赴现场"));

    // 启动响应: the proposed township plan, level 2.
    let choice = s.attr("choice", "#choice option:nth-child(3)", "value").await;
    assert!(s.text("choices", "#choice").await.contains("《满都拉图镇白灾应急预案》二级响应"));
    assert!(choice.ends_with(":2"), "{choice}");
    s.select("choose", "#choice", &choice).await;
    s.fill("reason", "#activate-reason", "多户牧民被困").await;
    s.click("activate", "#activate-form button").await;
    s.wait_url("activated", "done=activate").await;
    assert!(s.text("level", "#event-level").await.contains("二级"));
    s.wait_for("map", "#event-map[data-loaded=true]").await;

    // Dispatch the proposed lines: quilts leave D1 and D2, T1 and T2 are called up.
    let d1_before = crate::events::balance(&app, w.d1).await;
    s.click("dispatch", "#dispatch-submit").await;
    s.wait_url("dispatched", "done=dispatch").await;
    let lines = s.text("lines", "#lines").await;
    assert!(lines.contains("已调出") && lines.contains("已调用，待响应"), "{lines}");
    assert_eq!(crate::events::balance(&app, w.d1).await, d1_before - 80, "80 quilts left D1");

    // The quilts arrive; T1 accepts (on the team's side) and is marked on site.
    let (d1_line, _) = line_of(&app, &w.admin, id, "D1", "dispatched").await;
    s.click("arrive-d1", &format!("#arrive-btn-{d1_line}")).await;
    s.wait_url("arrived", "done=arrive").await;
    let (t1_line, callup) = line_of(&app, &w.admin, id, "T1", "requested").await;
    app.post(&w.operator, &format!("/api/v1/callups/{}/accept", callup.unwrap()), &json!({"members": w.t1_members}))
        .await
        .expect(200);
    s.goto("reload", &format!("/events/{id}")).await;
    assert!(s.text("accepted", &format!("#arrive-btn-{t1_line}")).await.contains("登记到场"));
    s.click("on-site", &format!("#arrive-btn-{t1_line}")).await;
    s.wait_url("on-site-done", "done=arrive").await;
    let lines = s.text("lines-arrived", "#lines").await;
    assert!(lines.contains("已送达") && lines.contains("已到场"), "{lines}");
    s.scroll_to("#lines").await;
    s.shot("event-on-site-1280").await;
    // T1 stands down: its call-up closes.
    s.click("return", &format!("#return-btn-{t1_line}")).await;
    s.wait_url("returned", "done=return").await;
    assert!(s.text("lines-returned", "#lines").await.contains("已返回"));
    let c = app.get(&w.operator, &format!("/api/v1/callups/{}", callup.unwrap())).await.expect(200).json();
    assert_eq!(c["status"], "closed");
    s.scroll_to("#lines").await;
    s.shot("event-arrived-1280").await;
    s.width(375, 812).await;
    s.scroll_to("#lines").await;
    s.shot("event-arrived-375").await;
    s.width(1280, 900).await;

    // Raise to level 1 (the plan is recomputed), then terminate.
    s.select("level-1", "#level", "1").await;
    s.fill("level-reason", "#level-reason", "被困牧户增至 30 户").await;
    s.click("raise", "#level-form button").await;
    s.wait_url("raised", "done=level").await;
    assert!(s.text("level-after", "#event-level").await.contains("一级"));
    s.fill("decision", "#decision", "被困人员全部转移，响应终止").await;
    s.click("terminate", "#terminate-form button").await;
    s.wait_url("terminated", "done=terminate").await;
    assert!(s.text("status", "#event-status").await.contains("终止"));

    // 调查评估, then its printable report.
    s.fill("causes", "#causes", "持续强降雪").await;
    s.fill("summary", "#summary", "响应及时，棉被缺口由协议储备补足").await;
    s.fill("problem", "#problem", "初报迟报").await;
    s.fill("cause", "#cause", "夜间值班人员不足").await;
    s.click("revise", "#revise_plan").await;
    s.scroll_to("#assess-form").await;
    s.shot("event-assess-1280").await;
    s.width(375, 812).await;
    s.scroll_to("#assess-form").await;
    s.shot("event-assess-375").await;
    s.width(1280, 900).await;
    s.click("assess", "#assess-form button[type=submit]").await;
    s.wait_url("assessed", "done=assess").await;
    assert!(s.text("assessed-text", "#assessment-done").await.contains("响应及时"));
    s.axe("event-terminated").await;
    s.click("assessment-report", "#assessment-link").await;
    s.wait_url("report-open", "/assessment/report").await;
    let report = s.text("report", "body").await;
    assert!(report.contains("调查评估报告") && report.contains("初报迟报"), "{report}");
    s.shot("event-assessment-report-1280").await;

    // Drill mode from the drill's page: 【演练】 everywhere and no stock moved.
    let drill_id = app.post(&w.admin, "/api/v1/drills", &drill_body("白灾应急演练")).await.expect(201).json()["id"]
        .as_i64()
        .unwrap();
    let (d1_stock, d2_stock) = (crate::events::balance(&app, w.d1).await, crate::events::balance(&app, w.d2).await);
    s.goto("drill", &format!("/drills/{drill_id}")).await;
    s.click("drill-event", "#drill-event").await;
    s.wait_for("drill-form", "#new-drill-banner").await;
    assert!(s.text("drill-h1", "h1").await.starts_with("【演练】"));
    assert_eq!(s.value("drill-chosen", "#e-drill").await, drill_id.to_string());
    fill_new_event(&s, "白灾应急演练：牧户被困").await;
    s.set("ex-occurred", "#e-occurred", "2026-11-27T07:50").await;
    s.width(375, 812).await;
    s.shot("event-new-drill-375").await;
    s.scroll_to("#pick-map").await;
    s.shot("event-new-drill-map-375").await;
    s.width(1280, 900).await;
    // No point given: the township's own point is used.
    s.click("ex-submit", "#event-submit").await;
    s.wait_url("ex-created", "done=created").await;
    let ex = board_id(&s).await;
    assert!(s.text("ex-title", "h1").await.starts_with("【演练】"));
    assert!(s.text("ex-done", "#done").await.starts_with("【演练】"));
    let e = app.get(&w.admin, &format!("/api/v1/events/{ex}")).await.expect(200).json()["event"].clone();
    assert_eq!(
        (e["exercise"].as_bool(), e["drill_id"].as_i64(), e["lon"].as_f64()),
        (Some(true), Some(drill_id), Some(lon))
    );
    s.fill("ex-report", "#report-content", "【演练】初报：积雪 40 厘米").await;
    s.click("ex-report-submit", "#report-form button[type=submit]").await;
    s.wait_url("ex-reported", "done=report").await;
    s.select("ex-choose", "#choice", &choice).await;
    s.click("ex-activate", "#activate-form button").await;
    s.wait_url("ex-activated", "done=activate").await;
    assert!(s.text("ex-lines", "#lines").await.contains("【演练】建议"));
    s.click("ex-dispatch", "#dispatch-submit").await;
    s.wait_url("ex-dispatched", "done=dispatch").await;
    // D1 was emptied by the real event: the exercise's quilts come from D2 (and the agreement).
    let (ex_d1, _) = line_of(&app, &w.admin, ex, "D2", "dispatched").await;
    assert!(s.text("ex-arrive-label", &format!("#arrive-btn-{ex_d1}")).await.starts_with("【演练】"));
    s.click("ex-arrive", &format!("#arrive-btn-{ex_d1}")).await;
    s.wait_url("ex-arrived", "done=arrive").await;
    assert!(s.text("ex-lines-after", "#lines").await.contains("【演练】已送达"));
    s.scroll_to("#lines").await;
    s.shot("event-drill-arrived-1280").await;
    s.width(375, 812).await;
    s.scroll_to("#lines").await;
    s.shot("event-drill-arrived-375").await;
    s.width(1280, 900).await;
    s.fill("ex-decision", "#decision", "演练结束").await;
    s.click("ex-terminate", "#terminate-form button").await;
    s.wait_url("ex-terminated", "done=terminate").await;
    s.fill("ex-causes", "#causes", "演练情景：持续强降雪").await;
    s.fill("ex-summary", "#summary", "演练检验了调度流程").await;
    s.click("ex-assess", "#assess-form button[type=submit]").await;
    s.wait_url("ex-assessed", "done=assess").await;
    s.click("ex-report-link", "#assessment-link").await;
    s.wait_url("ex-report-open", "/assessment/report").await;
    assert!(s.text("ex-report", "body").await.contains("【演练】"));
    assert_eq!(
        (crate::events::balance(&app, w.d1).await, crate::events::balance(&app, w.d2).await),
        (d1_stock, d2_stock),
        "a drill moves no stock"
    );

    // A viewer of the township sees the boards and no action.
    s.goto("home", "/today").await;
    s.click("logout", "form[action='/logout'] button").await;
    s.wait_for("logged-out", "#password").await;
    s.login("kan").await;
    s.goto("viewer-list", "/events").await;
    assert!(s.check("no-new", s.c.find_all(Locator::Css("#new-event")).await).await.is_empty());
    s.goto("viewer-board", &format!("/events/{id}")).await;
    let forms = s.check("viewer-forms", s.c.find_all(Locator::Css("main form, .line-act")).await).await;
    assert!(forms.is_empty(), "a viewer gets no form and no button");
    assert!(s.text("viewer-note", "main").await.contains("您的角色只能查看"));
}
