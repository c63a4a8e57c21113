//! Teams and members imports written in bulk: all or nothing on a large file whose last row is
//! bad, personal data stored encrypted and audited sealed as one-by-one writes do, edits that
//! still go through the status checks; and an upload over the size limit (413, nothing written).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::supplies::count;

/// A valid ID number (GB 11643 check digit), distinct for every `seq` below 1,000,000.
fn person(seq: u32) -> String {
    let born = chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap() + chrono::Days::new(u64::from(seq / 1000));
    let base = format!("152523{}{:03}", born.format("%Y%m%d"), seq % 1000);
    let w = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.bytes().zip(w).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{base}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

fn teams_csv(n: usize, name: &str) -> String {
    let mut csv = String::from("code,name,org_type,region_code,lon,lat,specialties,grades\n");
    for i in 0..n {
        csv.push_str(&format!(
            "BT{i:05},{name}{i},volunteer_team,{MANDULATU},{:.4},43.85,medical;grassland_fire,2;\n",
            113.0 + (i % 500) as f64 * 0.001
        ));
    }
    csv
}

fn members_csv(n: usize, teams: usize) -> String {
    let mut csv = String::from(
        "team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,certificate_kind,certificate_number,certificate_issued\n",
    );
    for i in 0..n {
        csv.push_str(&format!(
            "BT{:05},队员{i},{},139{i:08},medical,人保,P{i},2026-01-01,2026-12-31,红十字救护员证,C{i},2025-06-01\n",
            i % teams,
            person(i as u32)
        ));
    }
    csv
}

#[tokio::test]
async fn a_large_teams_file_with_a_bad_last_row_writes_nothing_and_a_good_one_writes_every_team() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let n = 3_000;
    let good = teams_csv(n, "救援队");
    let bad = format!("{good}BT99999,坏队,no_type,{MANDULATU},113.6,43.8,medical,\n");
    let p = app.post_csv(&admin, "/api/v1/import/teams", &bad).await.problem(422);
    assert_eq!(p["errors"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["errors"][0]["line"], n + 2, "the last line: {p}");
    assert_eq!(p["errors"][0]["field"], "org_type", "{p}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM teams").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM team_specialties").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'team'").await, 0);

    let s = app.post_csv(&admin, "/api/v1/import/teams", &good).await.expect(200).json();
    assert_eq!((s["rows"].as_u64(), s["created"].as_u64()), (Some(n as u64), Some(n as u64)), "{s}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM teams").await, n as i64);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM team_specialties").await, 2 * n as i64);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'team' AND action = 'import'").await,
        n as i64
    );
    let t = app.get(&admin, "/api/v1/teams/BT02999").await.expect(200).json();
    assert_eq!(t["name"], "救援队2999");
    assert_eq!(t["filing_status"], "submitted");
    assert_eq!(t["specialties"][0]["specialty"], "medical");
    assert_eq!(t["specialties"][0]["grade"], 2);
    assert!(t["specialties"][1]["grade"].is_null(), "{t}");

    // The same file again changes nothing; renaming every team and approving one updates them.
    let s = app.post_csv(&admin, "/api/v1/import/teams", &good).await.expect(200).json();
    assert_eq!(s["unchanged"], n, "{s}");
    let mut renamed = String::from("code,name,org_type,region_code,lon,lat,specialties,grades,filing_status\n");
    for (i, line) in teams_csv(n, "应急队").lines().skip(1).enumerate() {
        renamed.push_str(&format!("{line},{}\n", if i == 0 { "approved" } else { "" }));
    }
    let s = app.post_csv(&admin, "/api/v1/import/teams", &renamed).await.expect(200).json();
    assert_eq!(s["updated"], n, "{s}");
    let t = app.get(&admin, "/api/v1/teams/BT00000").await.expect(200).json();
    assert_eq!((t["name"].as_str(), t["filing_status"].as_str()), (Some("应急队0"), Some("approved")), "{t}");
    assert_eq!(app.get(&admin, "/api/v1/teams/BT01234").await.expect(200).json()["name"], "应急队1234");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM team_specialties").await, 2 * n as i64);
    let audit: Vec<(Option<String>,)> = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_as(
        "SELECT CAST(before_state AS TEXT) FROM audit_log WHERE entity_type = 'team' AND entity_id = 'BT00000' ORDER BY id"
    )
    .fetch_all(p)
    .await
    .unwrap()
    });
    assert_eq!(audit.len(), 2, "created, then updated");
    assert!(audit[0].0.is_none() && audit[1].0.as_deref().unwrap_or("").contains("救援队0"), "{audit:?}");
}

#[tokio::test]
async fn a_large_members_file_is_all_or_nothing_and_stores_personal_data_as_one_by_one_writes_do() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let teams = 40;
    app.post_csv(&admin, "/api/v1/import/teams", &teams_csv(teams, "救援队")).await.expect(200);
    let n = 4_000;
    let good = members_csv(n, teams);
    assert!(good.len() > 256 * 1024, "large enough to be spooled to a temporary file");
    // The last row's ID number has a wrong check digit: nothing at all is written.
    let mut last = person(n as u32);
    last.replace_range(17.., if last.ends_with('1') { "2" } else { "1" });
    let bad = format!("{good}BT00000,最后一人,{last},,,,,,,,,\n");
    let p = app.post_csv(&admin, "/api/v1/import/members", &bad).await.problem(422);
    assert_eq!(p["errors"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(
        (p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()),
        (Some(n as u64 + 2), Some("id_number")),
        "{p}"
    );
    for table in ["members", "member_skills", "member_certificates", "member_insurance", "person_keys"] {
        assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member'").await, 0);

    let s = app.post_csv(&admin, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s["created"], n, "{s}");
    for (table, want) in
        [("members", n), ("member_skills", n), ("member_certificates", n), ("member_insurance", n), ("person_keys", n)]
    {
        assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM {table}")).await, want as i64, "{table}");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member' AND action = 'import'").await,
        n as i64
    );
    // Stored encrypted (never the plain number), indexed by the keyed hash; shown masked.
    let stored: Vec<(String, String, Option<String>)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT id_number, id_index, phone FROM members ORDER BY id LIMIT 50"
    )
    .fetch_all(p)
    .await
    .unwrap());
    for (id, index, phone) in &stored {
        assert!(id.starts_with("v2:") && !id.contains("152523"), "{id}");
        assert_eq!(index.len(), 64);
        assert!(phone.as_deref().is_some_and(|p| p.starts_with("v2:") && !p.contains("1390000")));
    }
    let list = app.get(&admin, "/api/v1/teams/BT00001/members").await.expect(200).json();
    let m = list["items"].as_array().unwrap().iter().find(|m| m["name"] == "队员1").cloned().unwrap();
    assert_eq!(m["id_number"], format!("{}**********{}", &person(1)[..4], &person(1)[14..]));
    assert_eq!(m["phone"], "139****0001");
    assert_eq!(m["insured_today"], true);
    assert_eq!(m["certificates"][0]["number"], "C1");
    // Audit rows keep the personal fields only sealed under the person's key.
    let after: Vec<(String,)> = yingji::with_db!(&app.state.db, |p| sqlx::query_as(
        "SELECT CAST(after_state AS TEXT) FROM audit_log WHERE entity_type = 'member' LIMIT 20"
    )
    .fetch_all(p)
    .await
    .unwrap());
    for (a,) in &after {
        assert!(a.contains("\"personal\""), "{a}");
        assert!(!a.contains("队员") && !a.contains("**********") && !a.contains("红十字"), "{a}");
    }
    // Re-adding the same person through the API is still a conflict (same blind index).
    let dup = serde_json::json!({"name": "队员1", "id_number": person(1)});
    app.post(&admin, "/api/v1/teams/BT00001/members", &dup).await.problem(409);

    // The same file again changes nothing; a changed phone and a status change update them.
    let s = app.post_csv(&admin, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s["unchanged"], n, "{s}");
    let mut edit = String::from("team_code,name,id_number,phone,status\n");
    for i in 0..n {
        edit.push_str(&format!(
            "BT{:05},队员{i},{},138{i:08},{}\n",
            i % teams,
            person(i as u32),
            if i == 1 { "unavailable" } else { "available" }
        ));
    }
    let s = app.post_csv(&admin, "/api/v1/import/members", &edit).await.expect(200).json();
    assert_eq!(s["updated"], n, "{s}");
    let list = app.get(&admin, "/api/v1/teams/BT00001/members").await.expect(200).json();
    let m: Value = list["items"].as_array().unwrap().iter().find(|m| m["name"] == "队员1").cloned().unwrap();
    assert_eq!((m["phone"].as_str(), m["status"].as_str()), (Some("138****0001"), Some("unavailable")), "{m}");
    assert_eq!(m["certificates"].as_array().unwrap().len(), 1, "certificates are kept");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM person_keys").await, n as i64, "one key per person");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'member'").await, 2 * n as i64);
}

/// Sends `bytes` bytes of a stock file to the import with chunked transfer encoding (no declared
/// length), and returns the status line and body of the answer.
async fn post_chunked(app: &TestApp, token: &str, bytes: usize) -> String {
    let addr = app.base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /api/v1/import/stock HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let mut line = b"depot_code,item_code,quantity,batch\n".to_vec();
        let mut sent = 0;
        let mut i = 0;
        while sent < bytes {
            line.extend_from_slice(format!("D1,1999905,1,B{i:010}\n").as_bytes());
            i += 1;
            if line.len() >= 64 * 1024 {
                wr.write_all(format!("{:x}\r\n", line.len()).as_bytes()).await?;
                wr.write_all(&line).await?;
                wr.write_all(b"\r\n").await?;
                sent += line.len();
                line.clear();
            }
        }
        wr.write_all(b"0\r\n\r\n").await?;
        // Keep the connection open both ways until the answer is read: the server takes a client
        // that half-closes as gone.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 60 s");
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_writes_nothing() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.max_import_bytes = 1024 * 1024).await;
    let admin = app.admin().await;
    crate::supplies::depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let mut csv = String::from("depot_code,item_code,quantity,batch\n");
    let mut i = 0;
    while csv.len() <= 1024 * 1024 {
        csv.push_str(&format!("D1,1999905,1,B{i:010}\n"));
        i += 1;
    }
    // Declared length over the limit.
    let p = app.post_csv(&admin, "/api/v1/import/stock", &csv).await.problem(413);
    assert!(p["detail"].as_str().unwrap().contains("1048576"), "{p}");
    // No declared length: counted while it streams in, and refused once over the limit.
    let answer = post_chunked(&app, &admin, 3 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("payload-too-large"), "{answer}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_batches").await, 0);
    // A file just under the limit, sent the same way, is imported.
    let answer = post_chunked(&app, &admin, 900 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(count(&app, "SELECT COUNT(*) FROM stock_batches").await > 10_000);
}
