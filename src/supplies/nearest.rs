//! "Where are the nearest 500 quilts?": an allocation of unexpired physical stock from the nearest
//! depots first, with agreement stock listed separately as the fallback.
//!
//! Spatial search: a bounding-box prefilter on the indexed `depots (lat, lon)` columns, computed
//! exactly from the search radius (Matuschek's bounding coordinates), then great-circle distances
//! (the geo crate's Haversine) in Rust. The database is the only state, so several instances
//! sharing PostgreSQL always agree, and there is no in-memory index to keep in step. The search
//! starts at 25 km and doubles the radius until the stock found within it covers the request, or
//! the radius reaches `max_km` (without it: covers the earth). Stopping early is exact: every
//! allocated depot is then nearer than any depot outside the radius.

use geo::{Distance, Haversine, Point};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::Method;
use warp::reply::Response;

use super::{depots, today};
use crate::auth::Perm;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::json;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::{RegionCode, check_lon_lat};
use crate::vocab::ItemCode;
use crate::with_db;

/// Mean earth radius used by the geo crate's Haversine, in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;
/// First radius of an open search.
const FIRST_RADIUS_KM: f64 = 25.0;
/// Half the earth's circumference: a radius that covers everything.
const WHOLE_EARTH_KM: f64 = std::f64::consts::PI * EARTH_RADIUS_KM;
/// Most agreement depots listed as fallback.
const MAX_FALLBACK: usize = 50;

/// Query of `GET /api/v1/supplies/nearest`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NearestQuery {
    /// Item code.
    pub item: ItemCode,
    /// Units needed.
    pub quantity: i64,
    /// Longitude of the place in need (WGS84).
    pub lon: f64,
    /// Latitude of the place in need (WGS84).
    pub lat: f64,
    /// Only depots within this great-circle distance (km).
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
#[derive(Debug, Clone, sqlx::FromRow)]
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

/// `(lat_min, lat_max, lon_min, lon_max)` in degrees enclosing every point within `km` of
/// (lon, lat) (Matuschek, "Finding points within a distance of a latitude/longitude using
/// bounding coordinates").
pub fn bounding_box(lon: f64, lat: f64, km: f64) -> (f64, f64, f64, f64) {
    let r = km / EARTH_RADIUS_KM;
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    let (mut la_min, mut la_max) = (la - r, la + r);
    let half_pi = std::f64::consts::FRAC_PI_2;
    let (lo_min, lo_max);
    if la_min > -half_pi && la_max < half_pi {
        let d = (r.sin() / la.cos()).clamp(-1.0, 1.0).asin();
        if lo - d < -std::f64::consts::PI || lo + d > std::f64::consts::PI {
            (lo_min, lo_max) = (-std::f64::consts::PI, std::f64::consts::PI);
        } else {
            (lo_min, lo_max) = (lo - d, lo + d);
        }
    } else {
        la_min = la_min.max(-half_pi);
        la_max = la_max.min(half_pi);
        (lo_min, lo_max) = (-std::f64::consts::PI, std::f64::consts::PI);
    }
    (la_min.to_degrees(), la_max.to_degrees(), lo_min.to_degrees(), lo_max.to_degrees())
}

/// Great-circle distance in km.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.0, a.1), Point::new(b.0, b.1)) / 1000.0
}

async fn candidates(
    db: &Db,
    item: &str,
    bbox: (f64, f64, f64, f64),
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
        .bind(bbox.0)
        .bind(bbox.1)
        .bind(bbox.2)
        .bind(bbox.3)
        .bind(bounds.0)
        .bind(bounds.1)
        .bind(item)
        .bind(today)
        .fetch_all(p)
        .await)
}

fn allocate(list: &[(f64, Candidate)], need: i64, limit: usize) -> Vec<Allocation> {
    let mut left = need;
    let mut out = Vec::new();
    for (dist, c) in list {
        if left <= 0 || out.len() >= limit {
            break;
        }
        let take = left.min(c.qty);
        left -= take;
        out.push(Allocation {
            depot_id: c.id,
            depot_code: c.code.clone(),
            depot_name: c.name.clone(),
            region_code: c.region_code.clone(),
            distance_km: (dist * 1000.0).round() / 1000.0,
            available: c.qty,
            take,
        });
    }
    out
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
    let item = super::catalogue::need(&c.app.db, "item", &q.item).await?;
    let day = today(c.now());
    let here = (q.lon, q.lat);
    let cap = q.max_km.unwrap_or(WHOLE_EARTH_KM).min(WHOLE_EARTH_KM);
    let mut radius = FIRST_RADIUS_KM.min(cap);
    let (physical, agreement) = loop {
        let found = candidates(&c.app.db, &item.code, bounding_box(q.lon, q.lat, radius), (&lo, &hi), day).await?;
        let mut physical = Vec::new();
        let mut agreement = Vec::new();
        for cand in &found {
            let d = distance_km(here, (cand.lon, cand.lat));
            if d > radius {
                continue;
            }
            if cand.reserve_mode == "physical" {
                physical.push((d, cand.clone()))
            } else {
                agreement.push((d, cand.clone()))
            }
        }
        let enough = physical.iter().map(|(_, c)| c.qty).sum::<i64>() >= q.quantity;
        if enough || radius >= cap {
            break (physical, agreement);
        }
        radius = (radius * 2.0).min(cap);
    };
    let sort = |v: Vec<(f64, Candidate)>| {
        let mut v = v;
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.code.cmp(&b.1.code)));
        v
    };
    let (physical, agreement) = (sort(physical), sort(agreement));
    let allocations = allocate(&physical, q.quantity, usize::MAX);
    let allocated: i64 = allocations.iter().map(|a| a.take).sum();
    let shortfall = q.quantity - allocated;
    let agreement = if shortfall > 0 { allocate(&agreement, shortfall, MAX_FALLBACK) } else { Vec::new() };
    json(&Nearest {
        item: item.code,
        item_name: item.name,
        unit: item.unit,
        requested: q.quantity,
        allocated,
        shortfall,
        allocations,
        agreement,
        searched_km: radius,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_contains_every_point_within_the_radius() {
        let (lon, lat) = (113.644, 43.852);
        for km in [1.0, 50.0, 300.0, 2000.0] {
            let (la0, la1, lo0, lo1) = bounding_box(lon, lat, km);
            for i in 0..360 {
                let bearing = (i as f64).to_radians();
                // A point at exactly `km` along `bearing` (spherical destination formula).
                let (p1, l1, d) = (lat.to_radians(), lon.to_radians(), km / EARTH_RADIUS_KM);
                let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * bearing.cos()).asin();
                let l2 = l1 + (bearing.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
                let (plat, plon) = (p2.to_degrees(), l2.to_degrees());
                assert!(plat >= la0 - 1e-9 && plat <= la1 + 1e-9, "{km} km bearing {i}");
                assert!(plon >= lo0 - 1e-9 && plon <= lo1 + 1e-9, "{km} km bearing {i}");
            }
        }
    }
}
