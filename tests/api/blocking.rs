//! CPU work leaves the async runtime: while a large CSV import is being parsed, `/healthz` keeps
//! answering. The test runtime has a single thread, so a parse on it would stall every request
//! until the parse ended; the assertion is about completions, not about milliseconds.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test]
async fn healthz_answers_while_a_large_import_is_parsed() {
    let db = fresh_db().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(Some(db), &url, |c| c.max_import_bytes = 64 * 1024 * 1024).await;
    let token = app.admin().await;
    // About 60 MB of stock rows, each wrong (an over-long batch) and the last
    // line broken, so the import parses the whole file and then refuses it (nothing is written).
    let rows = 60_000;
    let long = "B".repeat(1000);
    let mut csv = String::with_capacity(rows * 1024 + 64);
    csv.push_str("depot_code,item_code,quantity,batch\n");
    for _ in 0..rows {
        csv.push_str("D1,1999905,1,");
        csv.push_str(&long);
        csv.push('\n');
    }
    csv.push_str("D1,1999905\n");
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/import/stock HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        csv.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Once this returns, the service has read all but what the socket buffers hold.
    stream.write_all(csv.as_bytes()).await.unwrap();
    let import = tokio::spawn(async move {
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).to_string()
    });
    let mut answered = 0;
    while !import.is_finished() {
        app.send(reqwest::Method::GET, "/healthz", None, None).await.expect(200);
        answered += 1;
    }
    let response = import.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 422"), "{}", &response[..response.len().min(400)]);
    // Every line is counted, the broken last one too.
    let total = format!("\"total_errors\":{}", rows + 1);
    assert!(response.contains(&total), "{}", &response[..response.len().min(800)]);
    // Sequential round trips completed during the parse; with the parse on the runtime thread the
    // first would have waited for it to end and the import would have answered right after.
    assert!(answered >= 20, "only {answered} health checks answered while the import was parsed");
}
