//! `GET /api/v1/teams.geojson`: team bases as a GeoJSON FeatureCollection for maps. Carries no
//! personal data (no leader, contact, member names or numbers).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use warp::reply::Response;

use super::{FilingStatus, MemberStatus, store};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::body;
use crate::with_db;

/// Query of the map.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapQuery {
    /// Filing state to show (default `approved`).
    pub filing_status: Option<FilingStatus>,
}

/// Serves the map.
pub async fn handler(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: MapQuery = c.query()?;
    let status = q.filing_status.unwrap_or(FilingStatus::Approved);
    let (lo, hi) = p.scope.bounds();
    let teams = store::all(&c.app.db, (&lo, &hi), Some(status)).await?;
    let mut specs = store::specialties_in(&c.app.db, (&lo, &hi)).await?;
    let counts: Vec<(i64, i64)> = with_db!(&c.app.db, |pool| sqlx::query_as(
        "SELECT m.team_id, COUNT(*) FROM members m JOIN teams t ON t.id = m.team_id
         WHERE t.region_code >= $1 AND t.region_code <= $2 AND m.status = $3 GROUP BY m.team_id"
    )
    .bind(&lo)
    .bind(&hi)
    .bind(MemberStatus::Available.as_str())
    .fetch_all(pool)
    .await)?;
    let features: Vec<serde_json::Value> = teams
        .iter()
        .map(|t| {
            let specialties: Vec<serde_json::Value> = specs
                .remove(&t.id)
                .unwrap_or_default()
                .iter()
                .map(|s| json!({ "code": s.specialty.code(), "label": s.specialty.label(), "grade": s.grade }))
                .collect();
            let available = counts.iter().find(|(id, _)| *id == t.id).map_or(0, |(_, n)| *n);
            json!({
                "type": "Feature",
                "id": t.code,
                "geometry": { "type": "Point", "coordinates": [t.lon, t.lat] },
                "properties": {
                    "code": t.code,
                    "name": t.name,
                    "org_type": t.org_type.as_str(),
                    "org_type_label": t.org_type.label(),
                    "region_code": t.region_code,
                    "filing_status": t.filing_status.as_str(),
                    "specialties": specialties,
                    "available_members": available,
                },
            })
        })
        .collect();
    let doc = json!({ "type": "FeatureCollection", "features": features });
    let bytes = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(body("application/geo+json", bytes))
}
