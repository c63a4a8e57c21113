//! The batch rules: what a new batch is, whichever way stock enters (a `receive` or `return`
//! movement, the CSV stock import, a requisition). [`new_batch`] is the one function that applies
//! them, so a batch cannot be "usable forever" by the route it came in:
//!
//! - **identity**: a batch is known by (depot, item, batch identifier); the identifier is trimmed,
//!   non-empty and at most 60 characters;
//! - **reserve mode**: `physical` unless stated;
//! - **expiry**: the given expiry date, else the production date plus the item's shelf life; an
//!   item with a shelf life needs one of the two dates (otherwise the batch would never expire and
//!   would hide both an expired batch and a shortfall); an expiry date before the production date is
//!   refused.
//!
//! Stock moving between depots (transfers) keeps the attributes of the batch it came from.

use chrono::NaiveDate;

use super::catalogue::Item;
use super::ledger::{self, BatchAttrs};
use super::{Batch, ReserveMode};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::time::Timestamp;

/// What a receipt says about a batch, before the rules.
#[derive(Debug, Clone, Default)]
pub struct NewBatch {
    /// Batch identifier as given.
    pub batch: String,
    /// Production date.
    pub production_date: Option<NaiveDate>,
    /// Expiry date (last usable day).
    pub expiry_date: Option<NaiveDate>,
    /// Reserve mode (default physical).
    pub reserve_mode: Option<ReserveMode>,
    /// Contract number (agreement reserves).
    pub contract_no: Option<String>,
    /// Contract end date.
    pub contract_end: Option<NaiveDate>,
    /// Owner of the goods.
    pub owner: Option<String>,
    /// Funding source.
    pub funding: Option<String>,
}

/// A broken batch rule: the field it is about and what is wrong (Chinese).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Field (`batch`, `production_date`, `expiry_date`).
    pub field: &'static str,
    /// Message.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError { field, message: message.into() }
}

/// Longest batch identifier.
pub const MAX_BATCH_CHARS: usize = 60;

/// Checks a batch identifier: trimmed, non-empty, at most [`MAX_BATCH_CHARS`] characters.
pub fn batch_id(batch: &str) -> Result<String, RuleError> {
    let b = batch.trim();
    if b.is_empty() {
        return Err(err("batch", "批次号不能为空"));
    }
    if b.chars().count() > MAX_BATCH_CHARS {
        return Err(err("batch", format!("批次号超过 {MAX_BATCH_CHARS} 个字符")));
    }
    Ok(b.to_string())
}

/// Applies the batch rules to a new batch of `item`: returns the batch identifier and the
/// attributes it is opened with.
pub fn new_batch(item: &Item, b: NewBatch) -> Result<(String, BatchAttrs), RuleError> {
    let id = batch_id(&b.batch)?;
    if let (Some(p), Some(e)) = (b.production_date, b.expiry_date)
        && e < p
    {
        return Err(err("expiry_date", format!("有效期 {e} 早于生产日期 {p}")));
    }
    let shelf = item.shelf_life_months.and_then(|m| u32::try_from(m).ok()).filter(|m| *m > 0);
    let expiry_date = match (b.expiry_date, b.production_date, shelf) {
        (Some(e), _, _) => Some(e),
        (None, Some(p), Some(m)) => Some(
            p.checked_add_months(chrono::Months::new(m))
                .ok_or_else(|| err("production_date", format!("生产日期 {p} 加保质期超出日期范围")))?,
        ),
        (None, None, Some(m)) => {
            return Err(err(
                "production_date",
                format!("物资 {}（{}）保质期 {m} 个月：新批次须填写生产日期或有效期", item.code, item.name),
            ));
        }
        (None, _, None) => None,
    };
    let attrs = BatchAttrs {
        production_date: b.production_date,
        expiry_date,
        reserve_mode: b.reserve_mode.unwrap_or(ReserveMode::Physical),
        contract_no: b.contract_no,
        contract_end: b.contract_end,
        owner: b.owner,
        funding: b.funding,
    };
    Ok((id, attrs))
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

/// The batch stock arrives in, in the caller's transaction: the existing batch with this identity
/// (the dates and mode given, where given, must agree with it), or a new one opened under
/// [`new_batch`]'s rules with a zero balance. The caller then records the movement with
/// [`ledger::apply`].
pub async fn open(tx: &mut Tx, depot_id: i64, item: &Item, b: NewBatch, now: Timestamp) -> ApiResult<Batch> {
    let id = batch_id(&b.batch)?;
    if let Some(existing) = ledger::find_batch(tx, depot_id, &item.code, &id).await? {
        let differs = b.reserve_mode.is_some_and(|m| m != existing.reserve_mode)
            || b.expiry_date.is_some_and(|e| existing.expiry_date != Some(e))
            || b.production_date.is_some_and(|p| existing.production_date != Some(p));
        if differs {
            return Err(ApiError::invalid(
                "batch",
                format!("批次 {id} 已存在，但生产日期、有效期或储备方式与本次不同；请使用新的批次号"),
            ));
        }
        return Ok(existing);
    }
    let (id, attrs) = new_batch(item, b)?;
    ledger::open_batch(tx, depot_id, &item.code, &id, &attrs, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn item(shelf: Option<i64>) -> Item {
        let now = Timestamp(chrono::Utc::now());
        Item {
            code: "1999908".into(),
            name: "瓶装饮用水".into(),
            unit: "箱".into(),
            shelf_life_months: shelf,
            provisional: true,
            created_at: now,
            updated_at: now,
        }
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn expiry_defaults_to_production_plus_shelf_life() {
        let (id, a) = new_batch(
            &item(Some(12)),
            NewBatch { batch: " W1 ".into(), production_date: Some(d("2025-06-01")), ..Default::default() },
        )
        .unwrap();
        assert_eq!(id, "W1");
        assert_eq!(a.expiry_date, Some(d("2026-06-01")));
        assert_eq!(a.reserve_mode, ReserveMode::Physical);
        // A given expiry wins.
        let (_, a) = new_batch(
            &item(Some(12)),
            NewBatch {
                batch: "W2".into(),
                production_date: Some(d("2025-06-01")),
                expiry_date: Some(d("2025-12-31")),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.expiry_date, Some(d("2025-12-31")));
    }

    #[test]
    fn an_expiring_item_needs_a_date_and_dates_must_agree() {
        let e = new_batch(&item(Some(12)), NewBatch { batch: "W".into(), ..Default::default() }).unwrap_err();
        assert_eq!(e.field, "production_date");
        // An item that does not expire needs no date.
        let (_, a) = new_batch(&item(None), NewBatch { batch: "Q".into(), ..Default::default() }).unwrap();
        assert_eq!(a.expiry_date, None);
        let e = new_batch(
            &item(None),
            NewBatch {
                batch: "Q".into(),
                production_date: Some(d("2025-06-01")),
                expiry_date: Some(d("2025-05-31")),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.field, "expiry_date");
        assert_eq!(
            new_batch(&item(None), NewBatch { batch: "  ".into(), ..Default::default() }).unwrap_err().field,
            "batch"
        );
        let long = "批".repeat(61);
        assert_eq!(new_batch(&item(None), NewBatch { batch: long, ..Default::default() }).unwrap_err().field, "batch");
    }
}
