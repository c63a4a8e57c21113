//! Nearest qualified teams: approved teams with at least N members who are `available`, hold a
//! specialty and are insured on the day in question, nearest first (great-circle distance,
//! Haversine on the GRS80 mean radius).
//!
//! [`qualified_teams_near`] is the store-level entry point that readiness checks reuse: "how many
//! qualified members does each approved team near this point have?".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::members::local_day;
use crate::db::Db;
use crate::geodesy::{bounding_box, distance_km};
use crate::time::Timestamp;
use crate::vocab::Specialty;
use crate::with_db;

/// Query of `GET /api/v1/teams/nearest`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NearestQuery {
    /// Specialty the members must hold.
    pub specialty: Specialty,
    /// Least number of qualified members (default 1).
    #[serde(default)]
    pub min_members: Option<i64>,
    /// Longitude of the point (WGS84).
    pub lon: f64,
    /// Latitude of the point (WGS84).
    pub lat: f64,
    /// Largest distance, km.
    pub max_km: f64,
    /// Instant at which insurance must be valid (default now).
    #[serde(default)]
    pub at: Option<Timestamp>,
}

/// One team in the answer.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct NearTeam {
    /// Team code.
    pub team_code: String,
    /// Team name.
    pub name: String,
    /// Home region.
    pub region_code: String,
    /// Great-circle distance from the point to the team's base, km (rounded to 0.01).
    pub distance_km: f64,
    /// Members who are available, hold the specialty and are insured at the instant.
    pub qualified_members: i64,
    /// The team's grade in the specialty (1 highest), when graded.
    pub grade: Option<u8>,
}

/// What to look for.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// Specialty the members must hold.
    pub specialty: Specialty,
    /// Least number of qualified members (at least 1).
    pub min_members: i64,
    /// Point (lon, lat).
    pub point: (f64, f64),
    /// Largest distance, km.
    pub max_km: f64,
    /// Instant at which insurance must be valid.
    pub at: Timestamp,
}

/// Approved teams within `bounds` (a jurisdiction's region-code range) that have at least
/// `s.min_members` members who are `available` now, hold `s.specialty`, and hold a policy
/// covering the Asia/Shanghai day of `s.at`; within `s.max_km` of `s.point`; nearest first (ties
/// by code). Member status is the current one (status history is not kept); only insurance is
/// judged at `s.at`. A team's own specialty list is not required: its grade is shown when it
/// has one.
pub async fn qualified_teams_near(db: &Db, bounds: (&str, &str), s: &Search) -> Result<Vec<NearTeam>, sqlx::Error> {
    const SQL: &str = "SELECT t.code, t.name, t.region_code, t.lon, t.lat, ts.grade, COUNT(m.id) AS qualified
        FROM teams t
        JOIN members m ON m.team_id = t.id AND m.status = 'available'
        JOIN member_skills ms ON ms.member_id = m.id AND ms.specialty = $1
        LEFT JOIN team_specialties ts ON ts.team_id = t.id AND ts.specialty = $1
        WHERE t.filing_status = 'approved' AND t.region_code >= $2 AND t.region_code <= $3
          AND t.lat >= $4 AND t.lat <= $5 AND t.lon >= $6 AND t.lon <= $7
          AND EXISTS (SELECT 1 FROM member_insurance i WHERE i.member_id = m.id AND i.start_date <= $8 AND i.end_date >= $8)
        GROUP BY t.id, t.code, t.name, t.region_code, t.lon, t.lat, ts.grade
        HAVING COUNT(m.id) >= $9";
    type Row = (String, String, String, f64, f64, Option<i64>, i64);
    let (lon, lat) = s.point;
    // A bounding box prefilter (indexed on lat, lon), exact at any radius; the exact distance is
    // computed below.
    let bb = bounding_box(lon, lat, s.max_km);
    let day = local_day(s.at);
    let min = s.min_members.max(1);
    let rows: Vec<Row> = with_db!(db, |p| sqlx::query_as(SQL)
        .bind(s.specialty.code())
        .bind(bounds.0)
        .bind(bounds.1)
        .bind(bb.lat_min)
        .bind(bb.lat_max)
        .bind(bb.lon_min)
        .bind(bb.lon_max)
        .bind(day)
        .bind(min)
        .fetch_all(p)
        .await)?;
    let mut out: Vec<NearTeam> = rows
        .into_iter()
        .map(|(team_code, name, region_code, tlon, tlat, grade, qualified)| {
            let d = distance_km((lon, lat), (tlon, tlat));
            (
                d,
                NearTeam {
                    team_code,
                    name,
                    region_code,
                    distance_km: (d * 100.0).round() / 100.0,
                    qualified_members: qualified,
                    grade: grade.and_then(|g| u8::try_from(g).ok()),
                },
            )
        })
        .filter(|(d, _)| *d <= s.max_km)
        .map(|(_, t)| t)
        .collect();
    out.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km).then_with(|| a.team_code.cmp(&b.team_code)));
    Ok(out)
}
