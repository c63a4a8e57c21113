//! Test harness: a real service on an ephemeral port against a fresh database per test (SQLite
//! always; PostgreSQL when `YINGJI_TEST_DATABASE_URL` points at a server).

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use yingji::app::{self, AppState, Config, Server};
use yingji::audit::Actor;
use yingji::auth::Role;
use yingji::clock::{ManualClock, SharedClock};
use yingji::regions::RegionCode;
use yingji::time::Timestamp;

/// The banner.
pub const BANNER: &str = "152523000000";
/// 满都拉图镇.
pub const MANDULATU: &str = "152523100000";
/// 查干敖包镇.
pub const CHAGANAOBAO: &str = "152523101000";

/// The personal-data key tests run with.
pub const TEST_PII_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A fresh database for one test.
pub struct TestDb {
    /// Connection URL.
    pub url: String,
    file: Option<std::path::PathBuf>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", f.display()));
            }
        }
    }
}

fn random_name() -> String {
    yingji::auth::tokens::random_hex16()
}

/// Creates a fresh, empty database (not migrated).
pub async fn fresh_db() -> TestDb {
    match std::env::var("YINGJI_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            use sqlx::Connection;
            let name = format!("yj_test_{}", random_name());
            let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to YINGJI_TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let _ = conn.close().await;
            let (head, _) = base.rsplit_once('/').expect("database url has a path");
            TestDb { url: format!("{head}/{name}"), file: None }
        }
        _ => {
            let path = std::env::temp_dir().join(format!("yingji-test-{}.db", random_name()));
            TestDb { url: format!("sqlite://{}", path.display()), file: Some(path) }
        }
    }
}

/// A running service for one test.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The injected clock (starts at 2026-11-27 08:00 Asia/Shanghai).
    pub clock: Arc<ManualClock>,
    /// Shared state of the running service.
    pub state: Arc<AppState>,
    server: Option<Server>,
    /// The database (kept alive for the test; None when another app owns it).
    pub db: Option<TestDb>,
    /// The database URL.
    pub db_url: String,
}

impl TestApp {
    /// Starts the service on a fresh database.
    pub async fn spawn() -> TestApp {
        let db = fresh_db().await;
        Self::spawn_on(db).await
    }

    /// Starts the service on the given database.
    pub async fn spawn_on(db: TestDb) -> TestApp {
        let url = db.url.clone();
        Self::spawn_with(Some(db), &url, |_| {}).await
    }

    /// Starts the service on a database URL (owning the database when `db` is given), with the
    /// scheduler off unless `configure` turns it on: tests drive it with [`TestApp::tick`].
    pub async fn spawn_with(db: Option<TestDb>, url: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()));
        let mut config = Config::new(url.to_string());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.max_import_bytes = 8 * 1024 * 1024;
        config.pii_key = Some(TEST_PII_KEY.to_string());
        config.scheduler = false;
        configure(&mut config);
        let shared: SharedClock = clock.clone();
        let server = app::start(config, shared).await.expect("service starts");
        TestApp {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::new(),
            clock,
            state: server.state.clone(),
            server: Some(server),
            db,
            db_url: url.to_string(),
        }
    }

    /// Runs one scheduler pass at the injected clock's time.
    pub async fn tick(&self) {
        let now = Timestamp(self.clock.now_utc());
        yingji::scheduler::tick(&self.state, now).await.expect("scheduler tick");
    }

    /// Stops the service gracefully.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Issues a token for a new user with this role and jurisdiction.
    pub async fn token(&self, role: &str, region: &str) -> String {
        let name = format!("{role}-{region}-{}", random_name());
        let issued = yingji::auth::tokens::issue(
            &self.state.db,
            &Actor::cli(),
            Timestamp(self.clock.now_utc()),
            &name,
            Role::parse(role).expect("role"),
            &RegionCode::parse(region).expect("region"),
            None,
        )
        .await
        .expect("token issued");
        issued.token
    }

    /// An admin token for the whole banner.
    pub async fn admin(&self) -> String {
        self.token("admin", BANNER).await
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional token and body (JSON value or raw text with type).
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Body<'_>>) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match body {
            Some(Body::Json(v)) => req = req.json(v),
            Some(Body::Raw(ct, text)) => req = req.header("content-type", ct).body(text.to_string()),
            None => {}
        }
        let resp = req.send().await.expect("request sent");
        Resp::read(resp).await
    }

    /// GET with a token.
    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(token), Some(Body::Json(body))).await
    }

    /// PUT JSON with a token.
    pub async fn put(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.send(Method::PUT, path, Some(token), Some(Body::Json(body))).await
    }

    /// PATCH JSON with a token.
    pub async fn patch(&self, token: &str, path: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, path, Some(token), Some(Body::Json(body))).await
    }

    /// DELETE with a token.
    pub async fn delete(&self, token: &str, path: &str) -> Resp {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    /// POST a CSV body with a token.
    pub async fn post_csv(&self, token: &str, path: &str, csv: &str) -> Resp {
        self.send(Method::POST, path, Some(token), Some(Body::Raw("text/csv", csv))).await
    }

    /// Audit rows for an entity, newest first (read straight from the database).
    pub async fn audit_rows(&self, entity_type: &str, entity_id: &str) -> Vec<(String, String)> {
        yingji::with_db!(&self.state.db, |p| sqlx::query_as::<_, (String, String)>(
            "SELECT action, actor FROM audit_log WHERE entity_type = $1 AND entity_id = $2 ORDER BY id DESC"
        )
        .bind(entity_type)
        .bind(entity_id)
        .fetch_all(p)
        .await
        .expect("audit query"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let trigger = s.shutdown_trigger();
            let _ = trigger.send(true);
        }
    }
}

/// A request body.
pub enum Body<'a> {
    /// JSON.
    Json(&'a Value),
    /// Raw text with a content type.
    Raw(&'a str, &'a str),
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Content type.
    pub content_type: String,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
}

impl Resp {
    async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = r.text().await.unwrap_or_default();
        Resp { status, content_type, headers, text }
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the status, printing the body when it differs; returns self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts a problem+json error with this status; returns the problem document.
    #[track_caller]
    pub fn problem(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.text);
        let v = self.json();
        assert_eq!(v["status"], status);
        assert!(v["title"].is_string() && v["detail"].is_string() && v["type"].is_string(), "{v}");
        v
    }
}

/// Extension to read a manual clock as UTC.
pub trait NowUtc {
    /// The clock's time.
    fn now_utc(&self) -> chrono::DateTime<Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<Utc> {
        use yingji::clock::Clock;
        self.now()
    }
}
