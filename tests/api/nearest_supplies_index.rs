//! The nearest-supplies index (src/supplies/supply_index.rs) answers exactly as the database does:
//! random questions asked of an instance with the index and of one without it (same database) get
//! the same answers, also right after stock moves, depots move or appear through a third instance,
//! and after a batch's expiry date passes.

use serde_json::{Value, json};

use crate::common::*;
use crate::nearest_index::{answer, compare_on};
use crate::supplies::{QUILT, TENT, depot, movement, receive};

const SEAT: (f64, f64) = (113.644, 43.852);

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random questions: points up to ~150 km from the seat, both items, 1–400 units, open or bounded
/// distance, with and without a region.
fn questions(seed: u64, n: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let lon = SEAT.0 + (rng.below(2000) as f64 - 1000.0) / 500.0;
            let lat = SEAT.1 + (rng.below(2000) as f64 - 1000.0) / 700.0;
            let item = if rng.below(3) == 0 { TENT } else { QUILT };
            let qty = 1 + rng.below(400);
            let mut q = format!("/api/v1/supplies/nearest?item={item}&quantity={qty}&lon={lon:.4}&lat={lat:.4}");
            match rng.below(4) {
                0 => q.push_str("&max_km=30"),
                1 => q.push_str("&max_km=120"),
                _ => {}
            }
            if rng.below(4) == 0 {
                q.push_str(&format!("&region={MANDULATU}"));
            }
            q
        })
        .collect()
}

/// Asks the random questions of `seed` of `indexed` and `truth` (see [`compare_on`]).
async fn compare(indexed: &TestApp, truth: &TestApp, tok: &str, seed: u64) -> usize {
    compare_on(indexed, truth, tok, &questions(seed, 60)).await
}

/// Asks until the index answers (it is built in the background on first use).
async fn wait_for_index(app: &TestApp, tok: &str) {
    let q = &questions(1, 1)[0];
    for _ in 0..400 {
        if answer(app, tok, q).await.1 == "index" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the index never answered");
}

fn probe(qty: i64) -> String {
    format!("/api/v1/supplies/nearest?item={QUILT}&quantity={qty}&lon={}&lat={}", SEAT.0, SEAT.1)
}

/// Asks the probe of the indexed instance right after a write: it must be answered (from the
/// index, caught up) as the database answers, and differ from `before`.
async fn changed(indexed: &TestApp, truth: &TestApp, tok: &str, before: &Value, what: &str) -> Value {
    let (after, source) = answer(indexed, tok, &probe(5000)).await;
    assert_ne!(&after, before, "{what}: the answer must change at once (answered from the {source})");
    assert_eq!(after, answer(truth, tok, &probe(5000)).await.0, "{what}");
    after
}

#[tokio::test]
async fn nearest_supplies_from_the_index_equal_the_database_even_right_after_writes_elsewhere() {
    let writer = TestApp::spawn().await;
    let indexed = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;
    let township = writer.token("admin", MANDULATU).await;

    // Twelve depots 2–150 km around the seat in two townships, with physical and agreement stock,
    // some batches expiring today or already expired.
    let mut rng = Rng(99);
    let mut ids = Vec::new();
    for k in 0..12 {
        let (km_e, km_n) = ((rng.below(300) as f64 - 150.0), (rng.below(240) as f64 - 120.0));
        let region = if k % 3 == 0 { CHAGANAOBAO } else { MANDULATU };
        let at = (SEAT.0 + km_e / 80.2, SEAT.1 + km_n / 111.2);
        let id = depot(&writer, &admin, &format!("SX{k:02}"), region, at.0, at.1).await;
        let expiry = [None, Some("2026-11-27"), Some("2027-05-01"), Some("2026-11-20")][k % 4];
        receive(&writer, &admin, id, QUILT, 20 + rng.below(200) as i64, "A", expiry, "physical").await;
        if k % 2 == 0 {
            receive(&writer, &admin, id, QUILT, 10 + rng.below(50) as i64, "B", None, "physical").await;
            receive(&writer, &admin, id, TENT, 5 + rng.below(30) as i64, "T", Some("2026-11-27"), "physical").await;
        }
        if k % 5 == 1 {
            receive(&writer, &admin, id, QUILT, 300, "AG", None, "agreement").await;
        }
        ids.push(id);
    }

    wait_for_index(&indexed, &admin).await;
    assert!(compare(&indexed, &truth, &admin, 7).await > 0, "the index answered none of the questions");
    compare(&indexed, &truth, &township, 8).await;

    // Writes through another instance; each must show at once on the indexed instance.
    let before = answer(&indexed, &admin, &probe(5000)).await.0;
    let issue = json!({"kind": "issue", "item_code": QUILT, "quantity": 15, "destination": "牧户"});
    movement(&writer, &admin, ids[0], issue).await.expect(201);
    let before = changed(&indexed, &truth, &admin, &before, "an issue").await;
    compare(&indexed, &truth, &admin, 9).await;

    receive(&writer, &admin, ids[3], QUILT, 77, "C", Some("2028-01-01"), "physical").await;
    let before = changed(&indexed, &truth, &admin, &before, "a receipt").await;

    let body = json!({"from_depot_id": ids[2], "to_depot_id": ids[5], "item_code": QUILT, "quantity": 11});
    let t = writer.post(&admin, "/api/v1/transfers", &body).await.expect(201).json()["id"].as_i64().unwrap();
    writer.post(&admin, &format!("/api/v1/transfers/{t}/approve"), &json!({})).await.expect(200);
    writer.post(&admin, &format!("/api/v1/transfers/{t}/ship"), &json!({})).await.expect(200);
    let before = changed(&indexed, &truth, &admin, &before, "a transfer shipped").await;
    writer.post(&admin, &format!("/api/v1/transfers/{t}/receive"), &json!({})).await.expect(200);
    let before = changed(&indexed, &truth, &admin, &before, "a transfer received").await;
    compare(&indexed, &truth, &admin, 10).await;

    // A depot moved next to the seat.
    writer
        .patch(&admin, &format!("/api/v1/depots/{}", ids[4]), &json!({"lon": SEAT.0 + 0.001, "lat": SEAT.1}))
        .await
        .expect(200);
    let before = changed(&indexed, &truth, &admin, &before, "a depot moved").await;
    // A new depot with stock.
    let new = depot(&writer, &admin, "SX99", MANDULATU, SEAT.0 - 0.002, SEAT.1).await;
    receive(&writer, &admin, new, QUILT, 9, "N", None, "physical").await;
    changed(&indexed, &truth, &admin, &before, "a new depot").await;
    compare(&indexed, &truth, &admin, 11).await;
    compare(&indexed, &truth, &township, 12).await;

    // The next day: batches expiring today no longer count, with no write at all. The index
    // answers (nothing to reload) and still as the database does.
    for app in [&writer, &indexed, &truth] {
        app.clock.advance(chrono::Duration::days(1));
    }
    wait_for_index(&indexed, &admin).await;
    assert!(compare(&indexed, &truth, &admin, 13).await > 0);
}
