//! The smaller items of issue 12: readiness lists as `items`, member lists page, team findings
//! name teams by code, `token create` does not seed.

use serde_json::json;

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::{findings, run_check};

#[tokio::test]
async fn readiness_lists_items_and_team_findings_name_the_team_by_code() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    app.clock.set(app.clock.now_utc() - chrono::Duration::days(16));
    app.post(&op, "/api/v1/teams", &json!({"code": "MDLT-01", "name": "满都拉图志愿队", "org_type": "grassroots_team", "region_code": MANDULATU, "lon": 113.6, "lat": 43.9})).await.expect(201);
    app.clock.set(app.clock.now_utc() + chrono::Duration::days(16));
    run_check(&app).await;
    let v = app
        .get(&admin, &format!("/api/v1/readiness?region={MANDULATU}&rule=TEAM_FILING_PENDING"))
        .await
        .expect(200)
        .json();
    assert!(v.get("findings").is_none(), "{v}");
    assert_eq!(v["total"], 1);
    let f = &v["items"][0];
    assert_eq!((f["subject_type"].as_str(), f["subject_id"].as_str()), (Some("team"), Some("MDLT-01")), "{f}");
    assert_eq!(f["facts"]["team_name"], "满都拉图志愿队");
    app.post(&admin, "/api/v1/teams/MDLT-01/approve", &json!({})).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "TEAM_FILING_PENDING").await.is_empty());
}

#[tokio::test]
async fn member_lists_take_limit_and_offset() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/teams", &json!({"code": "T", "name": "T", "org_type": "grassroots_team", "region_code": MANDULATU, "lon": 113.6, "lat": 43.9})).await.expect(201);
    for seq in 1..=5 {
        app.post(
            &admin,
            "/api/v1/teams/T/members",
            &json!({"name": format!("队员{seq}"), "id_number": id_number(seq)}),
        )
        .await
        .expect(201);
    }
    let v = app.get(&admin, "/api/v1/teams/T/members?limit=2&offset=1").await.expect(200).json();
    assert_eq!(v["total"], 5);
    let names: Vec<&str> = v["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["队员2", "队员3"]);
    app.get(&admin, "/api/v1/teams/T/members?limit=0").await.problem(400);
}

#[tokio::test]
async fn token_create_does_not_load_the_shipped_plans() {
    let db = fresh_db().await;
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_yingji"))
        .args(["token", "create", "--name", "admin", "--role", "admin", "--region", BANNER])
        .env("DATABASE_URL", &db.url)
        .env("YINGJI_PII_KEY", TEST_PII_KEY)
        .output()
        .unwrap();
    let app = TestApp::spawn_with(None, &db.url, |c| c.seed = false).await;
    let plans: i64 = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM plans")
        .fetch_one(p)
        .await
        .unwrap());
    assert_eq!(plans, 0, "only serve and migrate seed");
    drop(app);
    drop(db);
}
