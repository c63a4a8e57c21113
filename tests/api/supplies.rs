//! Supplies: catalogue, depots, the ledger under concurrency and retries, transfers,
//! requisitions, nearest supplies, CSV and GeoJSON.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::*;

pub(crate) const QUILT: &str = "1999905";
pub(crate) const TENT: &str = "1999902";

pub(crate) async fn depot(app: &TestApp, t: &str, code: &str, region: &str, lon: f64, lat: f64) -> i64 {
    let body = json!({"code": code, "name": format!("{code}储备点"), "region_code": region, "kind": "township_point", "lon": lon, "lat": lat});
    app.post(t, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap()
}

pub(crate) async fn movement(app: &TestApp, t: &str, depot: i64, body: Value) -> Resp {
    app.post(t, &format!("/api/v1/depots/{depot}/movements"), &body).await
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn receive(
    app: &TestApp,
    t: &str,
    depot: i64,
    item: &str,
    qty: i64,
    batch: &str,
    expiry: Option<&str>,
    mode: &str,
) {
    let body = json!({"kind": "receive", "item_code": item, "quantity": qty, "batch": batch, "expiry_date": expiry, "reserve_mode": mode});
    movement(app, t, depot, body).await.expect(201);
}

/// Every batch balance equals the sum of its movements; returns the total balance.
pub(crate) async fn check_ledger(app: &TestApp) -> i64 {
    let rows: Vec<(i64, i64, i64)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT b.id, b.quantity, CAST(COALESCE(SUM(m.quantity), 0) AS BIGINT) FROM stock_batches b
         LEFT JOIN stock_movements m ON m.batch_id = b.id GROUP BY b.id, b.quantity"
    )
    .fetch_all(p)
    .await
    .unwrap());
    for (id, balance, sum) in &rows {
        assert_eq!(balance, sum, "batch {id}: balance differs from the sum of its movements");
        assert!(*balance >= 0);
    }
    rows.iter().map(|r| r.1).sum()
}

pub(crate) async fn count(app: &TestApp, sql: &str) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap())
}

#[tokio::test]
async fn starter_catalogue_is_shipped_with_provisional_codes() {
    let app = TestApp::spawn().await;
    let t = app.token("viewer", MANDULATU).await;
    let v = app.get(&t, "/api/v1/items?limit=1000").await.expect(200).json();
    let items = v["items"].as_array().unwrap();
    assert!(items.len() >= 19, "{v}");
    let yurt = items.iter().find(|i| i["name"] == "蒙古包").expect("蒙古包 shipped");
    assert_eq!(yurt["unit"], "顶");
    assert_eq!(yurt["provisional"], true);
    assert!(items.iter().all(|i| i["provisional"] == false || i["code"].as_str().unwrap()[1..5] == *"9999"));
    for name in ["风力灭火机", "棉被", "睡袋", "取暖用煤", "牲畜饲草料", "铁锹"] {
        assert!(items.iter().any(|i| i["name"] == name), "{name}");
    }
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/items", &json!({"code": "4010101", "name": "x", "unit": "个"})).await.problem(422);
    app.post(&t, "/api/v1/items", &json!({"code": "1010101", "name": "x", "unit": "个"})).await.problem(403);
    app.post(
        &admin,
        "/api/v1/items",
        &json!({"code": "1-01-01-01", "name": "测试", "unit": "个", "shelf_life_months": 24}),
    )
    .await
    .expect(201);
    assert_eq!(app.audit_rows("supply_item", "1010101").await[0].0, "create");
}

#[tokio::test]
async fn two_hundred_concurrent_issues_against_fifty_units_sell_exactly_fifty() {
    let app = Arc::new(TestApp::spawn().await);
    let t = Arc::new(app.token("operator", MANDULATU).await);
    let d = depot(&app, &t, "D1", MANDULATU, 113.6, 43.8).await;
    receive(&app, &t, d, QUILT, 50, "B1", None, "physical").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (app, t) = (app.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"kind": "issue", "item_code": QUILT, "quantity": 1, "destination": format!("牧户{i}")});
            movement(&app, &t, d, body).await
        }));
    }
    let mut ok = 0;
    let mut conflict = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status.as_u16() {
            201 => ok += 1,
            409 => {
                conflict += 1;
                assert!(r.json()["detail"].as_str().unwrap().contains("库存不足"), "{}", r.text);
            }
            s => panic!("unexpected {s}: {}", r.text),
        }
    }
    assert_eq!((ok, conflict), (50, 150));
    assert_eq!(check_ledger(&app).await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'issue'").await, 50);
    let detail = app.get(&t, &format!("/api/v1/depots/{d}")).await.expect(200).json();
    assert_eq!(detail["batches"].as_array().unwrap().len(), 0, "{detail}");
    let check = app.get(&t, "/api/v1/stock/ledger-check").await.expect(200).json();
    assert_eq!(check, json!({"batches": 1, "mismatches": []}));
    // The check does catch a balance written behind the ledger's back.
    yingji::with_db!(&app.state.db, |p| sqlx::query("UPDATE stock_batches SET quantity = 3")
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    let check = app.get(&t, "/api/v1/stock/ledger-check").await.expect(200).json();
    assert_eq!(
        (check["mismatches"][0]["balance"].as_i64(), check["mismatches"][0]["movements_sum"].as_i64()),
        (Some(3), Some(0))
    );
}

#[tokio::test]
async fn idempotency_key_makes_retries_create_one_movement() {
    let app = Arc::new(TestApp::spawn().await);
    let t = Arc::new(app.token("operator", MANDULATU).await);
    let d = depot(&app, &t, "D1", MANDULATU, 113.6, 43.8).await;
    let body = json!({"kind": "receive", "item_code": QUILT, "quantity": 20, "batch": "B1"});
    let send = |key: &'static str, body: Value| {
        let (app, t) = (app.clone(), t.clone());
        async move {
            let r = app
                .client
                .post(app.url(&format!("/api/v1/depots/{d}/movements")))
                .bearer_auth(&*t)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = r.headers().contains_key("idempotent-replayed");
            (r.status().as_u16(), replayed, r.json::<Value>().await.unwrap())
        }
    };
    let (s1, r1, v1) = send("k-1", body.clone()).await;
    let (s2, r2, v2) = send("k-1", body.clone()).await;
    assert_eq!((s1, r1, s2, r2), (201, false, 201, true));
    assert_eq!(v1, v2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements").await, 1);
    // Same key, different request: rejected, nothing written.
    let (s3, _, v3) = send("k-1", json!({"kind": "receive", "item_code": QUILT, "quantity": 21, "batch": "B1"})).await;
    assert_eq!(s3, 422, "{v3}");
    // Concurrent retries of one request: one movement.
    let issue = json!({"kind": "issue", "item_code": QUILT, "quantity": 3, "destination": "巴彦淖尔"});
    let handles: Vec<_> = (0..20).map(|_| tokio::spawn(send("k-2", issue.clone()))).collect();
    for h in handles {
        let (s, _, v) = h.await.unwrap();
        assert_eq!(s, 201, "{v}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements").await, 2);
    assert_eq!(check_ledger(&app).await, 17);
}

#[tokio::test]
async fn movements_are_validated_and_expired_stock_is_not_issued() {
    let app = TestApp::spawn().await;
    let t = app.token("operator", MANDULATU).await;
    let d = depot(&app, &t, "D1", MANDULATU, 113.6, 43.8).await;
    receive(&app, &t, d, TENT, 5, "OLD", Some("2026-01-01"), "physical").await;
    receive(&app, &t, d, TENT, 5, "NEW", Some("2027-06-01"), "physical").await;
    receive(&app, &t, d, TENT, 4, "LATER", Some("2028-06-01"), "physical").await;
    movement(&app, &t, d, json!({"kind": "dispatch", "item_code": TENT, "quantity": 1})).await.problem(422);
    movement(
        &app,
        &t,
        d,
        json!({"kind": "adjust", "item_code": TENT, "quantity": 1, "batch": "NEW", "reason": "damaged"}),
    )
    .await
    .problem(422);
    movement(&app, &t, d, json!({"kind": "transfer_in", "item_code": TENT, "quantity": 1, "batch": "NEW"}))
        .await
        .problem(422);
    movement(&app, &t, d, json!({"kind": "issue", "item_code": TENT, "quantity": 0})).await.problem(422);
    movement(&app, &t, d, json!({"kind": "receive", "item_code": TENT, "quantity": i64::MAX, "batch": "X"}))
        .await
        .problem(422);
    movement(
        &app,
        &t,
        d,
        json!({"kind": "adjust", "item_code": TENT, "quantity": i64::MIN, "batch": "NEW", "reason": "lost"}),
    )
    .await
    .problem(422);
    // Only 9 unexpired: the expired OLD batch is not picked automatically.
    let p = movement(&app, &t, d, json!({"kind": "issue", "item_code": TENT, "quantity": 10})).await.problem(409);
    assert!(p["detail"].as_str().unwrap().contains("9"), "{p}");
    // First expiry first, across batches.
    let v = movement(&app, &t, d, json!({"kind": "dispatch", "item_code": TENT, "quantity": 7, "destination": "洪格尔苏木", "reference": "白灾-2026-01"}))
        .await
        .expect(201)
        .json();
    let takes: Vec<(String, i64)> = v["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["batch"].as_str().unwrap().into(), m["quantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(takes, vec![("NEW".into(), -5), ("LATER".into(), -2)]);
    movement(
        &app,
        &t,
        d,
        json!({"kind": "adjust", "item_code": TENT, "quantity": -5, "batch": "OLD", "reason": "expired"}),
    )
    .await
    .expect(201);
    movement(
        &app,
        &t,
        d,
        json!({"kind": "adjust", "item_code": TENT, "quantity": -3, "batch": "LATER", "reason": "lost"}),
    )
    .await
    .problem(409);
    movement(
        &app,
        &t,
        d,
        json!({"kind": "return", "item_code": TENT, "quantity": 2, "batch": "NEW", "reference": "白灾-2026-01"}),
    )
    .await
    .expect(201);
    assert_eq!(check_ledger(&app).await, 4);
    let hist = app.get(&t, &format!("/api/v1/depots/{d}/movements?kind=dispatch")).await.expect(200).json();
    assert_eq!(hist["total"], 2);
    let id = hist["items"][0]["id"].as_i64().unwrap().to_string();
    assert_eq!(
        app.audit_rows("stock_movement", &id).await,
        vec![("create".to_string(), app.audit_rows("stock_movement", &id).await[0].1.clone())]
    );
    // Outside the jurisdiction: 403.
    let other = app.token("operator", CHAGANAOBAO).await;
    movement(&app, &other, d, json!({"kind": "issue", "item_code": TENT, "quantity": 1})).await.problem(403);
    let viewer = app.token("viewer", MANDULATU).await;
    movement(&app, &viewer, d, json!({"kind": "issue", "item_code": TENT, "quantity": 1})).await.problem(403);
}

/// Independent great-circle distance (haversine, mean earth radius 6371.0088 km).
fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let dla = la2 - la1;
    let dlo = (b.0 - a.0).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().asin()
}

#[tokio::test]
async fn nearest_allocates_from_the_nearest_unexpired_physical_stock() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let here = (113.0, 44.0);
    let spots = [
        ("D1", MANDULATU, (113.1, 44.0)),
        ("D2", CHAGANAOBAO, (113.5, 43.9)),
        ("D3", MANDULATU, (111.5, 44.5)),
        ("D4", MANDULATU, (113.01, 44.0)),
        ("D5", MANDULATU, (113.02, 44.0)),
    ];
    let mut ids = Vec::new();
    for (code, region, (lon, lat)) in spots {
        ids.push(depot(&app, &admin, code, region, lon, lat).await);
    }
    receive(&app, &admin, ids[0], QUILT, 30, "A", Some("2027-01-31"), "physical").await;
    receive(&app, &admin, ids[1], QUILT, 40, "A", None, "physical").await;
    receive(&app, &admin, ids[2], QUILT, 100, "A", None, "physical").await;
    receive(&app, &admin, ids[3], QUILT, 1000, "A", Some("2026-11-26"), "physical").await;
    receive(&app, &admin, ids[4], QUILT, 500, "A", None, "agreement").await;
    receive(&app, &admin, ids[0], TENT, 9, "T", None, "physical").await;
    let d: Vec<f64> = spots.iter().map(|s| haversine(here, s.2)).collect();
    assert!(d[0] < d[1] && d[1] < 100.0 && d[2] > 100.0, "{d:?}");

    let url =
        |q: i64, extra: &str| format!("/api/v1/supplies/nearest?item={QUILT}&quantity={q}&lon=113.0&lat=44.0{extra}");
    let v = app.get(&admin, &url(60, "&max_km=100")).await.expect(200).json();
    assert_eq!(
        (v["requested"].as_i64(), v["allocated"].as_i64(), v["shortfall"].as_i64()),
        (Some(60), Some(60), Some(0))
    );
    let a = v["allocations"].as_array().unwrap();
    assert_eq!(a.len(), 2, "{v}");
    assert_eq!(
        (a[0]["depot_code"].as_str(), a[0]["available"].as_i64(), a[0]["take"].as_i64()),
        (Some("D1"), Some(30), Some(30))
    );
    assert_eq!(
        (a[1]["depot_code"].as_str(), a[1]["available"].as_i64(), a[1]["take"].as_i64()),
        (Some("D2"), Some(40), Some(30))
    );
    assert!((a[0]["distance_km"].as_f64().unwrap() - d[0]).abs() < 0.01, "{} vs {}", a[0]["distance_km"], d[0]);
    assert!((a[1]["distance_km"].as_f64().unwrap() - d[1]).abs() < 0.01);
    assert_eq!(a[1]["region_code"], CHAGANAOBAO);
    assert!(v["agreement"].as_array().unwrap().is_empty());

    // max_km is respected: shortfall, with agreement stock as the fallback.
    let v = app.get(&admin, &url(100, "&max_km=100")).await.expect(200).json();
    assert_eq!((v["allocated"].as_i64(), v["shortfall"].as_i64()), (Some(70), Some(30)));
    let fb = v["agreement"].as_array().unwrap();
    assert_eq!(
        (fb[0]["depot_code"].as_str(), fb[0]["take"].as_i64(), fb[0]["available"].as_i64()),
        (Some("D5"), Some(30), Some(500))
    );
    // Without max_km the search widens until the request is met.
    let v = app.get(&admin, &url(100, "")).await.expect(200).json();
    let codes: Vec<&str> =
        v["allocations"].as_array().unwrap().iter().map(|a| a["depot_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["D1", "D2", "D3"]);
    assert_eq!(v["allocations"][2]["take"], 30);
    assert!((v["allocations"][2]["distance_km"].as_f64().unwrap() - d[2]).abs() < 0.01);
    // Jurisdiction: a 满都拉图镇 user never sees 查干敖包镇's depot.
    let op = app.token("operator", MANDULATU).await;
    let v = app.get(&op, &url(60, "")).await.expect(200).json();
    let codes: Vec<&str> =
        v["allocations"].as_array().unwrap().iter().map(|a| a["depot_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["D1", "D3"]);
    app.get(&op, &url(60, &format!("&region={CHAGANAOBAO}"))).await.problem(403);
    let v = app.get(&admin, &url(60, &format!("&region={CHAGANAOBAO}"))).await.expect(200).json();
    assert_eq!((v["allocated"].as_i64(), v["allocations"][0]["depot_code"].as_str()), (Some(40), Some("D2")));
    // Expiry: after D1's batch expires it no longer counts.
    app.clock.set(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2027, 2, 1, 0, 0, 0).unwrap());
    let v = app.get(&admin, &url(60, "&max_km=100")).await.expect(200).json();
    assert_eq!((v["allocated"].as_i64(), v["allocations"][0]["depot_code"].as_str()), (Some(40), Some("D2")));
    // Bad input.
    app.get(&admin, &format!("/api/v1/supplies/nearest?item={QUILT}&quantity=0&lon=113&lat=44")).await.problem(400);
    app.get(&admin, &format!("/api/v1/supplies/nearest?item={QUILT}&quantity=1&lon=200&lat=44")).await.problem(400);
    app.get(&admin, "/api/v1/supplies/nearest?item=1888888&quantity=1&lon=113&lat=44").await.problem(400);
    app.get(&admin, &format!("/api/v1/supplies/nearest?item={QUILT}&lon=113&lat=44")).await.problem(400);
}
