//! User management over the API (`/api/v1/users`): the same functions as `yingji user`, admin
//! only, within the jurisdiction, audited, and never answering with a password or its hash.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::console::post_login;

const NEW_PASSWORD: &str = "白灾防御-新密码-2026";

#[tokio::test]
async fn an_admin_creates_assigns_resets_disables_and_enables_a_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let body = json!({"name": "巴特尔", "role": "operator", "region": MANDULATU, "password": "雪灾演练-2026-初始"});
    let u = app.post(&admin, "/api/v1/users", &body).await.expect(201).json();
    let id = u["id"].as_i64().unwrap();
    assert_eq!(u["role"], "operator");
    assert_eq!(u["has_password"], true);
    let text = u.to_string();
    assert!(!text.contains("雪灾演练") && !text.contains("argon2"), "no password or hash in the answer: {text}");
    // The same name again is a conflict; a short password is named.
    app.post(&admin, "/api/v1/users", &body).await.expect(409);
    let short = json!({"name": "其其格", "role": "viewer", "region": MANDULATU, "password": "short"});
    let p = app.post(&admin, "/api/v1/users", &short).await.expect(422).json();
    assert_eq!(p["errors"][0]["field"], "password");
    assert_eq!(post_login(&app, "巴特尔", "雪灾演练-2026-初始").await.status(), StatusCode::SEE_OTHER);

    // Role and jurisdiction change; the list shows it, without hashes.
    let a = app.patch(&admin, &format!("/api/v1/users/{id}"), &json!({"role": "planner", "region": CHAGANAOBAO})).await;
    let a = a.expect(200).json();
    assert_eq!((a["role"].as_str(), a["region_code"].as_str()), (Some("planner"), Some(CHAGANAOBAO)));
    let list = app.get(&admin, "/api/v1/users").await.expect(200).json();
    let row = list["items"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row["role"], "planner");
    assert!(!list.to_string().contains("password_hash") && !list.to_string().contains("argon2"));

    // A new password: the old one stops working.
    app.put(&admin, &format!("/api/v1/users/{id}/password"), &json!({"password": NEW_PASSWORD})).await.expect(200);
    assert_eq!(post_login(&app, "巴特尔", "雪灾演练-2026-初始").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post_login(&app, "巴特尔", NEW_PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // Disabled: no login; enabled: login again.
    let d = app.post(&admin, &format!("/api/v1/users/{id}/disable"), &json!(null)).await.expect(200).json();
    assert!(d["disabled_at"].is_string());
    assert_ne!(post_login(&app, "巴特尔", NEW_PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let e = app.post(&admin, &format!("/api/v1/users/{id}/enable"), &json!(null)).await.expect(200).json();
    assert!(e["disabled_at"].is_null());
    assert_eq!(post_login(&app, "巴特尔", NEW_PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // Every change is in the audit log, and no row holds the password or a hash.
    let actions: Vec<String> = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE entity_type = 'user' AND entity_id = $1 AND action <> 'login' ORDER BY id"
    )
    .bind(id.to_string())
    .fetch_all(p)
    .await
    .unwrap()
    });
    assert_eq!(actions, ["create", "assign", "set_password", "disable", "enable"]);
    let leaked: i64 = yingji::with_db!(&app.state.db, |p| {
        sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE CAST(after_state AS TEXT) LIKE '%argon2%' OR CAST(after_state AS TEXT) LIKE '%白灾防御%'"
    )
    .fetch_one(p)
    .await
    .unwrap()
    });
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn an_admin_cannot_lock_themselves_out_nor_manage_users_outside_the_jurisdiction() {
    let app = TestApp::spawn().await;
    let town_admin = app.token("admin", MANDULATU).await;
    let me = app.get(&town_admin, "/api/v1/users").await.expect(200).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["region_code"] == MANDULATU && u["role"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let p = app.post(&town_admin, &format!("/api/v1/users/{me}/disable"), &json!(null)).await.expect(409).json();
    assert!(p["detail"].as_str().unwrap().contains("自己"));
    app.patch(&town_admin, &format!("/api/v1/users/{me}"), &json!({"role": "viewer"})).await.expect(409);
    // A user of the sibling township is out of reach, and so is creating one there.
    let body =
        json!({"name": "查干敖包用户", "role": "viewer", "region": CHAGANAOBAO, "password": "雪灾演练-2026-初始"});
    app.post(&town_admin, "/api/v1/users", &body).await.expect(403);
    let banner_admin = app.admin().await;
    let other = app.post(&banner_admin, "/api/v1/users", &body).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(&town_admin, &format!("/api/v1/users/{other}/disable"), &json!(null)).await.expect(403);
    // Nobody but an admin manages users.
    let planner = app.token("planner", MANDULATU).await;
    app.get(&planner, "/api/v1/users").await.expect(403);
}
