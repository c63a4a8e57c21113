//! On PostgreSQL the stock import inserts its new batches with a plain `INSERT` (the write marked
//! the batches that exist just before): a batch another transaction creates while the import
//! writes is then a unique violation, so the import is a 409 and writes nothing. (On SQLite the
//! import holds the write lock: such a batch exists before its write begins, and is skipped.)

use std::time::Duration;

use crate::common::*;
use crate::supplies::{QUILT, count, depot};

#[tokio::test]
async fn a_batch_created_by_another_transaction_while_a_stock_import_writes_is_a_409_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let yingji::db::Db::Postgres(pool) = app.state.db.clone() else { return };
    let admin = app.admin().await;
    let depot_id = depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let mut csv = String::from("depot_code,item_code,quantity,batch\n");
    for i in 0..2_000 {
        csv.push_str(&format!("D1,{QUILT},5,L{i}\n"));
    }
    let audits = count(&app, "SELECT COUNT(*) FROM audit_log").await;

    // After the check: another transaction creates batch L1500 and commits only once the
    // import's write has begun (its insert waits for that transaction, then conflicts).
    let meanwhile = async move {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO stock_batches (depot_id, item_code, batch, quantity, reserve_mode, created_at, updated_at)
             VALUES ($1, $2, 'L1500', 0, 'physical', now(), now())",
        )
        .bind(depot_id)
        .bind(QUILT)
        .execute(&mut *tx)
        .await
        .unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            tx.commit().await.unwrap();
        });
    };
    let scope = yingji::auth::Scope::of(&yingji::regions::RegionCode::parse(BANNER).unwrap());
    let actor = yingji::audit::Actor { name: "测试".into(), role: Some("admin".into()), request_id: None };
    let now = yingji::time::Timestamp(chrono::Utc::now());
    let imp = yingji::supplies::csv::StockImport::for_tests(scope, actor, now);
    let body = yingji::imports::Upload::Memory(bytes::Bytes::from(csv));
    let r = yingji::imports::staged::run_with_meanwhile(&imp, &app.state.db, body, meanwhile).await;
    match r {
        Err(yingji::error::ApiError::Conflict(m)) => assert!(m.contains("批次"), "{m}"),
        other => panic!("expected a 409, got {:?}", other.map(|s| serde_json::to_value(s).unwrap_or_default())),
    }
    // Only the other transaction's batch; no movement, no audit row of the import.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log").await, audits);
}
