//! Distances are exact at any range the API accepts (issue 12, item 8): readiness (1, 440 and
//! 1,000 km, the plans' largest distance), nearest teams and nearest supplies (1, 440, 1,000 and
//! 2,000 km), with points placed just inside and just outside the radius on the bearing where
//! the circle reaches furthest in longitude (where a linear box is too narrow).

use serde_json::{Value, json};
use yingji::geodesy::{destination, distance_km};

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::{findings, run_check};
use crate::readiness_rules::{approved_plan, plan};

/// The banner seat (满都拉图镇 has no location of its own and inherits it).
const SEAT: (f64, f64) = (113.64402, 43.85223);
const QUILT: &str = "1999905";

/// The point `km` from the seat on the bearing that reaches furthest east.
fn widest(km: f64) -> (f64, f64) {
    widest_from(SEAT, km)
}

/// The point `km` from `from` on the bearing that reaches furthest east.
fn widest_from(from: (f64, f64), km: f64) -> (f64, f64) {
    (0..3600).map(|i| destination(from.0, from.1, i as f64 / 10.0, km)).max_by(|a, b| a.0.total_cmp(&b.0)).unwrap()
}

async fn depot(app: &TestApp, t: &str, code: &str, at: (f64, f64), qty: i64) -> i64 {
    let body = json!({"code": code, "name": code, "region_code": MANDULATU, "kind": "township_point", "lon": at.0, "lat": at.1});
    let id = app.post(t, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(
        t,
        &format!("/api/v1/depots/{id}/movements"),
        &json!({"kind": "receive", "item_code": QUILT, "quantity": qty, "batch": "B"}),
    )
    .await
    .expect(201);
    id
}

/// An approved team at `at` with one insured grassland-fire member; returns the member id.
async fn team(app: &TestApp, t: &str, code: &str, at: (f64, f64), seq: u32) -> i64 {
    app.post(t, "/api/v1/teams", &json!({"code": code, "name": code, "org_type": "volunteer_team", "region_code": MANDULATU, "lon": at.0, "lat": at.1})).await.expect(201);
    app.post(t, &format!("/api/v1/teams/{code}/approve"), &json!({})).await.expect(200);
    let m = app
        .post(t, &format!("/api/v1/teams/{code}/members"), &json!({
            "name": format!("队员{seq}"), "id_number": id_number(seq), "skills": ["grassland_fire"],
            "insurance": [{"insurer": "人保财险", "policy_number": format!("P{seq}"), "start": "2026-01-01", "end": "2027-12-31"}]
        }))
        .await
        .expect(201)
        .json();
    m["id"].as_i64().unwrap()
}

#[tokio::test]
async fn readiness_counts_stock_and_people_just_inside_the_plan_distance_at_any_range() {
    // 满都拉图镇 is placed where the readiness grid's cell edges gave the old linear box no slack
    // (a 999 km point was counted as 0 there).
    let center = (113.782, 43.85223);
    for km in [1.0, 440.0, 1000.0] {
        let app = TestApp::spawn().await;
        let admin = app.admin().await;
        app.patch(&admin, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": center.0, "lat": center.1}))
            .await
            .expect(200);
        let needs = json!({"response_levels": [{"level": 2, "criteria": "特大火情",
            "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 10, "unit": "床", "within_km": km}],
            "forces": [{"specialty": "grassland_fire", "headcount": 1, "within_km": km}]}]});
        approved_plan(&app, &admin, &plan("镇预案", "township", MANDULATU, needs), "2026-11-20").await;
        let inside = widest_from(center, km * 0.999);
        let outside = widest_from(center, km * 1.001);
        let d = depot(&app, &admin, "IN", inside, 10).await;
        depot(&app, &admin, "OUT", outside, 1000).await;
        let member = team(&app, &admin, "IN", inside, 1).await;
        team(&app, &admin, "OUT", outside, 2).await;
        // Exactly covered from just inside the radius (near miss): no finding.
        run_check(&app).await;
        assert!(findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await.is_empty(), "{km} km");
        assert!(findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await.is_empty(), "{km} km");
        // Take one quilt and the one person away: what lies just outside does not fill the gap.
        app.post(
            &admin,
            &format!("/api/v1/depots/{d}/movements"),
            &json!({"kind": "issue", "item_code": QUILT, "quantity": 1, "batch": "B"}),
        )
        .await
        .expect(201);
        app.patch(&admin, &format!("/api/v1/members/{member}"), &json!({"status": "unavailable"})).await.expect(200);
        run_check(&app).await;
        let s = findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await;
        assert_eq!((s.len(), s[0]["facts"]["available"].as_i64()), (1, Some(9)), "{km} km");
        let f = findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await;
        assert_eq!((f.len(), f[0]["facts"]["available"].as_i64()), (1, Some(0)), "{km} km");
        // Put them back: resolved.
        app.post(
            &admin,
            &format!("/api/v1/depots/{d}/movements"),
            &json!({"kind": "receive", "item_code": QUILT, "quantity": 1, "batch": "B2"}),
        )
        .await
        .expect(201);
        app.patch(&admin, &format!("/api/v1/members/{member}"), &json!({"status": "available"})).await.expect(200);
        run_check(&app).await;
        assert!(findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await.is_empty(), "{km} km");
        assert!(findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await.is_empty(), "{km} km");
    }
}

#[tokio::test]
async fn nearest_teams_and_supplies_find_everything_within_max_km_at_any_range() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ranges = [1.0, 440.0, 1000.0, 2000.0];
    // For each range, a team and a depot just inside (0.5 %) and just outside it; plus the
    // issue's case, a team 1,989 km away.
    let mut placed: Vec<(String, f64)> = Vec::new();
    let mut seq = 1;
    for (i, km) in ranges.iter().enumerate() {
        for (tag, f) in [("in", 0.995), ("out", 1.005)] {
            let code = format!("R{i}{tag}");
            let at = widest(km * f);
            team(&app, &admin, &code, at, seq).await;
            depot(&app, &admin, &code, at, 1).await;
            placed.push((code, distance_km(SEAT, at)));
            seq += 1;
        }
    }
    team(&app, &admin, "T1989", widest(1989.0), seq).await;
    placed.push(("T1989".into(), 1989.0));
    let codes = |v: &Value, list: &str, key: &str| -> Vec<String> {
        let mut c: Vec<String> =
            v[list].as_array().unwrap().iter().map(|t| t[key].as_str().unwrap().to_string()).collect();
        c.sort();
        c
    };
    for km in ranges {
        let mut want: Vec<String> = placed.iter().filter(|(_, d)| *d <= km).map(|(c, _)| c.clone()).collect();
        want.sort();
        let teams = app
            .get(
                &admin,
                &format!("/api/v1/teams/nearest?specialty=grassland_fire&lon={}&lat={}&max_km={km}", SEAT.0, SEAT.1),
            )
            .await
            .expect(200)
            .json();
        assert_eq!(codes(&teams, "items", "team_code"), want, "teams within {km} km");
        let supplies = app
            .get(
                &admin,
                &format!(
                    "/api/v1/supplies/nearest?item={QUILT}&quantity=1000&lon={}&lat={}&max_km={km}",
                    SEAT.0, SEAT.1
                ),
            )
            .await
            .expect(200)
            .json();
        want.retain(|c| c != "T1989");
        assert_eq!(codes(&supplies, "allocations", "depot_code"), want, "depots within {km} km");
    }
    let v = app
        .get(
            &admin,
            &format!("/api/v1/teams/nearest?specialty=grassland_fire&lon={}&lat={}&max_km=2000", SEAT.0, SEAT.1),
        )
        .await
        .expect(200)
        .json();
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["team_code"] == "T1989" && (t["distance_km"].as_f64().unwrap() - 1989.0).abs() < 0.01),
        "{v}"
    );
}

#[tokio::test]
async fn nearest_teams_across_the_antimeridian() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // A team at 179.9 E is 22 km from a point at 179.9 W on the same parallel... near the pole
    // too, a team 100 km across the North Pole.
    team(&app, &admin, "EAST", (179.9, 10.0), 1).await;
    team(&app, &admin, "POLE", (0.0, 89.5), 2).await;
    let q = |lon: f64, lat: f64, km: f64| {
        format!("/api/v1/teams/nearest?specialty=grassland_fire&lon={lon}&lat={lat}&max_km={km}")
    };
    let v = app.get(&admin, &q(-179.9, 10.0, 30.0)).await.expect(200).json();
    assert_eq!(v["items"][0]["team_code"], "EAST", "{v}");
    assert!(app.get(&admin, &q(-179.9, 10.0, 20.0)).await.expect(200).json()["items"].as_array().unwrap().is_empty());
    let v = app.get(&admin, &q(180.0, 89.5, 120.0)).await.expect(200).json();
    assert_eq!(v["items"][0]["team_code"], "POLE", "{v}");
}
