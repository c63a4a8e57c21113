//! An in-process index for nearest teams: every approved team's place, and per specialty its
//! available members with their insurance periods, so that "which qualified teams are within 50 km"
//! is answered from memory instead of joining members, skills and insurance per request.
//!
//! The database stays the truth, and the index is never stale: every write to the tables it is
//! built from is recorded in the writing transaction by a trigger (migration 0020: a counter row on
//! SQLite, a change log of transaction ids on PostgreSQL), whatever code path writes. The index is
//! built inside one read snapshot together with that snapshot's record; a request first asks the
//! database whether any change has been committed since (one indexed read) and uses the index only
//! when none has; otherwise it answers with [`super::nearest::qualified_teams_near`] (the SQL path)
//! and a rebuild starts in the background. So an instance that did not make a write, or another
//! process on the same database, answers exactly as the database does right after the commit.
//! Answers are identical to the SQL path's (same filters, same distance, same order; tested on both
//! databases with random questions).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::members::local_day;
use super::nearest::{NearTeam, Nearby, Search, qualified_teams_near};
use crate::db::Db;
use crate::geodesy::{bounding_box, distance_km};

/// An index older than this is rebuilt even without changes, so the PostgreSQL change log can be
/// pruned of rows older than twice this.
const MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// What the index was built from: the committed state it reflects.
#[derive(Debug, Clone, PartialEq)]
enum Stamp {
    /// SQLite: the `forces` counter of `cache_epochs`.
    Counter(i64),
    /// PostgreSQL: the build transaction's snapshot (`pg_current_snapshot()` as text).
    Snapshot(String),
}

/// Where an answer came from (for the `X-Nearest-Source` header and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The in-process index (no change committed since it was built).
    Index,
    /// The database (the index is off, not built yet, or behind a committed change).
    Database,
}

impl Source {
    /// `index` or `database`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Index => "index",
            Source::Database => "database",
        }
    }
}

/// One approved team.
#[derive(Debug)]
struct Team {
    code: String,
    name: String,
    region_code: String,
    lon: f64,
    lat: f64,
}

/// An available member holding a specialty: the person (interned id-number index, else the
/// member id) and the periods of their policies.
#[derive(Debug)]
struct Qualified {
    person: u32,
    cover: Vec<(NaiveDate, NaiveDate)>,
}

/// A team's members holding one specialty, and its grade in it.
#[derive(Debug, Default)]
struct TeamSkill {
    grade: Option<u8>,
    members: Vec<Qualified>,
}

/// The index as of one committed state.
#[derive(Debug)]
struct Built {
    stamp: Stamp,
    at: Instant,
    teams: Vec<Team>,
    /// Team positions sorted by latitude (the search walks the box's band of latitudes).
    by_lat: Vec<u32>,
    /// Specialty code → team position → its qualified members.
    skills: HashMap<String, HashMap<u32, TeamSkill>>,
}

#[derive(Debug, Default)]
struct Inner {
    built: RwLock<Option<Arc<Built>>>,
    building: AtomicBool,
    last_start: RwLock<Option<(Instant, Duration)>>,
}

/// The nearest-teams index of one instance (in `AppState`); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TeamIndex {
    inner: Arc<Inner>,
    disabled: bool,
}

impl TeamIndex {
    /// An index (`enabled`), or one that always answers from the database.
    pub fn new(enabled: bool) -> TeamIndex {
        TeamIndex { inner: Arc::default(), disabled: !enabled }
    }

    /// [`qualified_teams_near`], from the index when it reflects the committed state, and where
    /// the answer came from.
    pub async fn near(&self, db: &Db, bounds: (&str, &str), s: &Search) -> Result<(Nearby, Source), sqlx::Error> {
        if !self.disabled {
            let built = self.inner.built.read().map(|b| b.clone()).unwrap_or(None);
            if let Some(b) = built
                && b.at.elapsed() < MAX_AGE
                && current(db, &b.stamp).await?
            {
                return Ok((b.search(bounds, s), Source::Index));
            }
            self.rebuild_in_background(db);
        }
        Ok((qualified_teams_near(db, bounds, s).await?, Source::Database))
    }

    /// The index as it is, when it reflects the committed state (one indexed read to check);
    /// otherwise `None` and a rebuild starts in the background (the caller asks the database).
    /// For callers that ask many questions at once (an event's resource plan).
    pub async fn current(&self, db: &Db) -> Result<Option<Current>, sqlx::Error> {
        if self.disabled {
            return Ok(None);
        }
        let built = self.inner.built.read().map(|b| b.clone()).unwrap_or(None);
        if let Some(b) = built
            && b.at.elapsed() < MAX_AGE
            && current(db, &b.stamp).await?
        {
            return Ok(Some(Current(b)));
        }
        self.rebuild_in_background(db);
        Ok(None)
    }

    /// Builds the index now and waits for it (benchmarks and tests; the service builds it in the
    /// background on first use).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        if self.disabled {
            return Ok(());
        }
        let b = build(db).await?;
        if let Ok(mut slot) = self.inner.built.write() {
            *slot = Some(Arc::new(b));
        }
        Ok(())
    }

    /// Starts a rebuild unless one is running or the last one started very recently (under a
    /// steady stream of writes the index would be stale on arrival: wait at least four times the
    /// last build's duration, and a second, between starts).
    fn rebuild_in_background(&self, db: &Db) {
        if let Ok(last) = self.inner.last_start.read()
            && let Some((started, took)) = *last
            && started.elapsed() < (took * 4).max(Duration::from_secs(1))
        {
            return;
        }
        if self.inner.building.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        let (inner, db) = (self.inner.clone(), db.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            match build(&db).await {
                Ok(b) => {
                    tracing::debug!(
                        teams = b.teams.len(),
                        ms = t.elapsed().as_millis() as u64,
                        "nearest-teams index built"
                    );
                    if let Ok(mut slot) = inner.built.write() {
                        *slot = Some(Arc::new(b));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "building the nearest-teams index failed; the database answers"),
            }
            if let Ok(mut last) = inner.last_start.write() {
                *last = Some((t, t.elapsed()));
            }
            inner.building.store(false, Ordering::Release);
        });
    }
}

/// Whether no change to the indexed tables has been committed since `stamp`.
async fn current(db: &Db, stamp: &Stamp) -> Result<bool, sqlx::Error> {
    match (db, stamp) {
        (Db::Sqlite(p), Stamp::Counter(n)) => {
            let now: Option<i64> =
                sqlx::query_scalar("SELECT epoch FROM cache_epochs WHERE name = 'forces'").fetch_optional(p).await?;
            Ok(now == Some(*n))
        }
        (Db::Postgres(p), Stamp::Snapshot(snap)) => {
            // A change committed after the snapshot was taken is not visible in it (it was still
            // running, or had not started); one committed before it is older than its xmin or
            // visible.
            let changed: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM cache_changes WHERE name = 'forces'
                   AND xid >= pg_snapshot_xmin(CAST($1 AS pg_snapshot))
                   AND NOT pg_visible_in_snapshot(xid, CAST($1 AS pg_snapshot)))",
            )
            .bind(snap)
            .fetch_one(p)
            .await?;
            Ok(!changed)
        }
        _ => Ok(false),
    }
}

type TeamRow = (i64, String, String, String, f64, f64);
type MemberRow = (i64, i64, String, String);
type CoverRow = (i64, NaiveDate, NaiveDate);
type GradeRow = (i64, String, Option<i64>);

const TEAMS: &str = "SELECT id, code, name, region_code, lon, lat FROM teams WHERE filing_status = 'approved'";
const MEMBERS: &str = "SELECT m.team_id, m.id, COALESCE(m.id_index, CAST(m.id AS TEXT)), ms.specialty
    FROM members m JOIN member_skills ms ON ms.member_id = m.id JOIN teams t ON t.id = m.team_id
    WHERE m.status = 'available' AND t.filing_status = 'approved'";
const COVERS: &str = "SELECT i.member_id, i.start_date, i.end_date
    FROM member_insurance i JOIN members m ON m.id = i.member_id JOIN teams t ON t.id = m.team_id
    WHERE m.status = 'available' AND t.filing_status = 'approved'";
const GRADES: &str = "SELECT team_id, specialty, grade FROM team_specialties";

/// Reads everything in one read-only snapshot, with the record of that snapshot.
async fn build(db: &Db) -> Result<Built, sqlx::Error> {
    let (stamp, teams, members, covers, grades): (Stamp, Vec<TeamRow>, Vec<MemberRow>, Vec<CoverRow>, Vec<GradeRow>) =
        match db {
            Db::Sqlite(p) => {
                // A deferred transaction: in WAL mode its first read fixes the snapshot that the
                // later reads see, and it takes no write lock.
                let mut tx = p.begin().await?;
                let n: i64 = sqlx::query_scalar("SELECT epoch FROM cache_epochs WHERE name = 'forces'")
                    .fetch_one(&mut *tx)
                    .await?;
                let t = sqlx::query_as(TEAMS).fetch_all(&mut *tx).await?;
                let m = sqlx::query_as(MEMBERS).fetch_all(&mut *tx).await?;
                let c = sqlx::query_as(COVERS).fetch_all(&mut *tx).await?;
                let g = sqlx::query_as(GRADES).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                (Stamp::Counter(n), t, m, c, g)
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
                let snap: String =
                    sqlx::query_scalar("SELECT CAST(pg_current_snapshot() AS TEXT)").fetch_one(&mut *tx).await?;
                let t = sqlx::query_as(TEAMS).fetch_all(&mut *tx).await?;
                let m = sqlx::query_as(MEMBERS).fetch_all(&mut *tx).await?;
                let c = sqlx::query_as(COVERS).fetch_all(&mut *tx).await?;
                let g = sqlx::query_as(GRADES).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                // Rows older than any index still in use (indexes are rebuilt after MAX_AGE).
                sqlx::query("DELETE FROM cache_changes WHERE at < now() - make_interval(secs => $1)")
                    .bind((2 * MAX_AGE).as_secs_f64())
                    .execute(p)
                    .await?;
                (Stamp::Snapshot(snap), t, m, c, g)
            }
        };
    let mut built = Built { stamp, at: Instant::now(), teams: Vec::new(), by_lat: Vec::new(), skills: HashMap::new() };
    let mut pos: HashMap<i64, u32> = HashMap::with_capacity(teams.len());
    for (id, code, name, region_code, lon, lat) in teams {
        pos.insert(id, built.teams.len() as u32);
        built.teams.push(Team { code, name, region_code, lon, lat });
    }
    built.by_lat = (0..built.teams.len() as u32).collect();
    built.by_lat.sort_by(|a, b| built.teams[*a as usize].lat.total_cmp(&built.teams[*b as usize].lat));
    let mut cover: HashMap<i64, Vec<(NaiveDate, NaiveDate)>> = HashMap::new();
    for (member, from, to) in covers {
        cover.entry(member).or_default().push((from, to));
    }
    let mut people: HashMap<String, u32> = HashMap::new();
    for (team, member, person, specialty) in members {
        let (Some(&t), Some(c)) = (pos.get(&team), cover.get(&member)) else { continue };
        let next = people.len() as u32;
        let person = *people.entry(person).or_insert(next);
        let skill = built.skills.entry(specialty).or_default().entry(t).or_default();
        skill.members.push(Qualified { person, cover: c.clone() });
    }
    for (team, specialty, grade) in grades {
        if let (Some(t), Some(g)) = (pos.get(&team), grade)
            && let Some(skill) = built.skills.get_mut(&specialty).and_then(|m| m.get_mut(t))
        {
            skill.grade = u8::try_from(g).ok();
        }
    }
    Ok(built)
}

/// The index at a committed state that was current when it was handed out (see
/// [`TeamIndex::current`]).
#[derive(Debug, Clone)]
pub struct Current(Arc<Built>);

impl Current {
    /// [`qualified_teams_near`] with `min_members` 1 on the indexed state, each team with its
    /// exact distance (km, before rounding), nearest first (ties by code).
    pub fn near_exact(&self, bounds: (&str, &str), s: &Search) -> Vec<(f64, NearTeam)> {
        self.0.found(bounds, s).into_iter().map(|(d, t, _)| (d, t)).collect()
    }
}

impl Built {
    /// The same answer as [`qualified_teams_near`] on the state the index was built from.
    fn search(&self, bounds: (&str, &str), s: &Search) -> Nearby {
        let found = self.found(bounds, s);
        let people = found.iter().flat_map(|(_, _, p)| p.iter()).collect::<HashSet<_>>().len() as i64;
        Nearby { teams: found.into_iter().map(|(_, t, _)| t).collect(), people }
    }

    /// The teams of [`Built::search`] with their exact distances and qualified people.
    fn found(&self, bounds: (&str, &str), s: &Search) -> Vec<(f64, NearTeam, Vec<u32>)> {
        let Some(by_team) = self.skills.get(s.specialty.code()) else { return Vec::new() };
        let (lon, lat) = s.point;
        let bb = bounding_box(lon, lat, s.max_km);
        let day = local_day(s.at);
        let min = s.min_members.max(1);
        let first = self.by_lat.partition_point(|&i| self.teams[i as usize].lat < bb.lat_min);
        let mut found: Vec<(f64, NearTeam, Vec<u32>)> = Vec::new();
        for &i in &self.by_lat[first..] {
            let t = &self.teams[i as usize];
            if t.lat > bb.lat_max {
                break;
            }
            if t.lon < bb.lon_min
                || t.lon > bb.lon_max
                || t.region_code.as_str() < bounds.0
                || t.region_code.as_str() > bounds.1
            {
                continue;
            }
            let Some(skill) = by_team.get(&i) else { continue };
            let people: Vec<u32> = skill
                .members
                .iter()
                .filter(|m| m.cover.iter().any(|(from, to)| *from <= day && day <= *to))
                .map(|m| m.person)
                .collect();
            if people.is_empty() || (people.len() as i64) < min {
                continue;
            }
            let d = distance_km((lon, lat), (t.lon, t.lat));
            if d > s.max_km {
                continue;
            }
            let team = NearTeam {
                team_code: t.code.clone(),
                name: t.name.clone(),
                region_code: t.region_code.clone(),
                distance_km: (d * 100.0).round() / 100.0,
                qualified_members: people.len() as i64,
                grade: skill.grade,
            };
            found.push((d, team, people));
        }
        found.sort_by(|a, b| {
            a.1.distance_km.total_cmp(&b.1.distance_km).then_with(|| a.1.team_code.cmp(&b.1.team_code))
        });
        found
    }
}
