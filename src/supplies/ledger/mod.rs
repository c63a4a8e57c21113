//! The ledger: every change of quantity is a movement, and a batch's balance is the sum of its
//! movements. [`apply`] is the only code that changes `stock_batches.quantity`; it does so in the
//! caller's transaction, together with the movement insert, with a conditional update that never
//! lets a balance go below zero (the table's CHECK is the last line of defence). Imports open
//! new batches in bulk with [`receive_staged`] ([`receive`]), which writes each batch with the
//! balance of its one receive movement in the same transaction.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Serialize;

use super::{AdjustReason, BATCH_COLUMNS, Batch, MovementKind, ReserveMode};
use crate::db::{Backend, Tx};
use crate::error::{ApiError, ApiResult};
use crate::time::Timestamp;
use crate::with_tx;

pub mod receive;
pub use receive::{STAGED_RECEIPTS, receive_staged};

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
