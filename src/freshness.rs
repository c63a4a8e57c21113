//! Exact in-process caches of rarely written tables, checked with one read shared by every
//! request in flight.
//!
//! Who a bearer token stands for and the pages of the region list change rarely but are read on
//! every request. Each such table feeds a *topic* (migration 0023: `auth` for tokens, users and
//! the level of a user's region; `regions` for the region tree). A trigger records every write to
//! a topic's tables inside the writing transaction (a counter row in `read_cache_epochs` on SQLite, the transaction id
//! in `read_cache_changes` on PostgreSQL, the pattern of the nearest-teams index of migration 0020), whatever code
//! path writes, on whatever instance.
//!
//! A request asks [`Freshness::check`] once, before it uses any cache. The answer always comes
//! from a read of the change record that *started after the request arrived*, so every write
//! committed before the request (here or on another instance) is seen: a topic whose record moved
//! gets a new generation, and caches drop whatever they held for an older generation. Requests
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

/// A topic's stamp older than this is renewed (its caches dropped) even without a change, so the
/// PostgreSQL change log can be pruned of rows older than twice this.
const MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// What the caches of one instance hold, by the tables they are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Who a bearer token stands for (`api_tokens`, `users`, a user's region level).
    Auth,
    /// The region tree (`regions`).
    Regions,
}

impl Topic {
    const ALL: [Topic; 2] = [Topic::Auth, Topic::Regions];

    /// The name in `read_cache_epochs` / `read_cache_changes`.
    fn name(self) -> &'static str {
        match self {
            Topic::Auth => "auth",
            Topic::Regions => "regions",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The generation of each topic as of one check: caches keyed by an older generation are stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations([u64; 2]);

impl Generations {
    /// The generation of `topic`.
    pub fn of(self, topic: Topic) -> u64 {
        self.0[topic.index()]
    }
}

/// The committed state a topic's generation stands for.
#[derive(Debug, Clone, PartialEq)]
enum Stamp {
    /// SQLite: the topic's counter in `read_cache_epochs`.
    Counter(i64),
    /// PostgreSQL: a snapshot (`pg_current_snapshot()` as text) in which every change to the
    /// topic that the generation reflects is visible, and when it was taken.
    Snapshot(String, Instant),
}

#[derive(Debug, Default)]
struct TopicState {
    generation: u64,
    stamp: Option<Stamp>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether a read of the change record is in flight (its number is `started`).
    running: bool,
    /// Reads started so far.
    started: u64,
    /// The highest read number some caller waits for.
    wanted: u64,
    topics: [TopicState; 2],
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
            let (read, stamps) = {
                let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                (s.started, s.topics.each_ref().map(|t| t.stamp.clone()))
            };
            let result = current(&db, &stamps).await;
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let generations = match result {
                Ok(fresh) => {
                    for (topic, new) in s.topics.iter_mut().zip(fresh) {
                        if let Some(stamp) = new {
                            topic.generation += 1;
                            topic.stamp = Some(stamp);
                        }
                    }
                    Some(Generations(s.topics.each_ref().map(|t| t.generation)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the cache change record failed; the database answers");
                    None
                }
            };
            self.done.send_replace(Outcome { read, generations });
            if s.wanted > read {
                s.started = read + 1;
            } else {
                s.running = false;
                guard.0 = None;
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
            s.started = s.started.max(s.wanted);
            f.done.send_replace(Outcome { read: s.started, generations: None });
        }
    }
}

/// For each topic, a new stamp when something changed since `stamps` (or the stamp is missing or
/// too old), else None.
async fn current(db: &Db, stamps: &[Option<Stamp>; 2]) -> Result<[Option<Stamp>; 2], sqlx::Error> {
    match db {
        Db::Sqlite(p) => {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT name, epoch FROM read_cache_epochs WHERE name IN ('auth', 'regions')")
                    .fetch_all(p)
                    .await?;
            Ok(Topic::ALL.map(|t| {
                // A missing counter row never matches: such a topic is never served from a cache.
                let now = rows.iter().find(|(n, _)| n == t.name()).map(|(_, e)| *e);
                match (now, &stamps[t.index()]) {
                    (Some(n), Some(Stamp::Counter(was))) if n == *was => None,
                    (Some(n), _) => Some(Stamp::Counter(n)),
                    (None, _) => Some(Stamp::Counter(-1)),
                }
            }))
        }
        Db::Postgres(p) => {
            let snapshot = |t: Topic| match &stamps[t.index()] {
                Some(Stamp::Snapshot(s, at)) if at.elapsed() < MAX_AGE => Some(s.clone()),
                _ => None,
            };
            // One statement, one snapshot: a change committed after the stamp's snapshot was taken
            // is not visible in it; the snapshot returned here becomes the new stamp of a topic
            // that changed (everything committed before it is visible to the reads that follow).
            let (now, auth, regions): (String, bool, bool) = sqlx::query_as(
                "SELECT CAST(pg_current_snapshot() AS TEXT),
                        CASE WHEN $1 IS NULL THEN TRUE ELSE EXISTS (SELECT 1 FROM read_cache_changes WHERE name = 'auth'
                            AND xid >= pg_snapshot_xmin(CAST($1 AS pg_snapshot))
                            AND NOT pg_visible_in_snapshot(xid, CAST($1 AS pg_snapshot))) END,
                        CASE WHEN $2 IS NULL THEN TRUE ELSE EXISTS (SELECT 1 FROM read_cache_changes WHERE name = 'regions'
                            AND xid >= pg_snapshot_xmin(CAST($2 AS pg_snapshot))
                            AND NOT pg_visible_in_snapshot(xid, CAST($2 AS pg_snapshot))) END",
            )
            .bind(snapshot(Topic::Auth))
            .bind(snapshot(Topic::Regions))
            .fetch_one(p)
            .await?;
            let aged = stamps.iter().any(|s| matches!(s, Some(Stamp::Snapshot(_, at)) if at.elapsed() >= MAX_AGE));
            if aged {
                // Rows older than any stamp still in use.
                sqlx::query("DELETE FROM read_cache_changes WHERE at < now() - make_interval(secs => $1)")
                    .bind((2 * MAX_AGE).as_secs_f64())
                    .execute(p)
                    .await?;
            }
            let taken = Instant::now();
            Ok([auth, regions].map(|changed| changed.then(|| Stamp::Snapshot(now.clone(), taken))))
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
