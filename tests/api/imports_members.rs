//! A member imported from a members file is stored, shown, revealed and audited exactly as one
//! added through the API: encrypted ID number and phone, masked by default, in full only for an
//! allowed role that asks (and that reveal audited), audit rows with the personal fields sealed
//! under the person's own key.

use serde_json::{Value, json};

use crate::common::*;
use crate::supplies::count;

/// A valid ID number (GB 11643 check digit) from its first 17 digits.
fn id_number(base: &str) -> String {
    let w = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.bytes().zip(w).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{base}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// The audit view of a member's creation, with its sealed personal fields opened.
async fn audited(app: &TestApp, member: i64, action: &str) -> (Value, Value) {
    let (after,): (String,) = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_as(
        "SELECT CAST(after_state AS TEXT) FROM audit_log WHERE entity_type = 'member' AND entity_id = $1 AND action = $2"
    )
    .bind(member.to_string())
    .bind(action)
    .fetch_one(p)
    .await
    .unwrap()
    });
    let (key,): (String,) =
        yingji::with_db!(&app.state.db, |p| sqlx::query_as("SELECT key_enc FROM person_keys WHERE member_id = $1")
            .bind(member)
            .fetch_one(p)
            .await
            .unwrap());
    let mut after: Value = serde_json::from_str(&after).unwrap();
    let sealed = after.as_object_mut().unwrap().remove("personal").unwrap();
    let key = app.state.cipher.open_person_key(&key).expect("the person key opens");
    let personal = serde_json::from_str(&key.decrypt(sealed.as_str().unwrap()).expect("sealed under it")).unwrap();
    (after, personal)
}

#[tokio::test]
async fn an_imported_member_is_stored_shown_revealed_and_audited_like_one_added_through_the_api() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let teams =
        format!("code,name,org_type,region_code,lon,lat\nBT1,草原救援队,volunteer_team,{MANDULATU},113.6,43.8\n");
    app.post_csv(&admin, "/api/v1/import/teams", &teams).await.expect(200);
    let (one, two) = (id_number("15252319800101001"), id_number("15252319800101002"));
    let by_api = app
        .post(
            &admin,
            "/api/v1/teams/BT1/members",
            &json!({
                "name": "张三", "id_number": one, "phone": "13900000001", "skills": ["medical"],
                "certificates": [{"kind": "红十字救护员证", "number": "C1", "issued": "2025-06-01"}],
                "insurance": [{"insurer": "人保", "policy_number": "P1", "start": "2026-01-01", "end": "2026-12-31"}]
            }),
        )
        .await
        .expect(201)
        .json();
    let csv = format!(
        "team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,certificate_kind,certificate_number,certificate_issued\n\
         BT1,张三,{two},13900000002,medical,人保,P1,2026-01-01,2026-12-31,红十字救护员证,C1,2025-06-01\n"
    );
    let s = app.post_csv(&admin, "/api/v1/import/members", &csv).await.expect(200).json();
    assert_eq!(s["created"], 1, "{s}");
    let list = app.get(&admin, "/api/v1/teams/BT1/members").await.expect(200).json();
    let imported = list["items"].as_array().unwrap().iter().find(|m| m["id"] != by_api["id"]).cloned().unwrap();
    let (a, b) = (by_api["id"].as_i64().unwrap(), imported["id"].as_i64().unwrap());

    // Shown alike (masked), apart from the numbers themselves and the ids.
    let shown = |id: i64| {
        let app = &app;
        let admin = admin.clone();
        async move { app.get(&admin, &format!("/api/v1/members/{id}")).await.expect(200).json() }
    };
    let (mut x, mut y) = (shown(a).await, shown(b).await);
    assert_eq!(x["id_number"], format!("{}**********{}", &one[..4], &one[14..]));
    assert_eq!(y["id_number"], format!("{}**********{}", &two[..4], &two[14..]));
    assert_eq!((x["phone"].as_str(), y["phone"].as_str()), (Some("139****0001"), Some("139****0002")));
    for v in [&mut x, &mut y] {
        for k in ["id", "id_number", "phone", "created_at", "updated_at"] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    assert_eq!(x, y, "the same member data, shown the same way");

    // Stored alike: encrypted, with the keyed hash; re-adding the imported person is a conflict.
    let stored: Vec<(String, String, String)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT id_number, id_index, phone FROM members ORDER BY id"
    )
    .fetch_all(p)
    .await
    .unwrap());
    for (id, index, phone) in &stored {
        assert!(id.starts_with("v2:") && !id.contains("1525231980"), "{id}");
        assert!(phone.starts_with("v2:") && !phone.contains("13900"), "{phone}");
        assert_eq!(index.len(), 64);
    }
    app.post(&admin, "/api/v1/teams/BT1/members", &json!({"name": "张三", "id_number": two})).await.problem(409);

    // Revealed in full only to a role allowed to, and only when asked; each reveal audited.
    let operator = app.token("operator", MANDULATU).await;
    app.get(&operator, &format!("/api/v1/members/{b}?reveal=true")).await.problem(403);
    let full = app.get(&admin, &format!("/api/v1/members/{b}?reveal=true")).await.expect(200).json();
    assert_eq!((full["id_number"].as_str(), full["phone"].as_str()), (Some(two.as_str()), Some("13900000002")));
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'reveal' AND entity_id = '{b}'")).await,
        1
    );

    // Audited alike: the personal fields only sealed under the person's own key.
    let (mut after_a, mut personal_a) = audited(&app, a, "create").await;
    let (mut after_b, mut personal_b) = audited(&app, b, "import").await;
    assert_eq!(after_b["id"], b);
    for v in [&mut after_a, &mut after_b] {
        for k in ["id", "created_at", "updated_at"] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    assert_eq!(after_a, after_b, "the same audit view outside the sealed part");
    assert_eq!(personal_b["id_number"], format!("{}**********{}", &two[..4], &two[14..]));
    for v in [&mut personal_a, &mut personal_b] {
        for k in ["id_number", "phone"] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    assert_eq!(personal_a, personal_b, "the same sealed personal fields");
}

/// The ID number of the `i`th person of a generated file (born on a day of 1980 by `i / 1000`).
fn person(i: u32) -> String {
    let day = i / 1000;
    id_number(&format!("1525231980{:02}{:02}{:03}", 1 + day / 28 % 12, 1 + day % 28, i % 1000))
}

/// A members file of `n` rows over teams `BT1`…`BT{teams}`: each with a phone, a skill, a policy
/// and a certificate.
fn members_file(n: u32, teams: u32) -> String {
    let mut csv = String::from(
        "team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,certificate_kind,certificate_number,certificate_issued\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "BT{},队员{i},{},139{i:08},medical,人保,P{i},2026-01-01,2026-12-31,红十字救护员证,C{i},2025-06-01\n",
            1 + i % teams,
            person(i)
        ));
    }
    csv
}

async fn teams(app: &TestApp, admin: &str, n: u32) {
    let mut csv = String::from("code,name,org_type,region_code,lon,lat\n");
    for t in 1..=n {
        csv.push_str(&format!("BT{t},救援队{t},volunteer_team,{MANDULATU},113.6,43.8\n"));
    }
    app.post_csv(admin, "/api/v1/import/teams", &csv).await.expect(200);
}

async fn nothing_written(app: &TestApp) {
    for table in ["members", "member_skills", "member_certificates", "member_insurance", "person_keys"] {
        assert_eq!(count(app, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    assert_eq!(count(app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member'").await, 0);
}

#[tokio::test]
async fn a_large_members_file_naming_a_person_twice_in_its_last_row_writes_nothing_and_names_both_lines() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    teams(&app, &admin, 20).await;
    let n = 3_000;
    let good = members_file(n, 20);
    // The last row names the person of line 2 again (same team, same ID number): found only by
    // the check across the staged rows, after the whole file is read.
    let first = good.lines().nth(1).unwrap().to_string();
    let bad = format!("{good}{}\n", first.replace("队员0", "又是队员0"));
    let p = app.post_csv(&admin, "/api/v1/import/members", &bad).await.problem(422);
    assert_eq!(p["errors"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(
        (p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()),
        (Some(n as u64 + 2), Some("id_number")),
        "{p}"
    );
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("第 2 行"), "{p}");
    nothing_written(&app).await;
    // The dry run of the same file says the same and writes nothing either.
    let v = app.post_csv(&admin, "/api/v1/import/members?dry_run=true", &bad).await.expect(200).json();
    assert_eq!((v["rows"].as_u64(), v["total_errors"].as_u64()), (Some(n as u64 + 1), Some(1)), "{v}");
    nothing_written(&app).await;
    let s = app.post_csv(&admin, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s, json!({"rows": n, "created": n, "updated": 0, "unchanged": 0}));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM person_keys").await, n as i64);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member' AND action = 'import'").await,
        n as i64
    );
}

/// The import of `csv` by a banner admin, with `meanwhile` run between its check and its write.
async fn import_with_meanwhile(
    app: &TestApp,
    csv: &str,
    meanwhile: impl std::future::Future<Output = ()>,
) -> yingji::error::ApiResult<yingji::imports::ImportSummary> {
    let principal = yingji::auth::Principal {
        user_id: 0,
        name: "测试".into(),
        role: yingji::auth::Role::Admin,
        scope: yingji::auth::Scope::of(&yingji::regions::RegionCode::parse(BANNER).unwrap()),
        token_id: 0,
    };
    let now = yingji::time::Timestamp(chrono::Utc::now());
    let imp = yingji::forces::csv_members::MemberImport::for_tests(principal, app.state.cipher.clone(), now);
    let body = yingji::imports::Upload::Memory(bytes::Bytes::from(csv.to_string()));
    yingji::imports::staged::run_with_meanwhile(&imp, &app.state.db, body, meanwhile).await
}

#[tokio::test]
async fn a_member_changed_or_registered_between_the_check_and_the_write_is_a_conflict_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    teams(&app, &admin, 2).await;
    let good = members_file(10, 2);
    app.post_csv(&admin, "/api/v1/import/members", &good).await.expect(200);
    let audits = count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member'").await;

    // Every member gets a new phone and member 3 becomes unavailable; meanwhile a call-up
    // deploys member 3 (its status changes under the import).
    let edit = good.replace(",139", ",137");
    let mut edit_lines: Vec<String> = edit.lines().map(str::to_string).collect();
    edit_lines[0].push_str(",status");
    for (i, l) in edit_lines.iter_mut().enumerate().skip(1) {
        l.push_str(if i == 4 { ",unavailable" } else { "," });
    }
    let edit = edit_lines.join("\n") + "\n";
    let db = app.state.db.clone();
    let r = import_with_meanwhile(&app, &edit, async move {
        yingji::with_db!(&db, |p| sqlx::query("UPDATE members SET status = 'deployed' WHERE name = '队员3'")
            .execute(p)
            .await
            .map(|_| ())
            .unwrap());
    })
    .await;
    assert!(matches!(r, Err(yingji::error::ApiError::Conflict(_))), "{r:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM members WHERE phone IS NOT NULL").await, 10);
    let list = app.get(&admin, "/api/v1/teams/BT1/members").await.expect(200).json();
    for m in list["items"].as_array().unwrap() {
        assert!(m["phone"].as_str().unwrap().starts_with("139"), "nothing written: {m}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member'").await, audits);

    // A new person in the file registered through the API meanwhile: a conflict, nothing written.
    let newcomer = person(99_999);
    let file = format!("{good}BT1,新队员,{newcomer},13900000099,,,,,,,,\n");
    let (app2, admin2) = (&app, admin.clone());
    let r = import_with_meanwhile(&app, &file, async move {
        app2.post(&admin2, "/api/v1/teams/BT1/members", &json!({"name": "新队员", "id_number": newcomer}))
            .await
            .expect(201);
    })
    .await;
    assert!(matches!(r, Err(yingji::error::ApiError::Conflict(_))), "{r:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM members").await, 11, "only the one added through the API");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member' AND action = 'import'").await,
        audits
    );
}

#[tokio::test]
async fn the_members_staging_tables_do_not_outlive_their_import_on_a_pool_of_one_connection() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.db.max_connections = 1).await;
    let admin = app.admin().await;
    teams(&app, &admin, 3).await;
    let good = members_file(300, 3);
    let bad = format!("{good}BT9,无队之人,{},,,,,,,,,\n", person(99_998));
    // A failed import, a dry run, then a good one and the same file again: each stages in
    // tables of the same names on the one connection.
    let p = app.post_csv(&admin, "/api/v1/import/members", &bad).await.problem(422);
    assert_eq!((p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()), (Some(302), Some("team_code")));
    let v = app.post_csv(&admin, "/api/v1/import/members?dry_run=true", &good).await.expect(200).json();
    assert_eq!((v["rows"].as_u64(), v["total_errors"].as_u64()), (Some(300), Some(0)), "{v}");
    let s = app.post_csv(&admin, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s["created"], 300, "{s}");
    let s = app.post_csv(&admin, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s["unchanged"], 300, "{s}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM members").await, 300);
}

#[tokio::test]
async fn the_nearest_teams_see_imported_members_at_once_from_the_index_as_from_the_database() {
    use crate::forces::{SEAT, approve, new_team};
    use crate::nearest_index::{answer, compare, wait_for_index};
    let writer = TestApp::spawn().await;
    let indexed = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;
    for k in 0..4 {
        let code = format!("NT{k}");
        new_team(&writer, &admin, &code, MANDULATU, (SEAT.0 + 0.05 * k as f64, SEAT.1), json!([])).await;
        approve(&writer, &admin, &code).await;
    }
    let probe =
        format!("/api/v1/teams/nearest?specialty=medical&min_members=2&lon={}&lat={}&max_km=100", SEAT.0, SEAT.1);
    wait_for_index(&indexed, &admin).await;
    let before = answer(&indexed, &admin, &probe).await.0;
    // Three medical members insured for years in each team, written by set-based statements.
    let mut csv = String::from("team_code,name,id_number,skills,insurer,policy_number,insurance_start,insurance_end\n");
    for i in 0..12 {
        csv.push_str(&format!("NT{},队员{i},{},medical,人保,P{i},2025-01-01,2035-12-31\n", i % 4, person(i)));
    }
    let s = writer.post_csv(&admin, "/api/v1/import/members", &csv).await.expect(200).json();
    assert_eq!(s["created"], 12, "{s}");
    let (after, _) = answer(&indexed, &admin, &probe).await;
    assert_ne!(after, before, "the imported members must show at once");
    assert_eq!(after, answer(&truth, &admin, &probe).await.0);
    assert_eq!(after["items"].as_array().map(Vec::len), Some(4), "{after}");
    wait_for_index(&indexed, &admin).await;
    compare(&indexed, &truth, &admin).await;
    // An import that makes members unavailable shows at once too.
    let mut off = String::from("team_code,name,id_number,status\n");
    for i in 0..4 {
        off.push_str(&format!("NT{},队员{i},{},unavailable\n", i % 4, person(i)));
    }
    let s = writer.post_csv(&admin, "/api/v1/import/members", &off).await.expect(200).json();
    assert_eq!(s["updated"], 4, "{s}");
    let (now, _) = answer(&indexed, &admin, &probe).await;
    assert_eq!(now["items"].as_array().map(Vec::len), Some(4), "two left in each team: {now}");
    assert_eq!(now, answer(&truth, &admin, &probe).await.0);
    wait_for_index(&indexed, &admin).await;
    compare(&indexed, &truth, &admin).await;
}

/// Imports of more than 5,000 teams, and of members of more than 5,000 teams, log "every team"
/// once instead of a change-log row per team, specialty, member, skill and policy (migration
/// 0030, `imports::staged::BulkLog`): the nearest-teams index of another instance still answers
/// what the database answers right after each import, no mark is left behind, and a later write is
/// logged by its own team again.
#[tokio::test]
async fn imports_of_thousands_of_teams_and_members_log_every_team_once_and_the_index_sees_them() {
    use crate::forces::SEAT;
    use crate::nearest_index::{answer, compare, wait_for_index};
    const TEAMS: u32 = 5_100;
    let writer = TestApp::spawn().await;
    let indexed = TestApp::spawn_with(None, &writer.db_url, |_| {}).await;
    let truth = TestApp::spawn_with(None, &writer.db_url, |c| c.nearest_index = false).await;
    let admin = writer.admin().await;
    let probe =
        format!("/api/v1/teams/nearest?specialty=medical&min_members=1&lon={}&lat={}&max_km=100", SEAT.0, SEAT.1);
    wait_for_index(&indexed, &admin).await;
    let before = answer(&indexed, &admin, &probe).await.0;

    let mut csv = String::from("code,name,org_type,region_code,lon,lat,filing_status\n");
    for t in 1..=TEAMS {
        let (lon, lat) = (SEAT.0 + f64::from(t % 70) * 0.003, SEAT.1 + f64::from(t / 70) * 0.003);
        csv.push_str(&format!("BT{t},救援队{t},volunteer_team,{MANDULATU},{lon:.4},{lat:.4},approved\n"));
    }
    let s = writer.post_csv(&admin, "/api/v1/import/teams", &csv).await.expect(200).json();
    assert_eq!(s["created"], TEAMS, "{s}");
    let mut csv = String::from("team_code,name,id_number,skills,insurer,policy_number,insurance_start,insurance_end\n");
    for i in 0..TEAMS {
        csv.push_str(&format!("BT{},队员{i},{},medical,人保,P{i},2025-01-01,2035-12-31\n", i + 1, person(i)));
    }
    let s = writer.post_csv(&admin, "/api/v1/import/members", &csv).await.expect(200).json();
    assert_eq!(s["created"], TEAMS, "{s}");
    let (after, _) = answer(&indexed, &admin, &probe).await;
    assert_ne!(after, before, "the imported teams and members must show at once");
    assert_eq!(after, answer(&truth, &admin, &probe).await.0);
    // Logged as every team (SQLite keeps a row per key, PostgreSQL one per transaction and key),
    // with no mark left behind.
    let logged = count(&writer, "SELECT COUNT(*) FROM change_log WHERE name = 'forces'").await;
    assert!(logged < 100, "{logged} change log rows for the imports");
    assert!(count(&writer, "SELECT COUNT(*) FROM change_log WHERE name = 'forces' AND key = -1").await >= 1);
    if writer.db_url.starts_with("sqlite") {
        assert_eq!(count(&writer, "SELECT COUNT(*) FROM change_log_bulk").await, 0);
    }
    wait_for_index(&indexed, &admin).await;
    compare(&indexed, &truth, &admin).await;

    // A later import of one row is logged by its team, and shows at once.
    let team = count(&writer, "SELECT id FROM teams WHERE code = 'BT1'").await;
    let keyed = format!("SELECT COUNT(*) FROM change_log WHERE name = 'forces' AND key = {team}");
    let before_one = count(&writer, &keyed).await;
    let off = format!("team_code,name,id_number,status\nBT1,队员0,{},unavailable\n", person(0));
    let s = writer.post_csv(&admin, "/api/v1/import/members", &off).await.expect(200).json();
    assert_eq!(s["updated"], 1, "{s}");
    if !writer.db_url.starts_with("sqlite") {
        assert!(count(&writer, &keyed).await > before_one, "the team of the one member must be logged");
    } else {
        assert_eq!(count(&writer, &keyed).await, 1, "the team of the one member must be logged");
    }
    let (now, _) = answer(&indexed, &admin, &probe).await;
    assert_eq!(now, answer(&truth, &admin, &probe).await.0);
    assert_ne!(now, after, "the member made unavailable must count");
}
