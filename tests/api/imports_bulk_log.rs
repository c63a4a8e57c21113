//! Bulk imports of more than 5,000 depots log "every depot" once instead of each row (migration
//! 0029, `imports::staged::BulkLog`): the nearest-supplies index of another instance still never
//! answers from a state older than the import, and the writes after the import are logged one by
//! one again (no mark is left behind).

use serde_json::{Value, json};

use crate::common::*;
use crate::imports_staged::post;
use crate::nearest_index::answer;
use crate::supplies::{QUILT, count, depot, movement, receive};

const SEAT: (f64, f64) = (113.644, 43.852);
/// Depots in the files: more than `BulkLog::KEYS`.
const DEPOTS: usize = 5_200;

fn probe(qty: i64) -> String {
    format!("/api/v1/supplies/nearest?item={QUILT}&quantity={qty}&lon={}&lat={}", SEAT.0, SEAT.1)
}

/// The probe asked of `indexed` equals the database's answer (`truth`), whether it came from the
/// index or not; then waits until the index answers it (rebuilt in the background) and checks
/// again.
async fn same(indexed: &TestApp, truth: &TestApp, tok: &str, what: &str) -> Value {
    let want = answer(truth, tok, &probe(50_000)).await.0;
    let (got, source) = answer(indexed, tok, &probe(50_000)).await;
    assert_eq!(got, want, "{what}: answered from the {source}");
    for _ in 0..400 {
        let (got, source) = answer(indexed, tok, &probe(50_000)).await;
        assert_eq!(got, want, "{what}: answered from the {source}");
        if source == "index" {
            return want;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{what}: the index never answered");
}

#[tokio::test]
async fn imports_of_thousands_of_depots_are_seen_by_the_index_and_later_writes_still_are() {
    let writer = TestApp::spawn().await;
    let indexed = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;
    let first = depot(&writer, &admin, "BL0", MANDULATU, SEAT.0 + 0.01, SEAT.1).await;
    receive(&writer, &admin, first, QUILT, 10, "A", None, "physical").await;
    let before = same(&indexed, &truth, &admin, "before the imports").await;

    // 5,200 new depots around the seat, then a batch in each.
    let mut depots = String::from("code,name,region_code,kind,lon,lat\n");
    for i in 0..DEPOTS {
        let (lon, lat) = (SEAT.0 + (i % 80) as f64 * 0.002, SEAT.1 + (i / 80) as f64 * 0.002);
        depots.push_str(&format!("BLK{i},储备点{i},{MANDULATU},village_point,{lon:.4},{lat:.4}\n"));
    }
    let (status, body) = post(&writer, &admin, "/api/v1/import/depots", depots).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"].as_u64(), Some(DEPOTS as u64));
    let mut stock = String::from("depot_code,item_code,quantity,batch\n");
    for i in 0..DEPOTS {
        stock.push_str(&format!("BLK{i},{QUILT},{},B{i}\n", 1 + i % 20));
    }
    let (status, body) = post(&writer, &admin, "/api/v1/import/stock", stock).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"].as_u64(), Some(DEPOTS as u64));
    let after = same(&indexed, &truth, &admin, "after the imports").await;
    assert_ne!(after, before, "the imported stock must count");
    // Each import logged "every depot" once rather than each of its rows (SQLite keeps one row
    // per key; PostgreSQL one per transaction and key) and left no mark behind.
    let logged = count(&writer, "SELECT COUNT(*) FROM change_log WHERE name = 'supplies'").await;
    assert!(logged < 100, "{logged} change log rows for the imports");
    assert!(count(&writer, "SELECT COUNT(*) FROM change_log WHERE name = 'supplies' AND key = -1").await >= 1);
    if writer.db_url.starts_with("sqlite") {
        assert_eq!(count(&writer, "SELECT COUNT(*) FROM change_log_bulk").await, 0);
    }

    // Later writes are logged one by one again: each shows at once on the indexed instance.
    let issue = json!({"kind": "issue", "item_code": QUILT, "quantity": 1, "destination": "牧户"});
    let near = count(&writer, "SELECT id FROM depots WHERE code = 'BLK0'").await;
    movement(&writer, &admin, near, issue).await.expect(201);
    let (got, source) = answer(&indexed, &admin, &probe(50_000)).await;
    assert_eq!(got, answer(&truth, &admin, &probe(50_000)).await.0, "an issue after the imports ({source})");
    assert_ne!(got, after, "the issue must count");
    assert_eq!(source, "index", "one changed depot is reloaded, not rebuilt");
}
