//! The ledger: every change of quantity is a movement, and a batch's balance is the sum of its
//! movements. [`apply`] is the only code that changes `stock_batches.quantity`; it does so in the
//! caller's transaction, together with the movement insert, with a conditional update that never
//! lets a balance go below zero (the table's CHECK is the last line of defence). Imports open
//! new batches in bulk with [`receive_staged`], which writes each batch with the balance of its
//! one receive movement in the same transaction.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Serialize;

use super::{AdjustReason, BATCH_COLUMNS, Batch, MovementKind, ReserveMode};
use crate::audit::Actor;
use crate::change_feed::Topic;
use crate::db::{Backend, Tx};
use crate::error::{ApiError, ApiResult};
use crate::imports::staged::BulkLog;
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

/// A stock movement.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Movement {
    /// Id (increasing).
    pub id: i64,
    /// Batch row id.
    pub batch_id: i64,
    /// Batch identifier.
    pub batch: String,
    /// Depot id.
    pub depot_id: i64,
    /// Item code.
    pub item_code: String,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: MovementKind,
    /// Signed change of the batch's balance.
    pub quantity: i64,
    /// Reason of an adjustment.
    pub reason: Option<String>,
    /// Destination of a dispatch or issue.
    pub destination: Option<String>,
    /// Reference: event, drill, document number.
    pub reference: Option<String>,
    /// Transfer this movement belongs to.
    pub transfer_id: Option<i64>,
    /// Requisition this movement belongs to.
    pub requisition_id: Option<i64>,
    /// Note.
    pub note: Option<String>,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
}

/// Columns of [`Movement`] (movement `m` joined with batch `b`).
pub const MOVEMENT_COLUMNS: &str = "m.id, m.batch_id, b.batch, m.depot_id, m.item_code, m.kind, m.quantity, m.reason, m.destination, m.reference, m.transfer_id, m.requisition_id, m.note, m.at, m.actor";

/// What a movement records besides kind and quantity.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// Adjustment reason.
    pub reason: Option<AdjustReason>,
    /// Destination.
    pub destination: Option<String>,
    /// Reference.
    pub reference: Option<String>,
    /// Transfer.
    pub transfer_id: Option<i64>,
    /// Requisition.
    pub requisition_id: Option<i64>,
    /// Note.
    pub note: Option<String>,
}

/// Attributes of a batch, given when stock first arrives in it.
#[derive(Debug, Clone)]
pub struct BatchAttrs {
    /// Production date.
    pub production_date: Option<NaiveDate>,
    /// Expiry date.
    pub expiry_date: Option<NaiveDate>,
    /// Reserve mode.
    pub reserve_mode: ReserveMode,
    /// Contract number.
    pub contract_no: Option<String>,
    /// Contract end.
    pub contract_end: Option<NaiveDate>,
    /// Owner.
    pub owner: Option<String>,
    /// Funding source.
    pub funding: Option<String>,
}

impl BatchAttrs {
    /// Physical stock with no dates.
    pub fn physical() -> BatchAttrs {
        BatchAttrs {
            production_date: None,
            expiry_date: None,
            reserve_mode: ReserveMode::Physical,
            contract_no: None,
            contract_end: None,
            owner: None,
            funding: None,
        }
    }

    /// The attributes of an existing batch (for moving it to another depot).
    pub fn of(b: &Batch) -> BatchAttrs {
        BatchAttrs {
            production_date: b.production_date,
            expiry_date: b.expiry_date,
            reserve_mode: b.reserve_mode,
            contract_no: b.contract_no.clone(),
            contract_end: b.contract_end,
            owner: b.owner.clone(),
            funding: b.funding.clone(),
        }
    }
}

/// A batch by depot, item and batch identifier.
pub async fn find_batch(tx: &mut Tx, depot_id: i64, item: &str, batch: &str) -> Result<Option<Batch>, sqlx::Error> {
    let sql =
        format!("SELECT {BATCH_COLUMNS} FROM stock_batches WHERE depot_id = $1 AND item_code = $2 AND batch = $3");
    with_tx!(tx, |c| sqlx::query_as::<_, Batch>(&sql).bind(depot_id).bind(item).bind(batch).fetch_optional(c).await)
}

/// Creates the batch with a zero balance unless it exists (a concurrent creator wins quietly).
async fn insert_if_absent(
    tx: &mut Tx,
    depot_id: i64,
    item: &str,
    batch: &str,
    attrs: &BatchAttrs,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    with_tx!(&mut *tx, |c| {
        sqlx::query(
        "INSERT INTO stock_batches (depot_id, item_code, batch, quantity, production_date, expiry_date, reserve_mode, contract_no, contract_end, owner, funding, created_at, updated_at)
         VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $10, $11, $11)
         ON CONFLICT (depot_id, item_code, batch) DO NOTHING"
    )
    .bind(depot_id)
    .bind(item)
    .bind(batch)
    .bind(attrs.production_date)
    .bind(attrs.expiry_date)
    .bind(attrs.reserve_mode.as_str())
    .bind(&attrs.contract_no)
    .bind(attrs.contract_end)
    .bind(&attrs.owner)
    .bind(&attrs.funding)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ())
    })
}

/// The batch [`insert_if_absent`] made sure of.
async fn created(tx: &mut Tx, depot_id: i64, item: &str, batch: &str) -> ApiResult<Batch> {
    find_batch(tx, depot_id, item, batch)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("batch vanished after insert")))
}

/// The batch stock arrives in: the existing one (its dates and mode must agree with `attrs`
/// where given) or a new one with a zero balance.
pub async fn open_batch(
    tx: &mut Tx,
    depot_id: i64,
    item: &str,
    batch: &str,
    attrs: &BatchAttrs,
    now: Timestamp,
) -> ApiResult<Batch> {
    insert_if_absent(tx, depot_id, item, batch, attrs, now).await?;
    let b = created(tx, depot_id, item, batch).await?;
    if b.reserve_mode != attrs.reserve_mode
        || (attrs.expiry_date.is_some() && b.expiry_date != attrs.expiry_date)
        || (attrs.production_date.is_some() && b.production_date != attrs.production_date)
    {
        return Err(ApiError::invalid(
            "batch",
            format!("批次 {batch} 已存在，但生产日期、有效期或储备方式与本次不同；请使用新的批次号"),
        ));
    }
    Ok(b)
}

/// True when a batch has exactly these attributes (dates, mode, contract, owner, funding).
pub fn same_identity(b: &Batch, a: &BatchAttrs) -> bool {
    b.production_date == a.production_date
        && b.expiry_date == a.expiry_date
        && b.reserve_mode == a.reserve_mode
        && b.contract_no == a.contract_no
        && b.contract_end == a.contract_end
        && b.owner == a.owner
        && b.funding == a.funding
}

/// The name goods moved from elsewhere take when their own name is already used at the
/// destination by a batch of another identity: `<batch>-<tag>`, e.g. `Q1-T42` for transfer 42.
pub fn derived_batch_name(batch: &str, tag: &str) -> String {
    format!("{batch}-{tag}")
}

/// The batch goods moved from another depot arrive in, keeping their identity (dates, mode,
/// contract, owner, funding): the batch of the same name when it has the same identity (or does
/// not exist yet), otherwise [`derived_batch_name`]`(batch, tag)`. Never asks the user for a name.
pub async fn arrival_batch(
    tx: &mut Tx,
    depot_id: i64,
    item: &str,
    batch: &str,
    attrs: &BatchAttrs,
    tag: &str,
    now: Timestamp,
) -> ApiResult<Batch> {
    for name in [batch.to_string(), derived_batch_name(batch, tag)] {
        insert_if_absent(tx, depot_id, item, &name, attrs, now).await?;
        let b = created(tx, depot_id, item, &name).await?;
        if same_identity(&b, attrs) {
            return Ok(b);
        }
    }
    Err(ApiError::Conflict(format!(
        "批次 {batch} 与 {} 在本库都已存在且属性不同，无法入库",
        derived_batch_name(batch, tag)
    )))
}

/// Records a movement of `delta` units on a batch and updates its balance in the same
/// transaction. A decrease that would take the balance below zero is a 409 and changes nothing.
pub async fn apply(
    tx: &mut Tx,
    batch: &Batch,
    kind: MovementKind,
    delta: i64,
    d: &Details,
    at: Timestamp,
    actor: &str,
) -> ApiResult<Movement> {
    super::positive("quantity", delta.saturating_abs())?;
    // Conditional update: on PostgreSQL the row lock makes a concurrent decrease wait and then
    // re-check `quantity + delta >= 0` against the committed balance; SQLite transactions are
    // BEGIN IMMEDIATE, so they are serialised anyway.
    let changed = with_tx!(&mut *tx, |c| sqlx::query(
        "UPDATE stock_batches SET quantity = quantity + $1, updated_at = $2 WHERE id = $3 AND quantity + $1 >= 0"
    )
    .bind(delta)
    .bind(at)
    .bind(batch.id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if changed == 0 {
        let now: i64 = with_tx!(&mut *tx, |c| sqlx::query_scalar("SELECT quantity FROM stock_batches WHERE id = $1")
            .bind(batch.id)
            .fetch_one(c)
            .await)?;
        return Err(ApiError::Conflict(format!(
            "库存不足：批次 {}（物资 {}）现有 {now}，本次需要 {}",
            batch.batch, batch.item_code, -delta
        )));
    }
    let reason = d.reason.map(AdjustReason::as_str);
    let id: i64 = with_tx!(&mut *tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO stock_movements (batch_id, depot_id, item_code, kind, quantity, reason, destination, reference, transfer_id, requisition_id, note, at, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id"
    )
    .bind(batch.id)
    .bind(batch.depot_id)
    .bind(&batch.item_code)
    .bind(kind.as_str())
    .bind(delta)
    .bind(reason)
    .bind(&d.destination)
    .bind(&d.reference)
    .bind(d.transfer_id)
    .bind(d.requisition_id)
    .bind(&d.note)
    .bind(at)
    .bind(actor)
    .fetch_one(c)
    .await
    })?;
    Ok(Movement {
        id,
        batch_id: batch.id,
        batch: batch.batch.clone(),
        depot_id: batch.depot_id,
        item_code: batch.item_code.clone(),
        kind,
        quantity: delta,
        reason: reason.map(str::to_string),
        destination: d.destination.clone(),
        reference: d.reference.clone(),
        transfer_id: d.transfer_id,
        requisition_id: d.requisition_id,
        note: d.note.clone(),
        at,
        actor: actor.to_string(),
    })
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
/// stage). If another transaction creates one of the batches meanwhile (PostgreSQL), the
/// conditional insert sees fewer rows than it should and the whole receipt is a 409: nothing is
/// written. Returns (batches created, receipts skipped).
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
                 ON CONFLICT (depot_id, item_code, batch) DO NOTHING
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
        let (created, moved, audited): (i64, i64, i64) = bind_receipt!(sqlx::query_as(&all), d, at, &actor.name)
            .bind(&actor.role)
            .bind(&at_text)
            .bind(&actor.request_id)
            .fetch_one(&mut **c)
            .await?;
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

/// Takes `quantity` units of an item out of a depot: from the named batch, or (batch None) first
/// expiry first over unexpired batches, physical stock before others, capacity never. Returns the
/// batches and the units taken from each; 409 when there is not enough.
#[allow(clippy::too_many_arguments)]
pub async fn take(
    tx: &mut Tx,
    depot_id: i64,
    item: &str,
    batch: Option<&str>,
    quantity: i64,
    kind: MovementKind,
    d: &Details,
    at: Timestamp,
    actor: &str,
) -> ApiResult<Vec<(Batch, Movement)>> {
    super::positive("quantity", quantity)?;
    if let Some(name) = batch {
        let b = find_batch(tx, depot_id, item, name)
            .await?
            .ok_or_else(|| ApiError::invalid("batch", format!("本库没有物资 {item} 的批次 {name}")))?;
        let m = apply(tx, &b, kind, -quantity, d, at, actor).await?;
        return Ok(vec![(b, m)]);
    }
    let today = super::today(at);
    // On PostgreSQL, lock the candidate rows so the balances read are the ones the updates see;
    // SQLite's IMMEDIATE transaction already holds the write lock.
    let lock = if tx.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT {BATCH_COLUMNS} FROM stock_batches
         WHERE depot_id = $1 AND item_code = $2 AND quantity > 0 AND reserve_mode <> 'capacity'
           AND (expiry_date IS NULL OR expiry_date >= $3)
         ORDER BY CASE WHEN reserve_mode = 'physical' THEN 0 ELSE 1 END, expiry_date IS NULL, expiry_date, id{lock}"
    );
    let batches = with_tx!(&mut *tx, |c| sqlx::query_as::<_, Batch>(&sql)
        .bind(depot_id)
        .bind(item)
        .bind(today)
        .fetch_all(c)
        .await)?;
    let available: i64 = batches.iter().map(|b| b.quantity).sum();
    if available < quantity {
        return Err(ApiError::Conflict(format!(
            "库存不足：本库物资 {item} 可用（未过期）{available}，本次需要 {quantity}"
        )));
    }
    let mut left = quantity;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = left.min(b.quantity);
        let m = apply(tx, &b, kind, -n, d, at, actor).await?;
        left -= n;
        out.push((b, m));
    }
    Ok(out)
}
