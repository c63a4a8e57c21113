//! Requisitions (征用, 突发事件应对法 art. 12): goods taken from a private owner in an emergency,
//! received into a depot as a batch of their own (`requisition_in`), returned afterwards (`held` →
//! `returned`, an `issue` movement to the owner), and compensated for damage or loss (`pending` →
//! `paid` or `waived`; amounts in yuan with two decimals, stored in fen). Two working lists
//! follow: "to return" and "to compensate". Both steps are [`transition!`](crate::transition!)s:
//! of two returns (or two compensation decisions) arriving together one wins, the other gets 409.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::batches::{self, NewBatch};
use super::ledger::{self, Details};
use super::{CompensationStatus, MovementKind, ReserveMode, depots, opt_text, text, to_audit, today};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::db::{Backend, Tx};
use crate::error::{ApiError, ApiResult};
use crate::forces::compensation::Money;
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::{Page, json, page};
use crate::http::refs::{self, Kind, Within};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::{with_db, with_tx};

/// A requisition.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Requisition {
    /// Id.
    pub id: i64,
    /// Receiving depot.
    pub depot_id: i64,
    /// The depot's region.
    pub region_code: String,
    /// Owner (person or enterprise).
    pub owner: String,
    /// Item.
    pub item_code: String,
    /// Units taken.
    pub quantity: i64,
    /// The batch holding the goods (`征用-<id>`).
    pub batch_id: i64,
    /// Condition on receipt.
    pub condition: String,
    /// Date received.
    pub received_on: NaiveDate,
    /// When they must go back.
    pub due_return: Option<NaiveDate>,
    /// When they went back.
    pub returned_on: Option<NaiveDate>,
    /// Units given back.
    pub returned_quantity: Option<i64>,
    /// Condition on return.
    pub return_condition: Option<String>,
    /// `held` (in the depot) or `returned`.
    pub status: String,
    /// Compensation amount (yuan, two decimals; stored in fen).
    #[sqlx(rename = "compensation_fen")]
    pub compensation_amount: Option<Money>,
    /// Compensation status.
    #[sqlx(try_from = "String")]
    pub compensation_status: CompensationStatus,
    /// Note.
    pub note: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Body of `POST /api/v1/requisitions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequisition {
    /// Receiving depot.
    #[schemars(range(min = 1))]
    pub depot_id: i64,
    /// Owner.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub owner: String,
    /// Item.
    pub item_code: ItemCode,
    /// Units.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub quantity: i64,
    /// Condition on receipt.
    #[schemars(length(min = 1, max = 500), regex(pattern = r"\S"))]
    pub condition: String,
    /// Date received (default today).
    pub received_on: Option<NaiveDate>,
    /// Due return date.
    pub due_return: Option<NaiveDate>,
    /// Note.
    #[schemars(length(max = 1000))]
    pub note: Option<String>,
    /// Production date of the goods (an item with a shelf life needs this or `expiry_date`).
    #[serde(default)]
    pub production_date: Option<NaiveDate>,
    /// Expiry date of the goods (default: production date plus the item's shelf life).
    #[serde(default)]
    pub expiry_date: Option<NaiveDate>,
}

/// Body of `POST /api/v1/requisitions/{id}/return`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Return {
    /// Date returned (default today).
    pub returned_on: Option<NaiveDate>,
    /// Units given back (default: what is left of the batch).
    pub quantity: Option<i64>,
    /// Condition on return.
    pub condition: String,
}

/// Body of `PUT /api/v1/requisitions/{id}/compensation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compensation {
    /// Amount in yuan (at most two decimals).
    pub amount: Option<Money>,
    /// Status.
    pub status: CompensationStatus,
}

/// Which list of `GET /api/v1/requisitions`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Not yet returned (due first).
    ToReturn,
    /// Compensation pending.
    ToCompensate,
}

/// Filters of `GET /api/v1/requisitions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequisitionQuery {
    /// `to_return` or `to_compensate`; omitted: all.
    pub list: Option<ListKind>,
    /// Page size.
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Columns of [`Requisition`] (used by events to list their requisitions too).
pub const SELECT: &str = "SELECT id, depot_id, region_code, owner, item_code, quantity, batch_id, condition, received_on, due_return, returned_on, returned_quantity, return_condition, status, compensation_fen, compensation_status, note, created_at, updated_at FROM requisitions";

/// The return lifecycle: `held` → `returned`.
pub const REQUISITION: crate::transition::Lifecycle = crate::transition::Lifecycle::new("requisitions", "征用记录");

/// The compensation lifecycle: `pending` → `paid` or `waived` (the amount may be set while pending).
pub const COMPENSATION: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("requisitions", "征用补偿").state_column("compensation_status");

async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<Requisition>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Requisition>(&sql).bind(id).fetch_optional(c).await)
}

/// The requisition named in the path.
const ON_REQUISITION: &[Region] = &[Region::Path("id", &access::REQUISITION)];

/// Routes of requisitions.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::POST,
            "/api/v1/requisitions",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "登记征用（应对法第十二条）：物资以独立批次「征用-编号」入库（requisition_in），补偿状态初始为 pending。支持 Idempotency-Key。",
                request: Some(schema::<NewRequisition>()),
                response: Some(schema::<Requisition>()),
                status: 201,
                ..Doc::new("应急物资", "登记征用")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Write, &[Region::Global]),
        route(
            Method::GET,
            "/api/v1/requisitions",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "辖区内的征用记录；list=to_return 为待归还（按应还日期），list=to_compensate 为待补偿。",
                query: Some(schema::<RequisitionQuery>()),
                response: Some(schema::<Page<Requisition>>()),
                ..Doc::new("应急物资", "列出征用")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::POST,
            "/api/v1/requisitions/{id}/return",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "归还被征用物资：从征用批次出库给所有人，记录归还日期与状况。支持 Idempotency-Key。",
                request: Some(schema::<Return>()),
                response: Some(schema::<Requisition>()),
                ..Doc::new("应急物资", "归还征用物资")
            },
            |c| Box::pin(give_back(c)),
        )
        .guard(Perm::Write, ON_REQUISITION),
        route(
            Method::PUT,
            "/api/v1/requisitions/{id}/compensation",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "登记补偿金额与状态（pending/paid/waived）。管理员或规划员。",
                request: Some(schema::<Compensation>()),
                response: Some(schema::<Requisition>()),
                ..Doc::new("应急物资", "登记征用补偿")
            },
            |c| Box::pin(compensate(c)),
        )
        .guard(Perm::Decide, ON_REQUISITION),
    ]
}

/// A depot referenced in a body that the caller may draw stock from: it exists and lies in the
/// caller's jurisdiction (422 naming `field` otherwise).
pub(super) async fn own_depot(c: &Ctx, field: &str, id: i64) -> ApiResult<depots::DepotRow> {
    let mut errors = Vec::new();
    let mine = [Within { scope: &c.caller()?.scope, reason: "您的管辖范围" }];
    refs::check_one(&c.app.db, field, Kind::Depot, &id, &mine, &mut errors).await?;
    ApiError::fail_with(errors)?;
    depots::get(&c.app.db, id).await?.ok_or_else(|| ApiError::invalid(field, format!("储备库 {id} 不存在")))
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewRequisition = c.json()?;
    let depot = own_depot(&c, "depot_id", b.depot_id).await?;
    let item = super::catalogue::need(&c.app.db, "item_code", &b.item_code).await?;
    super::positive("quantity", b.quantity)?;
    let owner = text("owner", &b.owner, 100)?;
    let condition = text("condition", &b.condition, 500)?;
    let note = opt_text("note", b.note.as_deref(), 1000)?;
    let now = c.now();
    let received_on = b.received_on.unwrap_or_else(|| today(now));
    let actor = c.actor()?;
    super::idempotency::run(&c, StatusCode::CREATED, |mut tx| async {
        // The id names the batch, so it is taken before the insert: from the sequence on
        // PostgreSQL (concurrent requests get distinct ids); SQLite's IMMEDIATE transaction is
        // alone, so MAX + 1 is safe there.
        let next = match tx.backend() {
            Backend::Postgres => "SELECT nextval(pg_get_serial_sequence('requisitions', 'id'))",
            Backend::Sqlite => "SELECT COALESCE(MAX(id), 0) + 1 FROM requisitions",
        };
        let id: i64 = with_tx!(&mut tx, |conn| sqlx::query_scalar(next).fetch_one(conn).await)?;
        let new = NewBatch {
            batch: format!("征用-{id}"),
            production_date: b.production_date,
            expiry_date: b.expiry_date,
            reserve_mode: Some(ReserveMode::Physical),
            owner: Some(owner.clone()),
            ..NewBatch::default()
        };
        let batch = batches::open(&mut tx, depot.id, &item, new, now).await?;
        with_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO requisitions (id, depot_id, region_code, owner, item_code, quantity, batch_id, condition, received_on, due_return, compensation_status, note, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $12)"
        )
        .bind(id)
        .bind(depot.id)
        .bind(&depot.region_code)
        .bind(&owner)
        .bind(b.item_code.as_str())
        .bind(b.quantity)
        .bind(batch.id)
        .bind(&condition)
        .bind(received_on)
        .bind(b.due_return)
        .bind(&note)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
        let details = Details { requisition_id: Some(id), destination: None, reference: Some(format!("征用-{id}")), ..Details::default() };
        ledger::apply(&mut tx, &batch, MovementKind::RequisitionIn, b.quantity, &details, now, &actor.name).await?;
        let r = get_tx(&mut tx, id).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("requisition vanished")))?;
        let change = Change {
            action: "create",
            entity_type: "requisition",
            entity_id: &id.to_string(),
            region_code: Some(&r.region_code),
            before: None,
            after: Some(to_audit(&r)?),
        };
        audit::record(&mut tx, &actor, now, change).await?;
        Ok((tx, to_audit(&r)?))
    })
    .await
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: RequisitionQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = p.scope.bounds();
    let (filter, order) = match q.list {
        None => ("", "id DESC"),
        Some(ListKind::ToReturn) => ("AND status = 'held'", "due_return IS NULL, due_return, id"),
        Some(ListKind::ToCompensate) => ("AND compensation_status = 'pending'", "id"),
    };
    let sql =
        format!("{SELECT} WHERE region_code >= $1 AND region_code <= $2 {filter} ORDER BY {order} LIMIT $3 OFFSET $4");
    let count = format!("SELECT COUNT(*) FROM requisitions WHERE region_code >= $1 AND region_code <= $2 {filter}");
    let (items, total) = with_db!(&c.app.db, |db| {
        let items =
            sqlx::query_as::<_, Requisition>(&sql).bind(&lo).bind(&hi).bind(limit).bind(offset).fetch_all(db).await?;
        let total: i64 = sqlx::query_scalar(&count).bind(&lo).bind(&hi).fetch_one(db).await?;
        Ok::<_, sqlx::Error>((items, total))
    })?;
    json(&Page { items, total })
}

/// Loads the requisition named in the path (the route's guard has checked access to it).
async fn load(c: &Ctx) -> ApiResult<Requisition> {
    let id = c.id_param("id")?;
    let sql = format!("{SELECT} WHERE id = $1");
    let r = with_db!(&c.app.db, |db| sqlx::query_as::<_, Requisition>(&sql).bind(id).fetch_optional(db).await)?
        .ok_or_else(|| ApiError::NotFound(format!("征用记录 {id} 不存在")))?;
    Ok(r)
}

async fn give_back(c: Ctx) -> ApiResult<Response> {
    let b: Return = c.json()?;
    let r = load(&c).await?;
    let condition = text("condition", &b.condition, 500)?;
    if let Some(n) = b.quantity
        && !(0..=super::MAX_QUANTITY).contains(&n)
    {
        return Err(ApiError::invalid("quantity", "数量不能为负数"));
    }
    let now = c.now();
    let returned_on = b.returned_on.unwrap_or_else(|| today(now));
    let actor = c.actor()?;
    super::idempotency::run(&c, StatusCode::OK, |mut tx| async {
        crate::transition!(&mut tx, REQUISITION, r.id, from ["held"] => "returned",
            set { "returned_on" = returned_on, "return_condition" = &condition, "updated_at" = now })?;
        let left: i64 =
            with_tx!(&mut tx, |conn| sqlx::query_scalar("SELECT quantity FROM stock_batches WHERE id = $1")
                .bind(r.batch_id)
                .fetch_one(conn)
                .await)?;
        let n = b.quantity.unwrap_or(left);
        if n > 0 {
            let details = Details {
                requisition_id: Some(r.id),
                destination: Some(format!("归还所有人 {}", r.owner)),
                reference: Some(format!("征用-{}", r.id)),
                ..Details::default()
            };
            let batch = format!("征用-{}", r.id);
            ledger::take(
                &mut tx,
                r.depot_id,
                &r.item_code,
                Some(&batch),
                n,
                MovementKind::Issue,
                &details,
                now,
                &actor.name,
            )
            .await?;
        }
        with_tx!(&mut tx, |conn| sqlx::query("UPDATE requisitions SET returned_quantity = $2 WHERE id = $1")
            .bind(r.id)
            .bind(n)
            .execute(conn)
            .await
            .map(|_| ()))?;
        let after = current(&mut tx, r.id).await?;
        let before = Requisition {
            status: "held".into(),
            returned_on: None,
            returned_quantity: None,
            return_condition: None,
            updated_at: r.updated_at,
            ..after.clone()
        };
        let change = Change {
            action: "return",
            entity_type: "requisition",
            entity_id: &r.id.to_string(),
            region_code: Some(&r.region_code),
            before: Some(to_audit(&before)?),
            after: Some(to_audit(&after)?),
        };
        audit::record(&mut tx, &actor, now, change).await?;
        Ok((tx, to_audit(&after)?))
    })
    .await
}

/// Reads the requisition inside the transaction (after its transition: the current row).
async fn current(tx: &mut Tx, id: i64) -> ApiResult<Requisition> {
    get_tx(tx, id).await?.ok_or_else(|| ApiError::NotFound(format!("征用记录 {id} 不存在")))
}

async fn compensate(c: Ctx) -> ApiResult<Response> {
    let b: Compensation = c.json()?;
    let r = load(&c).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    let to = b.status.as_str();
    // Read for the audit row only; the transition below decides.
    let before = current(&mut tx, r.id).await?;
    match b.amount {
        Some(amount) => crate::transition!(&mut tx, COMPENSATION, r.id, from ["pending"] => to,
            set { "compensation_fen" = amount, "updated_at" = now })?,
        None => crate::transition!(&mut tx, COMPENSATION, r.id, from ["pending"] => to, set { "updated_at" = now })?,
    }
    let after = current(&mut tx, r.id).await?;
    if b.status == CompensationStatus::Paid && after.compensation_amount.is_none() {
        return Err(ApiError::invalid("amount", "已补偿须填写补偿金额"));
    }
    let change = Change {
        action: "compensate",
        entity_type: "requisition",
        entity_id: &r.id.to_string(),
        region_code: Some(&r.region_code),
        before: Some(to_audit(&before)?),
        after: Some(to_audit(&after)?),
    };
    audit::record(&mut tx, &c.actor()?, now, change).await?;
    tx.commit().await?;
    json(&after)
}
