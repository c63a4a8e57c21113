//! Depots (储备库/点): where stock is held, with location, manager and the manager's phone (personal
//! information: stored encrypted, shown masked unless the caller may reveal it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Batch, DepotKind};
use crate::audit::{self, Change};
use crate::auth::Principal;
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::personal::{Cipher, Field, mask_phone};
use crate::regions::RegionCode;
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::{with_db, with_tx};

pub mod routes;

/// A depot as stored (phone encrypted).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepotRow {
    /// Id.
    pub id: i64,
    /// User-given unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Owning region (12 digits).
    pub region_code: String,
    /// Kind.
    #[sqlx(try_from = "String")]
    pub kind: DepotKind,
    /// Longitude (WGS84).
    pub lon: f64,
    /// Latitude (WGS84).
    pub lat: f64,
    /// Address.
    pub address: Option<String>,
    /// Manager's name.
    pub manager: Option<String>,
    /// Manager's phone, encrypted with the personal-data key.
    pub phone_enc: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A depot as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Depot {
    /// Id.
    pub id: i64,
    /// User-given unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Owning region.
    pub region_code: String,
    /// Kind.
    pub kind: DepotKind,
    /// Kind, in Chinese.
    pub kind_label: &'static str,
    /// Longitude.
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
    /// Address.
    pub address: Option<String>,
    /// Manager's name.
    pub manager: Option<String>,
    /// Manager's phone: masked (`138****5678`) unless revealed.
    pub phone: Option<String>,
    /// Whether `phone` is shown in full.
    pub phone_revealed: bool,
    /// Notes.
    pub notes: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl DepotRow {
    /// The phone in clear (None when absent or unreadable with this key).
    pub fn phone(&self, cipher: &Cipher) -> Option<String> {
        self.phone_enc.as_deref().and_then(|e| cipher.decrypt(Field::DEPOT_PHONE, e))
    }

    /// The API view, with the phone masked or (when `reveal`) in full.
    pub fn view(&self, cipher: &Cipher, reveal: bool) -> Depot {
        let phone = self.phone(cipher).map(|p| if reveal { p } else { mask_phone(&p) });
        Depot {
            id: self.id,
            code: self.code.clone(),
            name: self.name.clone(),
            region_code: self.region_code.clone(),
            kind: self.kind,
            kind_label: self.kind.label(),
            lon: self.lon,
            lat: self.lat,
            address: self.address.clone(),
            manager: self.manager.clone(),
            phone_revealed: reveal && phone.is_some(),
            phone,
            notes: self.notes.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Body of `POST /api/v1/depots`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDepot {
    /// Unique code.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"\S"))]
    pub code: String,
    /// Name.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub name: String,
    /// Owning region.
    pub region_code: RegionCode,
    /// Kind.
    pub kind: DepotKind,
    /// Longitude.
    #[schemars(range(min = -180, max = 180))]
    pub lon: f64,
    /// Latitude.
    #[schemars(range(min = -90, max = 90))]
    pub lat: f64,
    /// Address.
    #[schemars(length(max = 200))]
    pub address: Option<String>,
    /// Manager.
    #[schemars(length(max = 50))]
    pub manager: Option<String>,
    /// Manager's phone.
    pub phone: Option<String>,
    /// Notes.
    #[schemars(length(max = 1000))]
    pub notes: Option<String>,
}

/// Body of `PATCH /api/v1/depots/{id}`: any subset (the code and region do not change).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepotPatch {
    /// Name.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub name: Option<String>,
    /// Kind.
    pub kind: Option<DepotKind>,
    /// Longitude (with `lat`).
    #[schemars(range(min = -180, max = 180))]
    pub lon: Option<f64>,
    /// Latitude (with `lon`).
    #[schemars(range(min = -90, max = 90))]
    pub lat: Option<f64>,
    /// Address.
    #[schemars(length(max = 200))]
    pub address: Option<String>,
    /// Manager.
    #[schemars(length(max = 50))]
    pub manager: Option<String>,
    /// Manager's phone.
    pub phone: Option<String>,
    /// Notes.
    #[schemars(length(max = 1000))]
    pub notes: Option<String>,
}

/// Filters of `GET /api/v1/depots`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepotQuery {
    /// Only depots in this region (and below).
    pub region: Option<RegionCode>,
    /// Only this kind.
    pub kind: Option<DepotKind>,
    /// Page size.
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Query of `GET /api/v1/depots/{id}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// Show the manager's phone in full (needs the personal-data permission; audited).
    #[serde(default)]
    pub reveal: bool,
}

/// Body of `PUT /api/v1/depots/{id}/minimums`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Minimum {
    /// Item.
    pub item_code: ItemCode,
    /// Minimum level (0 removes it).
    pub minimum: i64,
}

/// A depot with its stock.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DepotDetail {
    /// The depot.
    #[serde(flatten)]
    pub depot: Depot,
    /// Its batches with a balance above zero.
    pub batches: Vec<Batch>,
    /// Per item: total, minimum level, and whether below it.
    pub levels: Vec<Level>,
}

/// Stock level of one item in a depot.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Level {
    /// Item.
    pub item_code: String,
    /// Total quantity over all batches.
    pub quantity: i64,
    /// Minimum level set for this depot and item.
    pub minimum: Option<i64>,
    /// True when a minimum is set and the quantity is below it.
    #[sqlx(default)]
    pub below_minimum: bool,
}

const SELECT: &str = "SELECT id, code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at FROM depots";

/// One depot by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<DepotRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_db!(db, |p| sqlx::query_as::<_, DepotRow>(&sql).bind(id).fetch_optional(p).await)
}

/// One depot by id inside a transaction.
pub async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<DepotRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, DepotRow>(&sql).bind(id).fetch_optional(c).await)
}

/// One depot by code inside a transaction.
pub async fn by_code_tx(tx: &mut Tx, code: &str) -> Result<Option<DepotRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, DepotRow>(&sql).bind(code).fetch_optional(c).await)
}

/// Every depot within the bounds, by code.
pub async fn all_in(db: &Db, bounds: (&str, &str)) -> Result<Vec<DepotRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE region_code >= $1 AND region_code <= $2 ORDER BY code");
    with_db!(db, |p| sqlx::query_as::<_, DepotRow>(&sql).bind(bounds.0).bind(bounds.1).fetch_all(p).await)
}

/// Inserts a depot, returning its id.
pub async fn insert(tx: &mut Tx, d: &DepotRow) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO depots (code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id"
    )
    .bind(&d.code)
    .bind(&d.name)
    .bind(&d.region_code)
    .bind(d.kind.as_str())
    .bind(d.lon)
    .bind(d.lat)
    .bind(&d.address)
    .bind(&d.manager)
    .bind(&d.phone_enc)
    .bind(&d.notes)
    .bind(d.created_at)
    .bind(d.updated_at)
    .fetch_one(c)
    .await
    })
}

/// Writes a depot's mutable fields.
pub async fn update(tx: &mut Tx, d: &DepotRow) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE depots SET name = $2, kind = $3, lon = $4, lat = $5, address = $6, manager = $7, phone_enc = $8, notes = $9, updated_at = $10 WHERE id = $1"
    )
    .bind(d.id)
    .bind(&d.name)
    .bind(d.kind.as_str())
    .bind(d.lon)
    .bind(d.lat)
    .bind(&d.address)
    .bind(&d.manager)
    .bind(&d.phone_enc)
    .bind(&d.notes)
    .bind(d.updated_at)
    .execute(c)
    .await
    .map(|_| ())
    })
}

/// Inserts many depots with one multi-row statement (at most
/// [`crate::imports::bulk::chunk`]`(11)` rows); returns `(id, code)` of each.
pub async fn insert_many(tx: &mut Tx, rows: &[DepotRow]) -> Result<Vec<(i64, String)>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO depots (code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at) ",
        );
        q.push_values(rows, |mut b, d| {
            b.push_bind(&d.code)
                .push_bind(&d.name)
                .push_bind(&d.region_code)
                .push_bind(d.kind.as_str())
                .push_bind(d.lon)
                .push_bind(d.lat)
                .push_bind(&d.address)
                .push_bind(&d.manager)
                .push_bind(&d.phone_enc)
                .push_bind(&d.notes)
                .push_bind(d.created_at)
                .push_bind(d.updated_at);
        });
        q.push(" RETURNING id, code");
        q.build_query_as().fetch_all(c).await
    })
}

/// Writes the mutable fields of many depots (by id) with one `UPDATE … FROM (VALUES …)` (at
/// most [`crate::imports::bulk::chunk`]`(10)` rows). `VALUES` columns are named `column1…` on
/// both SQLite and PostgreSQL.
pub async fn update_many(tx: &mut Tx, rows: &[DepotRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "UPDATE depots SET name = v.column2, kind = v.column3, lon = v.column4, lat = v.column5, address = v.column6, manager = v.column7, phone_enc = v.column8, notes = v.column9, updated_at = v.column10 FROM (",
        );
        q.push_values(rows, |mut b, d| {
            b.push_bind(d.id)
                .push_bind(&d.name)
                .push_bind(d.kind.as_str())
                .push_bind(d.lon)
                .push_bind(d.lat)
                .push_bind(&d.address)
                .push_bind(&d.manager)
                .push_bind(&d.phone_enc)
                .push_bind(&d.notes)
                .push_bind(d.updated_at);
        });
        q.push(") AS v WHERE depots.id = v.column1");
        q.build().execute(c).await.map(|_| ())
    })
}

/// Checks a phone number: 5 to 20 digits, `+`, `-` or spaces.
pub fn check_phone(p: &str) -> Result<String, String> {
    let p = p.trim();
    let digits = p.chars().filter(char::is_ascii_digit).count();
    if (5..=20).contains(&digits) && p.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) {
        Ok(p.to_string())
    } else {
        Err(format!("电话号码「{p}」无效"))
    }
}

/// Loads the depot named in the path (the route's guard has checked access to it).
pub async fn load(c: &Ctx, id: i64) -> ApiResult<DepotRow> {
    get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("储备库 {id} 不存在")))
}

/// Audits a reveal of a depot's personal data inside `tx`.
pub async fn audit_reveal(tx: &mut Tx, c: &Ctx, d: &DepotRow) -> ApiResult<()> {
    let change = Change {
        action: "reveal",
        entity_type: "depot",
        entity_id: &d.id.to_string(),
        region_code: Some(&d.region_code),
        before: None,
        after: Some(serde_json::json!({ "fields": ["phone"] })),
    };
    audit::record(tx, &c.actor()?, c.now(), change).await?;
    Ok(())
}

/// The caller's jurisdiction bounds, narrowed to `region` when given (routes declaring
/// `Region::Query("region")` have already answered 403 for a region outside it).
pub fn narrowed_bounds(p: &Principal, region: Option<&RegionCode>) -> ApiResult<(String, String)> {
    match region {
        None => Ok(p.scope.bounds()),
        Some(r) => {
            p.require_region(r.as_str())?;
            Ok(crate::auth::Scope::of(r).bounds())
        }
    }
}
