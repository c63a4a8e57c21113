//! 导入 / 导出 in a real browser: a township operator uploads a depots CSV with two bad lines and
//! sees the errors table (行, 列, 问题), then a good file: the preview, the confirmation, the
//! result; then downloads an export link. At desktop width and at 375 px, checked with axe-core.

use fantoccini::Locator;
use serde_json::json;
use yingji::auth::Role;

use crate::browser::{Steps, browser, seed};
use crate::common::*;
use crate::console::create_user;

#[tokio::test]
async fn a_depots_csv_is_previewed_with_its_errors_then_imported_and_exported() {
    let Some((_driver, c, dir)) = browser().await else { return };
    let app = TestApp::spawn().await;
    seed(&app).await;
    create_user(&app, "zhao", Role::Operator, MANDULATU).await;
    let files = std::env::temp_dir().join(format!("yingji-imports-{}", yingji::auth::tokens::random_hex16()));
    std::fs::create_dir_all(&files).unwrap();
    let bad = files.join("储备库-有错.csv");
    std::fs::write(
        &bad,
        format!(
            "code,name,region_code,kind,lon,lat\nDB1,北库,{MANDULATU},township_point,113.6,43.8\nDB2,南库,{MANDULATU},no_kind,113.6,43.8\nDB3,西库,{MANDULATU},township_point,113.6,abc\n"
        ),
    )
    .unwrap();
    let good = files.join("储备库.csv");
    std::fs::write(
        &good,
        format!(
            "code,name,region_code,kind,lon,lat\nDB1,白音库,{MANDULATU},township_point,113.6,43.8\nDB2,乌兰库,{MANDULATU},township_point,113.7,43.9\n"
        ),
    )
    .unwrap();
    let s = Steps { c, dir, base: app.base.clone() };

    s.login("zhao").await;
    s.goto("open", "/imports").await;
    s.wait_for("imports", "#import-form").await;
    // The progress script runs under the page's strict CSP (the upload then goes by XHR).
    s.wait_for("progress-script", "#import-form[data-progress=on]").await;
    s.shot("imports-desktop").await;
    s.axe("imports").await;

    // A file with two bad lines: the errors table, and nothing to confirm.
    s.select("kind", "#i-kind", "depots").await;
    let r = async { s.c.find(Locator::Css("#i-file")).await?.send_keys(&bad.display().to_string()).await }.await;
    s.check("file-bad", r).await;
    s.click("upload-bad", "#import-form button[type=submit]").await;
    s.wait_for("errors", "#import-errors").await;
    let errors = s.text("errors-text", "#import-errors").await;
    assert!(errors.contains('3') && errors.contains('4'), "lines 3 and 4 are named: {errors}");
    let heading = s.text("errors-h", "#errors-h").await;
    assert!(heading.contains("共 2 处"), "{heading}");
    assert!(s.c.find(Locator::Css("#confirm-form")).await.is_err(), "no confirmation for a file with errors");
    s.shot("imports-errors-desktop").await;
    s.axe("imports-errors").await;
    s.width(375, 812).await;
    s.shot("imports-errors-375").await;
    s.axe("imports-errors-375").await;
    s.width(1280, 900).await;

    // A good file: the preview, then the confirmation.
    s.goto("again", "/imports").await;
    s.select("kind-good", "#i-kind", "depots").await;
    let r = async { s.c.find(Locator::Css("#i-file")).await?.send_keys(&good.display().to_string()).await }.await;
    s.check("file-good", r).await;
    s.click("upload-good", "#import-form button[type=submit]").await;
    s.wait_for("preview", "#import-preview").await;
    let preview = s.text("preview-text", "#import-preview").await;
    assert!(preview.contains("白音库") && preview.contains("乌兰库"), "{preview}");
    let head = s.text("preview-head", "#import-preview thead").await;
    assert!(head.contains("储备库编码") && head.contains("区划代码"), "Chinese headers: {head}");
    s.shot("imports-preview-desktop").await;
    s.axe("imports-preview").await;
    s.width(375, 812).await;
    s.shot("imports-preview-375").await;
    s.width(1280, 900).await;
    s.click("confirm", "#confirm-form button[type=submit]").await;
    s.wait_for("result", "#import-result").await;
    let result = s.text("result-text", "#import-result").await;
    assert!(result.contains("新增 2"), "{result}");
    s.shot("imports-result-desktop").await;
    s.axe("imports-result").await;

    // The depots export, fetched as the link would download it.
    let href = s
        .check(
            "export-link",
            async { s.c.find(Locator::Css("a[href='/imports/export/depots.csv']")).await?.attr("href").await }.await,
        )
        .await;
    let csv = s
        .c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0]).then(function (r) { return r.text(); }).then(done, function (e) { done('failed: ' + e); });",
            vec![json!(href)],
        )
        .await;
    let csv = s.check("export", csv).await;
    let csv = csv.as_str().unwrap_or_default().to_string();
    assert!(csv.contains("白音库") && csv.contains("乌兰库") && csv.contains("D1储备点"), "{csv}");
    let _ = s.c.close().await;
    let _ = std::fs::remove_dir_all(&files);
}
