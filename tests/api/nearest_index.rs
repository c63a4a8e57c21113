//! The nearest-teams index (src/forces/team_index.rs) answers exactly as the database does: many
//! questions asked of an instance with the index and of one without it (same database) get the
//! same answers, also right after writes made through a third instance.

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::{SEAT, approve, id_number, new_team};

/// A member with `skills`, insured from `start` to `end`.
pub(crate) async fn member(
    app: &TestApp,
    tok: &str,
    team: &str,
    seq: u32,
    skills: &[&str],
    start: &str,
    end: &str,
) -> i64 {
    let v = app
        .post(
            tok,
            &format!("/api/v1/teams/{team}/members"),
            &json!({
                "name": format!("队员{seq}"), "id_number": id_number(seq), "skills": skills,
                "insurance": [{"insurer": "人保财险", "policy_number": format!("P{seq}"), "start": start, "end": end}]
            }),
        )
        .await
        .expect(201)
        .json();
    v["id"].as_i64().unwrap()
}

/// Questions over points, specialties, sizes, distances and days.
pub(crate) fn questions() -> Vec<String> {
    let mut out = Vec::new();
    let points = [SEAT, (SEAT.0 + 0.3, SEAT.1 - 0.2), (SEAT.0 - 0.5, SEAT.1 + 0.4), (SEAT.0 + 1.2, SEAT.1 + 0.9)];
    let days =
        ["", "&at=2026-06-01T12:00:00%2B08:00", "&at=2026-12-31T23:00:00%2B08:00", "&at=2027-03-01T08:00:00%2B08:00"];
    for (i, (lon, lat)) in points.iter().enumerate() {
        for specialty in ["grassland_fire", "medical"] {
            for (min, km) in [(1, 30.0), (2, 80.0), (1, 200.0), (3, 500.0)] {
                let day = days[(i + min) % days.len()];
                out.push(format!(
                    "/api/v1/teams/nearest?specialty={specialty}&min_members={min}&lon={lon}&lat={lat}&max_km={km}{day}"
                ));
            }
        }
    }
    out
}

pub(crate) async fn answer(app: &TestApp, tok: &str, path: &str) -> (Value, String) {
    let r = app.get(tok, path).await.expect(200);
    let source = r.headers.get("x-nearest-source").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.json(), source)
}

/// Asks every question of `indexed` and `truth`; returns how many `indexed` answered from its
/// index. Every answer must be the database's.
pub(crate) async fn compare(indexed: &TestApp, truth: &TestApp, tok: &str) -> usize {
    compare_on(indexed, truth, tok, &questions()).await
}

/// [`compare`] on the given questions (paths of nearest teams or nearest supplies).
pub(crate) async fn compare_on(indexed: &TestApp, truth: &TestApp, tok: &str, questions: &[String]) -> usize {
    let mut from_index = 0;
    for q in questions {
        let (got, source) = answer(indexed, tok, q).await;
        let (want, truth_source) = answer(truth, tok, q).await;
        assert_eq!(truth_source, "database");
        assert_eq!(got, want, "{q} (answered from the {source})");
        from_index += usize::from(source == "index");
    }
    from_index
}

/// Asks until the index answers (it is built in the background after a change).
pub(crate) async fn wait_for_index(app: &TestApp, tok: &str) {
    let q = &questions()[0];
    for _ in 0..400 {
        if answer(app, tok, q).await.1 == "index" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the index never answered");
}

#[tokio::test]
async fn nearest_teams_from_the_index_equal_the_database_even_right_after_writes_elsewhere() {
    let writer = TestApp::spawn().await;
    let indexed = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;

    // Nine teams around the seat at 5–140 km, two townships, mixed skills and policy periods.
    let mut seq = 0;
    let mut ids = Vec::new();
    for (k, (km_e, km_n)) in [
        (5.0, 0.0),
        (0.0, 12.0),
        (-20.0, 8.0),
        (35.0, -30.0),
        (60.0, 60.0),
        (-90.0, 10.0),
        (0.0, -140.0),
        (15.0, 15.0),
        (-3.0, -4.0),
    ]
    .into_iter()
    .enumerate()
    {
        let code = format!("IX{k}");
        let region = if k % 3 == 0 { CHAGANAOBAO } else { MANDULATU };
        let at = (SEAT.0 + km_e / 80.2, SEAT.1 + km_n / 111.2);
        let grade = json!([{"specialty": "grassland_fire", "grade": 1 + k % 3}]);
        new_team(&writer, &admin, &code, region, at, if k % 2 == 0 { grade } else { json!([]) }).await;
        for j in 0..(1 + k % 4) {
            seq += 1;
            let skills: &[&str] = if j % 2 == 0 { &["grassland_fire"] } else { &["grassland_fire", "medical"] };
            let end = ["2026-12-31", "2027-06-30", "2026-11-26", "2028-01-01"][(k + j) % 4];
            ids.push((code.clone(), member(&writer, &admin, &code, seq, skills, "2026-01-01", end).await));
        }
        if k != 4 {
            approve(&writer, &admin, &code).await;
        }
    }
    // One person in two teams counts once across them.
    member(&writer, &admin, "IX1", 1, &["grassland_fire"], "2026-01-01", "2027-01-01").await;

    wait_for_index(&indexed, &admin).await;
    let used = compare(&indexed, &truth, &admin).await;
    assert!(used > 0, "the index answered none of the questions");

    // Writes through another instance; each must show at once on the indexed instance.
    let probe = |km: f64| {
        format!(
            "/api/v1/teams/nearest?specialty=grassland_fire&min_members=1&lon={}&lat={}&max_km={km}",
            SEAT.0, SEAT.1
        )
    };
    let before = answer(&indexed, &admin, &probe(500.0)).await.0;
    let (team, id) = ids[0].clone();
    writer.patch(&admin, &format!("/api/v1/members/{id}"), &json!({"status": "unavailable"})).await.expect(200);
    let (after, _) = answer(&indexed, &admin, &probe(500.0)).await;
    assert_ne!(after, before, "member {id} of {team} became unavailable: the answer must change");
    assert_eq!(after, answer(&truth, &admin, &probe(500.0)).await.0);
    compare(&indexed, &truth, &admin).await;

    wait_for_index(&indexed, &admin).await;
    let before = answer(&indexed, &admin, &probe(500.0)).await.0;
    writer
        .patch(
            &admin,
            &format!("/api/v1/members/{}", ids[1].1),
            &json!({"insurance": [{"insurer": "人保财险", "policy_number": "PX", "start": "2025-01-01", "end": "2025-12-31"}]}),
        )
        .await
        .expect(200);
    let (after, _) = answer(&indexed, &admin, &probe(500.0)).await;
    assert_ne!(after, before, "an insurance change must show at once");
    compare(&indexed, &truth, &admin).await;

    wait_for_index(&indexed, &admin).await;
    let before = answer(&indexed, &admin, &probe(500.0)).await.0;
    writer.post(&admin, "/api/v1/teams/IX2/suspend", &json!({"reason": "整改"})).await.expect(200);
    assert_ne!(answer(&indexed, &admin, &probe(500.0)).await.0, before, "a suspension must show at once");
    compare(&indexed, &truth, &admin).await;

    wait_for_index(&indexed, &admin).await;
    let before = answer(&indexed, &admin, &probe(500.0)).await.0;
    approve(&writer, &admin, "IX4").await;
    assert_ne!(answer(&indexed, &admin, &probe(500.0)).await.0, before, "an approval must show at once");
    wait_for_index(&indexed, &admin).await;
    compare(&indexed, &truth, &admin).await;
}
