//! The console in a real browser: headless Debian Chromium driven over WebDriver (fantoccini)
//! through login, 今日 and 地图 with the "nearest" question, at desktop width and at 375 px, with
//! axe-core (vendored under tests/assets for the tests only) asserting no serious or critical
//! accessibility violations on each page. Screenshots go to `target/browser-screenshots/`; a
//! failing step saves one named after the step.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`);
//! `scripts/test.sh` installs or finds them. Without them the test says so loudly and skips,
//! unless `YINGJI_BROWSER_TESTS=required`, when it fails. Runs on both databases, like every
//! test here (`scripts/test.sh` runs the suite on SQLite, then on PostgreSQL).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, PointerAction, TouchActions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use yingji::auth::Role;

use crate::common::*;
use crate::console::{PASSWORD, create_user};
use crate::forces::{approve, new_member, new_team, north};

const AXE: &str = include_str!("../assets/axe-core/axe.min.js");
const QUILT: &str = "1999905";

fn find(cmd: &str, env: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join(cmd)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.exists())
}

/// chromedriver on a free port, stopped when dropped.
pub(crate) struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The browser, or None (after saying why) when it is not installed.
pub(crate) async fn browser() -> Option<(Driver, Client, PathBuf)> {
    let (Some(driver), Some(chromium)) = (find("chromedriver", "CHROMEDRIVER"), find("chromium", "CHROMIUM")) else {
        let msg = "!!! BROWSER TESTS SKIPPED: chromium and/or chromedriver not found (apt-get install chromium chromium-driver)";
        assert!(std::env::var("YINGJI_BROWSER_TESTS").as_deref() != Ok("required"), "{msg}");
        eprintln!("{msg}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!("yingji-chromium-{}", yingji::auth::tokens::random_hex16()));
    let d = Driver { child, port, profile: profile.clone() };
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=zh-CN",
                     format!("--user-data-dir={}", profile.display())]
        }
    });
    let caps: serde_json::Map<String, Value> = caps.as_object().unwrap().clone();
    let mut last = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", d.port))
            .await
        {
            Ok(c) => {
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
                std::fs::create_dir_all(&dir).unwrap();
                return Some((d, c, dir));
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer: {last:?}");
}

/// A browser session with named steps: a failing step saves a screenshot and fails the test.
pub(crate) struct Steps {
    pub(crate) c: Client,
    pub(crate) dir: PathBuf,
    pub(crate) base: String,
}

impl Steps {
    pub(crate) async fn shot(&self, name: &str) {
        if let Ok(png) = self.c.screenshot().await {
            let _ = std::fs::write(self.dir.join(format!("{name}.png")), png);
        }
    }

    /// Logs in as `name` (with the console tests' password) from the login page and waits for
    /// 今日, where a login without `next` leads.
    pub(crate) async fn login(&self, name: &str) {
        self.goto("open-login", "/login").await;
        self.fill("login-name", "#name", name).await;
        self.fill("login-password", "#password", PASSWORD).await;
        self.click("login-submit", "button[type=submit]").await;
        self.wait_url("logged-in", "/today").await;
        self.wait_for("today", "main h1").await;
    }

    /// Scrolls the element into view (for a screenshot of a part below the fold).
    pub(crate) async fn scroll_to(&self, css: &str) {
        let r = self.c.execute("document.querySelector(arguments[0]).scrollIntoView();", vec![json!(css)]).await;
        self.check(&format!("scroll-to-{css}"), r).await;
    }

    pub(crate) async fn check<T, E: std::fmt::Debug>(&self, step: &str, r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.shot(&format!("FAILED-{step}")).await;
                panic!("browser step {step:?} failed: {e:?} (screenshot target/browser-screenshots/FAILED-{step}.png)");
            }
        }
    }

    pub(crate) async fn goto(&self, step: &str, path: &str) {
        let r = self.c.goto(&format!("{}{path}", self.base)).await;
        self.check(step, r).await;
    }

    pub(crate) async fn path(&self) -> String {
        self.c.current_url().await.map(|u| u.path().to_string()).unwrap_or_default()
    }

    pub(crate) async fn text(&self, step: &str, css: &str) -> String {
        let r = async { self.c.find(Locator::Css(css)).await?.text().await }.await;
        self.check(step, r).await
    }

    pub(crate) async fn fill(&self, step: &str, css: &str, value: &str) {
        let r = async {
            let e = self.c.find(Locator::Css(css)).await?;
            e.clear().await?;
            e.send_keys(value).await
        }
        .await;
        self.check(step, r).await
    }

    /// The current value of a form control.
    pub(crate) async fn value(&self, step: &str, css: &str) -> String {
        let r = async { self.c.find(Locator::Css(css)).await?.prop("value").await }.await;
        self.check(step, r).await.unwrap_or_default()
    }

    /// An attribute of an element (empty when absent).
    pub(crate) async fn attr(&self, step: &str, css: &str, name: &str) -> String {
        let r = async { self.c.find(Locator::Css(css)).await?.attr(name).await }.await;
        self.check(step, r).await.unwrap_or_default()
    }

    /// Sets a control's value by script (date and time pickers do not take typed keys alike in
    /// every locale).
    pub(crate) async fn set(&self, step: &str, css: &str, value: &str) {
        let r = self
            .c
            .execute("document.querySelector(arguments[0]).value = arguments[1];", vec![json!(css), json!(value)])
            .await;
        self.check(step, r).await;
    }

    pub(crate) async fn select(&self, step: &str, css: &str, value: &str) {
        let r = async { self.c.find(Locator::Css(css)).await?.select_by_value(value).await }.await;
        self.check(step, r).await
    }

    pub(crate) async fn click(&self, step: &str, css: &str) {
        let r = async { self.c.find(Locator::Css(css)).await?.click().await }.await;
        self.check(step, r).await
    }

    /// Waits up to 20 s for an element. A lookup cut short because the page navigated (a script
    /// that uploads and then loads the result, a form post) is tried again on the new page.
    pub(crate) async fn wait_for(&self, step: &str, css: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await;
            match r {
                Err(e)
                    if format!("{e:?}").contains("aborted by navigation") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => {
                    self.check(step, r).await;
                    return;
                }
            }
        }
    }

    /// Waits until the address contains `needle` (the page after a form post).
    pub(crate) async fn wait_url(&self, step: &str, needle: &str) {
        for _ in 0..200 {
            if self.c.current_url().await.is_ok_and(|u| u.as_str().contains(needle)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.check(step, Err::<(), _>(format!("address never contained {needle:?}"))).await;
    }

    pub(crate) async fn width(&self, w: u32, h: u32) {
        let r = self.c.set_window_size(w, h).await;
        self.check("resize", r).await;
    }

    /// Runs axe-core on the page; fails on any serious or critical violation.
    pub(crate) async fn axe(&self, page: &str) {
        let r = self.c.execute(&format!("{AXE}\nreturn typeof window.axe;"), vec![]).await;
        self.check(&format!("axe-load-{page}"), r).await;
        let r = self
            .c
            .execute_async(
                "var done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
                   done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                     .map(function (v) { return v.impact + ' ' + v.id + ': ' + v.help + ' @ ' +
                       v.nodes.slice(0, 3).map(function (n) { return n.target.join(' '); }).join(' | '); }));
                 }, function (e) { done(['axe failed: ' + e]); });",
                vec![],
            )
            .await;
        let v = self.check(&format!("axe-{page}"), r).await;
        let found: Vec<String> = serde_json::from_value(v).unwrap_or_default();
        if !found.is_empty() {
            self.shot(&format!("FAILED-axe-{page}")).await;
            panic!("axe-core: serious or critical violations on {page}: {found:#?}");
        }
    }
}

/// Depots with quilts, approved teams with insured members, township locations, one readiness run.
pub(crate) async fn seed(app: &TestApp) {
    let admin = app.admin().await;
    for (code, lon, lat) in [(MANDULATU, 113.644, 43.852), (CHAGANAOBAO, 113.2, 44.3), ("152523102000", 114.3, 43.5)] {
        app.patch(&admin, &format!("/api/v1/regions/{code}"), &json!({"lon": lon, "lat": lat})).await.expect(200);
    }
    for (i, (code, km, qty)) in [("D1", 20.0, 60), ("D2", 60.0, 30)].iter().enumerate() {
        let (lon, lat) = north(*km);
        let body = json!({"code": code, "name": format!("{code}储备点"), "region_code": MANDULATU, "kind": "township_point", "lon": lon, "lat": lat});
        let id = app.post(&admin, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap();
        let m = json!({"kind": "receive", "item_code": QUILT, "quantity": qty, "batch": format!("B{i}"), "reserve_mode": "physical"});
        app.post(&admin, &format!("/api/v1/depots/{id}/movements"), &m).await.expect(201);
    }
    for (code, km) in [("T1", 10.0), ("T2", 40.0)] {
        new_team(app, &admin, code, MANDULATU, north(km), json!([{"specialty": "grassland_fire", "grade": 2}])).await;
        approve(app, &admin, code).await;
        new_member(app, &admin, code, if code == "T1" { 1 } else { 2 }, "2027-12-31").await;
    }
    app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200);
}

#[tokio::test]
async fn login_today_and_the_map_work_in_a_real_browser_at_desktop_and_phone_width() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    seed(&app).await;
    create_user(&app, "zhang", Role::Admin, BANNER).await;
    let s = Steps { c, dir, base: app.base.clone() };

    // 1. Login: a page needs a session; a wrong password says so; the right one goes on.
    s.goto("open", "/today").await;
    assert_eq!(s.path().await, "/login");
    s.shot("login-desktop").await;
    s.axe("login").await;
    s.fill("name", "#name", "zhang").await;
    s.fill("password", "#password", "not the password").await;
    s.click("submit-wrong", "button[type=submit]").await;
    s.wait_for("login-error", "#login-error").await;
    assert!(s.text("login-error-text", "#login-error").await.contains("用户名或密码不正确"));
    s.fill("password-again", "#password", PASSWORD).await;
    s.click("submit", "button[type=submit]").await;
    s.wait_for("today", "#score-h").await;
    assert_eq!(s.path().await, "/today");

    // 2. 今日: the score of the latest run and what needs doing.
    assert_eq!(s.text("title", "main h1").await, "今日");
    let score: i64 = s.text("score", "#score-value").await.parse().expect("a score");
    assert!((0..=100).contains(&score));
    s.shot("today-desktop").await;
    s.axe("today").await;
    s.width(375, 812).await;
    s.shot("today-375").await;
    s.axe("today-375").await;
    s.width(1280, 900).await;

    // 3. 地图: layers load; pick a township, ask for 100 quilts and 2 grassland-fire teams.
    s.click("nav-map", "nav a[href='/map']").await;
    s.wait_for("map-loaded", "#map[data-loaded=true]").await;
    s.axe("map").await;
    s.select("place", "#place", "113.644,43.852").await;
    s.select("item", "#item", QUILT).await;
    s.fill("quantity", "#quantity", "100").await;
    s.select("specialty", "#specialty", "grassland_fire").await;
    s.fill("teams", "#teams", "2").await;
    s.click("ask", "#nearest-form button[type=submit]").await;
    s.wait_for("answer", "#nearest-result[data-done=true]").await;
    let answer = s.text("answer-text", "#nearest-result").await;
    assert!(answer.contains("已从最近的储备库分配 90 床") && answer.contains("缺口 10 床"), "{answer}");
    assert!(answer.contains("找到 2 支"), "{answer}");
    let lines = s.check("lines", s.c.find_all(Locator::Css(".leaflet-tooltip.dist")).await).await;
    assert_eq!(lines.len(), 4, "two depots and two teams drawn with their distances");
    let _ = s.c.execute("window.scrollTo(0, 0)", vec![]).await;
    s.shot("map-desktop").await;

    // 6. Phone: the map answers a tap.
    s.width(375, 812).await;
    s.goto("map-phone", "/map").await;
    s.wait_for("map-phone-loaded", "#map[data-loaded=true]").await;
    // A finger tap off-centre (the centre holds the township's own marker, whose tap opens its popup).
    let map_el = s.check("find-map", s.c.find(Locator::Css("#map")).await).await;
    let tap = TouchActions::new("finger".into())
        .then(PointerAction::MoveToElement { element: map_el, duration: None, x: 60.0, y: 80.0 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    let r = s.c.perform_actions(tap).await;
    s.check("tap-map", r).await;
    let lon = s.check("lon", async { s.c.find(Locator::Css("#lon")).await?.prop("value").await }.await).await;
    assert!(lon.is_some_and(|v| !v.is_empty()), "a tap sets the point");
    s.shot("map-375").await;
    s.axe("map-375").await;

    // Logout ends the session.
    s.click("logout", "form[action='/logout'] button").await;
    s.wait_for("back-to-login", "#password").await;
    s.goto("after-logout", "/map").await;
    assert_eq!(s.path().await, "/login");
    let _ = s.c.close().await;
}
