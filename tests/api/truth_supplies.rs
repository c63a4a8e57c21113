//! Every way stock enters applies the same batch rules (issue 12, item 1): a batch imported by CSV
//! without an expiry date gets production date + shelf life, as a receive movement does, so it
//! expires and stops counting toward a plan's requirement.

use serde_json::json;

use crate::common::*;
use crate::readiness::{findings, run_check};
use crate::readiness_rules::{approved_plan, depot_at, plan};

/// 瓶装饮用水: shelf life 12 months in the shipped catalogue.
const WATER: &str = "1999908";

fn csv(rows: &[&str]) -> String {
    let mut s = String::from("depot_code,item_code,quantity,batch,production_date,expiry_date,reserve_mode\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

#[tokio::test]
async fn csv_stock_without_expiry_expires_by_shelf_life_and_stops_counting() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let needs = json!({"response_levels": [{"level": 2, "criteria": "大范围积雪", "supplies": [{"item_code": WATER, "name": "瓶装饮用水", "quantity": 100, "unit": "箱", "within_km": 50}]}]});
    approved_plan(&app, &admin, &plan("镇白灾预案", "township", MANDULATU, needs), "2026-11-20").await;
    depot_at(&app, &admin, "D", 5.0).await;
    // Produced 2025-11-27: expires 2026-11-27, today, still usable (near miss). Produced
    // 2025-11-26: expired yesterday (trigger), although the file gives no expiry date.
    let s = app
        .post_csv(
            &admin,
            "/api/v1/import/stock",
            &csv(&["D,1999908,100,FRESH,2025-11-27,,", "D,1999908,50,OLD,2025-11-26,,"]),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(s["created"], 2);
    let stock = app.get(&admin, &format!("/api/v1/stock?item={WATER}")).await.expect(200).json();
    let expiry: Vec<&str> =
        stock["items"].as_array().unwrap().iter().map(|b| b["expiry_date"].as_str().unwrap()).collect();
    assert_eq!(expiry, vec!["2026-11-26", "2026-11-27"], "{stock}");
    run_check(&app).await;
    let expired = findings(&app, &admin, MANDULATU, "SUPPLY_EXPIRED").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["facts"]["batch"], "OLD");
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await.is_empty(), "100 usable cover 100");
    // A day later FRESH has expired too: the requirement is no longer covered.
    app.clock.set(app.clock.now_utc() + chrono::Duration::days(1));
    run_check(&app).await;
    let short = findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await;
    assert_eq!(short.len(), 1);
    assert_eq!(short[0]["facts"]["available"], 0);
    // Writing both off and receiving fresh water resolves both.
    let d = depot_id(&app, "D").await;
    for (batch, n) in [("OLD", -50), ("FRESH", -100)] {
        app.post(
            &admin,
            &format!("/api/v1/depots/{d}/movements"),
            &json!({"kind": "adjust", "item_code": WATER, "quantity": n, "batch": batch, "reason": "expired"}),
        )
        .await
        .expect(201);
    }
    app.post_csv(&admin, "/api/v1/import/stock", &csv(&["D,1999908,100,NEW,2026-11-01,,"])).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_EXPIRED").await.is_empty());
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await.is_empty());
}

async fn depot_id(app: &TestApp, code: &str) -> i64 {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>("SELECT id FROM depots WHERE code = $1")
        .bind(code)
        .fetch_one(p)
        .await
        .unwrap())
}

#[tokio::test]
async fn movements_csv_and_requisitions_refuse_the_same_bad_batches() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let d = depot_at(&app, &admin, "D", 5.0).await;
    // An item with a shelf life and no date at all: refused by every route, naming the field.
    let p = app
        .post(
            &admin,
            &format!("/api/v1/depots/{d}/movements"),
            &json!({"kind": "receive", "item_code": WATER, "quantity": 5, "batch": "X"}),
        )
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "production_date", "{p}");
    let p = app
        .post_csv(&admin, "/api/v1/import/stock", &csv(&["D,1999905,5,Q1,,,", "D,1999908,5,X,,,"]))
        .await
        .problem(422);
    assert_eq!(
        (p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()),
        (Some(3), Some("production_date")),
        "{p}"
    );
    let p = app
        .post(
            &admin,
            "/api/v1/requisitions",
            &json!({"depot_id": d, "owner": "某超市", "item_code": WATER, "quantity": 2, "condition": "完好"}),
        )
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "production_date", "{p}");
    // Expiry before production: refused alike.
    let p = app
        .post_csv(&admin, "/api/v1/import/stock", &csv(&["D,1999908,5,X,2026-06-01,2026-05-01,"]))
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "expiry_date", "{p}");
    assert_eq!(
        app.get(&admin, "/api/v1/stock").await.expect(200).json()["total"],
        0,
        "nothing was written by the refused imports"
    );
    // With a production date every route opens the batch with the same default expiry.
    app.post(
        &admin,
        &format!("/api/v1/depots/{d}/movements"),
        &json!({"kind": "receive", "item_code": WATER, "quantity": 5, "batch": "M", "production_date": "2026-01-15"}),
    )
    .await
    .expect(201);
    app.post_csv(&admin, "/api/v1/import/stock", &csv(&["D,1999908,5,C,2026-01-15,,"])).await.expect(200);
    let r = app
        .post(&admin, "/api/v1/requisitions", &json!({"depot_id": d, "owner": "某超市", "item_code": WATER, "quantity": 2, "condition": "完好", "production_date": "2026-01-15"}))
        .await
        .expect(201)
        .json();
    let stock = app.get(&admin, &format!("/api/v1/stock?item={WATER}")).await.expect(200).json();
    let all: Vec<(String, String)> = stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["batch"].as_str().unwrap().to_string(), b["expiry_date"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(all.len(), 3, "{stock}");
    assert!(all.iter().all(|(_, e)| e == "2027-01-15"), "{all:?} (requisition {})", r["id"]);
}
