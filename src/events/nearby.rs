//! Batched nearest searches for a resource plan: every item of a level in one query, every
//! specialty in one query per radius, instead of one nearest search per requirement (the plan of
//! a level with 10 items and 5 specialties ran 20–40 queries).
//!
//! The answers are exactly those of the per-requirement searches
//! ([`crate::supplies::nearest::search`] and [`crate::forces::nearest::qualified_teams_near`]):
//! one query fetches candidates within the widest radius any requirement of the round needs, and
//! each requirement then replays its own radius progression in memory over that superset (a
//! depot or team within radius `r` of the point is inside the bounding box of every radius
//! `R >= r`). The test `events_nearby::batched_plan_equals_the_per_requirement_searches`
//! compares them on a generated township set.

use std::collections::HashMap;

use crate::db::Db;
use crate::forces::members::local_day;
use crate::forces::nearest::{NearTeam, Search};
use crate::forces::team_index::{Current, TeamIndex};
use crate::geodesy::{WHOLE_EARTH_KM, bounding_box, distance_km};
use crate::supplies::nearest::{Allocation, Nearest};
use crate::time::Timestamp;
use crate::vocab::Specialty;
use crate::with_db;

/// First radius of a nearest-supplies search (as in `supplies::nearest`).
const FIRST_RADIUS_KM: f64 = 25.0;
/// Most agreement depots listed as fallback (as in `supplies::nearest`).
const MAX_FALLBACK: usize = 50;

/// One item to allocate.
#[derive(Debug, Clone)]
pub struct SupplyAsk {
    /// Item code (7 digits).
    pub item: String,
    /// Units needed (positive).
    pub quantity: i64,
    /// Only depots within this distance (km); None: anywhere.
    pub max_km: Option<f64>,
}

/// A depot's unexpired stock of one item in one reserve mode.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Candidate {
    item_code: String,
    id: i64,
    code: String,
    name: String,
    region_code: String,
    lon: f64,
    lat: f64,
    reserve_mode: String,
    qty: i64,
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

async fn candidates(
    db: &Db,
    items: &[&str],
    point: (f64, f64),
    radius: f64,
    bounds: (&str, &str),
    day: chrono::NaiveDate,
) -> Result<Vec<Candidate>, sqlx::Error> {
    // The per-item query of `supplies::nearest` with the item list in one IN (…): the CROSS JOIN
    // keeps SQLite's order (depots in the box, then each depot's batches through the
    // (depot_id, item_code, batch) unique index).
    let sql = format!(
        "SELECT b.item_code, d.id, d.code, d.name, d.region_code, d.lon, d.lat, b.reserve_mode, CAST(SUM(b.quantity) AS BIGINT) AS qty
        FROM depots d CROSS JOIN stock_batches b
        WHERE d.lat >= $1 AND d.lat <= $2 AND d.lon >= $3 AND d.lon <= $4
          AND d.region_code >= $5 AND d.region_code <= $6
          AND b.depot_id = d.id AND b.item_code IN ({}) AND b.quantity > 0
          AND b.reserve_mode IN ('physical', 'agreement')
          AND (b.expiry_date IS NULL OR b.expiry_date >= ${})
        GROUP BY b.item_code, d.id, d.code, d.name, d.region_code, d.lon, d.lat, b.reserve_mode",
        placeholders(7, items.len()),
        7 + items.len()
    );
    let bbox = bounding_box(point.0, point.1, radius);
    with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, Candidate>(&sql)
            .bind(bbox.lat_min)
            .bind(bbox.lat_max)
            .bind(bbox.lon_min)
            .bind(bbox.lon_max)
            .bind(bounds.0)
            .bind(bounds.1);
        for i in items {
            q = q.bind(*i);
        }
        q.bind(day).fetch_all(p).await
    })
}

fn allocate(list: &[(f64, &Candidate)], need: i64, limit: usize) -> Vec<Allocation> {
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

/// The answer for one item from its candidates within `radius` (the final radius of its search).
fn answer(ask: &SupplyAsk, found: &[(f64, Candidate)], radius: f64) -> Nearest {
    let sorted = |mode: &str| {
        let mut v: Vec<(f64, &Candidate)> =
            found.iter().filter(|(d, c)| *d <= radius && c.reserve_mode == mode).map(|(d, c)| (*d, c)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.code.cmp(&b.1.code)));
        v
    };
    let allocations = allocate(&sorted("physical"), ask.quantity, usize::MAX);
    let allocated: i64 = allocations.iter().map(|a| a.take).sum();
    let shortfall = ask.quantity - allocated;
    let agreement = if shortfall > 0 { allocate(&sorted("agreement"), shortfall, MAX_FALLBACK) } else { Vec::new() };
    Nearest {
        item: ask.item.clone(),
        item_name: String::new(),
        unit: String::new(),
        requested: ask.quantity,
        allocated,
        shortfall,
        allocations,
        agreement,
        searched_km: radius,
    }
}

/// Answers every ask as `supplies::nearest::search` answers it alone (same allocations,
/// agreement fallback and shortfall), with one query per round. A round queries the widest
/// radius its asks need, never less than `floor_km` (the caller's guess of the radius that
/// settles them, e.g. the plan's distance; the next round doubles it), and each ask replays its
/// 25 km-doubling progression inside it.
pub async fn supplies(
    db: &Db,
    point: (f64, f64),
    asks: &[SupplyAsk],
    bounds: (&str, &str),
    day: chrono::NaiveDate,
    floor_km: f64,
) -> Result<Vec<Nearest>, sqlx::Error> {
    let cap = |a: &SupplyAsk| a.max_km.unwrap_or(WHOLE_EARTH_KM).min(WHOLE_EARTH_KM);
    let mut radius: Vec<f64> = asks.iter().map(|a| FIRST_RADIUS_KM.min(cap(a))).collect();
    let mut out: Vec<Option<Nearest>> = asks.iter().map(|_| None).collect();
    let mut floor = floor_km;
    loop {
        let active: Vec<usize> = (0..asks.len()).filter(|&i| out[i].is_none()).collect();
        if active.is_empty() {
            break;
        }
        let reach = active.iter().map(|&i| cap(&asks[i]).min(radius[i].max(floor))).fold(0.0, f64::max);
        let mut items: Vec<&str> = active.iter().map(|&i| asks[i].item.as_str()).collect();
        items.sort_unstable();
        items.dedup();
        let mut by_item: HashMap<String, Vec<(f64, Candidate)>> = HashMap::new();
        for c in candidates(db, &items, point, reach, bounds, day).await? {
            let d = distance_km(point, (c.lon, c.lat));
            by_item.entry(c.item_code.clone()).or_default().push((d, c));
        }
        let none = Vec::new();
        for i in active {
            let found = by_item.get(&asks[i].item).unwrap_or(&none);
            // The per-item loop, as long as its radius stays inside what was fetched.
            while radius[i] <= reach {
                let r = radius[i];
                let physical: i64 =
                    found.iter().filter(|(d, c)| *d <= r && c.reserve_mode == "physical").map(|(_, c)| c.qty).sum();
                if physical >= asks[i].quantity || r >= cap(&asks[i]) {
                    out[i] = Some(answer(&asks[i], found, r));
                    break;
                }
                radius[i] = (r * 2.0).min(cap(&asks[i]));
            }
        }
        floor = reach * 2.0;
    }
    Ok(out.into_iter().flatten().collect())
}

/// Approved teams within `max_km` of `point` having at least one member who is available,
/// holds the specialty and is insured on the day of `at`, for each of `specialties` in one
/// query: per specialty, the teams as `qualified_teams_near` lists them with `min_members` 1
/// (nearest first, ties by code), each with its exact distance so that a caller can replay a
/// smaller radius (`d <= r`).
pub async fn teams(
    db: &Db,
    bounds: (&str, &str),
    specialties: &[Specialty],
    point: (f64, f64),
    max_km: f64,
    at: Timestamp,
) -> Result<HashMap<Specialty, Vec<(f64, NearTeam)>>, sqlx::Error> {
    let mut out: HashMap<Specialty, Vec<(f64, NearTeam)>> = HashMap::new();
    if specialties.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT ms.specialty, t.code, t.name, t.region_code, t.lon, t.lat, ts.grade
        FROM teams t
        JOIN members m ON m.team_id = t.id AND m.status = 'available'
        JOIN member_skills ms ON ms.member_id = m.id AND ms.specialty IN ({})
        LEFT JOIN team_specialties ts ON ts.team_id = t.id AND ts.specialty = ms.specialty
        WHERE t.filing_status = 'approved' AND t.region_code >= $1 AND t.region_code <= $2
          AND t.lat >= $3 AND t.lat <= $4 AND t.lon >= $5 AND t.lon <= $6
          AND EXISTS (SELECT 1 FROM member_insurance i WHERE i.member_id = m.id AND i.start_date <= $7 AND i.end_date >= $7)
        ORDER BY ms.specialty, t.code",
        placeholders(8, specialties.len())
    );
    type Row = (String, String, String, String, f64, f64, Option<i64>);
    let bb = bounding_box(point.0, point.1, max_km);
    let day = local_day(at);
    let rows: Vec<Row> = with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, Row>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(bb.lat_min)
            .bind(bb.lat_max)
            .bind(bb.lon_min)
            .bind(bb.lon_max)
            .bind(day);
        for s in specialties {
            q = q.bind(s.code());
        }
        q.fetch_all(p).await
    })?;
    for (specialty, team_code, name, region_code, tlon, tlat, grade) in rows {
        let Some(specialty) = Specialty::parse(&specialty) else { continue };
        let list = out.entry(specialty).or_default();
        // One row per qualified member: rows of a team are adjacent (ordered by code).
        if let Some(last) = list.last_mut()
            && last.1.team_code == team_code
        {
            last.1.qualified_members += 1;
            continue;
        }
        let d = distance_km(point, (tlon, tlat));
        list.push((
            d,
            NearTeam {
                team_code,
                name,
                region_code,
                distance_km: (d * 100.0).round() / 100.0,
                qualified_members: 1,
                grade: grade.and_then(|g| u8::try_from(g).ok()),
            },
        ));
    }
    for list in out.values_mut() {
        list.retain(|(d, _)| *d <= max_km);
        list.sort_by(|a, b| {
            a.1.distance_km.total_cmp(&b.1.distance_km).then_with(|| a.1.team_code.cmp(&b.1.team_code))
        });
    }
    Ok(out)
}

/// The teams of one specialty within `r` (`r` no more than the radius fetched), in order.
pub fn within(list: &[(f64, NearTeam)], r: f64) -> impl Iterator<Item = &NearTeam> {
    list.iter().filter(move |(d, _)| *d <= r).map(|(_, t)| t)
}

/// [`teams`] answered from the in-process nearest-teams index (the same answer on the same
/// committed state: see `forces::team_index`).
fn teams_from_index(
    index: &Current,
    specialties: &[Specialty],
    point: (f64, f64),
    max_km: f64,
    at: Timestamp,
) -> HashMap<Specialty, Vec<(f64, NearTeam)>> {
    specialties
        .iter()
        .map(|&specialty| {
            let s = Search { specialty, min_members: 1, point, max_km, at };
            (specialty, index.near_exact(ALL_REGIONS, &s))
        })
        .collect()
}

/// Walks each force requirement's radii (see [`radii`]) the way the per-requirement loop does:
/// at each radius, the teams within it nearest first, handed to `visit(k, radius, team)` while
/// requirement `k` still wants people (`visit` answers whether it still does; `wanting` starts
/// it). One round per radius, for every specialty still short, at the widest radius the round
/// needs: answered from the in-process nearest-teams index when it reflects the committed state
/// (checked once per walk), otherwise by one query.
pub async fn walk_teams(
    db: &Db,
    index: &TeamIndex,
    point: (f64, f64),
    at: Timestamp,
    needs: &[(Specialty, f64)],
    mut wanting: Vec<bool>,
    mut visit: impl FnMut(usize, f64, &NearTeam) -> bool,
) -> Result<(), sqlx::Error> {
    let plan: Vec<Vec<f64>> = needs.iter().map(|(_, km)| radii(*km)).collect();
    let mut next = vec![0usize; needs.len()];
    let memory = if wanting.iter().any(|w| *w) { index.current(db).await? } else { None };
    loop {
        let active: Vec<usize> = (0..needs.len()).filter(|&k| wanting[k] && next[k] < plan[k].len()).collect();
        if active.is_empty() {
            return Ok(());
        }
        let mut specialties: Vec<Specialty> = active.iter().map(|&k| needs[k].0).collect();
        specialties.sort_unstable();
        specialties.dedup();
        let reach = active.iter().map(|&k| plan[k][next[k]]).fold(0.0, f64::max);
        let found = match &memory {
            Some(m) => teams_from_index(m, &specialties, point, reach, at),
            None => teams(db, ALL_REGIONS, &specialties, point, reach, at).await?,
        };
        let none = Vec::new();
        for k in active {
            let list = found.get(&needs[k].0).unwrap_or(&none);
            while wanting[k] && next[k] < plan[k].len() && plan[k][next[k]] <= reach {
                let r = plan[k][next[k]];
                for t in within(list, r) {
                    if !wanting[k] {
                        break;
                    }
                    wanting[k] = visit(k, r, t);
                }
                next[k] += 1;
            }
        }
    }
}

/// Region-code bounds covering every region: the plan looks wherever the resources are.
pub const ALL_REGIONS: (&str, &str) = ("000000000000", "999999999999");
/// How far "beyond" looks for teams when those within the plan's distance fall short, km.
pub const BEYOND_KM: f64 = 500.0;

/// Radii a team search widens through: the plan's distance, then doubling up to [`BEYOND_KM`],
/// so that a shortfall looks only as far as it must (a 500 km circle holds a quarter of a
/// province's teams).
pub fn radii(within_km: f64) -> Vec<f64> {
    let mut out = vec![within_km];
    let mut r = within_km;
    while r < BEYOND_KM {
        r = (r * 2.0).min(BEYOND_KM);
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_searches_widen_by_doubling_up_to_the_limit() {
        assert_eq!(radii(50.0), vec![50.0, 100.0, 200.0, 400.0, 500.0]);
        assert_eq!(radii(600.0), vec![600.0]);
    }

    #[test]
    fn placeholders_number_from_the_first() {
        assert_eq!(placeholders(7, 3), "$7, $8, $9");
    }
}
