//! Hard kills: the real binary (`cargo build` output) is killed with SIGKILL while reminders and
//! deliveries are claimed but unfinished, and restarted; every reminder still reaches the
//! webhook, under one key each, and no claim is stranded once the lease has run out.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use serde_json::json;
use yingji::time::Timestamp;

use crate::common::*;
use crate::receiver::Receiver;

/// Lease used by the killed and restarted services, seconds.
const LEASE_SECONDS: u64 = 3;

/// A service process, killed when dropped.
struct Service(Child);

impl Service {
    fn start(db_url: &str, name: &str) -> Service {
        let log = std::env::temp_dir().join(format!("yingji-crash-{name}-{}.log", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_yingji"))
            .arg("serve")
            .env("DATABASE_URL", db_url)
            .env("YINGJI_LISTEN", "127.0.0.1:0")
            .env("YINGJI_PII_KEY", TEST_PII_KEY)
            .env("YINGJI_LEASE_SECONDS", LEASE_SECONDS.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .spawn()
            .expect("the yingji binary starts");
        Service(child)
    }

    /// SIGKILL: no graceful stop, no chance to release anything.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap())
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + StdDuration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Prepares a database with a webhook channel and `n` reminders due in two seconds (real time);
/// returns the preparing app (scheduler off), the receiver, and the expected delivery keys.
async fn prepare(db: TestDb, n: usize, delay: StdDuration) -> (TestApp, Receiver, BTreeSet<String>) {
    let url = db.url.clone();
    let setup = TestApp::spawn_with(Some(db), &url, |_| {}).await;
    setup.clock.set(Utc::now());
    let admin = setup.admin().await;
    // The schedules were set up at the preparing app's clock (2026-11-27 08:00 Beijing time) but
    // the killed services run on the real clock: from the next morning on, the daily readiness
    // check is overdue when they start, runs at once and sends its findings to this channel.
    setup.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"enabled": false})).await.expect(200);
    let rx = Receiver::start_holding(64, StdDuration::from_secs(2), delay).await;
    let ch = setup
        .post(
            &admin,
            "/api/v1/channels",
            &json!({"region": MANDULATU, "kind": "webhook", "name": "满都拉图镇应急办", "url": rx.url("/hook")}),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let now = Timestamp(Utc::now());
    let due = Timestamp(now.0 + chrono::Duration::seconds(2));
    let drills = yingji::bench::burst::plant_reminders(&setup.state.db, MANDULATU, n, due, now).await.unwrap();
    let starts = (due.0 + chrono::Duration::days(1)).timestamp();
    let expected: BTreeSet<String> =
        (0..n).map(|i| format!("drill:{}:{starts}:{}:{MANDULATU}:ch{ch}", drills[i / 1000], i % 1000 + 1)).collect();
    (setup, rx, expected)
}

/// The reminders' deliveries among everything the receiver got (should any other schedule the
/// services run on the real clock send to the same channel, it is none of these tests' business).
fn reminder_keys(rx: &Receiver) -> BTreeSet<String> {
    rx.keys().into_iter().filter(|k| k.starts_with("drill:")).collect()
}

/// How many reminder requests arrived, repeats included.
fn reminders_received(rx: &Receiver) -> usize {
    rx.received().iter().filter(|r| r.key.starts_with("drill:")).count()
}

/// The reminders' outbox rows (webhook and in-app) in `status` (`<> 'delivered'` and so on).
async fn reminder_deliveries(app: &TestApp, status: &str) -> i64 {
    count(app, &format!("SELECT COUNT(*) FROM outbox WHERE idempotency_key LIKE 'drill:%' AND status {status}")).await
}

/// After every key arrived and the lease has run out: nothing is left claimed or undelivered.
async fn assert_nothing_stranded(setup: &TestApp, n: usize) {
    tokio::time::sleep(StdDuration::from_secs(LEASE_SECONDS + 1)).await;
    let sending = reminder_deliveries(setup, "<> 'delivered'").await;
    let claimed = count(setup, "SELECT COUNT(*) FROM drill_reminders WHERE status <> 'sent'").await;
    let delivered = reminder_deliveries(setup, "= 'delivered'").await;
    assert_eq!((sending, claimed), (0, 0), "no stranded claim, nothing undelivered");
    assert_eq!(delivered, 2 * n as i64, "every reminder's webhook and in-app delivery");
}

#[tokio::test]
async fn a_service_killed_with_sigkill_mid_work_loses_nothing_after_restart() {
    let n = 8000;
    let (setup, rx, expected) = prepare(fresh_db().await, n, StdDuration::from_millis(5)).await;
    let mut first = Service::start(&setup.db_url, "first");
    // Kill it as soon as deliveries flow, while reminders are still being worked on. The receiver
    // holds its first batch of requests for 2 s, so that batch is claimed and unfinished at the
    // kill however busy the machine is.
    wait_for("the first deliveries", 60, || rx.arrived() > 0).await;
    first.kill();
    let at_kill = reminders_received(&rx);
    let in_flight = reminder_deliveries(&setup, "= 'sending'").await;
    let reminders_claimed =
        count(&setup, "SELECT COUNT(*) FROM drill_reminders WHERE status = 'pending' AND lease IS NOT NULL").await;
    let reminders_left = count(&setup, "SELECT COUNT(*) FROM drill_reminders WHERE status = 'pending'").await;
    let undelivered = reminder_deliveries(&setup, "<> 'delivered'").await;
    eprintln!(
        "killed after {at_kill} requests: {in_flight} deliveries claimed and unfinished, {reminders_claimed} reminders \
         claimed and unfinished, {reminders_left} reminders not yet processed, {undelivered} deliveries outstanding"
    );
    assert!(in_flight > 0, "deliveries were claimed and unfinished at the kill");
    assert!(reminders_left > 0, "reminders were still to be processed at the kill");
    assert!(at_kill < n, "killed before the work was done");

    let _second = Service::start(&setup.db_url, "second");
    wait_for("every reminder", 120, || reminder_keys(&rx).len() >= n).await;
    assert_eq!(reminder_keys(&rx), expected, "every reminder reached the webhook under its own key");
    let repeats = reminders_received(&rx) - n;
    assert!(repeats as i64 <= in_flight, "only claims in flight at the kill may repeat ({repeats} > {in_flight})");
    assert_nothing_stranded(&setup, n).await;
}

#[tokio::test]
async fn two_instances_on_postgresql_with_one_killed_mid_batch_deliver_everything() {
    if std::env::var("YINGJI_TEST_DATABASE_URL").map(|v| v.is_empty()).unwrap_or(true) {
        eprintln!(
            "SKIPPED two_instances_on_postgresql_with_one_killed_mid_batch: set YINGJI_TEST_DATABASE_URL to run it"
        );
        return;
    }
    let n = 3000;
    let (setup, rx, expected) = prepare(fresh_db().await, n, StdDuration::from_millis(20)).await;
    let mut a = Service::start(&setup.db_url, "pg-a");
    let _b = Service::start(&setup.db_url, "pg-b");
    wait_for("the first deliveries", 60, || reminders_received(&rx) >= 300).await;
    a.kill();
    let in_flight = reminder_deliveries(&setup, "= 'sending'").await;
    eprintln!("killed instance a after {} requests; {in_flight} deliveries claimed", reminders_received(&rx));
    wait_for("every reminder", 120, || reminder_keys(&rx).len() >= n).await;
    assert_eq!(reminder_keys(&rx), expected);
    let repeats = reminders_received(&rx) - n;
    assert!(repeats as i64 <= in_flight, "repeats only from claims in flight at the kill ({repeats} > {in_flight})");
    assert_nothing_stranded(&setup, n).await;
}
