//! A province-sized data set for benchmarks, generated straight into the database: regions,
//! plans with requirements, depots with stock batches, teams with members.

use chrono::Duration;
use serde_json::json;

use super::rows::{Rng, Val, insert};
use crate::db::Db;
use crate::time::{LOCAL_TZ, Timestamp};
use crate::with_db;

/// How much to generate (scale 1.0 is the province: ~15,000 regions, 30,000 plans, 20,000
/// depots, 1,000,000 batches, 50,000 teams, 500,000 members).
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Banners (each with 10 townships of 14 villages).
    pub banners: usize,
    /// Depots per township.
    pub depots_per_township: usize,
    /// Stock batches per depot.
    pub batches_per_depot: usize,
    /// Teams per township.
    pub teams_per_township: usize,
    /// Members per team.
    pub members_per_team: usize,
    /// Department plans per banner (to reach the plan count).
    pub department_plans_per_banner: usize,
}

impl Size {
    /// The province at `scale` (1.0 = full size).
    pub fn province(scale: f64) -> Size {
        Size {
            banners: ((100.0 * scale).round() as usize).max(1),
            depots_per_township: 20,
            batches_per_depot: 50,
            teams_per_township: 50,
            members_per_team: 10,
            department_plans_per_banner: 142,
        }
    }
}

/// What was generated.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Counts {
    /// Regions.
    pub regions: usize,
    /// Plans.
    pub plans: usize,
    /// Depots.
    pub depots: usize,
    /// Stock batches.
    pub batches: usize,
    /// Teams.
    pub teams: usize,
    /// Members.
    pub members: usize,
}

const SPECIALTIES: [&str; 5] = ["grassland_fire", "snow_rescue", "medical", "transport", "communications"];
const HAZARDS: [&str; 7] =
    ["snow_disaster", "grassland_fire", "sandstorm", "drought", "earthquake", "animal_epidemic", "mine_accident"];

struct Town {
    code: String,
    villages: Vec<String>,
    lon: f64,
    lat: f64,
}

/// Rows are written in transactions of this many.
const TX_ROWS: usize = 50_000;

async fn write(db: &Db, table: &str, columns: &[&str], rows: &[Vec<Val>]) -> anyhow::Result<()> {
    for chunk in rows.chunks(TX_ROWS) {
        let mut tx = db.begin().await?;
        insert(&mut tx, table, columns, chunk).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Generates the data set into a migrated database (the shipped catalogue must be loaded: its
/// item codes are used). Region codes are 15CCNN…, clear of the real banner's 152523.
pub async fn generate(db: &Db, size: Size, now: Timestamp, seed: u64) -> anyhow::Result<Counts> {
    let mut rng = Rng::new(seed);
    let today = now.0.with_timezone(&LOCAL_TZ).date_naive();
    let day =
        |rng: &mut Rng, from: i64, to: i64| today + Duration::days(from + rng.below((to - from).max(1) as u64) as i64);
    let items: Vec<String> =
        with_db!(db, |p| sqlx::query_scalar("SELECT code FROM supply_items ORDER BY code").fetch_all(p).await)?;
    anyhow::ensure!(!items.is_empty(), "the supply catalogue is empty");
    let mut c = Counts::default();

    // Regions: banners spread over a 1,000 km square, townships around them, villages below.
    let mut regions = Vec::new();
    let mut towns: Vec<Town> = Vec::new();
    let mut banners = Vec::new();
    for b in 0..size.banners {
        let code = format!("15{:02}{:02}000000", 1 + b / 10, 1 + b % 10);
        let (lon, lat) = (110.0 + rng.unit() * 12.6, 40.5 + rng.unit() * 9.0);
        regions.push(vec![
            Val::S(code.clone()),
            Val::S(format!("测试旗{b}")),
            Val::S("banner".into()),
            Val::S("150000000000".into()),
            Val::F(lon),
            Val::F(lat),
            Val::T(now),
            Val::T(now),
        ]);
        for t in 0..10 {
            let tcode = format!("{}{}000", &code[..6], 100 + t);
            let (tlon, tlat) = (lon + (rng.unit() - 0.5) * 1.0, lat + (rng.unit() - 0.5) * 0.8);
            regions.push(vec![
                Val::S(tcode.clone()),
                Val::S(format!("测试镇{b}-{t}")),
                Val::S("township".into()),
                Val::S(code.clone()),
                Val::F(tlon),
                Val::F(tlat),
                Val::T(now),
                Val::T(now),
            ]);
            let mut villages = Vec::new();
            for v in 0..14 {
                let vcode = format!("{}{}", &tcode[..9], 200 + v);
                regions.push(vec![
                    Val::S(vcode.clone()),
                    Val::S(format!("测试村{b}-{t}-{v}")),
                    Val::S("village".into()),
                    Val::S(tcode.clone()),
                    Val::NullF,
                    Val::NullF,
                    Val::T(now),
                    Val::T(now),
                ]);
                villages.push(vcode);
            }
            towns.push(Town { code: tcode, villages, lon: tlon, lat: tlat });
        }
        banners.push(code);
    }
    c.regions = regions.len();
    write(db, "regions", &["code", "name", "level", "parent_code", "lon", "lat", "created_at", "updated_at"], &regions)
        .await?;
    drop(regions);

    // Plans: every banner its overall and seven special plans plus department plans; every
    // township and village its own. Issued over the last four years; some filed, some drilled.
    let mut plans = Vec::new();
    let mut versions = Vec::new();
    let mut add_plan = |rng: &mut Rng, region: &str, kind: &str, hazard: &str, levels: serde_json::Value| {
        let id = plans.len() as i64 + 1_000_000;
        let issued = day(rng, -4 * 365, -10);
        let filed = rng.below(10) < 7;
        let drilled = (rng.below(2) == 0).then(|| day(rng, -3 * 365, -1));
        let drill_months: i64 = if kind == "special" || kind == "department" { 36 } else { 24 };
        let title = format!("{region}{kind}预案{id}");
        let content = json!({
            "title": title, "kind": kind, "region": region, "owning_unit": "应急管理局", "lead_department": "应急管理局",
            "hazards": [hazard], "member_units": [],
            "sections": {"organization": "统一指挥", "prevention": "监测预警", "response": "分级响应", "support": "保障", "recovery": "恢复"},
            "response_levels": levels,
        });
        plans.push(vec![
            Val::I(id),
            Val::S(region.into()),
            Val::S(kind.into()),
            Val::I(1),
            Val::I(1),
            drilled.map(Val::D).unwrap_or(Val::NullDate),
            Val::T(now),
            Val::T(now),
        ]);
        versions.push(vec![
            Val::I(id),
            Val::I(1),
            Val::S(if filed { "filed" } else { "approved" }.into()),
            Val::S(title),
            Val::S(format!(",{hazard},")),
            Val::J(content),
            Val::S(format!("bench-{id}")),
            Val::I(drill_months),
            Val::I(36),
            Val::D(issued),
            Val::S("人民政府办公室".into()),
            if filed { Val::S("上级人民政府".into()) } else { Val::Null },
            if filed { Val::D(issued + Duration::days(10)) } else { Val::NullDate },
            Val::S("bench".into()),
            Val::T(now),
            Val::T(now),
        ]);
    };
    let need = |rng: &mut Rng, items: &[String], n: usize| -> serde_json::Value {
        let supplies: Vec<_> = (0..n)
            .map(|_| json!({"item_code": items[rng.below(items.len() as u64) as usize], "quantity": 50 + rng.below(400), "within_km": 50 + rng.below(4) * 25}))
            .collect();
        let forces = vec![
            json!({"specialty": SPECIALTIES[rng.below(5) as usize], "headcount": 10 + rng.below(40), "within_km": 50 + rng.below(4) * 25}),
        ];
        json!([{"level": 2, "criteria": "较大", "supplies": supplies, "forces": forces}, {"level": 4, "criteria": "一般", "supplies": [], "forces": []}])
    };
    let plain = json!([{"level": 4, "criteria": "一般", "supplies": [], "forces": []}]);
    for b in &banners {
        add_plan(&mut rng, b, "overall", "snow_disaster", plain.clone());
        for h in HAZARDS {
            let levels = need(&mut rng, &items, 2);
            add_plan(&mut rng, b, "special", h, levels);
        }
        for _ in 0..size.department_plans_per_banner {
            let hazard = HAZARDS[rng.below(7) as usize];
            add_plan(&mut rng, b, "department", hazard, plain.clone());
        }
    }
    for t in &towns {
        let levels = need(&mut rng, &items, 1);
        add_plan(&mut rng, &t.code, "township", "grassland_fire", levels);
        for v in &t.villages {
            add_plan(&mut rng, v, "village", "snow_disaster", plain.clone());
        }
    }
    c.plans = plans.len();
    write(
        db,
        "plans",
        &[
            "id",
            "region_code",
            "kind",
            "latest_version",
            "current_version",
            "last_drilled_on",
            "created_at",
            "updated_at",
        ],
        &plans,
    )
    .await?;
    write(
        db,
        "plan_versions",
        &[
            "plan_id",
            "version",
            "status",
            "title",
            "hazards",
            "content",
            "content_hash",
            "drill_months",
            "evaluation_months",
            "issued_on",
            "issuing_body",
            "filed_with",
            "filed_on",
            "created_by",
            "created_at",
            "updated_at",
        ],
        &versions,
    )
    .await?;
    drop((plans, versions));

    // Depots and stock.
    let mut depots = Vec::new();
    let mut batches = Vec::new();
    let mut minimums = Vec::new();
    let kinds = ["township_point", "village_point", "banner_depot", "agreement_enterprise"];
    for t in &towns {
        for _ in 0..size.depots_per_township {
            let id = depots.len() as i64 + 1;
            let region = if rng.below(2) == 0 {
                t.code.clone()
            } else {
                t.villages[rng.below(t.villages.len() as u64) as usize].clone()
            };
            depots.push(vec![
                Val::I(id),
                Val::S(format!("D{id:06}")),
                Val::S(format!("储备点{id}")),
                Val::S(region),
                Val::S(kinds[rng.below(4) as usize].into()),
                Val::F(t.lon + (rng.unit() - 0.5) * 0.6),
                Val::F(t.lat + (rng.unit() - 0.5) * 0.5),
                Val::T(now),
                Val::T(now),
            ]);
            for k in 0..size.batches_per_depot {
                let item = &items[(k + rng.below(3) as usize) % items.len()];
                let expiry = if rng.below(10) < 7 { Val::D(day(&mut rng, -60, 1000)) } else { Val::NullDate };
                let mode = if rng.below(10) < 9 { "physical" } else { "agreement" };
                batches.push(vec![
                    Val::I(id),
                    Val::S(item.clone()),
                    Val::S(format!("B{k}")),
                    Val::I(1 + rng.below(200) as i64),
                    expiry,
                    Val::S(mode.into()),
                    Val::T(now),
                    Val::T(now),
                ]);
            }
            minimums.push(vec![
                Val::I(id),
                Val::S(items[rng.below(items.len() as u64) as usize].clone()),
                Val::I(50 + rng.below(300) as i64),
                Val::T(now),
            ]);
        }
    }
    c.depots = depots.len();
    c.batches = batches.len();
    write(
        db,
        "depots",
        &["id", "code", "name", "region_code", "kind", "lon", "lat", "created_at", "updated_at"],
        &depots,
    )
    .await?;
    drop(depots);
    write(
        db,
        "stock_batches",
        &["depot_id", "item_code", "batch", "quantity", "expiry_date", "reserve_mode", "created_at", "updated_at"],
        &batches,
    )
    .await?;
    drop(batches);
    write(db, "stock_minimums", &["depot_id", "item_code", "minimum", "updated_at"], &minimums).await?;

    // Teams and members (no personal numbers: the benchmark has no use for them).
    let mut teams = Vec::new();
    let mut specialties = Vec::new();
    let mut members = Vec::new();
    let mut skills = Vec::new();
    let mut insurance = Vec::new();
    let mut certificates = Vec::new();
    for t in &towns {
        for _ in 0..size.teams_per_township {
            let id = teams.len() as i64 + 1;
            let approved = rng.below(20) != 0;
            let submitted = Timestamp(now.0 - Duration::days(rng.below(30) as i64));
            teams.push(vec![
                Val::I(id),
                Val::S(format!("T{id:06}")),
                Val::S(format!("队伍{id}")),
                Val::S("volunteer_team".into()),
                Val::S(t.code.clone()),
                Val::F(t.lon + (rng.unit() - 0.5) * 0.6),
                Val::F(t.lat + (rng.unit() - 0.5) * 0.5),
                Val::S(if approved { "approved" } else { "submitted" }.into()),
                Val::S("bench".into()),
                Val::T(submitted),
                Val::T(now),
                Val::T(now),
            ]);
            let spec = SPECIALTIES[rng.below(5) as usize];
            specialties.push(vec![Val::I(id), Val::S(spec.into()), Val::I(0)]);
            for _ in 0..size.members_per_team {
                let mid = members.len() as i64 + 1;
                let status = if rng.below(10) < 8 { "available" } else { "unavailable" };
                members.push(vec![
                    Val::I(mid),
                    Val::I(id),
                    Val::S(format!("队员{mid}")),
                    Val::S(status.into()),
                    Val::T(now),
                    Val::T(now),
                ]);
                skills.push(vec![Val::I(mid), Val::S(spec.into())]);
                let end = day(&mut rng, -60, 400);
                insurance.push(vec![
                    Val::I(mid),
                    Val::S("人保财险".into()),
                    Val::S(format!("P{mid}")),
                    Val::D(end - Duration::days(365)),
                    Val::D(end),
                ]);
                if rng.below(10) < 3 {
                    certificates.push(vec![
                        Val::I(mid),
                        Val::S("救援员证".into()),
                        Val::S(format!("C{mid}")),
                        Val::D(day(&mut rng, -2000, -400)),
                        Val::D(day(&mut rng, -100, 1000)),
                    ]);
                }
            }
        }
    }
    c.teams = teams.len();
    c.members = members.len();
    write(
        db,
        "teams",
        &[
            "id",
            "code",
            "name",
            "org_type",
            "region_code",
            "lon",
            "lat",
            "filing_status",
            "submitted_by",
            "submitted_at",
            "created_at",
            "updated_at",
        ],
        &teams,
    )
    .await?;
    write(db, "team_specialties", &["team_id", "specialty", "position"], &specialties).await?;
    write(db, "members", &["id", "team_id", "name", "status", "created_at", "updated_at"], &members).await?;
    write(db, "member_skills", &["member_id", "specialty"], &skills).await?;
    write(db, "member_insurance", &["member_id", "insurer", "policy_number", "start_date", "end_date"], &insurance)
        .await?;
    write(db, "member_certificates", &["member_id", "kind", "number", "issued", "expires"], &certificates).await?;
    Ok(c)
}
