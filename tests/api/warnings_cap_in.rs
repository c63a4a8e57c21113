//! CAP in: hand-written GB/T 35965.1-style messages (an alert, an update that upgrades it, a
//! cancel without an info block) import with the right regions, hazards and lifecycle; bad,
//! unsafe or foreign messages get a clear 4xx naming the element and store nothing.

use serde_json::json;

use crate::common::*;
use crate::warnings::{count, outbox_regions, post_xml};

/// A hand-written message in the style of the national warning release system.
pub(crate) fn message(identifier: &str, msg_type: &str, references: Option<&str>, info: &str) -> String {
    let refs = references.map(|r| format!("\n  <references>{r}</references>")).unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>15250041600000</sender>
  <sent>2026-11-27T07:50:00+08:00</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  {info}
</alert>
"#
    )
}

pub(crate) fn snow_info(severity: &str, geocodes: &[&str], headline: &str) -> String {
    let geo: String = geocodes
        .iter()
        .map(|g| format!("<geocode><valueName>行政区划代码</valueName><value>{g}</value></geocode>"))
        .collect();
    format!(
        r#"<info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>暴雪</event>
    <urgency>Expected</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <eventCode><valueName>预警事件类型代码</valueName><value>11B04</value></eventCode>
    <effective>2026-11-27T07:50:00+08:00</effective>
    <expires>2026-11-28T07:50:00+08:00</expires>
    <senderName>锡林郭勒盟气象台</senderName>
    <headline>{headline}</headline>
    <description>预计 12 小时内降雪量将达 6 毫米以上。</description>
    <instruction>做好防雪灾和防冻害准备。</instruction>
    <area><areaDesc>苏尼特左旗满都拉图镇、查干敖包镇</areaDesc>{geo}</area>
  </info>"#
    )
}

#[tokio::test]
async fn hand_written_messages_import_with_updates_and_a_cancel() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // 1. A yellow snow warning for two townships.
    let a_id = "15250041600000_20261127075000";
    let a = message(
        a_id,
        "Alert",
        None,
        &snow_info("Moderate", &[MANDULATU, CHAGANAOBAO], "锡林郭勒盟气象台发布暴雪黄色预警"),
    );
    let a = post_xml(&app, &admin, &a).await.expect(201).json();
    assert_eq!(
        (a["hazard"].as_str(), a["level"].as_i64(), a["status"].as_str()),
        (Some("snow_disaster"), Some(3), Some("issued"))
    );
    assert_eq!(a["regions"], json!([MANDULATU, CHAGANAOBAO]));
    assert_eq!(a["issuer"], "锡林郭勒盟气象台");
    assert_eq!(a["event_code"], "11B04");
    // 2. Upgraded to orange (the colour sent as severity, as some feeds do): the yellow one is updated.
    let b_id = "15250041600000_20261127093000";
    let b = message(
        b_id,
        "Update",
        Some(&format!("15250041600000,{a_id},2026-11-27T07:50:00+08:00")),
        &snow_info("Orange", &[MANDULATU], "锡林郭勒盟气象台将暴雪黄色预警升级为橙色"),
    );
    let b = post_xml(&app, &admin, &b).await.expect(201).json();
    assert_eq!(
        (b["level"].as_i64(), b["msg_type"].as_str(), b["regions"].clone()),
        (Some(2), Some("update"), json!([MANDULATU]))
    );
    let a_now = app.get(&admin, &format!("/api/v1/warnings/{}", a["id"])).await.expect(200).json();
    assert_eq!((a_now["status"].as_str(), a_now["ended_by"].as_i64()), (Some("updated"), b["id"].as_i64()));
    // 3. Lifted by a cancel without an info block: takes its area from what it cancels.
    let c = message(
        "15250041600000_20261127150000",
        "Cancel",
        Some(&format!(
            "15250041600000,{a_id},2026-11-27T07:50:00+08:00 15250041600000,{b_id},2026-11-27T07:50:00+08:00"
        )),
        "",
    );
    let c = post_xml(&app, &admin, &c).await.expect(201).json();
    assert_eq!(
        (c["msg_type"].as_str(), c["status"].as_str(), c["regions"].clone()),
        (Some("cancel"), Some("cancelled"), json!([MANDULATU]))
    );
    let b_now = app.get(&admin, &format!("/api/v1/warnings/{}", b["id"])).await.expect(200).json();
    assert_eq!(b_now["status"], "cancelled");
    assert_eq!(app.get(&admin, "/api/v1/warnings?active=true").await.expect(200).json()["total"], 0);
    // 4. A league-wide cold-wave exercise without an event code: mapped by the event's words,
    //    the league geocode covers the banner, a neighbouring county's code is not ours.
    let cold = r#"<info>
    <category>Met</category>
    <event>寒潮蓝色预警</event>
    <urgency>Expected</urgency>
    <severity>Minor</severity>
    <certainty>Likely</certainty>
    <area><areaDesc>锡林郭勒盟</areaDesc>
      <geocode><valueName>行政区划代码</valueName><value>152500</value></geocode>
      <geocode><valueName>行政区划代码</valueName><value>152524000000</value></geocode>
    </area>
  </info>"#;
    let d = message("15250041600000_20261127160000", "Alert", None, cold)
        .replace("<status>Actual</status>", "<status>Exercise</status>");
    let d = post_xml(&app, &admin, &d).await.expect(201).json();
    assert_eq!(
        (d["hazard"].as_str(), d["level"].as_i64(), d["cap_status"].as_str()),
        (Some("extreme_cold"), Some(4), Some("exercise"))
    );
    assert_eq!(d["regions"], json!([BANNER]));
    assert!(d["recipients"].as_i64().unwrap() >= 10, "the banner and its townships: {d}");
    assert_eq!(d["expires_at"], "2026-11-28T07:50:00+08:00", "no expiry given: a day after it took effect");
    // 5. A polygon-only area around 满都拉图镇's seat (no boundaries known: points decide).
    let poly = r#"<info>
    <category>Met</category>
    <event>大风</event>
    <urgency>Expected</urgency>
    <severity>Moderate</severity>
    <certainty>Likely</certainty>
    <expires>2026-11-27T20:00:00+08:00</expires>
    <area><areaDesc>满都拉图镇周边</areaDesc><polygon>43.7,113.5 43.7,113.8 44.0,113.8 44.0,113.5 43.7,113.5</polygon></area>
  </info>"#;
    let admin_region = app.get(&admin, &format!("/api/v1/regions/{MANDULATU}")).await.expect(200).json();
    assert!(admin_region["lon"].is_null(), "the township has no own point; the seat is the banner's");
    app.patch(&admin, &format!("/api/v1/regions/{MANDULATU}"), &json!({"lon": 113.64402, "lat": 43.85223}))
        .await
        .expect(200);
    let e =
        post_xml(&app, &admin, &message("15250041600000_20261127170000", "Alert", None, poly)).await.expect(201).json();
    assert_eq!((e["hazard"].as_str(), e["regions"].clone()), (Some("sandstorm"), json!([MANDULATU])));
    assert_eq!(e["polygon"], json!([[113.5, 43.7], [113.8, 43.7], [113.8, 44.0], [113.5, 44.0], [113.5, 43.7]]));
    // The audit log has each import and the lifecycle steps.
    let aid = a["id"].as_i64().unwrap().to_string();
    assert_eq!(app.audit_rows("warning", &aid).await.first().map(|r| r.0.as_str()), Some("issue"));
}

#[tokio::test]
async fn bad_messages_get_a_clear_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let good =
        message("15250041600000_20261127075000", "Alert", None, &snow_info("Severe", &[MANDULATU], "暴雪橙色预警"));
    let cases: Vec<(String, u16, &str)> = vec![
        (good.replace("</alert>", ""), 400, "alert"),
        (good.replace(MANDULATU, "152523109000"), 422, "152523109000"),
        (good.replace(MANDULATU, "15252310"), 422, "不是行政区划代码"),
        (
            good.replace(
                "<alert ",
                "<!DOCTYPE alert [<!ENTITY a \"哈哈哈哈哈哈哈哈\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;\">]>\n<alert ",
            )
            .replace("<event>暴雪</event>", "<event>&c;</event>"),
            400,
            "DOCTYPE",
        ),
        (good.replace("<event>暴雪</event>", "<event>&c;</event>"), 400, "&c;"),
        (good.replace("cap:1.2", "cap:1.1"), 400, "命名空间"),
        (good.replace("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">", "<alert>"), 400, "命名空间"),
        (good.replace("2026-11-27T07:50:00+08:00</sent>", "2026-11-26T23:50:00Z</sent>"), 422, "alert/sent"),
        (good.replace("<severity>Severe</severity>", "<severity>Big</severity>"), 422, "severity"),
        (good.replace("<scope>Public</scope>", ""), 422, "<scope>"),
        (good.replace("<status>Actual</status>", "<status>Test</status>"), 422, "Test"),
        (good.replace("<event>暴雪</event>", "<event>台风</event>").replace("11B04", "11B01"), 422, "台风"),
        (good.replace("<msgType>Alert</msgType>", "<msgType>Cancel</msgType>"), 422, "references"),
    ];
    for (xml, status, needle) in cases {
        let p = post_xml(&app, &admin, &xml).await.problem(status);
        let text = p.to_string();
        assert!(text.contains(needle), "problem should mention {needle}: {text}");
        assert!(p["errors"][0]["field"].is_string() || status == 400, "{text}");
    }
    // The unknown geocode names its element.
    let p = post_xml(&app, &admin, &good.replace(MANDULATU, "152523109000")).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "alert/info[1]/area[1]/geocode[1]");
    // Wrong media type, and the right one with nothing stored.
    app.send(reqwest::Method::POST, "/api/v1/warnings/import", Some(&admin), Some(Body::Raw("text/plain", &good)))
        .await
        .problem(415);
    assert_eq!((count(&app, "warnings").await, count(&app, "warning_regions").await), (0, 0));
    assert!(outbox_regions(&app, "warning").await.is_empty());
    // A viewer may not import; the good message then goes in.
    let viewer = app.token("viewer", BANNER).await;
    post_xml(&app, &viewer, &good).await.problem(403);
    post_xml(&app, &admin, &good).await.expect(201);
    // The same identifier with other content is refused.
    post_xml(&app, &admin, &good.replace("暴雪橙色预警", "暴雪红色预警")).await.problem(409);
}
