//! 事件上报 and the board's buttons over plain HTTP: who may open the form and post it (the
//! API's rules: operators and up, inside their jurisdiction), the region's own point when none is
//! given, errors beside the fields, and the buttons each role gets. (In a real browser:
//! `browser_events.rs`.)

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;
use yingji::auth::Role;

use crate::common::*;
use crate::console::{Browser, create_user, login};

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn page(app: &TestApp, who: &Browser, path: &str) -> (StatusCode, String) {
    let r = client().get(app.url(path)).header(COOKIE, &who.cookie).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The 事件上报 form as a browser without JavaScript sends it (no point: the region's).
fn fields<'a>(csrf: &'a str, region: &'a str, dead: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("hazard", "snow_disaster"),
        ("title", "白音哈拉图嘎查白灾"),
        ("severity", "general"),
        ("occurred_at", "2026-11-27T06:00"),
        ("known_at", "2026-11-27T07:00"),
        ("description", "积雪 40 厘米"),
        ("dead", dead),
        ("affected_livestock", "800"),
        ("source", "牧民电话"),
        ("reporter", "牧民 其其格"),
        ("region_code", region),
        ("place", "白音哈拉图嘎查"),
        ("lon", ""),
        ("lat", ""),
        ("drill_id", ""),
    ]
}

async fn post(app: &TestApp, who: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client().post(app.url(path)).header(COOKIE, &who.cookie).form(form).send().await.unwrap()
}

async fn events(app: &TestApp) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
        .fetch_one(p)
        .await
        .unwrap())
}

#[tokio::test]
async fn the_event_report_form_follows_the_apis_rules_and_shows_errors_beside_fields() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.patch(&admin, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": 113.6, "lat": 43.9})).await.expect(200);
    create_user(&app, "op", Role::Operator, MANDULATU).await;
    create_user(&app, "kan", Role::Viewer, MANDULATU).await;
    let op = login(&app, "op").await;
    let viewer = login(&app, "kan").await;

    // A viewer gets neither the button nor the form, and a post is refused by the API.
    let (_, list) = page(&app, &viewer, "/events").await;
    assert!(!list.contains("id=\"new-event\""));
    assert_eq!(page(&app, &viewer, "/events/new").await.0, StatusCode::FORBIDDEN);
    let r = post(&app, &viewer, "/events/new", &fields(&viewer.csrf, MANDULATU, "")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // An operator of 满都拉图镇 is offered the township's regions only; another township is
    // refused by the API, as is a form without the session's CSRF token.
    let (_, list) = page(&app, &op, "/events").await;
    assert!(list.contains("id=\"new-event\""));
    let (status, form) = page(&app, &op, "/events/new").await;
    assert_eq!(status, 200);
    assert!(form.contains(&format!("value=\"{MANDULATU}\"")) && !form.contains(&format!("value=\"{CHAGANAOBAO}\"")));
    let r = post(&app, &op, "/events/new", &fields(&op.csrf, CHAGANAOBAO, "")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(&app, &op, "/events/new", &fields(&"0".repeat(48), MANDULATU, "")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A count that is not a number comes back beside its field, with what was typed kept.
    let r = post(&app, &op, "/events/new", &fields(&op.csrf, MANDULATU, "三")).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"event-form-dead-error\"") && html.contains("应为整数"), "{html}");
    assert!(html.contains("value=\"白音哈拉图嘎查白灾\""));
    assert_eq!(events(&app).await, 0, "nothing written by a refused form");

    // Without a point the township's own is used; the board follows.
    let r = post(&app, &op, "/events/new", &fields(&op.csrf, MANDULATU, "0")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.ends_with("?done=created"), "{to}");
    let id: i64 = to.trim_start_matches("/events/").split('?').next().unwrap().parse().unwrap();
    let ev = app.get(&admin, &format!("/api/v1/events/{id}")).await.expect(200).json()["event"].clone();
    assert_eq!(
        (ev["lon"].as_f64(), ev["lat"].as_f64(), ev["created_by"].as_str()),
        (Some(113.6), Some(43.9), Some("op"))
    );
    assert_eq!(ev["affected_livestock"], 800);

    // The operator reports but does not decide: no activation form; the viewer gets no form.
    let (_, board) = page(&app, &op, &format!("/events/{id}")).await;
    assert!(board.contains("id=\"report-form\"") && !board.contains("id=\"activate-form\""));
    let (_, board) = page(&app, &viewer, &format!("/events/{id}")).await;
    assert!(!board.contains("id=\"report-form\"") && board.contains("您的角色只能查看"));
    let r = post(
        &app,
        &viewer,
        &format!("/events/{id}/report"),
        &[("csrf", &viewer.csrf), ("kind", "initial"), ("content", "x")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A refused step (an empty report) comes back beside its field on the board.
    let r =
        post(&app, &op, &format!("/events/{id}/report"), &[("csrf", &op.csrf), ("kind", "initial"), ("content", " ")])
            .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"report-form-content-error\""));
}
