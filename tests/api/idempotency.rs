//! Idempotency keys: scoped to (user, method, route template), hashed with path parameters and
//! body; the same key elsewhere or with another body is 422; keys expire and are purged.

use serde_json::{Value, json};

use crate::common::*;
use crate::supplies::{QUILT, check_ledger, count, depot, receive};

async fn post_keyed(app: &TestApp, t: &str, path: &str, key: &str, body: &Value) -> Resp {
    let r = app.client.post(app.url(path)).bearer_auth(t).header("idempotency-key", key).json(body).send().await;
    let r = r.expect("request sent");
    let status = r.status();
    let headers = r.headers().clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Resp { status, content_type, headers, text: r.text().await.unwrap_or_default() }
}

#[tokio::test]
async fn a_key_used_on_ship_is_refused_on_receive_and_on_another_transfer() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let a = depot(&app, &admin, "A", MANDULATU, 113.6, 43.8).await;
    let b = depot(&app, &admin, "B", MANDULATU, 113.2, 43.9).await;
    receive(&app, &admin, a, QUILT, 20, "Q", None, "physical").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let body = json!({"from_depot_id": a, "to_depot_id": b, "item_code": QUILT, "quantity": 5});
        let id = app.post(&admin, "/api/v1/transfers", &body).await.expect(201).json()["id"].as_i64().unwrap();
        app.post(&admin, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.expect(200);
        ids.push(id);
    }
    let ship = format!("/api/v1/transfers/{}/ship", ids[0]);
    post_keyed(&app, &admin, &ship, "K", &json!({})).await.expect(200);
    let again = post_keyed(&app, &admin, &ship, "K", &json!({})).await.expect(200);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    // The same key on receive is not a replay of ship: 422, and the receive has not happened.
    let p = post_keyed(&app, &admin, &format!("/api/v1/transfers/{}/receive", ids[0]), "K", &json!({})).await;
    let p = p.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("/api/v1/transfers/{id}/ship"), "{p}");
    // Nor on the same step of another transfer (other path parameter).
    post_keyed(&app, &admin, &format!("/api/v1/transfers/{}/ship", ids[1]), "K", &json!({})).await.problem(422);
    // Another body on the same route.
    let m = format!("/api/v1/depots/{a}/movements");
    let issue = |n: i64| json!({"kind": "issue", "item_code": QUILT, "quantity": n, "destination": "牧户"});
    post_keyed(&app, &admin, &m, "M", &issue(1)).await.expect(201);
    post_keyed(&app, &admin, &m, "M", &issue(2)).await.problem(422);
    // Another user's identical key is theirs.
    let other = app.admin().await;
    post_keyed(&app, &other, &m, "M", &issue(1)).await.expect(201);
    let t = app.get(&admin, &format!("/api/v1/transfers/{}", ids[0])).await.expect(200).json();
    assert_eq!(t["status"], "shipped");
    app.post(&admin, &format!("/api/v1/transfers/{}/receive", ids[0]), &json!({})).await.expect(200);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'transfer_out'").await, 1);
    assert_eq!(check_ledger(&app).await, 20 - 2);
}

#[tokio::test]
async fn keys_expire_after_a_day_and_the_purge_job_deletes_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let a = depot(&app, &admin, "A", MANDULATU, 113.6, 43.8).await;
    receive(&app, &admin, a, QUILT, 20, "Q", None, "physical").await;
    let m = format!("/api/v1/depots/{a}/movements");
    let issue = |n: i64| json!({"kind": "issue", "item_code": QUILT, "quantity": n, "destination": "牧户"});
    post_keyed(&app, &admin, &m, "OLD", &issue(1)).await.expect(201);
    post_keyed(&app, &admin, &m, "GONE", &issue(1)).await.expect(201);
    app.clock.advance(chrono::Duration::hours(23));
    post_keyed(&app, &admin, &m, "OLD", &issue(2)).await.problem(422);
    post_keyed(&app, &admin, &m, "FRESH", &issue(1)).await.expect(201);
    app.clock.advance(chrono::Duration::hours(2));
    // 25 hours on: the key is forgotten, so the same key is a new request.
    let r = post_keyed(&app, &admin, &m, "OLD", &issue(2)).await.expect(201);
    assert!(r.headers.get("idempotent-replayed").is_none());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM idempotency_keys").await, 3);
    app.tick().await;
    // The purge job ran and left only the keys younger than 24 hours.
    let runs = app.get(&admin, "/api/v1/jobs/runs?schedule=idempotency_purge").await.expect(200).json();
    assert_eq!(runs["items"][0]["status"], "succeeded", "{runs}");
    assert_eq!(runs["items"][0]["counts"]["keys_purged"], 1, "{runs}");
    let left: Vec<String> =
        yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key")
            .fetch_all(p)
            .await
            .unwrap());
    assert_eq!(left.iter().map(|k| k.rsplit(':').next().unwrap()).collect::<Vec<_>>(), ["FRESH", "OLD"]);
}
