//! `GET /api/v1/depots.geojson`: the depots in the caller's jurisdiction as a GeoJSON
//! FeatureCollection (WGS84 points) with a stock summary per item, for QGIS and web maps.
//! Phones are masked.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json as j};
use warp::http::Method;
use warp::reply::Response;

use super::{depots, today};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::body;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::regions::RegionCode;
use crate::vocab::ItemCode;
use crate::with_db;

/// Query of the GeoJSON layer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerQuery {
    /// Only depots in this region.
    pub region: Option<RegionCode>,
    /// Only depots holding this item (the summary still lists every item).
    pub item: Option<ItemCode>,
}

/// Routes of the GeoJSON layer.
pub fn routes() -> Vec<Route> {
    vec![route(
        Method::GET,
        "/api/v1/depots.geojson",
        Access::Token,
        BodyKind::None,
        Doc {
            description: "辖区内储备库的 GeoJSON 要素集合（点，WGS84），属性含各物资的库存汇总：physical 为未过期实物、expired 为已过期、agreement 为协议储备、capacity 为产能储备。",
            query: Some(schema::<LayerQuery>()),
            response_type: Some("application/geo+json"),
            ..Doc::new("应急物资", "储备库地图图层")
        },
        |c| Box::pin(layer(c)),
    )
        .guard(Perm::Read, &[Region::Query("region")])]
}

#[derive(sqlx::FromRow)]
struct Sum {
    depot_id: i64,
    item_code: String,
    item_name: String,
    unit: String,
    reserve_mode: String,
    expired: bool,
    qty: i64,
}

async fn layer(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: LayerQuery = c.query()?;
    let (lo, hi) = depots::narrowed_bounds(p, q.region.as_ref())?;
    let all = depots::all_in(&c.app.db, (&lo, &hi)).await?;
    let sums: Vec<Sum> = with_db!(&c.app.db, |db| sqlx::query_as::<_, Sum>(
        "SELECT s.depot_id, s.item_code, i.name AS item_name, i.unit, s.reserve_mode,
                (s.expiry_date IS NOT NULL AND s.expiry_date < $3) AS expired, CAST(SUM(s.quantity) AS BIGINT) AS qty
         FROM stock_batches s JOIN depots d ON d.id = s.depot_id JOIN supply_items i ON i.code = s.item_code
         WHERE d.region_code >= $1 AND d.region_code <= $2 AND s.quantity > 0
         GROUP BY 1, 2, 3, 4, 5, 6
         ORDER BY s.depot_id, s.item_code"
    )
    .bind(&lo)
    .bind(&hi)
    .bind(today(c.now()))
    .fetch_all(db)
    .await)?;
    let mut stock: BTreeMap<i64, BTreeMap<String, Value>> = BTreeMap::new();
    for s in sums {
        let entry = stock.entry(s.depot_id).or_default().entry(s.item_code.clone()).or_insert_with(|| {
            j!({"item_code": s.item_code, "name": s.item_name, "unit": s.unit, "physical": 0, "expired": 0, "agreement": 0, "capacity": 0})
        });
        let key = if s.expired { "expired" } else { s.reserve_mode.as_str() };
        let old = entry[key].as_i64().unwrap_or(0);
        entry[key] = j!(old + s.qty);
    }
    let features: Vec<Value> = all
        .iter()
        .filter_map(|d| {
            let items: Vec<Value> = stock.remove(&d.id).map(|m| m.into_values().collect()).unwrap_or_default();
            if let Some(code) = &q.item
                && !items.iter().any(|i| i["item_code"] == code.as_str())
            {
                return None;
            }
            let v = d.view(&c.app.cipher, false);
            Some(j!({
                "type": "Feature",
                "id": d.id,
                "geometry": {"type": "Point", "coordinates": [d.lon, d.lat]},
                "properties": {
                    "code": v.code, "name": v.name, "kind": v.kind, "kind_label": v.kind_label,
                    "region_code": v.region_code, "address": v.address, "manager": v.manager, "phone": v.phone,
                    "stock": items,
                }
            }))
        })
        .collect();
    let doc = j!({"type": "FeatureCollection", "features": features});
    let bytes = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(body("application/geo+json", bytes))
}
