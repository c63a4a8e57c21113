//! The resource plan's batched searches (`events::nearby`) give exactly what the
//! per-requirement nearest searches give (`supplies::nearest::search`, one item at a time, and
//! `forces::nearest::qualified_teams_near`, one specialty and one radius at a time), on a
//! generated banner with varied quantities, distances and points.

use yingji::bench::data::{Size, generate};
use yingji::bench::events::{event_at, level};
use yingji::events::nearby::{self, ALL_REGIONS, SupplyAsk, radii};
use yingji::events::resource;
use yingji::forces::nearest::{Search, qualified_teams_near};
use yingji::forces::team_index::TeamIndex;
use yingji::plans::ResponseLevel;
use yingji::supplies::nearest::{self as supply_nearest, Allocation, Want};
use yingji::time::Timestamp;

use crate::common::*;

/// The resource plan as it was computed before batching: one search per item, one query per
/// specialty and radius. Returns (kind, need, source, depot or team, region, quantity, distance).
async fn per_requirement(
    db: &yingji::db::Db,
    point: (f64, f64),
    level: &ResponseLevel,
    now: Timestamp,
) -> Vec<(String, String, String, String, String, i64, f64)> {
    let day = yingji::supplies::today(now);
    let mut out = Vec::new();
    for s in &level.supplies {
        let code = s.item_code.as_str().to_string();
        let required = s.quantity.ceil() as i64;
        let mut left = required;
        let want = Want { item: &code, quantity: left, point, max_km: Some(s.within_km) };
        let near = supply_nearest::search(db, &want, ALL_REGIONS, day).await.unwrap();
        let far = if near.shortfall > near.agreement.iter().map(|a| a.take).sum::<i64>() {
            let want = Want { item: &code, quantity: required, point, max_km: None };
            supply_nearest::search(db, &want, ALL_REGIONS, day).await.unwrap().allocations
        } else {
            Vec::new()
        };
        let candidates: Vec<(&str, &Allocation)> = near
            .allocations
            .iter()
            .map(|a| ("nearest", a))
            .chain(near.agreement.iter().map(|a| ("agreement", a)))
            .chain(far.iter().filter(|a| a.distance_km > s.within_km).map(|a| ("beyond", a)))
            .collect();
        for (source, a) in candidates {
            if left <= 0 {
                break;
            }
            let take = a.available.min(left);
            out.push((
                "supply".into(),
                code.clone(),
                source.into(),
                a.depot_id.to_string(),
                a.region_code.clone(),
                take,
                a.distance_km,
            ));
            left -= take;
        }
    }
    for f in &level.forces {
        let mut left = i64::from(f.headcount);
        let mut taken: Vec<String> = Vec::new();
        for max_km in radii(f.within_km) {
            if left <= 0 {
                break;
            }
            let s = Search { specialty: f.specialty, min_members: 1, point, max_km, at: now };
            for t in qualified_teams_near(db, ALL_REGIONS, &s).await.unwrap().teams {
                if left <= 0 {
                    break;
                }
                if taken.contains(&t.team_code) {
                    continue;
                }
                taken.push(t.team_code.clone());
                let take = t.qualified_members.min(left);
                let source = if max_km <= f.within_km { "nearest" } else { "beyond" };
                out.push((
                    "force".into(),
                    f.specialty.code().into(),
                    source.into(),
                    t.team_code,
                    t.region_code,
                    take,
                    t.distance_km,
                ));
                left -= take;
            }
        }
    }
    out
}

#[tokio::test]
async fn batched_plan_equals_the_per_requirement_searches() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let now = Timestamp(app.clock.now_utc());
    let size = Size {
        banners: 1,
        depots_per_township: 6,
        batches_per_depot: 30,
        teams_per_township: 8,
        members_per_team: 4,
        department_plans_per_banner: 1,
    };
    generate(db, size, now, 42).await.unwrap();
    let items: Vec<String> =
        yingji::with_db!(db, |p| sqlx::query_scalar("SELECT code FROM supply_items ORDER BY code").fetch_all(p).await)
            .unwrap();
    let towns: Vec<(String, f64, f64)> = yingji::with_db!(db, |p| sqlx::query_as(
        "SELECT code, lon, lat FROM regions WHERE level = 'township' AND lon IS NOT NULL ORDER BY code"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    assert!(towns.len() >= 5, "generated townships with locations");
    let base = level(&items).unwrap();
    let sql_only = TeamIndex::new(false);
    let indexed = TeamIndex::new(true);
    indexed.refresh(db).await.unwrap();
    assert!(indexed.current(db).await.unwrap().is_some(), "the index reflects the generated state");
    // Quantities, distances and headcounts from "covered nearby" to "short everywhere".
    let variants = [(5.0, 10.0, 1), (60.0, 25.0, 3), (500.0, 50.0, 20), (5000.0, 120.0, 200)];
    let (mut compared, mut lines, mut beyond, mut agreement) = (0, 0, 0, 0);
    for (i, (code, lon, lat)) in towns.iter().enumerate() {
        for (v, (quantity, within, headcount)) in variants.iter().enumerate() {
            let mut lv = base.clone();
            for (j, s) in lv.supplies.iter_mut().enumerate() {
                s.quantity = quantity * (1.0 + j as f64 / 4.0);
                s.within_km = within + j as f64;
            }
            for f in &mut lv.forces {
                f.headcount = *headcount;
                f.within_km = *within;
            }
            let point = (lon + 0.05 * (v as f64 - 1.5), lat + 0.03 * (i % 3) as f64);
            let ev = event_at(code, point.0, point.1, now);
            let reference = per_requirement(db, point, &lv, now).await;
            // Teams from the database (index off) and from the in-process index.
            for index in [&sql_only, &indexed] {
                let batched: Vec<_> = resource::propose(db, index, &ev, &lv, &[], now)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|l| {
                        (
                            l.kind.to_string(),
                            l.need,
                            l.source.to_string(),
                            l.depot_id.map(|d| d.to_string()).or(l.team_code).unwrap_or_default(),
                            l.region_code,
                            l.quantity,
                            l.distance_km,
                        )
                    })
                    .collect();
                assert_eq!(batched, reference, "town {code}, variant {v}");
            }
            let batched = &reference;
            compared += 1;
            lines += batched.len();
            beyond += batched.iter().filter(|l| l.2 == "beyond").count();
            agreement += batched.iter().filter(|l| l.2 == "agreement").count();

            // The primitives too: every item at once against one search per item.
            let asks: Vec<SupplyAsk> = lv
                .supplies
                .iter()
                .map(|s| SupplyAsk {
                    item: s.item_code.as_str().into(),
                    quantity: s.quantity as i64,
                    max_km: Some(s.within_km),
                })
                .collect();
            let day = yingji::supplies::today(now);
            let all = nearby::supplies(db, point, &asks, ALL_REGIONS, day, 1.0).await.unwrap();
            for (a, got) in asks.iter().zip(&all) {
                let want = Want { item: &a.item, quantity: a.quantity, point, max_km: a.max_km };
                let one = supply_nearest::search(db, &want, ALL_REGIONS, day).await.unwrap();
                assert_eq!(
                    (&got.allocations, &got.agreement, got.shortfall),
                    (&one.allocations, &one.agreement, one.shortfall)
                );
            }
            let specialties: Vec<_> = lv.forces.iter().map(|f| f.specialty).collect();
            let found = nearby::teams(db, ALL_REGIONS, &specialties, point, *within * 2.0, now).await.unwrap();
            for s in &specialties {
                let one = Search { specialty: *s, min_members: 1, point, max_km: *within * 2.0, at: now };
                let one = qualified_teams_near(db, ALL_REGIONS, &one).await.unwrap().teams;
                let got: Vec<_> =
                    found.get(s).map(|l| nearby::within(l, *within * 2.0).cloned().collect()).unwrap_or_default();
                assert_eq!(got, one, "{s:?} at {code}");
            }
        }
    }
    // The comparison covered every kind of line, not only the easy case.
    assert!(compared >= 20 && lines > 0, "{compared} plans, {lines} lines");
    assert!(beyond > 0 && agreement > 0, "beyond {beyond}, agreement {agreement} lines were compared");
}
