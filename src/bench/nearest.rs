//! The nearest-supplies and nearest-teams benchmark (`cargo bench --bench nearest`): the province
//! of [`super::data`] generated into a fresh database, then the same questions asked of yingji
//! through HTTP and, on PostgreSQL with PostGIS installed, of hand-written PostGIS KNN SQL over
//! the same rows (GiST indexes, `<->` ordering), checking that every answer agrees.
//!
//! Questions are asked the way a banner's bureau asks them: a point up to ~20 km from a random
//! township, by a token whose jurisdiction is that township's banner (a token covers one banner at
//! most, so every answer is limited to that banner's subtree, in yingji and in the raw SQL alike).
//! Three kinds, `questions` each: nearest supplies with an open radius, nearest supplies with
//! `max_km=100`, and nearest teams (`max_km=50`, the smallest distance plans ask for).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::data::{self, Size};
use super::rows::Rng;
use crate::app::{self, Config};
use crate::audit::Actor;
use crate::auth::Role;
use crate::clock::{SharedClock, SystemClock};
use crate::db::Db;
use crate::regions::RegionCode;
use crate::time::{LOCAL_TZ, Timestamp};
use crate::with_db;

/// The three questions, in table order.
pub const KINDS: [&str; 3] = ["nearest supplies (open radius)", "nearest supplies (`max_km=100`)", "nearest teams"];

const SPECIALTIES: [&str; 5] = ["grassland_fire", "snow_rescue", "medical", "transport", "communications"];
const TEAMS_MAX_KM: f64 = 50.0;

/// One question, as yingji's query string and as the raw SQL's parameters.
#[derive(Debug, Clone)]
pub struct Question {
    /// 0, 1 or 2: index into [`KINDS`].
    pub kind: usize,
    /// Banner code of the asker's jurisdiction.
    pub banner: String,
    /// Point (lon, lat).
    pub point: (f64, f64),
    /// Item code (supplies) or specialty (teams).
    pub what: String,
    /// Units (supplies) or least members (teams).
    pub amount: i64,
    /// Largest distance, km (None: open).
    pub max_km: Option<f64>,
}

impl Question {
    fn path(&self) -> String {
        let (lon, lat) = self.point;
        match self.kind {
            2 => format!(
                "/api/v1/teams/nearest?specialty={}&min_members={}&lon={lon}&lat={lat}&max_km={}",
                self.what,
                self.amount,
                self.max_km.unwrap_or(TEAMS_MAX_KM)
            ),
            _ => {
                let mut p =
                    format!("/api/v1/supplies/nearest?item={}&quantity={}&lon={lon}&lat={lat}", self.what, self.amount);
                if let Some(km) = self.max_km {
                    p.push_str(&format!("&max_km={km}"));
                }
                p
            }
        }
    }

    fn bounds(&self) -> (String, String) {
        let p = &self.banner[..6];
        (format!("{p:0<12}"), format!("{p:9<12}"))
    }
}

/// An answer reduced to what must agree: for supplies the allocated and fallback depots with the
/// units taken, for teams the teams with their qualified members and the distinct people.
pub type Answer = Vec<(String, i64)>;

/// Timings of one kind of question, ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

fn timing(mut t: Vec<Duration>) -> Timing {
    t.sort();
    let pick = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    if t.is_empty() { Timing::default() } else { Timing { p50: pick(0.5), p99: pick(0.99) } }
}

/// What one backend measured.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// What was generated.
    pub counts: data::Counts,
    /// yingji through HTTP, per kind.
    pub yingji: [Timing; 3],
    /// The same questions asked of an instance with the indexes off (the SQL path), per kind.
    pub sql: [Timing; 3],
    /// Questions whose SQL-path answer equals the indexed instance's (should be all).
    pub sql_same: usize,
    /// Questions of each kind the in-process indexes answered (the rest: the database).
    pub from_index: [usize; 3],
    /// Raw PostGIS SQL per kind (PostgreSQL with PostGIS only).
    pub postgis: Option<[Timing; 3]>,
    /// Questions whose raw PostGIS answer differed from yingji's (should be 0).
    pub disagreements: usize,
    /// yingji's answers, per question (to compare backends).
    pub answers: Vec<Answer>,
}

/// The questions: `per_kind` of each kind, from random township points of the generated data.
pub async fn questions(db: &Db, per_kind: usize, seed: u64) -> anyhow::Result<Vec<Question>> {
    let items: Vec<String> =
        with_db!(db, |p| sqlx::query_scalar("SELECT code FROM supply_items ORDER BY code").fetch_all(p).await)?;
    let towns: Vec<(String, f64, f64)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT code, lon, lat FROM regions WHERE level = 'township' AND lon IS NOT NULL AND code LIKE '15%' ORDER BY code"
    )
    .fetch_all(p)
    .await
    })?;
    anyhow::ensure!(!towns.is_empty() && !items.is_empty(), "no generated data");
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(3 * per_kind);
    for kind in 0..3 {
        for _ in 0..per_kind {
            let (code, lon, lat) = &towns[rng.below(towns.len() as u64) as usize];
            let point = (lon + (rng.unit() - 0.5) * 0.5, lat + (rng.unit() - 0.5) * 0.36);
            let point = ((point.0 * 1e5).round() / 1e5, (point.1 * 1e5).round() / 1e5);
            let banner = format!("{}000000", &code[..6]);
            let q = match kind {
                2 => Question {
                    kind,
                    banner,
                    point,
                    what: SPECIALTIES[rng.below(5) as usize].to_string(),
                    amount: 1 + rng.below(5) as i64,
                    max_km: Some(TEAMS_MAX_KM),
                },
                _ => Question {
                    kind,
                    banner,
                    point,
                    what: items[rng.below(items.len() as u64) as usize].clone(),
                    amount: 1 + rng.below(2000) as i64,
                    max_km: (kind == 1).then_some(100.0),
                },
            };
            out.push(q);
        }
    }
    Ok(out)
}

fn reduce(kind: usize, v: &serde_json::Value) -> Answer {
    let pairs = |key: &str, name: &str, n: &str| -> Vec<(String, i64)> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| (format!("{key}:{}", x[name].as_str().unwrap_or("")), x[n].as_i64().unwrap_or(-1)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if kind == 2 {
        let mut a = pairs("items", "team_code", "qualified_members");
        a.push(("people".into(), v["qualified_people"].as_i64().unwrap_or(-1)));
        a
    } else {
        let mut a = pairs("allocations", "depot_code", "take");
        a.extend(pairs("agreement", "depot_code", "take"));
        a
    }
}

/// Generates the province at `scale` into `url` (an empty database), asks the questions through
/// HTTP and, where `postgis` is set and the database is PostgreSQL, by raw PostGIS SQL too.
pub async fn run(url: &str, scale: f64, per_kind: usize, postgis: bool) -> anyhow::Result<Run> {
    let mut config = Config::new(url.to_string());
    config.listen = "127.0.0.1:0".parse()?;
    config.scheduler = false;
    config.pii_key = Some(crate::personal::Cipher::generate_hex());
    let clock: SharedClock = Arc::new(SystemClock);
    let server = app::start(config.clone(), clock.clone()).await?;
    let db = server.state.db.clone();
    let now = Timestamp(clock.now());
    let started = Instant::now();
    let counts = data::generate(&db, Size::province(scale), now, 42).await?;
    with_db!(&db, |p| sqlx::query("ANALYZE").execute(p).await.map(|_| ()))?;
    eprintln!("generated {counts:?} in {:.1} s", started.elapsed().as_secs_f64());
    let qs = questions(&db, per_kind, 7).await?;

    let mut tokens: HashMap<String, String> = HashMap::new();
    for q in &qs {
        if tokens.contains_key(&q.banner) {
            continue;
        }
        let region = RegionCode::parse(&q.banner).map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = crate::auth::tokens::issue(
            &db,
            &Actor::cli(),
            now,
            &format!("bench-{}", q.banner),
            Role::Admin,
            &region,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        tokens.insert(q.banner.clone(), t.token);
    }
    // A second instance on the same database with the nearest indexes off: the SQL path.
    config.nearest_index = false;
    let plain = app::start(config, clock.clone()).await?;
    let client = reqwest::Client::new();
    let ask = |addr: std::net::SocketAddr, q: &Question| {
        let req = client.get(format!("http://{addr}{}", q.path())).bearer_auth(&tokens[&q.banner]);
        async move {
            let r = req.send().await?.error_for_status()?;
            let index = r.headers().get("x-nearest-source").is_some_and(|v| v == "index");
            let v: serde_json::Value = r.json().await?;
            anyhow::Ok((v, index))
        }
    };
    // Warm the pool and the caches of the database, and wait for the index to be built.
    for q in qs.iter().step_by(10) {
        ask(server.addr, q).await?;
    }
    let waiting = Instant::now();
    for kind in [0, 2] {
        let q = qs.iter().find(|q| q.kind == kind).ok_or_else(|| anyhow::anyhow!("no question of kind {kind}"))?;
        while !ask(server.addr, q).await?.1 && waiting.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("nearest indexes ready after {:.1} s", waiting.elapsed().as_secs_f64());
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut answers = Vec::with_capacity(qs.len());
    let mut from_index = [0; 3];
    for q in &qs {
        let t = Instant::now();
        let (v, index) = ask(server.addr, q).await?;
        times[q.kind].push(t.elapsed());
        answers.push(reduce(q.kind, &v));
        from_index[q.kind] += usize::from(index);
    }
    let yingji = times.map(timing);
    let mut sql_times: [Vec<Duration>; 3] = Default::default();
    let mut sql_same = 0;
    for (i, q) in qs.iter().enumerate() {
        let t = Instant::now();
        let (v, _) = ask(plain.addr, q).await?;
        sql_times[q.kind].push(t.elapsed());
        sql_same += usize::from(reduce(q.kind, &v) == answers[i]);
    }
    plain.shutdown().await;
    let sql = sql_times.map(timing);
    eprintln!("yingji on {:?}: {yingji:?}; without the indexes: {sql:?}", db.backend());
    let mut run = Run { counts, yingji, sql, sql_same, from_index, postgis: None, disagreements: 0, answers };
    if postgis && let Db::Postgres(pool) = &db {
        let day = now.0.with_timezone(&LOCAL_TZ).date_naive();
        let (t, bad) = raw_postgis(pool, &qs, &run.answers, day).await?;
        run.postgis = Some(t);
        run.disagreements = bad;
    }
    server.shutdown().await;
    Ok(run)
}

/// The PostGIS side, written as a PostGIS DBA would for these two questions: the per-depot
/// per-item available sums and the per-team per-specialty qualified members precomputed into
/// tables with composite GiST indexes (btree_gist: item or specialty and region code together with
/// the location), so a question reads only the rows of its item in its banner in distance order; a
/// PL/pgSQL KNN walk that stops at the depot completing the quantity; one `ST_DWithin` query per
/// teams question. Returns the timings and how many answers differed from yingji's.
async fn raw_postgis(
    pool: &PgPool,
    qs: &[Question],
    expected: &[Answer],
    day: chrono::NaiveDate,
) -> anyhow::Result<([Timing; 3], usize)> {
    for sql in postgis_setup(day) {
        sqlx::query(&sql).execute(pool).await?;
    }
    let mut conn = pool.acquire().await?;
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut bad = 0;
    for (i, q) in qs.iter().enumerate() {
        let (lo, hi) = q.bounds();
        let t = Instant::now();
        let got: Answer = if q.kind == 2 {
            let rows: Vec<(String, i64, Vec<String>)> = sqlx::query_as(TEAMS_SQL)
                .bind(&q.what)
                .bind(q.point.0)
                .bind(q.point.1)
                .bind(q.max_km.unwrap_or(TEAMS_MAX_KM) * 1000.0)
                .bind(&lo)
                .bind(&hi)
                .bind(day)
                .bind(q.amount)
                .fetch_all(&mut *conn)
                .await?;
            let people = rows.iter().flat_map(|r| r.2.iter()).collect::<std::collections::HashSet<_>>().len() as i64;
            let mut a: Answer = rows.into_iter().map(|(code, n, _)| (format!("items:{code}"), n)).collect();
            a.push(("people".into(), people));
            a
        } else {
            let rows: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT mode, code, take FROM bench_knn_supplies($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(&q.what)
                    .bind(q.amount)
                    .bind(q.point.0)
                    .bind(q.point.1)
                    .bind(q.max_km.map(|k| k * 1000.0))
                    .bind(&lo)
                    .bind(&hi)
                    .bind(day)
                    .fetch_all(&mut *conn)
                    .await?;
            rows.into_iter().map(|(mode, code, take)| (format!("{mode}:{code}"), take)).collect()
        };
        times[q.kind].push(t.elapsed());
        if got != expected[i] {
            bad += 1;
            if bad <= 3 {
                eprintln!("answers differ for {:?}:\n  yingji  {:?}\n  postgis {:?}", q, expected[i], got);
            }
        }
    }
    Ok((times.map(timing), bad))
}

/// The PostGIS tables, indexes and allocation function (distances on the sphere, as yingji's, so
/// that the nearest-first order agrees).
///
/// `bench_stock` holds per depot, item and reserve mode the units of unexpired batches as of `day`
/// and the earliest expiry among them (`next_expiry`): while that date has not passed the sum is
/// exact, and the walk recomputes a depot's sum from `stock_batches` (through the covering index
/// `stock_batches_depot_cover`) only when it has, so the precomputation stays exact on later days.
/// `bench_team_skills` holds per approved team and specialty its available members holding the
/// specialty with their insurance periods (one array entry per policy), so a question counts the
/// members insured on the day without joining members, skills and insurance per team.
fn postgis_setup(day: chrono::NaiveDate) -> Vec<String> {
    let day = day.format("%Y-%m-%d");
    vec![
        "CREATE EXTENSION IF NOT EXISTS postgis".into(),
        "CREATE EXTENSION IF NOT EXISTS btree_gist".into(),
        format!(
            "CREATE TABLE bench_stock AS
            SELECT b.item_code, b.reserve_mode AS mode, d.region_code, d.id AS depot_id, d.code,
                   geography(ST_SetSRID(ST_MakePoint(d.lon, d.lat), 4326)) AS geog,
                   CAST(SUM(b.quantity) AS bigint) AS qty, MIN(b.expiry_date) AS next_expiry
            FROM stock_batches b JOIN depots d ON d.id = b.depot_id
            WHERE b.quantity > 0 AND b.reserve_mode IN ('physical', 'agreement')
              AND (b.expiry_date IS NULL OR b.expiry_date >= DATE '{day}')
            GROUP BY b.item_code, b.reserve_mode, d.region_code, d.id, d.code, d.lon, d.lat"
        ),
        "CREATE INDEX bench_stock_knn ON bench_stock USING gist (item_code, mode, region_code, geog)".into(),
        "CREATE TABLE bench_team_skills AS
            SELECT ms.specialty, t.region_code, t.id AS team_id, t.code,
                   geography(ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326)) AS geog,
                   array_agg(m.id ORDER BY m.id, i.start_date) AS member_ids,
                   array_agg(COALESCE(m.id_index, CAST(m.id AS TEXT)) ORDER BY m.id, i.start_date) AS persons,
                   array_agg(i.start_date ORDER BY m.id, i.start_date) AS starts,
                   array_agg(i.end_date ORDER BY m.id, i.start_date) AS ends
            FROM teams t
            JOIN members m ON m.team_id = t.id AND m.status = 'available'
            JOIN member_skills ms ON ms.member_id = m.id
            JOIN member_insurance i ON i.member_id = m.id
            WHERE t.filing_status = 'approved'
            GROUP BY ms.specialty, t.region_code, t.id, t.code, t.lon, t.lat"
            .into(),
        "CREATE INDEX bench_team_skills_knn ON bench_team_skills USING gist (specialty, region_code, geog)".into(),
        "ANALYZE".into(),
        SUPPLIES_FN.into(),
    ]
}

/// The allocation: a KNN walk over the item's depots of the banner, nearest first, that stops at
/// the depot completing the quantity; then agreement depots for the shortfall (50 at most).
const SUPPLIES_FN: &str = r#"CREATE FUNCTION bench_knn_supplies(p_item text, p_need bigint, p_lon float8, p_lat float8, p_max_m float8, p_lo text, p_hi text, p_day date)
RETURNS TABLE (mode text, code text, take bigint) LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    pt geography := geography(ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326));
    left_over bigint := p_need;
    n int := 0;
    q bigint;
    r record;
BEGIN
    FOR r IN SELECT s.code AS c, s.depot_id, s.qty, s.next_expiry FROM bench_stock s
        WHERE s.item_code = p_item AND s.mode = 'physical' AND s.region_code >= p_lo AND s.region_code <= p_hi
          AND (p_max_m IS NULL OR ST_DWithin(s.geog, pt, p_max_m, false))
        ORDER BY s.geog <-> pt, s.code
    LOOP
        q := r.qty;
        IF r.next_expiry < p_day THEN
            SELECT COALESCE(SUM(b.quantity), 0) INTO q FROM stock_batches b
             WHERE b.depot_id = r.depot_id AND b.item_code = p_item AND b.reserve_mode = 'physical'
               AND b.quantity > 0 AND (b.expiry_date IS NULL OR b.expiry_date >= p_day);
            CONTINUE WHEN q = 0;
        END IF;
        mode := 'allocations'; code := r.c; take := LEAST(left_over, q); left_over := left_over - take;
        RETURN NEXT;
        EXIT WHEN left_over <= 0;
    END LOOP;
    IF left_over <= 0 THEN RETURN; END IF;
    FOR r IN SELECT s.code AS c, s.depot_id, s.qty, s.next_expiry FROM bench_stock s
        WHERE s.item_code = p_item AND s.mode = 'agreement' AND s.region_code >= p_lo AND s.region_code <= p_hi
          AND (p_max_m IS NULL OR ST_DWithin(s.geog, pt, p_max_m, false))
        ORDER BY s.geog <-> pt, s.code
    LOOP
        q := r.qty;
        IF r.next_expiry < p_day THEN
            SELECT COALESCE(SUM(b.quantity), 0) INTO q FROM stock_batches b
             WHERE b.depot_id = r.depot_id AND b.item_code = p_item AND b.reserve_mode = 'agreement'
               AND b.quantity > 0 AND (b.expiry_date IS NULL OR b.expiry_date >= p_day);
            CONTINUE WHEN q = 0;
        END IF;
        mode := 'agreement'; code := r.c; take := LEAST(left_over, q); left_over := left_over - take; n := n + 1;
        RETURN NEXT;
        EXIT WHEN left_over <= 0 OR n >= 50;
    END LOOP;
END
$fn$"#;

/// Nearest qualified teams: the specialty's teams of the banner within the distance (GiST), each
/// with its members insured on the day counted from the precomputed arrays.
const TEAMS_SQL: &str = "SELECT t.code, q.n, q.people
    FROM bench_team_skills t
    CROSS JOIN LATERAL (SELECT COUNT(DISTINCT u.m) AS n, array_agg(DISTINCT u.p) AS people
        FROM unnest(t.member_ids, t.persons, t.starts, t.ends) u(m, p, s, e)
        WHERE u.s <= $7 AND u.e >= $7) q
    WHERE t.specialty = $1 AND t.region_code >= $5 AND t.region_code <= $6
      AND ST_DWithin(t.geog, geography(ST_SetSRID(ST_MakePoint($2, $3), 4326)), $4, false)
      AND q.n >= $8
    ORDER BY ROUND(CAST(ST_Distance(t.geog, geography(ST_SetSRID(ST_MakePoint($2, $3), 4326)), false) / 10.0 AS numeric)), t.code";
