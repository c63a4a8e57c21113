//! 导入 / 导出 in the console over plain HTTP: who sees the import form (exactly who may call an
//! import), a viewer's downloads, an upload's preview kept for its own session, and the
//! confirmation. (The page in a real browser: `browser_imports.rs`.)

use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION};
use yingji::auth::Role;

use crate::common::*;
use crate::console::{Browser, create_user, login};
use crate::supplies::count;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A `multipart/form-data` body with the CSRF token, the kind and one file.
pub(crate) fn upload_body(csrf: &str, kind: &str, name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let b = "yjBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in [("csrf", csrf), ("kind", kind)] {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn upload(app: &TestApp, who: &Browser, csrf: &str, kind: &str, file: &str) -> reqwest::Response {
    let (ct, body) = upload_body(csrf, kind, "depots.csv", file.as_bytes());
    client()
        .post(app.url("/imports"))
        .header(COOKIE, &who.cookie)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn page(app: &TestApp, who: &Browser, path: &str) -> (StatusCode, String) {
    let r = client().get(app.url(path)).header(COOKIE, &who.cookie).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn depots_csv() -> String {
    format!(
        "code,name,region_code,kind,lon,lat\nDX1,导入一号库,{MANDULATU},township_point,113.6,43.8\nDX2,导入二号库,{MANDULATU},township_point,113.7,43.9\n"
    )
}

#[tokio::test]
async fn a_viewer_only_downloads_and_an_operator_previews_then_confirms_an_import() {
    let app = TestApp::spawn().await;
    create_user(&app, "viewer1", Role::Viewer, MANDULATU).await;
    create_user(&app, "op1", Role::Operator, MANDULATU).await;
    let viewer = login(&app, "viewer1").await;
    let op = login(&app, "op1").await;

    // A viewer: every export as CSV and Excel, never the import form.
    let (status, html) = page(&app, &viewer, "/imports").await;
    assert_eq!(status, 200);
    assert!(!html.contains("id=\"import-form\""), "a viewer never sees the import form");
    for kind in ["depots", "stock", "catalogue", "teams", "members"] {
        assert!(html.contains(&format!("/imports/export/{kind}.csv")), "{kind} csv");
        assert!(html.contains(&format!("/imports/export/{kind}.xlsx")), "{kind} xlsx");
    }
    let r = client().get(app.url("/imports/export/depots.csv")).header(COOKIE, &viewer.cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert!(r.headers()[CONTENT_DISPOSITION].to_str().unwrap().contains("depots.csv"));
    let r = client().get(app.url("/imports/export/stock.xlsx")).header(COOKIE, &viewer.cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(b"PK"), "an xlsx file is a ZIP");
    let (status, _) = page(&app, &viewer, "/imports/export/secrets.csv").await;
    assert_eq!(status, 404);

    // Without a session, an upload larger than a form is refused before it is read.
    let big = "x".repeat(100 * 1024);
    let (ct, body) = upload_body("none", "depots", "big.csv", big.as_bytes());
    let r = client().post(app.url("/imports")).header(CONTENT_TYPE, ct).body(body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Posting the form anyway is refused by the API's own rule, and nothing is written.
    let r = upload(&app, &viewer, &viewer.csrf, "depots", &depots_csv()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, 0);

    // An operator sees the imports its role may call (not the catalogue nor the regions).
    let (_, html) = page(&app, &op, "/imports").await;
    assert!(html.contains("id=\"import-form\""));
    for (kind, shown) in [
        ("depots", true),
        ("stock", true),
        ("teams", true),
        ("members", true),
        ("catalogue", false),
        ("regions", false),
    ] {
        assert_eq!(html.contains(&format!("<option value=\"{kind}\"")), shown, "{kind}");
    }
    // Without the CSRF token: refused.
    let r = upload(&app, &op, "forged", "depots", &depots_csv()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The preview: rows as read, nothing written yet, kept for this session only.
    let r = upload(&app, &op, &op.csrf, "depots", &depots_csv()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = r.headers()[LOCATION].to_str().unwrap().to_string();
    let (status, html) = page(&app, &op, &at).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("导入一号库") && html.contains("共读到 2 行数据") && html.contains("id=\"confirm-form\""),
        "{html}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, 0);
    let (status, _) = page(&app, &viewer, &at).await;
    assert_eq!(status, 404, "another session never sees the upload");
    let r = client()
        .post(app.url(&format!("{at}/confirm")))
        .header(COOKIE, &viewer.cookie)
        .form(&[("csrf", viewer.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nor confirms it");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, 0);

    // The confirmation imports the kept file.
    let r = client()
        .post(app.url(&format!("{at}/confirm")))
        .header(COOKIE, &op.cookie)
        .form(&[("csrf", op.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &op, &at).await;
    assert!(html.contains("新增 2，更新 0，未变 0"), "{html}");
    assert!(!html.contains("id=\"confirm-form\""));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM depots").await, 2);

    // An Excel workbook (the depots export) previews too, and confirming it changes nothing.
    let xlsx = client().get(app.url("/imports/export/depots.xlsx")).header(COOKIE, &op.cookie).send().await.unwrap();
    let xlsx = xlsx.bytes().await.unwrap();
    let (ct, body) = upload_body(&op.csrf, "depots", "储备库.xlsx", &xlsx);
    let r = client()
        .post(app.url("/imports"))
        .header(COOKIE, &op.cookie)
        .header(CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = r.headers()[LOCATION].to_str().unwrap().to_string();
    let (_, html) = page(&app, &op, &at).await;
    assert!(
        html.contains("导入二号库") && html.contains("共读到 2 行数据") && html.contains("id=\"confirm-form\""),
        "{html}"
    );
    client()
        .post(app.url(&format!("{at}/confirm")))
        .header(COOKIE, &op.cookie)
        .form(&[("csrf", op.csrf.as_str())])
        .send()
        .await
        .unwrap();
    let (_, html) = page(&app, &op, &at).await;
    assert!(html.contains("新增 0，更新 0，未变 2"), "{html}");

    // A file with errors: the table of lines and columns, and no confirmation.
    let bad = format!(
        "code,name,region_code,kind,lon,lat\nDX3,三号库,{MANDULATU},no_kind,113.6,43.8\nDX4,四号库,{MANDULATU},township_point,abc,43.8\n"
    );
    let r = upload(&app, &op, &op.csrf, "depots", &bad).await;
    let at = r.headers()[LOCATION].to_str().unwrap().to_string();
    let (_, html) = page(&app, &op, &at).await;
    assert!(html.contains("id=\"import-errors\"") && html.contains("共 2 处"), "{html}");
    assert!(!html.contains("id=\"confirm-form\""));
}
