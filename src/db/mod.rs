//! Storage: one pool type over SQLite or PostgreSQL, and the macros that let every query be
//! written once.
//!
//! Queries use `$1` placeholders, which sqlx binds on both backends. The [`with_db!`] and
//! [`with_tx!`] macros expand the same query text once per backend, so the code is written once
//! and type-checked against both drivers. Dialect branches (job claiming, spatial search) stay
//! inside the storage module that needs them, via [`Db::backend`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

mod sqlite_file;
pub use sqlite_file::WriteTurn;
use sqlite_file::{checkpoint_soon, sqlite_file_lock, write_turn};

/// Which database engine is underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (the zero-setup default).
    Sqlite,
    /// PostgreSQL, for several service instances sharing one database.
    Postgres,
}

/// A connection pool on one of the two supported backends.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite pool (WAL mode, foreign keys on).
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// An open transaction on one of the two backends.
pub enum Tx {
    /// SQLite transaction, with this process's turn at the database's write lock (released after
    /// the transaction ends).
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>, Option<WriteTurn>),
    /// PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$p` bound to the backend's pool (`&SqlitePool` or `&PgPool`).
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($p) => $body,
            $crate::db::Db::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the transaction's connection (`&mut SqliteConnection` or
/// `&mut PgConnection`).
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t, _) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `sqlite://path`, a bare file path, or `postgres://…`.
    pub url: String,
    /// Maximum pool size.
    pub max_connections: u32,
}

impl Db {
    /// Opens a pool. A SQLite file is created when missing and put in WAL mode with foreign keys
    /// enforced.
    pub async fn connect(opts: &DbOptions) -> anyhow::Result<Db> {
        let url = opts.url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(connect)
                .await?;
            return Ok(Db::Postgres(pool));
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed, not left in free space: erased
            // personal data must not survive in the file (see `forget_old_pages`).
            .pragma("secure_delete", "ON")
            // Checkpoints run off the request path (see [`checkpoint_soon`]): SQLite's own
            // automatic checkpoint runs inside the COMMIT of whichever connection crosses the
            // threshold, with an fsync of the log and of the database file, so a request that
            // commits right after a long job's batch would wait for the job's pages to reach
            // the disk. After a checkpoint lets the log start over, it is cut back to 64 MiB.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", "67108864")
            .busy_timeout(Duration::from_secs(15));
        // The first connection creates the file and switches it to WAL, which needs an exclusive
        // lock that SQLite does not wait for: processes starting together take turns.
        let _guard = sqlite_file_lock(connect.get_filename()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(connect)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    /// After an erasure: on SQLite, copies the write-ahead log into the database file and empties
    /// it, so old page images holding erased data leave the `-wal` file (with `secure_delete` on,
    /// the database file itself keeps no deleted content). Best effort: a checkpoint blocked by a
    /// long reader completes at the next one. PostgreSQL reclaims dead rows with (auto)vacuum.
    pub async fn forget_old_pages(&self) {
        if let Db::Sqlite(p) = self
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(p).await
        {
            tracing::warn!(error = %e, "WAL checkpoint after an erasure failed");
        }
    }

    /// Which backend this pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations from `migrations/<backend>`. On PostgreSQL sqlx holds an
    /// advisory lock while migrating, so several instances starting at once are safe; on SQLite
    /// the database file lock serialises them.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => {
                // sqlx takes no lock on SQLite, so two processes starting together could both
                // apply a migration: hold an exclusive lock on a file beside the database.
                let _guard = sqlite_file_lock(p.connect_options().get_filename()).await?;
                sqlx::migrate!("migrations/sqlite").run(p).await?
            }
            Db::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
            // writes fails with SQLITE_BUSY when another writer got in between, which busy_timeout
            // cannot wait out.
            //
            // Writers of this process queue for the write lock in arrival order first (see
            // [`write_turn`]), so a long job committing batch after batch cannot starve a request.
            Db::Sqlite(p) => {
                let turn = write_turn(p).await?;
                Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?, turn)
            }
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// `SELECT 1`: is the database reachable?
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, |p| sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }

    /// Pool size and idle connections, for metrics.
    pub fn pool_state(&self) -> (u32, usize) {
        with_db!(self, |p| (p.size(), p.num_idle()))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        with_db!(self, |p| p.close().await)
    }
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t, turn) => {
                let done = t.commit().await;
                if let Some(turn) = &turn
                    && done.is_ok()
                {
                    checkpoint_soon(&turn.file, &turn.pool);
                }
                drop(turn);
                done
            }
            Tx::Postgres(t) => t.commit().await,
        }
    }

    /// Which backend this transaction runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// A connection taken from the pool and held by one task for a while: an import stages its
/// checked rows in a `TEMP` table on it (outside any transaction, so on SQLite without the
/// database's write lock) and then writes them in one transaction on the same connection
/// ([`Held::begin`]). It is closed when dropped instead of going back to the pool, so nothing it
/// created (temporary tables, a larger page cache) outlives it, whether the import succeeded,
/// failed or was cancelled.
pub enum Held {
    /// SQLite connection.
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    /// PostgreSQL connection.
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

/// Runs `$body` with `$c` bound to a [`Held`] connection (`&mut SqliteConnection` or
/// `&mut PgConnection`).
#[macro_export]
macro_rules! with_held {
    ($held:expr, |$c:ident| $body:expr) => {
        match $held {
            $crate::db::Held::Sqlite(h) => {
                let $c = &mut **h;
                $body
            }
            $crate::db::Held::Postgres(h) => {
                let $c = &mut **h;
                $body
            }
        }
    };
}

impl Db {
    /// Takes a connection out of the pool for a while (see [`Held`]).
    pub async fn hold(&self) -> Result<Held, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => {
                let mut c = p.acquire().await?;
                c.close_on_drop();
                Held::Sqlite(c)
            }
            Db::Postgres(p) => {
                let mut c = p.acquire().await?;
                c.close_on_drop();
                Held::Postgres(c)
            }
        })
    }
}

impl Held {
    /// Which backend the connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Held::Sqlite(_) => Backend::Sqlite,
            Held::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a transaction on this connection exactly as [`Db::begin`] starts one on a pooled
    /// connection (on SQLite: this process's turn at the write lock, then `BEGIN IMMEDIATE`).
    /// `db` is the pool the connection came from.
    pub async fn begin(self, db: &Db) -> Result<Tx, sqlx::Error> {
        Ok(match (self, db) {
            (Held::Sqlite(c), Db::Sqlite(p)) => {
                let turn = write_turn(p).await?;
                Tx::Sqlite(sqlx::Transaction::begin(c, Some("BEGIN IMMEDIATE".into())).await?, turn)
            }
            (Held::Postgres(c), _) => Tx::Postgres(sqlx::Transaction::begin(c, None).await?),
            (Held::Sqlite(_), Db::Postgres(_)) => {
                return Err(sqlx::Error::Configuration("a SQLite connection with a PostgreSQL pool".into()));
            }
        })
    }
}

/// True when the error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that queued while a job held the lock gets it before the job's next batch: with
    /// SQLite's busy handler alone the job, retrying at once, would usually win it back.
    #[tokio::test]
    async fn sqlite_writers_take_the_lock_in_arrival_order() {
        let dir = std::env::temp_dir().join(format!("yingji-writeq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("q.db").display());
        let db = Db::connect(&DbOptions { url, max_connections: 4 }).await.unwrap();
        with_db!(&db, |p| sqlx::query("CREATE TABLE IF NOT EXISTS q (n INTEGER PRIMARY KEY, who TEXT)")
            .execute(p)
            .await
            .map(|_| ())
            .unwrap());
        async fn write(db: &Db, who: &str) {
            let mut tx = db.begin().await.unwrap();
            with_tx!(&mut tx, |c| sqlx::query("INSERT INTO q (who) VALUES ($1)")
                .bind(who)
                .execute(c)
                .await
                .map(|_| ())
                .unwrap());
            tx.commit().await.unwrap();
        }
        // The job holds the lock; a request arrives and waits for it.
        let mut job = db.begin().await.unwrap();
        let request = tokio::spawn({
            let db = db.clone();
            async move { write(&db, "request").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        with_tx!(&mut job, |c| sqlx::query("INSERT INTO q (who) VALUES ('job 1')")
            .execute(c)
            .await
            .map(|_| ())
            .unwrap());
        job.commit().await.unwrap();
        // The job's next batch queues behind the request.
        write(&db, "job 2").await;
        request.await.unwrap();
        let order: Vec<String> =
            with_db!(&db, |p| sqlx::query_scalar("SELECT who FROM q ORDER BY n").fetch_all(p).await.unwrap());
        assert_eq!(order, ["job 1", "request", "job 2"]);
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Commits never checkpoint themselves (`wal_autocheckpoint` is off); the checkpointer copies
    /// what they wrote into the database file shortly after, and the log then starts over
    /// instead of growing: without it the file would stay empty and the log grow without end.
    #[tokio::test]
    async fn sqlite_commits_are_checkpointed_in_the_background() {
        let dir = std::env::temp_dir().join(format!("yingji-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.db");
        let url = format!("sqlite://{}", file.display());
        let db = Db::connect(&DbOptions { url, max_connections: 4 }).await.unwrap();
        let autocheckpoint: i64 =
            with_db!(&db, |p| sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(p).await.unwrap());
        assert_eq!(autocheckpoint, 0, "SQLite's own checkpoint inside COMMIT is off");
        with_db!(&db, |p| sqlx::query("CREATE TABLE c (n INTEGER PRIMARY KEY, pad TEXT)")
            .execute(p)
            .await
            .map(|_| ())
            .unwrap());
        let wal = dir.join("c.db-wal");
        let mut largest_wal = 0;
        // 40 rounds of 2,000 rows of 100 bytes (about 8 MB), each committed at once.
        for round in 0..40 {
            let mut tx = db.begin().await.unwrap();
            with_tx!(&mut tx, |c| sqlx::query(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
                 INSERT INTO c (pad) SELECT printf('%0100d', i + $1) FROM s"
            )
            .bind(round)
            .execute(c)
            .await
            .map(|_| ())
            .unwrap());
            tx.commit().await.unwrap();
            largest_wal = largest_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The rows reach the database file itself soon after the last commit.
        let mut size = 0;
        for _ in 0..100 {
            size = std::fs::metadata(&file).unwrap().len();
            if size > 7_000_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(size > 7_000_000, "database file is {size} bytes: the commits were not checkpointed");
        // The log started over along the way rather than holding all 8 MB.
        assert!(largest_wal < 6_000_000, "the log grew to {largest_wal} bytes");
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
