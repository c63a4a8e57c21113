//! Stock endpoints: recording movements on a depot (with `Idempotency-Key`), the movement history,
//! and stock across depots.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::batches::{self, NewBatch};
use super::ledger::{self, Details, MOVEMENT_COLUMNS, Movement};
use super::{AdjustReason, BATCH_COLUMNS, Batch, MovementKind, ReserveMode, depots, opt_text, text, to_audit};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::{Page, json, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;
use crate::supplies::depots::routes::ON_DEPOT;
use crate::vocab::ItemCode;
use crate::with_db;

/// Body of `POST /api/v1/depots/{id}/movements`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMovement {
    /// `receive`, `issue`, `dispatch`, `return` or `adjust` (transfers and requisitions have their
    /// own endpoints).
    pub kind: MovementKind,
    /// Item.
    pub item_code: ItemCode,
    /// Units: positive; for `adjust` the signed change.
    pub quantity: i64,
    /// Batch: required for `receive`, `return` and `adjust`; for `issue`/`dispatch` omitted means
    /// first-expiry-first over unexpired batches.
    pub batch: Option<String>,
    /// Reason (`adjust` only).
    pub reason: Option<AdjustReason>,
    /// Destination (`dispatch`: required; `issue`: optional).
    pub destination: Option<String>,
    /// Event, drill or document reference.
    pub reference: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Production date of a new batch.
    pub production_date: Option<NaiveDate>,
    /// Expiry date of a new batch (default: production date plus the item's shelf life).
    pub expiry_date: Option<NaiveDate>,
    /// Reserve mode of a new batch (default `physical`).
    pub reserve_mode: Option<ReserveMode>,
    /// Contract number (agreement reserves).
    pub contract_no: Option<String>,
    /// Contract end date (agreement reserves).
    pub contract_end: Option<NaiveDate>,
    /// Owner.
    pub owner: Option<String>,
    /// Funding source.
    pub funding: Option<String>,
}

/// What recording a movement did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MovementResult {
    /// The movements (several when an issue spans batches).
    pub movements: Vec<Movement>,
    /// Units moved in all (signed).
    pub total: i64,
}

/// Filters of the movement history.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementQuery {
    /// Only this item.
    pub item: Option<ItemCode>,
    /// Only this kind.
    pub kind: Option<MovementKind>,
    /// Page size.
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Filters of `GET /api/v1/stock`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    /// Only this item.
    pub item: Option<ItemCode>,
    /// Only depots in this region.
    pub region: Option<RegionCode>,
    /// Only batches expiring on or before this date (expired ones included).
    pub expiring_by: Option<NaiveDate>,
    /// Page size.
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// A batch whose balance differs from the sum of its movements (never expected).
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Mismatch {
    /// Batch row id.
    pub batch_id: i64,
    /// Depot id.
    pub depot_id: i64,
    /// Item.
    pub item_code: String,
    /// Batch identifier.
    pub batch: String,
    /// Stored balance.
    pub balance: i64,
    /// Sum of the batch's movements.
    pub movements_sum: i64,
}

/// Result of the ledger check.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LedgerCheck {
    /// Batches checked.
    pub batches: i64,
    /// Batches whose balance is not the sum of their movements.
    pub mismatches: Vec<Mismatch>,
}

/// Routes of stock movements.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::POST,
            "/api/v1/depots/{id}/movements",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "记录出入库：receive 入库、issue 出库、dispatch 配送（须填目的地）、return 归还入库、adjust 盘点调整（须填原因，数量带符号）。库存不足返回 409；库存永不为负。支持 Idempotency-Key 请求头：同一键重复提交只记一次，返回首次结果。",
                request: Some(schema::<NewMovement>()),
                response: Some(schema::<MovementResult>()),
                status: 201,
                ..Doc::new("应急物资", "记录出入库")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Write, ON_DEPOT),
        route(
            Method::GET,
            "/api/v1/depots/{id}/movements",
            Access::Token,
            BodyKind::None,
            Doc {
                query: Some(schema::<MovementQuery>()),
                response: Some(schema::<Page<Movement>>()),
                ..Doc::new("应急物资", "出入库流水")
            },
            |c| Box::pin(history(c)),
        )
        .guard(Perm::Read, ON_DEPOT),
        route(
            Method::GET,
            "/api/v1/stock",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "辖区内各库的库存批次（余额大于 0），可按物资、区划、到期日筛选（如「30 天内到期」）。",
                query: Some(schema::<StockQuery>()),
                response: Some(schema::<Page<Batch>>()),
                ..Doc::new("应急物资", "库存批次")
            },
            |c| Box::pin(stock(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/stock/ledger-check",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "核对辖区内每个批次的余额是否等于其全部流水之和（运维检查；正常情况下 mismatches 为空）。",
                response: Some(schema::<LedgerCheck>()),
                ..Doc::new("应急物资", "库存账实核对")
            },
            |c| Box::pin(ledger_check(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
    ]
}

fn need_batch(b: &Option<String>) -> ApiResult<String> {
    text("batch", b.as_deref().unwrap_or(""), 60)
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewMovement = c.json()?;
    let depot = depots::load(&c, c.id_param("id")?).await?;
    let item = super::catalogue::need(&c.app.db, "item_code", &b.item_code).await?;
    let now = c.now();
    let actor = c.actor()?;
    let details = Details {
        reason: b.reason,
        destination: opt_text("destination", b.destination.as_deref(), 200)?,
        reference: opt_text("reference", b.reference.as_deref(), 100)?,
        note: opt_text("note", b.note.as_deref(), 1000)?,
        ..Details::default()
    };
    if b.reason.is_some() && b.kind != MovementKind::Adjust {
        return Err(ApiError::invalid("reason", "只有盘点调整（adjust）需要原因"));
    }
    match b.kind {
        MovementKind::TransferOut | MovementKind::TransferIn => {
            return Err(ApiError::invalid("kind", "调拨请使用 /api/v1/transfers"));
        }
        MovementKind::RequisitionIn => return Err(ApiError::invalid("kind", "征用请使用 /api/v1/requisitions")),
        MovementKind::Dispatch if details.destination.is_none() => {
            return Err(ApiError::invalid("destination", "配送须填写目的地"));
        }
        MovementKind::Adjust => {
            let reason = b.reason.ok_or_else(|| ApiError::invalid("reason", "盘点调整须填写原因"))?;
            super::positive("quantity", b.quantity.saturating_abs())?;
            let ok = match reason {
                AdjustReason::Damaged | AdjustReason::Expired | AdjustReason::Lost => b.quantity < 0,
                AdjustReason::Found => b.quantity > 0,
                AdjustReason::CountCorrection => b.quantity != 0,
            };
            if !ok {
                return Err(ApiError::invalid(
                    "quantity",
                    "调整数量的符号与原因不符：损坏、过期、丢失为负数，盘盈为正数",
                ));
            }
        }
        _ => {
            super::positive("quantity", b.quantity)?;
        }
    }
    let new_batch = NewBatch {
        batch: b.batch.clone().unwrap_or_default(),
        production_date: b.production_date,
        expiry_date: b.expiry_date,
        reserve_mode: b.reserve_mode,
        contract_no: opt_text("contract_no", b.contract_no.as_deref(), 60)?,
        contract_end: b.contract_end,
        owner: opt_text("owner", b.owner.as_deref(), 100)?,
        funding: opt_text("funding", b.funding.as_deref(), 100)?,
    };
    let item_code = item.code.clone();
    idempotency_run(&c, move |mut tx| async move {
        let moved: Vec<Movement> = match b.kind {
            MovementKind::Receive | MovementKind::Return => {
                let batch = batches::open(&mut tx, depot.id, &item, new_batch, now).await?;
                vec![ledger::apply(&mut tx, &batch, b.kind, b.quantity, &details, now, &actor.name).await?]
            }
            MovementKind::Adjust => {
                let name = need_batch(&b.batch)?;
                let batch = ledger::find_batch(&mut tx, depot.id, &item_code, &name)
                    .await?
                    .ok_or_else(|| ApiError::invalid("batch", format!("本库没有物资 {item_code} 的批次 {name}")))?;
                vec![ledger::apply(&mut tx, &batch, b.kind, b.quantity, &details, now, &actor.name).await?]
            }
            _ => ledger::take(
                &mut tx,
                depot.id,
                &item_code,
                b.batch.as_deref().map(str::trim),
                b.quantity,
                b.kind,
                &details,
                now,
                &actor.name,
            )
            .await?
            .into_iter()
            .map(|(_, m)| m)
            .collect(),
        };
        let result = MovementResult { total: moved.iter().map(|m| m.quantity).sum(), movements: moved };
        for m in &result.movements {
            let change = Change {
                action: "create",
                entity_type: "stock_movement",
                entity_id: &m.id.to_string(),
                region_code: Some(&depot.region_code),
                before: None,
                after: Some(to_audit(m)?),
            };
            audit::record(&mut tx, &actor, now, change).await?;
        }
        Ok((tx, to_audit(&result)?))
    })
    .await
}

/// Runs under the idempotency key with status 201.
async fn idempotency_run<F, Fut>(c: &Ctx, f: F) -> ApiResult<Response>
where
    F: FnOnce(crate::db::Tx) -> Fut,
    Fut: std::future::Future<Output = ApiResult<(crate::db::Tx, serde_json::Value)>>,
{
    super::idempotency::run(c, StatusCode::CREATED, f).await
}

async fn history(c: Ctx) -> ApiResult<Response> {
    let q: MovementQuery = c.query()?;
    let depot = depots::load(&c, c.id_param("id")?).await?;
    let (limit, offset) = page(q.limit, q.offset)?;
    const WHERE: &str = "WHERE m.depot_id = $1 AND ($2 IS NULL OR m.item_code = $2) AND ($3 IS NULL OR m.kind = $3)";
    let sql = format!(
        "SELECT {MOVEMENT_COLUMNS} FROM stock_movements m JOIN stock_batches b ON b.id = m.batch_id {WHERE} ORDER BY m.id DESC LIMIT $4 OFFSET $5"
    );
    let count = format!("SELECT COUNT(*) FROM stock_movements m {WHERE}");
    let item = q.item.as_ref().map(ItemCode::as_str);
    let kind = q.kind.map(MovementKind::as_str);
    let (items, total) = with_db!(&c.app.db, |p| {
        let items = sqlx::query_as::<_, Movement>(&sql)
            .bind(depot.id)
            .bind(item)
            .bind(kind)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(depot.id).bind(item).bind(kind).fetch_one(p).await?;
        Ok::<_, sqlx::Error>((items, total))
    })?;
    json(&Page { items, total })
}

async fn stock(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: StockQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = depots::narrowed_bounds(p, q.region.as_ref())?;
    let cols = BATCH_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ");
    const WHERE: &str = "WHERE d.region_code >= $1 AND d.region_code <= $2 AND s.quantity > 0
        AND ($3 IS NULL OR s.item_code = $3) AND ($4 IS NULL OR s.expiry_date <= $4)";
    let sql = format!(
        "SELECT {cols} FROM stock_batches s JOIN depots d ON d.id = s.depot_id {WHERE} ORDER BY s.expiry_date IS NULL, s.expiry_date, s.id LIMIT $5 OFFSET $6"
    );
    let count = format!("SELECT COUNT(*) FROM stock_batches s JOIN depots d ON d.id = s.depot_id {WHERE}");
    let item = q.item.as_ref().map(ItemCode::as_str);
    let (items, total) = with_db!(&c.app.db, |db| {
        let items = sqlx::query_as::<_, Batch>(&sql)
            .bind(&lo)
            .bind(&hi)
            .bind(item)
            .bind(q.expiring_by)
            .bind(limit)
            .bind(offset)
            .fetch_all(db)
            .await?;
        let total: i64 =
            sqlx::query_scalar(&count).bind(&lo).bind(&hi).bind(item).bind(q.expiring_by).fetch_one(db).await?;
        Ok::<_, sqlx::Error>((items, total))
    })?;
    json(&Page { items, total })
}

async fn ledger_check(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let (lo, hi) = p.scope.bounds();
    let (batches, mismatches) = with_db!(&c.app.db, |db| {
        let batches: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM stock_batches s JOIN depots d ON d.id = s.depot_id WHERE d.region_code >= $1 AND d.region_code <= $2",
        )
        .bind(&lo)
        .bind(&hi)
        .fetch_one(db)
        .await?;
        let mismatches = sqlx::query_as::<_, Mismatch>(
            "SELECT s.id AS batch_id, s.depot_id, s.item_code, s.batch, s.quantity AS balance,
                    CAST(COALESCE(SUM(m.quantity), 0) AS BIGINT) AS movements_sum
             FROM stock_batches s JOIN depots d ON d.id = s.depot_id LEFT JOIN stock_movements m ON m.batch_id = s.id
             WHERE d.region_code >= $1 AND d.region_code <= $2
             GROUP BY s.id, s.depot_id, s.item_code, s.batch, s.quantity
             HAVING s.quantity <> COALESCE(SUM(m.quantity), 0)
             ORDER BY s.id",
        )
        .bind(&lo)
        .bind(&hi)
        .fetch_all(db)
        .await?;
        Ok::<_, sqlx::Error>((batches, mismatches))
    })?;
    json(&LedgerCheck { batches, mismatches })
}
