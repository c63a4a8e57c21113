//! Transfers complete properly: receiving needs no batch number and keeps the shipped batch's
//! identity; a shipped transfer can go back to its source.

use serde_json::json;

use crate::common::*;
use crate::supplies::{QUILT, check_ledger, count, depot, movement};

#[tokio::test]
async fn receiving_keeps_the_batch_identity_and_a_clash_gets_a_derived_name() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let a = depot(&app, &admin, "A", MANDULATU, 113.6, 43.8).await;
    let b = depot(&app, &admin, "B", CHAGANAOBAO, 113.1, 44.2).await;
    let source = json!({"kind": "receive", "item_code": QUILT, "quantity": 20, "batch": "Q1",
        "production_date": "2025-03-01", "expiry_date": "2030-03-01", "reserve_mode": "agreement",
        "contract_no": "HT-2025-07", "contract_end": "2027-12-31", "owner": "锡林郭勒某商贸公司", "funding": "旗级财政"});
    movement(&app, &admin, a, source).await.expect(201);
    // The destination already holds a batch called Q1 of another identity.
    let other =
        json!({"kind": "receive", "item_code": QUILT, "quantity": 5, "batch": "Q1", "expiry_date": "2028-01-01"});
    movement(&app, &admin, b, other).await.expect(201);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let body = json!({"from_depot_id": a, "to_depot_id": b, "item_code": QUILT, "quantity": 4});
        let id = app.post(&admin, "/api/v1/transfers", &body).await.expect(201).json()["id"].as_i64().unwrap();
        app.post(&admin, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.expect(200);
        let shipped = app.post(&admin, &format!("/api/v1/transfers/{id}/ship"), &json!({})).await.expect(200).json();
        assert_eq!(shipped["lines"][0]["owner"], "锡林郭勒某商贸公司", "{shipped}");
        // No batch number asked for.
        let r = app.post(&admin, &format!("/api/v1/transfers/{id}/receive"), &json!({})).await;
        assert_eq!(r.expect(200).json()["status"], "received");
        ids.push(id);
    }
    let stock = app.get(&admin, &format!("/api/v1/depots/{b}")).await.expect(200).json();
    let batches = stock["batches"].as_array().unwrap();
    for id in &ids {
        let derived = format!("Q1-T{id}");
        let got = batches.iter().find(|x| x["batch"] == derived.as_str()).unwrap_or_else(|| panic!("{stock}"));
        assert_eq!(got["quantity"], 4, "{stock}");
        for (field, want) in [
            ("production_date", "2025-03-01"),
            ("expiry_date", "2030-03-01"),
            ("reserve_mode", "agreement"),
            ("contract_no", "HT-2025-07"),
            ("contract_end", "2027-12-31"),
            ("owner", "锡林郭勒某商贸公司"),
            ("funding", "旗级财政"),
        ] {
            assert_eq!(got[field], want, "{field}: {got}");
        }
    }
    let untouched = batches.iter().find(|x| x["batch"] == "Q1").unwrap();
    assert_eq!((untouched["quantity"].as_i64(), untouched["expiry_date"].as_str()), (Some(5), Some("2028-01-01")));
    assert_eq!(batches.len(), 3, "{stock}");
    // Into a depot without a clash the batch keeps its own name.
    let c = depot(&app, &admin, "C", MANDULATU, 113.5, 43.7).await;
    let body = json!({"from_depot_id": a, "to_depot_id": c, "item_code": QUILT, "quantity": 2});
    let id = app.post(&admin, "/api/v1/transfers", &body).await.expect(201).json()["id"].as_i64().unwrap();
    for step in ["approve", "ship", "receive"] {
        app.post(&admin, &format!("/api/v1/transfers/{id}/{step}"), &json!({})).await.expect(200);
    }
    let stock = app.get(&admin, &format!("/api/v1/depots/{c}")).await.expect(200).json();
    assert_eq!(
        (stock["batches"][0]["batch"].as_str(), stock["batches"][0]["owner"].as_str()),
        (Some("Q1"), Some("锡林郭勒某商贸公司"))
    );
    assert_eq!(check_ledger(&app).await, 25);
}

#[tokio::test]
async fn a_shipped_transfer_returns_to_its_source_and_nothing_is_stranded() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", BANNER).await;
    let a = depot(&app, &op, "A", MANDULATU, 113.6, 43.8).await;
    let b = depot(&app, &op, "B", CHAGANAOBAO, 113.1, 44.2).await;
    movement(
        &app,
        &op,
        a,
        json!({"kind": "receive", "item_code": QUILT, "quantity": 10, "batch": "Q1", "owner": "旗应急局"}),
    )
    .await
    .expect(201);
    let body = json!({"from_depot_id": a, "to_depot_id": b, "item_code": QUILT, "quantity": 10});
    let id = app.post(&op, "/api/v1/transfers", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let planner = app.token("planner", BANNER).await;
    app.post(&planner, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.expect(200);
    // Not shipped yet: nothing to return.
    let p = app.post(&op, &format!("/api/v1/transfers/{id}/return"), &json!({})).await.problem(409);
    assert_eq!(p["current_status"], "approved");
    app.post(&op, &format!("/api/v1/transfers/{id}/ship"), &json!({})).await.expect(200);
    assert_eq!(check_ledger(&app).await, 0, "the goods are on the way");
    let p =
        app.post(&op, &format!("/api/v1/transfers/{id}/return"), &json!({"returned_quantity": 11})).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("10"), "{p}");
    let back = app
        .post(
            &op,
            &format!("/api/v1/transfers/{id}/return"),
            &json!({"returned_quantity": 9, "note": "道路中断，返回；途中丢失 1 床"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        (back["status"].as_str(), back["returned_qty"].as_i64(), back["difference"].as_i64()),
        (Some("returned"), Some(9), Some(1))
    );
    // Back in the very batch it left, with its owner.
    let stock = app.get(&op, &format!("/api/v1/depots/{a}")).await.expect(200).json();
    assert_eq!(stock["batches"].as_array().unwrap().len(), 1, "{stock}");
    assert_eq!(
        (stock["batches"][0]["batch"].as_str(), stock["batches"][0]["quantity"].as_i64()),
        (Some("Q1"), Some(9))
    );
    assert_eq!(stock["batches"][0]["owner"], "旗应急局");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'return'").await, 1);
    let p = app.post(&op, &format!("/api/v1/transfers/{id}/receive"), &json!({})).await.problem(409);
    assert_eq!(p["current_status"], "returned");
    assert_eq!(check_ledger(&app).await, 9);
    let actions: Vec<String> = app.audit_rows("transfer", &id.to_string()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["return", "ship", "approve", "create"]);
}
