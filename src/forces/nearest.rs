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
    #[schemars(range(min = 1, max = 10000))]
    pub min_members: Option<i64>,
    /// Longitude of the point (WGS84).
    #[schemars(range(min = -180, max = 180))]
    pub lon: f64,
    /// Latitude of the point (WGS84).
    #[schemars(range(min = -90, max = 90))]
    pub lat: f64,
    /// Largest distance, km.
    #[schemars(range(max = 5000), extend("exclusiveMinimum" = 0))]
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

/// What [`qualified_teams_near`] found.
#[derive(Debug, Clone, Default)]
pub struct Nearby {
    /// Teams, nearest first (ties by code), each with its own qualified members.
    pub teams: Vec<NearTeam>,
    /// Distinct qualified people across those teams (one person in two teams counts once,
    /// matched through the ID-number blind index).
    pub people: i64,
}

/// Approved teams within `bounds` (a jurisdiction's region-code range) that have at least
/// `s.min_members` members who are `available` now, hold `s.specialty`, and hold a policy
/// covering the Asia/Shanghai day of `s.at`; within `s.max_km` of `s.point`; nearest first (ties
/// by code), with the distinct people across them. Member status is the current one (status
/// history is not kept); only insurance is judged at `s.at`. A team's own specialty list is not
/// required: its grade is shown when it has one.
pub async fn qualified_teams_near(db: &Db, bounds: (&str, &str), s: &Search) -> Result<Nearby, sqlx::Error> {
    // One row per qualified member (a person appears at most once per team); counted per team and
    // per person below. Teams are found through the location index: SQLite would otherwise pick
    // `teams_status (filing_status, region_code)` (every approved team in the jurisdiction, 40
    // times slower within 10 km), so the status and region tests are written as expressions no
    // index serves (`|| ''`, the same value on both databases), and there is no ORDER BY (it made
    // SQLite walk the teams in code order): rows are grouped per team in Rust.
    const SQL: &str = "SELECT t.code, t.name, t.region_code, t.lon, t.lat, ts.grade, COALESCE(m.id_index, CAST(m.id AS TEXT))
        FROM teams t
        JOIN members m ON m.team_id = t.id AND m.status = 'available'
        JOIN member_skills ms ON ms.member_id = m.id AND ms.specialty = $1
        LEFT JOIN team_specialties ts ON ts.team_id = t.id AND ts.specialty = $1
        WHERE t.lat >= $4 AND t.lat <= $5 AND t.lon >= $6 AND t.lon <= $7
          AND t.filing_status || '' = 'approved' AND t.region_code || '' >= $2 AND t.region_code || '' <= $3
          AND EXISTS (SELECT 1 FROM member_insurance i WHERE i.member_id = m.id AND i.start_date <= $8 AND i.end_date >= $8)";
    type Row = (String, String, String, f64, f64, Option<i64>, String);
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
        .fetch_all(p)
        .await)?;
    let mut teams: Vec<(f64, NearTeam, Vec<String>)> = Vec::new();
    let mut slot: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (team_code, name, region_code, tlon, tlat, grade, person) in rows {
        if let Some(&i) = slot.get(&team_code) {
            teams[i].1.qualified_members += 1;
            teams[i].2.push(person);
            continue;
        }
        let d = distance_km((lon, lat), (tlon, tlat));
        slot.insert(team_code.clone(), teams.len());
        let team = NearTeam {
            team_code,
            name,
            region_code,
            distance_km: (d * 100.0).round() / 100.0,
            qualified_members: 1,
            grade: grade.and_then(|g| u8::try_from(g).ok()),
        };
        teams.push((d, team, vec![person]));
    }
    teams.retain(|(d, t, _)| *d <= s.max_km && t.qualified_members >= min);
    teams.sort_by(|a, b| a.1.distance_km.total_cmp(&b.1.distance_km).then_with(|| a.1.team_code.cmp(&b.1.team_code)));
    let people = teams.iter().flat_map(|(_, _, p)| p.iter()).collect::<std::collections::HashSet<_>>().len() as i64;
    Ok(Nearby { teams: teams.into_iter().map(|(_, t, _)| t).collect(), people })
}
