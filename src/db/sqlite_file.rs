//! What this process keeps per SQLite database file: the writers' queue (one writer at a time,
//! in arrival order) and the checkpointer that copies committed pages from the write-ahead log
//! into the database file off the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::SqlitePool;

/// A writer's turn at one SQLite database's write lock, within this process.
pub struct WriteTurn {
    _turn: tokio::sync::OwnedMutexGuard<()>,
    pub(super) file: Arc<SqliteFile>,
    /// The pool the writer came from, for the checkpoint after its commit.
    pub(super) pool: SqlitePool,
}

/// What this process keeps per SQLite database file: the writers' queue and its checkpointer.
#[derive(Default)]
pub(super) struct SqliteFile {
    /// Writers of this process, in arrival order (see [`write_turn`]).
    queue: Arc<tokio::sync::Mutex<()>>,
    /// A checkpoint task is running or due.
    checkpointing: AtomicBool,
    /// Something was committed since the running checkpoint started.
    dirty: AtomicBool,
}

/// How long the checkpointer waits after a commit before it starts, so that a job committing
/// batch after batch gets one checkpoint per pause rather than one per batch.
const CHECKPOINT_DELAY: Duration = Duration::from_millis(100);

/// After a commit: copies the committed pages from the write-ahead log into the database file
/// soon, in a task of its own on a pooled connection, instead of inside the next COMMIT that
/// crosses SQLite's automatic threshold (`wal_autocheckpoint` is off, see [`super::Db::connect`]).
/// One task per file at a time; commits while it runs make it go round again. The checkpoint is
/// PASSIVE: it never waits for, nor blocks, readers or writers; what a long reader still needs
/// is copied by a later one, and the log starts over once everything is copied. A crash loses
/// nothing either way: committed transactions are in the log, and SQLite replays it on open.
pub(super) fn checkpoint_soon(file: &Arc<SqliteFile>, pool: &SqlitePool) {
    file.dirty.store(true, Ordering::Release);
    if file.checkpointing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (file, pool) = (file.clone(), pool.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_DELAY).await;
            file.dirty.store(false, Ordering::Release);
            if !pool.is_closed() {
                let started = std::time::Instant::now();
                // (busy, frames in the log, frames copied into the database file)
                match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await {
                    Ok((busy, log, copied)) => {
                        let ms = started.elapsed().as_millis() as u64;
                        tracing::debug!(busy, log, copied, ms, "WAL checkpoint");
                    }
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next commit tries again"),
                }
            }
            file.checkpointing.store(false, Ordering::Release);
            // A commit that came in meanwhile and found the task running left it to us.
            if !file.dirty.load(Ordering::Acquire) || file.checkpointing.swap(true, Ordering::AcqRel) {
                break;
            }
        }
    });
}

/// How long a writer waits for its turn: as long as SQLite's own busy timeout.
const WRITE_TURN_WAIT: Duration = Duration::from_secs(15);

/// Waits for this process's turn to write to the SQLite file behind `pool` (None for an in-memory
/// database).
///
/// SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps in growing
/// steps (up to 100 ms) before trying again, so a job that commits batch after batch retakes the
/// lock before a waiting request wakes: the request starves. A FIFO queue per database file
/// (tokio's mutex is fair) hands the lock over in arrival order instead. Other processes on the
/// same file still wait through `busy_timeout`. A writer that cannot get its turn within the busy
/// timeout fails like a busy database (a pool timeout), never hangs.
pub(super) async fn write_turn(pool: &SqlitePool) -> Result<Option<WriteTurn>, sqlx::Error> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Arc<SqliteFile>>>> = OnceLock::new();
    let path = pool.connect_options().get_filename().to_path_buf();
    if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
        return Ok(None);
    }
    let file = {
        let mut all = FILES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        all.entry(path).or_default().clone()
    };
    match tokio::time::timeout(WRITE_TURN_WAIT, file.queue.clone().lock_owned()).await {
        Ok(turn) => Ok(Some(WriteTurn { _turn: turn, file, pool: pool.clone() })),
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// Holds an exclusive lock on a file beside the SQLite database (released on drop), serialising
/// set-up steps that SQLite itself does not wait for. None for in-memory databases.
pub(super) async fn sqlite_file_lock(db_file: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    if db_file.as_os_str().is_empty() || db_file.to_string_lossy().contains(":memory:") {
        return Ok(None);
    }
    let lock_path = format!("{}.migrate-lock", db_file.display());
    let f = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
        f.lock()?;
        Ok(f)
    })
    .await??;
    Ok(Some(f))
}
