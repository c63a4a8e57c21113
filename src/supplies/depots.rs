//! Depots (储备库/点): where stock is held, with location, manager and the manager's phone (personal
//! information: stored encrypted, shown masked unless the caller may reveal it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::{Batch, DepotKind, opt_text, text, to_audit};
use crate::audit::{self, Change};
use crate::auth::{Perm, Principal};
use crate::db::{Db, Tx, is_unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{Page, json, json_status, page};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::personal::{Cipher, mask_phone};
use crate::regions::{RegionCode, check_lon_lat};
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::{with_db, with_tx};

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
        self.phone_enc.as_deref().and_then(|e| cipher.decrypt(e))
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
    pub code: String,
    /// Name.
    pub name: String,
    /// Owning region.
    pub region_code: RegionCode,
    /// Kind.
    pub kind: DepotKind,
    /// Longitude.
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
    /// Address.
    pub address: Option<String>,
    /// Manager.
    pub manager: Option<String>,
    /// Manager's phone.
    pub phone: Option<String>,
    /// Notes.
    pub notes: Option<String>,
}

/// Body of `PATCH /api/v1/depots/{id}`: any subset (the code and region do not change).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepotPatch {
    /// Name.
    pub name: Option<String>,
    /// Kind.
    pub kind: Option<DepotKind>,
    /// Longitude (with `lat`).
    pub lon: Option<f64>,
    /// Latitude (with `lon`).
    pub lat: Option<f64>,
    /// Address.
    pub address: Option<String>,
    /// Manager.
    pub manager: Option<String>,
    /// Manager's phone.
    pub phone: Option<String>,
    /// Notes.
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
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
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

/// Loads a depot the caller may act on with `perm` (404 when missing, 403 outside the
/// jurisdiction).
pub async fn load(c: &Ctx, perm: Perm, id: i64) -> ApiResult<DepotRow> {
    let p = c.require(perm)?;
    let d = get(&c.app.db, id).await?.ok_or_else(|| ApiError::NotFound(format!("储备库 {id} 不存在")))?;
    p.require_region(&d.region_code)?;
    Ok(d)
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

/// Routes of depots.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/api/v1/depots",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "辖区内的储备库（点），按编码排序；管理员电话已掩码。",
                query: Some(schema::<DepotQuery>()),
                response: Some(schema::<Page<Depot>>()),
                ..Doc::new("应急物资", "列出储备库")
            },
            |c| Box::pin(list(c)),
        ),
        route(
            Method::POST,
            "/api/v1/depots",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "登记储备库（点）。需要修改权限，限辖区内；电话加密保存。",
                request: Some(schema::<NewDepot>()),
                response: Some(schema::<Depot>()),
                status: 201,
                ..Doc::new("应急物资", "登记储备库")
            },
            |c| Box::pin(create(c)),
        ),
        route(
            Method::GET,
            "/api/v1/depots/{id}",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "储备库及其库存批次与各物资库存水平。`reveal=true` 显示完整电话（仅管理员，记入审计）。",
                query: Some(schema::<ShowQuery>()),
                response: Some(schema::<DepotDetail>()),
                ..Doc::new("应急物资", "查看储备库")
            },
            |c| Box::pin(show(c)),
        ),
        route(
            Method::PATCH,
            "/api/v1/depots/{id}",
            Access::Token,
            BodyKind::Json,
            Doc {
                request: Some(schema::<DepotPatch>()),
                response: Some(schema::<Depot>()),
                ..Doc::new("应急物资", "修改储备库")
            },
            |c| Box::pin(patch(c)),
        ),
        route(
            Method::PUT,
            "/api/v1/depots/{id}/minimums",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "设置某物资在本库的最低储备量（0 表示取消）。",
                request: Some(schema::<Minimum>()),
                response: Some(schema::<DepotDetail>()),
                ..Doc::new("应急物资", "设置最低储备量")
            },
            |c| Box::pin(set_minimum(c)),
        ),
    ]
}

async fn list(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let q: DepotQuery = c.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (lo, hi) = narrowed_bounds(p, q.region.as_ref())?;
    let kind = q.kind.map(|k| k.as_str());
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR kind = $3)";
    let sql = format!("{SELECT} {WHERE} ORDER BY code LIMIT $4 OFFSET $5");
    let count = format!("SELECT COUNT(*) FROM depots {WHERE}");
    let (rows, total) = with_db!(&c.app.db, |db| {
        let rows = sqlx::query_as::<_, DepotRow>(&sql)
            .bind(&lo)
            .bind(&hi)
            .bind(kind)
            .bind(limit)
            .bind(offset)
            .fetch_all(db)
            .await?;
        let total: i64 = sqlx::query_scalar(&count).bind(&lo).bind(&hi).bind(kind).fetch_one(db).await?;
        Ok::<_, sqlx::Error>((rows, total))
    })?;
    let items = rows.iter().map(|r| r.view(&c.app.cipher, false)).collect();
    json(&Page { items, total })
}

/// The caller's jurisdiction bounds, narrowed to `region` when given (403 when outside).
pub fn narrowed_bounds(p: &Principal, region: Option<&RegionCode>) -> ApiResult<(String, String)> {
    match region {
        None => Ok(p.scope.bounds()),
        Some(r) => {
            p.require_region(r.as_str())?;
            let s = r.as_str().trim_end_matches('0');
            // A region code's own prefix: 6 digits (banner), 9 (township) or 12 (village).
            let len = if s.len() <= 6 {
                6
            } else if s.len() <= 9 {
                9
            } else {
                12
            };
            let prefix = &r.as_str()[..len];
            Ok((format!("{prefix:0<12}"), format!("{prefix:9<12}")))
        }
    }
}

fn parse_new(b: NewDepot, cipher: &Cipher, now: Timestamp) -> ApiResult<DepotRow> {
    check_lon_lat(b.lon, b.lat).map_err(|m| ApiError::invalid("lon", m))?;
    let phone = match b.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(cipher.encrypt(&check_phone(p).map_err(|m| ApiError::invalid("phone", m))?)),
        None => None,
    };
    Ok(DepotRow {
        id: 0,
        code: text("code", &b.code, 40)?,
        name: text("name", &b.name, 100)?,
        region_code: b.region_code.as_str().to_string(),
        kind: b.kind,
        lon: b.lon,
        lat: b.lat,
        address: opt_text("address", b.address.as_deref(), 200)?,
        manager: opt_text("manager", b.manager.as_deref(), 50)?,
        phone_enc: phone,
        notes: opt_text("notes", b.notes.as_deref(), 1000)?,
        created_at: now,
        updated_at: now,
    })
}

async fn create(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Write)?;
    let b: NewDepot = c.json()?;
    p.require_region(b.region_code.as_str())?;
    let mut d = parse_new(b, &c.app.cipher, c.now())?;
    let mut tx = c.app.db.begin().await?;
    if crate::regions::store::get_tx(&mut tx, &d.region_code).await?.is_none() {
        return Err(ApiError::invalid("region_code", format!("区划 {} 不存在", d.region_code)));
    }
    d.id = match insert(&mut tx, &d).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => return Err(ApiError::Conflict(format!("储备库编码 {} 已存在", d.code))),
        Err(e) => return Err(e.into()),
    };
    let view = d.view(&c.app.cipher, false);
    let change = Change {
        action: "create",
        entity_type: "depot",
        entity_id: &d.id.to_string(),
        region_code: Some(&d.region_code),
        before: None,
        after: Some(to_audit(&view)?),
    };
    audit::record(&mut tx, &c.actor()?, d.created_at, change).await?;
    tx.commit().await?;
    json_status(StatusCode::CREATED, &view)
}

async fn detail(c: &Ctx, d: &DepotRow, reveal: bool) -> ApiResult<DepotDetail> {
    let sql = format!(
        "SELECT {} FROM stock_batches WHERE depot_id = $1 AND quantity > 0 ORDER BY item_code, expiry_date, batch",
        super::BATCH_COLUMNS
    );
    let (batches, mut levels) = with_db!(&c.app.db, |p| {
        let batches = sqlx::query_as::<_, Batch>(&sql).bind(d.id).fetch_all(p).await?;
        let levels = sqlx::query_as::<_, Level>(
            "SELECT item_code, CAST(SUM(quantity) AS BIGINT) AS quantity, MAX(minimum) AS minimum FROM (
                 SELECT item_code, quantity, NULL AS minimum FROM stock_batches WHERE depot_id = $1
                 UNION ALL SELECT item_code, 0, minimum FROM stock_minimums WHERE depot_id = $1
             ) t GROUP BY item_code ORDER BY item_code",
        )
        .bind(d.id)
        .fetch_all(p)
        .await?;
        Ok::<_, sqlx::Error>((batches, levels))
    })?;
    for l in &mut levels {
        l.below_minimum = l.minimum.is_some_and(|m| l.quantity < m);
    }
    Ok(DepotDetail { depot: d.view(&c.app.cipher, reveal), batches, levels })
}

async fn show(c: Ctx) -> ApiResult<Response> {
    let q: ShowQuery = c.query()?;
    let d = load(&c, Perm::Read, c.id_param("id")?).await?;
    if q.reveal {
        c.require(Perm::RevealPersonal)?;
        let mut tx = c.app.db.begin().await?;
        audit_reveal(&mut tx, &c, &d).await?;
        tx.commit().await?;
    }
    json(&detail(&c, &d, q.reveal).await?)
}

async fn patch(c: Ctx) -> ApiResult<Response> {
    let b: DepotPatch = c.json()?;
    let before = load(&c, Perm::Write, c.id_param("id")?).await?;
    let mut d = before.clone();
    if let Some(n) = b.name {
        d.name = text("name", &n, 100)?;
    }
    if let Some(k) = b.kind {
        d.kind = k;
    }
    match (b.lon, b.lat) {
        (None, None) => {}
        (Some(lon), Some(lat)) => {
            check_lon_lat(lon, lat).map_err(|m| ApiError::invalid("lon", m))?;
            (d.lon, d.lat) = (lon, lat);
        }
        _ => return Err(ApiError::invalid("lon", "经度和纬度须同时给出")),
    }
    if let Some(a) = b.address {
        d.address = opt_text("address", Some(&a), 200)?;
    }
    if let Some(m) = b.manager {
        d.manager = opt_text("manager", Some(&m), 50)?;
    }
    if let Some(p) = b.phone {
        d.phone_enc = match p.trim() {
            "" => None,
            p => Some(c.app.cipher.encrypt(&check_phone(p).map_err(|m| ApiError::invalid("phone", m))?)),
        };
    }
    if let Some(n) = b.notes {
        d.notes = opt_text("notes", Some(&n), 1000)?;
    }
    d.updated_at = c.now();
    let mut tx = c.app.db.begin().await?;
    update(&mut tx, &d).await?;
    let (bv, av) = (before.view(&c.app.cipher, false), d.view(&c.app.cipher, false));
    let change = Change {
        action: "update",
        entity_type: "depot",
        entity_id: &d.id.to_string(),
        region_code: Some(&d.region_code),
        before: Some(to_audit(&bv)?),
        after: Some(to_audit(&av)?),
    };
    audit::record(&mut tx, &c.actor()?, d.updated_at, change).await?;
    tx.commit().await?;
    json(&av)
}

async fn set_minimum(c: Ctx) -> ApiResult<Response> {
    let b: Minimum = c.json()?;
    let d = load(&c, Perm::Write, c.id_param("id")?).await?;
    if b.minimum < 0 {
        return Err(ApiError::invalid("minimum", "最低储备量不能为负数"));
    }
    super::catalogue::need(&c.app.db, "item_code", &b.item_code).await?;
    let now = c.now();
    let mut tx = c.app.db.begin().await?;
    with_tx!(&mut tx, |conn| {
        sqlx::query("DELETE FROM stock_minimums WHERE depot_id = $1 AND item_code = $2")
            .bind(d.id)
            .bind(b.item_code.as_str())
            .execute(&mut *conn)
            .await?;
        if b.minimum > 0 {
            sqlx::query(
                "INSERT INTO stock_minimums (depot_id, item_code, minimum, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(d.id)
            .bind(b.item_code.as_str())
            .bind(b.minimum)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok::<_, sqlx::Error>(())
    })?;
    let change = Change {
        action: "update",
        entity_type: "depot_minimum",
        entity_id: &format!("{}:{}", d.id, b.item_code),
        region_code: Some(&d.region_code),
        before: None,
        after: Some(serde_json::json!({ "item_code": b.item_code, "minimum": b.minimum })),
    };
    audit::record(&mut tx, &c.actor()?, now, change).await?;
    tx.commit().await?;
    json(&detail(&c, &d, false).await?)
}
