//! Receipts in bulk: imports open new batches with [`receive_staged`], each with the balance of
//! its one `receive` movement and that movement's audit row, in set-based statements.

use super::Details;
use crate::audit::Actor;
use crate::change_feed::Topic;
use crate::db::{Backend, Tx};
use crate::error::{ApiError, ApiResult};
use crate::imports::staged::BulkLog;
use crate::supplies::{AdjustReason, MovementKind};
use crate::time::Timestamp;
use crate::with_tx;

/// Binds a receipt movement's fields as `$1` (kind) to `$9` (actor) to a query of either
/// backend.
macro_rules! bind_receipt {
    ($q:expr, $d:expr, $at:expr, $actor:expr) => {
        $q.bind(MovementKind::Receive.as_str())
            .bind($d.reason.map(AdjustReason::as_str))
            .bind(&$d.destination)
            .bind(&$d.reference)
            .bind($d.transfer_id)
            .bind($d.requisition_id)
            .bind(&$d.note)
            .bind($at)
            .bind($actor)
    };
}

/// The staged receipts [`receive_staged`] reads: a `TEMP` table on the writing connection (see
/// [`crate::imports::staged`]), one row per receipt of new stock into a batch of its own, with
/// at least these columns (types per backend): `line` (order of the receipts, unique, positive),
/// `depot_id`, `region_code` (the depot's), `item_code`, `batch`, `quantity` (positive),
/// `production_date`, `expiry_date`, `reserve_mode`, and `existing` (0; set here to 1 for
/// receipts whose batch already exists).
pub const STAGED_RECEIPTS: &str = "import_stock";

/// The audit row of each receipt, as `audit::record_many` writes it for a [`Movement`]: the JSON
/// keys in serde's (sorted) order, `at` the time as the request shows it. The caller fills in
/// `{m}` (what holds the movement's columns), `{batch_id}` and `{id}`.
fn receipt_json(backend: Backend, at: &str, actor: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "json_object('actor', {actor}, 'at', {at}, 'batch', s.batch, 'batch_id', {{batch_id}}, 'depot_id', {{m}}.depot_id, 'destination', {{m}}.destination, 'id', {{id}}, 'item_code', {{m}}.item_code, 'kind', {{m}}.kind, 'note', {{m}}.note, 'quantity', {{m}}.quantity, 'reason', {{m}}.reason, 'reference', {{m}}.reference, 'requisition_id', {{m}}.requisition_id, 'transfer_id', {{m}}.transfer_id)"
        ),
        Backend::Postgres => format!(
            "jsonb_build_object('actor', CAST({actor} AS TEXT), 'at', CAST({at} AS TEXT), 'batch', c.batch, 'batch_id', {{batch_id}}, 'depot_id', {{m}}.depot_id, 'destination', {{m}}.destination, 'id', {{id}}, 'item_code', {{m}}.item_code, 'kind', {{m}}.kind, 'note', {{m}}.note, 'quantity', {{m}}.quantity, 'reason', {{m}}.reason, 'reference', {{m}}.reference, 'requisition_id', {{m}}.requisition_id, 'transfer_id', {{m}}.transfer_id)"
        ),
    }
}

/// Receives staged stock (imports) into new batches with set-based statements in the caller's
/// transaction: each new batch is created with the balance of its one `receive` movement (so a
/// batch's balance is still the sum of its movements), in the order of `line`, and each movement
/// gets its audit row (the same row `audit::record_many` writes for it, by `actor`). A receipt
/// whose batch already exists is skipped and its batch untouched (marked `existing = 1` in the
/// stage). If another transaction creates one of the batches meanwhile, the whole receipt is a
/// 409 and nothing is written (PostgreSQL: the insert's unique violation; SQLite, which holds the
/// write lock, the conditional insert creating fewer rows). Returns (batches created, receipts
/// skipped).
///
/// No statement joins the new rows back to the stage (on SQLite those joins were a fifth of the
/// write's time; PostgreSQL plans them blind, the tables being fresh): on PostgreSQL one statement inserts the batches,
/// their movements and the audit rows, each handing its ids to the next (a data-modifying CTE);
/// on SQLite, which holds the write lock, the new rows take the ids after the largest (`line`
/// added to it: the ids keep the file's order, with gaps) and each statement reads the stage
/// alone. More than [`BulkLog::KEYS`] depots are logged as one change of every depot.
pub async fn receive_staged(tx: &mut Tx, d: &Details, at: Timestamp, actor: &Actor) -> ApiResult<(u64, u64)> {
    let stage = STAGED_RECEIPTS;
    let key = "b.depot_id = s.depot_id AND b.item_code = s.item_code AND b.batch = s.batch";
    let mark = format!("UPDATE {stage} AS s SET existing = 1 WHERE EXISTS (SELECT 1 FROM stock_batches b WHERE {key})");
    let skipped = with_tx!(&mut *tx, |c| sqlx::query(&mark).execute(c).await.map(|r| r.rows_affected()))?;
    let expected: i64 =
        with_tx!(&mut *tx, |c| sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {stage} WHERE existing = 0"))
            .fetch_one(c)
            .await)?;
    let at_text = crate::imports::staged::json_text(&at)?;
    let audit_columns = "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)";
    if let Tx::Postgres(c) = &mut *tx {
        // One statement: each inserted batch hands its id straight to its movement, and each
        // movement to its audit row. (Joined back on the batch key, PostgreSQL planned the join
        // of the fresh, unanalysed tables as a nested loop: 46 s for 30,000 receipts.)
        let json = receipt_json(Backend::Postgres, "$11", "$9")
            .replace("{batch_id}", "m.batch_id")
            .replace("{id}", "m.id")
            .replace("{m}", "m");
        let all = format!(
            "WITH created AS (
                 INSERT INTO stock_batches (depot_id, item_code, batch, quantity, production_date, expiry_date, reserve_mode, contract_no, contract_end, owner, funding, created_at, updated_at)
                 SELECT s.depot_id, s.item_code, s.batch, s.quantity, s.production_date, s.expiry_date, s.reserve_mode, NULL, NULL, NULL, NULL, $8, $8
                 FROM {stage} s WHERE s.existing = 0 ORDER BY s.line
                 RETURNING id, depot_id, item_code, batch, quantity),
             moved AS (
                 INSERT INTO stock_movements (batch_id, depot_id, item_code, kind, quantity, reason, destination, reference, transfer_id, requisition_id, note, at, actor)
                 SELECT id, depot_id, item_code, $1, quantity, $2, $3, $4, $5, $6, $7, $8, $9 FROM created ORDER BY id
                 RETURNING id, batch_id, depot_id, item_code, kind, quantity, reason, destination, reference, transfer_id, requisition_id, note),
             audited AS (
                 {audit_columns}
                 SELECT $8, $9, $10, 'import', 'stock_movement', CAST(m.id AS TEXT), d.region_code, NULL, {json}, $12
                 FROM moved m JOIN created c ON c.id = m.batch_id JOIN depots d ON d.id = m.depot_id ORDER BY m.id
                 RETURNING 1)
             SELECT (SELECT COUNT(*) FROM created), (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM audited)"
        );
        // The statement sorts up to a whole file's rows (the file's order, then the new ids):
        // in memory rather than in temporary files, for this transaction only.
        sqlx::query("SET LOCAL work_mem = '256MB'").execute(&mut **c).await?;
        // A plain insert: the batches were just marked, so a batch that exists now was created by
        // another transaction meanwhile, a unique violation (no `ON CONFLICT` look-up per row).
        let written: Result<(i64, i64, i64), sqlx::Error> = bind_receipt!(sqlx::query_as(&all), d, at, &actor.name)
            .bind(&actor.role)
            .bind(&at_text)
            .bind(&actor.request_id)
            .fetch_one(&mut **c)
            .await;
        let (created, moved, audited) = match written {
            Ok(counts) => counts,
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(ApiError::Conflict("导入期间另有相同的批次被新建，未写入任何数据；请重新导入".into()));
            }
            Err(e) => return Err(e.into()),
        };
        created_all(expected, created as u64)?;
        written_all(created, moved, audited)?;
        return Ok((created as u64, skipped));
    }
    let (batches, movements): (i64, i64) = with_tx!(&mut *tx, |c| {
        sqlx::query_as(
        "SELECT COALESCE((SELECT MAX(id) FROM stock_batches), 0), COALESCE((SELECT MAX(id) FROM stock_movements), 0)"
    )
    .fetch_one(c)
    .await
    })?;
    let depots: i64 = if expected > BulkLog::KEYS {
        with_tx!(&mut *tx, |c| sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT depot_id FROM {stage} WHERE existing = 0)"
        ))
        .fetch_one(c)
        .await)?
    } else {
        expected
    };
    let log = BulkLog::begin(tx, Topic::Supplies, depots).await?;
    // `WHERE` before `ON CONFLICT` also keeps SQLite's parser from reading `ON` as a join's.
    let insert_batches = format!(
        "INSERT INTO stock_batches (id, depot_id, item_code, batch, quantity, production_date, expiry_date, reserve_mode, contract_no, contract_end, owner, funding, created_at, updated_at)
         SELECT $1 + s.line, s.depot_id, s.item_code, s.batch, s.quantity, s.production_date, s.expiry_date, s.reserve_mode, NULL, NULL, NULL, NULL, $2, $2
         FROM {stage} s WHERE s.existing = 0 ORDER BY s.line
         ON CONFLICT (depot_id, item_code, batch) DO NOTHING"
    );
    let created = with_tx!(&mut *tx, |c| sqlx::query(&insert_batches)
        .bind(batches)
        .bind(at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    log.end(tx).await?;
    created_all(expected, created)?;
    let insert_movements = format!(
        "INSERT INTO stock_movements (id, batch_id, depot_id, item_code, kind, quantity, reason, destination, reference, transfer_id, requisition_id, note, at, actor)
         SELECT $10 + s.line, $11 + s.line, s.depot_id, s.item_code, $1, s.quantity, $2, $3, $4, $5, $6, $7, $8, $9
         FROM {stage} s WHERE s.existing = 0 ORDER BY s.line"
    );
    let moved = with_tx!(&mut *tx, |c| bind_receipt!(sqlx::query(&insert_movements), d, at, &actor.name)
        .bind(movements)
        .bind(batches)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    // The movement's fields as stored: the staged row's, and those bound to every receipt.
    let json = receipt_json(Backend::Sqlite, "$11", "$9")
        .replace("{batch_id}", "$13 + s.line")
        .replace("{id}", "$14 + s.line")
        .replace("{m}.depot_id", "s.depot_id")
        .replace("{m}.item_code", "s.item_code")
        .replace("{m}.quantity", "s.quantity")
        .replace("{m}.kind", "$1")
        .replace("{m}.reason", "$2")
        .replace("{m}.destination", "$3")
        .replace("{m}.reference", "$4")
        .replace("{m}.transfer_id", "$5")
        .replace("{m}.requisition_id", "$6")
        .replace("{m}.note", "$7");
    let insert_audit = format!(
        "{audit_columns}
         SELECT $8, $9, $10, 'import', 'stock_movement', CAST($14 + s.line AS TEXT), s.region_code, NULL, {json}, $12
         FROM {stage} s WHERE s.existing = 0 ORDER BY s.line"
    );
    let audited = with_tx!(&mut *tx, |c| bind_receipt!(sqlx::query(&insert_audit), d, at, &actor.name)
        .bind(&actor.role)
        .bind(&at_text)
        .bind(&actor.request_id)
        .bind(batches)
        .bind(movements)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    written_all(created as i64, moved as i64, audited as i64)?;
    Ok((created, skipped))
}

/// Internal error unless every created batch has its movement and its audit row.
fn written_all(created: i64, moved: i64, audited: i64) -> ApiResult<()> {
    if moved == created && audited == created {
        return Ok(());
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "{created} batches received but {moved} movements and {audited} audit rows written"
    )))
}

/// 409 when another transaction created some of the `expected` batches meanwhile (the
/// conditional insert created fewer): the caller's transaction then writes nothing.
fn created_all(expected: i64, created: u64) -> ApiResult<()> {
    if created == expected as u64 {
        return Ok(());
    }
    Err(ApiError::Conflict(format!(
        "导入期间另有 {} 个相同的批次被新建，未写入任何数据；请重新导入",
        expected as u64 - created
    )))
}
