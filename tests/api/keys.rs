//! The personal-data key: a wrong or missing key refuses to start; rotation re-encrypts every
//! value, which then reads back under the new key (and not the old).

use serde_json::json;
use yingji::app::{self, Config};
use yingji::personal::Cipher;

use crate::common::*;
use crate::forces::{id_number, new_team};

const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

async fn start_with_key(db: &TestDb, key: &str) -> anyhow::Result<app::Server> {
    let mut config = Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pii_key = Some(key.to_string());
    config.scheduler = false;
    let clock: yingji::clock::SharedClock = std::sync::Arc::new(yingji::clock::SystemClock);
    app::start(config, clock).await
}

#[tokio::test]
async fn a_service_started_with_another_key_refuses_and_says_why() {
    let db = fresh_db().await;
    let mut first = TestApp::spawn_with(None, &db.url, |_| {}).await;
    first.stop().await;
    let err = match start_with_key(&db, OTHER_KEY).await {
        Ok(_) => panic!("started with the wrong key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("密钥与数据库不符") && err.contains("rotate-key"), "{err}");
    assert!(err.contains(&Cipher::from_hex(OTHER_KEY).unwrap().fingerprint()), "{err}");
    // The right key still starts.
    start_with_key(&db, TEST_PII_KEY).await.expect("the right key starts").shutdown().await;
}

#[tokio::test]
async fn the_key_file_lives_beside_the_database_and_a_missing_one_is_not_replaced() {
    if std::env::var("YINGJI_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        return; // a key file beside the database is a SQLite matter
    }
    let db = fresh_db().await;
    let path = db.url.strip_prefix("sqlite://").unwrap().to_string();
    let key_file = format!("{path}.key");
    let run = |dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_yingji"))
            .arg("migrate")
            .current_dir(dir)
            .env("DATABASE_URL", &db.url)
            .env_remove("YINGJI_PII_KEY")
            .env_remove("YINGJI_PII_KEY_FILE")
            .output()
            .unwrap()
    };
    let here = std::env::temp_dir();
    let elsewhere = std::env::current_dir().unwrap();
    assert!(run(&here).status.success());
    let key = std::fs::read_to_string(&key_file).expect("key file created beside the database");
    assert!(run(&elsewhere).status.success(), "another working directory finds the same key");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    std::fs::remove_file(&key_file).unwrap();
    let out = run(&here);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("找不到个人信息密钥文件") && err.contains("不会生成新密钥"), "{err}");
    assert!(!std::path::Path::new(&key_file).exists(), "no new key was made");
}

#[tokio::test]
async fn rotating_the_key_reencrypts_every_value_and_reads_each_back() {
    let db = fresh_db().await;
    let mut app = TestApp::spawn_with(None, &db.url, |_| {}).await;
    let admin = app.admin().await;
    new_team(&app, &admin, "K1", MANDULATU, (113.6, 43.8), json!([])).await;
    let m = app
        .post(
            &admin,
            "/api/v1/teams/K1/members",
            &json!({"name": "乌云", "id_number": id_number(7), "phone": "13900001111"}),
        )
        .await
        .expect(201)
        .json();
    let depot = app
        .post(
            &admin,
            "/api/v1/depots",
            &json!({"code": "KD", "name": "库", "region_code": MANDULATU, "kind": "township_point", "lon": 113.6, "lat": 43.8, "phone": "13800002222"}),
        )
        .await
        .expect(201)
        .json();
    app.post(
        &admin,
        "/api/v1/channels",
        &json!({"region": MANDULATU, "kind": "dingtalk", "name": "群", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc", "secret": "SECxyz"}),
    )
    .await
    .expect(201);
    let before_member = app.get(&admin, &format!("/api/v1/members/{}?reveal=true", m["id"])).await.expect(200).json();
    let before_team = app.get(&admin, "/api/v1/teams/K1?reveal=true").await.expect(200).json();
    app.stop().await;

    let old = Cipher::from_hex(TEST_PII_KEY).unwrap();
    let new = Cipher::from_hex(OTHER_KEY).unwrap();
    let n = {
        let pool =
            yingji::db::Db::connect(&yingji::db::DbOptions { url: db.url.clone(), max_connections: 2 }).await.unwrap();
        let stored: Vec<String> = yingji::with_db!(&pool, |p| {
            sqlx::query_scalar(
            "SELECT url_enc FROM channels UNION ALL SELECT secret_enc FROM channels UNION ALL SELECT id_number FROM members"
        )
        .fetch_all(p)
        .await
        .unwrap()
        });
        assert!(stored.iter().all(|v| v.starts_with("v2:")), "{stored:?}");
        let n = yingji::keys::rotate(
            &pool,
            &old,
            &new,
            &yingji::audit::Actor::cli(),
            yingji::time::Timestamp(chrono::Utc::now()),
        )
        .await
        .unwrap();
        pool.close().await;
        n
    };
    assert_eq!(
        n, 7,
        "leader phone, member ID number and phone, the member's own key, depot phone, channel URL and secret"
    );
    assert!(start_with_key(&db, TEST_PII_KEY).await.is_err(), "the old key no longer starts");

    let app = TestApp::spawn_with(None, &db.url, |c| c.pii_key = Some(OTHER_KEY.to_string())).await;
    let admin = app.admin().await;
    let member = app.get(&admin, &format!("/api/v1/members/{}?reveal=true", m["id"])).await.expect(200).json();
    assert_eq!((&member["id_number"], &member["phone"]), (&before_member["id_number"], &before_member["phone"]));
    assert_eq!(member["id_number"], id_number(7));
    let team = app.get(&admin, "/api/v1/teams/K1?reveal=true").await.expect(200).json();
    assert_eq!(team["leader"], before_team["leader"]);
    let d = app.get(&admin, &format!("/api/v1/depots/{}?reveal=true", depot["id"])).await.expect(200).json();
    assert_eq!(d["phone"], "13800002222");
    // The blind index moved too: the same person is found, and cannot join the team twice.
    let found =
        app.post(&admin, "/api/v1/members/search", &json!({"id_number": id_number(7)})).await.expect(200).json();
    assert_eq!(found["total"], 1);
    app.post(&admin, "/api/v1/teams/K1/members", &json!({"name": "乌云", "id_number": id_number(7)}))
        .await
        .problem(409);
    assert_eq!(app.audit_rows("pii_key", "1").await[0].0, "rotate-key");
    // The channel secret decrypts: the delivery path reads it (checked directly).
    let stored: (String, String) =
        yingji::with_db!(&app.state.db, |p| sqlx::query_as("SELECT url_enc, secret_enc FROM channels")
            .fetch_one(p)
            .await
            .unwrap());
    let f = yingji::personal::Field::CHANNEL_SECRET;
    assert_eq!(new.decrypt(f, &stored.1).as_deref(), Some("SECxyz"));
    assert_eq!(new.decrypt(yingji::personal::Field::CHANNEL_URL, &stored.1), None, "bound to its column");
    drop(db);
}
