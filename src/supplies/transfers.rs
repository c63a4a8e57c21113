//! Transfers between depots (调拨): `requested` → `approved` → `shipped` → `received`, or
//! `cancelled` before shipping, or `returned` to the source after shipping. Shipping records
//! `transfer_out` movements at the source (first expiry first, or the named batch); receiving
//! records `transfer_in` movements at the destination into batches that keep the shipped batch's
//! identity (name, dates, reserve mode, contract, owner, funding; a name already used there by a
//! batch of another identity becomes `<batch>-T<transfer id>`); returning records `return`
//! movements back into the source's batches (`<batch>-R<transfer id>` on a clash). The received or
//! returned quantity may be less than the shipped one; the difference is recorded on the transfer.
//!
//! Every step is one [`transition!`](crate::transition!) inside the transaction that writes its
//! movements and audit row: of two steps arriving together exactly one wins, the other gets 409
//! naming the current state and writes nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::ledger::{self, BatchAttrs, Details};
use super::{MovementKind, ReserveMode, TransferStatus, depots, opt_text, to_audit};
use crate::audit::{self, Change};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, json_status, page};
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
    /// Contract number (agreement reserves).
    #[serde(default)]
    pub contract_no: Option<String>,
    /// Contract end date.
    #[serde(default)]
    pub contract_end: Option<chrono::NaiveDate>,
    /// Owner of the goods.
    #[serde(default)]
    pub owner: Option<String>,
    /// Funding source.
    #[serde(default)]
    pub funding: Option<String>,
}

impl Line {
    /// The batch attributes the goods keep wherever they arrive.
    fn attrs(&self) -> BatchAttrs {
        BatchAttrs {
            production_date: self.production_date,
            expiry_date: self.expiry_date,
            reserve_mode: self.reserve_mode,
            contract_no: self.contract_no.clone(),
            contract_end: self.contract_end,
            owner: self.owner.clone(),
            funding: self.funding.clone(),
        }
    }
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
    /// Shipped minus received or returned (lost or damaged on the way).
    pub difference: Option<i64>,
    /// Units returned to the source.
    pub returned_qty: Option<i64>,
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
    /// When returned to the source.
    pub returned_at: Option<Timestamp>,
}

/// Body of `POST /api/v1/transfers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// Source depot id.
    #[schemars(range(min = 1))]
    pub from_depot_id: i64,
    /// Destination depot id.
    #[schemars(range(min = 1))]
    pub to_depot_id: i64,
    /// Item.
    pub item_code: ItemCode,
    /// Units.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub quantity: i64,
    /// A specific batch (default: first expiry first).
    #[schemars(length(max = 60))]
    pub batch: Option<String>,
    /// Note.
    #[schemars(length(max = 1000))]
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

/// Body of `POST /api/v1/transfers/{id}/return`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Giveback {
    /// Units arriving back at the source (default: all shipped); at most the shipped quantity.
    pub returned_quantity: Option<i64>,
    /// Note (e.g. why the goods came back).
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
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

const SELECT: &str = "SELECT id, from_depot_id, to_depot_id, item_code, batch, quantity, status, lines, shipped_qty, received_qty, difference, note, requested_by, requested_at, approved_at, shipped_at, received_at, cancelled_at, returned_qty, returned_at FROM transfers";

/// The transfer lifecycle.
pub const TRANSFER: crate::transition::Lifecycle = crate::transition::Lifecycle::new("transfers", "调拨单");

async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<Transfer>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Transfer>(&sql).bind(id).fetch_optional(c).await)
}

pub(super) async fn create(c: Ctx) -> ApiResult<Response> {
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

pub(super) async fn show(c: Ctx) -> ApiResult<Response> {
    json(&load(&c).await?.0)
}

pub(super) async fn list(c: Ctx) -> ApiResult<Response> {
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

/// Reads the transfer inside the transaction (after its transition, so the row is the current one).
async fn current(tx: &mut Tx, id: i64) -> ApiResult<Transfer> {
    get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("调拨单 {id} 不存在")))
}

/// Writes the step's non-state columns (after the transition decided it may happen).
async fn save_effects(tx: &mut Tx, t: &Transfer) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE transfers SET lines = $2, received_qty = $3, returned_qty = $4, difference = $5, note = $6 WHERE id = $1"
    )
    .bind(t.id)
    .bind(&t.lines)
    .bind(t.received_qty)
    .bind(t.returned_qty)
    .bind(t.difference)
    .bind(&t.note)
    .execute(c)
    .await
    .map(|_| ())
    })
}

async fn finish(
    mut tx: Tx,
    c: &Ctx,
    action: &str,
    region: &str,
    before: &Transfer,
    after: &Transfer,
) -> ApiResult<(Tx, serde_json::Value)> {
    save_effects(&mut tx, after).await?;
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

pub(super) async fn approve(c: Ctx) -> ApiResult<Response> {
    let (t, from, _) = load(&c).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    crate::transition!(&mut tx, TRANSFER, t.id, from ["requested"] => "approved", set { "approved_at" = now })?;
    let after = current(&mut tx, t.id).await?;
    let before = Transfer { status: TransferStatus::Requested, approved_at: None, ..after.clone() };
    let (tx, v) = finish(tx, &c, "approve", &from, &before, &after).await?;
    tx.commit().await?;
    json(&v)
}

pub(super) async fn cancel(c: Ctx) -> ApiResult<Response> {
    let (t, from, _) = load(&c).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    crate::transition!(&mut tx, TRANSFER, t.id, from ["requested", "approved"] => "cancelled",
        set { "cancelled_at" = now })?;
    let after = current(&mut tx, t.id).await?;
    let was = if after.approved_at.is_some() { TransferStatus::Approved } else { TransferStatus::Requested };
    let before = Transfer { status: was, cancelled_at: None, ..after.clone() };
    let (tx, v) = finish(tx, &c, "cancel", &from, &before, &after).await?;
    tx.commit().await?;
    json(&v)
}

pub(super) async fn ship(c: Ctx) -> ApiResult<Response> {
    let (t, from, _) = load(&c).await?;
    let now = c.now();
    let actor = c.actor()?;
    super::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        crate::transition!(&mut tx, TRANSFER, t.id, from ["approved"] => "shipped",
            set { "shipped_at" = now, "shipped_qty" = t.quantity })?;
        let mut after = current(&mut tx, t.id).await?;
        let before =
            Transfer { status: TransferStatus::Approved, shipped_at: None, shipped_qty: None, ..after.clone() };
        let details = Details { transfer_id: Some(t.id), ..Details::default() };
        let taken = ledger::take(
            &mut tx,
            after.from_depot_id,
            &after.item_code,
            after.batch.as_deref(),
            after.quantity,
            MovementKind::TransferOut,
            &details,
            now,
            &actor.name,
        )
        .await?;
        after.lines = Json(
            taken
                .iter()
                .map(|(b, m)| Line {
                    batch: b.batch.clone(),
                    quantity: -m.quantity,
                    production_date: b.production_date,
                    expiry_date: b.expiry_date,
                    reserve_mode: b.reserve_mode,
                    contract_no: b.contract_no.clone(),
                    contract_end: b.contract_end,
                    owner: b.owner.clone(),
                    funding: b.funding.clone(),
                })
                .collect(),
        );
        finish(tx, &c, "ship", &from, &before, &after).await
    })
    .await
}

/// Puts up to `quantity` of the shipped lines into `depot` (batches keep their identity; `tag`
/// names a batch whose name is taken by another identity) with movements of `kind`.
#[allow(clippy::too_many_arguments)]
async fn arrive(
    tx: &mut Tx,
    t: &Transfer,
    depot: i64,
    quantity: i64,
    kind: MovementKind,
    tag: &str,
    details: &Details,
    now: Timestamp,
    actor: &str,
) -> ApiResult<()> {
    let mut left = quantity;
    for line in t.lines.iter() {
        let n = left.min(line.quantity);
        if n == 0 {
            break;
        }
        let batch = ledger::arrival_batch(tx, depot, &t.item_code, &line.batch, &line.attrs(), tag, now).await?;
        ledger::apply(tx, &batch, kind, n, details, now, actor).await?;
        left -= n;
    }
    Ok(())
}

/// Checks a received or returned quantity against the shipped one (default: all shipped).
fn arrived_qty(field: &str, asked: Option<i64>, shipped: i64) -> ApiResult<i64> {
    let n = asked.unwrap_or(shipped);
    if !(0..=shipped).contains(&n) {
        return Err(ApiError::invalid(field, format!("实收数量应在 0 到发运数量 {shipped} 之间")));
    }
    Ok(n)
}

/// True when the step's body is absent (an empty body counts as `{}`).
fn blank(c: &Ctx) -> bool {
    c.body.iter().all(u8::is_ascii_whitespace)
}

pub(super) async fn receive(c: Ctx) -> ApiResult<Response> {
    let body: Receipt = if blank(&c) { Receipt { received_quantity: None, note: None } } else { c.json()? };
    let (t, _, to) = load(&c).await?;
    let now = c.now();
    let actor = c.actor()?;
    let note = opt_text("note", body.note.as_deref(), 1000)?;
    super::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        crate::transition!(&mut tx, TRANSFER, t.id, from ["shipped"] => "received", set { "received_at" = now })?;
        let mut after = current(&mut tx, t.id).await?;
        let before = Transfer { status: TransferStatus::Shipped, received_at: None, ..after.clone() };
        let shipped = after.shipped_qty.unwrap_or(0);
        let received = arrived_qty("received_quantity", body.received_quantity, shipped)?;
        let details = Details { transfer_id: Some(t.id), note: note.clone(), ..Details::default() };
        let tag = format!("T{}", t.id);
        arrive(
            &mut tx,
            &after,
            after.to_depot_id,
            received,
            MovementKind::TransferIn,
            &tag,
            &details,
            now,
            &actor.name,
        )
        .await?;
        after.received_qty = Some(received);
        after.difference = Some(shipped - received);
        if note.is_some() {
            after.note = note.clone();
        }
        finish(tx, &c, "receive", &to, &before, &after).await
    })
    .await
}

pub(super) async fn give_back(c: Ctx) -> ApiResult<Response> {
    let body: Giveback = if blank(&c) { Giveback { returned_quantity: None, note: None } } else { c.json()? };
    let (t, from, _) = load(&c).await?;
    let now = c.now();
    let actor = c.actor()?;
    let note = opt_text("note", body.note.as_deref(), 1000)?;
    super::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        crate::transition!(&mut tx, TRANSFER, t.id, from ["shipped"] => "returned", set { "returned_at" = now })?;
        let mut after = current(&mut tx, t.id).await?;
        let before = Transfer { status: TransferStatus::Shipped, returned_at: None, ..after.clone() };
        let shipped = after.shipped_qty.unwrap_or(0);
        let returned = arrived_qty("returned_quantity", body.returned_quantity, shipped)?;
        let details = Details {
            transfer_id: Some(t.id),
            reference: Some(format!("调拨单 {} 退回", t.id)),
            note: note.clone(),
            ..Details::default()
        };
        let tag = format!("R{}", t.id);
        arrive(&mut tx, &after, after.from_depot_id, returned, MovementKind::Return, &tag, &details, now, &actor.name)
            .await?;
        after.returned_qty = Some(returned);
        after.difference = Some(shipped - returned);
        if note.is_some() {
            after.note = note.clone();
        }
        finish(tx, &c, "return", &from, &before, &after).await
    })
    .await
}
