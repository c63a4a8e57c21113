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
