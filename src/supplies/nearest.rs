//! "Where are the nearest 500 quilts?": an allocation of unexpired physical stock from the nearest
//! depots first, with agreement stock listed separately as the fallback.
//!
//! Spatial search: a bounding-box prefilter on the indexed `depots (lat, lon)` columns, computed
//! exactly from the search radius, then great-circle distances in Rust (both from
//! [`crate::geodesy`], shared with nearest teams and readiness). The database is the only state, so several instances
//! sharing PostgreSQL always agree, and there is no in-memory index to keep in step. The search
//! starts at 25 km and doubles the radius until the stock found within it covers the request, or
//! the radius reaches `max_km` (without it: covers the earth). Stopping early is exact: every
//! allocated depot is then nearer than any depot outside the radius.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::Method;
use warp::reply::Response;

use super::{depots, today};
use crate::auth::Perm;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::geodesy::{BoundingBox, WHOLE_EARTH_KM, bounding_box, distance_km};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::json;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::{RegionCode, check_lon_lat};
use crate::vocab::ItemCode;
use crate::with_db;

/// First radius of an open search.
const FIRST_RADIUS_KM: f64 = 25.0;
/// Most agreement depots listed as fallback.
const MAX_FALLBACK: usize = 50;

/// Query of `GET /api/v1/supplies/nearest`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NearestQuery {
    /// Item code.
    pub item: ItemCode,
    /// Units needed.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub quantity: i64,
    /// Longitude of the place in need (WGS84).
    #[schemars(range(min = -180, max = 180))]
    pub lon: f64,
    /// Latitude of the place in need (WGS84).
    #[schemars(range(min = -90, max = 90))]
    pub lat: f64,
    /// Only depots within this great-circle distance (km).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub max_km: Option<f64>,
    /// Only depots in this region (within the caller's jurisdiction).
    pub region: Option<RegionCode>,
}

/// Units taken from one depot.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Allocation {
    /// Depot id.
    pub depot_id: i64,
    /// Depot code.
    pub depot_code: String,
    /// Depot name.
    pub depot_name: String,
    /// Depot's region.
    pub region_code: String,
    /// Great-circle distance, km.
    pub distance_km: f64,
    /// Unexpired units held there (physical, or agreement in the fallback list).
    pub available: i64,
    /// Units to take from it.
    pub take: i64,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Nearest {
    /// Item code.
    pub item: String,
    /// Item name.
    pub item_name: String,
    /// Unit.
    pub unit: String,
    /// Units asked for.
    pub requested: i64,
    /// Units allocated from physical stock.
    pub allocated: i64,
    /// `requested - allocated`.
    pub shortfall: i64,
    /// Physical stock, nearest first, until the request is met.
    pub allocations: Vec<Allocation>,
    /// Agreement stock (协议储备) nearest first, as a fallback: `take` covers the shortfall.
    pub agreement: Vec<Allocation>,
    /// Radius searched, km.
    pub searched_km: f64,
}

/// A depot's unexpired stock of one item in one reserve mode.
#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    id: i64,
    code: String,
    name: String,
    region_code: String,
    lon: f64,
    lat: f64,
    reserve_mode: String,
    qty: i64,
}

async fn candidates(
    db: &Db,
    item: &str,
    bbox: BoundingBox,
    bounds: (&str, &str),
    today: chrono::NaiveDate,
) -> Result<Vec<Candidate>, sqlx::Error> {
    // CROSS JOIN fixes SQLite's join order (depots in the box first, then each depot's batches
    // of the item through the (depot_id, item_code, batch) unique index); PostgreSQL plans it
    // like an inner join.
    const SQL: &str = "SELECT d.id, d.code, d.name, d.region_code, d.lon, d.lat, b.reserve_mode, CAST(SUM(b.quantity) AS BIGINT) AS qty
        FROM depots d CROSS JOIN stock_batches b
        WHERE d.lat >= $1 AND d.lat <= $2 AND d.lon >= $3 AND d.lon <= $4
          AND d.region_code >= $5 AND d.region_code <= $6
          AND b.depot_id = d.id AND b.item_code = $7 AND b.quantity > 0
          AND b.reserve_mode IN ('physical', 'agreement')
          AND (b.expiry_date IS NULL OR b.expiry_date >= $8)
        GROUP BY d.id, d.code, d.name, d.region_code, d.lon, d.lat, b.reserve_mode";
    with_db!(db, |p| sqlx::query_as::<_, Candidate>(SQL)
        .bind(bbox.lat_min)
        .bind(bbox.lat_max)
        .bind(bbox.lon_min)
        .bind(bbox.lon_max)
        .bind(bounds.0)
        .bind(bounds.1)
        .bind(item)
        .bind(today)
        .fetch_all(p)
        .await)
}

/// A depot as an allocation names it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place<'a> {
    pub(super) id: i64,
    pub(super) code: &'a str,
    pub(super) name: &'a str,
    pub(super) region_code: &'a str,
}

/// Takes units from `list` (distance, units held, depot), in its order, until `need` is met or
/// `limit` depots are used.
pub(super) fn allocate<'a>(
    list: impl IntoIterator<Item = (f64, i64, Place<'a>)>,
    need: i64,
    limit: usize,
) -> Vec<Allocation> {
    let mut left = need;
    let mut out = Vec::new();
    for (dist, qty, c) in list {
        if left <= 0 || out.len() >= limit {
            break;
        }
        let take = left.min(qty);
        left -= take;
        out.push(Allocation {
            depot_id: c.id,
            depot_code: c.code.to_string(),
            depot_name: c.name.to_string(),
            region_code: c.region_code.to_string(),
            distance_km: (dist * 1000.0).round() / 1000.0,
            available: qty,
            take,
        });
    }
    out
}

/// The answer from the depots within `radius` (physical and agreement stock, each with its
/// distance; any order): physical stock nearest first (ties by depot code) until the quantity is
/// met, then agreement stock for the shortfall. Shared by the SQL path and the index.
pub(super) fn answer<'a>(
    w: &Want<'_>,
    radius: f64,
    mut physical: Vec<(f64, i64, Place<'a>)>,
    mut agreement: Vec<(f64, i64, Place<'a>)>,
) -> Nearest {
    let order =
        |a: &(f64, i64, Place<'a>), b: &(f64, i64, Place<'a>)| a.0.total_cmp(&b.0).then_with(|| a.2.code.cmp(b.2.code));
    physical.sort_by(order);
    agreement.sort_by(order);
    let allocations = allocate(physical, w.quantity, usize::MAX);
    let allocated: i64 = allocations.iter().map(|a| a.take).sum();
    let shortfall = w.quantity - allocated;
    let agreement = if shortfall > 0 { allocate(agreement, shortfall, MAX_FALLBACK) } else { Vec::new() };
    Nearest {
        item: w.item.to_string(),
        item_name: String::new(),
        unit: String::new(),
        requested: w.quantity,
        allocated,
        shortfall,
        allocations,
        agreement,
        searched_km: radius,
    }
}

/// The radii an open search tries: from [`FIRST_RADIUS_KM`] doubling up to `max_km` (without
/// it: the whole earth). The search stops at the first radius whose physical stock covers the
/// request.
pub(super) fn radii(max_km: Option<f64>) -> impl Iterator<Item = f64> {
    let cap = max_km.unwrap_or(WHOLE_EARTH_KM).min(WHOLE_EARTH_KM);
    let mut next = Some(FIRST_RADIUS_KM.min(cap));
    std::iter::from_fn(move || {
        let r = next?;
        next = (r < cap).then(|| (r * 2.0).min(cap));
        Some(r)
    })
}

/// Routes of the nearest-supplies search.
pub fn routes() -> Vec<Route> {
    vec![route(
        Method::GET,
        "/api/v1/supplies/nearest",
        Access::Token,
        BodyKind::None,
        Doc {
            description: "从最近的储备库起分配所需数量：只计未过期的实物储备，协议储备单独列为备选；距离为大圆距离（km）。max_km 限定距离，region 限定区划；结果限于调用者辖区。",
            query: Some(schema::<NearestQuery>()),
            response: Some(schema::<Nearest>()),
            ..Doc::new("应急物资", "最近物资查询")
        },
        |c| Box::pin(nearest(c)),
    )
        .guard(Perm::Read, &[Region::Query("region")])]
}

async fn nearest(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: NearestQuery = c.query()?;
    super::positive("quantity", q.quantity)?;
    check_lon_lat(q.lon, q.lat).map_err(|m| ApiError::invalid("lon", m))?;
    if let Some(m) = q.max_km
        && !(m.is_finite() && m > 0.0)
    {
        return Err(ApiError::invalid("max_km", "max_km 应为正数"));
    }
    let (lo, hi) = depots::narrowed_bounds(p, q.region.as_ref())?;
    let fresh = c.fresh().await;
    let item = super::catalogue::need_fresh(&c.app, fresh, "item", &q.item).await?;
    let want = Want { item: &item.code, quantity: q.quantity, point: (q.lon, q.lat), max_km: q.max_km };
    let (mut found, source) = c.app.supply_index.near(&c.app.db, fresh, &want, (&lo, &hi), today(c.now())).await?;
    found.item_name = item.name;
    found.unit = item.unit;
    let mut r = json(&found)?;
    r.headers_mut().insert("x-nearest-source", warp::http::HeaderValue::from_static(source.as_str()));
    Ok(r)
}

/// What [`search`] looks for.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// Item code (7 digits).
    pub item: &'a str,
    /// Units needed (positive).
    pub quantity: i64,
    /// The place in need (lon, lat).
    pub point: (f64, f64),
    /// Only depots within this distance (km); None: anywhere.
    pub max_km: Option<f64>,
}

/// The nearest-supplies allocation at store level (what `GET /api/v1/supplies/nearest` answers,
/// and what an event's resource plan is built from): unexpired physical stock of depots within
/// `bounds` (region-code range), nearest first until the quantity is met, and agreement stock
/// covering the shortfall. `item_name` and `unit` are left empty for the caller to fill.
pub async fn search(
    db: &Db,
    w: &Want<'_>,
    bounds: (&str, &str),
    day: chrono::NaiveDate,
) -> Result<Nearest, sqlx::Error> {
    let here = w.point;
    let mut last = (0.0, Vec::new(), Vec::new());
    for radius in radii(w.max_km) {
        let found = candidates(db, w.item, bounding_box(here.0, here.1, radius), bounds, day).await?;
        let mut physical = Vec::new();
        let mut agreement = Vec::new();
        for cand in found {
            let d = distance_km(here, (cand.lon, cand.lat));
            if d > radius {
                continue;
            }
            if cand.reserve_mode == "physical" { physical.push((d, cand)) } else { agreement.push((d, cand)) }
        }
        let enough = physical.iter().map(|(_, c)| c.qty).sum::<i64>() >= w.quantity;
        last = (radius, physical, agreement);
        if enough {
            break;
        }
    }
    let (radius, physical, agreement) = last;
    fn place((d, c): &(f64, Candidate)) -> (f64, i64, Place<'_>) {
        (*d, c.qty, Place { id: c.id, code: &c.code, name: &c.name, region_code: &c.region_code })
    }
    Ok(answer(w, radius, physical.iter().map(place).collect(), agreement.iter().map(place).collect()))
}
