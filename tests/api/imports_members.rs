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
