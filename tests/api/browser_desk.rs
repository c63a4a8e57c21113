//! Desk work in a real browser: drills on the calendar, users, plan drafts.

use fantoccini::Locator;

use yingji::auth::Role;

use crate::browser::{Steps, browser};
use crate::common::*;
use crate::console::create_user;

/// A local (Asia/Shanghai) `datetime-local` value `days` after `now` at `hour`. `now` is the
/// service's (test) clock, not the real one, so the drills stay where the service's pages and
/// calendar feed look for them however far the real date has moved on.
fn local_day(now: chrono::DateTime<chrono::Utc>, days: i64, hour: u32) -> String {
    let d = now.with_timezone(&yingji::time::LOCAL_TZ).date_naive() + chrono::Duration::days(days);
    format!("{}T{hour:02}:00", d.format("%Y-%m-%d"))
}

#[tokio::test]
async fn drills_are_scheduled_postponed_completed_evaluated_and_subscribed_to_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    create_user(&app, "wang", Role::Admin, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("wang").await;

    // Schedule from the calendar page: an end before the start is named beside the end, and
    // everything typed is still there.
    s.goto("drills", "/drills").await;
    s.wait_for("drill-form", "#drill-form").await;
    let title = "洪格尔苏木白灾应急救援桌面推演";
    s.fill("title", "#d-title", title).await;
    s.select("form", "#d-form", "tabletop").await;
    s.select("region", "#d-region", "152523202000").await;
    s.fill("organiser", "#d-organiser", "洪格尔苏木应急办").await;
    s.fill("place", "#d-place", "洪格尔苏木政府会议室").await;
    s.set("start", "#d-start", &local_day(app.clock.now_utc(), 10, 9)).await;
    s.set("end-before", "#d-end", &local_day(app.clock.now_utc(), 10, 8)).await;
    s.click("schedule-bad", "#drill-form button[type=submit]").await;
    s.wait_for("drill-refused", "#drill-form-ends_at-error").await;
    assert!(s.text("end-msg", "#drill-form-ends_at-error").await.contains("结束时间应晚于开始时间"));
    assert!(s.text("summary", "#drill-form-errors").await.contains("结束时间"));
    assert_eq!(s.value("kept-title", "#d-title").await, title);
    assert_eq!(s.value("kept-form", "#d-form").await, "tabletop");
    assert_eq!(s.value("kept-region", "#d-region").await, "152523202000");
    assert_eq!(s.attr("end-invalid", "#d-end", "aria-invalid").await, "true");
    s.axe("drills-refused").await;
    s.shot("drills-refused").await;
    s.set("end", "#d-end", &local_day(app.clock.now_utc(), 10, 12)).await;
    s.click("schedule", "#drill-form button[type=submit]").await;
    s.wait_url("created", "done=created").await;
    assert_eq!(s.text("planned", "#drill-status").await, "计划中");
    s.axe("drill").await;
    s.shot("drill-desktop").await;

    // Postpone two days: the time changes and the original is kept.
    s.set("p-start", "#p-start", &local_day(app.clock.now_utc(), 12, 9)).await;
    s.set("p-end", "#p-end", &local_day(app.clock.now_utc(), 12, 12)).await;
    s.click("postpone", "#drill-postpone button").await;
    s.wait_url("postponed", "done=postpone").await;
    assert_eq!(s.text("postponed-status", "#drill-status").await, "已延期");
    let time = s.text("time", "#drill-time").await;
    assert!(time.contains(&local_day(app.clock.now_utc(), 12, 9)[..10]) && time.contains("原定"), "{time}");

    // Complete with what happened.
    s.fill("count", "#a-count", "35").await;
    s.fill("units", "#a-units", "洪格尔苏木政府\n苏尼特左旗应急管理局").await;
    s.fill("scenario", "#a-scenario", "连续降雪 40 厘米，3 个嘎查道路中断，牲畜断草").await;
    s.click("complete", "#drill-complete button").await;
    s.wait_url("completed", "done=complete").await;
    assert_eq!(s.text("completed-status", "#drill-status").await, "已完成");

    // Evaluate: a score over 100 is named beside its indicator (the browser's own check is
    // switched off so that the service's answer is what is tested), then a good evaluation.
    s.fill("evaluator", "#e-evaluator", "旗应急管理局评估组").await;
    let inputs = s.check("indicators", s.c.find_all(Locator::Css("#drill-evaluate input[type=number]")).await).await;
    assert!(inputs.len() >= 3, "the tabletop set has several indicators");
    for (i, e) in inputs.iter().enumerate() {
        let r = async {
            e.clear().await?;
            e.send_keys(if i == 0 { "150" } else { "80" }).await
        }
        .await;
        s.check("score", r).await;
    }
    s.fill("conclusion", "#e-conclusion", "预案可行，通信保障需加强").await;
    let r = s.c.execute("document.getElementById('drill-evaluate').noValidate = true;", vec![]).await;
    s.check("novalidate", r).await;
    s.click("evaluate-bad", "#drill-evaluate button[type=submit]").await;
    s.wait_for("evaluate-refused", "[id='drill-evaluate-indicators[0]-error']").await;
    assert!(s.text("score-msg", "[id='drill-evaluate-indicators[0]-error']").await.contains("0 到 100"));
    assert_eq!(s.value("kept-evaluator", "#e-evaluator").await, "旗应急管理局评估组");
    s.axe("drill-refused").await;
    s.shot("drill-evaluate-refused").await;
    s.fill("score-fixed", "#drill-evaluate input[name='indicators[0]']", "90").await;
    s.click("evaluate", "#drill-evaluate button[type=submit]").await;
    s.wait_url("evaluated", "done=evaluate").await;
    assert_eq!(s.text("evaluated-status", "#drill-status").await, "已评估");
    assert!(s.text("grade", "#drill-grade").await.contains("良好"));
    s.axe("drill-evaluated").await;
    s.shot("drill-evaluated").await;
    s.width(375, 812).await;
    s.shot("drill-375").await;
    s.axe("drill-375").await;

    // The month's calendar links to the drill.
    s.width(1280, 900).await;
    s.goto("month", &format!("/drills?month={}", &local_day(app.clock.now_utc(), 12, 9)[..7])).await;
    assert!(s.text("calendar", "#calendar").await.contains(title));

    // Subscribe: the address is shown once with its QR code, and it serves the calendar.
    s.click("subscribe", "#feed-form button").await;
    s.wait_for("feed", "#feed svg.qr").await;
    let url = s.text("feed-url", "#feed-url").await;
    assert!(url.starts_with(&app.base) && url.contains("/api/v1/drills.ics?token="), "{url}");
    let ics = app.client.get(&url).send().await.unwrap();
    assert_eq!(ics.status(), 200);
    let body = ics.text().await.unwrap().replace("\r\n ", "");
    assert!(body.starts_with("BEGIN:VCALENDAR") && body.contains("白灾应急救援"), "{body}");
    s.axe("drills-feed").await;
    let _ = s.c.execute("document.getElementById('feed').scrollIntoView()", vec![]).await;
    s.shot("drills-feed").await;
    s.width(375, 812).await;
    let _ = s.c.execute("document.getElementById('feed').scrollIntoView()", vec![]).await;
    s.shot("drills-feed-375").await;
    let _ = s.c.execute("document.getElementById('drill-form').scrollIntoView()", vec![]).await;
    s.shot("drills-form-375").await;
    s.axe("drills-feed-375").await;
    let _ = s.c.close().await;
}

#[tokio::test]
async fn an_admin_manages_users_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    create_user(&app, "zhao", Role::Admin, BANNER).await;
    create_user(&app, "viewer1", Role::Viewer, MANDULATU).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("zhao").await;
    s.click("nav-users", "nav a[href='/users']").await;
    s.wait_for("users", "#user-create").await;
    s.axe("users").await;

    // A short password is named beside the field; the name and role are kept, the password never.
    s.fill("u-name", "#u-name", "其其格").await;
    s.select("u-role", "#u-role", "operator").await;
    s.select("u-region", "#u-region", MANDULATU).await;
    s.fill("u-password", "#u-password", "short").await;
    s.click("create-bad", "#user-create button").await;
    s.wait_for("create-refused", "#user-create-password-error").await;
    assert!(s.text("pw-msg", "#user-create-password-error").await.contains("至少 10 个字符"));
    assert_eq!(s.value("kept-name", "#u-name").await, "其其格");
    assert_eq!(s.value("kept-role", "#u-role").await, "operator");
    assert_eq!(s.value("pw-empty", "#u-password").await, "", "a password is never sent back");
    s.axe("users-refused").await;
    s.shot("users-refused").await;
    s.fill("u-password2", "#u-password", "嘎查网格员-2026-密码").await;
    s.click("create", "#user-create button").await;
    s.wait_url("created", "done=create").await;
    assert!(s.text("list", "#users").await.contains("其其格"));

    // Disable the viewer, then enable; give them another role.
    let id = yingji::auth::users::by_name(&app.state.db, "viewer1").await.unwrap().unwrap().id;
    s.click("disable", &format!("#user-{id}-disable button")).await;
    s.wait_url("disabled", "done=disable").await;
    assert!(s.text("row-disabled", &format!("#user-{id}")).await.contains("已停用"));
    s.click("enable", &format!("#user-{id}-enable button")).await;
    s.wait_url("enabled", "done=enable").await;
    assert!(!s.text("row-enabled", &format!("#user-{id}")).await.contains("已停用"));
    s.select("assign-role", &format!("#user-{id}-assign-role"), "planner").await;
    s.click("assign", &format!("#user-{id}-assign button")).await;
    s.wait_url("assigned", "done=assign").await;
    assert!(s.text("row-assigned", &format!("#user-{id}")).await.contains("规划员"));
    s.fill("new-pw", &format!("#user-{id}-password-password"), "太短").await;
    s.click("set-pw-bad", &format!("#user-{id}-password button")).await;
    s.wait_for("pw-refused", &format!("#user-{id}-password-password-error")).await;
    s.shot("users-desktop").await;
    s.width(375, 812).await;
    s.shot("users-375").await;
    s.axe("users-375").await;
    let _ = s.c.close().await;
}

#[tokio::test]
async fn a_plan_draft_is_created_and_edited_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    create_user(&app, "sun", Role::Planner, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("sun").await;
    s.goto("plans", "/plans").await;
    s.click("new-plan", "#new-plan").await;
    s.wait_for("new-form", "#plan-new").await;
    s.axe("plan-new").await;

    // A township plan owned by the banner and a missing legal section: both named in place.
    let title = "满都拉图镇白灾应急预案";
    s.fill("title", "#pe-title", title).await;
    s.select("kind", "#pe-kind", "township").await;
    s.select("region", "#pe-region", BANNER).await;
    s.fill("unit", "#pe-unit", "满都拉图镇人民政府").await;
    s.fill("dept", "#pe-dept", "满都拉图镇应急办").await;
    s.click("hazard", "input[name=hazards][value=snow_disaster]").await;
    for (k, v) in [
        ("organization", "镇长任总指挥"),
        ("prevention", "气象预警分级传递到嘎查"),
        ("support", "物资储备点两处"),
        ("recovery", "灾后评估"),
    ] {
        s.fill(k, &format!("[id='pe-sections.{k}']"), v).await;
    }
    s.fill("level3", "[id='pe-level3.criteria']", "积雪超过 20 厘米，道路中断").await;
    let r = s.c.execute("document.getElementById('plan-new').noValidate = true;", vec![]).await;
    s.check("novalidate", r).await;
    s.click("create-bad", "#plan-new button[type=submit]").await;
    s.wait_for("refused", "#plan-new-errors").await;
    assert!(s.text("region-msg", "#plan-new-region-error").await.contains("乡镇"));
    assert!(s.text("section-msg", "[id='plan-new-sections.response-error']").await.contains("处置程序"));
    assert_eq!(s.value("kept-title", "#pe-title").await, title);
    assert_eq!(s.value("kept-level", "[id='pe-level3.criteria']").await, "积雪超过 20 厘米，道路中断");
    s.axe("plan-new-refused").await;
    s.shot("plan-new-refused").await;
    s.select("region-fixed", "#pe-region", MANDULATU).await;
    s.fill("response", "[id='pe-sections.response']", "接报后 30 分钟内启动响应").await;
    s.click("create", "#plan-new button[type=submit]").await;
    s.wait_url("created", "done=saved").await;
    assert!(s.text("draft", "#plan-status").await.contains("草稿"));

    // Edit the draft: the title changes, everything else stays.
    s.click("edit", "#edit-plan").await;
    s.wait_for("edit-form", "#plan-edit").await;
    assert_eq!(s.value("loaded", "[id='pe-sections.response']").await, "接报后 30 分钟内启动响应");
    s.fill("title2", "#pe-title", "满都拉图镇白灾（雪灾）应急预案").await;
    s.click("save", "#plan-edit button[type=submit]").await;
    s.wait_url("saved", "done=saved").await;
    assert_eq!(s.text("h1", "main h1").await, "满都拉图镇白灾（雪灾）应急预案");
    s.goto("edit-again", &format!("{}/edit", s.path().await)).await;
    s.wait_for("edit-form2", "#plan-edit").await;
    s.axe("plan-edit").await;
    s.shot("plan-edit").await;
    s.width(375, 812).await;
    s.shot("plan-edit-375").await;
    s.axe("plan-edit-375").await;
    let _ = s.c.close().await;
}
