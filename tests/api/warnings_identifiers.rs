//! CAP identifiers of warnings issued here: `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N` (GB/T 35965.1
//! appendix A.1.1), unique however many are issued in one second (the serial `N`, 0–9), with the
//! department and unit codes from the configuration. The test clock stands still, so every
//! warning of a test is issued in the same second.

use serde_json::json;

use crate::common::*;
use crate::warnings::{count, schema_valid, warning_body};

#[tokio::test]
async fn warnings_issued_together_in_one_second_get_distinct_serials() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let body = warning_body(&[MANDULATU], 3, json!({}));
    let sends = (0..6).map(|_| app.post(&admin, "/api/v1/warnings", &body));
    let answers = futures_util::future::join_all(sends).await;
    let mut idents: Vec<String> =
        answers.into_iter().map(|r| r.expect(201).json()["identifier"].as_str().unwrap().to_string()).collect();
    idents.sort();
    let expected: Vec<String> = (0..6).map(|n| format!("15252300000000_20261127080000_{n}")).collect();
    assert_eq!(idents, expected);
    let w = app.get(&admin, "/api/v1/warnings?limit=1").await.expect(200).json();
    let id = w["items"][0]["id"].as_i64().unwrap();
    schema_valid(&app.get(&admin, &format!("/api/v1/warnings/{id}.xml")).await.expect(200).text);

    // The serial is one digit: four more fill the second, an eleventh is refused and stores
    // nothing.
    for _ in 0..4 {
        app.post(&admin, "/api/v1/warnings", &body).await.expect(201);
    }
    let refused = app.post(&admin, "/api/v1/warnings", &body).await.expect(409);
    assert!(refused.text.contains("同一秒"), "{}", refused.text);
    assert_eq!(count(&app, "warnings").await, 10);

    // The next second starts again from 0.
    app.clock.advance(chrono::Duration::seconds(1));
    let w = app.post(&admin, "/api/v1/warnings", &body).await.expect(201).json();
    assert_eq!(w["identifier"], "15252300000000_20261127080001_0");
}

#[tokio::test]
async fn the_department_and_unit_codes_come_from_the_configuration() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| {
        c.cap_issuer_code = yingji::warnings::cap::IssuerCode::parse("416001").unwrap();
    })
    .await;
    let admin = app.admin().await;
    let w = app.post(&admin, "/api/v1/warnings", &warning_body(&[MANDULATU], 2, json!({}))).await.expect(201).json();
    assert_eq!(w["identifier"], "15252341600100_20261127080000_0");
}
