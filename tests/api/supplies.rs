//! Supplies: catalogue, depots, the ledger under concurrency and retries, transfers,
//! requisitions, nearest supplies, CSV and GeoJSON.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::*;

const QUILT: &str = "1999905";
const TENT: &str = "1999902";

async fn depot(app: &TestApp, t: &str, code: &str, region: &str, lon: f64, lat: f64) -> i64 {
    let body = json!({"code": code, "name": format!("{code}储备点"), "region_code": region, "kind": "township_point", "lon": lon, "lat": lat});
    app.post(t, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap()
}

async fn movement(app: &TestApp, t: &str, depot: i64, body: Value) -> Resp {
    app.post(t, &format!("/api/v1/depots/{depot}/movements"), &body).await
}

#[allow(clippy::too_many_arguments)]
async fn receive(
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
async fn check_ledger(app: &TestApp) -> i64 {
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

async fn count(app: &TestApp, sql: &str) -> i64 {
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
    app.get(&admin, &format!("/api/v1/supplies/nearest?item={QUILT}&quantity=0&lon=113&lat=44")).await.problem(422);
    app.get(&admin, &format!("/api/v1/supplies/nearest?item={QUILT}&quantity=1&lon=200&lat=44")).await.problem(422);
    app.get(&admin, "/api/v1/supplies/nearest?item=1888888&quantity=1&lon=113&lat=44").await.problem(422);
    app.get(&admin, &format!("/api/v1/supplies/nearest?item={QUILT}&lon=113&lat=44")).await.problem(400);
}

async fn export(app: &TestApp, t: &str, kind: &str, en: bool) -> String {
    let r = app.get(t, &format!("/api/v1/export/{kind}.csv{}", if en { "?header=en" } else { "" })).await.expect(200);
    assert!(r.content_type.starts_with("text/csv"));
    assert!(r.text.starts_with('\u{feff}'), "BOM for Excel");
    r.text
}

#[tokio::test]
async fn csv_round_trip_into_a_fresh_database_reproduces_the_stock() {
    let a = TestApp::spawn().await;
    let t = a.admin().await;
    let depots = "code,name,region_code,kind,lon,lat,address,manager,phone\n\
                  QJK,旗级储备库,152523000000,banner_depot,113.64,43.85,满都拉图镇,张三,13812345678\n\
                  CGAB,查干敖包储备点,152523101000,township_point,113.1,44.2,,,\n";
    let s = a.post_csv(&t, "/api/v1/import/depots", depots).await.expect(200).json();
    assert_eq!((s["created"].as_i64(), s["rows"].as_i64()), (Some(2), Some(2)));
    a.post_csv(&t, "/api/v1/import/catalogue", "物资编码,名称,计量单位,保质期（月）\n1-01-01-01,测试帐篷,顶,\n")
        .await
        .expect(200);
    let stock = "\u{feff}储备库编码,物资编码,数量,批次,生产日期,有效期至,储备方式\n\
                 QJK,1999905,120,2025-A,2025-01-01,,实物\n\
                 QJK,1999908,300,2025-W,2025-06-01,2026-06-01,physical\n\
                 CGAB,1010101,15,X1,,,agreement\n";
    let s = a.post_csv(&t, "/api/v1/import/stock", stock).await.expect(200).json();
    assert_eq!(s["created"], 3);
    // Re-import is a no-op: no movements, no audit rows.
    let audits = count(&a, "SELECT COUNT(*) FROM audit_log").await;
    let s = a.post_csv(&t, "/api/v1/import/stock", stock).await.expect(200).json();
    assert_eq!((s["created"].as_i64(), s["unchanged"].as_i64()), (Some(0), Some(3)));
    assert_eq!(a.post_csv(&t, "/api/v1/import/depots", depots).await.expect(200).json()["unchanged"], 2);
    assert_eq!(count(&a, "SELECT COUNT(*) FROM audit_log").await, audits);
    assert_eq!(count(&a, "SELECT COUNT(*) FROM stock_movements").await, 3);
    let qjk = count(&a, "SELECT id FROM depots WHERE code = 'QJK'").await;
    movement(&a, &t, qjk, json!({"kind": "issue", "item_code": QUILT, "quantity": 20})).await.expect(201);

    let files: Vec<(&str, String)> = vec![
        ("catalogue", export(&a, &t, "catalogue", false).await),
        ("depots", export(&a, &t, "depots", true).await),
        ("stock", export(&a, &t, "stock", false).await),
    ];
    assert!(
        files[2].1.contains("储备库编码") && files[2].1.contains("QJK,1999905,100,2025-A,2025-01-01,,physical"),
        "{}",
        files[2].1
    );
    let b = TestApp::spawn().await;
    let tb = b.admin().await;
    for (kind, text) in &files {
        b.post_csv(&tb, &format!("/api/v1/import/{kind}"), text).await.expect(200);
    }
    assert_eq!(export(&b, &tb, "stock", true).await, export(&a, &t, "stock", true).await);
    assert_eq!(export(&b, &tb, "depots", true).await, export(&a, &t, "depots", true).await);
    assert_eq!(check_ledger(&b).await, 100 + 300 + 15);
    // A second import into the fresh database changes nothing.
    assert_eq!(b.post_csv(&tb, "/api/v1/import/stock", &files[2].1).await.expect(200).json()["created"], 0);
}

#[tokio::test]
async fn a_bad_row_writes_nothing_and_names_its_line() {
    let app = TestApp::spawn().await;
    let t = app.admin().await;
    depot(&app, &t, "D1", MANDULATU, 113.6, 43.8).await;
    let stock = "depot_code,item_code,quantity,batch\nD1,1999905,10,A\nD1,1999905,ten,B\nNOPE,1999905,1,C\n";
    let p = app.post_csv(&t, "/api/v1/import/stock", stock).await.problem(422);
    let errors = p["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 3, "{p}");
    assert_eq!(errors[0]["field"], "quantity");
    assert_eq!(errors[0]["column"], 3);
    assert_eq!(errors[1]["line"], 4);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);
    let p = app
        .post_csv(&t, "/api/v1/import/depots", "code,name,region_code,kind,lon,lat\nX,x,152523100000,castle,1,1\n")
        .await
        .problem(422);
    assert_eq!((p["errors"][0]["line"].as_i64(), p["errors"][0]["field"].as_str()), (Some(2), Some("kind")));
    let moved = "code,name,region_code,kind,lon,lat\nD1,x,152523101000,village_point,113,44\n";
    let p = app.post_csv(&t, "/api/v1/import/depots", moved).await.problem(422);
    assert_eq!((p["errors"][0]["line"].as_i64(), p["errors"][0]["field"].as_str()), (Some(2), Some("region_code")));
    let p = app.post_csv(&t, "/api/v1/import/catalogue", "code,name\n1010101,x\n").await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("unit"), "{p}");
}

#[tokio::test]
async fn transfer_lifecycle_records_the_received_difference() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", BANNER).await;
    let planner = app.token("planner", BANNER).await;
    let a = depot(&app, &op, "A", MANDULATU, 113.6, 43.8).await;
    let b = depot(&app, &op, "B", CHAGANAOBAO, 113.1, 44.2).await;
    receive(&app, &op, a, QUILT, 50, "Q1", Some("2027-03-01"), "physical").await;
    let tr = app
        .post(
            &op,
            "/api/v1/transfers",
            &json!({"from_depot_id": a, "to_depot_id": b, "item_code": QUILT, "quantity": 10}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(tr["status"], "requested");
    let id = tr["id"].as_i64().unwrap();
    app.post(&op, &format!("/api/v1/transfers/{id}/ship"), &json!({})).await.problem(409);
    app.post(&op, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.problem(403);
    app.post(&planner, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.expect(200);
    let shipped = app.post(&op, &format!("/api/v1/transfers/{id}/ship"), &json!({})).await.expect(200).json();
    assert_eq!((shipped["status"].as_str(), shipped["shipped_qty"].as_i64()), (Some("shipped"), Some(10)));
    app.post(&op, &format!("/api/v1/transfers/{id}/cancel"), &json!({})).await.problem(409);
    app.post(&op, &format!("/api/v1/transfers/{id}/receive"), &json!({"received_quantity": 11})).await.problem(422);
    let got = app
        .post(
            &op,
            &format!("/api/v1/transfers/{id}/receive"),
            &json!({"received_quantity": 8, "note": "途中损坏 2 床"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        (got["status"].as_str(), got["received_qty"].as_i64(), got["difference"].as_i64()),
        (Some("received"), Some(8), Some(2))
    );
    let bd = app.get(&op, &format!("/api/v1/depots/{b}")).await.expect(200).json();
    assert_eq!((bd["batches"][0]["batch"].as_str(), bd["batches"][0]["quantity"].as_i64()), (Some("Q1"), Some(8)));
    assert_eq!(bd["batches"][0]["expiry_date"], "2027-03-01");
    assert_eq!(check_ledger(&app).await, 48);
    let actions: Vec<String> = app.audit_rows("transfer", &id.to_string()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["receive", "ship", "approve", "create"]);
    // Too much requested: shipping fails with 409 and nothing moves.
    let big = app
        .post(
            &op,
            "/api/v1/transfers",
            &json!({"from_depot_id": a, "to_depot_id": b, "item_code": QUILT, "quantity": 41}),
        )
        .await
        .expect(201)
        .json();
    let big = big["id"].as_i64().unwrap();
    app.post(&planner, &format!("/api/v1/transfers/{big}/approve"), &json!({})).await.expect(200);
    app.post(&op, &format!("/api/v1/transfers/{big}/ship"), &json!({})).await.problem(409);
    let c = app.post(&op, &format!("/api/v1/transfers/{big}/cancel"), &json!({})).await.expect(200).json();
    assert_eq!(c["status"], "cancelled");
    assert_eq!(check_ledger(&app).await, 48);
    let list = app.get(&app.token("viewer", CHAGANAOBAO).await, "/api/v1/transfers").await.expect(200).json();
    assert_eq!(list["total"], 2);
}

#[tokio::test]
async fn requisitions_show_up_to_return_and_to_compensate() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let admin = app.admin().await;
    let d = depot(&app, &op, "D1", MANDULATU, 113.6, 43.8).await;
    let body = json!({"depot_id": d, "owner": "某运输公司", "item_code": "3999901", "quantity": 2, "condition": "完好", "due_return": "2026-12-10"});
    let r = app.post(&op, "/api/v1/requisitions", &body).await.expect(201).json();
    let id = r["id"].as_i64().unwrap();
    assert_eq!(r["compensation_status"], "pending");
    let to_return = app.get(&op, "/api/v1/requisitions?list=to_return").await.expect(200).json();
    assert_eq!(to_return["total"], 1);
    let kinds = app.get(&op, &format!("/api/v1/depots/{d}/movements")).await.expect(200).json();
    assert_eq!(kinds["items"][0]["kind"], "requisition_in");
    // One unit was wrecked; the other goes back.
    movement(&app, &op, d, json!({"kind": "adjust", "item_code": "3999901", "quantity": -1, "batch": format!("征用-{id}"), "reason": "damaged"})).await.expect(201);
    let back = app
        .post(&op, &format!("/api/v1/requisitions/{id}/return"), &json!({"condition": "一台损毁"}))
        .await
        .expect(200)
        .json();
    assert_eq!(back["returned_quantity"], 1);
    app.post(&op, &format!("/api/v1/requisitions/{id}/return"), &json!({"condition": "x"})).await.problem(409);
    assert_eq!(app.get(&op, "/api/v1/requisitions?list=to_return").await.expect(200).json()["total"], 0);
    assert_eq!(app.get(&op, "/api/v1/requisitions?list=to_compensate").await.expect(200).json()["total"], 1);
    app.put(&op, &format!("/api/v1/requisitions/{id}/compensation"), &json!({"status": "paid", "amount": 1000.0}))
        .await
        .problem(403);
    app.put(&admin, &format!("/api/v1/requisitions/{id}/compensation"), &json!({"status": "paid"})).await.problem(422);
    let paid = app
        .put(&admin, &format!("/api/v1/requisitions/{id}/compensation"), &json!({"status": "paid", "amount": 85000.0}))
        .await
        .expect(200)
        .json();
    assert_eq!(paid["compensation_amount"], 85000.0);
    assert_eq!(app.get(&op, "/api/v1/requisitions?list=to_compensate").await.expect(200).json()["total"], 0);
    let actions: Vec<String> = app.audit_rows("requisition", &id.to_string()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["compensate", "return", "create"]);
    assert_eq!(check_ledger(&app).await, 0);
}

#[tokio::test]
async fn manager_phone_is_encrypted_masked_and_revealed_only_with_audit() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let admin = app.admin().await;
    let body = json!({"code": "D1", "name": "满都拉图储备点", "region_code": MANDULATU, "kind": "township_point", "lon": 113.6, "lat": 43.8, "manager": "张三", "phone": "13812345678"});
    let v = app.post(&op, "/api/v1/depots", &body).await.expect(201).json();
    assert_eq!(v["phone"], "138****5678");
    let id = v["id"].as_i64().unwrap();
    let stored: String = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT phone_enc FROM depots")
        .fetch_one(p)
        .await
        .unwrap());
    assert!(!stored.contains("13812345678"));
    assert_eq!(app.get(&op, "/api/v1/depots").await.expect(200).json()["items"][0]["phone"], "138****5678");
    app.get(&op, &format!("/api/v1/depots/{id}?reveal=true")).await.problem(403);
    let full = app.get(&admin, &format!("/api/v1/depots/{id}?reveal=true")).await.expect(200).json();
    assert_eq!((full["phone"].as_str(), full["phone_revealed"].as_bool()), (Some("13812345678"), Some(true)));
    assert_eq!(app.audit_rows("depot", &id.to_string()).await[0].0, "reveal");
    let masked = export(&app, &op, "depots", true).await;
    assert!(masked.contains("138****5678") && !masked.contains("13812345678"), "{masked}");
    assert!(export(&app, &admin, "depots", true).await.contains("13812345678"));
    // A masked phone re-imported keeps the stored number.
    app.post_csv(&op, "/api/v1/import/depots", &masked).await.expect(200);
    let again = app.get(&admin, &format!("/api/v1/depots/{id}?reveal=true")).await.expect(200).json();
    assert_eq!(again["phone"], "13812345678");
    let geo = app.get(&admin, "/api/v1/depots.geojson").await.expect(200);
    assert!(!geo.text.contains("13812345678"));
}

#[tokio::test]
async fn geojson_layer_summarises_stock_per_depot() {
    let app = TestApp::spawn().await;
    let t = app.admin().await;
    let d = depot(&app, &t, "D1", MANDULATU, 113.6, 43.8).await;
    depot(&app, &t, "D2", CHAGANAOBAO, 113.1, 44.2).await;
    receive(&app, &t, d, QUILT, 30, "A", None, "physical").await;
    receive(&app, &t, d, QUILT, 5, "B", Some("2026-01-01"), "physical").await;
    let r = app.get(&t, "/api/v1/depots.geojson").await.expect(200);
    assert_eq!(r.content_type, "application/geo+json");
    let v = r.json();
    assert_eq!(v["type"], "FeatureCollection");
    let f = &v["features"][0];
    assert_eq!(f["geometry"]["coordinates"], json!([113.6, 43.8]));
    assert_eq!(f["properties"]["stock"][0]["physical"], 30);
    assert_eq!(f["properties"]["stock"][0]["expired"], 5);
    assert_eq!(v["features"].as_array().unwrap().len(), 2);
    let only = app.get(&t, &format!("/api/v1/depots.geojson?item={QUILT}")).await.expect(200).json();
    assert_eq!(only["features"].as_array().unwrap().len(), 1);
    let op = app.token("viewer", CHAGANAOBAO).await;
    assert_eq!(
        app.get(&op, "/api/v1/depots.geojson").await.expect(200).json()["features"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn stock_lists_minimum_levels_and_jurisdiction() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    let body = json!({"code": "X", "name": "x", "region_code": CHAGANAOBAO, "kind": "village_point", "lon": 113.0, "lat": 44.0});
    app.post(&op, "/api/v1/depots", &body).await.problem(403);
    let d = depot(&app, &op, "D1", MANDULATU, 113.6, 43.8).await;
    app.post(&op, "/api/v1/depots", &json!({"code": "D1", "name": "dup", "region_code": MANDULATU, "kind": "village_point", "lon": 113.0, "lat": 44.0}))
        .await
        .problem(409);
    receive(&app, &op, d, QUILT, 10, "Q", Some("2026-12-15"), "physical").await;
    receive(&app, &op, d, TENT, 5, "T", None, "physical").await;
    let v = app
        .put(&op, &format!("/api/v1/depots/{d}/minimums"), &json!({"item_code": QUILT, "minimum": 20}))
        .await
        .expect(200)
        .json();
    let quilt = v["levels"].as_array().unwrap().iter().find(|l| l["item_code"] == QUILT).unwrap().clone();
    assert_eq!(
        (quilt["quantity"].as_i64(), quilt["minimum"].as_i64(), quilt["below_minimum"].as_bool()),
        (Some(10), Some(20), Some(true))
    );
    let expiring = app.get(&op, "/api/v1/stock?expiring_by=2026-12-31").await.expect(200).json();
    assert_eq!(expiring["total"], 1);
    assert_eq!(expiring["items"][0]["batch"], "Q");
    assert_eq!(app.get(&op, "/api/v1/stock").await.expect(200).json()["total"], 2);
    let other = app.token("viewer", CHAGANAOBAO).await;
    assert_eq!(app.get(&other, "/api/v1/stock").await.expect(200).json()["total"], 0);
    assert_eq!(app.get(&other, "/api/v1/depots").await.expect(200).json()["total"], 0);
    app.get(&other, &format!("/api/v1/depots/{d}")).await.problem(403);
    let patched = app
        .patch(&op, &format!("/api/v1/depots/{d}"), &json!({"name": "满都拉图镇储备点", "phone": "0479-1234567"}))
        .await
        .expect(200)
        .json();
    assert_eq!(patched["name"], "满都拉图镇储备点");
    assert_eq!(patched["phone"], "047*****4567");
    let actions: Vec<String> = app.audit_rows("depot", &d.to_string()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["update", "create"]);
}

#[tokio::test]
async fn shipping_a_transfer_twice_with_one_key_moves_stock_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let a = depot(&app, &admin, "A", MANDULATU, 113.6, 43.8).await;
    let b = depot(&app, &admin, "B", MANDULATU, 113.2, 43.9).await;
    receive(&app, &admin, a, QUILT, 10, "Q", None, "physical").await;
    let tr = app
        .post(
            &admin,
            "/api/v1/transfers",
            &json!({"from_depot_id": a, "to_depot_id": b, "item_code": QUILT, "quantity": 6}),
        )
        .await
        .expect(201)
        .json();
    let id = tr["id"].as_i64().unwrap();
    app.post(&admin, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.expect(200);
    for _ in 0..2 {
        let r = app
            .client
            .post(app.url(&format!("/api/v1/transfers/{id}/ship")))
            .bearer_auth(&admin)
            .header("idempotency-key", "ship-1")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'transfer_out'").await, 1);
    assert_eq!(check_ledger(&app).await, 4);
}
