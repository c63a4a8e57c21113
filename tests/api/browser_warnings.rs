//! Warnings in the console, in a real browser: an orange snow warning on 今日 of a township
//! operator, acknowledged with the page's form (CSRF), and the warnings layer of 地图 colouring
//! the covered regions, at desktop width and at 375 px, checked with axe-core.

use fantoccini::Locator;
use serde_json::json;
use yingji::auth::Role;

use crate::browser::{Steps, browser, seed};
use crate::common::*;
use crate::console::create_user;
use crate::warnings::warning_body;

#[tokio::test]
async fn an_active_warning_is_shown_acknowledged_on_today_and_drawn_on_the_map() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    seed(&app).await;
    let admin = app.admin().await;
    let w = app
        .post(&admin, "/api/v1/warnings", &warning_body(&[MANDULATU, CHAGANAOBAO], 2, json!({})))
        .await
        .expect(201)
        .json();
    create_user(&app, "wang", Role::Operator, MANDULATU).await;
    let s = Steps { c, dir, base: app.base.clone() };

    s.login("wang").await;
    s.wait_for("today", "#warnings-h").await;

    // 今日: the warning, its level in words, and the acknowledgement form.
    let section = s.text("warnings", "#warnings").await;
    assert!(section.contains("二级（橙色）") && section.contains("暴雪橙色预警"), "{section}");
    s.shot("today-warning-desktop").await;
    s.axe("today-warning").await;
    s.width(375, 812).await;
    s.shot("today-warning-375").await;
    s.axe("today-warning-375").await;
    s.width(1280, 900).await;
    s.click("ack", &format!("form[action='/today/warnings/{}/ack'] button", w["id"])).await;
    s.wait_url("acked", "acked=").await;
    let section = s.text("warnings-after", "#warnings").await;
    assert!(section.contains("本辖区已签收"), "{section}");
    let acks = app.get(&admin, &format!("/api/v1/warnings/{}/acks", w["id"])).await.expect(200).json();
    let own = acks["items"].as_array().unwrap().iter().find(|r| r["region_code"] == MANDULATU).cloned().unwrap();
    assert_eq!((own["ack_status"].as_str(), own["acked_by"].as_str()), (Some("acknowledged"), Some("wang")));

    // 地图: the township's own region is drawn in the warning layer.
    s.click("nav-map", "nav a[href='/map']").await;
    s.wait_for("map-loaded", "#map[data-loaded=true]").await;
    let covered =
        s.check("covered", async { s.c.find(Locator::Css("#map")).await?.attr("data-warnings").await }.await).await;
    assert_eq!(covered.as_deref(), Some("1"), "the operator's township is the one covered region it sees");
    s.shot("map-warning-desktop").await;
    s.axe("map-warning").await;
    s.width(375, 812).await;
    s.goto("map-phone", "/map").await;
    s.wait_for("map-phone-loaded", "#map[data-loaded=true]").await;
    s.shot("map-warning-375").await;
    let _ = s.c.close().await;
}
