//! The nearest-teams index catches up with writes made on another instance by re-reading only the
//! teams that changed (src/change_feed.rs, topic `forces`): right after each write, every question
//! is answered from the index (`X-Nearest-Source: index`, no waiting for a rebuild) and equals the
//! answer of an instance without the index (the SQL path) on the same database.

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::{SEAT, approve, new_team};
use crate::nearest_index::{answer, member, questions};

/// Every question asked of each indexed instance: each answer came from its index and equals the
/// SQL path's.
async fn all_from_the_index(indexed: &[&TestApp], truth: &TestApp, tok: &str, step: &str) {
    for q in questions() {
        let (want, truth_source) = answer(truth, tok, &q).await;
        assert_eq!(truth_source, "database");
        for app in indexed {
            let (got, source) = answer(app, tok, &q).await;
            assert_eq!(source, "index", "after {step}: {q} was not answered from the index");
            assert_eq!(got, want, "after {step}: {q}");
        }
    }
}

fn probe(specialty: &str) -> String {
    format!("/api/v1/teams/nearest?specialty={specialty}&min_members=1&lon={}&lat={}&max_km=500", SEAT.0, SEAT.1)
}

#[tokio::test]
async fn the_index_reloads_only_changed_teams_and_answers_at_once_after_writes_elsewhere() {
    let writer = TestApp::spawn().await;
    let a = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let b = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;

    // Six approved teams around the seat, each with three members holding both specialties.
    let mut members: Vec<Vec<i64>> = Vec::new();
    let mut seq = 0;
    for (k, (km_e, km_n)) in
        [(5.0, 0.0), (0.0, 12.0), (-20.0, 8.0), (35.0, -30.0), (60.0, 60.0), (-3.0, -4.0)].into_iter().enumerate()
    {
        let code = format!("IN{k}");
        let region = if k % 2 == 0 { CHAGANAOBAO } else { MANDULATU };
        let at = (SEAT.0 + km_e / 80.2, SEAT.1 + km_n / 111.2);
        new_team(&writer, &admin, &code, region, at, json!([{"specialty": "grassland_fire", "grade": 1 + k % 3}]))
            .await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            seq += 1;
            ids.push(
                member(&writer, &admin, &code, seq, &["grassland_fire", "medical"], "2026-01-01", "2027-12-31").await,
            );
        }
        approve(&writer, &admin, &code).await;
        members.push(ids);
    }
    // Each indexed instance builds its index once (in the background on first use).
    for app in [&writer, &a, &b] {
        crate::nearest_index::wait_for_index(app, &admin).await;
    }
    let indexed = [&writer, &a, &b];
    all_from_the_index(&indexed, &truth, &admin, "the build").await;

    // Each write goes through the writer; `a` and `b` must answer from their index at once.
    let changes = |before: &Value, step: &str| {
        let before = before.clone();
        let step = step.to_string();
        let (a, admin) = (&a, admin.clone());
        async move {
            let (after, source) = answer(a, &admin, &probe("grassland_fire")).await;
            assert_eq!(source, "index", "{step}");
            assert_ne!(after, before, "{step} must change the answer");
        }
    };

    // A member's status.
    let before = answer(&a, &admin, &probe("grassland_fire")).await.0;
    let m = members[0][0];
    writer.patch(&admin, &format!("/api/v1/members/{m}"), &json!({"status": "unavailable"})).await.expect(200);
    changes(&before, "a member made unavailable").await;
    all_from_the_index(&indexed, &truth, &admin, "a member made unavailable").await;

    // An insurance that has expired.
    let before = answer(&a, &admin, &probe("grassland_fire")).await.0;
    let m = members[1][1];
    let expired = json!({"insurance": [{"insurer": "人保财险", "policy_number": "PX", "start": "2025-01-01", "end": "2025-12-31"}]});
    writer.patch(&admin, &format!("/api/v1/members/{m}"), &expired).await.expect(200);
    changes(&before, "an expired insurance").await;
    all_from_the_index(&indexed, &truth, &admin, "an expired insurance").await;

    // A skill removed.
    let before = answer(&b, &admin, &probe("medical")).await.0;
    let m = members[2][2];
    writer.patch(&admin, &format!("/api/v1/members/{m}"), &json!({"skills": ["grassland_fire"]})).await.expect(200);
    let (after, source) = answer(&b, &admin, &probe("medical")).await;
    assert_eq!(source, "index");
    assert_ne!(after, before, "a removed skill must change the answer");
    all_from_the_index(&indexed, &truth, &admin, "a skill removed").await;

    // A team suspended, then reinstated.
    let before = answer(&a, &admin, &probe("grassland_fire")).await.0;
    writer.post(&admin, "/api/v1/teams/IN3/suspend", &json!({"reason": "整改"})).await.expect(200);
    changes(&before, "a team suspended").await;
    all_from_the_index(&indexed, &truth, &admin, "a team suspended").await;
    let before = answer(&a, &admin, &probe("grassland_fire")).await.0;
    writer.post(&admin, "/api/v1/teams/IN3/reinstate", &json!({})).await.expect(200);
    changes(&before, "a team reinstated").await;
    all_from_the_index(&indexed, &truth, &admin, "a team reinstated").await;

    // A new team with members, approved.
    let before = answer(&a, &admin, &probe("grassland_fire")).await.0;
    new_team(&writer, &admin, "INNEW", MANDULATU, (SEAT.0 + 0.05, SEAT.1 + 0.05), json!([])).await;
    for _ in 0..2 {
        seq += 1;
        member(&writer, &admin, "INNEW", seq, &["grassland_fire"], "2026-01-01", "2027-12-31").await;
    }
    approve(&writer, &admin, "INNEW").await;
    changes(&before, "a new team approved").await;
    all_from_the_index(&indexed, &truth, &admin, "a new team approved").await;

    // A call-up accepted: its members become deployed (as during an event).
    let before = answer(&a, &admin, &probe("grassland_fire")).await.0;
    let body = json!({"team_code": "IN5", "purpose": "event", "reference": "2026-11 白灾", "specialty": "grassland_fire",
        "headcount": 2, "report_at": "2026-11-27T08:00:00+08:00", "report_place": "满都拉图镇应急局"});
    let c = writer.post(&admin, "/api/v1/callups", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let accept = json!({"members": [members[5][0], members[5][1]]});
    writer.post(&admin, &format!("/api/v1/callups/{c}/accept"), &accept).await.expect(200);
    changes(&before, "a call-up accepted").await;
    all_from_the_index(&indexed, &truth, &admin, "a call-up accepted").await;
}
