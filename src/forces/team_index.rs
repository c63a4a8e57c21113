//! An in-process index for nearest teams: every approved team's place, and per specialty its
//! available members with their insurance periods, so that "which qualified teams are within 50 km"
//! is answered from memory instead of joining members, skills and insurance per request.
//!
//! The database stays the truth, and the index is never stale: it is kept by the change feed
//! (`crate::change_feed`, topic `forces`, key = team id). Triggers (migration 0021) log every
//! write to `teams`, `team_specialties`, `members`, `member_skills` and `member_insurance` with the
//! team it concerns, in the writing transaction, whatever code path writes. A request first asks
//! the database which teams changed since the index's snapshot (one indexed read); when some did,
//! it re-reads just those teams in a new snapshot and answers from the index with them replaced
//! (up to `change_feed::SYNC_LIMIT` teams; more, and it answers with
//! [`super::nearest::qualified_teams_near`], the SQL path, while a full rebuild runs in the
//! background). So an instance that did not make a write, or another process on the same
//! database, answers exactly as the database does right after the commit. Answers are identical to
//! the SQL path's (same filters, same distance, same order; tested on both databases).
//!
//! Re-read teams live beside the full build (`TeamSet::changed`, shadowing the base's copy), so a
//! change costs a copy of that small map, never of the 50,000 teams; when it grows past
//! [`REBUILD_AFTER`] teams a full rebuild starts in the background.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;

use super::members::local_day;
use super::nearest::{NearTeam, Nearby, Search, qualified_teams_near};
use crate::change_feed::{Feed, Indexed, Snapshot, Source, Topic};
use crate::db::Db;
use crate::freshness::Generations;
use crate::geodesy::{BoundingBox, bounding_box, distance_km};
use crate::with_tx;

/// Re-read teams kept beside the base before a full rebuild is started.
const REBUILD_AFTER: usize = 4_000;

/// One approved team.
#[derive(Debug, Clone)]
struct Team {
    id: i64,
    code: String,
    name: String,
    region_code: String,
    lon: f64,
    lat: f64,
}

/// An available member holding a specialty: the person (ID-number blind index, else the member
/// id, as the SQL path counts them) and the periods of their policies.
#[derive(Debug, Clone)]
struct Qualified {
    person: Arc<str>,
    cover: Vec<(NaiveDate, NaiveDate)>,
}

/// A team's members holding one specialty, and its grade in it.
#[derive(Debug, Default, Clone)]
struct TeamSkill {
    grade: Option<u8>,
    members: Vec<Qualified>,
}

/// One approved team with its qualified members per specialty.
#[derive(Debug, Clone)]
struct TeamState {
    team: Team,
    skills: HashMap<String, TeamSkill>,
}

/// The full build.
#[derive(Debug, Default)]
struct Base {
    teams: Vec<Team>,
    /// Specialty code → the teams holding it.
    skills: HashMap<String, SkillTeams>,
}

/// The teams holding one specialty, with their qualified members, in the two orders a search
/// reads them in: a jurisdiction is one slice by region code, a search box one band of latitudes;
/// a search walks whichever of the two is shorter.
#[derive(Debug, Default)]
struct SkillTeams {
    /// (team position, its members holding the specialty), sorted by the team's region code.
    by_region: Vec<(u32, TeamSkill)>,
    /// Positions in `by_region`, sorted by the team's latitude.
    by_lat: Vec<u32>,
}

/// The indexed teams as of one committed state.
#[derive(Debug, Default)]
pub struct TeamSet {
    base: Arc<Base>,
    /// Teams re-read since the base was built, by id (they shadow the base's copy): their state,
    /// or `None` when no longer approved (or deleted).
    changed: Arc<HashMap<i64, Option<Arc<TeamState>>>>,
}

/// The nearest-teams index of one instance (in `AppState`); cheap to clone.
#[derive(Debug, Clone)]
pub struct TeamIndex {
    feed: Feed<TeamSet>,
}

impl Default for TeamIndex {
    fn default() -> Self {
        TeamIndex::new(true)
    }
}

impl TeamIndex {
    /// An index (`enabled`), or one that always answers from the database.
    pub fn new(enabled: bool) -> TeamIndex {
        TeamIndex { feed: Feed::new(enabled) }
    }

    /// [`qualified_teams_near`], from the index when it can be brought to the committed state
    /// cheaply, and where the answer came from. `fresh`: the request's freshness check, when it
    /// made one (see [`Feed::fresh`]).
    pub async fn near(
        &self,
        db: &Db,
        fresh: Option<Generations>,
        bounds: (&str, &str),
        s: &Search,
    ) -> Result<(Nearby, Source), sqlx::Error> {
        if let Some(set) = self.feed.fresh(db, fresh.map(|g| g.of(Topic::Forces))).await? {
            return Ok((set.search(bounds, s), Source::Index));
        }
        Ok((qualified_teams_near(db, bounds, s).await?, Source::Database))
    }

    /// The index at the committed state (after re-reading any teams changed since it was built),
    /// or `None` (the caller asks the database; a rebuild starts in the background when needed).
    /// For callers that ask many questions at once (an event's resource plan).
    pub async fn current(&self, db: &Db) -> Result<Option<Current>, sqlx::Error> {
        Ok(self.feed.fresh(db, None).await?.map(Current))
    }

    /// Builds the index now and waits for it (benchmarks and tests; the service builds it in the
    /// background on first use).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        self.feed.rebuild(db).await
    }
}

type TeamRow = (i64, String, String, String, f64, f64);
type MemberRow = (i64, i64, String, String);
type CoverRow = (i64, NaiveDate, NaiveDate);
type GradeRow = (i64, String, Option<i64>);

const TEAMS: &str =
    "SELECT t.id, t.code, t.name, t.region_code, t.lon, t.lat FROM teams t WHERE t.filing_status = 'approved'";
const MEMBERS: &str = "SELECT m.team_id, m.id, COALESCE(m.id_index, CAST(m.id AS TEXT)), ms.specialty
    FROM members m JOIN member_skills ms ON ms.member_id = m.id JOIN teams t ON t.id = m.team_id
    WHERE m.status = 'available' AND t.filing_status = 'approved'";
const COVERS: &str = "SELECT i.member_id, i.start_date, i.end_date
    FROM member_insurance i JOIN members m ON m.id = i.member_id JOIN teams t ON t.id = m.team_id
    WHERE m.status = 'available' AND t.filing_status = 'approved'";
const GRADES: &str = "SELECT ts.team_id, ts.specialty, ts.grade
    FROM team_specialties ts JOIN teams t ON t.id = ts.team_id WHERE t.filing_status = 'approved'";

/// `sql` limited to the teams `keys` (all teams when `None`), through `snap`.
async fn fetch<R>(snap: &mut Snapshot, sql: &str, keys: Option<&[i64]>) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    let sql = match keys {
        None => sql.to_string(),
        Some(keys) => {
            let list = (1..=keys.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            format!("{sql} AND t.id IN ({list})")
        }
    };
    let keys = keys.unwrap_or_default();
    with_tx!(snap.tx(), |c| {
        let mut q = sqlx::query_as::<_, R>(&sql);
        for k in keys {
            q = q.bind(*k);
        }
        q.fetch_all(c).await
    })
}

/// The approved teams among `keys` (every approved team when `None`) as read through `snap`.
async fn load(snap: &mut Snapshot, keys: Option<&[i64]>) -> Result<Vec<TeamState>, sqlx::Error> {
    let teams: Vec<TeamRow> = fetch(snap, TEAMS, keys).await?;
    let members: Vec<MemberRow> = fetch(snap, MEMBERS, keys).await?;
    let covers: Vec<CoverRow> = fetch(snap, COVERS, keys).await?;
    let grades: Vec<GradeRow> = fetch(snap, GRADES, keys).await?;
    let mut states: Vec<TeamState> = Vec::with_capacity(teams.len());
    let mut pos: HashMap<i64, usize> = HashMap::with_capacity(teams.len());
    for (id, code, name, region_code, lon, lat) in teams {
        pos.insert(id, states.len());
        states.push(TeamState { team: Team { id, code, name, region_code, lon, lat }, skills: HashMap::new() });
    }
    let mut cover: HashMap<i64, Vec<(NaiveDate, NaiveDate)>> = HashMap::new();
    for (member, from, to) in covers {
        cover.entry(member).or_default().push((from, to));
    }
    // One shared string per person (a member holds several skills).
    let mut people: HashMap<String, Arc<str>> = HashMap::new();
    for (team, member, person, specialty) in members {
        let (Some(&t), Some(c)) = (pos.get(&team), cover.get(&member)) else { continue };
        let person = people.entry(person).or_insert_with_key(|p| Arc::from(p.as_str())).clone();
        states[t].skills.entry(specialty).or_default().members.push(Qualified { person, cover: c.clone() });
    }
    for (team, specialty, grade) in grades {
        if let (Some(&t), Some(g)) = (pos.get(&team), grade)
            && let Some(skill) = states[t].skills.get_mut(&specialty)
        {
            skill.grade = u8::try_from(g).ok();
        }
    }
    Ok(states)
}

impl Indexed for TeamSet {
    const TOPIC: Topic = Topic::Forces;
    const WHAT: &'static str = "nearest teams";

    async fn build(snap: &mut Snapshot) -> Result<TeamSet, sqlx::Error> {
        Ok(TeamSet::from_states(load(snap, None).await?))
    }

    async fn reload(&self, snap: &mut Snapshot, keys: &[i64]) -> Result<TeamSet, sqlx::Error> {
        let mut fresh: HashMap<i64, TeamState> =
            load(snap, Some(keys)).await?.into_iter().map(|s| (s.team.id, s)).collect();
        let mut changed = (*self.changed).clone();
        for k in keys {
            changed.insert(*k, fresh.remove(k).map(Arc::new));
        }
        Ok(TeamSet { base: self.base.clone(), changed: Arc::new(changed) })
    }

    fn wants_rebuild(&self) -> bool {
        self.changed.len() > REBUILD_AFTER
    }
}

impl TeamSet {
    /// A full build from the approved teams' states.
    fn from_states(states: Vec<TeamState>) -> TeamSet {
        let mut base = Base { teams: Vec::with_capacity(states.len()), ..Base::default() };
        for (i, state) in states.into_iter().enumerate() {
            base.teams.push(state.team);
            for (specialty, skill) in state.skills {
                base.skills.entry(specialty).or_default().by_region.push((i as u32, skill));
            }
        }
        let teams = &base.teams;
        for st in base.skills.values_mut() {
            st.by_region.sort_by(|a, b| teams[a.0 as usize].region_code.cmp(&teams[b.0 as usize].region_code));
            let lat = |p: &u32| teams[st.by_region[*p as usize].0 as usize].lat;
            let mut by_lat: Vec<u32> = (0..st.by_region.len() as u32).collect();
            by_lat.sort_by(|a, b| lat(a).total_cmp(&lat(b)));
            st.by_lat = by_lat;
        }
        TeamSet { base: Arc::new(base), changed: Arc::default() }
    }
}

/// The index at a committed state that was current when it was handed out (see
/// [`TeamIndex::current`]).
#[derive(Debug, Clone)]
pub struct Current(Arc<TeamSet>);

impl Current {
    /// [`qualified_teams_near`] with `min_members` 1 on the indexed state, each team with its
    /// exact distance (km, before rounding), nearest first (ties by code).
    pub fn near_exact(&self, bounds: (&str, &str), s: &Search) -> Vec<(f64, NearTeam)> {
        self.0.found(bounds, s).into_iter().map(|(d, t, _)| (d, t)).collect()
    }
}

/// What one search asks of every team.
struct Ask<'a> {
    bounds: (&'a str, &'a str),
    point: (f64, f64),
    bb: BoundingBox,
    max_km: f64,
    day: NaiveDate,
    min: usize,
}

impl Ask<'_> {
    /// The team as an answer line with its distance and qualified people, when it qualifies.
    fn judge<'s>(&self, t: &Team, skill: &'s TeamSkill) -> Option<(f64, NearTeam, Vec<&'s str>)> {
        if t.lat < self.bb.lat_min
            || t.lat > self.bb.lat_max
            || t.lon < self.bb.lon_min
            || t.lon > self.bb.lon_max
            || t.region_code.as_str() < self.bounds.0
            || t.region_code.as_str() > self.bounds.1
        {
            return None;
        }
        let day = self.day;
        let people: Vec<&str> = skill
            .members
            .iter()
            .filter(|m| m.cover.iter().any(|(from, to)| *from <= day && day <= *to))
            .map(|m| &*m.person)
            .collect();
        if people.is_empty() || people.len() < self.min {
            return None;
        }
        let d = distance_km(self.point, (t.lon, t.lat));
        if d > self.max_km {
            return None;
        }
        let team = NearTeam {
            team_code: t.code.clone(),
            name: t.name.clone(),
            region_code: t.region_code.clone(),
            distance_km: (d * 100.0).round() / 100.0,
            qualified_members: people.len() as i64,
            grade: skill.grade,
        };
        Some((d, team, people))
    }
}

impl TeamSet {
    /// The same answer as [`qualified_teams_near`] on the state the index reflects.
    fn search(&self, bounds: (&str, &str), s: &Search) -> Nearby {
        let found = self.found(bounds, s);
        let people = found.iter().flat_map(|(_, _, p)| p.iter()).collect::<HashSet<_>>().len() as i64;
        Nearby { teams: found.into_iter().map(|(_, t, _)| t).collect(), people }
    }

    /// The teams of [`TeamSet::search`] with their exact distances and qualified people.
    fn found<'s>(&'s self, bounds: (&str, &str), s: &Search) -> Vec<(f64, NearTeam, Vec<&'s str>)> {
        let code = s.specialty.code();
        let (lon, lat) = s.point;
        let bb = bounding_box(lon, lat, s.max_km);
        let ask = Ask {
            bounds,
            point: s.point,
            bb,
            max_km: s.max_km,
            day: local_day(s.at),
            min: s.min_members.max(1) as usize,
        };
        let mut found = Vec::new();
        let base = &self.base;
        if let Some(st) = base.skills.get(code) {
            let team = |e: &(u32, TeamSkill)| &base.teams[e.0 as usize];
            let from = st.by_region.partition_point(|e| team(e).region_code.as_str() < bounds.0);
            let to = st.by_region.partition_point(|e| team(e).region_code.as_str() <= bounds.1).max(from);
            let lat = |p: &u32| team(&st.by_region[*p as usize]).lat;
            let band_from = st.by_lat.partition_point(|p| lat(p) < bb.lat_min);
            let band_to = st.by_lat.partition_point(|p| lat(p) <= bb.lat_max).max(band_from);
            let mut visit = |e: &'s (u32, TeamSkill)| {
                let t = team(e);
                if !self.changed.is_empty() && self.changed.contains_key(&t.id) {
                    return;
                }
                if let Some(hit) = ask.judge(t, &e.1) {
                    found.push(hit);
                }
            };
            if to - from <= band_to - band_from {
                st.by_region[from..to].iter().for_each(&mut visit);
            } else {
                st.by_lat[band_from..band_to].iter().for_each(|p| visit(&st.by_region[*p as usize]));
            }
        }
        for state in self.changed.values().flatten() {
            if let Some(skill) = state.skills.get(code)
                && let Some(hit) = ask.judge(&state.team, skill)
            {
                found.push(hit);
            }
        }
        found.sort_by(|a, b| {
            a.1.distance_km.total_cmp(&b.1.distance_km).then_with(|| a.1.team_code.cmp(&b.1.team_code))
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use crate::vocab::Specialty;

    /// Every team checked one by one: what the search must find, whichever list it walks.
    fn brute_force(states: &[TeamState], bounds: (&str, &str), s: &Search) -> Vec<(String, i64)> {
        let (lon, lat) = s.point;
        let ask = Ask {
            bounds,
            point: s.point,
            bb: bounding_box(lon, lat, s.max_km),
            max_km: s.max_km,
            day: local_day(s.at),
            min: s.min_members.max(1) as usize,
        };
        let mut found: Vec<(f64, NearTeam)> = states
            .iter()
            .filter_map(|st| st.skills.get(s.specialty.code()).and_then(|k| ask.judge(&st.team, k)))
            .map(|(d, t, _)| (d, t))
            .collect();
        found.sort_by(|a, b| {
            a.1.distance_km.total_cmp(&b.1.distance_km).then_with(|| a.1.team_code.cmp(&b.1.team_code))
        });
        found.into_iter().map(|(_, t)| (t.team_code, t.qualified_members)).collect()
    }

    #[test]
    fn wide_and_narrow_jurisdictions_find_what_checking_every_team_finds() {
        let mut seed = 987654321u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let specialties = [Specialty::ALL[0], Specialty::ALL[1], Specialty::ALL[2]];
        // 4,000 teams over ~600 km in 30 townships of 3 banners, members insured or not.
        let make = |rand: &mut dyn FnMut(u64) -> u64| -> Vec<TeamState> {
            (0..4000)
                .map(|i| {
                    let region = format!("1501{:02}{:03}000", rand(3), 100 + rand(10));
                    let (lon, lat) = (112.0 + rand(6000) as f64 / 1000.0, 42.0 + rand(5000) as f64 / 1000.0);
                    let mut skills = HashMap::new();
                    for sp in specialties {
                        if rand(3) == 0 {
                            continue;
                        }
                        let members = (0..rand(5))
                            .map(|m| {
                                let from = day - chrono::Days::new(rand(400));
                                let to = from + chrono::Days::new(rand(400));
                                Qualified {
                                    person: Arc::from(format!("p{}", (i * 7 + m) % 9000)),
                                    cover: vec![(from, to)],
                                }
                            })
                            .collect();
                        skills.insert(sp.code().to_string(), TeamSkill { grade: Some(1), members });
                    }
                    let team = Team {
                        id: i as i64,
                        code: format!("T{i:05}"),
                        name: format!("队{i}"),
                        region_code: region,
                        lon,
                        lat,
                    };
                    TeamState { team, skills }
                })
                .collect()
        };
        let states = make(&mut rand);
        let set = TeamSet::from_states(states.clone());
        let at = Timestamp(chrono::DateTime::parse_from_rfc3339("2026-11-27T04:00:00Z").unwrap().to_utc());
        for k in 0..120 {
            let point = (112.0 + rand(6000) as f64 / 1000.0, 42.0 + rand(5000) as f64 / 1000.0);
            let s = Search {
                specialty: specialties[k % 3],
                min_members: 1 + rand(3) as i64,
                point,
                max_km: [10.0, 50.0, 300.0][k % 3],
                at,
            };
            let township = format!("1501{:02}{:03}000", rand(3), 100 + rand(10));
            let banner = format!("1501{:02}000000", rand(3));
            let bounds: [(String, String); 3] = [
                ("000000000000".into(), "999999999999".into()),
                (format!("{}000000", &banner[..6]), format!("{}999999", &banner[..6])),
                (township.clone(), township),
            ];
            for (lo, hi) in &bounds {
                let got: Vec<(String, i64)> =
                    set.search((lo, hi), &s).teams.into_iter().map(|t| (t.team_code, t.qualified_members)).collect();
                assert_eq!(got, brute_force(&states, (lo, hi), &s), "{:?} {lo}..{hi}", s.point);
            }
        }
    }
}
