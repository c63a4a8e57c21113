//! The API contract: what the OpenAPI document declares is what the service enforces (query
//! errors are 400 on every GET, declared ranges and patterns match the checks), and `/metrics`
//! needs a credential.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const SCRAPE: &str = "scrape-secret-for-tests-0123456789";

#[tokio::test]
async fn bad_query_values_are_400_on_every_get_whether_the_parser_or_the_handler_finds_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (path, field) in [
        ("/api/v1/plans?limit=0", "limit"),
        ("/api/v1/depots?limit=1001", "limit"),
        ("/api/v1/teams?offset=4294967296", "offset"),
        ("/api/v1/plans?region=15252300000", "region"),
        ("/api/v1/readiness/history?region=15252300000a", "region"),
        ("/api/v1/notifications?region=abc", "region"),
        // Parsed fine, refused by the handler's range check: still 400, never 422.
        ("/api/v1/supplies/nearest?item=1010101&quantity=0&lon=113&lat=44", "quantity"),
        ("/api/v1/teams/nearest?specialty=medical&lon=113&lat=44&max_km=0", "max_km"),
        ("/api/v1/teams/nearest?specialty=medical&lon=113&lat=95&max_km=10", "lon"),
    ] {
        let p = app.get(&admin, path).await.problem(400);
        assert_eq!(p["type"], "/problems/bad-request", "{path}: {p}");
        assert_eq!(p["errors"][0]["field"], field, "{path}: {p}");
    }
}

/// The parameter `name` of `GET path` in the document.
fn param<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
}

/// A schema, following a `$ref` into the components.
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

#[tokio::test]
async fn the_document_declares_the_rules_the_service_enforces() {
    let app = TestApp::spawn().await;
    let doc = app.send(Method::GET, "/api/v1/openapi.json", None, None).await.expect(200).json();
    // No GET declares 422 (bad query values are 400); every one declares 400.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if let Some(get) = item.get("get") {
            assert!(get["responses"].get("422").is_none(), "GET {path} declares 422");
            assert!(get["responses"].get("400").is_some(), "GET {path} does not declare 400");
        }
    }
    let limit = deref(&doc, &param(&doc, "/api/v1/plans", "limit")["schema"]);
    assert_eq!((limit["minimum"].as_i64(), limit["maximum"].as_i64()), (Some(1), Some(1000)), "{limit}");
    let region = deref(&doc, &param(&doc, "/api/v1/plans", "region")["schema"]);
    assert_eq!(region["pattern"], "^[0-9]{12}$", "{region}");
    let callup = &doc["components"]["schemas"]["NewCallUp"]["properties"];
    assert_eq!(
        (callup["headcount"]["minimum"].as_i64(), callup["headcount"]["maximum"].as_i64()),
        (Some(1), Some(1000))
    );
    // Free text refuses NUL (PostgreSQL cannot store it) and required text must not be blank.
    assert_eq!(callup["report_place"]["pattern"], "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$");
    assert_eq!(callup["note"]["pattern"], "^[^\\u0000]*$");
    // And the service agrees at the edges of what is declared.
    let admin = app.admin().await;
    app.get(&admin, "/api/v1/plans?limit=1000").await.expect(200);
    app.get(&admin, "/api/v1/plans?limit=1").await.expect(200);
    app.get(&admin, "/api/v1/plans?limit=1001").await.problem(400);
    // JSON Schema's integer includes 12.0: it is read as 12.
    let item = app.patch(&admin, "/api/v1/items/1999905", &json!({"shelf_life_months": 12.0})).await.expect(200).json();
    assert_eq!(item["shelf_life_months"], 12);
    app.patch(&admin, "/api/v1/items/1999905", &json!({"shelf_life_months": 12.5})).await.problem(422);
}

#[tokio::test]
async fn metrics_need_a_banner_admin_token_or_the_scrape_token_which_reads_nothing_else() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.metrics_token = Some(SCRAPE.into())).await;
    let r = app.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"yingji\"");
    r.problem(401);
    app.get("yj_not-a-token", "/metrics").await.problem(401);
    let viewer = app.token("viewer", BANNER).await;
    app.get(&viewer, "/metrics").await.problem(403);
    let township_admin = app.token("admin", MANDULATU).await;
    app.get(&township_admin, "/metrics").await.problem(403);
    let admin = app.admin().await;
    let m = app.get(&admin, "/metrics").await.expect(200);
    assert!(m.content_type.starts_with("text/plain") && m.text.contains("yingji_http_requests_total"), "{m:?}");
    let m = app.get(SCRAPE, "/metrics").await.expect(200);
    assert!(m.text.contains("route=\"/metrics\",status=\"403\""), "{}", m.text);
    // The scrape token is not an API token.
    app.get(SCRAPE, "/api/v1/regions").await.problem(401);
    // Without a configured scrape token, an empty or guessed one gets nothing.
    let plain = TestApp::spawn().await;
    plain.get(SCRAPE, "/metrics").await.problem(401);
    let doc = plain.send(Method::GET, "/api/v1/openapi.json", None, None).await.expect(200).json();
    assert_eq!(doc["paths"]["/metrics"]["get"]["security"], json!([{"bearer": []}]));
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["401"].is_object());
}

#[tokio::test]
async fn every_list_refuses_a_region_outside_the_jurisdiction_with_403() {
    use yingji::http::access::Region;
    use yingji::http::router::Access;
    let app = TestApp::spawn().await;
    let township_admin = app.token("admin", MANDULATU).await;
    let router = yingji::routes::router();
    let mut checked = Vec::new();
    for r in router.routes().iter().filter(|r| r.access == Access::Token && r.method == "GET" && !r.path.contains('{'))
    {
        let Some(q) = r.guard.and_then(|g| {
            g.regions.iter().find_map(|x| match x {
                Region::Query(q) => Some(*q),
                _ => None,
            })
        }) else {
            continue;
        };
        let p = app.get(&township_admin, &format!("{}?{q}={CHAGANAOBAO}", r.path)).await.problem(403);
        assert_eq!(p["type"], "/problems/forbidden", "{}: {p}", r.path);
        checked.push(r.path);
    }
    for list in ["/api/v1/plans", "/api/v1/notifications", "/api/v1/depots", "/api/v1/teams", "/api/v1/drills"] {
        assert!(checked.contains(&list), "{list} was not checked: {checked:?}");
    }
}

#[tokio::test]
async fn feed_tokens_are_listed_as_a_page_and_an_overlong_path_is_a_414_problem() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/feed-tokens", &json!({})).await.expect(201);
    let list = app.get(&admin, "/api/v1/feed-tokens").await.expect(200).json();
    assert_eq!((list["total"].as_i64(), list["items"].as_array().map(Vec::len)), (Some(1), Some(1)), "{list}");
    let long = format!("/api/v1/{}", "a".repeat(10_000));
    let p = app.get(&admin, &long).await.problem(414);
    assert_eq!(p["type"], "/problems/uri-too-long");
    // A long unknown path is answered without echoing all of it.
    let p = app.get(&admin, &format!("/api/v1/{}", "b".repeat(5_000))).await.problem(404);
    assert!(p["detail"].as_str().unwrap().len() < 1_000, "{p}");
}

/// Exports without personal data declare and take no `reveal`; those with it declare it.
#[tokio::test]
async fn only_exports_with_personal_data_offer_reveal() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let doc = app.send(Method::GET, "/api/v1/openapi.json", None, None).await.expect(200).json();
    let has_reveal =
        |path: &str| doc["paths"][path]["get"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "reveal");
    for path in ["/api/v1/export/depots.csv", "/api/v1/export/members.csv", "/api/v1/export/members.xlsx"] {
        assert!(has_reveal(path), "{path} declares reveal");
    }
    for path in [
        "/api/v1/export/teams.csv",
        "/api/v1/export/teams.xlsx",
        "/api/v1/export/catalogue.csv",
        "/api/v1/export/stock.csv",
    ] {
        assert!(!has_reveal(path), "{path} does not declare reveal");
        let p = app.get(&admin, &format!("{path}?reveal=true")).await.problem(400);
        assert_eq!(p["type"], "/problems/bad-request", "{path}: {p}");
    }
    app.get(&admin, "/api/v1/export/teams.csv?header=en").await.expect(200);
}
