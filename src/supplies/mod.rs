//! Emergency supplies (应急物资): reserve depots on the map, a GB/T 38565-coded catalogue, stock
//! batches with expiry, a ledger of movements that balances are derived from, transfers between
//! depots (调拨), requisitions from private owners (征用), the nearest-supplies search, CSV import
//! and export, and a GeoJSON layer of depots.
//!
//! Invariant: `stock_batches.quantity` is never written except by [`ledger::apply`], in the same
//! transaction as the movement it sums; it is never negative.

pub mod batches;
pub mod catalogue;
pub mod csv;
pub mod depots;
pub mod geojson;
pub mod idempotency;
pub mod ledger;
pub mod movements;
pub mod nearest;
pub mod requisitions;
pub mod routes;
pub mod supply_index;
pub mod transfer_routes;
pub mod transfers;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::ApiError;
use crate::time::Timestamp;

crate::vocabulary! {
    /// Kind of depot.
    DepotKind {
        BannerDepot = "banner_depot", "旗级储备库";
        TownshipPoint = "township_point", "苏木镇储备点";
        VillagePoint = "village_point", "嘎查/社区储备点";
        AgreementEnterprise = "agreement_enterprise", "协议储备企业";
    }
}

crate::vocabulary! {
    /// How a batch is held.
    ReserveMode {
        Physical = "physical", "实物";
        Agreement = "agreement", "协议";
        Capacity = "capacity", "产能";
    }
}

crate::vocabulary! {
    /// Kind of stock movement.
    MovementKind {
        Receive = "receive", "入库";
        Issue = "issue", "出库";
        TransferOut = "transfer_out", "调出";
        TransferIn = "transfer_in", "调入";
        Dispatch = "dispatch", "配送";
        RequisitionIn = "requisition_in", "征用入库";
        Return = "return", "归还入库";
        Adjust = "adjust", "盘点调整";
    }
}

crate::vocabulary! {
    /// Why an adjustment was made.
    AdjustReason {
        Damaged = "damaged", "损坏";
        Expired = "expired", "过期";
        Lost = "lost", "丢失";
        Found = "found", "盘盈";
        CountCorrection = "count_correction", "盘点更正";
    }
}

crate::vocabulary! {
    /// Lifecycle of a transfer between depots.
    TransferStatus {
        Requested = "requested", "已申请";
        Approved = "approved", "已批准";
        Shipped = "shipped", "已发运";
        Received = "received", "已接收";
        Cancelled = "cancelled", "已取消";
        Returned = "returned", "已退回";
    }
}

crate::vocabulary! {
    /// Compensation status of a requisition (应对法 art. 12).
    CompensationStatus {
        Pending = "pending", "待补偿";
        Paid = "paid", "已补偿";
        Waived = "waived", "无需补偿";
    }
}

/// A stock batch: one depot's holding of one item from one batch, with its balance.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Batch {
    /// Batch row id.
    pub id: i64,
    /// Depot id.
    pub depot_id: i64,
    /// GB/T 38565 item code.
    pub item_code: String,
    /// Batch identifier (unique per depot and item).
    pub batch: String,
    /// Balance: the sum of this batch's movements (never negative).
    pub quantity: i64,
    /// Production date.
    pub production_date: Option<NaiveDate>,
    /// Expiry date (last usable day); None when the item does not expire.
    pub expiry_date: Option<NaiveDate>,
    /// Reserve mode.
    #[sqlx(try_from = "String")]
    pub reserve_mode: ReserveMode,
    /// Contract number (agreement reserves).
    pub contract_no: Option<String>,
    /// Contract end date (agreement reserves).
    pub contract_end: Option<NaiveDate>,
    /// Owner of the goods.
    pub owner: Option<String>,
    /// Funding source.
    pub funding: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Largest quantity one movement, transfer, requisition or query may name (keeps sums far from
/// integer overflow).
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// Checks a positive quantity (1 to [`MAX_QUANTITY`]).
pub fn positive(field: &str, q: i64) -> Result<i64, ApiError> {
    if (1..=MAX_QUANTITY).contains(&q) {
        Ok(q)
    } else {
        Err(ApiError::invalid(field, format!("数量应为 1 到 {MAX_QUANTITY} 之间的整数")))
    }
}

/// Columns of [`Batch`], for SELECTs.
pub const BATCH_COLUMNS: &str = "id, depot_id, item_code, batch, quantity, production_date, expiry_date, reserve_mode, contract_no, contract_end, owner, funding, created_at, updated_at";

/// Checks free text: trimmed, non-empty, at most `max` characters.
pub fn text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, format!("{field} 不能为空")));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{field} 超过 {max} 个字符")));
    }
    Ok(v.to_string())
}

/// Like [`text`] for an optional value; blank becomes None.
pub fn opt_text(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

/// Serialises a value for an audit row.
pub fn to_audit<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))
}

/// Today's date in the banner's time zone.
pub fn today(now: Timestamp) -> NaiveDate {
    now.0.with_timezone(&crate::time::LOCAL_TZ).date_naive()
}
