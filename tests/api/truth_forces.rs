//! Forces count people, not member rows; insurance gaps and renewed certificates tell the truth
//! (issue 12, items 3–5).

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::{findings, run_check};
use crate::readiness_rules::{approved_plan, plan, subjects};

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

fn policy(no: &str, start: &str, end: &str) -> Value {
    json!({"insurer": "人保财险", "policy_number": no, "start": start, "end": end})
}

#[tokio::test]
async fn insurance_gaps_and_renewals_that_start_later() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    team(&app, &admin, "T", 5.0).await;
    // Today is 2026-11-27, the window runs to 12-27.
    // A: the old policy ended 11-24, the renewal starts 12-04: uninsured today (trigger).
    let a = member(&app, &admin, "T", 1, json!({"insurance": [policy("OLD-A", "2025-11-25", "2026-11-24"), policy("NEW-A", "2026-12-04", "2027-12-03")]})).await;
    // B: ended yesterday, renewed from today: covered (near miss).
    let b = member(&app, &admin, "T", 2, json!({"insurance": [policy("OLD-B", "2025-11-27", "2026-11-26"), policy("NEW-B", "2026-11-27", "2027-11-26")]})).await;
    // C: ends 12-10, renewed from 12-11: no gap, not expiring (near miss).
    let c = member(&app, &admin, "T", 3, json!({"insurance": [policy("OLD-C", "2025-12-11", "2026-12-10"), policy("NEW-C", "2026-12-11", "2027-12-10")]})).await;
    // D: ends 12-10, the renewal starts 12-12: a one-day gap inside the window (trigger).
    let d = member(&app, &admin, "T", 4, json!({"insurance": [policy("OLD-D", "2025-12-11", "2026-12-10"), policy("NEW-D", "2026-12-12", "2027-12-11")]})).await;
    // E: ends today: expiring today, not "in 0 days".
    let e = member(&app, &admin, "T", 5, json!({"insurance": [policy("OLD-E", "2025-11-28", "2026-11-27")]})).await;
    run_check(&app).await;
    let expired = findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRED").await;
    assert_eq!(subjects(&expired), vec![a.to_string()]);
    let f = &expired[0]["facts"];
    assert_eq!(
        (f["end_date"].as_str(), f["next_start"].as_str(), f["gap_from"].as_str(), f["gap_until"].as_str()),
        (Some("2026-11-24"), Some("2026-12-04"), Some("2026-11-25"), Some("2026-12-03")),
        "{f}"
    );
    let msg = expired[0]["message"].as_str().unwrap();
    assert!(msg.contains("NEW-A") && msg.contains("2026-12-04") && msg.contains("T队"), "{msg}");
    let expiring = findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRING").await;
    let mut want = vec![d.to_string(), e.to_string()];
    want.sort();
    assert_eq!(subjects(&expiring), want, "B and C are covered without a gap");
    let d_finding = expiring.iter().find(|x| x["subject_id"].as_str() == Some(d.to_string().as_str())).unwrap();
    assert_eq!(d_finding["facts"]["end_date"], "2026-12-10");
    let e_finding = expiring.iter().find(|x| x["subject_id"].as_str() == Some(e.to_string().as_str())).unwrap();
    assert!(e_finding["message"].as_str().unwrap().contains("（今天）"), "{}", e_finding["message"]);
    assert!(!expiring.iter().any(|x| x["message"].as_str().unwrap().contains("0 天后")));
    let _ = (b, c);
    // The forces count agrees: A is not insured today.
    let v = app
        .get(&admin, "/api/v1/teams/nearest?specialty=grassland_fire&lon=113.64402&lat=43.85223&max_km=50")
        .await
        .expect(200)
        .json();
    assert_eq!(v["qualified_people"], 4, "{v}");
    // Resolution: A's renewal moved to start today; D's renewal to start the day after.
    app.patch(&admin, &format!("/api/v1/members/{a}"), &json!({"insurance": [policy("OLD-A", "2025-11-25", "2026-11-24"), policy("NEW-A", "2026-11-27", "2027-12-03")]})).await.expect(200);
    app.patch(&admin, &format!("/api/v1/members/{d}"), &json!({"insurance": [policy("OLD-D", "2025-12-11", "2026-12-10"), policy("NEW-D", "2026-12-11", "2027-12-11")]})).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRED").await.is_empty());
    assert_eq!(subjects(&findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRING").await), vec![e.to_string()]);
}

#[tokio::test]
async fn certificates_are_a_history_and_expire_by_kind() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    team(&app, &admin, "T", 5.0).await;
    let cert = |no: &str, issued: &str, expires: &str| json!({"kind": "草原防火培训合格证", "number": no, "issued": issued, "expires": expires});
    // Expired yesterday (trigger); another member's expires today (near miss).
    let m = member(&app, &admin, "T", 1, json!({"certificates": [cert("Z-1", "2023-11-27", "2026-11-26")]})).await;
    member(&app, &admin, "T", 2, json!({"certificates": [cert("Z-2", "2023-11-28", "2026-11-27")]})).await;
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await;
    assert_eq!(subjects(&f), vec![m.to_string()]);
    assert!(
        !f[0]["message"].as_str().unwrap().contains("证书证书")
            && !f[0]["message"].as_str().unwrap().contains("证证书"),
        "{}",
        f[0]["message"]
    );
    let path = format!("/api/v1/members/{m}/certificates");
    // Renewal keeps the old certificate and silences the finding (resolution).
    let new = app
        .post(
            &admin,
            &format!("{path}/Z-1/renew"),
            &json!({"number": "Z-1B", "issued": "2026-11-27", "expires": "2029-11-26"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!((new["kind"].as_str(), new["status"].as_str()), (Some("草原防火培训合格证"), Some("active")));
    let list = app.get(&admin, &path).await.expect(200).json();
    assert_eq!(list["total"], 2, "{list}");
    let old = list["items"].as_array().unwrap().iter().find(|c| c["number"] == "Z-1").unwrap().clone();
    assert_eq!((old["status"].as_str(), old["renewed_by"].as_str()), (Some("renewed"), Some("Z-1B")));
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await.is_empty());
    // Renewing twice is a state conflict; a number is unique per member.
    let p = app
        .post(&admin, &format!("{path}/Z-1/renew"), &json!({"number": "Z-1C", "issued": "2026-11-27"}))
        .await
        .problem(409);
    assert_eq!(p["current_status"], "renewed", "{p}");
    app.post(&admin, &path, &cert("Z-1B", "2026-11-27", "2029-11-26")).await.problem(409);
    // Revoking the new certificate leaves no valid one of the kind: the finding is back.
    let r =
        app.post(&admin, &format!("{path}/Z-1B/revoke"), &json!({"reason": "发证机关注销"})).await.expect(200).json();
    assert_eq!(r["status"], "revoked");
    run_check(&app).await;
    assert_eq!(subjects(&findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await), vec![m.to_string()]);
    // A newly added certificate of the kind resolves it; a PATCH adds, never erases history.
    app.patch(
        &admin,
        &format!("/api/v1/members/{m}"),
        &json!({"certificates": [cert("Z-1D", "2026-11-27", "2030-11-26")]}),
    )
    .await
    .expect(200);
    assert_eq!(app.get(&admin, &path).await.expect(200).json()["total"], 3);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await.is_empty());
    assert!(app.audit_rows("member", &m.to_string()).await.iter().any(|(a, _)| a == "certificate_revoke"));
}

#[tokio::test]
async fn members_of_rejected_and_revoked_teams_are_skipped_alike() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let lapsed = json!({"insurance": [policy("X", "2025-01-01", "2026-01-01")], "certificates": [{"kind": "救援员证", "number": "C1", "issued": "2020-01-01", "expires": "2025-01-01"}]});
    // A submitted team's member is checked (trigger), a rejected and a revoked team's are not.
    for (code, seq) in [("SUB", 1), ("REJ", 2), ("REV", 3)] {
        app.post(&admin, "/api/v1/teams", &json!({"code": code, "name": code, "org_type": "volunteer_team", "region_code": MANDULATU, "lon": 113.6, "lat": 43.9})).await.expect(201);
        member(&app, &admin, code, seq, lapsed.clone()).await;
    }
    app.post(&admin, "/api/v1/teams/REJ/reject", &json!({"reason": "材料不全"})).await.expect(200);
    app.post(&admin, "/api/v1/teams/REV/approve", &json!({})).await.expect(200);
    app.post(&admin, "/api/v1/teams/REV/revoke", &json!({"reason": "解散"})).await.expect(200);
    run_check(&app).await;
    for rule in ["INSURANCE_EXPIRED", "CERTIFICATE_EXPIRED"] {
        let teams: Vec<String> = findings(&app, &admin, MANDULATU, rule)
            .await
            .iter()
            .map(|f| f["facts"]["team"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(teams, vec!["SUB"], "{rule}");
    }
    // The submitted team is revoked too (after approval): its findings resolve.
    app.post(&admin, "/api/v1/teams/SUB/approve", &json!({})).await.expect(200);
    app.post(&admin, "/api/v1/teams/SUB/revoke", &json!({"reason": "解散"})).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRED").await.is_empty());
    assert!(findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await.is_empty());
}

#[tokio::test]
async fn two_renewals_of_one_certificate_at_once_end_with_one_winner() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    team(&app, &admin, "T", 5.0).await;
    let m = member(
        &app,
        &admin,
        "T",
        1,
        json!({"certificates": [{"kind": "救援员证", "number": "A", "issued": "2023-01-01", "expires": "2026-11-26"}]}),
    )
    .await;
    let path = format!("/api/v1/members/{m}/certificates/A/renew");
    let (b, c) = (json!({"number": "B", "issued": "2026-11-27"}), json!({"number": "C", "issued": "2026-11-27"}));
    let (r1, r2) = tokio::join!(app.post(&admin, &path, &b), app.post(&admin, &path, &c));
    let mut codes = vec![r1.status.as_u16(), r2.status.as_u16()];
    codes.sort();
    assert_eq!(codes, vec![201, 409], "{} / {}", r1.text, r2.text);
    let list = app.get(&admin, &format!("/api/v1/members/{m}/certificates")).await.expect(200).json();
    assert_eq!(list["total"], 2, "the loser wrote nothing: {list}");
}
