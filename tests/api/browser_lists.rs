//! Lists and actions in a real browser: plans, supplies and teams listed and acted on, and a
//! readiness run's progress bar (harness and screenshots: `crate::browser`).

use std::time::Duration;

use serde_json::json;
use yingji::auth::Role;

use crate::browser::{Steps, browser, seed};
use crate::common::*;
use crate::console::create_user;
use crate::forces::{new_team, north};

const QUILT: &str = "1999905";

#[tokio::test]
async fn plans_supplies_and_teams_are_listed_and_acted_on_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    seed(&app).await;
    let admin = app.admin().await;
    new_team(&app, &admin, "T3", MANDULATU, north(5.0), json!([{"specialty": "medical", "grade": null}])).await;
    create_user(&app, "li", Role::Admin, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("li").await;

    // 预案: the shipped plans are drafts; submit, approve and file one.
    s.goto("plans", "/plans?status=draft").await;
    s.wait_for("plans-table", "#plans").await;
    s.axe("plans").await;
    s.click("first-plan", "#plans tbody tr:first-child a").await;
    s.wait_for("plan-page", "#plan-status").await;
    assert!(s.text("draft", "#plan-status").await.contains("草稿"));
    s.click("plan-submit", "form[action$='/submit'] button").await;
    s.wait_url("submitted", "done=submit").await;
    assert!(s.text("review", "#plan-status").await.contains("审核中"));
    s.fill("issuing_body", "#issuing_body", "苏尼特左旗人民政府").await;
    s.click("plan-approve", "form[action$='/approve'] button").await;
    s.wait_url("approved", "done=approve").await;
    s.fill("filed_with", "#filed_with", "锡林郭勒盟应急管理局").await;
    s.fill("receipt_no", "#receipt_no", "锡应急备〔2026〕1号").await;
    s.click("plan-file", "form[action$='/file'] button").await;
    s.wait_url("filed", "done=file").await;
    assert!(s.text("filed-status", "#plan-status").await.contains("已备案"));
    // Revising without the explanation "other" needs is named beside the note; then a real reason.
    s.select("revise-other", "#revise-reason", "other").await;
    s.click("revise-bad", "#plan-revise button").await;
    s.wait_for("revise-refused", "#plan-revise-errors").await;
    assert_eq!(s.value("kept-reason", "#revise-reason").await, "other");
    s.select("revise-reason", "#revise-reason", "risks_changed").await;
    s.click("revise", "#plan-revise button").await;
    s.wait_url("revised", "done=revise").await;
    assert!(s.text("revised-status", "#plan-status").await.contains("第 2 版"));
    s.axe("plan").await;
    s.width(375, 812).await;
    s.shot("plan-375").await;
    s.width(1280, 900).await;

    // 物资: receive into a depot and see the balance and the ledger.
    s.goto("supplies", "/supplies").await;
    s.axe("supplies").await;
    s.click("depot", "#depots a").await;
    s.wait_for("depot-page", "#movement-form").await;
    s.select("kind", "#m-kind", "receive").await;
    s.select("item", "#m-item", QUILT).await;
    s.fill("qty", "#m-qty", "15").await;
    s.fill("batch", "#m-batch", "B9").await;
    s.click("record", "#movement-form button").await;
    s.wait_url("recorded", "done=1").await;
    assert!(s.text("levels", "#levels").await.contains("75"), "60 + 15 quilts");
    assert!(s.text("ledger", "#ledger").await.contains("B9"));
    s.axe("depot").await;
    // Issuing more than is there is refused with the API's message, and nothing is written.
    s.select("kind2", "#m-kind", "issue").await;
    s.select("item2", "#m-item", QUILT).await;
    s.fill("qty2", "#m-qty", "1000").await;
    s.fill("dest2", "#m-dest", "洪格尔苏木").await;
    s.click("over-issue", "#movement-form button").await;
    s.wait_for("refused", "#movement-form-errors[role=alert]").await;
    assert!(s.text("refused-text", "#movement-form-errors").await.contains("库存不足"));
    // The form comes back with what was typed, not the defaults.
    assert_eq!(s.value("kept-qty", "#m-qty").await, "1000");
    assert_eq!(s.value("kept-kind", "#m-kind").await, "issue");
    assert_eq!(s.value("kept-dest", "#m-dest").await, "洪格尔苏木");
    assert!(s.text("levels-unchanged", "#levels").await.contains("75"), "nothing was written");
    s.axe("depot-refused").await;
    s.shot("depot-refused").await;
    // A value the service cannot read is named beside its field, and the summary names the field.
    s.select("kind3", "#m-kind", "receive").await;
    s.fill("qty3", "#m-qty", "0").await;
    s.click("zero", "#movement-form button").await;
    s.wait_for("zero-refused", "#movement-form-quantity-error").await;
    assert_eq!(s.attr("qty-invalid", "#m-qty", "aria-invalid").await, "true");
    assert!(s.text("zero-summary", "#movement-form-errors").await.contains("数量"));
    s.width(375, 812).await;
    s.shot("depot-refused-375").await;
    s.axe("depot-refused-375").await;
    s.width(1280, 900).await;

    // 队伍: approve a filing, add a member, reveal personal data deliberately.
    s.goto("teams", "/teams?filing_status=submitted").await;
    s.axe("teams").await;
    s.click("team", "#teams a").await;
    s.wait_for("team-page", "#filing-status").await;
    s.click("approve-team", "form[action$='/approve'] button").await;
    s.wait_url("team-approved", "done=approve").await;
    assert_eq!(s.text("approved", "#filing-status").await, "已备案");
    // A wrong ID number: the form comes back with the name kept and the message beside the field.
    s.fill("m-name-bad", "#m-name", "乌云").await;
    s.fill("m-id-bad", "#m-id", "123456").await;
    s.click("skill-bad", "input[name=skills][value=medical]").await;
    s.click("add-member-bad", "form[action$='/members'] button").await;
    s.wait_for("member-refused", "#member-form-id_number-error").await;
    assert_eq!(s.value("kept-name", "#m-name").await, "乌云");
    assert_eq!(s.attr("id-invalid", "#m-id", "aria-invalid").await, "true");
    assert!(s.value("kept-skill", "input[name=skills][value=medical]:checked").await == "medical");
    s.axe("team-refused").await;
    s.shot("team-refused").await;
    let idn = crate::forces::id_number(77);
    s.fill("m-name", "#m-name", "乌云").await;
    s.fill("m-id", "#m-id", &idn).await;
    s.click("add-member", "form[action$='/members'] button").await;
    s.wait_url("member-added", "done=member").await;
    let table = s.text("members", "#members").await;
    assert!(table.contains("乌云") && !table.contains(&idn), "masked by default: {table}");
    s.axe("team").await;
    s.click("reveal", "form[action$='/reveal'] button").await;
    s.wait_for("revealed", "p.alert").await;
    assert!(s.text("members-revealed", "#members").await.contains(&idn));
    s.width(375, 812).await;
    s.shot("team-375").await;
    s.axe("team-375").await;
    // 演练: this month's calendar shows a drill scheduled through the API.
    let mut drill = json!({
        "title": "满都拉图镇草原火灾扑救实战演练", "form": "field", "scope": "comprehensive", "purpose": "test",
        "objective": "检验草原火灾专项预案", "region": MANDULATU, "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府"], "place_name": "白音哈拉图嘎查北草场", "lon": 113.7, "lat": 43.9,
        "starts_at": "2026-11-28T09:00:00+08:00", "ends_at": "2026-11-28T12:00:00+08:00"
    });
    app.post(&admin, "/api/v1/drills", &drill).await.expect(201);
    drill["title"] = json!("下月演练");
    drill["starts_at"] = json!("2026-12-02T09:00:00+08:00");
    drill["ends_at"] = json!("2026-12-02T12:00:00+08:00");
    app.post(&admin, "/api/v1/drills", &drill).await.expect(201);
    s.width(1280, 900).await;
    s.goto("drills", "/drills").await;
    assert_eq!(s.text("month", "#month").await, "2026 年 11 月");
    let cal = s.text("calendar", "#calendar").await;
    assert!(cal.contains("满都拉图镇草原火灾扑救实战演练") && !cal.contains("下月演练"), "{cal}");
    s.axe("drills").await;
    s.shot("drills-desktop").await;
    s.width(375, 812).await;
    s.shot("drills-375").await;
    s.axe("drills-375").await;

    // 检查: the findings list, and a run started from the page.
    s.width(1280, 900).await;
    s.goto("readiness", "/readiness").await;
    s.axe("readiness").await;
    s.click("run", "#run-form button").await;
    s.wait_url("run", "run=").await;
    s.wait_for("ran", "#ran").await;
    assert!(s.text("ran-text", "#ran").await.starts_with("检查完成"));
    s.width(375, 812).await;
    s.shot("readiness-375").await;
    s.axe("readiness-375").await;
    let reveals: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'reveal' AND actor = 'li'"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(reveals, 1, "the reveal is audited");
    let _ = s.c.close().await;
}

/// A readiness run started from the 检查 page runs in the background: the page shows its progress
/// bar (a run held at step 3 of 8 here, so the bar is seen mid-way), refreshed by
/// `assets/web/progress.js` once a second and by a link without JavaScript, and the summary once
/// the run is done.
#[tokio::test]
async fn a_readiness_run_shows_its_progress_bar_until_done_in_a_real_browser() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    create_user(&app, "zhao", Role::Admin, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };
    s.login("zhao").await;

    // A run under way, held at step 3 of 8.
    let (id, now) = yingji::readiness::engine::start(&app.state, "api").await.unwrap();
    yingji::readiness::store::set_progress(&app.state.db, id, 3, 8, "检查应急物资").await.unwrap();
    s.goto("running", &format!("/readiness?run={id}#run")).await;
    s.wait_for("bar", "#run-bar").await;
    assert_eq!(s.attr("bar-max", "#run-bar", "max").await, "8");
    assert_eq!(s.attr("bar-value", "#run-bar", "value").await, "3");
    assert!(s.text("bar-text", "#run-text").await.contains("3 / 8"));
    assert!(s.attr("refresh", "#run-refresh", "href").await.ends_with(&format!("/readiness?run={id}#run")));
    s.axe("readiness-running").await;
    s.shot("readiness-progress-desktop").await;
    // The script moves the bar without a reload.
    yingji::readiness::store::set_progress(&app.state.db, id, 5, 8, "核销已解决的问题").await.unwrap();
    let mut moved = false;
    for _ in 0..50 {
        if s.attr("bar-moved", "#run-bar", "value").await == "5" {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the bar follows the run");
    assert!(s.text("bar-text-5", "#run-text").await.contains("核销已解决的问题"));
    s.width(375, 812).await;
    s.shot("readiness-progress-375").await;
    s.axe("readiness-running-375").await;

    // The run finishes: the page reloads itself and shows the full bar and the summary.
    yingji::readiness::engine::execute(&app.state, id, now).await.unwrap();
    s.wait_for("ran", "#ran").await;
    assert!(s.text("ran-text", "#ran").await.starts_with("检查完成"));
    assert_eq!(s.attr("done-max", "#run-bar", "max").await, "8");
    assert_eq!(s.attr("done-value", "#run-bar", "value").await, "8");
    s.shot("readiness-done-375").await;
    s.width(1280, 900).await;
    s.shot("readiness-done-desktop").await;
    s.axe("readiness-done").await;

    // Started from the page: the POST answers at once with the run's page.
    s.goto("page", "/readiness").await;
    s.click("run", "#run-form button").await;
    s.wait_url("run", "run=").await;
    s.wait_for("ran-2", "#ran").await;
    let runs: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM readiness_runs WHERE status = 'succeeded' AND progress_done = 8"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(runs, 2);
    let _ = s.c.close().await;
}
