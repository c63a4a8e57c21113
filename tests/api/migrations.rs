//! Migration 0008 on a database that already holds data: transfers survive the table rebuild,
//! requisition compensation amounts become integer fen, returned requisitions get their status.

use std::borrow::Cow;

use crate::common::*;

async fn upto_0007(db: &yingji::db::Db) {
    let keep = |m: &sqlx::migrate::Migrator| -> sqlx::migrate::Migrator {
        let mut m2 = sqlx::migrate::Migrator::DEFAULT;
        m2.migrations = Cow::Owned(m.migrations.iter().filter(|x| x.version <= 7).cloned().collect());
        m2
    };
    match db {
        yingji::db::Db::Sqlite(p) => keep(&sqlx::migrate!("migrations/sqlite")).run(p).await.unwrap(),
        yingji::db::Db::Postgres(p) => keep(&sqlx::migrate!("migrations/postgres")).run(p).await.unwrap(),
    }
}

#[tokio::test]
async fn migration_0008_keeps_transfers_and_stores_compensation_in_fen() {
    let test_db = fresh_db().await;
    let db =
        yingji::db::Db::connect(&yingji::db::DbOptions { url: test_db.url.clone(), max_connections: 2 }).await.unwrap();
    upto_0007(&db).await;
    let t = "2026-11-01T00:00:00+00:00";
    let statements = [
        format!("INSERT INTO regions (code, name, level, created_at, updated_at) VALUES ('{MANDULATU}', '满都拉图镇', 'township', '{t}', '{t}')"),
        format!("INSERT INTO supply_items (code, name, unit, created_at, updated_at) VALUES ('1999905', '棉被', '床', '{t}', '{t}')"),
        format!("INSERT INTO depots (id, code, name, region_code, kind, lon, lat, created_at, updated_at) VALUES (1, 'D1', 'D1', '{MANDULATU}', 'township_point', 113.6, 43.8, '{t}', '{t}')"),
        format!("INSERT INTO depots (id, code, name, region_code, kind, lon, lat, created_at, updated_at) VALUES (2, 'D2', 'D2', '{MANDULATU}', 'township_point', 113.2, 43.9, '{t}', '{t}')"),
        format!("INSERT INTO stock_batches (id, depot_id, item_code, batch, quantity, reserve_mode, created_at, updated_at) VALUES (1, 1, '1999905', '征用-1', 0, 'physical', '{t}', '{t}')"),
        format!("INSERT INTO requisitions (id, depot_id, region_code, owner, item_code, quantity, batch_id, condition, received_on, returned_on, returned_quantity, compensation_amount, compensation_status, created_at, updated_at)
                 VALUES (1, 1, '{MANDULATU}', '某公司', '1999905', 2, 1, '完好', '2026-11-01', '2026-11-05', 2, 850.35, 'paid', '{t}', '{t}')"),
        format!("INSERT INTO requisitions (id, depot_id, region_code, owner, item_code, quantity, batch_id, condition, received_on, compensation_status, created_at, updated_at)
                 VALUES (2, 1, '{MANDULATU}', '某牧户', '1999905', 1, 1, '完好', '2026-11-02', 'pending', '{t}', '{t}')"),
        format!("INSERT INTO transfers (id, from_depot_id, to_depot_id, item_code, quantity, status, lines, shipped_qty, requested_by, requested_at, shipped_at)
                 VALUES (7, 1, 2, '1999905', 3, 'shipped', '[]', 3, 'op', '{t}', '{t}')"),
    ];
    for sql in &statements {
        yingji::with_db!(&db, |p| sqlx::query(sql).execute(p).await.map(|_| ()))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    db.migrate().await.unwrap();
    let reqs: Vec<(i64, String, Option<i64>)> =
        yingji::with_db!(&db, |p| sqlx::query_as("SELECT id, status, compensation_fen FROM requisitions ORDER BY id")
            .fetch_all(p)
            .await
            .unwrap());
    assert_eq!(reqs, vec![(1, "returned".to_string(), Some(85_035)), (2, "held".to_string(), None)]);
    let transfer: (String, i64, Option<i64>) = yingji::with_db!(&db, |p| sqlx::query_as(
        "SELECT status, shipped_qty, returned_qty FROM transfers WHERE id = 7"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(transfer, ("shipped".to_string(), 3, None));
    db.close().await;
}
