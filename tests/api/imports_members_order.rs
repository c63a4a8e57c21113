//! A large members file (more than 5,000 new members) is written on SQLite in blind-index order
//! (`forces::csv_members::prepare`): every new member still gets exactly its own row's details,
//! person key and audit row, the ids are one consecutive block, and a small file keeps the file's
//! order. On PostgreSQL the same checks hold with the file's order.

use serde_json::Value;

use crate::common::*;
use crate::supplies::count;

/// A valid ID number (GB 11643 check digit) for the `i`th person.
fn person(i: u32) -> String {
    let base = format!("1525231981{:02}{:02}{:03}", 1 + i / 28_000 % 12, 1 + i / 1000 % 28, i % 1000);
    let w = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.bytes().zip(w).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{base}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// Rows of a query as strings.
async fn rows(app: &TestApp, sql: &str) -> Vec<(String, String)> {
    yingji::with_db!(&app.state.db, |p| sqlx::query_as(sql).fetch_all(p).await.unwrap())
}

#[tokio::test]
async fn a_large_members_file_gives_every_new_member_its_own_rows_details_keys_and_audit() {
    const N: u32 = 5_200;
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut teams = String::from("code,name,org_type,region_code,lon,lat\n");
    for t in 1..=40 {
        teams.push_str(&format!("BT{t},救援队{t},volunteer_team,{MANDULATU},113.6,43.8\n"));
    }
    app.post_csv(&admin, "/api/v1/import/teams", &teams).await.expect(200);
    // One member first, so the new ids start after a stored one.
    let small = format!(
        "team_code,name,id_number,skills\nBT1,先来者,{},medical\nBT2,后来者,{},snow_rescue\n",
        person(90_000),
        person(90_001)
    );
    let s = app.post_csv(&admin, "/api/v1/import/members", &small).await.expect(200).json();
    assert_eq!(s["created"], 2, "{s}");
    // A small file keeps the file's order.
    let names = rows(&app, "SELECT name, CAST(id AS TEXT) FROM members ORDER BY id").await;
    assert_eq!(names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["先来者", "后来者"]);

    let mut csv = String::from(
        "team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,certificate_kind,certificate_number,certificate_issued\n",
    );
    for i in 0..N {
        let skill = if i % 2 == 0 { "medical" } else { "medical;water_rescue" };
        csv.push_str(&format!(
            "BT{},队员{i},{},139{i:08},\"{skill}\",人保,P{i},2026-01-01,2026-12-31,红十字救护员证,C{i},2025-06-01\n",
            1 + i % 40,
            person(i)
        ));
    }
    let s = app.post_csv(&admin, "/api/v1/import/members", &csv).await.expect(200).json();
    assert_eq!(s["created"], N, "{s}");

    // One consecutive block of ids after the stored members.
    let block = count(&app, "SELECT MAX(id) - MIN(id) + 1 FROM members WHERE name LIKE '队员%'").await;
    assert_eq!(block, i64::from(N));
    assert_eq!(count(&app, "SELECT MIN(id) FROM members WHERE name LIKE '队员%'").await, 3);
    // Each member's team, policy, certificate and skills are those of its own line.
    let wrong = count(
        &app,
        "SELECT COUNT(*) FROM members m JOIN teams t ON t.id = m.team_id JOIN member_insurance i ON i.member_id = m.id
         JOIN member_certificates c ON c.member_id = m.id
         WHERE m.name LIKE '队员%' AND (i.policy_number <> 'P' || substr(m.name, 3) OR c.number <> 'C' || substr(m.name, 3)
           OR t.code <> 'BT' || (1 + CAST(substr(m.name, 3) AS INTEGER) % 40))",
    )
    .await;
    assert_eq!(wrong, 0);
    let skills = count(
        &app,
        "SELECT COUNT(*) FROM member_skills k JOIN members m ON m.id = k.member_id WHERE m.name LIKE '队员%'
           AND (k.specialty = 'medical' OR CAST(substr(m.name, 3) AS INTEGER) % 2 = 1)",
    )
    .await;
    assert_eq!(skills, i64::from(N + N / 2));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM person_keys k JOIN members m ON m.id = k.member_id").await,
        i64::from(N) + 2
    );
    // One audit row each, naming the member by id, its view carrying that id and its team.
    let audited = rows(
        &app,
        "SELECT a.entity_id, CAST(a.after_state AS TEXT) FROM audit_log a WHERE a.entity_type = 'member' AND a.action = 'import'",
    )
    .await;
    assert_eq!(audited.len(), N as usize + 2);
    let teams: std::collections::HashMap<String, String> =
        rows(&app, "SELECT CAST(m.id AS TEXT), t.code FROM members m JOIN teams t ON t.id = m.team_id")
            .await
            .into_iter()
            .collect();
    for (id, after) in &audited {
        let v: Value = serde_json::from_str(after).unwrap();
        assert_eq!(v["id"].as_i64().map(|i| i.to_string()).as_deref(), Some(id.as_str()), "{after}");
        assert_eq!(v["team_code"].as_str(), teams.get(id).map(String::as_str), "{after}");
    }
    // Shown like any member: the list of a team names each of its own.
    let list = app.get(&admin, "/api/v1/teams/BT3/members?limit=200").await.expect(200).json();
    assert_eq!(list["total"], i64::from(N / 40));
    for m in list["items"].as_array().unwrap() {
        let i: u32 = m["name"].as_str().unwrap()[6..].parse().unwrap();
        assert_eq!(1 + i % 40, 3, "{m}");
        assert_eq!(m["insurance"][0]["policy_number"], format!("P{i}"));
    }
}
