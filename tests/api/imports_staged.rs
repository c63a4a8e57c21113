//! Staged imports (depots, stock: `src/imports/staged.rs`): rows staged in a TEMP table on the
//! import's own connection are invisible to every other request and never written when the
//! file fails, even on its last line; what is written equals what the one-by-one API writes
//! (batches, movements, balances, audit rows); the staging table never outlives its import.

use serde_json::{Value, json};

use crate::common::*;
use crate::supplies::{QUILT, TENT, check_ledger, count, depot, movement};

/// An item with a shelf life (a batch without an expiry date gets one from its production date).
const SHELF: &str = "1999908";

pub(crate) async fn post(app: &TestApp, token: &str, path: &str, csv: String) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_large_stock_file_with_a_bad_last_row_shows_and_writes_nothing_while_or_after_it_is_checked() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let audits = count(&app, "SELECT COUNT(*) FROM audit_log").await;
    let n = 30_000;
    let mut csv = String::from("depot_code,item_code,quantity,batch\n");
    for i in 0..n {
        csv.push_str(&format!("D1,{QUILT},5,L{i}\n"));
    }
    csv.push_str(&format!("NOPE,{QUILT},5,LAST\n"));
    let import = {
        let (app_base, client, admin) = (app.base.clone(), app.client.clone(), admin.clone());
        tokio::spawn(async move {
            let r = client
                .post(format!("{app_base}/api/v1/import/stock"))
                .bearer_auth(admin)
                .header("content-type", "text/csv")
                .body(csv)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    // While the file is read, staged and checked, other requests see none of its rows.
    let mut looked = 0;
    while !import.is_finished() {
        assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);
        let stock = app.get(&admin, "/api/v1/stock?limit=10").await.expect(200).json();
        assert_eq!(stock["total"].as_i64().unwrap_or(0), 0, "{stock}");
        looked += 1;
    }
    let (status, p) = import.await.unwrap();
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!((p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()), (Some(n + 2), Some("depot_code")));
    assert!(looked > 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log").await, audits);
}

#[tokio::test]
async fn a_large_depots_file_with_a_bad_last_row_writes_nothing_and_duplicates_name_their_first_line() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let n = 5_000;
    let mut csv = String::from("code,name,region_code,kind,lon,lat,address,manager,phone\n");
    for i in 0..n {
        csv.push_str(&format!("BD{i},储备点{i},{MANDULATU},village_point,113.6,43.8,,,\n"));
    }
    let mut bad = csv.clone();
    bad.push_str(&format!("BD{},重复,{MANDULATU},village_point,113.6,43.8,,,\n", 7));
    bad.push_str(&format!("BDX,坏类型,{MANDULATU},castle,113.6,43.8,,,\n"));
    let (status, p) = post(&app, &admin, "/api/v1/import/depots", bad).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(2), "{p}");
    assert_eq!(p["errors"][0]["line"], n + 2, "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("第 9 行重复"), "{p}");
    assert_eq!((p["errors"][1]["line"].as_u64(), p["errors"][1]["field"].as_str()), (Some(n + 3), Some("kind")));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'depot'").await, 0);
    // The good file writes every depot, each audited with its id; again, nothing changes.
    let (status, s) = post(&app, &admin, "/api/v1/import/depots", csv.clone()).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!((s["created"].as_u64(), s["updated"].as_u64()), (Some(n), Some(0)));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, n as i64);
    let audited = count(
        &app,
        "SELECT COUNT(*) FROM audit_log a JOIN depots d ON a.entity_id = CAST(d.id AS TEXT) WHERE a.entity_type = 'depot' AND a.action = 'import'",
    )
    .await;
    assert_eq!(audited, n as i64);
    let (_, s) = post(&app, &admin, "/api/v1/import/depots", csv.replace("储备点1,", "改名点1,")).await;
    assert_eq!(
        (s["created"].as_u64(), s["updated"].as_u64(), s["unchanged"].as_u64()),
        (Some(0), Some(1), Some(n - 1))
    );
    let d = app.get(&admin, "/api/v1/depots?limit=1000").await.expect(200).json();
    assert!(d.to_string().contains("改名点1"), "the update is written");
}

/// A batch with its movement: item, batch, balance, dates, mode, movement quantity and kind.
type LedgerRow = (String, String, i64, Option<String>, Option<String>, String, i64, String);

/// The stored rows of an import and of the same receipts sent one by one through the API.
async fn ledger_rows(app: &TestApp, depot: i64) -> Vec<Value> {
    let rows: Vec<LedgerRow> = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_as(
            "SELECT b.item_code, b.batch, b.quantity, CAST(b.production_date AS TEXT), CAST(b.expiry_date AS TEXT), b.reserve_mode,
                    m.quantity, m.kind
             FROM stock_batches b JOIN stock_movements m ON m.batch_id = b.id WHERE b.depot_id = $1 ORDER BY b.id"
        )
        .bind(depot)
        .fetch_all(p)
        .await
        .unwrap()
    });
    rows.into_iter().map(|r| json!([r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7])).collect()
}

/// The audit rows of stock movements with the given action, as JSON values (id order).
async fn movement_audits(app: &TestApp, action: &str) -> Vec<(String, Option<String>, Value)> {
    let rows: Vec<(String, Option<String>, String)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT entity_id, region_code, CAST(after_state AS TEXT) FROM audit_log
         WHERE entity_type = 'stock_movement' AND action = $1 ORDER BY id"
    )
    .bind(action)
    .fetch_all(p)
    .await
    .unwrap());
    rows.into_iter().map(|(id, region, after)| (id, region, serde_json::from_str(&after).unwrap())).collect()
}

#[tokio::test]
async fn imported_stock_is_written_and_audited_like_receipts_sent_one_by_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let d1 = depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let d2 = depot(&app, &admin, "D2", MANDULATU, 113.7, 43.9).await;
    let receipts = [
        json!({"kind": "receive", "item_code": QUILT, "quantity": 5, "batch": "A1"}),
        json!({"kind": "receive", "item_code": SHELF, "quantity": 7, "batch": "A2", "production_date": "2026-01-15"}),
        json!({"kind": "receive", "item_code": TENT, "quantity": 3, "batch": "A3", "expiry_date": "2030-12-31", "reserve_mode": "agreement"}),
    ];
    for r in &receipts {
        movement(&app, &admin, d2, r.clone()).await.expect(201);
    }
    let mut csv = String::from("depot_code,item_code,quantity,batch,production_date,expiry_date,reserve_mode\n");
    for r in &receipts {
        let cell = |k: &str| r[k].as_str().map(str::to_string).unwrap_or_default();
        csv.push_str(&format!(
            "D1,{},{},{},{},{},{}\n",
            cell("item_code"),
            r["quantity"],
            cell("batch"),
            cell("production_date"),
            cell("expiry_date"),
            cell("reserve_mode")
        ));
    }
    // A batch that already exists is left alone (counted unchanged).
    let again = format!("{csv}D2,{QUILT},9,A1,,,\n");
    let (status, s) = post(&app, &admin, "/api/v1/import/stock", again).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!((s["rows"].as_u64(), s["created"].as_u64(), s["unchanged"].as_u64()), (Some(4), Some(3), Some(1)));
    // The same batches, balances and movements as the one-by-one path.
    assert_eq!(ledger_rows(&app, d1).await, ledger_rows(&app, d2).await);
    check_ledger(&app).await;
    // The same audit rows, but for the action: the movement as the API shows it.
    let one_by_one = movement_audits(&app, "create").await;
    let imported = movement_audits(&app, "import").await;
    assert_eq!(imported.len(), 3);
    for ((id, region, after), (_, region2, api)) in imported.iter().zip(&one_by_one) {
        assert_eq!(region, region2);
        assert_eq!(after["id"].as_i64().map(|i| i.to_string()).as_deref(), Some(id.as_str()));
        let m = app.get(&admin, &format!("/api/v1/depots/{d1}/movements?limit=10")).await.expect(200).json();
        let shown = m["items"].as_array().unwrap().iter().find(|x| x["id"] == after["id"]).cloned().unwrap();
        assert_eq!(after, &shown, "the audit row holds the movement as the API shows it");
        for key in ["batch", "item_code", "kind", "quantity", "reason", "destination", "note", "actor", "transfer_id"] {
            assert_eq!(after[key], api[key], "{key}");
        }
        assert_eq!(after["reference"], "CSV 导入");
    }
}

#[tokio::test]
async fn the_staging_table_does_not_outlive_its_import_on_a_pool_of_one_connection() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.db.max_connections = 1).await;
    let admin = app.admin().await;
    depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let file = |tag: &str, bad: bool| {
        let mut csv = String::from("depot_code,item_code,quantity,batch\n");
        for i in 0..500 {
            csv.push_str(&format!("D1,{QUILT},1,{tag}{i}\n"));
        }
        if bad {
            csv.push_str(&format!("D1,{QUILT},0,{tag}-BAD\n"));
        }
        csv
    };
    // A failed import, a dry run, then two good ones: each stages in a table of the same name.
    assert_eq!(post(&app, &admin, "/api/v1/import/stock", file("A", true)).await.0, 422);
    let (status, v) = post(&app, &admin, "/api/v1/import/stock?dry_run=true", file("A", false)).await;
    assert_eq!((status, v["rows"].as_u64(), v["total_errors"].as_u64()), (200, Some(500), Some(0)), "{v}");
    assert_eq!(post(&app, &admin, "/api/v1/import/stock", file("A", false)).await.1["created"], 500);
    assert_eq!(post(&app, &admin, "/api/v1/import/stock", file("B", false)).await.1["created"], 500);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 1000);
    check_ledger(&app).await;
}
