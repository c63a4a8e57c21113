//! The staged teams import (`src/forces/csv_teams/`): a large file with bad rows at its end
//! writes nothing and names every line; a team moved or created by another request between the
//! check and the write is a 409 and nothing is written; the audit rows hold the team as the API
//! shows it, as the one-by-one path records it; the nearest-teams index sees imported teams at
//! once; and the staging tables never outlive their import.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::{SEAT, new_team};
use crate::imports_staged::post;
use crate::nearest_index::{compare_on, member, questions, wait_for_index};
use crate::supplies::count;

/// A teams file of `n` rows `{prefix}{i}` named `{name}{i}`, with an optional filing state.
fn teams_csv(prefix: &str, n: usize, name: &str, status: &str) -> String {
    let mut csv = String::from("code,name,org_type,region_code,lon,lat,specialties,grades,filing_status\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{prefix}{i},{name}{i},volunteer_team,{MANDULATU},{:.4},{:.4},grassland_fire;medical,2;,{status}\n",
            SEAT.0 + (i % 50) as f64 * 0.01,
            SEAT.1 + (i / 50) as f64 * 0.01,
        ));
    }
    csv
}

#[tokio::test]
async fn a_large_teams_file_with_bad_rows_at_its_end_writes_nothing_and_names_every_line() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let n = 5_000;
    let good = teams_csv("LT", n, "救援队", "");
    let bad = format!(
        "{good}LT7,重复队,volunteer_team,{MANDULATU},113.6,43.8,medical,,\nLTX,坏队,no_type,{MANDULATU},113.6,43.8,medical,,\n"
    );
    let (status, p) = post(&app, &admin, "/api/v1/import/teams", bad.clone()).await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(2), "{p}");
    assert_eq!(p["errors"][0]["line"], n + 2, "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("与第 9 行重复"), "{p}");
    assert_eq!(
        (p["errors"][1]["line"].as_u64(), p["errors"][1]["field"].as_str()),
        (Some(n as u64 + 3), Some("org_type"))
    );
    // The dry run says the same and writes nothing either.
    let (status, d) = post(&app, &admin, "/api/v1/import/teams?dry_run=true", bad).await;
    assert_eq!((status, d["rows"].as_u64(), d["total_errors"].as_u64()), (200, Some(n as u64 + 2), Some(2)), "{d}");
    assert_eq!(d["errors"], p["errors"]);
    for table in ["teams", "team_specialties", "audit_log WHERE entity_type = 'team'"] {
        assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    let (status, s) = post(&app, &admin, "/api/v1/import/teams", good).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s, json!({"rows": n, "created": n, "updated": 0, "unchanged": 0}));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM team_specialties").await, 2 * n as i64);
    let t = app.get(&admin, &format!("/api/v1/teams/LT{}", n - 1)).await.expect(200).json();
    assert_eq!(
        (t["name"].as_str(), t["filing_status"].as_str()),
        (Some(&*format!("救援队{}", n - 1)), Some("submitted"))
    );
}

/// Runs `sql` in a transaction that commits two seconds after an import of `csv` started, so the
/// import checks the file against the state before it and writes after it.
async fn import_while(app: &TestApp, token: &str, csv: String, sql: &str) -> (u16, Value) {
    let mut tx = app.state.db.begin().await.unwrap();
    yingji::with_tx!(&mut tx, |c| sqlx::query(sql).execute(c).await.map(|_| ())).unwrap();
    let other = async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        tx.commit().await.unwrap();
    };
    let (answer, ()) = tokio::join!(post(app, token, "/api/v1/import/teams", csv), other);
    answer
}

#[tokio::test]
async fn a_team_moved_or_created_by_another_request_meanwhile_is_a_409_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let n = 300;
    assert_eq!(post(&app, &admin, "/api/v1/import/teams", teams_csv("MV", n, "原队", "approved")).await.0, 200);
    let audits = count(&app, "SELECT COUNT(*) FROM audit_log").await;
    // Every team renamed, and a new one.
    let edit = format!("{}NEW1,新队,militia,{MANDULATU},113.6,43.8,medical,,\n", teams_csv("MV", n, "改名队", ""));

    // MV5 is suspended by another request after the check saw it approved.
    let (status, p) =
        import_while(&app, &admin, edit.clone(), "UPDATE teams SET filing_status = 'suspended' WHERE code = 'MV5'")
            .await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("MV5"), "names the team: {p}");
    // NEW1 is registered by another request after the check found no such code.
    let (status, p) = import_while(
        &app,
        &admin,
        edit.clone(),
        "INSERT INTO teams (code, name, org_type, region_code, lon, lat, filing_status, submitted_by, submitted_at, created_at, updated_at)
         SELECT 'NEW1', name, org_type, region_code, lon, lat, filing_status, submitted_by, submitted_at, created_at, updated_at
         FROM teams WHERE code = 'MV1'",
    )
    .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM teams WHERE name LIKE '改名队%'").await, 0, "nothing renamed");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM teams").await, n as i64 + 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log").await, audits, "no audit row");

    // Checked again, the file writes: MV5 keeps its new state (the file does not name one).
    let (status, s) = post(&app, &admin, "/api/v1/import/teams", edit).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!((s["created"].as_u64(), s["updated"].as_u64()), (Some(0), Some(n as u64 + 1)), "{s}");
    let t = app.get(&admin, "/api/v1/teams/MV5").await.expect(200).json();
    assert_eq!((t["name"].as_str(), t["filing_status"].as_str()), (Some("改名队5"), Some("suspended")));

    // A file that suspends every team, while another request sends MV7 back to 'submitted'
    // after the check saw it approved: its filing step finds MV7 no longer approved.
    let suspend = teams_csv("MV", n, "改名队", "suspended");
    let (status, p) =
        import_while(&app, &admin, suspend, "UPDATE teams SET filing_status = 'submitted' WHERE code = 'MV7'").await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("MV7"), "names the team: {p}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM teams WHERE filing_status = 'suspended'").await, 1, "only MV5");
}

/// The audit rows of a team, oldest first: action, before and after state.
async fn audits(app: &TestApp, code: &str) -> Vec<(String, Value, Value)> {
    let rows: Vec<(String, Option<String>, Option<String>)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT action, CAST(before_state AS TEXT), CAST(after_state AS TEXT) FROM audit_log
         WHERE entity_type = 'team' AND entity_id = $1 ORDER BY id"
    )
    .bind(code)
    .fetch_all(p)
    .await
    .unwrap());
    let parse = |s: Option<String>| s.map_or(Value::Null, |s| serde_json::from_str(&s).unwrap());
    rows.into_iter().map(|(a, b, c)| (a, parse(b), parse(c))).collect()
}

#[tokio::test]
async fn imported_teams_are_audited_as_the_api_shows_them_like_one_by_one_writes() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // A team registered through the API, with equipment and a leader whose phone is stored
    // encrypted (shown and audited masked).
    new_team(&app, &admin, "API1", MANDULATU, SEAT, json!([{"specialty": "medical", "grade": 1}])).await;
    let shown_before = app.get(&admin, "/api/v1/teams/API1").await.expect(200).json();
    let created = audits(&app, "API1").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].2, shown_before, "the one-by-one path audits the team as shown");
    let csv = format!(
        "code,name,org_type,region_code,lon,lat,specialties,grades,filing_status,submitted_on\n\
         API1,改名队,volunteer_team,{MANDULATU},113.7,43.9,medical;grassland_fire,1;3,approved,\n\
         NEW1,新队,militia,{MANDULATU},113.6,43.8,transport,,,2026-01-05\n"
    );
    let (status, s) = post(&app, &admin, "/api/v1/import/teams", csv).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!((s["created"].as_u64(), s["updated"].as_u64()), (Some(1), Some(1)));
    let changed = audits(&app, "API1").await;
    assert_eq!(changed.len(), 2);
    let (action, before, after) = &changed[1];
    assert_eq!(action, "import");
    assert_eq!(before, &shown_before, "the state before, as the API showed it");
    assert_eq!(after, &app.get(&admin, "/api/v1/teams/API1").await.expect(200).json(), "the state after");
    assert_eq!(after["leader"]["phone"], shown_before["leader"]["phone"], "the phone is kept (masked)");
    assert!(after["leader"]["phone"].as_str().unwrap().contains('*'), "{after}");
    assert_eq!(after["filing_status"], "approved");
    assert!(after["approved_by"].as_str().is_some_and(|a| a.starts_with("admin")), "{after}");
    let new = audits(&app, "NEW1").await;
    assert_eq!(new.len(), 1);
    assert_eq!((new[0].0.as_str(), &new[0].1), ("import", &Value::Null));
    assert_eq!(new[0].2, app.get(&admin, "/api/v1/teams/NEW1").await.expect(200).json());
    // The same keys as the one-by-one path records.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&new[0].2), keys(&created[0].2));
    // The stored row of the new team: what `teams::create` stores (no leader, empty equipment).
    let (equipment, leader): (String, Option<String>) = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT CAST(equipment AS TEXT), leader_phone FROM teams WHERE code = 'NEW1'"
    )
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!((equipment.as_str(), leader), ("[]", None));
}

#[tokio::test]
async fn the_nearest_teams_index_sees_imported_teams_at_once() {
    let writer = TestApp::spawn().await;
    let indexed = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;
    let file = |lon_shift: f64, last: &str| {
        let mut csv = String::from("code,name,org_type,region_code,lon,lat,specialties,grades,filing_status\n");
        for k in 0..6 {
            let status = if k == 5 { last } else { "approved" };
            csv.push_str(&format!(
                "NX{k},队{k},volunteer_team,{MANDULATU},{:.4},{:.4},grassland_fire,{},{status}\n",
                SEAT.0 + lon_shift + k as f64 * 0.15,
                SEAT.1 - k as f64 * 0.1,
                1 + k % 3
            ));
        }
        csv
    };
    assert_eq!(post(&writer, &admin, "/api/v1/import/teams", file(0.0, "approved")).await.0, 200);
    for k in 0..6 {
        member(&writer, &admin, &format!("NX{k}"), k + 1, &["grassland_fire"], "2026-01-01", "2027-12-31").await;
    }
    wait_for_index(&indexed, &admin).await;
    let asked = questions();
    assert!(compare_on(&indexed, &truth, &admin, &asked).await > 0, "the index answered none");
    // Moved teams and one suspended: the indexed instance answers the new state at once.
    let (status, s) = post(&writer, &admin, "/api/v1/import/teams", file(0.4, "suspended")).await;
    assert_eq!((status, s["updated"].as_u64()), (200, Some(6)), "{s}");
    compare_on(&indexed, &truth, &admin, &asked).await;
    let near = format!(
        "/api/v1/teams/nearest?specialty=grassland_fire&min_members=1&lon={}&lat={}&max_km=500",
        SEAT.0, SEAT.1
    );
    let v = indexed.get(&admin, &near).await.expect(200).json();
    assert!(!v.to_string().contains("NX5"), "the suspended team is gone: {v}");
    assert!(v.to_string().contains("NX4"), "{v}");
}

#[tokio::test]
async fn the_teams_staging_tables_do_not_outlive_their_import_on_a_pool_of_one_connection() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.db.max_connections = 1).await;
    let admin = app.admin().await;
    let bad = format!("{}PX,坏队,no_type,{MANDULATU},113.6,43.8,,,\n", teams_csv("PA", 500, "队", ""));
    // A failed import, a dry run, then two good ones: each stages in tables of the same names.
    assert_eq!(post(&app, &admin, "/api/v1/import/teams", bad).await.0, 422);
    let (status, v) = post(&app, &admin, "/api/v1/import/teams?dry_run=true", teams_csv("PA", 500, "队", "")).await;
    assert_eq!((status, v["rows"].as_u64(), v["total_errors"].as_u64()), (200, Some(500), Some(0)), "{v}");
    assert_eq!(post(&app, &admin, "/api/v1/import/teams", teams_csv("PA", 500, "队", "")).await.1["created"], 500);
    assert_eq!(post(&app, &admin, "/api/v1/import/teams", teams_csv("PB", 500, "队", "")).await.1["created"], 500);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM teams").await, 1000);
}
