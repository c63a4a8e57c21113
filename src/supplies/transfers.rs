//! Transfers between depots (调拨): `requested` → `approved` → `shipped` → `received`, or
//! `cancelled` before shipping. Shipping records `transfer_out` movements at the source (first
//! expiry first, or the named batch); receiving records `transfer_in` movements into batches of
//! the same identity and dates at the destination. The received quantity may be less than the
//! shipped one; the difference is recorded on the transfer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::ledger::{self, BatchAttrs, Details};
use super::{MovementKind, ReserveMode, TransferStatus, depots, opt_text, to_audit};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::{with_db, with_tx};

/// One batch shipped in a transfer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Line {
    /// Batch identifier.
    pub batch: String,
    /// Units shipped from it.
    pub quantity: i64,
    /// Production date.
    pub production_date: Option<chrono::NaiveDate>,
    /// Expiry date.
    pub expiry_date: Option<chrono::NaiveDate>,
    /// Reserve mode.
    pub reserve_mode: ReserveMode,
}

/// A transfer.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Transfer {
    /// Id.
    pub id: i64,
    /// Source depot.
    pub from_depot_id: i64,
    /// Destination depot.
    pub to_depot_id: i64,
    /// Item.
    pub item_code: String,
    /// Requested batch (None: first expiry first).
    pub batch: Option<String>,
    /// Requested units.
    pub quantity: i64,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: TransferStatus,
    /// Batches shipped.
    #[schemars(with = "Vec<Line>")]
    pub lines: Json<Vec<Line>>,
    /// Units shipped.
    pub shipped_qty: Option<i64>,
    /// Units received.
    pub received_qty: Option<i64>,
    /// Shipped minus received (lost or damaged on the way).
    pub difference: Option<i64>,
    /// Note.
    pub note: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// When asked.
    pub requested_at: Timestamp,
    /// When approved.
    pub approved_at: Option<Timestamp>,
    /// When shipped.
    pub shipped_at: Option<Timestamp>,
    /// When received.
    pub received_at: Option<Timestamp>,
    /// When cancelled.
    pub cancelled_at: Option<Timestamp>,
}

/// Body of `POST /api/v1/transfers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// Source depot id.
    pub from_depot_id: i64,
    /// Destination depot id.
    pub to_depot_id: i64,
    /// Item.
    pub item_code: ItemCode,
    /// Units.
    pub quantity: i64,
    /// A specific batch (default: first expiry first).
    pub batch: Option<String>,
    /// Note.
    pub note: Option<String>,
}

/// Body of `POST /api/v1/transfers/{id}/receive`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Units received (default: all shipped); at most the shipped quantity.
    pub received_quantity: Option<i64>,
    /// Note (e.g. why units are missing).
    pub note: Option<String>,
}

/// Body of the approve, ship and cancel steps: an empty object `{}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {}

/// Filters of `GET /api/v1/transfers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferQuery {
    /// Only this status.
    pub status: Option<TransferStatus>,
    /// Page size.
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

const SELECT: &str = "SELECT id, from_depot_id, to_depot_id, item_code, batch, quantity, status, lines, shipped_qty, received_qty, difference, note, requested_by, requested_at, approved_at, shipped_at, received_at, cancelled_at FROM transfers";

async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<Transfer>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Transfer>(&sql).bind(id).fetch_optional(c).await)
}

async fn save(tx: &mut Tx, t: &Transfer) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE transfers SET status = $2, lines = $3, shipped_qty = $4, received_qty = $5, difference = $6, note = $7,
         approved_at = $8, shipped_at = $9, received_at = $10, cancelled_at = $11 WHERE id = $1"
    )
    .bind(t.id)
    .bind(t.status.as_str())
    .bind(&t.lines)
    .bind(t.shipped_qty)
    .bind(t.received_qty)
    .bind(t.difference)
    .bind(&t.note)
    .bind(t.approved_at)
    .bind(t.shipped_at)
    .bind(t.received_at)
    .bind(t.cancelled_at)
    .execute(c)
    .await
    .map(|_| ()))
}

/// Routes of transfers.
pub fn routes() -> Vec<Route> {
    let step = |path: &'static str,
                summary: &'static str,
                description: &'static str,
                request: crate::http::router::SchemaFn,
                h: fn(Ctx) -> crate::http::router::HandlerFuture| {
        route(
            Method::POST,
            path,
            Access::Token,
            BodyKind::Json,
            Doc {
                description,
                request: Some(request),
                response: Some(schema::<Transfer>()),
                ..Doc::new("应急物资", summary)
            },
            h,
        )
    };
    vec![
        route(
            Method::POST,
            "/api/v1/transfers",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "申请调拨：从一个储备库调往另一个。需要修改权限；调出库须在辖区内。",
                request: Some(schema::<NewTransfer>()),
                response: Some(schema::<Transfer>()),
                status: 201,
                ..Doc::new("应急物资", "申请调拨")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Write, &[Region::Global]),
        route(
            Method::GET,
            "/api/v1/transfers",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "调出或调入库在辖区内的调拨单，新者在前。",
                query: Some(schema::<TransferQuery>()),
                response: Some(schema::<Page<Transfer>>()),
                ..Doc::new("应急物资", "列出调拨单")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/transfers/{id}",
            Access::Token,
            BodyKind::None,
            Doc { response: Some(schema::<Transfer>()), ..Doc::new("应急物资", "查看调拨单") },
            |c| Box::pin(show(c)),
        )
        .guard(Perm::Read, &[Region::Path("id", &access::TRANSFER)]),
        step(
            "/api/v1/transfers/{id}/approve",
            "批准调拨",
            "批准（管理员或规划员，调出库须在辖区内）。请求体可为 {}。",
            schema::<Step>(),
            |c| Box::pin(approve(c)),
        )
        .guard(Perm::Decide, &[Region::Path("id", &access::TRANSFER_SOURCE)]),
        step(
            "/api/v1/transfers/{id}/ship",
            "调拨发运",
            "发运：从调出库记 transfer_out 出库（先到期先出）。库存不足返回 409。支持 Idempotency-Key。",
            schema::<Step>(),
            |c| Box::pin(ship(c)),
        )
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER_SOURCE)]),
        step(
            "/api/v1/transfers/{id}/receive",
            "调拨接收",
            "接收：调入库记 transfer_in 入库；实收数量可少于发运数量，差额记录在调拨单上。支持 Idempotency-Key。",
            schema::<Receipt>(),
            |c| Box::pin(receive(c)),
        )
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER_DEST)]),
        step("/api/v1/transfers/{id}/cancel", "取消调拨", "发运前可取消。", schema::<Step>(), |c| {
            Box::pin(cancel(c))
        })
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER)]),
    ]
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewTransfer = c.json()?;
    let from = super::requisitions::own_depot(&c, "from_depot_id", b.from_depot_id).await?;
    let to = depots::get(&c.app.db, b.to_depot_id)
        .await?
        .ok_or_else(|| ApiError::invalid("to_depot_id", format!("储备库 {} 不存在", b.to_depot_id)))?;
    if from.id == to.id {
        return Err(ApiError::invalid("to_depot_id", "调入库与调出库不能相同"));
    }
    super::positive("quantity", b.quantity)?;
    super::catalogue::need(&c.app.db, "item_code", &b.item_code).await?;
    let now = c.now();
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    let id: i64 = with_tx!(&mut tx, |conn| {
        sqlx::query_scalar(
        "INSERT INTO transfers (from_depot_id, to_depot_id, item_code, batch, quantity, status, lines, note, requested_by, requested_at)
         VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $8, $9) RETURNING id"
    )
    .bind(from.id)
    .bind(to.id)
    .bind(b.item_code.as_str())
    .bind(opt_text("batch", b.batch.as_deref(), 60)?)
    .bind(b.quantity)
    .bind(Json(Vec::<Line>::new()))
    .bind(opt_text("note", b.note.as_deref(), 1000)?)
    .bind(&actor.name)
    .bind(now)
    .fetch_one(conn)
    .await
    })?;
    let t = get_tx(&mut tx, id).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("transfer vanished")))?;
    let change = Change {
        action: "create",
        entity_type: "transfer",
        entity_id: &id.to_string(),
        region_code: Some(&from.region_code),
        before: None,
        after: Some(to_audit(&t)?),
    };
    audit::record(&mut tx, &actor, now, change).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &t)
}

/// Loads the transfer named in the path (the route's guard has checked that the caller may act on
/// the side this route acts on). Returns the transfer and the region codes of source and
/// destination.
async fn load(c: &Ctx) -> ApiResult<(Transfer, String, String)> {
    let id = c.id_param("id")?;
    let sql = format!("{SELECT} WHERE id = $1");
    let t = with_db!(&c.app.db, |db| sqlx::query_as::<_, Transfer>(&sql).bind(id).fetch_optional(db).await)?
        .ok_or_else(|| ApiError::NotFound(format!("调拨单 {id} 不存在")))?;
    let from = depots::get(&c.app.db, t.from_depot_id).await?.map(|d| d.region_code).unwrap_or_default();
    let to = depots::get(&c.app.db, t.to_depot_id).await?.map(|d| d.region_code).unwrap_or_default();
    Ok((t, from, to))
}

async fn show(c: Ctx) -> ApiResult<Response> {
    json(&load(&c).await?.0)
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: TransferQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let status = q.status.map(TransferStatus::as_str);
    let filter = "WHERE ($3 IS NULL OR status = $3) AND (from_depot_id IN (SELECT id FROM depots WHERE region_code >= $1 AND region_code <= $2)
        OR to_depot_id IN (SELECT id FROM depots WHERE region_code >= $1 AND region_code <= $2))";
    let sql = format!("{SELECT} {filter} ORDER BY id DESC LIMIT $4 OFFSET $5");
    let count = format!("SELECT COUNT(*) FROM transfers {filter}");
    let (items, total) = with_db!(&c.app.db, |db| {
        let items = sqlx::query_as::<_, Transfer>(&sql)
            .bind(&lo)
            .bind(&hi)
            .bind(status)
            .bind(limit)
            .bind(offset)
            .fetch_all(db)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(&lo).bind(&hi).bind(status).fetch_one(db).await?;
        Ok::<_, sqlx::Error>((items, total))
    })?;
    json(&Page { items, total })
}

fn wrong_state(t: &Transfer, action: &str) -> ApiError {
    ApiError::Conflict(format!("调拨单 {} 当前状态为「{}」，不能{action}", t.id, t.status.label()))
}

/// Re-reads the transfer inside the transaction and checks it is still in `expected`.
async fn reload(tx: &mut Tx, id: i64, expected: &[TransferStatus], action: &str) -> ApiResult<Transfer> {
    let t = get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("调拨单 {id} 不存在")))?;
    if !expected.contains(&t.status) {
        return Err(wrong_state(&t, action));
    }
    Ok(t)
}

async fn finish(
    mut tx: Tx,
    c: &Ctx,
    action: &str,
    region: &str,
    before: &Transfer,
    after: &Transfer,
) -> ApiResult<(Tx, serde_json::Value)> {
    save(&mut tx, after).await?;
    let change = Change {
        action,
        entity_type: "transfer",
        entity_id: &after.id.to_string(),
        region_code: Some(region),
        before: Some(to_audit(before)?),
        after: Some(to_audit(after)?),
    };
    audit::record(&mut tx, &c.actor()?, c.now(), change).await?;
    Ok((tx, to_audit(after)?))
}

async fn approve(c: Ctx) -> ApiResult<Response> {
    let (t, from, _) = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    let before = reload(&mut tx, t.id, &[TransferStatus::Requested], "批准").await?;
    let mut after = before.clone();
    after.status = TransferStatus::Approved;
    after.approved_at = Some(c.now());
    let (tx, v) = finish(tx, &c, "approve", &from, &before, &after).await?;
    tx.commit().await?;
    json(&v)
}

async fn cancel(c: Ctx) -> ApiResult<Response> {
    let (t, from, _) = load(&c).await?;
    let mut tx = c.app.db.begin().await?;
    let before = reload(&mut tx, t.id, &[TransferStatus::Requested, TransferStatus::Approved], "取消").await?;
    let mut after = before.clone();
    after.status = TransferStatus::Cancelled;
    after.cancelled_at = Some(c.now());
    let (tx, v) = finish(tx, &c, "cancel", &from, &before, &after).await?;
    tx.commit().await?;
    json(&v)
}

async fn ship(c: Ctx) -> ApiResult<Response> {
    let (t, from, _) = load(&c).await?;
    let now = c.now();
    let actor = c.actor()?;
    super::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        let before = reload(&mut tx, t.id, &[TransferStatus::Approved], "发运").await?;
        let details = Details { transfer_id: Some(t.id), ..Details::default() };
        let taken = ledger::take(
            &mut tx,
            t.from_depot_id,
            &t.item_code,
            t.batch.as_deref(),
            t.quantity,
            MovementKind::TransferOut,
            &details,
            now,
            &actor.name,
        )
        .await?;
        let mut after = before.clone();
        after.lines = Json(
            taken
                .iter()
                .map(|(b, m)| Line {
                    batch: b.batch.clone(),
                    quantity: -m.quantity,
                    production_date: b.production_date,
                    expiry_date: b.expiry_date,
                    reserve_mode: b.reserve_mode,
                })
                .collect(),
        );
        after.shipped_qty = Some(t.quantity);
        after.status = TransferStatus::Shipped;
        after.shipped_at = Some(now);
        finish(tx, &c, "ship", &from, &before, &after).await
    })
    .await
}

async fn receive(c: Ctx) -> ApiResult<Response> {
    let body: Receipt = if c.body.iter().all(u8::is_ascii_whitespace) {
        Receipt { received_quantity: None, note: None }
    } else {
        c.json()?
    };
    let (t, _, to) = load(&c).await?;
    let now = c.now();
    let actor = c.actor()?;
    let note = opt_text("note", body.note.as_deref(), 1000)?;
    super::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        let before = reload(&mut tx, t.id, &[TransferStatus::Shipped], "接收").await?;
        let shipped = before.shipped_qty.unwrap_or(0);
        let received = body.received_quantity.unwrap_or(shipped);
        if !(0..=shipped).contains(&received) {
            return Err(ApiError::invalid("received_quantity", format!("实收数量应在 0 到发运数量 {shipped} 之间")));
        }
        let details = Details { transfer_id: Some(t.id), note: note.clone(), ..Details::default() };
        let mut left = received;
        for line in before.lines.iter() {
            let n = left.min(line.quantity);
            if n == 0 {
                break;
            }
            let attrs = BatchAttrs {
                production_date: line.production_date,
                expiry_date: line.expiry_date,
                reserve_mode: line.reserve_mode,
                ..BatchAttrs::physical()
            };
            let batch = ledger::open_batch(&mut tx, t.to_depot_id, &t.item_code, &line.batch, &attrs, now).await?;
            ledger::apply(&mut tx, &batch, MovementKind::TransferIn, n, &details, now, &actor.name).await?;
            left -= n;
        }
        let mut after = before.clone();
        after.received_qty = Some(received);
        after.difference = Some(shipped - received);
        after.status = TransferStatus::Received;
        after.received_at = Some(now);
        if note.is_some() {
            after.note = note.clone();
        }
        finish(tx, &c, "receive", &to, &before, &after).await
    })
    .await
}
