//! Exact in-process caches of rarely written tables, and the in-process nearest indexes, checked
//! with one read shared by every request in flight.
//!
//! Each table a cache or index is read from feeds a *topic* of the keyed change log
//! (`crate::change_feed::Topic`: `auth` for tokens, users and the level of a user's region;
//! `regions` for the region tree; `catalogue` for supply items; `supplies` for depots and stock;
//! `forces` for teams and their members). A trigger records every write to a topic's tables inside
//! the writing transaction (migrations 0021–0023, 0026), whatever code path writes, on whatever
//! instance.
//!
//! A request asks [`Freshness::check`] once, before it uses any cache or index. The answer comes
//! from one read of the change log that *started after the request arrived*: it names every topic
//! logged since the previous read (SQLite: rows after the last `seq` seen; PostgreSQL: rows of
//! transactions the previous read's snapshot did not see), so every write committed before the
//! request (here or on another instance) is seen, and a topic that moved gets a new generation.
//! Caches drop whatever they held for an older generation; a nearest index that was current for a
//! generation answers without reading the log again (`crate::change_feed::Feed::fresh`). Requests
//! arriving while a read is in flight wait for the next one together (one read at a time, however
//! many requests), which is what makes the check cheap under load; an idle instance pays one
//! indexed read per request. A cache entry is stored only under the generation its request
//! checked, so an entry read before a change can never be stored after it (see [`Cached`]).
//!
//! When the check fails (the database is unreachable) callers go to the database as without a
//! cache, and report its error there.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::db::Db;

pub use crate::change_feed::Topic;

/// A stamp older than this is renewed with every topic's generation (their caches dropped), so
/// the change log can be pruned of rows older than twice this (as for the indexes of
/// `crate::change_feed`, whose pruning removes every topic's old rows).
const MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// The generation of each topic as of one check: caches keyed by an older generation are stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations([u64; Topic::COUNT]);

impl Generations {
    /// The generation of `topic`.
    pub fn of(self, topic: Topic) -> u64 {
        self.0[topic.index()]
    }
}

/// The committed state the last read of the change log saw, and when it was read.
#[derive(Debug, Clone, PartialEq)]
enum Stamp {
    /// SQLite: the last `change_log.seq` handed out (`sqlite_sequence`).
    Counter(i64, Instant),
    /// PostgreSQL: the read's snapshot (`pg_current_snapshot()` as text).
    Snapshot(String, Instant),
}

impl Stamp {
    fn at(&self) -> Instant {
        match self {
            Stamp::Counter(_, at) | Stamp::Snapshot(_, at) => *at,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Whether a read of the change record is in flight (its number is `started`).
    running: bool,
    /// Reads started so far.
    started: u64,
    /// The highest read number some caller waits for.
    wanted: u64,
    /// What the last successful read saw (None before it, or after a failed read).
    stamp: Option<Stamp>,
    generations: [u64; Topic::COUNT],
}

/// The outcome of one read: its number and the generations (None when the read failed).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    read: u64,
    generations: Option<Generations>,
}

/// The freshness check of one instance (in `AppState`).
#[derive(Debug)]
pub struct Freshness {
    enabled: bool,
    state: Mutex<State>,
    done: watch::Sender<Outcome>,
}

impl Freshness {
    /// A check (`enabled`), or one that always says "not checked", so that every read goes to
    /// the database (`Config::read_caches` false: for comparisons and benchmarks).
    pub fn new(enabled: bool) -> Freshness {
        Freshness { enabled, state: Mutex::default(), done: watch::Sender::new(Outcome { read: 0, generations: None }) }
    }

    /// The generations as of a read of the change record that started after this call; None when
    /// the read failed or the caches are off (use the database).
    pub async fn check(self: &Arc<Self>, db: &Db) -> Option<Generations> {
        if !self.enabled {
            return None;
        }
        let mut rx = self.done.subscribe();
        let (target, lead) = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.running {
                // The read in flight may have started before this request arrived: wait for the
                // next one, which starts as soon as it ends.
                s.wanted = s.started + 1;
                (s.started + 1, false)
            } else {
                s.running = true;
                s.started += 1;
                s.wanted = s.started;
                (s.started, true)
            }
        };
        if lead {
            // In its own task, so that a request dropped half-way (timeout, client gone) cannot
            // leave the requests waiting on the read without an answer.
            tokio::spawn(self.clone().run(db.clone()));
        }
        match rx.wait_for(|o| o.read >= target).await {
            Ok(o) => o.generations,
            Err(_) => None,
        }
    }

    /// Reads the change record until no caller waits for another read.
    async fn run(self: Arc<Self>, db: Db) {
        let mut guard = Unfinished(Some(self.clone()));
        loop {
            let (read, stamp) = {
                let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                // A stamp too old to trust counts as none: every topic moves on.
                (s.started, s.stamp.clone().filter(|st| st.at().elapsed() < MAX_AGE))
            };
            let aged = stamp.is_none();
            let result = changed(&db, stamp.as_ref()).await;
            let ok = result.is_ok();
            let finished = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let generations = match result {
                    Ok((now, moved)) => {
                        for (g, moved) in s.generations.iter_mut().zip(moved) {
                            if moved {
                                *g += 1;
                            }
                        }
                        s.stamp = Some(now);
                        Some(Generations(s.generations))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the cache change record failed; the database answers");
                        s.stamp = None;
                        None
                    }
                };
                self.done.send_replace(Outcome { read, generations });
                if s.wanted > read {
                    s.started = read + 1;
                    false
                } else {
                    s.running = false;
                    guard.0 = None;
                    true
                }
            };
            if finished {
                if aged && ok {
                    // Rows older than any stamp still in use (every topic's: the one pruning of
                    // the change feed), now and then.
                    if let Err(e) = crate::change_feed::prune(&db).await {
                        tracing::warn!(error = %e, "pruning the change log failed");
                    }
                }
                return;
            }
        }
    }
}

/// Should a read end abnormally (a panic in the driver, the runtime shutting down), answers its
/// waiters "not checked" and lets the next caller start a new read, rather than leaving every
/// later request waiting.
struct Unfinished(Option<Arc<Freshness>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let mut s = f.state.lock().unwrap_or_else(|e| e.into_inner());
            // Everyone waiting is answered, and later reads are numbered after them.
            s.running = false;
            s.stamp = None;
            s.started = s.started.max(s.wanted);
            f.done.send_replace(Outcome { read: s.started, generations: None });
        }
    }
}

/// SQLite: the last `seq` handed out and the topics logged after `$1`, in one statement (one read
/// snapshot). Writers are serialised, so `seq` is commit order; rows are found by `seq` (the
/// primary key), so the read costs what was logged since the last one (`+name` keeps SQLite
/// from walking a topic's rows by the `(name, key)` index instead: every row of `forces`).
const SQLITE_CHANGED: &str = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'change_log'), 0),
    EXISTS (SELECT 1 FROM change_log WHERE seq > $1 AND +name = 'auth'),
    EXISTS (SELECT 1 FROM change_log WHERE seq > $1 AND +name = 'regions'),
    EXISTS (SELECT 1 FROM change_log WHERE seq > $1 AND +name = 'catalogue'),
    EXISTS (SELECT 1 FROM change_log WHERE seq > $1 AND +name = 'supplies'),
    EXISTS (SELECT 1 FROM change_log WHERE seq > $1 AND +name = 'forces')";

/// PostgreSQL: the statement's snapshot and, per topic, whether a transaction that the snapshot
/// `$1` did not see has logged it (its row is visible now). One statement, one snapshot: a change
/// committed after this snapshot was taken is not visible in it, so the next read finds it.
///
/// Not seen by `$1` ⟺ `xid >= xmax` or `xid` in its `xip` list (transactions running when it was
/// taken): so rows below `xmax` that `$1` saw committed are never read, however far a long
/// transaction elsewhere holds `xmin` back (a filter `xid >= xmin AND NOT pg_visible_in_snapshot`
/// read every row since that `xmin`: 2–30 ms per check while a five-minute transaction ran on the
/// server). Each probe is an ordered `LIMIT 1` scan of the primary key `(name, xid, key)`, which
/// the generic plan of a prepared statement keeps whatever the statistics (as `EXISTS`, or as an
/// equality on `xid`, it was planned as a sequential scan of the whole log when a few large
/// transactions wrote most rows: 2.4 ms at 29,000 rows, against 0.03 ms).
const PG_CHANGED: &str = "SELECT CAST(pg_current_snapshot() AS TEXT),
    (SELECT xid FROM change_log WHERE name = 'auth' AND xid >= pg_snapshot_xmax(CAST($1 AS pg_snapshot))
        ORDER BY xid DESC LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM pg_snapshot_xip(CAST($1 AS pg_snapshot)) AS x (id) WHERE (SELECT xid FROM change_log
        WHERE name = 'auth' AND xid >= x.id ORDER BY xid LIMIT 1) = x.id),
    (SELECT xid FROM change_log WHERE name = 'regions' AND xid >= pg_snapshot_xmax(CAST($1 AS pg_snapshot))
        ORDER BY xid DESC LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM pg_snapshot_xip(CAST($1 AS pg_snapshot)) AS x (id) WHERE (SELECT xid FROM change_log
        WHERE name = 'regions' AND xid >= x.id ORDER BY xid LIMIT 1) = x.id),
    (SELECT xid FROM change_log WHERE name = 'catalogue' AND xid >= pg_snapshot_xmax(CAST($1 AS pg_snapshot))
        ORDER BY xid DESC LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM pg_snapshot_xip(CAST($1 AS pg_snapshot)) AS x (id) WHERE (SELECT xid FROM change_log
        WHERE name = 'catalogue' AND xid >= x.id ORDER BY xid LIMIT 1) = x.id),
    (SELECT xid FROM change_log WHERE name = 'supplies' AND xid >= pg_snapshot_xmax(CAST($1 AS pg_snapshot))
        ORDER BY xid DESC LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM pg_snapshot_xip(CAST($1 AS pg_snapshot)) AS x (id) WHERE (SELECT xid FROM change_log
        WHERE name = 'supplies' AND xid >= x.id ORDER BY xid LIMIT 1) = x.id),
    (SELECT xid FROM change_log WHERE name = 'forces' AND xid >= pg_snapshot_xmax(CAST($1 AS pg_snapshot))
        ORDER BY xid DESC LIMIT 1) IS NOT NULL
    OR EXISTS (SELECT 1 FROM pg_snapshot_xip(CAST($1 AS pg_snapshot)) AS x (id) WHERE (SELECT xid FROM change_log
        WHERE name = 'forces' AND xid >= x.id ORDER BY xid LIMIT 1) = x.id)";

/// The new stamp and, per topic (in [`Topic::ALL`] order), whether something changed since
/// `stamp` (everything, without one).
async fn changed(db: &Db, stamp: Option<&Stamp>) -> Result<(Stamp, [bool; Topic::COUNT]), sqlx::Error> {
    let taken = Instant::now();
    match db {
        Db::Sqlite(p) => {
            let since = match stamp {
                Some(Stamp::Counter(seq, _)) => Some(*seq),
                _ => None,
            };
            let (now, a, r, c, s, f): (i64, bool, bool, bool, bool, bool) =
                sqlx::query_as(SQLITE_CHANGED).bind(since.unwrap_or(i64::MAX)).fetch_one(p).await?;
            let moved = if since.is_some() { [a, r, c, s, f] } else { [true; Topic::COUNT] };
            Ok((Stamp::Counter(now, taken), moved))
        }
        Db::Postgres(p) => {
            let since = match stamp {
                Some(Stamp::Snapshot(s, _)) => Some(s.clone()),
                _ => None,
            };
            let known = since.is_some();
            let (now, a, r, c, s, f): (String, bool, bool, bool, bool, bool) =
                sqlx::query_as(PG_CHANGED).bind(since).fetch_one(p).await?;
            // Without an old snapshot everything counts as changed.
            let moved = if known { [a, r, c, s, f] } else { [true; Topic::COUNT] };
            Ok((Stamp::Snapshot(now, taken), moved))
        }
    }
}

/// A bounded map whose entries belong to one generation of a topic: a lookup or store under a
/// newer generation drops them all first, and a store under an older one is ignored (its value
/// may have been read before the change that ended that generation).
#[derive(Debug)]
pub struct Cached<K, V> {
    topic: Topic,
    capacity: usize,
    inner: Mutex<(u64, HashMap<K, V>)>,
}

impl<K: Eq + Hash, V: Clone> Cached<K, V> {
    /// An empty cache of `topic` holding at most `capacity` entries (when full, it starts over).
    pub fn new(topic: Topic, capacity: usize) -> Self {
        Cached { topic, capacity, inner: Mutex::new((0, HashMap::new())) }
    }

    /// The value stored for `key` under the generation `g` checked for this request.
    pub fn get(&self, g: Generations, key: &K) -> Option<V> {
        let generation = g.of(self.topic);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.0 != generation {
            if inner.0 > generation {
                // Another request has already checked a newer generation: this one may not use
                // what that generation holds, nor clear it.
                return None;
            }
            *inner = (generation, HashMap::new());
        }
        inner.1.get(key).cloned()
    }

    /// Stores `value`, read from the database after the check that returned `g`.
    pub fn put(&self, g: Generations, key: K, value: V) {
        let generation = g.of(self.topic);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.0 > generation {
            return;
        }
        if inner.0 < generation || inner.1.len() >= self.capacity {
            *inner = (generation, HashMap::new());
        }
        inner.1.insert(key, value);
    }
}
