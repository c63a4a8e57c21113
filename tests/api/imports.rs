//! The one import pipeline, across all six imports: every error with its line (the first 100
//! and the total), all or nothing, dry runs that write nothing, and stock movements that wait
//! for a large import instead of failing.

use serde_json::json;

use crate::common::*;
use crate::forces::id_number;
use crate::supplies::{QUILT, TENT, check_ledger, count, depot, movement};

/// A header and a line that is wrong in exactly one way, for each import.
fn bad_files() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("regions", "code,name,level,parent_code", format!("152523100999,某嘎查,no_level,{MANDULATU}")),
        ("catalogue", "code,name,unit", "1999905,棉被,".to_string()),
        ("depots", "code,name,region_code,kind,lon,lat", format!("D1,库,{MANDULATU},no_kind,113.6,43.8")),
        ("stock", "depot_code,item_code,quantity,batch", "D1,1999905,0,B1".to_string()),
        ("teams", "code,name,org_type,region_code,lon,lat", format!("T1,队,no_type,{MANDULATU},113.6,43.8")),
        ("members", "team_code,name,id_number", "T1,张三,123".to_string()),
    ]
}

#[tokio::test]
async fn every_import_lists_the_first_100_errors_and_counts_them_all() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (kind, header, line) in bad_files() {
        let mut csv = format!("{header}\n");
        for _ in 0..150 {
            csv.push_str(&line);
            csv.push('\n');
        }
        let p = app.post_csv(&admin, &format!("/api/v1/import/{kind}"), &csv).await.problem(422);
        let errors = p["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 100, "{kind}: {p}");
        assert_eq!(p["total_errors"], 150, "{kind}: {p}");
        let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
        assert_eq!(lines, (2..102).collect::<Vec<u64>>(), "{kind}: the first 100, by line");
        assert!(errors[0]["column"].as_u64().is_some(), "{kind}: {}", errors[0]);
    }
}

/// (line, column name) of each error of a problem.
fn where_(p: &serde_json::Value) -> Vec<(u64, &str)> {
    let errors = p["errors"].as_array().unwrap();
    errors.iter().map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap())).collect()
}

#[tokio::test]
async fn imports_are_all_or_nothing_and_name_every_bad_line() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let d1 = depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;

    // Stock: lines 3, 5 and 6 are wrong in three different ways; nothing is received.
    let stock = "depot_code,item_code,quantity,batch\n\
                 D1,1999905,10,A\n\
                 NOPE,1999905,10,B\n\
                 D1,1999902,10,C\n\
                 D1,1999905,-3,D\n\
                 D1,1234567,10,E\n\
                 D1,1999905,10,F\n";
    let p = app.post_csv(&admin, "/api/v1/import/stock", stock).await.problem(422);
    assert_eq!(where_(&p), vec![(3, "depot_code"), (5, "quantity"), (6, "item_code")], "{p}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements").await, 0);

    // Depots: a new depot and a changed one, with an error on the last line: neither is written.
    let depots = format!(
        "code,name,region_code,kind,lon,lat\n\
         D2,新库,{MANDULATU},township_point,113.6,43.8\n\
         D1,改名,{MANDULATU},township_point,113.6,43.8\n\
         D3,外库,{BANNER},township_point,113.6,43.8\n\
         D4,坏库,{MANDULATU},township_point,200,43.8\n"
    );
    let operator = app.token("operator", MANDULATU).await;
    let p = app.post_csv(&operator, "/api/v1/import/depots", &depots).await.problem(422);
    let lines: Vec<u64> = p["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![4, 5], "{p}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, 1);
    let name = app.get(&admin, &format!("/api/v1/depots/{d1}")).await.expect(200).json()["name"].clone();
    assert_eq!(name, "D1储备点");

    // Teams, then members: two bad members among good ones, and no member is added.
    let teams = format!("code,name,org_type,region_code,lon,lat\nT1,甲队,volunteer_team,{MANDULATU},113.6,43.9\n");
    app.post_csv(&admin, "/api/v1/import/teams", &teams).await.expect(200);
    let members = format!(
        "team_code,name,id_number\nT1,甲,{}\nT1,乙,12345\nT9,丙,{}\nT1,丁,{}\n",
        id_number(1),
        id_number(2),
        id_number(3)
    );
    let p = app.post_csv(&admin, "/api/v1/import/members", &members).await.problem(422);
    assert_eq!(where_(&p), vec![(3, "id_number"), (4, "team_code")], "{p}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM members").await, 0);

    // The good file goes in whole, once.
    let good = "depot_code,item_code,quantity,batch\nD1,1999905,10,A\nD1,1999902,7,C\n";
    let s = app.post_csv(&admin, "/api/v1/import/stock", good).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 2, "updated": 0, "unchanged": 0}));
    let s = app.post_csv(&admin, "/api/v1/import/stock", good).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 0, "updated": 0, "unchanged": 2}));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'stock_movement'").await, 2);
    check_ledger(&app).await;
}

#[tokio::test]
async fn a_dry_run_previews_the_file_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let audits = count(&app, "SELECT COUNT(*) FROM audit_log").await;
    let mut csv = String::from("储备库编码,物资编码,数量,批次\n");
    for i in 0..30 {
        csv.push_str(&format!("D1,{QUILT},{},B{i}\n", i + 1));
    }
    let v = app.post_csv(&admin, "/api/v1/import/stock?dry_run=true", &csv).await.expect(200).json();
    assert_eq!(
        (v["dry_run"].as_bool(), v["rows"].as_u64(), v["total_errors"].as_u64()),
        (Some(true), Some(30), Some(0))
    );
    let preview = v["preview"].as_array().unwrap();
    assert_eq!(preview.len(), 20);
    assert_eq!(preview[0], json!({"depot_code": "D1", "item_code": QUILT, "quantity": "1", "batch": "B0"}));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);

    // With errors: 200 still (nothing was asked to be written), the errors listed.
    csv.push_str("D9,1999905,1,X\n");
    let v = app.post_csv(&admin, "/api/v1/import/stock?dry_run=true", &csv).await.expect(200).json();
    assert_eq!(v["total_errors"], 1);
    assert_eq!((v["errors"][0]["line"].as_u64(), v["errors"][0]["field"].as_str()), (Some(32), Some("depot_code")));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log").await, audits);
    app.post_csv(&admin, "/api/v1/import/stock?dry_run=maybe", &csv).await.problem(400);
}

#[tokio::test]
async fn a_stock_movement_during_a_large_import_waits_and_succeeds() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let d1 = depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let rows = 20_000;
    let mut csv = String::from("depot_code,item_code,quantity,batch\n");
    for i in 0..rows {
        csv.push_str(&format!("D1,{QUILT},5,IMP{i}\n"));
    }
    let import = {
        let (base, client, admin) = (app.base.clone(), app.client.clone(), admin.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/import/stock"))
                .bearer_auth(admin)
                .header("content-type", "text/csv")
                .body(csv)
                .send()
                .await
                .unwrap()
        })
    };
    let mut moved = 0;
    while !import.is_finished() {
        let body = json!({"kind": "receive", "item_code": TENT, "quantity": 1, "batch": format!("M{moved}")});
        let r = movement(&app, &admin, d1, body).await;
        assert_eq!(r.status, 201, "a movement during the import: {}", r.text);
        moved += 1;
    }
    let r = import.await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let s: serde_json::Value = r.json().await.unwrap();
    assert_eq!(s["created"], rows);
    assert!(moved > 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements").await, rows + moved);
    check_ledger(&app).await;
}

async fn post_xlsx(app: &TestApp, token: &str, path: &str, data: Vec<u8>) -> (u16, serde_json::Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", yingji::imports::xlsx::MEDIA_TYPE)
        .body(data)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn excel_workbooks_import_and_export_like_csv() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    // A workbook with Chinese headers; the second data row (sheet row 3) has a bad quantity.
    let header = ["储备库编码", "物资编码", "数量", "批次"];
    let row = |q: &str, b: &str| vec!["D1".to_string(), QUILT.to_string(), q.to_string(), b.to_string()];
    let bad = yingji::imports::xlsx::write("入库", &header, &[row("5", "X1"), row("五", "X2")]).unwrap();
    let (status, p) = post_xlsx(&app, &admin, "/api/v1/import/stock", bad).await;
    assert_eq!(status, 422, "{p}");
    let e = &p["errors"][0];
    assert_eq!((e["line"].as_u64(), e["column"].as_u64(), e["field"].as_str()), (Some(3), Some(3), Some("quantity")));
    assert!(e["message"].as_str().unwrap().contains("工作表「入库」第 3 行 C 列"), "{e}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);

    let good = yingji::imports::xlsx::write("入库", &header, &[row("5", "X1"), row("7", "X2")]).unwrap();
    let (status, v) = post_xlsx(&app, &admin, "/api/v1/import/stock?dry_run=true", good.clone()).await;
    assert_eq!((status, v["rows"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(v["preview"][1]["quantity"], "7");
    let (status, v) = post_xlsx(&app, &admin, "/api/v1/import/stock", good).await;
    assert_eq!((status, v["created"].as_u64()), (200, Some(2)), "{v}");

    // Every export has an .xlsx twin that re-imports unchanged.
    for kind in ["catalogue", "depots", "stock", "teams", "members"] {
        let r =
            app.client.get(app.url(&format!("/api/v1/export/{kind}.xlsx"))).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{kind}");
        assert_eq!(r.headers()["content-type"], yingji::imports::xlsx::MEDIA_TYPE);
        let data = r.bytes().await.unwrap().to_vec();
        assert!(data.starts_with(b"PK"), "{kind}");
        if kind == "depots" || kind == "stock" {
            let (status, v) = post_xlsx(&app, &admin, &format!("/api/v1/import/{kind}"), data).await;
            assert_eq!((status, v["created"].as_u64(), v["updated"].as_u64()), (200, Some(0), Some(0)), "{kind}: {v}");
        }
    }
}
