//! Event watch and races: the first-report deadline, escalation of an unanswered call-up, a
//! double dispatch, concurrent activations and level changes.

use serde_json::json;

use crate::common::*;
use crate::events::*;

/// The messages of one kind an event caused, as "region title".
async fn of_kind(app: &TestApp, event: i64, kind: &str) -> Vec<String> {
    messages(app, event).await.into_iter().filter(|(k, _, _)| k == kind).map(|(_, r, t)| format!("{r} {t}")).collect()
}

async fn simple_event(app: &TestApp, t: &str, hazard: &str, severity: &str) -> i64 {
    let mut b = event_body(None);
    b["hazard"] = json!(hazard);
    b["severity"] = json!(severity);
    app.post(t, "/api/v1/events", &b).await.expect(201).json()["event"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn an_overdue_first_report_is_flagged_and_notified_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = simple_event(&app, &admin, "snow_disaster", "general").await;
    // A non-natural 重大 event gets the local placeholder of 60 minutes.
    let other = simple_event(&app, &admin, "social_security", "serious").await;
    let b = app.get(&admin, &format!("/api/v1/events/{other}")).await.expect(200).json();
    assert_eq!(b["event"]["first_report_due"], "2026-11-27T09:00:00+08:00");
    let report = json!({"kind": "initial", "content": "已核实"});
    app.post(&admin, &format!("/api/v1/events/{other}/reports"), &report).await.expect(201);

    app.clock.advance(chrono::Duration::minutes(119));
    app.tick().await;
    assert!(of_kind(&app, id, "event_report_overdue").await.is_empty());
    let b = app.get(&admin, &format!("/api/v1/events/{id}")).await.expect(200).json();
    assert_eq!(b["first_report_overdue"], false);
    app.clock.advance(chrono::Duration::minutes(2));
    app.tick().await;
    assert_eq!(
        of_kind(&app, id, "event_report_overdue").await,
        [format!("{MANDULATU} 初报逾期"), format!("{BANNER} 初报逾期")]
    );
    let b = app.get(&admin, &format!("/api/v1/events/{id}")).await.expect(200).json();
    assert_eq!(b["event"]["first_report_state"], "overdue");
    assert_eq!(b["first_report_overdue"], true);
    app.clock.advance(chrono::Duration::minutes(5));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_report_overdue").await.len(), 2, "notified once");
    // The late report closes the deadline and is marked late on the timeline.
    let b = app.post(&admin, &format!("/api/v1/events/{id}/reports"), &report).await.expect(201).json();
    assert_eq!(b["event"]["first_report_state"], "done");
    assert!(b["timeline"].as_array().unwrap().iter().any(|e| e["text"].as_str().unwrap().contains("初报（迟报）")));
    assert_eq!(messages(&app, other).await.iter().filter(|(k, _, _)| k == "event_report_overdue").count(), 0);
}

#[tokio::test]
async fn an_unanswered_callup_escalates_to_the_teams_region_then_the_banner() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = simple_event(&app, &w.operator, "snow_disaster", "general").await;
    let base = format!("/api/v1/events/{id}");
    let b = app
        .post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2}))
        .await
        .expect(200)
        .json();
    let t2 = lines_of(&b, "T2")[0]["id"].as_i64().unwrap();
    let t1 = lines_of(&b, "T1")[0]["id"].as_i64().unwrap();
    app.post(&w.planner, &format!("{base}/dispatch"), &json!({"lines": [t1, t2]})).await.expect(200);
    let b = app.get(&w.planner, &base).await.expect(200).json();
    let t1_callup = lines_of(&b, "T1")[0]["callup_id"].as_i64().unwrap();
    // T1 answers in time; T2 never does.
    app.clock.advance(chrono::Duration::minutes(10));
    app.post(&w.operator, &format!("/api/v1/callups/{t1_callup}/accept"), &json!({"members": w.t1_members}))
        .await
        .expect(200);
    app.clock.advance(chrono::Duration::minutes(19));
    app.tick().await;
    assert!(of_kind(&app, id, "event_callup_escalation").await.is_empty());
    app.clock.advance(chrono::Duration::minutes(2));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_callup_escalation").await, [format!("{MANDULATU} 调用未答复")]);
    app.clock.advance(chrono::Duration::minutes(10));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_callup_escalation").await.len(), 1);
    app.clock.advance(chrono::Duration::minutes(21));
    app.tick().await;
    assert_eq!(
        of_kind(&app, id, "event_callup_escalation").await,
        [format!("{MANDULATU} 调用未答复"), format!("{BANNER} 调用未答复")]
    );
    app.clock.advance(chrono::Duration::minutes(30));
    app.tick().await;
    assert_eq!(of_kind(&app, id, "event_callup_escalation").await.len(), 2);
    let b = app.get(&w.planner, &base).await.expect(200).json();
    assert_eq!(lines_of(&b, "T2")[0]["escalation"], "banner");
    assert_eq!(lines_of(&b, "T1")[0]["escalation"], "none");
    assert_eq!(b["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "escalation").count(), 2);
}

#[tokio::test]
async fn a_double_dispatch_has_one_winner() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = simple_event(&app, &w.operator, "snow_disaster", "general").await;
    let base = format!("/api/v1/events/{id}");
    let b = app
        .post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2}))
        .await
        .expect(200)
        .json();
    let d1 = lines_of(&b, "D1")[0]["id"].as_i64().unwrap();
    let t1 = lines_of(&b, "T1")[0]["id"].as_i64().unwrap();
    let body = json!({"lines": [d1, t1]});
    let path = format!("{base}/dispatch");
    let (a, c) = tokio::join!(app.post(&w.planner, &path, &body), app.post(&w.planner, &path, &body));
    let mut statuses = [a.status.as_u16(), c.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, c.text);
    let loser = if a.status.as_u16() == 409 { a } else { c };
    assert_eq!(loser.json()["current_status"], "dispatched");
    assert_eq!(balance(&app, w.d1).await, 0);
    let n: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM stock_movements WHERE kind = 'dispatch'"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(n, 1);
    let n: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM callups")
        .fetch_one(p)
        .await
        .unwrap());
    assert_eq!(n, 1);
    // The same request retried with an idempotency key replays instead of failing.
    let t2 = lines_of(&b, "T2")[0]["id"].as_i64().unwrap();
    let send = || {
        app.client
            .post(app.url(&path))
            .bearer_auth(&w.planner)
            .header("Idempotency-Key", "dispatch-t2")
            .json(&json!({"lines": [t2]}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let again = send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let n: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM callups")
        .fetch_one(p)
        .await
        .unwrap());
    assert_eq!(n, 2);
}

#[tokio::test]
async fn concurrent_activations_and_level_changes_have_one_winner() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = simple_event(&app, &w.operator, "snow_disaster", "general").await;
    let base = format!("/api/v1/events/{id}");
    let activate = json!({"plan_id": w.plan_id, "level": 2});
    let path = format!("{base}/activate");
    let (a, b) = tokio::join!(app.post(&w.planner, &path, &activate), app.post(&w.planner, &path, &activate));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
    let level = json!({"level": 1, "reason": "灾情扩大"});
    let path = format!("{base}/level");
    let (a, b) = tokio::join!(app.post(&w.planner, &path, &level), app.post(&w.admin, &path, &level));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    // The loser finds the level already changed: either the guard missed (409) or, having
    // started after the winner committed, it asks for the level already in force (422).
    assert_eq!(statuses[0], 200, "{} / {}", a.text, b.text);
    assert!(statuses[1] == 409 || statuses[1] == 422, "{} / {}", a.text, b.text);
    let b = app.get(&w.planner, &base).await.expect(200).json();
    assert_eq!(b["activations"].as_array().unwrap().len(), 2);
    // One set of proposals per decision: nothing duplicated.
    let proposed: i64 = b["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "proposed" && l["kind"] == "supply")
        .map(|l| l["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(proposed, 300);
    let a = app.audit_rows("event", &id.to_string()).await;
    assert_eq!(a.iter().filter(|(x, _)| x == "activate").count(), 1);
    assert_eq!(a.iter().filter(|(x, _)| x == "raise").count(), 1);
}
