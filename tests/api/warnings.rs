//! Warnings: CAP out (validated against the official CAP 1.2 schema) and in (hand-written
//! GB/T 35965.1-style messages with updates and a cancel; bad messages refused), passing a
//! warning down to townships and villages, acknowledgement and reminders, the targeted readiness
//! check in the messages, and expiry by the scheduler. The clock starts at 2026-11-27 08:00
//! Asia/Shanghai.

use serde_json::{Value, json};

use crate::common::*;
use crate::warnings_cap_in::{message, snow_info};

/// Test villages (codes made up for the test; the shipped data has no villages).
const MDLT_V1: &str = "152523100001";
const MDLT_V2: &str = "152523100002";
const CGAB_V1: &str = "152523101001";
/// 巴彦淖尔镇 and one of its villages: not in the warning's area.
const BYNE: &str = "152523102000";
const BYNE_V1: &str = "152523102001";

const QUILT: &str = "1999905";

async fn villages(app: &TestApp, admin: &str) {
    let csv = format!(
        "code,name,level,parent_code\n{MDLT_V1},测试一嘎查,village,{MANDULATU}\n{MDLT_V2},测试二嘎查,village,{MANDULATU}\n{CGAB_V1},测试三嘎查,village,{CHAGANAOBAO}\n{BYNE_V1},测试四嘎查,village,{BYNE}\n"
    );
    app.post_csv(admin, "/api/v1/import/regions", &csv).await.expect(200);
}

pub(crate) async fn post_xml(app: &TestApp, token: &str, xml: &str) -> Resp {
    app.send(reqwest::Method::POST, "/api/v1/warnings/import", Some(token), Some(Body::Raw("application/xml", xml)))
        .await
}

/// Validates a CAP document against the vendored official CAP 1.2 schema with xmllint; says so
/// loudly and returns false when xmllint is not installed.
pub(crate) fn schema_valid(xml: &str) -> bool {
    let dir = std::env::temp_dir().join(format!("yingji-cap-{}", yingji::auth::tokens::random_hex16()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("alert.xml");
    std::fs::write(&file, xml).unwrap();
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cap12.xsd");
    let out = std::process::Command::new("xmllint").args(["--noout", "--schema", xsd]).arg(&file).output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Err(_) => {
            eprintln!("!!! xmllint not installed (apt-get install libxml2-utils): CAP schema validation SKIPPED");
            false
        }
        Ok(o) => {
            assert!(
                o.status.success(),
                "CAP output fails the CAP 1.2 schema:\n{}\n{xml}",
                String::from_utf8_lossy(&o.stderr)
            );
            true
        }
    }
}

pub(crate) fn warning_body(regions: &[&str], level: u8, extra: Value) -> Value {
    let mut v = json!({
        "hazard": "snow_disaster", "level": level,
        "headline": "苏尼特左旗气象台发布暴雪橙色预警信号",
        "description": "预计未来 24 小时内满都拉图镇、查干敖包镇将出现暴雪，降雪量 10 毫米以上，有白毛风。",
        "instruction": "转移棚圈内弱畜，储备饲草料；牧民减少外出；交通部门做好除雪准备。",
        "issuer": "苏尼特左旗气象台",
        "expires_at": "2026-11-28T08:00:00+08:00",
        "regions": regions,
        "issue": true,
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

pub(crate) async fn outbox_regions(app: &TestApp, kind: &str) -> Vec<String> {
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, String>(
        "SELECT region_code FROM outbox WHERE kind = $1 AND channel_id IS NULL ORDER BY region_code"
    )
    .bind(kind)
    .fetch_all(p)
    .await
    .unwrap())
}

pub(crate) async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>(&sql).fetch_one(p).await.unwrap())
}

#[tokio::test]
async fn cap_out_validates_against_the_schema_and_round_trips() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let body = warning_body(
        &[MANDULATU, CHAGANAOBAO],
        2,
        json!({"polygon": [[113.2, 43.5], [114.2, 43.5], [114.2, 44.3], [113.2, 44.3]], "status": "exercise"}),
    );
    let w = app.post(&admin, "/api/v1/warnings", &body).await.expect(201).json();
    let id = w["id"].as_i64().unwrap();
    assert_eq!(w["status"], "issued");
    let ident = w["identifier"].as_str().unwrap();
    assert_eq!(ident, "15252300000000_20261127080000_0", "GB/T 35965.1 A.1.1: unit, second, serial");
    let x = app.get(&admin, &format!("/api/v1/warnings/{id}.xml")).await.expect(200);
    assert!(x.content_type.starts_with("application/cap+xml"));
    let xml = x.text;
    for part in [
        "<sent>2026-11-27T08:00:00+08:00</sent>",
        "<status>Exercise</status>",
        "<severity>Severe</severity>",
        "<value>11B04</value>",
        &format!("<value>{MANDULATU}</value>"),
        &format!("<value>{CHAGANAOBAO}</value>"),
        "<polygon>43.5,113.2 43.5,114.2 44.3,114.2 44.3,113.2 43.5,113.2</polygon>",
    ] {
        assert!(xml.contains(part), "CAP lacks {part}:\n{xml}");
    }
    assert!(!xml.contains("Z<"), "times carry offsets, never Z");
    schema_valid(&xml);

    // Re-imported here: the same warning (deduplicated by identifier), nothing new stored.
    let again = post_xml(&app, &admin, &xml).await.expect(200).json();
    assert_eq!((again["id"].as_i64(), again["duplicate"].as_bool()), (Some(id), Some(true)));
    assert_eq!(count(&app, "warnings").await, 1);

    // Imported into another service: the same warning.
    let other = TestApp::spawn().await;
    let oadmin = other.admin().await;
    let v = post_xml(&other, &oadmin, &xml).await.expect(201).json();
    for k in [
        "identifier",
        "sender",
        "hazard",
        "level",
        "event",
        "event_code",
        "headline",
        "description",
        "instruction",
        "issuer",
        "sent_at",
        "effective_at",
        "expires_at",
        "cap_status",
        "msg_type",
        "status",
        "regions",
        "polygon",
    ] {
        assert_eq!(v[k], w[k], "{k} differs after the round trip");
    }
    assert_eq!(v["origin"], "import");
    // Its own export is schema-valid too, and the original is kept verbatim.
    let oid = v["id"].as_i64().unwrap();
    let exported = other.get(&oadmin, &format!("/api/v1/warnings/{oid}.xml")).await.expect(200).text;
    schema_valid(&exported);
    assert_eq!(other.get(&oadmin, &format!("/api/v1/warnings/{oid}.xml?original=true")).await.expect(200).text, xml);
}

/// Creates, submits and approves a township snow plan with level-2 needs; returns its id.
async fn snow_plan(app: &TestApp, admin: &str, region: &str, hazard: &str, title: &str) -> i64 {
    let body = json!({
        "title": title, "kind": "township", "region": region,
        "owning_unit": "镇应急办", "lead_department": "镇应急办", "hazards": [hazard],
        "sections": {"organization": "统一指挥。", "prevention": "监测预警。", "response": "分级响应。", "support": "物资保障。", "recovery": "恢复重建。"},
        "response_levels": [
            {"level": 2, "criteria": "暴雪橙色预警", "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 100, "unit": "床", "within_km": 50}],
             "forces": [{"specialty": "snow_rescue", "headcount": 5, "within_km": 50}]},
            {"level": 3, "criteria": "暴雪黄色预警", "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 30, "unit": "床", "within_km": 50}]}
        ]
    });
    let id = app.post(admin, "/api/v1/plans", &body).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(admin, &format!("/api/v1/plans/{id}/submit"), &json!({})).await.expect(200);
    app.post(
        admin,
        &format!("/api/v1/plans/{id}/approve"),
        &json!({"issued_on": "2026-11-20", "issuing_body": "镇人民政府"}),
    )
    .await
    .expect(200);
    id
}

#[tokio::test]
async fn an_orange_snow_warning_reaches_two_townships_and_their_villages_with_their_shortfalls() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    villages(&app, &admin).await;
    let plan = snow_plan(&app, &admin, MANDULATU, "snow_disaster", "满都拉图镇白灾应急预案").await;
    snow_plan(&app, &admin, MANDULATU, "grassland_fire", "满都拉图镇草原火灾应急预案").await;
    snow_plan(&app, &admin, BYNE, "snow_disaster", "巴彦淖尔镇白灾应急预案").await;
    // 40 quilts near 满都拉图镇 (60 short of 100), and an expired batch not written off.
    let depot = app
        .post(&admin, "/api/v1/depots", &json!({"code": "MD01", "name": "满都拉图镇储备点", "region_code": MANDULATU, "kind": "township_point", "lon": 113.65, "lat": 43.86}))
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    for (batch, qty, expiry) in [("B1", 40, "2027-10-01"), ("OLD", 10, "2026-10-01")] {
        app.post(&admin, &format!("/api/v1/depots/{depot}/movements"), &json!({"kind": "receive", "item_code": QUILT, "quantity": qty, "batch": batch, "expiry_date": expiry, "reserve_mode": "physical"}))
            .await
            .expect(201);
    }

    // A member without insurance in 查干敖包镇 (in the area) and one in 巴彦淖尔镇 (outside it).
    for (code, region, seq) in [("CG1", CHAGANAOBAO, 1), ("BY1", BYNE, 2)] {
        crate::forces::new_team(&app, &admin, code, region, crate::forces::SEAT, json!([])).await;
        let member = json!({"name": format!("队员{seq}"), "id_number": crate::forces::id_number(seq)});
        app.post(&admin, &format!("/api/v1/teams/{code}/members"), &member).await.expect(201);
    }
    let w = app
        .post(
            &admin,
            "/api/v1/warnings",
            &warning_body(&[MANDULATU, CHAGANAOBAO], 2, json!({"ack_within_minutes": 30})),
        )
        .await
        .expect(201)
        .json();
    let id = w["id"].as_i64().unwrap();
    assert_eq!((w["recipients"].as_i64(), w["acknowledged"].as_i64()), (Some(5), Some(0)));

    // The targeted check: the snow plan of the two townships only.
    let r = app.get(&admin, &format!("/api/v1/warnings/{id}/readiness")).await.expect(200).json();
    assert_eq!(r["summary"]["plans"], 1, "{r}");
    let rules: Vec<&str> = r["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for rule in ["SUPPLY_SHORTFALL", "FORCE_SHORTFALL", "SUPPLY_EXPIRED", "INSURANCE_EXPIRED"] {
        assert!(rules.contains(&rule), "{rule} missing: {rules:?}");
    }
    let findings = r["findings"].as_array().unwrap();
    let uninsured: Vec<&Value> = findings.iter().filter(|f| f["rule"] == "INSURANCE_EXPIRED").collect();
    assert_eq!(uninsured.len(), 1, "only the member in the area: {uninsured:?}");
    assert_eq!(uninsured[0]["region_code"], CHAGANAOBAO);
    for f in r["findings"].as_array().unwrap() {
        assert!(
            [MANDULATU, CHAGANAOBAO, MDLT_V1, MDLT_V2, CGAB_V1].contains(&f["region_code"].as_str().unwrap()),
            "{f}"
        );
        if f["rule"] == "SUPPLY_SHORTFALL" || f["rule"] == "FORCE_SHORTFALL" {
            assert_eq!(f["facts"]["plan_id"], plan, "only the snow plan of the affected townships: {f}");
        }
    }
    let short = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "SUPPLY_SHORTFALL" && f["facts"]["level"] == 2)
        .unwrap();
    assert_eq!(short["facts"]["shortfall"], 60);
    assert!(short["link"].as_str().unwrap().starts_with(&format!("/api/v1/supplies/nearest?item={QUILT}&quantity=60")));
    // Orange: the resource plan of the matching (二级) response level.
    let lines = r["summary"]["resource_plan"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["level"] == 2));
    assert_eq!(lines.iter().find(|l| l["kind"] == "supply").unwrap()["shortfall"], 60);

    // Passed down to those townships and their villages only.
    let mut expected = vec![MANDULATU, MDLT_V1, MDLT_V2, CHAGANAOBAO, CGAB_V1];
    expected.sort();
    assert_eq!(outbox_regions(&app, "warning").await, expected);
    app.tick().await;
    let town = app.token("operator", MANDULATU).await;
    let inbox =
        app.get(&town, &format!("/api/v1/notifications?kind=warning&region={MANDULATU}")).await.expect(200).json();
    assert_eq!(inbox["total"], 1);
    let n = &inbox["items"][0];
    assert!(n["title"].as_str().unwrap().starts_with("【橙色预警】"), "{n}");
    let text = n["body"].as_str().unwrap();
    for part in [
        "二级（橙色）",
        "防御指南",
        "缺口 60",
        "/api/v1/supplies/nearest",
        "过期，尚未核销",
        "二级响应所需资源",
        "签收",
    ] {
        assert!(text.contains(part), "message lacks {part}:\n{text}");
    }
    assert_eq!(n["data"]["colour"], "橙色");
    let other_town = app.token("operator", BYNE).await;
    assert_eq!(app.get(&other_town, "/api/v1/notifications?kind=warning").await.expect(200).json()["total"], 0);
    app.get(&other_town, &format!("/api/v1/warnings/{id}")).await.problem(403);

    // Acknowledgement: a village acknowledges; twice is a state conflict; outsiders cannot.
    let village = app.token("operator", MDLT_V1).await;
    let a = app
        .send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/ack"), Some(&village), None)
        .await
        .expect(200)
        .json();
    assert_eq!((a["region_code"].as_str(), a["ack_status"].as_str()), (Some(MDLT_V1), Some("acknowledged")));
    let p =
        app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/ack"), Some(&village), None).await.problem(409);
    assert_eq!(p["current_status"], "acknowledged");
    app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/ack"), Some(&other_town), None).await.problem(403);
    let viewer = app.token("viewer", MDLT_V2).await;
    app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/ack"), Some(&viewer), None).await.problem(403);
    let pending = app.get(&admin, &format!("/api/v1/warnings/{id}/acks?pending=true")).await.expect(200).json();
    assert_eq!(pending["total"], 4);

    // Not acknowledged within 30 minutes: reminded once, and the banner told who has not confirmed.
    app.clock.set(app.clock.now_utc() + chrono::Duration::minutes(20));
    app.tick().await;
    assert!(outbox_regions(&app, "warning_reminder").await.is_empty(), "not yet due");
    app.clock.set(app.clock.now_utc() + chrono::Duration::minutes(15));
    app.tick().await;
    let mut reminded = vec![MANDULATU, MDLT_V2, CHAGANAOBAO, CGAB_V1];
    reminded.sort();
    assert_eq!(outbox_regions(&app, "warning_reminder").await, reminded);
    assert_eq!(outbox_regions(&app, "warning_unconfirmed").await, vec![BANNER.to_string()]);
    app.clock.set(app.clock.now_utc() + chrono::Duration::minutes(10));
    app.tick().await;
    assert_eq!(outbox_regions(&app, "warning_reminder").await.len(), 4, "each region is reminded once");
    let acks = app.get(&admin, &format!("/api/v1/warnings/{id}/acks")).await.expect(200).json();
    let m = acks["items"].as_array().unwrap().iter().find(|r| r["region_code"] == MANDULATU).unwrap().clone();
    assert_eq!(m["ack_status"], "reminded");
    app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/ack"), Some(&town), None).await.expect(200);

    // The printable notice and the Atom feed.
    let notice = app.get(&town, &format!("/api/v1/warnings/{id}/notice")).await.expect(200);
    for part in ["预警信息", "满都拉图镇", "橙色预警", "发布机关", "苏尼特左旗气象台", "防御指南", "缺口 60", "已于"]
    {
        assert!(notice.text.contains(part), "notice lacks {part}");
    }
    let feed = app.get(&town, "/api/v1/warnings.atom").await.expect(200);
    assert!(
        feed.text.contains(&format!("/api/v1/warnings/{id}.xml")) && feed.text.contains("【橙色预警】"),
        "{}",
        feed.text
    );

    // Expiry by the scheduler.
    app.clock
        .set(chrono::DateTime::parse_from_rfc3339("2026-11-28T08:01:00+08:00").unwrap().with_timezone(&chrono::Utc));
    app.tick().await;
    let w = app.get(&admin, &format!("/api/v1/warnings/{id}")).await.expect(200).json();
    assert_eq!(w["status"], "expired");
    assert_eq!(outbox_regions(&app, "warning_expired").await, expected);
    assert_eq!(app.get(&admin, "/api/v1/warnings?active=true").await.expect(200).json()["total"], 0);
    let audit: Vec<String> = app.audit_rows("warning", &id.to_string()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(audit, vec!["expire", "acknowledge", "acknowledge", "issue", "create"]);
    app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/ack"), Some(&viewer), None).await.problem(403);
}

#[tokio::test]
async fn drafts_issue_updates_cancel_and_concurrent_acks() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let draft = app
        .post(&admin, "/api/v1/warnings", &warning_body(&[MANDULATU], 3, json!({"issue": false})))
        .await
        .expect(201)
        .json();
    let id = draft["id"].as_i64().unwrap();
    assert_eq!(draft["status"], "draft");
    assert!(outbox_regions(&app, "warning").await.is_empty(), "a draft notifies nobody");
    let planner_elsewhere = app.token("planner", CHAGANAOBAO).await;
    app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/issue"), Some(&planner_elsewhere), None)
        .await
        .problem(403);
    app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/issue"), Some(&admin), None).await.expect(200);
    let p =
        app.send(reqwest::Method::POST, &format!("/api/v1/warnings/{id}/issue"), Some(&admin), None).await.problem(409);
    assert_eq!(p["current_status"], "issued");
    // A township planner issues for its own township only.
    let town_planner = app.token("planner", MANDULATU).await;
    app.post(&town_planner, "/api/v1/warnings", &warning_body(&[CHAGANAOBAO], 3, json!({}))).await.problem(403);
    let bad = app
        .post(&admin, "/api/v1/warnings", &warning_body(&[], 5, json!({"expires_at": "2026-11-27T07:00:00+08:00"})))
        .await
        .problem(422);
    let fields: Vec<&str> = bad["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["level", "expires_at", "regions"]);
    // Upgraded to orange: the yellow one becomes `updated`.
    let up = app
        .post(
            &admin,
            "/api/v1/warnings",
            &warning_body(&[MANDULATU], 2, json!({"msg_type": "update", "references": [id]})),
        )
        .await
        .expect(201)
        .json();
    let up_id = up["id"].as_i64().unwrap();
    assert_eq!(app.get(&admin, &format!("/api/v1/warnings/{id}")).await.expect(200).json()["status"], "updated");
    let xml = app.get(&admin, &format!("/api/v1/warnings/{up_id}.xml")).await.expect(200).text;
    let expected_ref = format!(
        "<references>yingji.{BANNER},{},2026-11-27T08:00:00+08:00</references>",
        draft["identifier"].as_str().unwrap()
    );
    assert!(xml.contains(&expected_ref) && xml.contains("<msgType>Update</msgType>"), "{xml}");
    schema_valid(&xml);
    // Two acknowledgements of one region at once: one wins, the other gets 409.
    let t1 = app.token("operator", MANDULATU).await;
    let t2 = app.token("operator", MANDULATU).await;
    let path = format!("/api/v1/warnings/{up_id}/ack");
    let (a, b) = tokio::join!(
        app.send(reqwest::Method::POST, &path, Some(&t1), None),
        app.send(reqwest::Method::POST, &path, Some(&t2), None)
    );
    let mut codes = vec![a.status.as_u16(), b.status.as_u16()];
    codes.sort();
    assert_eq!(codes, vec![200, 409]);
    // Lifted: a cancel message that ends it, told to every region that had it.
    let c = app
        .post(&admin, &format!("/api/v1/warnings/{up_id}/cancel"), &json!({"reason": "降雪已减弱"}))
        .await
        .expect(201)
        .json();
    assert_eq!((c["msg_type"].as_str(), c["status"].as_str()), (Some("cancel"), Some("cancelled")));
    assert_eq!(app.get(&admin, &format!("/api/v1/warnings/{up_id}")).await.expect(200).json()["status"], "cancelled");
    let cxml = app.get(&admin, &format!("/api/v1/warnings/{}.xml", c["id"])).await.expect(200).text;
    assert!(cxml.contains("<msgType>Cancel</msgType>") && cxml.contains("<responseType>AllClear</responseType>"));
    schema_valid(&cxml);
    app.post(&admin, &format!("/api/v1/warnings/{up_id}/cancel"), &json!({})).await.problem(409);
}

#[tokio::test]
async fn robots_get_the_warning_in_its_colour_and_level() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let rx = crate::receiver::Receiver::start(0).await;
    for (kind, path) in [("dingtalk", "/ding?access_token=a"), ("wecom", "/wecom?key=b")] {
        app.post(
            &admin,
            "/api/v1/channels",
            &json!({"region": MANDULATU, "kind": kind, "name": "满都拉图镇应急办", "url": rx.url(path)}),
        )
        .await
        .expect(201);
    }
    app.post(&admin, "/api/v1/warnings", &warning_body(&[MANDULATU], 2, json!({}))).await.expect(201);
    app.tick().await;
    let got = rx.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let ding = got.iter().find(|r| r.path.starts_with("/ding")).unwrap();
    assert_eq!(ding.body["msgtype"], "markdown");
    let text = ding.body["markdown"]["text"].as_str().unwrap();
    assert!(text.starts_with("### <font color=\"#FF8C00\">【橙色预警】") && text.contains("二级（橙色）"), "{text}");
    let wecom = got.iter().find(|r| r.path.starts_with("/wecom")).unwrap();
    let content = wecom.body["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("<font color=\"warning\">【橙色预警】") && content.contains("防御指南"), "{content}");
}

#[tokio::test]
async fn the_same_message_arriving_twice_at_once_is_stored_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let xml =
        message("15250041600000_20261127075000", "Alert", None, &snow_info("Severe", &[MANDULATU], "暴雪橙色预警"));
    let (a, b) = tokio::join!(post_xml(&app, &admin, &xml), post_xml(&app, &admin, &xml));
    let mut codes = vec![a.status.as_u16(), b.status.as_u16()];
    codes.sort();
    assert!(codes == vec![200, 201] || codes == vec![201, 409], "{codes:?}");
    assert_eq!(count(&app, "warnings").await, 1);
    assert_eq!(outbox_regions(&app, "warning").await, vec![MANDULATU.to_string()]);
}
