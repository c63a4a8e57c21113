//! A readiness run started without waiting (202 with its id) and its progress read from the
//! guarded status route while it goes on and once it is done.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

async fn status(app: &TestApp, token: &str, id: i64) -> Value {
    app.get(token, &format!("/api/v1/readiness/runs/{id}")).await.expect(200).json()
}

#[tokio::test]
async fn a_run_started_without_waiting_answers_202_and_its_progress_reaches_done() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let started = app.send(reqwest::Method::POST, "/api/v1/readiness/run?wait=false", Some(&admin), None).await;
    let started = started.expect(202).json();
    let id = started["run_id"].as_i64().expect("run id");
    assert_eq!(started["status"], "running");
    assert_eq!(started["status_url"], format!("/api/v1/readiness/runs/{id}"));
    let mut last = Value::Null;
    for _ in 0..600 {
        last = status(&app, &admin, id).await;
        assert!(last["progress_done"].as_i64().unwrap() <= last["progress_total"].as_i64().unwrap().max(8), "{last}");
        if last["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["triggered_by"], "api");
    assert_eq!(last["progress_total"], 8);
    assert_eq!(last["progress_done"], 8);
    assert_eq!(last["progress_phase"], Value::Null);
    assert!(last["finished_at"].is_string());
    assert!(last["summary"]["open"].as_i64().unwrap() > 0, "a fresh banner has missing plans: {last}");
    // The summary is the one the waiting form answers with.
    let waited = app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json();
    assert_eq!(waited["open"], last["summary"]["open"]);
    // Unknown runs and bad parameters.
    app.get(&admin, "/api/v1/readiness/runs/999999").await.problem(404);
    app.send(reqwest::Method::POST, "/api/v1/readiness/run?wait=soon", Some(&admin), None).await.problem(400);
    // Guarded like starting a run: a township administrator or a banner operator may not.
    let town_admin = app.token("admin", MANDULATU).await;
    app.get(&town_admin, &format!("/api/v1/readiness/runs/{id}")).await.problem(403);
    let op = app.token("operator", BANNER).await;
    app.get(&op, &format!("/api/v1/readiness/runs/{id}")).await.problem(403);
}

#[tokio::test]
async fn progress_is_recorded_on_the_run_while_it_goes_on() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (id, now) = yingji::readiness::engine::start(&app.state, "api").await.unwrap();
    let s = status(&app, &admin, id).await;
    assert_eq!(
        (s["status"].as_str(), s["progress_done"].as_i64(), s["progress_total"].as_i64()),
        (Some("running"), Some(0), Some(0))
    );
    yingji::readiness::store::set_progress(&app.state.db, id, 3, 8, "检查应急物资").await.unwrap();
    let s = status(&app, &admin, id).await;
    assert_eq!((s["progress_done"].as_i64(), s["progress_total"].as_i64()), (Some(3), Some(8)));
    assert_eq!(s["progress_phase"], "检查应急物资");
    assert_eq!(s["summary"], Value::Null);
    let summary = yingji::readiness::engine::execute(&app.state, id, now).await.unwrap();
    let s = status(&app, &admin, id).await;
    assert_eq!(s["status"], "succeeded");
    assert_eq!((s["progress_done"].as_i64(), s["progress_total"].as_i64()), (Some(8), Some(8)));
    assert_eq!(s["summary"]["open"], summary["open"]);
    // A finished run's progress is not written again.
    yingji::readiness::store::set_progress(&app.state.db, id, 1, 8, "检查演练").await.unwrap();
    assert_eq!(status(&app, &admin, id).await["progress_done"], 8);
}
