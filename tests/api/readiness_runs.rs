//! Readiness runs as background work: one at a time (a second is refused with 409), a run
//! abandoned by its instance (crash, SIGKILL: nothing renews its lease) is marked failed once
//! its lease has lapsed, and a late instance cannot finish or write for a run declared
//! abandoned. And the write path: what runs store is exactly what the rules find, on a
//! generated banner, after a first run, an unchanged repeat and a day later.

use std::collections::BTreeMap;

use chrono::Duration;
use serde_json::{Value, json};
use yingji::readiness::engine;
use yingji::readiness::store::StartError;
use yingji::time::Timestamp;

use crate::common::*;

async fn status(app: &TestApp, token: &str, id: i64) -> Value {
    app.get(token, &format!("/api/v1/readiness/runs/{id}")).await.expect(200).json()
}

async fn open_count(app: &TestApp) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM readiness_findings WHERE status = 'open'"
    )
    .fetch_one(p)
    .await
    .unwrap())
}

#[tokio::test]
async fn a_second_run_while_one_is_under_way_is_refused_with_409() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Two starts at once: exactly one is recorded, the other learns which run is under way.
    let (a, b) = tokio::join!(engine::start(&app.state, "api"), engine::start(&app.state, "api"));
    let (id, now, refused) = match (a, b) {
        (Ok((id, now)), Err(e)) | (Err(e), Ok((id, now))) => (id, now, e),
        (a, b) => panic!("exactly one start must win: {a:?} {b:?}"),
    };
    assert!(matches!(refused, StartError::Running(r) if r == id), "{refused:?}");
    // Through the API, waiting or not: 409 naming the run under way and where to follow it.
    for path in ["/api/v1/readiness/run", "/api/v1/readiness/run?wait=false"] {
        let p = app.send(reqwest::Method::POST, path, Some(&admin), None).await.problem(409);
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("编号 {id}")), "{p}");
        assert!(detail.contains(&format!("/api/v1/readiness/runs/{id}")), "{p}");
    }
    // The scheduled check is covered by the run under way instead of failing.
    let covered = engine::run_scheduled(&app.state).await.unwrap();
    assert_eq!(covered["covered_by_run"], id, "{covered}");
    assert_eq!(status(&app, &admin, id).await["status"], "running");
    // Once it is done, the next run starts.
    engine::execute(&app.state, id, now).await.unwrap();
    assert_eq!(status(&app, &admin, id).await["status"], "succeeded");
    let next = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert!(next["run_id"].as_i64().unwrap() > id);
}

#[tokio::test]
async fn a_run_abandoned_by_its_instance_fails_once_its_lease_lapses_and_writes_nothing_late() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // A run recorded, then its instance dies: nothing executes it or renews its lease.
    let (id, now) = engine::start(&app.state, "api").await.unwrap();
    app.post(&admin, "/api/v1/readiness/run", &json!({})).await.problem(409);
    // Within the lease it is still running (its instance may be alive).
    app.clock.advance(Duration::seconds(30));
    assert_eq!(status(&app, &admin, id).await["status"], "running");
    // Past the lease (60 s by default): failed, saying why, with its end recorded.
    app.clock.advance(Duration::seconds(40));
    let s = status(&app, &admin, id).await;
    assert_eq!(s["status"], "failed", "{s}");
    assert!(s["error"].as_str().unwrap().contains("中断"), "{s}");
    assert!(s["finished_at"].is_string());
    assert_eq!(s["progress_phase"], Value::Null);
    // The late instance comes back: it can neither carry out nor finish the run.
    assert!(engine::execute(&app.state, id, now).await.is_err());
    assert_eq!(open_count(&app).await, 0, "an abandoned run writes no finding");
    assert_eq!(status(&app, &admin, id).await["status"], "failed");
    // And a new run starts at once.
    let next = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert!(next["open"].as_i64().unwrap() > 0, "{next}");
}

#[tokio::test]
async fn a_run_left_running_by_a_dead_instance_is_failed_when_the_service_starts() {
    let mut first = TestApp::spawn().await;
    // The first instance's clock runs a day behind the second's (both start at the test clock's
    // fixed time, not the real one), so its run's lease has long lapsed when the second starts.
    first.clock.set(first.clock.now_utc() - Duration::days(1));
    let (id, _) = engine::start(&first.state, "schedule").await.unwrap();
    first.stop().await;
    let second = TestApp::spawn_with(None, &first.db_url, |_| {}).await;
    let (status, error): (String, Option<String>) = yingji::with_db!(&second.state.db, |p| sqlx::query_as(
        "SELECT status, error FROM readiness_runs WHERE id = $1"
    )
    .bind(id)
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(status, "failed", "swept at start-up, before any request");
    assert!(error.unwrap().contains("中断"));
}

/// The stored open findings: identity → (severity, facts, message, action).
async fn stored(app: &TestApp) -> BTreeMap<String, (String, Value, String, String)> {
    let rows: Vec<(String, String, sqlx::types::Json<Value>, String, String)> =
        yingji::with_db!(&app.state.db, |p| sqlx::query_as(
            "SELECT identity, severity, facts, message, action FROM readiness_findings WHERE status = 'open'"
        )
        .fetch_all(p)
        .await
        .unwrap());
    rows.into_iter().map(|(i, s, f, m, a)| (i, (s, f.0, m, a))).collect()
}

/// What the rules find at the app's clock, in the same shape.
async fn expected(app: &TestApp) -> BTreeMap<String, (String, Value, String, String)> {
    let now = Timestamp(app.clock.now_utc());
    engine::dry_run(&app.state, now)
        .await
        .unwrap()
        .into_iter()
        .map(|(f, s)| (f.identity(), (s.as_str().to_string(), f.facts.clone(), f.message.clone(), f.action.clone())))
        .collect()
}

#[tokio::test]
async fn runs_store_exactly_what_the_rules_find_first_again_and_a_day_later() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // One generated banner: ~150 regions, 300 plans, 200 depots with 10,000 batches, 500 teams
    // with 5,000 members.
    let now = Timestamp(app.clock.now_utc());
    yingji::bench::data::generate(&app.state.db, yingji::bench::data::Size::province(0.01), now, 7).await.unwrap();
    let first = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    let want = expected(&app).await;
    assert!(want.len() > 1000, "the generated banner has findings of every kind: {first}");
    assert_eq!(first["opened"].as_u64().unwrap() as usize, want.len(), "a fresh database has no finding yet");
    let got = stored(&app).await;
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the first run stores what the rules find");
    // Unchanged: nothing opened, changed or resolved; every finding last seen by this run.
    app.clock.advance(Duration::minutes(5));
    let again = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert_eq!(
        (again["opened"].as_i64(), again["changed"].as_i64(), again["resolved"].as_i64()),
        (Some(0), Some(0), Some(0)),
        "{again}"
    );
    assert!(stored(&app).await == want);
    let page = app.get(&admin, "/api/v1/readiness?limit=1000").await.expect(200).json();
    assert!(!page["items"].as_array().unwrap().is_empty());
    for f in page["items"].as_array().unwrap() {
        assert_eq!(f["last_seen"], again["run_at"], "{f}");
        assert_ne!(f["first_seen"], f["last_seen"], "{f}");
    }
    // A day later the numbers move (days overdue, days left): the changed findings are
    // rewritten, some open or resolve, and what is stored is again exactly what is found.
    app.clock.advance(Duration::days(1));
    let later = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert!(later["changed"].as_i64().unwrap() > 100, "{later}");
    let want = expected(&app).await;
    let got = stored(&app).await;
    assert_eq!(got.len(), want.len());
    for (identity, w) in &want {
        assert_eq!(got.get(identity), Some(w), "a day later: {identity}");
    }
}

/// Findings stored before digests were kept (migration 0033 leaves them NULL) count as changed
/// once: the next run rewrites each with what the rules find and its digest, and the run after
/// that writes nothing.
#[tokio::test]
async fn findings_stored_before_digests_are_rewritten_once_then_left_alone() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let now = Timestamp(app.clock.now_utc());
    yingji::bench::data::generate(&app.state.db, yingji::bench::data::Size::province(0.005), now, 11).await.unwrap();
    app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    let open = open_count(&app).await;
    assert!(open > 100, "the generated banner has findings");
    yingji::with_db!(&app.state.db, |p| sqlx::query("UPDATE readiness_findings SET digest = NULL")
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    app.clock.advance(Duration::minutes(5));
    let again = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert_eq!(
        (again["opened"].as_i64(), again["changed"].as_i64(), again["resolved"].as_i64()),
        (Some(0), Some(open), Some(0)),
        "{again}"
    );
    let without: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM readiness_findings WHERE status = 'open' AND digest IS NULL"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(without, 0, "every open finding has its digest again");
    assert!(stored(&app).await == expected(&app).await);
    app.clock.advance(Duration::minutes(5));
    let third = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert_eq!(third["changed"].as_i64(), Some(0), "{third}");
}
