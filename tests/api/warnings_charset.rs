//! CAP messages in the encodings Chinese feeds send: GBK, GB2312 and GB18030 declared in the XML
//! prolog are read as such, kept, and served back as the bytes that arrived; bytes that do not
//! fit the declared encoding are refused with nothing stored.

use serde_json::json;

use crate::common::*;
use crate::warnings::count;
use crate::warnings_cap_in::{message, snow_info};

async fn post_bytes(app: &TestApp, token: &str, bytes: Vec<u8>) -> (u16, String) {
    let r = app
        .client
        .post(app.url("/api/v1/warnings/import"))
        .bearer_auth(token)
        .header("content-type", "application/xml")
        .body(bytes)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn gbk_gb2312_and_gb18030_messages_are_read_and_kept_as_received() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (n, label) in ["GBK", "GB2312", "GB18030"].into_iter().enumerate() {
        let headline = format!("锡林郭勒盟气象台发布暴雪黄色预警（{label} 编码）");
        let text = message(
            &format!("1525004160000{n}_20261127075000"),
            "Alert",
            None,
            &snow_info("Moderate", &[MANDULATU, CHAGANAOBAO], &headline),
        )
        .replace("encoding=\"UTF-8\"", &format!("encoding=\"{label}\""));
        let (bytes, _, unmappable) = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap().encode(&text);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err(), "the {label} message is not UTF-8");
        let (status, body) = post_bytes(&app, &admin, bytes.to_vec()).await;
        assert_eq!(status, 201, "{label}: {body}");
        let w: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(w["headline"], headline.as_str());
        assert_eq!((w["hazard"].as_str(), w["level"].as_i64()), (Some("snow_disaster"), Some(3)));
        assert_eq!(w["regions"], json!([MANDULATU, CHAGANAOBAO]));
        assert_eq!(w["area_desc"], "苏尼特左旗满都拉图镇、查干敖包镇");
        // The original comes back as the bytes that arrived, labelled with their charset.
        let r = app
            .client
            .get(app.url(&format!("/api/v1/warnings/{}.xml?original=true", w["id"])))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_ref(), "{label} original");
        assert!(ct.to_ascii_lowercase().contains("charset=gb"), "{ct}");
        // The same message again is recognised as the same.
        let (status, body) = post_bytes(&app, &admin, bytes.to_vec()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(count(&app, "warnings").await, 3);

    // Declared GBK, but the bytes are not GBK (a lone lead byte): refused, nothing stored.
    let text = message("15250041600009_20261127075000", "Alert", None, &snow_info("Minor", &[MANDULATU], "坏消息"))
        .replace("encoding=\"UTF-8\"", "encoding=\"GBK\"");
    let (mut bytes, _, _) = encoding_rs::GBK.encode(&text);
    let mut bad = bytes.to_mut().clone();
    let at = bad.windows(10).position(|w| w == b"<headline>").unwrap() + 10;
    bad.insert(at, 0x81);
    bad.insert(at + 1, b'<');
    let (status, body) = post_bytes(&app, &admin, bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("GBK"), "{body}");
    // Undeclared GBK bytes are read as UTF-8, the XML default, and refused too.
    let undeclared = text.replace("encoding=\"GBK\"", "").replace("<?xml version=\"1.0\" ?>", "");
    let (status, _) = post_bytes(&app, &admin, encoding_rs::GBK.encode(&undeclared).0.to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(count(&app, "warnings").await, 3);
}
