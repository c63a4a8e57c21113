//! Change feed for in-process indexes: keeps an index built from database rows exact after every
//! committed write, on every instance, by reloading only the units that changed.
//!
//! # The mechanism
//!
//! Triggers on every table an index is built from log, in the writing transaction itself, the
//! **topic** (`change_log.name`, e.g. `'forces'`) and the **key** of each changed unit (the id of
//! what the index reloads as a whole: a team, a depot). So no code path (API, CSV import,
//! call-up, erasure, a future one) can change those rows unlogged. On SQLite the log is ordered
//! by `seq` (writers are serialised, so `seq` is commit order); on PostgreSQL each row carries the
//! writing transaction's id and is compared with the snapshot an index was built in
//! (`pg_visible_in_snapshot`), so writers never wait on a shared row (migration 0021).
//!
//! An index is built inside one read snapshot ([`Snapshot`]) together with that snapshot's
//! [`Stamp`]. Before answering, [`Feed::fresh`] asks the database which keys changed since the
//! stamp (one indexed read): none, and the index answers; a few (up to [`SYNC_LIMIT`]), and it
//! reloads just those keys in a new snapshot (with the new stamp) and answers from the result;
//! more, and the caller answers from the database while a full rebuild runs in the background.
//! An answer therefore reflects a committed state at least as new as the request's arrival.
//!
//! # Using it for a new index
//!
//! 1. Migration: a trigger per table and operation that logs `(name, key)` (SQLite, row triggers:
//!    `DELETE FROM change_log WHERE name = 'topic' AND key = NEW.x; INSERT INTO change_log (name,
//!    key) VALUES ('topic', NEW.x);`) or `(name, xid, key)` with `pg_current_xact_id()` and
//!    `ON CONFLICT DO NOTHING` (PostgreSQL, statement triggers with transition tables). Rows of
//!    child tables map to their parent's key. See `migrations/*/0021_change_log.sql` for 'forces'.
//! 2. A type implementing [`Indexed`]: [`Indexed::build`] reads everything through
//!    [`Snapshot::tx`] (with `crate::with_tx!`), [`Indexed::reload`] returns a copy with the given
//!    keys re-read (share what did not change, e.g. through `Arc`s: never copy the whole index per
//!    change). A key whose unit no longer qualifies (deleted, not approved) must disappear.
//! 3. Keep a [`Feed<T>`] in the application state; call [`Feed::fresh`] per request and answer
//!    from the database when it returns `None`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::{Db, Tx};

mod topic;

pub use topic::{Source, Topic};

/// A stamp older than this is not trusted (the index is rebuilt in full), so the log can be pruned
/// of rows older than twice this ([`prune`]).
pub const MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// Most changed keys reloaded while a request waits; more, and the database answers while the
/// index is rebuilt in the background.
pub const SYNC_LIMIT: usize = 256;

/// Most changed keys a freshly built index re-reads (in the background) before it is installed:
/// writes committed during a full build of several seconds must not leave it behind at birth.
const BUILD_CATCH_UP_LIMIT: usize = 5_000;

/// The key that stands for every key of a topic (logged on PostgreSQL for `TRUNCATE`).
pub const ALL_KEYS: i64 = -1;

/// The committed state a snapshot saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// SQLite: the last `change_log.seq` handed out.
    Seq(i64),
    /// PostgreSQL: the snapshot (`pg_current_snapshot()` as text).
    Snapshot(String),
}

/// What changed in a topic since a stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Nothing committed since.
    None,
    /// These keys (distinct, at most the limit asked for).
    Keys(Vec<i64>),
    /// More keys than the limit, or the whole topic.
    Many,
}

impl Changes {
    fn from_keys(mut keys: Vec<i64>, limit: usize) -> Changes {
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            Changes::None
        } else if keys.len() > limit || keys.contains(&ALL_KEYS) {
            Changes::Many
        } else {
            Changes::Keys(keys)
        }
    }
}

/// SQLite: the keys logged after `seq` `$1` (a key is logged once: its newer change replaces the
/// row), read by the primary key from `$1` on (`+name`: never by walking every row of the topic
/// through the `(name, key)` index).
const SQLITE_SINCE: &str = "SELECT key FROM change_log WHERE seq > $1 AND +name = $2 LIMIT $3";
/// PostgreSQL: the keys logged by transactions the snapshot `$2` did not see, as raw rows (a key
/// logged by several transactions comes several times), at most `$3` rows from each of two parts:
/// transactions from the snapshot's `xmax` on (part 0), and those it saw running (part 1, its
/// `xip` list). Not seen ⟺ `xid >= xmax` or `xid` in `xip`, so rows below `xmax` that the snapshot
/// saw committed are never read, however far a long transaction elsewhere holds `xmin` back (a
/// filter `xid >= xmin AND NOT pg_visible_in_snapshot(…)` reads every row since that `xmin`:
/// milliseconds per request while a five-minute transaction ran on the server). Each part is an
/// ordered scan of the primary key `(name, xid, key)` with a `LIMIT`, which the generic plan of a
/// prepared statement keeps whatever the table's statistics (an equality on `xid` alone was
/// planned as a sequential scan when a few large transactions wrote most rows).
const PG_SINCE: &str = "SELECT 0, key FROM (SELECT key FROM change_log
        WHERE name = $1 AND xid >= pg_snapshot_xmax(CAST($2 AS pg_snapshot)) ORDER BY xid, key LIMIT $3) AS fresh
    UNION ALL
    SELECT 1, key FROM (SELECT l.key FROM pg_snapshot_xip(CAST($2 AS pg_snapshot)) AS x (id)
        CROSS JOIN LATERAL (SELECT c.key FROM change_log c WHERE c.name = $1 AND c.xid >= x.id AND c.xid <= x.id
            ORDER BY c.xid, c.key LIMIT $3) AS l LIMIT $3) AS running";

/// Raw rows read per part on PostgreSQL for a limit of `limit` distinct keys (a key changed by
/// several transactions is logged once per transaction); a part that fills it counts as
/// [`Changes::Many`].
fn pg_rows(limit: usize) -> i64 {
    (limit as i64 + 1) * 16
}

/// [`Changes`] from the rows of [`PG_SINCE`].
fn pg_changes(rows: Vec<(i32, i64)>, limit: usize) -> Changes {
    let cap = pg_rows(limit) as usize;
    let full = |part: i32| rows.iter().filter(|(p, _)| *p == part).count() >= cap;
    if full(0) || full(1) {
        return Changes::Many;
    }
    Changes::from_keys(rows.into_iter().map(|(_, k)| k).collect(), limit)
}

/// Keys of `topic` changed since `stamp`, as committed now (one indexed read).
pub async fn changes_since(db: &Db, topic: &str, stamp: &Stamp, limit: usize) -> Result<Changes, sqlx::Error> {
    let n = limit as i64 + 1;
    let keys = match (db, stamp) {
        (Db::Sqlite(p), Stamp::Seq(s)) => {
            sqlx::query_scalar(SQLITE_SINCE).bind(s).bind(topic).bind(n).fetch_all(p).await?
        }
        (Db::Postgres(p), Stamp::Snapshot(s)) => {
            let rows = sqlx::query_as(PG_SINCE).bind(topic).bind(s).bind(pg_rows(limit)).fetch_all(p).await?;
            return Ok(pg_changes(rows, limit));
        }
        // A stamp of the other backend: everything changed.
        _ => vec![ALL_KEYS],
    };
    Ok(Changes::from_keys(keys, limit))
}

/// A read-only snapshot of the database and its [`Stamp`]: everything read through
/// [`Snapshot::tx`] is the committed state the stamp names.
pub struct Snapshot {
    tx: Tx,
    stamp: Stamp,
}

impl Snapshot {
    /// Opens a snapshot. SQLite: a deferred transaction (in WAL mode its first read fixes the
    /// snapshot and it takes no write lock); PostgreSQL: REPEATABLE READ, READ ONLY.
    pub async fn open(db: &Db) -> Result<Snapshot, sqlx::Error> {
        match db {
            Db::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let seq: i64 = sqlx::query_scalar(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'change_log'), 0)",
                )
                .fetch_one(&mut *tx)
                .await?;
                Ok(Snapshot { tx: Tx::Sqlite(tx, None), stamp: Stamp::Seq(seq) })
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
                let snap: String =
                    sqlx::query_scalar("SELECT CAST(pg_current_snapshot() AS TEXT)").fetch_one(&mut *tx).await?;
                Ok(Snapshot { tx: Tx::Postgres(tx), stamp: Stamp::Snapshot(snap) })
            }
        }
    }

    /// The state this snapshot reads.
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// The snapshot's transaction, for queries (`crate::with_tx!(snap.tx(), |c| …)`).
    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Keys of `topic` changed after `stamp` and up to this snapshot.
    pub async fn changes_since(&mut self, topic: &str, stamp: &Stamp, limit: usize) -> Result<Changes, sqlx::Error> {
        let n = limit as i64 + 1;
        let keys = match (&mut self.tx, stamp) {
            (Tx::Sqlite(t, _), Stamp::Seq(s)) => {
                sqlx::query_scalar(SQLITE_SINCE).bind(s).bind(topic).bind(n).fetch_all(&mut **t).await?
            }
            (Tx::Postgres(t), Stamp::Snapshot(s)) => {
                let rows =
                    sqlx::query_as(PG_SINCE).bind(topic).bind(s).bind(pg_rows(limit)).fetch_all(&mut **t).await?;
                return Ok(pg_changes(rows, limit));
            }
            _ => vec![ALL_KEYS],
        };
        Ok(Changes::from_keys(keys, limit))
    }

    /// Ends the snapshot.
    pub async fn close(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// Deletes log rows older than twice [`MAX_AGE`] (no index trusts a stamp that old).
pub async fn prune(db: &Db) -> Result<u64, sqlx::Error> {
    let secs = (2 * MAX_AGE).as_secs() as i64;
    let done = match db {
        Db::Sqlite(p) => sqlx::query("DELETE FROM change_log WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - $1")
            .bind(secs)
            .execute(p)
            .await?
            .rows_affected(),
        Db::Postgres(p) => sqlx::query("DELETE FROM change_log WHERE at < now() - make_interval(secs => $1)")
            .bind(secs as f64)
            .execute(p)
            .await?
            .rows_affected(),
    };
    Ok(done)
}

/// An in-process index kept by a [`Feed`].
pub trait Indexed: Sized + Send + Sync + 'static {
    /// The topic its triggers log under.
    const TOPIC: Topic;
    /// A short name for logs.
    const WHAT: &'static str;

    /// Reads the whole index through `snap`.
    fn build(snap: &mut Snapshot) -> impl Future<Output = Result<Self, sqlx::Error>> + Send;

    /// This index with the units of `keys` re-read through `snap` (a unit that no longer exists or
    /// qualifies disappears). Must share the unchanged parts, not copy them.
    fn reload(&self, snap: &mut Snapshot, keys: &[i64]) -> impl Future<Output = Result<Self, sqlx::Error>> + Send;

    /// Whether a full rebuild would pay off (e.g. many reloaded units kept beside the base); it
    /// starts in the background and the index keeps answering meanwhile.
    fn wants_rebuild(&self) -> bool {
        false
    }
}

/// An index with the stamp it reflects.
struct Entry<T> {
    index: Arc<T>,
    stamp: Stamp,
    /// When the stamp's snapshot was opened.
    at: Instant,
    /// The highest generation of the topic (`crate::freshness`) that this entry is known to be
    /// current for (0: none): it reflects every change the read that returned it had seen.
    current_for: AtomicU64,
}

impl<T> Entry<T> {
    fn new(index: Arc<T>, stamp: Stamp, at: Instant, current_for: u64) -> Entry<T> {
        Entry { index, stamp, at, current_for: AtomicU64::new(current_for) }
    }
}

struct Inner<T> {
    slot: RwLock<Option<Arc<Entry<T>>>>,
    building: AtomicBool,
    last_start: RwLock<Option<(Instant, Duration)>>,
    /// One catch-up at a time (the others wait, then find the index current).
    catching_up: tokio::sync::Mutex<()>,
}

/// An index of type `T` that is never stale (see the module doc); cheap to clone.
pub struct Feed<T> {
    inner: Arc<Inner<T>>,
    disabled: bool,
}

impl<T> Clone for Feed<T> {
    fn clone(&self) -> Self {
        Feed { inner: self.inner.clone(), disabled: self.disabled }
    }
}

impl<T> fmt::Debug for Feed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = self.inner.slot.read().map(|s| s.is_some()).unwrap_or(false);
        f.debug_struct("Feed").field("disabled", &self.disabled).field("built", &built).finish()
    }
}

impl<T: Indexed> Feed<T> {
    /// A feed (`enabled`), or one whose [`Feed::fresh`] is always `None`.
    pub fn new(enabled: bool) -> Feed<T> {
        let inner = Inner {
            slot: RwLock::new(None),
            building: AtomicBool::new(false),
            last_start: RwLock::new(None),
            catching_up: tokio::sync::Mutex::new(()),
        };
        Feed { inner: Arc::new(inner), disabled: !enabled }
    }

    /// The index as of a committed state no older than this call, or `None` when the caller must
    /// ask the database (off, not built yet, too old, or too many changes: a full rebuild then
    /// starts in the background).
    ///
    /// `seen` is the topic's generation from this request's freshness check
    /// (`crate::freshness::Freshness::check`, a read of the change log that started after the
    /// request arrived), when it made one. An entry already found current for that generation
    /// answers without asking the database again: the check saw no change of the topic since a
    /// read that the entry reflects. Otherwise the feed asks which keys changed since the entry's
    /// stamp (one indexed read), and the entry found current is marked current for `seen`.
    pub async fn fresh(&self, db: &Db, seen: Option<u64>) -> Result<Option<Arc<T>>, sqlx::Error> {
        if self.disabled {
            return Ok(None);
        }
        let Some(entry) = self.entry() else {
            self.rebuild_in_background(db);
            return Ok(None);
        };
        if entry.at.elapsed() >= MAX_AGE {
            self.rebuild_in_background(db);
            return Ok(None);
        }
        if let Some(g) = seen
            && g > 0
            && entry.current_for.load(Ordering::Acquire) >= g
        {
            return Ok(Some(entry.index.clone()));
        }
        match changes_since(db, T::TOPIC.name(), &entry.stamp, SYNC_LIMIT).await? {
            // A quiet index's stamp is renewed now and then, so that it never grows too old.
            Changes::None if entry.at.elapsed() < MAX_AGE / 2 => {
                // The read above started after the check that returned `seen`.
                if let Some(g) = seen {
                    entry.current_for.fetch_max(g, Ordering::AcqRel);
                }
                Ok(Some(entry.index.clone()))
            }
            Changes::None | Changes::Keys(_) => self.catch_up(db, seen).await,
            Changes::Many => {
                self.rebuild_in_background(db);
                Ok(None)
            }
        }
    }

    /// Builds the index now and waits for it (benchmarks and tests; in service it is built in the
    /// background on first use).
    pub async fn rebuild(&self, db: &Db) -> Result<(), sqlx::Error> {
        if self.disabled {
            return Ok(());
        }
        let entry = build::<T>(db).await?;
        self.store(entry);
        Ok(())
    }

    fn entry(&self) -> Option<Arc<Entry<T>>> {
        self.inner.slot.read().map(|s| s.clone()).unwrap_or(None)
    }

    fn store(&self, entry: Entry<T>) {
        if let Ok(mut slot) = self.inner.slot.write() {
            *slot = Some(Arc::new(entry));
        }
    }

    /// Brings the installed index up to the committed state, one request at a time.
    /// `seen`: as for [`Feed::fresh`]; the new entry's snapshot is opened after the check that
    /// returned it.
    async fn catch_up(&self, db: &Db, seen: Option<u64>) -> Result<Option<Arc<T>>, sqlx::Error> {
        let _turn = self.inner.catching_up.lock().await;
        // The index may have moved on while this request waited: start from the newest.
        let Some(entry) = self.entry() else { return Ok(None) };
        match advance(db, &entry, SYNC_LIMIT, seen.unwrap_or(0)).await? {
            Some(next) => {
                let index = next.index.clone();
                self.store(next);
                if index.wants_rebuild() {
                    self.rebuild_in_background(db);
                }
                Ok(Some(index))
            }
            None => {
                self.rebuild_in_background(db);
                Ok(None)
            }
        }
    }

    /// Starts a full rebuild unless one is running or the last one started very recently (wait at
    /// least four times the last build's duration, and a second, between starts).
    fn rebuild_in_background(&self, db: &Db) {
        if let Ok(last) = self.inner.last_start.read()
            && let Some((started, took)) = *last
            && started.elapsed() < (took * 4).max(Duration::from_secs(1))
        {
            return;
        }
        if self.inner.building.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        let (feed, db) = (self.clone(), db.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            match build::<T>(&db).await {
                Ok(entry) => {
                    tracing::debug!(what = T::WHAT, ms = t.elapsed().as_millis() as u64, "index built");
                    // Writes committed during the build are re-read before it is installed, so
                    // the installed index does not fall behind the one it replaces.
                    match advance(&db, &entry, BUILD_CATCH_UP_LIMIT, 0).await {
                        Ok(Some(next)) => feed.store(next),
                        Ok(None) => feed.store(entry),
                        Err(e) => tracing::warn!(what = T::WHAT, error = %e, "catching up a new index failed"),
                    }
                }
                Err(e) => tracing::warn!(what = T::WHAT, error = %e, "building an index failed; the database answers"),
            }
            if let Ok(mut last) = feed.inner.last_start.write() {
                *last = Some((t, t.elapsed()));
            }
            feed.inner.building.store(false, Ordering::Release);
        });
    }
}

/// A full build in one snapshot, then a prune of the log.
async fn build<T: Indexed>(db: &Db) -> Result<Entry<T>, sqlx::Error> {
    let at = Instant::now();
    let mut snap = Snapshot::open(db).await?;
    let index = T::build(&mut snap).await?;
    let stamp = snap.stamp().clone();
    snap.close().await?;
    if let Err(e) = prune(db).await {
        tracing::warn!(error = %e, "pruning the change log failed");
    }
    Ok(Entry::new(Arc::new(index), stamp, at, 0))
}

/// `entry` brought to the committed state in a new snapshot: the keys changed since its stamp
/// re-read (up to `limit`; more, and `None`). The new entry is current for the generation
/// `current_for` (0: none), which the caller saw before this call.
async fn advance<T: Indexed>(
    db: &Db,
    entry: &Entry<T>,
    limit: usize,
    current_for: u64,
) -> Result<Option<Entry<T>>, sqlx::Error> {
    let at = Instant::now();
    let mut snap = Snapshot::open(db).await?;
    let index = match snap.changes_since(T::TOPIC.name(), &entry.stamp, limit).await? {
        Changes::None => entry.index.clone(),
        Changes::Many => {
            snap.close().await?;
            return Ok(None);
        }
        Changes::Keys(keys) => {
            let t = Instant::now();
            let next = Arc::new(entry.index.reload(&mut snap, &keys).await?);
            tracing::debug!(what = T::WHAT, keys = keys.len(), us = t.elapsed().as_micros() as u64, "index caught up");
            next
        }
    };
    let stamp = snap.stamp().clone();
    snap.close().await?;
    Ok(Some(Entry::new(index, stamp, at, current_for)))
}

#[cfg(test)]
mod tests;
