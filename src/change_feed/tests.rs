//! Tests of the change feed: catch-up of changed keys and the fallback to the database.
use std::cell::Cell;
use std::collections::BTreeMap;

use super::*;
use crate::db::DbOptions;
use crate::with_db;

#[test]
fn changes_are_distinct_and_capped() {
    assert_eq!(Changes::from_keys(vec![], 3), Changes::None);
    assert_eq!(Changes::from_keys(vec![5, 2, 5], 3), Changes::Keys(vec![2, 5]));
    assert_eq!(Changes::from_keys(vec![1, 2, 3, 4], 3), Changes::Many);
    assert_eq!(Changes::from_keys(vec![7, ALL_KEYS], 3), Changes::Many);
}

#[test]
fn postgres_rows_count_as_many_when_a_part_is_full() {
    let cap = pg_rows(3) as usize;
    assert_eq!(pg_changes(vec![(0, 5), (1, 5), (1, 2)], 3), Changes::Keys(vec![2, 5]));
    // A key changed by many transactions is one key ...
    assert_eq!(pg_changes(vec![(0, 7); cap - 1], 3), Changes::Keys(vec![7]));
    // ... but a part that filled its rows may have left keys unread.
    assert_eq!(pg_changes(vec![(0, 7); cap], 3), Changes::Many);
    assert_eq!(pg_changes(vec![(1, 7); cap], 3), Changes::Many);
    assert_eq!(pg_changes(vec![], 3), Changes::None);
}

thread_local! {
    /// Keys re-read by [`Values::reload`] on this thread (each test runs on its own thread, on a
    /// current-thread runtime).
    static RELOADED: Cell<usize> = const { Cell::new(0) };
}

/// A test index: `t (id, v)` as a map.
struct Values(BTreeMap<i64, i64>);

impl Indexed for Values {
    // A topic nothing else writes in these tests.
    const TOPIC: Topic = Topic::Catalogue;
    const WHAT: &'static str = "test values";

    async fn build(snap: &mut Snapshot) -> Result<Values, sqlx::Error> {
        let rows: Vec<(i64, i64)> =
            crate::with_tx!(snap.tx(), |c| sqlx::query_as("SELECT id, v FROM t").fetch_all(c).await)?;
        Ok(Values(rows.into_iter().collect()))
    }

    async fn reload(&self, snap: &mut Snapshot, keys: &[i64]) -> Result<Values, sqlx::Error> {
        let mut next = self.0.clone();
        for k in keys {
            let v: Option<i64> = crate::with_tx!(snap.tx(), |c| sqlx::query_scalar("SELECT v FROM t WHERE id = $1")
                .bind(k)
                .fetch_optional(c)
                .await)?;
            match v {
                Some(v) => next.insert(*k, v),
                None => next.remove(k),
            };
        }
        RELOADED.with(|r| r.set(r.get() + keys.len()));
        Ok(Values(next))
    }
}

/// A migrated SQLite database in a new directory with the logged test table `t` holding
/// (1, 10), (2, 20), (3, 30).
async fn test_db(name: &str) -> (Db, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("yingji-feed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("f.db").display());
    let db = Db::connect(&DbOptions { url, max_connections: 4 }).await.unwrap();
    db.migrate().await.unwrap();
    exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)").await;
    for op in ["INSERT", "UPDATE", "DELETE"] {
        let row = if op == "DELETE" { "OLD" } else { "NEW" };
        exec(
            &db,
            &format!(
                "CREATE TRIGGER t_log_{op} AFTER {op} ON t BEGIN
                   DELETE FROM change_log WHERE name = 'catalogue' AND key = {row}.id;
                   INSERT INTO change_log (name, key) VALUES ('catalogue', {row}.id); END"
            ),
        )
        .await;
    }
    exec(&db, "INSERT INTO t (id, v) VALUES (1, 10), (2, 20), (3, 30)").await;
    (db, dir)
}

async fn truth(db: &Db) -> BTreeMap<i64, i64> {
    let rows: Vec<(i64, i64)> = with_db!(db, |p| sqlx::query_as("SELECT id, v FROM t").fetch_all(p).await).unwrap();
    rows.into_iter().collect()
}

async fn exec(db: &Db, sql: &str) {
    with_db!(db, |p| sqlx::query(sql).execute(p).await.map(|_| ())).unwrap();
}

/// A feed answers from its index after a few keyed changes (re-reading only those), falls back
/// while more than [`SYNC_LIMIT`] keys changed, and is current again after the background
/// rebuild; its answers always equal the table.
#[tokio::test]
async fn a_feed_catches_up_by_key_and_rebuilds_after_a_burst() {
    let (db, dir) = test_db("burst").await;
    let feed: Feed<Values> = Feed::new(true);
    assert!(feed.fresh(&db, None).await.unwrap().is_none(), "not built yet");
    // The first question started a build in the background: wait until it is installed (and
    // done), so that no background re-read runs during the count below.
    let mut built = None;
    for _ in 0..200 {
        if let Some(v) = feed.fresh(&db, None).await.unwrap() {
            built = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(built.expect("built in the background").0, truth(&db).await);
    while feed.inner.building.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reloaded = RELOADED.with(Cell::get);

    // A few changes: re-read by key, answered at once.
    exec(&db, "UPDATE t SET v = 11 WHERE id = 1").await;
    exec(&db, "DELETE FROM t WHERE id = 2").await;
    exec(&db, "INSERT INTO t (id, v) VALUES (4, 40)").await;
    let got = feed.fresh(&db, None).await.unwrap().expect("caught up");
    assert_eq!(got.0, truth(&db).await);
    assert_eq!(RELOADED.with(Cell::get) - reloaded, 3);

    // A burst: the database answers until the background rebuild is installed.
    exec(
        &db,
        "WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 300)
         INSERT INTO t (id, v) SELECT n + 100, n FROM s",
    )
    .await;
    assert!(feed.fresh(&db, None).await.unwrap().is_none(), "more than SYNC_LIMIT keys changed");
    let mut current = None;
    for _ in 0..200 {
        if let Some(v) = feed.fresh(&db, None).await.unwrap() {
            current = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(current.expect("rebuilt").0, truth(&db).await);
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With the generation of a freshness check (`crate::freshness`), a feed answers without its own
/// read while the topic has not moved, and after every write (made on another connection, as by
/// another instance) the next check moves the generation and the answer equals the table again.
#[tokio::test]
async fn a_feed_trusts_the_freshness_check_only_until_the_topic_moves() {
    let (db, dir) = test_db("seen").await;
    let check = Arc::new(crate::freshness::Freshness::new(true));
    let seen = |g: Option<crate::freshness::Generations>| g.map(|g| g.of(Topic::Catalogue));
    let feed: Feed<Values> = Feed::new(true);
    feed.rebuild(&db).await.unwrap();
    let g1 = seen(check.check(&db).await);
    assert!(g1.is_some_and(|g| g > 0));
    assert_eq!(feed.fresh(&db, g1).await.unwrap().unwrap().0, truth(&db).await);
    // Nothing written: the same generation, the same answer.
    let again = seen(check.check(&db).await);
    assert_eq!(again, g1);
    assert_eq!(feed.fresh(&db, again).await.unwrap().unwrap().0, truth(&db).await);
    // ... and without reading the database: a closed pool serves it, but not a newer generation.
    let closed =
        Db::connect(&DbOptions { url: format!("sqlite://{}", dir.join("f.db").display()), max_connections: 1 })
            .await
            .unwrap();
    closed.close().await;
    assert!(feed.fresh(&closed, again).await.unwrap().is_some(), "no read for a generation already seen");
    assert!(feed.fresh(&closed, again.map(|g| g + 1)).await.is_err(), "a newer generation reads the log");
    for (i, sql) in
        ["UPDATE t SET v = 12 WHERE id = 1", "DELETE FROM t WHERE id = 3", "INSERT INTO t (id, v) VALUES (9, 90)"]
            .into_iter()
            .enumerate()
    {
        exec(&db, sql).await;
        let g = seen(check.check(&db).await);
        assert!(g > g1, "write {i} moves the topic's generation");
        assert_eq!(feed.fresh(&db, g).await.unwrap().unwrap().0, truth(&db).await, "after write {i}");
    }
    // A write to another topic leaves this one's generation alone.
    let before = check.check(&db).await.unwrap();
    exec(&db, "INSERT INTO change_log (name, key) VALUES ('regions', 0)").await;
    let after = check.check(&db).await.unwrap();
    assert_eq!(after.of(Topic::Catalogue), before.of(Topic::Catalogue));
    assert!(after.of(Topic::Regions) > before.of(Topic::Regions));
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
