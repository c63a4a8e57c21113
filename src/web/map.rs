//! 地图: regions coloured by readiness score, depots and approved teams as layers, and the
//! "nearest" question (supplies allocation and qualified teams) drawn on the map.
//!
//! The page's script reads the same API the programs use (`/api/v1/depots.geojson`,
//! `/api/v1/teams.geojson`, `/api/v1/supplies/nearest`, `/api/v1/teams/nearest`) with the
//! session cookie, so the answers, permissions and jurisdiction are exactly the API's. The
//! region layer, which joins regions with their latest scores, is served here.
//!
//! No request leaves the service unless a tile URL is configured (`YINGJI_TILE_URL`): without
//! it the map shows boundaries, points, a scale bar and coordinates on a plain background.

use askama::Template;
use serde_json::{Value, json};

use super::layout::Layout;
use super::{Req, WebResult, html, json_response};
use crate::auth::Perm;
use crate::regions::{BANNER_SEAT, Level};
use crate::vocab::Specialty;

/// A place to pick instead of clicking the map.
struct Place {
    name: String,
    lon: f64,
    lat: f64,
}

#[derive(Template)]
#[template(path = "web/map.html")]
struct MapPage {
    layout: Layout,
    tile_url: String,
    tile_attribution: String,
    center: (f64, f64),
    zoom: u8,
    items: Vec<crate::supplies::catalogue::Item>,
    specialties: Vec<(&'static str, &'static str)>,
    places: Vec<Place>,
}

/// `GET /map`.
pub async fn page(req: Req) -> WebResult {
    let s = req.session().await?;
    let p = &s.principal;
    p.require(Perm::Read)?;
    let db = &req.app.db;
    let (lo, hi) = p.scope.bounds();
    let (regions, _) = crate::regions::store::list(db, (&lo, &hi), None, None, 10_000, 0).await?;
    let own = regions.iter().find(|r| r.code == p.scope.code.as_str());
    let center = own.and_then(|r| Some((r.lon?, r.lat?))).unwrap_or(BANNER_SEAT);
    let zoom = match p.scope.level {
        Level::Banner => 7,
        Level::Township => 9,
        Level::Village => 11,
    };
    let places = regions
        .iter()
        .filter_map(|r| Some(Place { name: format!("{}（{}）", r.name, r.level.label()), lon: r.lon?, lat: r.lat? }))
        .collect();
    let page = MapPage {
        layout: Layout::new(&req, &s, "地图", "map").await?,
        tile_url: req.app.config.tile_url.clone().unwrap_or_default(),
        tile_attribution: req.app.config.tile_attribution.clone().unwrap_or_default(),
        center,
        zoom,
        items: crate::supplies::catalogue::all(db).await?,
        specialties: Specialty::ALL.iter().map(|s| (s.code(), s.label())).collect(),
        places,
    };
    Ok(html(page.render()?))
}

/// `GET /map/regions.json`: the regions of the jurisdiction as GeoJSON (boundary where known,
/// else the point) with their latest readiness score.
pub async fn regions(req: Req) -> WebResult {
    let s = req.session().await?;
    let p = &s.principal;
    p.require(Perm::Read)?;
    let db = &req.app.db;
    let (lo, hi) = p.scope.bounds();
    let (regions, _) = crate::regions::store::list(db, (&lo, &hi), None, None, 100_000, 0).await?;
    let scores: std::collections::HashMap<String, i64> =
        crate::readiness::store::latest_scores_in(db, (&lo, &hi)).await?.into_iter().collect();
    let features: Vec<Value> = regions
        .iter()
        .filter_map(|r| {
            let geometry = match (&r.boundary, r.lon, r.lat) {
                (Some(b), _, _) => b.0.clone(),
                (None, Some(lon), Some(lat)) => json!({ "type": "Point", "coordinates": [lon, lat] }),
                _ => return None,
            };
            Some(json!({
                "type": "Feature",
                "id": r.code,
                "geometry": geometry,
                "properties": {
                    "code": r.code,
                    "name": r.name,
                    "level": r.level.as_str(),
                    "level_label": r.level.label(),
                    "score": scores.get(&r.code),
                },
            }))
        })
        .collect();
    Ok(json_response(&json!({ "type": "FeatureCollection", "features": features })))
}
