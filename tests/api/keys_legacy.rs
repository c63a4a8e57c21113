//! A database written before the key rework (storage format 1: the master key used directly for
//! AES-256-GCM without associated data, `v1:` values, a SHA-256 blind index over key ‖ 0 ‖ value,
//! no stored fingerprint, no per-person keys) moves to the current format on the first start with
//! its key: every value reads back and the blind index finds the same person again.
//!
//! The fixture is made the way the old code wrote it (`git show 627c19b^:src/personal.rs`): data
//! is entered through the API, then every encrypted column is rewritten in format 1 and the
//! format-2 bookkeeping is removed, which leaves exactly what a format-1 database held.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde_json::json;
use sha2::{Digest, Sha256};
use yingji::personal::{Cipher, Field, hex};

use crate::common::*;
use crate::forces::{id_number, new_team};

/// Every encrypted column of format 1: table, key column, column, field (format 2's binding).
const COLUMNS: &[(&str, &str, &str, Field)] = &[
    ("depots", "id", "phone_enc", Field::DEPOT_PHONE),
    ("teams", "id", "leader_phone", Field::TEAM_LEADER_PHONE),
    ("teams", "id", "contact_phone", Field::TEAM_CONTACT_PHONE),
    ("members", "id", "id_number", Field::MEMBER_ID_NUMBER),
    ("members", "id", "phone", Field::MEMBER_PHONE),
    ("channels", "id", "url_enc", Field::CHANNEL_URL),
    ("channels", "id", "secret_enc", Field::CHANNEL_SECRET),
];

fn master() -> [u8; 32] {
    let b: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&TEST_PII_KEY[2 * i..2 * i + 2], 16).unwrap()).collect();
    b.try_into().unwrap()
}

/// Format 1's `Cipher::encrypt`: `v1:` + hex(nonce ‖ AES-256-GCM(master key, no AAD)).
fn encrypt_v1(plain: &str) -> String {
    let aead = Aes256Gcm::new(&master().into());
    let nonce: [u8; 12] = rand_nonce();
    let ct = aead.encrypt(Nonce::from_slice(&nonce), plain.as_bytes()).unwrap();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    format!("v1:{}", hex(&out))
}

fn rand_nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    getrandom::fill(&mut n).unwrap();
    n
}

/// Format 1's blind index: SHA-256(master key ‖ 0 ‖ trimmed value).
fn index_v1(value: &str) -> String {
    let mut h = Sha256::new();
    h.update(master());
    h.update([0u8]);
    h.update(value.trim().as_bytes());
    hex(&h.finalize())
}

#[tokio::test]
async fn a_format_1_database_moves_on_first_start_and_every_value_reads_back() {
    let db = fresh_db().await;
    let mut app = TestApp::spawn_with(None, &db.url, |_| {}).await;
    let admin = app.admin().await;
    new_team(&app, &admin, "L1", MANDULATU, (113.6, 43.8), json!([])).await;
    let m = app
        .post(
            &admin,
            "/api/v1/teams/L1/members",
            &json!({"name": "其其格", "id_number": id_number(11), "phone": "13900003333"}),
        )
        .await
        .expect(201)
        .json();
    let depot = app
        .post(
            &admin,
            "/api/v1/depots",
            &json!({"code": "LD", "name": "旧库", "region_code": MANDULATU, "kind": "township_point", "lon": 113.6, "lat": 43.8, "phone": "13800004444"}),
        )
        .await
        .expect(201)
        .json();
    app.post(
        &admin,
        "/api/v1/channels",
        &json!({"region": MANDULATU, "kind": "dingtalk", "name": "旧群", "url": "https://oapi.dingtalk.com/robot/send?access_token=old", "secret": "SECold"}),
    )
    .await
    .expect(201);

    // Rewrite the database as format 1 held it.
    let cipher = Cipher::from_hex(TEST_PII_KEY).unwrap();
    let mut rewritten = 0;
    for (table, id_col, column, field) in COLUMNS {
        let select = format!("SELECT {id_col}, {column} FROM {table} WHERE {column} IS NOT NULL");
        let rows: Vec<(i64, String)> =
            yingji::with_db!(&app.state.db, |p| sqlx::query_as(&select).fetch_all(p).await.unwrap());
        for (id, value) in rows {
            let plain = cipher.decrypt(*field, &value).expect("format-2 value decrypts");
            let (sealed, index) = (encrypt_v1(&plain), index_v1(&plain));
            if *field == Field::MEMBER_ID_NUMBER {
                let update = format!("UPDATE {table} SET {column} = $1, id_index = $3 WHERE {id_col} = $2");
                yingji::with_db!(&app.state.db, |p| sqlx::query(&update)
                    .bind(&sealed)
                    .bind(id)
                    .bind(&index)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .unwrap());
            } else {
                let update = format!("UPDATE {table} SET {column} = $1 WHERE {id_col} = $2");
                yingji::with_db!(&app.state.db, |p| sqlx::query(&update)
                    .bind(&sealed)
                    .bind(id)
                    .execute(p)
                    .await
                    .map(|_| ())
                    .unwrap());
            }
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 6, "leader phone, ID number, member phone, depot phone, channel URL and secret");
    yingji::with_db!(&app.state.db, |p| {
        sqlx::query("DELETE FROM person_keys").execute(p).await.unwrap();
        sqlx::query("DELETE FROM pii_key").execute(p).await.map(|_| ()).unwrap()
    });
    app.stop().await;

    // A wrong key refuses to move the data and changes nothing.
    let other = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let mut config = yingji::app::Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pii_key = Some(other.to_string());
    config.scheduler = false;
    let clock: yingji::clock::SharedClock = std::sync::Arc::new(yingji::clock::SystemClock);
    let err = match yingji::app::start(config, clock).await {
        Ok(_) => panic!("a format-1 database started with another key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("无法解密") && err.contains("什么也没有改动"), "{err}");

    // The right key moves everything on start.
    let app = TestApp::spawn_with(None, &db.url, |_| {}).await;
    let admin = app.admin().await;
    let member = app.get(&admin, &format!("/api/v1/members/{}?reveal=true", m["id"])).await.expect(200).json();
    assert_eq!((member["id_number"].as_str(), member["phone"].as_str()), (Some(&*id_number(11)), Some("13900003333")));
    let team = app.get(&admin, "/api/v1/teams/L1?reveal=true").await.expect(200).json();
    assert_eq!(team["leader"]["phone"], "13912345678", "{team}");
    let d = app.get(&admin, &format!("/api/v1/depots/{}?reveal=true", depot["id"])).await.expect(200).json();
    assert_eq!(d["phone"], "13800004444");
    // The blind index was recomputed: the person is found and cannot be added twice.
    let found =
        app.post(&admin, "/api/v1/members/search", &json!({"id_number": id_number(11)})).await.expect(200).json();
    assert_eq!(found["total"], 1, "{found}");
    app.post(&admin, "/api/v1/teams/L1/members", &json!({"name": "其其格", "id_number": id_number(11)}))
        .await
        .problem(409);
    // Nothing is left in format 1, the channel's secrets are bound to their columns, and the
    // fingerprint is stored.
    for (table, _, column, _) in COLUMNS {
        let values: Vec<String> = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar(&format!(
            "SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
        ))
        .fetch_all(p)
        .await
        .unwrap());
        assert!(values.iter().all(|v| v.starts_with("v2:")), "{table}.{column}: {values:?}");
    }
    let (url, secret): (String, String) =
        yingji::with_db!(&app.state.db, |p| sqlx::query_as("SELECT url_enc, secret_enc FROM channels")
            .fetch_one(p)
            .await
            .unwrap());
    assert_eq!(
        cipher.decrypt(Field::CHANNEL_URL, &url).as_deref(),
        Some("https://oapi.dingtalk.com/robot/send?access_token=old")
    );
    assert_eq!(cipher.decrypt(Field::CHANNEL_SECRET, &secret).as_deref(), Some("SECold"));
    let fp = yingji::keys::stored_fingerprint(&app.state.db).await.unwrap();
    assert_eq!(fp, Some(cipher.fingerprint()));
    drop(db);
}
