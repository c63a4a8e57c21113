//! The import pipeline behind every bulk import (regions, catalogue, depots, stock, teams,
//! members). Regions and the catalogue go through the collecting pipeline of this module;
//! depots, stock, teams and members through its staged twin ([`staged`]), which never holds a
//! file's rows and writes them from `TEMP` tables with set-based statements.
//!
//! 1. **Read** the body row by row (CSV, or the first sheet of an `.xlsx` workbook: [`xlsx`]) on
//!    the blocking pool; each kind parses a row into its compact typed row ([`Import::parse`]).
//! 2. **Check** the rows against stored data with batched lookups ([`Import::check`]), outside
//!    any transaction, so nothing is locked while a large file is validated.
//! 3. **Reject** with 422 when anything is wrong: the first [`MAX_ERRORS`] errors (with line and
//!    column), ordered by line, and the total count ([`Errors`]); nothing is written.
//! 4. **Write** in one short transaction ([`Import::write`]) with multi-row statements in chunks
//!    ([`bulk`]): all or nothing. On SQLite the transaction is `BEGIN IMMEDIATE` and other
//!    writers wait for it (busy timeout) instead of failing.
//!
//! `?dry_run=true` runs steps 1–3 and answers a [`Preview`] (count, first rows, errors) instead
//! of writing.

use std::future::Future;

use std::io::Seek;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
pub use upload::Upload;

use crate::csvio::{self, Column, Header, Record};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError, MAX_ERRORS};
use crate::time::Timestamp;

pub mod bulk;
pub mod copy;
pub mod short;
pub mod staged;
pub mod upload;
pub mod xlsx;

/// Rows a dry run shows.
pub const PREVIEW_ROWS: usize = 20;

/// What an import did.
#[derive(Debug, Serialize, JsonSchema, PartialEq, Eq, Default, Clone)]
pub struct ImportSummary {
    /// Data rows read.
    pub rows: usize,
    /// Entities created (stock: batches received).
    pub created: usize,
    /// Entities changed.
    pub updated: usize,
    /// Rows matching what is stored (stock: batches that already exist).
    pub unchanged: usize,
}

/// Query of every import route.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `true`: check the file and answer a preview (row count, first rows, errors) without
    /// writing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer of a dry run: what an import of this file would read, and what is wrong with it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Preview {
    /// Always true.
    pub dry_run: bool,
    /// Data rows read.
    pub rows: usize,
    /// The first rows as read (canonical column names), at most 20.
    pub preview: Vec<serde_json::Value>,
    /// The first errors (at most 100), ordered by line; empty when the file would import.
    pub errors: Vec<FieldError>,
    /// How many errors there are in all.
    pub total_errors: usize,
}

/// A parsed row with the line it came from.
#[derive(Debug)]
pub struct Lined<R> {
    /// 1-based line (sheet row) of the row.
    pub line: u64,
    /// The row.
    pub row: R,
}

/// The errors of one import: the first [`MAX_ERRORS`] kept, the rest only counted, so no file
/// can make the error list grow without bound.
#[derive(Debug)]
pub struct Errors {
    kept: Vec<FieldError>,
    total: usize,
    header: Option<Header>,
}

impl Errors {
    fn new() -> Errors {
        Errors { kept: Vec::new(), total: 0, header: None }
    }

    /// Records an error. The [`MAX_ERRORS`] with the lowest lines are kept, whatever order they
    /// arrive in (a staged import finds duplicates only after the whole file is read).
    pub fn push(&mut self, e: FieldError) {
        self.total += 1;
        if self.kept.len() < MAX_ERRORS {
            self.kept.push(e);
            return;
        }
        // Errors mostly arrive in line order: compare with the highest kept line first.
        let (at, highest) = self
            .kept
            .iter()
            .enumerate()
            .max_by_key(|(i, k)| (k.line, *i))
            .map(|(i, k)| (i, k.line))
            .unwrap_or((0, None));
        if e.line < highest {
            self.kept[at] = e;
        }
    }

    /// An error about a column of a line (named by the file's column position).
    pub fn at(&mut self, line: u64, column: &'static str, message: impl Into<String>) {
        let e = match &self.header {
            Some(h) => h.err(line, column, message),
            None => FieldError::line(line, None, message.into()),
        };
        self.push(e);
    }

    /// An error about a line as a whole.
    pub fn row(&mut self, line: u64, message: impl Into<String>) {
        self.push(Header::row_err(line, message));
    }

    /// Whether no error was found.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many errors were found.
    pub fn total(&self) -> usize {
        self.total
    }

    fn sorted(mut self) -> (Vec<FieldError>, usize) {
        self.kept.sort_by_key(|e| e.line);
        (self.kept, self.total)
    }

    /// The 422 of a rejected file.
    pub fn into_error(self) -> ApiError {
        let (errors, total) = self.sorted();
        let first = errors.first().map(|e| e.message.clone()).unwrap_or_default();
        ApiError::ValidationCapped {
            detail: format!("导入文件有 {total} 处错误，未写入任何数据；第一处：{first}"),
            errors,
            total,
        }
    }
}

/// One kind of import. Implementations own what they need (the caller's scope, the actor), so
/// the pipeline can run their parsing on the blocking pool.
pub trait Import: Send + Sync + 'static {
    /// A row as parsed from its cells, before any lookup. Keep it compact: a large file holds
    /// one per line.
    type Row: Send + Sync + 'static;
    /// What [`Import::check`] found that [`Import::write`] needs (stored rows, ids).
    type Plan: Send;
    /// The file's columns.
    const COLUMNS: &'static [Column];

    /// Parses one row (CPU only). Push every problem to `errors`; None when the row is invalid.
    fn parse(rec: &Record<'_>, now: Timestamp, errors: &mut Vec<FieldError>) -> Option<Self::Row>;

    /// Checks the valid rows against stored data and each other, with batched lookups (never
    /// one query per row), outside any transaction, and turns them into what is to be written.
    fn check(
        &self,
        db: &Db,
        rows: Vec<Lined<Self::Row>>,
        errors: &mut Errors,
    ) -> impl Future<Output = ApiResult<Self::Plan>> + Send;

    /// Writes the plan in the given transaction with multi-row statements ([`bulk`]).
    fn write(&self, tx: &mut Tx, plan: Self::Plan) -> impl Future<Output = ApiResult<ImportSummary>> + Send;
}

/// The answer of an import: what was written, or (dry run) the preview.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Outcome {
    /// The file was written.
    Done(ImportSummary),
    /// A dry run: nothing was written.
    Preview(Preview),
}

impl Outcome {
    /// The JSON answer of an import route.
    pub fn reply(&self) -> ApiResult<warp::reply::Response> {
        crate::http::ctx::json(self)
    }
}

struct Parsed<R> {
    /// Data rows read (valid or not).
    read: usize,
    rows: Vec<Lined<R>>,
    errors: Errors,
    preview: Vec<serde_json::Value>,
}

fn read<I: Import>(upload: &Upload, now: Timestamp) -> Result<Parsed<I::Row>, ApiError> {
    let mut errors = Errors::new();
    let mut rows = Vec::new();
    let mut preview = Vec::new();
    let mut row_errors = Vec::new();
    let mut read = 0;
    let mut each = |rec: Result<Record<'_>, FieldError>| match rec {
        Err(e) => errors.push(e),
        Ok(rec) => {
            read += 1;
            if preview.len() < PREVIEW_ROWS {
                preview.push(rec.to_json());
            }
            match I::parse(&rec, now, &mut row_errors) {
                Some(row) if row_errors.is_empty() => rows.push(Lined { line: rec.line, row }),
                _ => row_errors.drain(..).for_each(|e| errors.push(e)),
            }
        }
    };
    let header = records(upload, I::COLUMNS, &mut each)?;
    errors.header = Some(header);
    rows.shrink_to_fit();
    Ok(Parsed { read, rows, errors, preview })
}

/// Reads an uploaded file (CSV, or the first sheet of an `.xlsx` workbook) record by record
/// against the column list, handing each to `each`; returns the file's header.
fn records(
    upload: &Upload,
    columns: &'static [Column],
    each: &mut dyn FnMut(Result<Record<'_>, FieldError>),
) -> Result<Header, ApiError> {
    let io = |e: std::io::Error| ApiError::Internal(anyhow::anyhow!("reading an upload: {e}"));
    if xlsx::is_xlsx(&upload.head(4).map_err(io)?) {
        return xlsx::read(upload.reader().map_err(io)?, columns, each);
    }
    // Two passes over the file, neither holding it: check the text, then parse the rows.
    let bom = upload::check_text(&mut upload.reader().map_err(io)?)?;
    let mut input = upload.reader().map_err(io)?;
    if bom {
        input.seek(std::io::SeekFrom::Start(3)).map_err(io)?;
    }
    csvio::read_csv_from(input, columns, each).map_err(|header_errors| {
        let mut e = Errors::new();
        header_errors.into_iter().for_each(|x| e.push(x));
        e.into_error()
    })
}

/// Runs an import for a request: the body is the file, `?dry_run=true` asks for a preview.
pub async fn respond<I: Import>(c: &crate::http::Ctx, imp: &I) -> ApiResult<warp::reply::Response> {
    let q: ImportQuery = c.query()?;
    let upload = c.upload.clone().unwrap_or_else(|| Upload::Memory(c.body.clone()));
    run(imp, &c.app.db, upload, c.now(), q.dry_run).await?.reply()
}

/// Files from this size on hand their memory back to the system when the import ends.
pub(crate) const TRIM_FROM_BYTES: usize = 4 * 1024 * 1024;

/// Runs an import of `body` (see the module documentation): all or nothing.
pub async fn run<I: Import>(imp: &I, db: &Db, body: Upload, now: Timestamp, dry_run: bool) -> ApiResult<Outcome> {
    let large = body.len() >= TRIM_FROM_BYTES as u64;
    let outcome = run_inner(imp, db, body, now, dry_run).await;
    if large {
        give_back_memory();
    }
    outcome
}

/// Returns freed heap memory to the system. glibc keeps the memory a large import freed in its
/// arenas (a 1,000,000-row file would leave hundreds of MiB resident); `malloc_trim` releases it.
pub(crate) fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap structures under their locks; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn run_inner<I: Import>(imp: &I, db: &Db, body: Upload, now: Timestamp, dry_run: bool) -> ApiResult<Outcome> {
    let Parsed { read, rows, mut errors, preview } = crate::blocking::cpu(move || read::<I>(&body, now)).await??;
    let plan = imp.check(db, rows, &mut errors).await?;
    if dry_run {
        let (errors, total_errors) = errors.sorted();
        return Ok(Outcome::Preview(Preview { dry_run: true, rows: read, preview, errors, total_errors }));
    }
    if !errors.is_empty() {
        return Err(errors.into_error());
    }
    let mut tx = db.begin().await?;
    let summary = imp.write(&mut tx, plan).await?;
    tx.commit().await?;
    Ok(Outcome::Done(summary))
}
