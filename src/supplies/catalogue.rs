//! The catalogue: items keyed by GB/T 38565-2020 code, with unit and shelf life, and the starter
//! catalogue shipped in `data/supplies_catalogue.csv`.
//!
//! Shipped items whose official code was not at hand carry the right top-level class, `99` at the
//! second and third levels and a local serial at the fourth, and are marked `provisional`: a user
//! replaces them with the official code when known, rather than the service inventing one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::{opt_text, text, to_audit};
use crate::audit::{self, Actor, Change};
use crate::auth::Perm;
use crate::db::{Db, Tx, is_unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::{with_db, with_tx};

/// The starter catalogue shipped with the service.
pub const SHIPPED_CATALOGUE: &str = include_str!("../../data/supplies_catalogue.csv");

/// A catalogue item.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Item {
    /// GB/T 38565-2020 code, 7 digits.
    pub code: String,
    /// Chinese name.
    pub name: String,
    /// Unit of measure (顶, 件, 床, 台, 套, 吨, 升…).
    pub unit: String,
    /// Shelf life in months, when the item expires.
    pub shelf_life_months: Option<i64>,
    /// True when the code is a placeholder (class + `99` levels), not the official one.
    pub provisional: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Body of `POST /api/v1/items`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// GB/T 38565 code (`1010101` or `1-01-01-01`).
    pub code: ItemCode,
    /// Chinese name.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub name: String,
    /// Unit of measure.
    #[schemars(length(min = 1, max = 20), regex(pattern = r"\S"))]
    pub unit: String,
    /// Shelf life in months.
    #[schemars(range(min = 0, max = 600))]
    pub shelf_life_months: Option<i64>,
    /// Whether the code is provisional (default false).
    #[serde(default)]
    pub provisional: bool,
}

/// Body of `PATCH /api/v1/items/{code}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// New name.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub name: Option<String>,
    /// New unit.
    #[schemars(length(max = 20))]
    pub unit: Option<String>,
    /// New shelf life in months (0 clears it).
    #[schemars(range(min = 0, max = 600))]
    pub shelf_life_months: Option<i64>,
    /// Provisional flag.
    pub provisional: Option<bool>,
}

/// Filters of `GET /api/v1/items`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    /// Only codes starting with this prefix (e.g. `1` for living supplies).
    pub prefix: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

const SELECT: &str =
    "SELECT code, name, unit, shelf_life_months, provisional, created_at, updated_at FROM supply_items";

/// One item.
pub async fn get(db: &Db, code: &str) -> Result<Option<Item>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_db!(db, |p| sqlx::query_as::<_, Item>(&sql).bind(code).fetch_optional(p).await)
}

/// One item inside a transaction.
pub async fn get_tx(tx: &mut Tx, code: &str) -> Result<Option<Item>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Item>(&sql).bind(code).fetch_optional(c).await)
}

/// An item that must exist (422 naming `field` otherwise).
pub async fn need(db: &Db, field: &str, code: &ItemCode) -> Result<Item, ApiError> {
    get(db, code.as_str()).await?.ok_or_else(|| ApiError::invalid(field, format!("物资编码 {code} 不在物资目录中")))
}

/// [`need`], served from the instance's item cache while the catalogue has not changed since the
/// request's freshness check `fresh` (see `crate::freshness`; None: from the database).
pub async fn need_fresh(
    app: &crate::app::AppState,
    fresh: Option<crate::freshness::Generations>,
    field: &str,
    code: &ItemCode,
) -> Result<Item, ApiError> {
    if let Some(g) = fresh
        && let Some(item) = app.items.get(g, &code.as_str().to_string())
    {
        return Ok(item);
    }
    let item = need(&app.db, field, code).await?;
    if let Some(g) = fresh {
        app.items.put(g, item.code.clone(), item.clone());
    }
    Ok(item)
}

/// Every item, by code.
pub async fn all(db: &Db) -> Result<Vec<Item>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY code");
    with_db!(db, |p| sqlx::query_as::<_, Item>(&sql).fetch_all(p).await)
}

/// Inserts an item.
pub async fn insert(tx: &mut Tx, i: &Item) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO supply_items (code, name, unit, shelf_life_months, provisional, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(&i.code)
    .bind(&i.name)
    .bind(&i.unit)
    .bind(i.shelf_life_months)
    .bind(i.provisional)
    .bind(i.created_at)
    .bind(i.updated_at)
    .execute(c)
    .await
    .map(|_| ())
    })
}

/// Writes an item's mutable fields.
pub async fn update(tx: &mut Tx, i: &Item) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE supply_items SET name = $2, unit = $3, shelf_life_months = $4, provisional = $5, updated_at = $6 WHERE code = $1"
    )
    .bind(&i.code)
    .bind(&i.name)
    .bind(&i.unit)
    .bind(i.shelf_life_months)
    .bind(i.provisional)
    .bind(i.updated_at)
    .execute(c)
    .await
    .map(|_| ())
    })
}

/// Inserts many items with one multi-row statement (at most
/// [`crate::imports::bulk::chunk`]`(7)` rows).
pub async fn insert_many(tx: &mut Tx, rows: &[Item]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO supply_items (code, name, unit, shelf_life_months, provisional, created_at, updated_at) ",
        );
        q.push_values(rows, |mut b, i| {
            b.push_bind(&i.code)
                .push_bind(&i.name)
                .push_bind(&i.unit)
                .push_bind(i.shelf_life_months)
                .push_bind(i.provisional)
                .push_bind(i.created_at)
                .push_bind(i.updated_at);
        });
        q.build().execute(c).await.map(|_| ())
    })
}

/// Writes the mutable fields of many items (by code) with one `UPDATE … FROM (VALUES …)` (at
/// most [`crate::imports::bulk::chunk`]`(6)` rows).
pub async fn update_many(tx: &mut Tx, rows: &[Item]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "UPDATE supply_items SET name = v.column2, unit = v.column3, shelf_life_months = v.column4, provisional = v.column5, updated_at = v.column6 FROM (",
        );
        q.push_values(rows, |mut b, i| {
            b.push_bind(&i.code)
                .push_bind(&i.name)
                .push_bind(&i.unit)
                .push_bind(i.shelf_life_months)
                .push_bind(i.provisional)
                .push_bind(i.updated_at);
        });
        q.push(") AS v WHERE supply_items.code = v.column1");
        q.build().execute(c).await.map(|_| ())
    })
}

/// Checks a shelf life value.
pub fn check_shelf_life(v: Option<i64>) -> Result<Option<i64>, String> {
    match v {
        None | Some(0) => Ok(None),
        Some(m) if (1..=600).contains(&m) => Ok(Some(m)),
        Some(m) => Err(format!("保质期 {m} 个月无效，应为 1 到 600")),
    }
}

/// Loads the starter catalogue when the catalogue is empty (first start).
pub async fn load_shipped(db: &Db, now: Timestamp) -> anyhow::Result<()> {
    let count: i64 = with_db!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM supply_items").fetch_one(p).await)?;
    if count > 0 {
        return Ok(());
    }
    let mut rdr = ::csv::Reader::from_reader(SHIPPED_CATALOGUE.as_bytes());
    let mut tx = db.begin().await?;
    for rec in rdr.records() {
        let rec = rec?;
        let get = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let code = ItemCode::parse(&get(0)).map_err(|e| anyhow::anyhow!(e))?;
        let item = Item {
            code: code.as_str().to_string(),
            name: get(1),
            unit: get(2),
            shelf_life_months: get(3).parse().ok(),
            provisional: get(4) == "true",
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = insert(&mut tx, &item).await {
            // Another instance seeding at the same moment: its rows are the same.
            if is_unique_violation(&e) {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    audit::record(
        &mut tx,
        &Actor::system(),
        now,
        Change {
            action: "import",
            entity_type: "supply_catalogue",
            entity_id: "shipped",
            region_code: None,
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Routes of the catalogue.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/items",
            Access::Token,
            BodyKind::None,
            Doc {
                query: Some(schema::<ItemQuery>()),
                response: Some(schema::<Page<Item>>()),
                ..Doc::new("应急物资", "列出物资目录")
            },
            |c| Box::pin(list(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
        route(
            Method::POST,
            "/api/v1/items",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "新增物资目录条目（GB/T 38565-2020 编码）。管理员或规划员。",
                request: Some(schema::<NewItem>()),
                response: Some(schema::<Item>()),
                status: 201,
                ..Doc::new("应急物资", "新增物资")
            },
            |c| Box::pin(create(c)),
        )
        .guard(Perm::Plan, &[Region::Global]),
        route(
            Method::GET,
            "/api/v1/items/{code}",
            Access::Token,
            BodyKind::None,
            Doc { response: Some(schema::<Item>()), ..Doc::new("应急物资", "查看物资") },
            |c| Box::pin(show(c)),
        )
        .guard(Perm::Read, &[Region::Global]),
        route(
            Method::PATCH,
            "/api/v1/items/{code}",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "修改名称、单位、保质期或临时编码标记。管理员或规划员。",
                request: Some(schema::<ItemPatch>()),
                response: Some(schema::<Item>()),
                ..Doc::new("应急物资", "修改物资")
            },
            |c| Box::pin(patch(c)),
        )
        .guard(Perm::Plan, &[Region::Global]),
    ]
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let q: ItemQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let prefix = format!("{}%", q.prefix.unwrap_or_default().replace(['%', '_', '-'], ""));
    let sql = format!("{SELECT} WHERE code LIKE $1 ORDER BY code LIMIT $2 OFFSET $3");
    let (items, total) = with_db!(&c.app.db, |p| {
        let items = sqlx::query_as::<_, Item>(&sql).bind(&prefix).bind(limit).bind(offset).fetch_all(p).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM supply_items WHERE code LIKE $1")
            .bind(&prefix)
            .fetch_one(p)
            .await?;
        Ok::<_, sqlx::Error>((items, total))
    })?;
    json(&Page { items, total })
}

async fn show(c: Ctx) -> ApiResult<Response> {
    let code = ItemCode::parse(c.param("code")).map_err(ApiError::NotFound)?;
    json(&get(&c.app.db, code.as_str()).await?.ok_or_else(|| ApiError::NotFound(format!("物资 {code} 不存在")))?)
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let b: NewItem = c.json()?;
    let now = c.now();
    let item = Item {
        code: b.code.as_str().to_string(),
        name: text("name", &b.name, 100)?,
        unit: text("unit", &b.unit, 20)?,
        shelf_life_months: check_shelf_life(b.shelf_life_months)
            .map_err(|m| ApiError::invalid("shelf_life_months", m))?,
        provisional: b.provisional,
        created_at: now,
        updated_at: now,
    };
    let mut tx = c.app.db.begin().await?;
    if let Err(e) = insert(&mut tx, &item).await {
        return Err(if is_unique_violation(&e) {
            ApiError::Conflict(format!("物资编码 {} 已存在", item.code))
        } else {
            e.into()
        });
    }
    let change = Change {
        action: "create",
        entity_type: "supply_item",
        entity_id: &item.code,
        region_code: None,
        before: None,
        after: Some(to_audit(&item)?),
    };
    audit::record(&mut tx, &c.actor()?, now, change).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &item)
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let b: ItemPatch = c.json()?;
    let code = ItemCode::parse(c.param("code")).map_err(ApiError::NotFound)?;
    let mut tx = c.app.db.begin().await?;
    let before =
        get_tx(&mut tx, code.as_str()).await?.ok_or_else(|| ApiError::NotFound(format!("物资 {code} 不存在")))?;
    let mut after = before.clone();
    if let Some(n) = b.name {
        after.name = text("name", &n, 100)?;
    }
    if let Some(u) = opt_text("unit", b.unit.as_deref(), 20)? {
        after.unit = u;
    }
    if b.shelf_life_months.is_some() {
        after.shelf_life_months =
            check_shelf_life(b.shelf_life_months).map_err(|m| ApiError::invalid("shelf_life_months", m))?;
    }
    if let Some(p) = b.provisional {
        after.provisional = p;
    }
    after.updated_at = c.now();
    update(&mut tx, &after).await?;
    let change = Change {
        action: "update",
        entity_type: "supply_item",
        entity_id: &after.code,
        region_code: None,
        before: Some(to_audit(&before)?),
        after: Some(to_audit(&after)?),
    };
    audit::record(&mut tx, &c.actor()?, after.updated_at, change).await?;
    tx.commit().await?;
    json(&after)
}
