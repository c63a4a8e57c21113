//! Foundation: regions, access control, audit, errors, lists, operations, API description.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test]
async fn shipped_regions_are_listed_for_the_banner() {
    let app = TestApp::spawn().await;
    let t = app.admin().await;
    let v = app.get(&t, "/api/v1/regions").await.expect(200).json();
    assert_eq!(v["total"], 10);
    let codes: Vec<&str> = v["items"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&BANNER) && codes.contains(&MANDULATU) && codes.contains(&"152523500000"));
    let banner = app.get(&t, &format!("/api/v1/regions/{BANNER}")).await.expect(200).json();
    assert_eq!(banner["name"], "苏尼特左旗");
    assert_eq!(banner["lat"], 43.85223);
    assert_eq!(banner["lon"], 113.64402);
    // Times are shown in Asia/Shanghai unless asked otherwise.
    assert!(banner["created_at"].as_str().unwrap().ends_with("+08:00"), "{banner}");
    let utc = app
        .client
        .get(app.url(&format!("/api/v1/regions/{BANNER}")))
        .bearer_auth(&t)
        .header("x-timezone", "UTC")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(utc["created_at"].as_str().unwrap().ends_with("+00:00"), "{utc}");
    let towns = app.get(&t, &format!("/api/v1/regions?parent={BANNER}&level=township")).await.expect(200).json();
    assert_eq!(towns["total"], 9);
}

#[tokio::test]
async fn missing_bad_and_revoked_tokens_get_401() {
    let app = TestApp::spawn().await;
    let p = app.send(Method::GET, "/api/v1/regions", None, None).await.problem(401);
    assert!(p["detail"].as_str().unwrap().contains("Authorization"));
    app.get("yj_0000", "/api/v1/regions").await.problem(401);
    app.get("not-a-token", "/api/v1/regions").await.problem(401);
    let r = app.client.get(app.url("/api/v1/regions")).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(r.status(), 401);

    let admin = app.admin().await;
    let issued = app
        .post(&admin, "/api/v1/tokens", &json!({"name": "巴特尔", "role": "viewer", "region": MANDULATU}))
        .await
        .expect(201)
        .json();
    let tok = issued["token"].as_str().unwrap().to_string();
    assert!(tok.starts_with("yj_") && tok.len() >= 3 + 32, "at least 128 bits: {tok}");
    app.get(&tok, "/api/v1/regions").await.expect(200);
    let id = issued["id"].as_i64().unwrap();
    app.delete(&admin, &format!("/api/v1/tokens/{id}")).await.expect(200);
    app.get(&tok, "/api/v1/regions").await.problem(401);
    // The list never shows a secret; the failed attempts are counted.
    let list = app.get(&admin, "/api/v1/tokens").await.expect(200);
    assert!(!list.text.contains(&tok));
    let metrics = app.get(&admin, "/metrics").await.expect(200).text;
    assert!(metrics.contains("yingji_auth_failures_total{reason=\"invalid\"}"), "{metrics}");
    assert!(metrics.contains("yingji_auth_failures_total{reason=\"missing\"} 1"), "{metrics}");
}

#[tokio::test]
async fn jurisdiction_filters_lists_and_forbids_other_regions() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let villages = "code,name,level,parent_code\n\
        152523100201,白音哈拉图嘎查,village,152523100000\n\
        152523101201,某嘎查,village,152523101000\n";
    app.post_csv(&admin, "/api/v1/import/regions", villages).await.expect(200);

    let viewer = app.token("viewer", MANDULATU).await;
    let v = app.get(&viewer, "/api/v1/regions").await.expect(200).json();
    let codes: Vec<&str> = v["items"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, vec![MANDULATU, "152523100201"]);
    assert_eq!(v["total"], 2);
    assert!(!v.to_string().contains("查干敖包镇"));
    app.get(&viewer, &format!("/api/v1/regions/{CHAGANAOBAO}")).await.problem(403);
    app.get(&viewer, &format!("/api/v1/regions/{BANNER}")).await.problem(403);
    app.get(&viewer, "/api/v1/regions/152523100201").await.expect(200);

    // A viewer only reads.
    app.patch(&viewer, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": 113.6, "lat": 43.8})).await.problem(403);
    // An operator writes only inside its jurisdiction.
    let op = app.token("operator", MANDULATU).await;
    app.patch(&op, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": 113.6, "lat": 43.8})).await.expect(200);
    app.patch(&op, &format!("/api/v1/regions/{CHAGANAOBAO}"), &json!({"lon": 113.6, "lat": 43.8})).await.problem(403);
    // Only admins import, read the audit log and manage tokens.
    app.post_csv(&op, "/api/v1/import/regions", villages).await.problem(403);
    app.get(&op, "/api/v1/audit").await.problem(403);
    app.get(&op, "/api/v1/tokens").await.problem(403);
    // A township admin cannot issue a banner-wide token.
    let town_admin = app.token("admin", MANDULATU).await;
    app.post(&town_admin, "/api/v1/tokens", &json!({"name": "x", "role": "admin", "region": BANNER}))
        .await
        .problem(403);
    // ...nor import regions of another township.
    let p = app.post_csv(&town_admin, "/api/v1/import/regions", villages).await.problem(422);
    assert_eq!(p["errors"][0]["line"], 3, "{p}");
    // ...and its audit view holds only its own region's rows.
    let audit = app.get(&town_admin, "/api/v1/audit").await.expect(200).json();
    for row in audit["items"].as_array().unwrap() {
        assert!(row["region_code"].as_str().unwrap().starts_with("152523100"), "{row}");
    }
}

#[tokio::test]
async fn region_import_is_idempotent_and_all_or_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let file = "\u{feff}区划代码,名称,级别,上级代码,经度,纬度\n\
        152523202201,巴彦洪格尔嘎查,village,152523202000,,\n\
        152523202202,陶木伊拉勒特嘎查,嘎查,152523202000,113.1,44.2\n";
    let s = app.post_csv(&admin, "/api/v1/import/regions", file).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 2, "updated": 0, "unchanged": 0}));
    let audit_before = app.get(&admin, "/api/v1/audit?entity_type=region").await.expect(200).json()["total"].clone();
    let again = app.post_csv(&admin, "/api/v1/import/regions", file).await.expect(200).json();
    assert_eq!(again, json!({"rows": 2, "created": 0, "updated": 0, "unchanged": 2}));
    let audit_after = app.get(&admin, "/api/v1/audit?entity_type=region").await.expect(200).json()["total"].clone();
    assert_eq!(audit_before, audit_after, "a re-import changes nothing and audits nothing");

    // One bad row among good ones: nothing is written, and each error names its line.
    let bad = "code,name,level,parent_code\n\
        152523202203,乌日尼勒图嘎查,village,152523202000\n\
        15252320220X,舒日昌图嘎查,village,152523202000\n\
        152523202205,新阿米都日勒嘎查,village,152523999000\n\
        152523202206,某嘎查,village,152523000000\n\
        152523202201,另一个名字,village,152523202000\n\
        152523202201,又一个名字,village,152523202000\n";
    let p = app.post_csv(&admin, "/api/v1/import/regions", bad).await.problem(422);
    let lines: Vec<u64> = p["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert!(lines.contains(&3), "malformed code on line 3: {p}");
    assert!(lines.contains(&4), "unknown parent on line 4: {p}");
    assert!(lines.contains(&5), "parent of the wrong level on line 5: {p}");
    assert!(lines.contains(&7), "duplicate code with a different name on line 7: {p}");
    let v = app.get(&admin, "/api/v1/regions?parent=152523202000").await.expect(200).json();
    assert_eq!(v["total"], 2, "nothing from the bad file was written");

    // Bad headers are named too.
    let p = app.post_csv(&admin, "/api/v1/import/regions", "code,name,level\n1,2,3\n").await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("parent_code"), "{p}");
    // A changed name is an update, audited.
    let renamed = "code,name,level,parent_code\n152523202201,巴彦洪格尔嘎查(新),village,152523202000\n";
    let s = app.post_csv(&admin, "/api/v1/import/regions", renamed).await.expect(200).json();
    assert_eq!(s["updated"], 1);
    assert_eq!(app.audit_rows("region", "152523202201").await.len(), 2);
}

#[tokio::test]
async fn bad_input_gets_problem_json() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let path = format!("/api/v1/regions/{MANDULATU}");
    let raw = |body: &'static str, ct: &'static str| {
        let app = &app;
        let admin = admin.clone();
        let path = path.clone();
        async move { app.send(Method::PATCH, &path, Some(&admin), Some(Body::Raw(ct, body))).await }
    };
    // Malformed JSON: 400 with line and column.
    let p = raw("{\"lon\": 1,", "application/json").await.problem(400);
    assert!(p["errors"][0]["line"].is_number(), "{p}");
    // Wrong type, unknown field: 422 naming the field.
    let p = raw("{\"lon\": \"east\", \"lat\": 43}", "application/json").await.problem(422);
    assert_eq!(p["errors"][0]["field"], "lon", "{p}");
    let p = raw("{\"longitude\": 1}", "application/json").await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("longitude"), "{p}");
    // Missing field.
    let p = app.post(&admin, "/api/v1/tokens", &json!({"name": "x", "role": "viewer"})).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("region"), "{p}");
    // Bad value.
    let p =
        app.post(&admin, "/api/v1/tokens", &json!({"name": "x", "role": "boss", "region": BANNER})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "role", "{p}");
    // Semantic validation.
    let p = app.patch(&admin, &path, &json!({"lon": 200.0, "lat": 43.0})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "lon");
    let p = app.patch(&admin, &path, &json!({"lon": 113.0})).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("同时"), "{p}");
    let p = app
        .patch(
            &admin,
            &path,
            &json!({"boundary": {"type": "Polygon", "coordinates": [[[113.0, 43.0], [114.0, 43.0], [113.0, 44.0]]]}}),
        )
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "boundary");
    // Wrong content type.
    raw("{\"lon\": 1, \"lat\": 2}", "text/plain").await.problem(415);
    app.send(Method::POST, "/api/v1/import/regions", Some(&admin), Some(Body::Json(&json!({})))).await.problem(415);
    // Body over the limit (1 MiB for JSON).
    let big = format!("{{\"lon\": 1, \"lat\": 2, \"pad\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let r = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Unknown route and wrong method.
    app.get(&admin, "/api/v1/nothing-here").await.problem(404);
    app.send(Method::GET, "/nope", None, None).await.problem(404);
    let r = app.send(Method::DELETE, "/api/v1/regions", Some(&admin), None).await;
    assert_eq!(r.headers["allow"], "GET");
    r.problem(405);
    // Bad query parameters.
    let p = app.get(&admin, "/api/v1/regions?limit=5000").await.problem(400);
    assert_eq!(p["errors"][0]["field"], "limit");
    app.get(&admin, "/api/v1/regions?level=county").await.problem(400);
    app.get(&admin, "/api/v1/regions?bogus=1").await.problem(400);
    app.get(&admin, "/api/v1/regions/123").await.problem(404);
    // Nothing was written by any of that.
    let region = app.get(&admin, &path).await.expect(200).json();
    assert!(region["lon"].is_null());
    // Invalid UTF-8 in an import names its line.
    let r = app
        .client
        .post(app.url("/api/v1/import/regions"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(b"code,name,level,parent_code\n152523100201,\xff\xfe,village,152523100000\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["line"], 2, "{p}");
}

#[tokio::test]
async fn lists_paginate() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let page1 = app.get(&admin, "/api/v1/regions?limit=4").await.expect(200).json();
    let page3 = app.get(&admin, "/api/v1/regions?limit=4&offset=8").await.expect(200).json();
    assert_eq!(page1["items"].as_array().unwrap().len(), 4);
    assert_eq!(page3["items"].as_array().unwrap().len(), 2);
    assert_eq!(page1["total"], 10);
    assert_eq!(page3["total"], 10);
    assert_eq!(page1["items"][0]["code"], BANNER);
}

#[tokio::test]
async fn every_change_is_audited() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Seeding itself is audited (import by the system).
    let seeded = app.audit_rows("region", BANNER).await;
    assert_eq!(seeded, vec![("import".to_string(), "system".to_string())]);
    // Token issue and revoke.
    let t = app
        .post(&admin, "/api/v1/tokens", &json!({"name": "乌云", "role": "planner", "region": BANNER}))
        .await
        .expect(201)
        .json();
    let id = t["id"].as_i64().unwrap().to_string();
    app.delete(&admin, &format!("/api/v1/tokens/{id}")).await.expect(200);
    let rows = app.audit_rows("token", &id).await;
    assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), vec!["revoke", "issue"]);
    // Region update, with before and after.
    app.patch(&admin, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": 113.64, "lat": 43.85})).await.expect(200);
    let log =
        app.get(&admin, &format!("/api/v1/audit?entity_type=region&entity_id={MANDULATU}")).await.expect(200).json();
    let row = &log["items"][0];
    assert_eq!(row["action"], "update");
    assert!(row["before_state"]["lon"].is_null());
    assert_eq!(row["after_state"]["lon"], 113.64);
    assert!(row["actor"].as_str().unwrap().starts_with("admin-"));
    assert!(row["request_id"].is_string());
    // Filters: actor and time range.
    let actor = row["actor"].as_str().unwrap();
    let by_actor = app.get(&admin, &format!("/api/v1/audit?actor={actor}")).await.expect(200).json();
    assert_eq!(by_actor["total"], 3);
    let future = app.get(&admin, "/api/v1/audit?from=2030-01-01T00:00:00%2B08:00").await.expect(200).json();
    assert_eq!(future["total"], 0);
    // No route changes the log, and the database refuses to.
    let r = app.send(Method::DELETE, "/api/v1/audit", Some(&admin), None).await;
    assert_eq!(r.status, 405);
    let del = yingji::with_db!(&app.state.db, |p| sqlx::query("DELETE FROM audit_log").execute(p).await.map(|_| ()));
    assert!(del.is_err(), "audit rows cannot be deleted");
}

#[tokio::test]
async fn openapi_describes_every_served_route() {
    let app = TestApp::spawn().await;
    let doc = app.send(Method::GET, "/api/v1/openapi.json", None, None).await.expect(200).json();
    assert_eq!(doc["openapi"], "3.1.0");
    for r in app.state.router.routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} is served but missing from the OpenAPI document", r.method, r.path);
        assert!(op["responses"].is_object() && op["summary"].is_string());
    }
    // ...and conversely every documented operation is served (no 404 for its path).
    let admin = app.admin().await;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{code}", MANDULATU).replace("{id}", "1").replace(['{', '}'], "");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.send(m, &concrete, Some(&admin), None).await;
            assert!(r.status != 404 || !r.text.contains("没有这个接口"), "{method} {path} documented but not served");
        }
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {name}");
    }
    let html = app.send(Method::GET, "/api/docs", None, None).await.expect(200);
    assert!(html.text.contains("/api/v1/regions"));
}

#[tokio::test]
async fn operations_endpoints() {
    let app = TestApp::spawn().await;
    assert_eq!(app.send(Method::GET, "/healthz", None, None).await.expect(200).text, "ok\n");
    app.send(Method::GET, "/readyz", None, None).await.expect(200);
    let r = app.send(Method::GET, "/healthz", None, None).await;
    assert!(r.headers.contains_key("x-request-id"));
    let r = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let admin = app.admin().await;
    let m = app.get(&admin, "/metrics").await.expect(200).text;
    assert!(m.contains("yingji_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"), "{m}");
    assert!(m.contains("yingji_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(m.contains("yingji_db_pool_connections"));
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let body = "code,name,level,parent_code\n152523100202,奈日木德勒嘎查,village,152523100000\n";
    let (head, tail) = body.split_at(30);
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "POST /api/v1/import/regions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Shut down while the request is half sent.
    let shutdown = tokio::spawn(async move {
        app.stop().await;
        app
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(tail.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "in-flight request finished: {resp}");
    let app = tokio::time::timeout(Duration::from_secs(10), shutdown).await.expect("shutdown completes").unwrap();
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "no longer accepting");
    // The write landed: reopen the database and look.
    let db =
        yingji::db::Db::connect(&yingji::db::DbOptions { url: app.db_url.clone(), max_connections: 1 }).await.unwrap();
    assert!(yingji::regions::store::get(&db, "152523100202").await.unwrap().is_some());
}

#[tokio::test]
async fn the_binary_stops_cleanly_on_sigterm() {
    let db = fresh_db().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_yingji"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url)
        .env("YINGJI_PII_KEY", TEST_PII_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 {
            buf.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        let line = String::from_utf8_lossy(&buf).to_string();
        // Keep draining stdout so the service never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
    })
    .await
    .unwrap();
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn instances_starting_together_share_one_database() {
    let db = fresh_db().await;
    let start = |url: String| async move {
        let mut config = yingji::app::Config::new(url);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.pii_key = Some(TEST_PII_KEY.to_string());
        let clock: yingji::clock::SharedClock = std::sync::Arc::new(yingji::clock::SystemClock);
        yingji::app::start(config, clock).await
    };
    let (a, b, c) = tokio::join!(start(db.url.clone()), start(db.url.clone()), start(db.url.clone()));
    let (a, b, c) = (
        a.map_err(|e| format!("{e:#}")).expect("first starts"),
        b.map_err(|e| format!("{e:#}")).expect("second starts"),
        c.map_err(|e| format!("{e:#}")).expect("third starts"),
    );
    let (regions, _) = yingji::regions::store::list(&a.state.db, ("0", "9"), None, None, 1000, 0).await.unwrap();
    assert_eq!(regions.len(), 10, "seeded exactly once");
    for s in [a, b, c] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn logs_are_json_lines_when_asked() {
    let db = fresh_db().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yingji"))
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .env("YINGJI_PII_KEY", TEST_PII_KEY)
        .env("YINGJI_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "first-start seeding logs something");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
    }
}
