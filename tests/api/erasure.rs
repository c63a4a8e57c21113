//! Erasure by crypto-shredding: after a temporary volunteer is erased, the raw SQLite file and its
//! write-ahead log hold neither the person's name nor their ID number or phone (nor their masked
//! forms), while the audit rows about them are all still there.

use serde_json::json;
use yingji::personal::{mask_id, mask_phone};

use crate::common::*;
use crate::forces::{approve, id_number, new_member, new_team};

fn raw_bytes(db_file: &str) -> Vec<u8> {
    let mut all = std::fs::read(db_file).expect("database file");
    if let Ok(wal) = std::fs::read(format!("{db_file}-wal")) {
        all.extend(wal);
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erased_volunteer_is_gone_from_the_raw_file_and_wal_but_the_audit_rows_stay() {
    if std::env::var("YINGJI_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        return; // the raw-file check is about the SQLite file
    }
    let app = TestApp::spawn().await;
    let db_file = app.db_url.strip_prefix("sqlite://").unwrap().to_string();
    let admin = app.admin().await;
    new_team(&app, &admin, "E1", MANDULATU, (113.6, 43.8), json!([{"specialty": "grassland_fire", "grade": 2}])).await;
    approve(&app, &admin, "E1").await;
    let kept = new_member(&app, &admin, "E1", 11, "2027-12-31").await;
    app.patch(&admin, &format!("/api/v1/members/{kept}"), &json!({"name": "对照队员巴图"})).await.expect(200);
    let body = json!({"team_code": "E1", "purpose": "event", "reference": "草原火灾", "specialty": "grassland_fire", "headcount": 1,
                      "report_at": "2026-11-27T08:00:00+08:00", "report_place": "镇政府"});
    let cid = app.post(&admin, "/api/v1/callups", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let (name, idn, phone) = ("斯琴高娃临时", id_number(123), "13766554433");
    let tmp = app
        .post(
            &admin,
            "/api/v1/teams/E1/members",
            &json!({"name": name, "id_number": idn, "phone": phone, "temporary_for_callup": cid,
                    "certificates": [{"kind": "急救证", "number": "JJZ-778899", "issued": "2025-01-01"}]}),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    app.patch(&admin, &format!("/api/v1/members/{tmp}"), &json!({"phone": "13766550000"})).await.expect(200);
    app.get(&admin, &format!("/api/v1/members/{tmp}?reveal=true")).await.expect(200);
    app.post(&admin, &format!("/api/v1/callups/{cid}/accept"), &json!({"members": [tmp]})).await.expect(200);
    let before_close = raw_bytes(&db_file);
    assert!(contains(&before_close, name), "the check can see the name while the person is on file");
    let rows_before = app.audit_rows("member", &tmp.to_string()).await.len();

    app.clock.advance(chrono::Duration::hours(3));
    app.post(&admin, &format!("/api/v1/callups/{cid}/close"), &json!({})).await.expect(200);

    let raw = raw_bytes(&db_file);
    let mut found = Vec::new();
    let mut needles = vec![
        name.to_string(),
        idn.clone(),
        phone.to_string(),
        "13766550000".to_string(),
        mask_id(&idn),
        mask_phone(phone),
        mask_phone("13766550000"),
        "JJZ-778899".to_string(),
    ];
    // Every 8-digit run of the ID number after the region prefix (which every region code shares)
    // and every 7-digit run of the phones.
    needles.extend((6..=idn.len() - 8).map(|i| idn[i..i + 8].to_string()));
    needles.extend((0..=phone.len() - 7).map(|i| phone[i..i + 7].to_string()));
    for n in &needles {
        if contains(&raw, n) {
            found.push(n.clone());
        }
    }
    assert!(found.is_empty(), "erased data still in the raw database file or WAL: {found:?}");
    assert!(contains(&raw, "对照队员巴图"), "other people's data is untouched");
    // The audit chain is intact: every row about the person is still there, plus the erasure.
    let rows = app.audit_rows("member", &tmp.to_string()).await;
    assert_eq!(rows.len(), rows_before + 1);
    assert_eq!(rows[0].0, "erase");
    let keys: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM person_keys WHERE member_id = $1"
    )
    .bind(tmp)
    .fetch_one(p)
    .await
    .unwrap());
    assert_eq!(keys, 0, "the person's key is destroyed");
}
