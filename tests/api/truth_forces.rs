//! Forces count people, not member rows; insurance gaps and renewed certificates tell the truth
//! (issue 12, items 3–5).

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::{findings, run_check};
use crate::readiness_rules::{approved_plan, plan};

/// An approved team `km` north of the banner seat.
pub(crate) async fn team(app: &TestApp, t: &str, code: &str, km: f64) {
    let lat = 43.85223 + km / 111.195;
    app.post(t, "/api/v1/teams", &json!({"code": code, "name": format!("{code}队"), "org_type": "volunteer_team", "region_code": MANDULATU, "lon": 113.64402, "lat": lat})).await.expect(201);
    app.post(t, &format!("/api/v1/teams/{code}/approve"), &json!({})).await.expect(200);
}

/// Adds person `seq` (insured for 2026–2027, grassland fire) to a team; returns the member id.
pub(crate) async fn member(app: &TestApp, t: &str, team: &str, seq: u32, extra: Value) -> i64 {
    let mut body = json!({
        "name": format!("队员{seq}"), "id_number": id_number(seq), "skills": ["grassland_fire"],
        "insurance": [{"insurer": "人保财险", "policy_number": format!("P{seq}-{team}"), "start": "2026-01-01", "end": "2027-12-31"}]
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.post(t, &format!("/api/v1/teams/{team}/members"), &body).await.expect(201).json()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn one_person_in_two_teams_counts_once_for_a_force_requirement_and_in_nearest_teams() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let needs = json!({"response_levels": [{"level": 2, "criteria": "火线超过 2 公里", "forces": [{"specialty": "grassland_fire", "headcount": 3, "within_km": 50}]}]});
    approved_plan(&app, &admin, &plan("镇草原火灾预案", "township", MANDULATU, needs), "2026-11-20").await;
    team(&app, &admin, "A", 10.0).await;
    team(&app, &admin, "B", 20.0).await;
    // Person 1 is in both teams; person 2 only in A: three member rows, two people (trigger).
    member(&app, &admin, "A", 1, json!({})).await;
    member(&app, &admin, "A", 2, json!({})).await;
    member(&app, &admin, "B", 1, json!({})).await;
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await;
    assert_eq!(f.len(), 1, "three rows are two people");
    assert_eq!((f[0]["facts"]["required"].as_i64(), f[0]["facts"]["available"].as_i64()), (Some(3), Some(2)));
    let q = "/api/v1/teams/nearest?specialty=grassland_fire&lon=113.64402&lat=43.85223&max_km=50";
    let v = app.get(&admin, q).await.expect(200).json();
    let per_team: Vec<(String, i64)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["team_code"].as_str().unwrap().to_string(), t["qualified_members"].as_i64().unwrap()))
        .collect();
    assert_eq!(per_team, vec![("A".to_string(), 2), ("B".to_string(), 1)], "per-team counts stay");
    assert_eq!((v["total"].as_i64(), v["qualified_people"].as_i64()), (Some(2), Some(2)), "{v}");
    // A third person joins B: three people (near miss: exactly the requirement). Resolved.
    member(&app, &admin, "B", 3, json!({})).await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await.is_empty());
    let v = app.get(&admin, q).await.expect(200).json();
    assert_eq!(v["qualified_people"], 3, "{v}");
}
