//! A team stands down before the response ends (`POST /api/v1/events/{id}/lines/{line}/return`):
//! its call-up closes (members available again), the line is `returned`, the timeline and the
//! audit say so; only accepted or on-site team lines return, and only once.

use serde_json::{Value, json};

use crate::common::*;
use crate::events::{event_body, world};

fn line<'a>(b: &'a Value, code: &str) -> &'a Value {
    b["lines"].as_array().unwrap().iter().find(|l| l["code"] == code).unwrap_or_else(|| panic!("no {code} line"))
}

#[tokio::test]
async fn a_team_returns_before_termination_and_its_callup_closes() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let id = app.post(&w.operator, "/api/v1/events", &event_body(None)).await.expect(201).json()["event"]["id"]
        .as_i64()
        .unwrap();
    let base = format!("/api/v1/events/{id}");
    let b = app
        .post(&w.planner, &format!("{base}/activate"), &json!({"plan_id": w.plan_id, "level": 2}))
        .await
        .expect(200)
        .json();
    let ids: Vec<i64> = b["lines"].as_array().unwrap().iter().map(|l| l["id"].as_i64().unwrap()).collect();
    app.post(&w.planner, &format!("{base}/dispatch"), &json!({"lines": ids})).await.expect(200);
    let b = app.get(&w.operator, &base).await.expect(200).json();
    let (t1, t2, d1) = (line(&b, "T1").clone(), line(&b, "T2").clone(), line(&b, "D1").clone());
    let t1_callup = t1["callup_id"].as_i64().unwrap();

    // Not yet answered, a supply line, an unknown line: refused, nothing written.
    let ret = |l: &Value| format!("{base}/lines/{}/return", l["id"]);
    app.post(&w.operator, &ret(&t1), &json!({})).await.problem(409);
    app.post(&w.operator, &ret(&d1), &json!({})).await.problem(409);
    app.post(&w.operator, &format!("{base}/lines/999999/return"), &json!({})).await.problem(404);

    // T1 accepts, arrives, returns: its call-up closes and its members are available again.
    app.post(&w.operator, &format!("/api/v1/callups/{t1_callup}/accept"), &json!({"members": w.t1_members}))
        .await
        .expect(200);
    app.post(&w.operator, &format!("{base}/lines/{}/arrive", t1["id"]), &json!({})).await.expect(200);
    let b = app.post(&w.operator, &ret(&t1), &json!({})).await.expect(200).json();
    assert_eq!(line(&b, "T1")["state"], "returned");
    assert_eq!(line(&b, "T2")["state"], "requested", "the other team is untouched");
    let c = app.get(&w.operator, &format!("/api/v1/callups/{t1_callup}")).await.expect(200).json();
    assert_eq!(c["status"], "closed");
    for m in &w.t1_members {
        assert_eq!(app.get(&w.admin, &format!("/api/v1/members/{m}")).await.expect(200).json()["status"], "available");
    }
    let texts: Vec<&str> = b["timeline"].as_array().unwrap().iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("T1救援队 撤离现场")), "{texts:?}");
    assert!(app.audit_rows("event", &id.to_string()).await.iter().any(|(a, _)| a == "return"));

    // Twice: the line's transition refuses the second; termination leaves it returned.
    app.post(&w.operator, &ret(&t1), &json!({})).await.problem(409);
    let b =
        app.post(&w.planner, &format!("{base}/terminate"), &json!({"decision": "响应终止"})).await.expect(200).json();
    assert_eq!(
        (line(&b, "T1")["state"].as_str(), line(&b, "T2")["state"].as_str()),
        (Some("returned"), Some("returned"))
    );
    app.post(&w.operator, &ret(&t2), &json!({})).await.problem(409);
}
