//! The read caches (src/freshness.rs: who a token stands for, pages of the region list) are never
//! stale: a write committed through one instance, or straight into the database by another
//! process, is seen by the very next request on every other instance.

use serde_json::{Value, json};

use crate::common::*;
use yingji::audit::Actor;
use yingji::auth::Role;
use yingji::regions::RegionCode;
use yingji::time::Timestamp;

/// A second instance on `app`'s database (the first owns it).
async fn other(app: &TestApp) -> TestApp {
    TestApp::spawn_with(None, &app.db_url, |_| {}).await
}

/// Issues a token for a new user; returns the token, its id and the user's name.
async fn issue(app: &TestApp, role: Role, region: &str) -> (String, i64, String) {
    let name = format!("{}-{}", role.as_str(), yingji::auth::tokens::random_hex16());
    let t = yingji::auth::tokens::issue(
        &app.state.db,
        &Actor::cli(),
        Timestamp(app.clock.now_utc()),
        &name,
        role,
        &RegionCode::parse(region).unwrap(),
        None,
    )
    .await
    .expect("token issued");
    (t.token, t.info.id, name)
}

/// The user id behind a name (through the admin API).
async fn user_id(app: &TestApp, admin: &str, name: &str) -> i64 {
    let list = app.get(admin, "/api/v1/users?limit=1000").await.expect(200).json();
    list["items"].as_array().unwrap().iter().find(|u| u["name"] == name).expect("user listed")["id"].as_i64().unwrap()
}

/// The codes of the default page of `GET /api/v1/regions`.
async fn codes(app: &TestApp, tok: &str) -> Vec<String> {
    let v = app.get(tok, "/api/v1/regions").await.expect(200).json();
    v["items"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_string()).collect()
}

/// A region's name as listed on `app`.
async fn listed_name(app: &TestApp, tok: &str, code: &str) -> Value {
    let v = app.get(tok, "/api/v1/regions?limit=1000").await.expect(200).json();
    v["items"].as_array().unwrap().iter().find(|r| r["code"] == code).map(|r| r["name"].clone()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_on_every_instance() {
    let a = TestApp::spawn().await;
    let b = other(&a).await;
    let admin = a.admin().await;
    let (tok, id, _) = issue(&a, Role::Viewer, MANDULATU).await;
    let (tok2, id2, _) = issue(&a, Role::Viewer, MANDULATU).await;
    // Both instances have seen both tokens valid (and cached who they stand for).
    for app in [&a, &b] {
        for t in [&tok, &tok2] {
            app.get(t, "/api/v1/regions").await.expect(200);
            app.get(t, "/api/v1/regions?limit=1").await.expect(200);
        }
    }
    // Revoked through instance A's API: the next request with it is 401 on B, and on A.
    a.delete(&admin, &format!("/api/v1/tokens/{id}")).await.expect(200);
    b.get(&tok, "/api/v1/regions").await.expect(401);
    a.get(&tok, "/api/v1/regions").await.expect(401);
    // Revoked by another process straight in the database (the CLI's `token revoke`): the same.
    yingji::auth::tokens::revoke(&b.state.db, &Actor::cli(), Timestamp(b.clock.now_utc()), id2).await.unwrap();
    a.get(&tok2, "/api/v1/regions?limit=1").await.expect(401);
    b.get(&tok2, "/api/v1/regions?limit=1").await.expect(401);
    // Other tokens are unaffected.
    b.get(&admin, "/api/v1/regions").await.expect(200);
}

#[tokio::test]
async fn a_disabled_user_or_a_changed_role_or_jurisdiction_applies_at_once_on_every_instance() {
    let a = TestApp::spawn().await;
    let b = other(&a).await;
    let admin = a.admin().await;
    let (tok, _, name) = issue(&a, Role::Operator, MANDULATU).await;
    let uid = user_id(&a, &admin, &name).await;
    let locate = json!({"lon": 113.7, "lat": 43.9});
    let path = format!("/api/v1/regions/{MANDULATU}");
    // Warm: B has served this token as an operator of 满都拉图镇.
    assert_eq!(codes(&b, &tok).await, [MANDULATU]);
    b.patch(&tok, &path, &locate).await.expect(200);

    // Role changed on A: B refuses the write at once, and still lets it read.
    a.patch(&admin, &format!("/api/v1/users/{uid}"), &json!({"role": "viewer"})).await.expect(200);
    b.patch(&tok, &path, &locate).await.expect(403);
    assert_eq!(codes(&b, &tok).await, [MANDULATU]);

    // Jurisdiction changed on A: B lists the new one at once and refuses the old one.
    a.patch(&admin, &format!("/api/v1/users/{uid}"), &json!({"region": CHAGANAOBAO})).await.expect(200);
    assert_eq!(codes(&b, &tok).await, [CHAGANAOBAO]);
    b.get(&tok, &path).await.expect(403);

    // Disabled on A: 401 on B and on A.
    a.post(&admin, &format!("/api/v1/users/{uid}/disable"), &json!(null)).await.expect(200);
    b.get(&tok, "/api/v1/regions").await.expect(401);
    a.get(&tok, "/api/v1/regions").await.expect(401);
}

#[tokio::test]
async fn an_edited_region_is_listed_at_once_on_every_instance() {
    let a = TestApp::spawn().await;
    let b = other(&a).await;
    let admin = a.admin().await;
    // B has the page cached.
    assert_eq!(listed_name(&b, &admin, MANDULATU).await, "满都拉图镇");
    assert_eq!(listed_name(&b, &admin, MANDULATU).await, "满都拉图镇");
    let before = b.get(&admin, "/api/v1/regions").await.expect(200).json();

    // A location set through A's API.
    a.patch(&admin, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": 113.7, "lat": 43.9})).await.expect(200);
    let page = b.get(&admin, "/api/v1/regions").await.expect(200).json();
    let row = page["items"].as_array().unwrap().iter().find(|r| r["code"] == MANDULATU).unwrap().clone();
    assert_eq!((row["lon"].as_f64(), row["lat"].as_f64()), (Some(113.7), Some(43.9)));
    assert_ne!(page, before);

    // A new name and a new village through A's division import.
    let csv = format!(
        "code,name,level,parent_code\n{MANDULATU},满都拉图镇（新）,township,{BANNER}\n152523100201,白音哈拉图嘎查,village,{MANDULATU}\n"
    );
    a.post_csv(&admin, "/api/v1/import/regions", &csv).await.expect(200);
    assert_eq!(listed_name(&b, &admin, MANDULATU).await, "满都拉图镇（新）");
    assert_eq!(listed_name(&b, &admin, "152523100201").await, "白音哈拉图嘎查");
    let page = b.get(&admin, "/api/v1/regions").await.expect(200).json();
    assert_eq!(page["total"], before["total"].as_i64().unwrap() + 1);

    // A rename by another process straight in the database.
    yingji::with_db!(&a.state.db, |p| sqlx::query("UPDATE regions SET name = $1 WHERE code = $2")
        .bind("满都拉图镇（再改）")
        .bind(MANDULATU)
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    assert_eq!(listed_name(&b, &admin, MANDULATU).await, "满都拉图镇（再改）");
    assert_eq!(listed_name(&a, &admin, MANDULATU).await, "满都拉图镇（再改）");
}

/// Without the change record the cache would serve the old page: proof that the pages above came
/// from the cache and that the trigger is what keeps it exact.
#[tokio::test]
async fn without_the_change_record_the_region_page_would_be_stale() {
    let a = TestApp::spawn().await;
    let admin = a.admin().await;
    assert_eq!(listed_name(&a, &admin, MANDULATU).await, "满都拉图镇");
    let drop = match a.state.db.backend() {
        yingji::db::Backend::Sqlite => "DROP TRIGGER regions_change_update",
        yingji::db::Backend::Postgres => "DROP TRIGGER regions_change ON regions",
    };
    yingji::with_db!(&a.state.db, |p| {
        sqlx::query(drop).execute(p).await.unwrap();
        sqlx::query("UPDATE regions SET name = '满都拉图镇（未记录）' WHERE code = $1")
            .bind(MANDULATU)
            .execute(p)
            .await
            .map(|_| ())
            .unwrap()
    });
    assert_eq!(listed_name(&a, &admin, MANDULATU).await, "满都拉图镇", "served from the cache");
}

/// Every list query answers the same with the caches as without them (another instance on the
/// same database with `read_caches` off), before and after writes.
#[tokio::test]
async fn region_pages_equal_the_database_with_and_without_the_caches() {
    let cached = TestApp::spawn().await;
    let plain = TestApp::spawn_with(None, &cached.db_url, |c| c.read_caches = false).await;
    let admin = cached.admin().await;
    let town = cached.token("viewer", MANDULATU).await;
    let csv = format!(
        "code,name,level,parent_code\n152523100201,白音哈拉图嘎查,village,{MANDULATU}\n152523100202,奈日木德勒嘎查,village,{MANDULATU}\n"
    );
    let queries = [
        "/api/v1/regions".to_string(),
        "/api/v1/regions?limit=1".to_string(),
        "/api/v1/regions?limit=2&offset=1".to_string(),
        format!("/api/v1/regions?parent={MANDULATU}"),
        "/api/v1/regions?level=village".to_string(),
        "/api/v1/regions?level=township&limit=3".to_string(),
    ];
    for step in 0..3 {
        match step {
            1 => {
                cached.post_csv(&admin, "/api/v1/import/regions", &csv).await.expect(200);
            }
            2 => {
                let body = json!({"lon": 113.65, "lat": 43.86});
                plain.patch(&admin, "/api/v1/regions/152523100201", &body).await.expect(200);
            }
            _ => {}
        }
        for tok in [&admin, &town] {
            for q in &queries {
                // Twice on the cached instance: the second answer comes from its page cache.
                let first = cached.get(tok, q).await.expect(200).json();
                let second = cached.get(tok, q).await.expect(200).json();
                let want = plain.get(tok, q).await.expect(200).json();
                assert_eq!(first, want, "step {step}: {q}");
                assert_eq!(second, want, "step {step}: {q} (cached)");
            }
        }
    }
}

/// The item cache of nearest supplies (topic `catalogue`, migration 0026) is never stale: an
/// item renamed through one instance, or straight in the database, is named so by the very next
/// answer of another instance that had it cached.
#[tokio::test]
async fn a_renamed_item_is_named_at_once_by_nearest_supplies_on_every_instance() {
    let a = TestApp::spawn().await;
    let b = other(&a).await;
    let admin = a.admin().await;
    let q = "/api/v1/supplies/nearest?item=1999905&quantity=1&lon=113.6&lat=43.85";
    let name = |v: Value| v["item_name"].clone();
    // B caches the (shipped) item (twice: the second from its cache).
    let shipped = a.get(&admin, "/api/v1/items/1999905").await.expect(200).json()["name"].clone();
    assert_eq!(name(b.get(&admin, q).await.expect(200).json()), shipped);
    assert_eq!(name(b.get(&admin, q).await.expect(200).json()), shipped);

    a.patch(&admin, "/api/v1/items/1999905", &json!({"name": "棉被（加厚）"})).await.expect(200);
    assert_eq!(name(b.get(&admin, q).await.expect(200).json()), "棉被（加厚）");

    yingji::with_db!(&a.state.db, |p| sqlx::query("UPDATE supply_items SET unit = '条' WHERE code = '1999905'")
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    assert_eq!(b.get(&admin, q).await.expect(200).json()["unit"], "条");

    // Proof that the answers came from the cache: without the trigger, B keeps the old unit.
    let drop = match a.state.db.backend() {
        yingji::db::Backend::Sqlite => "DROP TRIGGER catalogue_change_update",
        yingji::db::Backend::Postgres => "DROP TRIGGER catalogue_change ON supply_items",
    };
    yingji::with_db!(&a.state.db, |p| {
        sqlx::query(drop).execute(p).await.unwrap();
        sqlx::query("UPDATE supply_items SET unit = '件' WHERE code = '1999905'").execute(p).await.map(|_| ()).unwrap()
    });
    assert_eq!(b.get(&admin, q).await.expect(200).json()["unit"], "条", "served from the cache");
}

/// A write committed by a transaction that was still running when an instance last read the
/// change log (on PostgreSQL: in that read's snapshot's `xip` list, below its `xmax`) is seen by
/// the instance's next request.
#[tokio::test]
async fn a_write_running_during_the_last_check_is_seen_once_committed() {
    let a = TestApp::spawn().await;
    let b = other(&a).await;
    let admin = a.admin().await;
    let q = "/api/v1/supplies/nearest?item=1999905&quantity=1&lon=113.6&lat=43.85";
    b.get(&admin, q).await.expect(200);
    let unit = |v: Value| v["unit"].clone();
    let yingji::db::Db::Postgres(pool) = &a.state.db else { return };
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE supply_items SET unit = '包' WHERE code = '1999905'").execute(&mut *tx).await.unwrap();
    // B checks while the writer runs (and caches the item as it was).
    let before = unit(b.get(&admin, q).await.expect(200).json());
    assert_ne!(before, "包");
    assert_eq!(unit(b.get(&admin, q).await.expect(200).json()), before);
    tx.commit().await.unwrap();
    assert_eq!(unit(b.get(&admin, q).await.expect(200).json()), "包");
}
