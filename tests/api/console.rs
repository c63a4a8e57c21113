//! The web console over plain HTTP: users, login and logout, sessions, CSRF, slowed and audited
//! failed logins, the pages' permissions, and the API read with a session cookie.
//! (The pages in a real browser: `browser.rs`.)

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use yingji::audit::Actor;
use yingji::auth::Role;
use yingji::auth::users;
use yingji::regions::RegionCode;
use yingji::time::Timestamp;

use crate::common::*;

pub(crate) const PASSWORD: &str = "草原防火-2026-secret";

/// A client that does not follow redirects (the tests look at them).
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Creates a console user through the same function the CLI uses.
pub(crate) async fn create_user(app: &TestApp, name: &str, role: Role, region: &str) {
    users::create(
        &app.state.db,
        &Actor::cli(),
        Timestamp(app.clock.now_utc()),
        name,
        role,
        &RegionCode::parse(region).unwrap(),
        PASSWORD,
    )
    .await
    .expect("user created");
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("page has a csrf field") + 19;
    html[at..at + 48].to_string()
}

/// Posts the login form like a browser: GET the form (CSRF cookie), POST it back.
pub(crate) async fn post_login(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    let c = client();
    let form = c.get(app.url("/login")).send().await.unwrap();
    let csrf = cookie_value(&set_cookie(&form, "yj_login_csrf").expect("login csrf cookie"));
    assert_eq!(hidden_csrf(&form.text().await.unwrap()), csrf);
    c.post(app.url("/login"))
        .header(COOKIE, format!("yj_login_csrf={csrf}"))
        .form(&[("name", name), ("password", password), ("csrf", csrf.as_str()), ("next", "/map")])
        .send()
        .await
        .unwrap()
}

/// A logged-in browser: its session cookie and the CSRF token of its forms.
pub(crate) struct Browser {
    pub cookie: String,
    pub csrf: String,
}

pub(crate) async fn login(app: &TestApp, name: &str) -> Browser {
    let r = post_login(app, name, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sc = set_cookie(&r, "yj_session").expect("session cookie");
    let cookie = format!("yj_session={}", cookie_value(&sc));
    let today = client().get(app.url("/today")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(today.status(), 200);
    let csrf = hidden_csrf(&today.text().await.unwrap());
    Browser { cookie, csrf }
}

#[tokio::test]
async fn login_sets_a_protected_session_and_logout_needs_the_csrf_token() {
    let app = TestApp::spawn().await;
    create_user(&app, "planner1", Role::Planner, MANDULATU).await;

    // Not logged in: pages send you to the login form, which comes back afterwards.
    let r = client().get(app.url("/map")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2Fmap");

    let r = post_login(&app, "planner1", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/map");
    let sc = set_cookie(&r, "yj_session").unwrap();
    assert!(sc.contains("HttpOnly") && sc.contains("SameSite=Lax") && sc.contains("Path=/"), "{sc}");
    let b = login(&app, "planner1").await;

    let page = client().get(app.url("/today")).header(COOKIE, &b.cookie).send().await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">") && html.contains("planner1") && html.contains("满都拉图镇"));

    // A form post without the session's token is refused and changes nothing.
    let r = client()
        .post(app.url("/logout"))
        .header(COOKIE, &b.cookie)
        .form(&[("csrf", "0".repeat(48))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("CSRF"));
    assert_eq!(client().get(app.url("/today")).header(COOKIE, &b.cookie).send().await.unwrap().status(), 200);

    let r =
        client().post(app.url("/logout")).header(COOKIE, &b.cookie).form(&[("csrf", &b.csrf)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&r, "yj_session").unwrap().contains("Max-Age=0"));
    let r = client().get(app.url("/today")).header(COOKIE, &b.cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the ended session no longer works");

    let admin = app.admin().await;
    let uid = users::by_name(&app.state.db, "planner1").await.unwrap().unwrap().id.to_string();
    let actions: Vec<String> = app.audit_rows("user", &uid).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(actions, ["logout", "login", "login", "create"], "{actions:?}");
    let _ = admin;
}

#[tokio::test]
async fn the_login_form_needs_its_csrf_cookie_and_says_nothing_about_which_part_was_wrong() {
    let app = TestApp::spawn().await;
    create_user(&app, "op", Role::Operator, MANDULATU).await;
    let r = client()
        .post(app.url("/login"))
        .form(&[("name", "op"), ("password", PASSWORD), ("csrf", &"a".repeat(48))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "yj_session").is_none());
    assert!(r.text().await.unwrap().contains("登录表单已过期"));

    let wrong_pw = post_login(&app, "op", "wrong password!!").await;
    assert_eq!(wrong_pw.status(), 401);
    let wrong_name = post_login(&app, "nobody", PASSWORD).await;
    assert_eq!(wrong_name.status(), 401);
    for r in [wrong_pw, wrong_name] {
        assert!(set_cookie(&r, "yj_session").is_none());
        assert!(r.text().await.unwrap().contains("用户名或密码不正确"));
    }
    // Both failures are audited, by the name that was tried.
    assert_eq!(app.audit_rows("user", "op").await.len(), 1);
    assert_eq!(app.audit_rows("user", "nobody").await.len(), 1);
}

#[tokio::test]
async fn repeated_failures_are_slowed_then_refused_even_with_the_right_password() {
    let app = TestApp::spawn().await;
    create_user(&app, "viewer1", Role::Viewer, MANDULATU).await;
    for _ in 0..yingji::auth::login::FREE_FAILURES {
        assert_eq!(post_login(&app, "viewer1", "guess guess guess").await.status(), 401);
    }
    let started = std::time::Instant::now();
    assert_eq!(post_login(&app, "viewer1", "guess guess guess").await.status(), 401);
    assert!(started.elapsed() >= std::time::Duration::from_millis(500), "the next guess waits");
    // The right password still works while the name is only slowed.
    assert_eq!(post_login(&app, "viewer1", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // Reach the lock (failures recorded directly, to keep the test short).
    let now = Timestamp(app.clock.now_utc());
    for _ in 0..yingji::auth::login::LOCK_FAILURES {
        yingji::with_db!(&app.state.db, |p| sqlx::query("INSERT INTO login_failures (user_name, at) VALUES ($1, $2)")
            .bind("viewer1")
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
            .unwrap());
    }
    let r = post_login(&app, "viewer1", PASSWORD).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("登录失败次数过多"));
    let reasons: Vec<String> = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_scalar(
        "SELECT CAST(after_state AS TEXT) FROM audit_log WHERE entity_type = 'user' AND entity_id = 'viewer1' AND action = 'login_failed' ORDER BY id"
    )
    .fetch_all(p)
    .await
    .unwrap()
    });
    assert_eq!(reasons.len(), yingji::auth::login::FREE_FAILURES as usize + 2);
    assert!(reasons.last().unwrap().contains("locked"), "{reasons:?}");

    // The window passes: the name works again.
    app.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(post_login(&app, "viewer1", PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn disabling_a_user_ends_sessions_and_tokens_and_a_new_password_ends_sessions() {
    let app = TestApp::spawn().await;
    create_user(&app, "op2", Role::Operator, MANDULATU).await;
    let b = login(&app, "op2").await;
    let now = Timestamp(app.clock.now_utc());
    users::set_password(&app.state.db, &Actor::cli(), now, "op2", "another password 2026").await.unwrap();
    let r = client().get(app.url("/today")).header(COOKIE, &b.cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "a new password ends the old sessions");
    assert_eq!(post_login(&app, "op2", PASSWORD).await.status(), 401);
    assert_eq!(post_login(&app, "op2", "another password 2026").await.status(), StatusCode::SEE_OTHER);
    let e = users::set_password(&app.state.db, &Actor::cli(), now, "op2", "short").await.unwrap_err();
    assert_eq!(e.status(), 422);

    users::disable(&app.state.db, &Actor::cli(), now, "op2").await.unwrap();
    assert_eq!(post_login(&app, "op2", "another password 2026").await.status(), 401);
    let dup = users::create(
        &app.state.db,
        &Actor::cli(),
        now,
        "op2",
        Role::Viewer,
        &RegionCode::parse(BANNER).unwrap(),
        PASSWORD,
    )
    .await
    .unwrap_err();
    assert_eq!(dup.status(), 409);
}

#[tokio::test]
async fn pages_read_the_api_with_the_session_but_cannot_change_anything_through_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    create_user(&app, "town", Role::Operator, MANDULATU).await;
    let b = login(&app, "town").await;
    let depot = |code: &str, region: &str| json!({"code": code, "name": format!("{code}储备点"), "region_code": region, "kind": "township_point", "lon": 113.6, "lat": 43.8});
    app.post(&admin, "/api/v1/depots", &depot("IN", MANDULATU)).await.expect(201);
    app.post(&admin, "/api/v1/depots", &depot("OUT", CHAGANAOBAO)).await.expect(201);

    let r = client().get(app.url("/api/v1/depots.geojson")).header(COOKIE, &b.cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let codes: Vec<&str> =
        v["features"].as_array().unwrap().iter().map(|f| f["properties"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["IN"], "the session's jurisdiction applies");

    // A write with only the cookie is not authenticated (forms carry CSRF tokens; the API needs a token).
    let r = client()
        .post(app.url("/api/v1/depots"))
        .header(COOKIE, &b.cookie)
        .json(&depot("X", MANDULATU))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The region layer of the map: the user's jurisdiction only.
    let r = client().get(app.url("/map/regions.json")).header(COOKIE, &b.cookie).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    for f in v["features"].as_array().unwrap() {
        assert!(f["properties"]["code"].as_str().unwrap().starts_with("152523100"), "{f}");
    }
    // Assets are served with their content hash and a long cache.
    let url = yingji::web::assets::url("leaflet.js");
    let r = client().get(app.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(client().get(app.url("/assets/0000000000000000/leaflet.js")).send().await.unwrap().status(), 404);
    // The API keeps answering problem+json for unknown paths.
    let r = client().get(app.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}
