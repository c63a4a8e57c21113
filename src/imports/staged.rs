//! Staged imports (depots, stock): the import pipeline for files too large to hold, with a write
//! transaction as short as a few set-based statements.
//!
//! 1. **Look up** the stored data the rows are checked against, once ([`Staged::lookup`]).
//! 2. **Read, check and stage**, streaming: a blocking-pool thread reads the file record by
//!    record, parses and checks each one against the lookup ([`Staged::check`]) and hands the
//!    checked rows over in chunks; each chunk is written at once into a `TEMP` table on the
//!    import's own connection ([`Held`]: [`Staged::create`], [`Staged::stage`]), outside any
//!    transaction. A `TEMP` table lives in the connection's temporary database (SQLite) or
//!    temporary schema (PostgreSQL): writing it takes no lock on the service's tables, so other
//!    writers go on meanwhile, and no other connection sees it. No more than a few chunks of rows
//!    are in memory at any time, whatever the file's size.
//! 3. **Check across rows** with set-based queries on the staged rows (duplicates within the
//!    file: [`Staged::check_staged`]).
//! 4. **Reject** with 422 (first errors by line, total count), or answer a dry run's preview:
//!    nothing is written, and the staged rows vanish with the connection.
//! 5. **Write** in one transaction on the same connection ([`Held::begin`]: on SQLite this
//!    process's turn at the write lock and `BEGIN IMMEDIATE`, as for any writer), with
//!    `INSERT … SELECT` / `UPDATE … FROM` statements from the staged rows ([`Staged::write`]):
//!    every row or none. The write lock is held for those statements only.
//!
//! The connection is closed when the import ends (success, failure or a cancelled request), so
//! its temporary table never outlives the import.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::csvio::{Column, Record};
use crate::db::{Db, Held, Tx};
use crate::error::{ApiError, ApiResult, FieldError};

use super::{Errors, ImportQuery, ImportSummary, Outcome, PREVIEW_ROWS, Preview, Upload};

/// Checked rows handed from the reading thread to the staging task at a time.
const CHUNK: usize = 2_000;

/// Chunks in flight between the reading thread and the staging task (bounds the memory).
const IN_FLIGHT: usize = 4;

/// Page cache of the import's own SQLite connection, in KiB.
const WRITE_CACHE_KIB: u32 = 64 * 1024;

/// One kind of staged import (see the module documentation).
pub trait Staged: Send + Sync + 'static {
    /// What the check of one row needs of stored data and of the caller (jurisdiction, clock).
    type Lookup: Send + Sync + 'static;
    /// A checked row, as staged.
    type Row: Send + 'static;
    /// The file's columns.
    const COLUMNS: &'static [Column];

    /// Loads what [`Staged::check`] needs, once, before the file is read.
    fn lookup(&self, db: &Db) -> impl Future<Output = ApiResult<Self::Lookup>> + Send;

    /// Parses and checks one record (CPU only), pushing every problem to `errors`. Returns the
    /// row to stage: None when the row cannot be read at all; a row with errors may still be
    /// staged, for the checks across rows.
    fn check(lookup: &Self::Lookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<Self::Row>;

    /// Creates the staging table on the import's connection.
    fn create(conn: &mut Held) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Stages a chunk of checked rows (at most 2,000).
    fn stage(conn: &mut Held, rows: &[Self::Row]) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Checks the staged rows against each other (set-based), pushing every problem to `errors`.
    fn check_staged(&self, conn: &mut Held, errors: &mut Errors) -> impl Future<Output = ApiResult<()>> + Send;

    /// Writes the staged rows in the given transaction (on the staging connection) with
    /// set-based statements. `rows` is the number of data rows read.
    fn write(&self, tx: &mut Tx, rows: usize) -> impl Future<Output = ApiResult<ImportSummary>> + Send;

    /// Prepares the write of a file that passed every check (not for a dry run or a rejected
    /// file), on the import's connection and outside any transaction: work moved out of the
    /// write transaction, e.g. staged rows copied into the order the write inserts them in.
    /// Nothing by default.
    fn prepare_write(&self, _conn: &mut Held) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }
}

/// Runs a staged import for a request: the body is the file, `?dry_run=true` asks for a preview.
pub async fn respond<S: Staged>(c: &crate::http::Ctx, imp: &S) -> ApiResult<warp::reply::Response> {
    let q: ImportQuery = c.query()?;
    let upload = c.upload.clone().unwrap_or_else(|| Upload::Memory(c.body.clone()));
    run(imp, &c.app.db, upload, q.dry_run).await?.reply()
}

/// Runs a staged import of `body`: all or nothing.
pub async fn run<S: Staged>(imp: &S, db: &Db, body: Upload, dry_run: bool) -> ApiResult<Outcome> {
    let large = body.len() >= super::TRIM_FROM_BYTES as u64;
    let outcome = run_inner(imp, db, body, dry_run, std::future::ready(())).await;
    if large {
        super::give_back_memory();
    }
    outcome
}

/// What the reading thread found.
struct Read {
    rows: usize,
    errors: Errors,
    preview: Vec<serde_json::Value>,
}

/// The pipeline; `meanwhile` is awaited after the checks and before the write transaction begins
/// (nothing but a test has anything to do there).
async fn run_inner<S: Staged>(
    imp: &S,
    db: &Db,
    body: Upload,
    dry_run: bool,
    meanwhile: impl Future<Output = ()>,
) -> ApiResult<Outcome> {
    let started = Instant::now();
    let lookup = Arc::new(imp.lookup(db).await?);
    let mut conn = db.hold().await?;
    if let Held::Sqlite(c) = &mut conn {
        // The write inserts a whole file into tables with several indexes, some in random key
        // order (a batch's depot, item and number): with SQLite's default 2 MiB page cache it
        // spills and re-reads pages over and over. The connection is closed after the import,
        // so the larger cache goes with it.
        sqlx::query(&format!("PRAGMA cache_size = -{}", WRITE_CACHE_KIB)).execute(&mut **c).await?;
    }
    S::create(&mut conn).await?;
    let (send, mut chunks) = tokio::sync::mpsc::channel::<Vec<S::Row>>(IN_FLIGHT);
    let reader = tokio::task::spawn_blocking({
        let lookup = lookup.clone();
        move || read::<S>(&body, &lookup, send)
    });
    let mut staged = 0usize;
    while let Some(chunk) = chunks.recv().await {
        S::stage(&mut conn, &chunk).await?;
        staged += chunk.len();
    }
    let Read { rows, mut errors, preview } =
        reader.await.map_err(|e| ApiError::Internal(anyhow::anyhow!("reading an import failed: {e}")))??;
    drop(lookup);
    let read_ms = started.elapsed().as_millis();
    imp.check_staged(&mut conn, &mut errors).await?;
    let check_ms = started.elapsed().as_millis() - read_ms;
    if dry_run {
        let (errors, total_errors) = errors.sorted();
        return Ok(Outcome::Preview(Preview { dry_run: true, rows, preview, errors, total_errors }));
    }
    if !errors.is_empty() {
        tracing::info!(rows, staged, errors = errors.total(), read_ms, check_ms, "import rejected");
        return Err(errors.into_error());
    }
    imp.prepare_write(&mut conn).await?;
    let prepare_ms = started.elapsed().as_millis() - read_ms - check_ms;
    meanwhile.await;
    let write_started = Instant::now();
    let mut tx = conn.begin(db).await?;
    let locked = Instant::now();
    let summary = imp.write(&mut tx, rows).await?;
    BulkLog::check_ended(&mut tx).await?;
    tx.commit().await?;
    let (wait_ms, write_ms) = ((locked - write_started).as_millis(), locked.elapsed().as_millis());
    tracing::info!(rows, staged, read_ms, check_ms, prepare_ms, wait_ms, write_ms, "import written");
    Ok(Outcome::Done(summary))
}

/// The reading thread: records → checked rows, handed over in chunks.
fn read<S: Staged>(
    upload: &Upload,
    lookup: &S::Lookup,
    send: tokio::sync::mpsc::Sender<Vec<S::Row>>,
) -> Result<Read, ApiError> {
    let mut errors = Errors::new();
    let mut preview = Vec::new();
    let mut row_errors = Vec::new();
    let mut rows = 0;
    let mut chunk = Vec::with_capacity(CHUNK);
    // False once the staging task has stopped (it failed): the rest of the file is only counted.
    let mut open = true;
    let mut each = |rec: Result<Record<'_>, FieldError>| match rec {
        Err(e) => errors.push(e),
        Ok(rec) => {
            rows += 1;
            if preview.len() < PREVIEW_ROWS {
                preview.push(rec.to_json());
            }
            let row = S::check(lookup, &rec, &mut row_errors);
            row_errors.drain(..).for_each(|e| errors.push(e));
            if let Some(row) = row
                && open
            {
                chunk.push(row);
                if chunk.len() == CHUNK {
                    open = send.blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_ok();
                }
            }
        }
    };
    let header = super::records(upload, S::COLUMNS, &mut each)?;
    if !chunk.is_empty() && open {
        let _ = send.blocking_send(chunk);
    }
    errors.header = Some(header);
    Ok(Read { rows, errors, preview })
}

/// A bulk write's change log (SQLite): a write of more than [`BulkLog::KEYS`] keys of a topic logs
/// the key "every key" (-1, [`crate::change_feed::ALL_KEYS`]) once, and the row triggers log
/// nothing more until [`BulkLog::end`] (migration 0029: they skip while the topic has a row in
/// `change_log_bulk`). Readers see what they would have seen from the row triggers: the change
/// feed reads more distinct keys than its largest limit (5,000) as `Changes::Many`, exactly as it
/// reads -1, and the read caches only ask whether the topic changed. Begun and ended in the same
/// transaction; [`run`] refuses to commit while a mark is left, so no other transaction ever
/// sees one. On PostgreSQL the statement triggers do the same by themselves (migration 0029).
pub struct BulkLog {
    topic: Option<crate::change_feed::Topic>,
}

impl BulkLog {
    /// More distinct keys than this are logged as every key: at least the change feed's largest
    /// limit of keys it reloads (`BUILD_CATCH_UP_LIMIT`, 5,000), so readers cannot tell.
    pub const KEYS: i64 = 5_000;

    /// Begins a bulk write of `keys` distinct keys of `topic` in `tx` (nothing on PostgreSQL, or
    /// for fewer keys: the triggers log each one).
    pub async fn begin(tx: &mut Tx, topic: crate::change_feed::Topic, keys: i64) -> ApiResult<BulkLog> {
        let Tx::Sqlite(c, _) = tx else { return Ok(BulkLog { topic: None }) };
        if keys <= Self::KEYS {
            return Ok(BulkLog { topic: None });
        }
        let name = topic.name();
        sqlx::query("DELETE FROM change_log WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(crate::change_feed::ALL_KEYS)
            .execute(&mut **c)
            .await?;
        sqlx::query("INSERT INTO change_log (name, key) VALUES ($1, $2)")
            .bind(name)
            .bind(crate::change_feed::ALL_KEYS)
            .execute(&mut **c)
            .await?;
        sqlx::query("INSERT INTO change_log_bulk (name) VALUES ($1)").bind(name).execute(&mut **c).await?;
        Ok(BulkLog { topic: Some(topic) })
    }

    /// Ends the bulk write: the row triggers log each key again.
    pub async fn end(self, tx: &mut Tx) -> ApiResult<()> {
        let (Some(topic), Tx::Sqlite(c, _)) = (self.topic, tx) else { return Ok(()) };
        let done =
            sqlx::query("DELETE FROM change_log_bulk WHERE name = $1").bind(topic.name()).execute(&mut **c).await?;
        if done.rows_affected() != 1 {
            return Err(ApiError::Internal(anyhow::anyhow!("the bulk change log mark of {} was gone", topic.name())));
        }
        Ok(())
    }

    /// Fails (so the transaction rolls back) when a bulk write left its mark: committed, it
    /// would keep the row triggers from logging other transactions' changes.
    async fn check_ended(tx: &mut Tx) -> ApiResult<()> {
        let Tx::Sqlite(c, _) = tx else { return Ok(()) };
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM change_log_bulk").fetch_one(&mut **c).await?;
        if left != 0 {
            return Err(ApiError::Internal(anyhow::anyhow!("a bulk change log mark was left before commit")));
        }
        Ok(())
    }
}

/// A value's JSON text as it appears inside an audit row (a string without its quotes), for
/// audit rows built by SQL.
pub fn json_text<T: serde::Serialize>(v: &T) -> ApiResult<String> {
    match serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// [`run`] for tests, with `meanwhile` awaited after the file is read, staged and checked and
/// before the write transaction begins: what another request does between an import's check and
/// its write (say, a call-up deploying a member the file changes).
#[cfg(feature = "bench")]
pub async fn run_with_meanwhile<S: Staged>(
    imp: &S,
    db: &Db,
    body: Upload,
    meanwhile: impl Future<Output = ()>,
) -> ApiResult<ImportSummary> {
    match run_inner(imp, db, body, false, meanwhile).await? {
        Outcome::Done(summary) => Ok(summary),
        Outcome::Preview(_) => Err(ApiError::Internal(anyhow::anyhow!("an import that writes answered a preview"))),
    }
}

/// Runs a staged write's audit statement (`INSERT INTO audit_log … SELECT` with `$1` the time,
/// `$2` the actor's name, `$3` their role and `$4` the request id) and checks that it wrote one
/// audit row for each of the `written` rows (`what`: the rows, in the error).
pub async fn audit_staged(
    tx: &mut Tx,
    sql: &str,
    now: crate::time::Timestamp,
    actor: &crate::audit::Actor,
    written: u64,
    what: &str,
) -> ApiResult<()> {
    let audited = crate::with_tx!(&mut *tx, |c| sqlx::query(sql)
        .bind(now)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(&actor.request_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if audited != written {
        return Err(ApiError::Internal(anyhow::anyhow!("{written} {what} written but {audited} audit rows")));
    }
    Ok(())
}
