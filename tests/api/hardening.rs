//! Input that cannot hurt: NUL refused alike on both databases, formula cells neutralised in
//! exports, error lists capped, metrics labels bounded, request time and concurrency limited.

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::common::*;

#[tokio::test]
async fn nul_is_refused_in_json_query_and_csv_naming_where() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let body = json!({"code": "N1", "name": "仓\u{0}库", "region_code": MANDULATU, "kind": "township_point", "lon": 113.6, "lat": 43.8});
    let p = app.post(&admin, "/api/v1/depots", &body).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "name", "{p}");
    let p = app.post(&admin, "/api/v1/drills", &json!({"participating_units": ["a", "b\u{0}"]})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "participating_units[1]", "{p}");
    let p = app.get(&admin, "/api/v1/depots?kind=%00").await.problem(400);
    assert_eq!(p["errors"][0]["field"], "kind", "{p}");
    let csv = "code,name,region_code,kind,lon,lat\nD9,仓\u{0}库,152523100000,township_point,113.6,43.8\n";
    let p = app.post_csv(&admin, "/api/v1/import/depots", csv).await.problem(422);
    assert_eq!(p["errors"][0]["line"], 2, "{p}");
    assert_eq!(app.get(&admin, "/api/v1/depots").await.expect(200).json()["total"], 0, "nothing written");
}

#[tokio::test]
async fn exported_formula_cells_are_neutralised_and_reimport_unchanged() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let formula = "=HYPERLINK(\"http://evil.example\",\"点击\")";
    let body = json!({"code": "F1", "name": formula, "region_code": MANDULATU, "kind": "township_point", "lon": 113.6, "lat": 43.8, "manager": "@张三"});
    app.post(&admin, "/api/v1/depots", &body).await.expect(201);
    let csv = app.get(&admin, "/api/v1/export/depots.csv?header=en").await.expect(200).text;
    assert!(csv.contains("\"'=HYPERLINK(") && csv.contains(",'@张三,"), "{csv}");
    assert!(!csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"), "{csv}");
    // A negative number is a number, not a formula.
    assert_eq!(yingji::csvio::neutralise("-5").as_ref(), "-5");
    assert_eq!(yingji::csvio::neutralise("+86 139").as_ref(), "'+86 139");
    app.post_csv(&admin, "/api/v1/import/depots", &csv).await.expect(200);
    let d = app.get(&admin, "/api/v1/depots").await.expect(200).json();
    assert_eq!(d["items"][0]["name"], formula);
    assert_eq!(d["items"][0]["manager"], "@张三");
}

#[tokio::test]
async fn a_file_with_an_error_on_every_line_answers_a_bounded_list() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut csv = String::from("code,name,region_code,kind,lon,lat\n");
    for i in 0..5000 {
        csv.push_str(&format!("D{i},库,152523100000,no_such_kind,113.6,43.8\n"));
    }
    let p = app.post_csv(&admin, "/api/v1/import/depots", &csv).await.problem(422);
    let errors = p["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100, "the first 100");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[99]["line"], 101);
    assert_eq!(p["total_errors"], 5000);
    assert!(p["detail"].as_str().unwrap().contains("5000 处错误"), "{}", p["detail"]);
    // Lines with the wrong number of cells are caught by the CSV reader: the same cap.
    let mut bad = String::from("code,name,region_code,kind,lon,lat\n");
    for _ in 0..3000 {
        bad.push_str("x\n");
    }
    let p = app.post_csv(&admin, "/api/v1/import/depots", &bad).await.problem(422);
    assert_eq!(p["errors"].as_array().unwrap().len(), 100);
    assert_eq!(p["total_errors"], 3000);
}

#[tokio::test]
async fn metrics_labels_are_route_templates_and_allow_names_the_literal_route() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let before = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .count();
    for i in 0..40 {
        app.client.get(app.url(&format!("/no/such/path/{i}"))).send().await.unwrap();
        app.client.delete(app.url(&format!("/api/v1/depots/{i}"))).send().await.unwrap();
    }
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("/no/such") && !metrics.contains("/api/v1/depots/1\""), "{metrics}");
    assert!(metrics.lines().count() < before + 20, "labels stay bounded");
    let r = app.send(reqwest::Method::OPTIONS, "/api/v1/members/search", Some(&admin), None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers.get("allow").unwrap(), "POST");
}

#[tokio::test]
async fn slow_requests_get_408_and_overload_gets_503() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.request_timeout = std::time::Duration::from_millis(1)).await;
    let admin = app.admin().await;
    let big = (0..20000).map(|i| format!("D{i},库,152523100000,township_point,113.6,43.8\n")).collect::<String>();
    let p = app
        .post_csv(&admin, "/api/v1/import/depots", &format!("code,name,region_code,kind,lon,lat\n{big}"))
        .await
        .problem(408);
    assert!(p["detail"].as_str().unwrap().contains("未写入任何数据"));
    // One request holds the only slot while its body trickles in; the next is turned away.
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.max_concurrent_requests = 1).await;
    let admin = app.admin().await;
    let addr = app.base.strip_prefix("http://").unwrap().to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!("POST /api/v1/drills HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{")
            .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    drop(slow);
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_bodies_must_be_objects() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let page = app.get(&admin, "/api/v1/plans/1/document").await.expect(200);
    assert!(page.content_type.starts_with("text/html"));
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers.get("x-content-type-options").unwrap(), "nosniff");
    let j = app.get(&admin, "/api/v1/depots").await.expect(200);
    assert_eq!(j.headers.get("x-content-type-options").unwrap(), "nosniff");
    let p = app
        .post(&admin, "/api/v1/depots", &json!(["F1", "库", MANDULATU, "township_point", 113.6, 43.8]))
        .await
        .problem(422);
    assert_eq!(p["errors"][0]["field"], "body");
}

#[tokio::test]
async fn the_openapi_document_names_each_parameter_and_required_field_once() {
    let app = TestApp::spawn().await;
    let doc = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    fn walk(v: &serde_json::Value, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(req)) = m.get("required") {
                    let mut names: Vec<String> = req.iter().map(|x| x.to_string()).collect();
                    let n = names.len();
                    names.sort();
                    names.dedup();
                    if names.len() != n {
                        bad.push(format!("required {req:?}"));
                    }
                }
                m.values().for_each(|x| walk(x, bad));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(&doc, &mut bad);
    let problem_required = doc["components"]["schemas"]["Problem"]["required"].to_string();
    assert!(!problem_required.contains("errors"), "most problems have no errors list: {problem_required}");
    let geo = &doc["paths"]["/api/v1/depots.geojson"]["get"]["responses"]["200"]["content"]["application/geo+json"];
    assert_eq!(geo["schema"]["type"], "object");
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut names: Vec<String> =
                op["parameters"].as_array().unwrap().iter().map(|p| format!("{}:{}", p["in"], p["name"])).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            if names.len() != n {
                bad.push(format!("{method} {path}: repeated parameter"));
            }
            if path.starts_with("/api/v1/") && op.get("security").is_some() {
                assert!(op["x-permission"].is_string(), "{method} {path} shows its permission");
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[tokio::test]
async fn catalogue_changes_reach_the_audit_list_and_a_422_never_echoes_the_value() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/items", &json!({"code": "1-01-01-01", "name": "测试", "unit": "个"})).await.expect(201);
    let rows = app.get(&admin, "/api/v1/audit?entity_type=supply_item").await.expect(200).json();
    assert!(rows["total"].as_i64().unwrap() >= 1, "{rows}");
    // A township admin sees only its own region's rows.
    let town = app.token("admin", MANDULATU).await;
    assert_eq!(app.get(&town, "/api/v1/audit?entity_type=supply_item").await.expect(200).json()["total"], 0);
    let p = app.post(&admin, "/api/v1/members/search", &json!({"id_number": 152523199001011234u64})).await.problem(422);
    assert!(!p.to_string().contains("152523199001011234"), "{p}");
}
