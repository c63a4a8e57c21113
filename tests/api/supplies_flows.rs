//! Supplies: CSV round trips, transfers, requisitions, personal data, the GeoJSON layer, minimums.

use serde_json::json;

use crate::common::*;
use crate::supplies::{QUILT, TENT, check_ledger, count, depot, movement, receive};

async fn export(app: &TestApp, t: &str, kind: &str, en: bool) -> String {
    let r = app.get(t, &format!("/api/v1/export/{kind}.csv{}", if en { "?header=en" } else { "" })).await.expect(200);
    assert!(r.content_type.starts_with("text/csv"));
    assert!(r.text.starts_with('\u{feff}'), "BOM for Excel");
    r.text
}

/// The depots export with managers' phones in full (admins only; audited).
async fn revealed_depots(app: &TestApp, t: &str) -> String {
    app.get(t, "/api/v1/export/depots.csv?header=en&reveal=true").await.expect(200).text
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
        ("depots", revealed_depots(&a, &t).await),
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
    assert_eq!(revealed_depots(&b, &tb).await, revealed_depots(&a, &t).await);
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
    let admin_default = export(&app, &admin, "depots", true).await;
    assert!(!admin_default.contains("13812345678"), "admins see masked phones unless they ask: {admin_default}");
    assert!(revealed_depots(&app, &admin).await.contains("13812345678"));
    app.get(&op, "/api/v1/export/depots.csv?reveal=true").await.problem(403);
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
