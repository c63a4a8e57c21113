//! Emergency plans: shipped set, lifecycle with versions, permissions, deadlines, files.

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use yingji::audit::Actor;
use yingji::plans::{files, store};
use yingji::time::Timestamp;

use crate::common::*;

/// A minimal valid plan body.
pub(crate) fn plan_body(title: &str, kind: &str, region: &str) -> Value {
    json!({
        "title": title,
        "kind": kind,
        "region": region,
        "owning_unit": "苏尼特左旗应急管理局",
        "lead_department": "苏尼特左旗应急管理局",
        "hazards": ["snow_disaster", "extreme_cold"],
        "member_units": [{"name": "旗消防救援大队", "duties": "被困人员搜救"}],
        "sections": {
            "organization": "旗指挥部统一指挥。",
            "prevention": "气象预警逐户传达。",
            "response": "按级别启动响应。",
            "support": "旗级储备库保障。",
            "recovery": "灾后恢复生产。"
        },
        "response_levels": [
            {"level": 4, "criteria": "局部积雪超过 20 厘米",
             "supplies": [{"item_code": "1-02-01-01", "name": "棉大衣", "quantity": 100, "unit": "件", "within_km": 80}],
             "forces": [{"specialty": "snow_rescue", "headcount": 20, "within_km": 80}]},
            {"level": 3, "criteria": "积雪超过 30 厘米、牲畜无法采食", "supplies": [], "forces": []}
        ]
    })
}

/// 08:00 Asia/Shanghai on the given day.
fn morning(y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

async fn create(app: &TestApp, token: &str, body: &Value) -> i64 {
    let v = app.post(token, "/api/v1/plans", body).await.expect(201).json();
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_fresh_start_has_the_shipped_plan_set() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let list = app.get(&admin, "/api/v1/plans?limit=1000").await.expect(200).json();
    let keys: Vec<&str> = list["items"].as_array().unwrap().iter().filter_map(|p| p["key"].as_str()).collect();
    for key in [
        "banner-overall",
        "snow-disaster",
        "grassland-fire",
        "sandstorm",
        "drought",
        "earthquake",
        "animal-epidemic",
        "mine-accident",
        "mandulatu-township",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(list["total"], 9, "templates are not loaded as plans");
    let fire = list["items"].as_array().unwrap().iter().find(|p| p["key"] == "grassland-fire").unwrap();
    assert_eq!(fire["status"], "draft");
    assert_eq!(fire["kind"], "special");
    let view = app.get(&admin, &format!("/api/v1/plans/{}", fire["id"])).await.expect(200).json();
    assert_eq!(view["requirements"]["drill_interval_months"], 12, "the file's own drill requirement");
    assert_eq!(view["requirements"]["drill_is_default"], false);
    assert_eq!(view["version"]["content"]["response_levels"][0]["forces"][0]["specialty"], "grassland_fire");
    assert_eq!(view["deadlines"]["filing_due"], Value::Null, "a draft has no deadlines yet");
    let doc = app.get(&admin, &format!("/api/v1/plans/{}/document", fire["id"])).await.expect(200);
    assert!(doc.text.contains("<h1>苏尼特左旗草原火灾应急预案</h1>") && doc.text.contains("风力灭火机（2-02-01-01）"));
    let town = list["items"].as_array().unwrap().iter().find(|p| p["key"] == "mandulatu-township").unwrap();
    let view = app.get(&admin, &format!("/api/v1/plans/{}", town["id"])).await.expect(200).json();
    assert_eq!(view["requirements"]["drill_interval_months"], 24, "township default");
    assert_eq!(view["requirements"]["evaluation_interval_months"], 36);
    // Filters.
    let town = app.get(&admin, &format!("/api/v1/plans?region={MANDULATU}")).await.expect(200).json();
    assert_eq!(town["total"], 1);
    assert_eq!(town["items"][0]["key"], "mandulatu-township");
    let fires = app.get(&admin, "/api/v1/plans?hazard=grassland_fire&kind=special").await.expect(200).json();
    assert!(fires["items"].as_array().unwrap().iter().any(|p| p["key"] == "grassland-fire"));
    assert!(fires["items"].as_array().unwrap().iter().all(|p| p["kind"] == "special"));
    app.get(&admin, "/api/v1/plans?hazard=volcano").await.problem(400);
    // The township sees only its own plan.
    let township = app.token("viewer", MANDULATU).await;
    let seen = app.get(&township, "/api/v1/plans").await.expect(200).json();
    assert_eq!(seen["total"], 1);
}

#[tokio::test]
async fn the_shipped_directory_checks_and_matches_the_compiled_in_set() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let parsed = files::check_dir(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(parsed.iter().filter(|f| f.template).count(), 1);
    assert_eq!(parsed.len(), files::SHIPPED.len(), "every file in plans/ is compiled in (files::SHIPPED)");
    for (name, text) in files::SHIPPED {
        let on_disk = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap();
        assert_eq!(&on_disk, text);
        assert!(text.contains("示例") && text.contains("不是官方数字"), "{name} must say its figures are samples");
    }
    // The CLI agrees.
    let ok =
        std::process::Command::new(env!("CARGO_BIN_EXE_yingji")).args(["plans", "check"]).arg(&dir).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[tokio::test]
async fn a_broken_copy_fails_with_file_and_line_for_each_error() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let dir = std::env::temp_dir().join(format!("yingji-plans-{}", yingji::auth::tokens::random_hex16()));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for (name, _) in files::SHIPPED {
        std::fs::copy(src.parent().unwrap().join(name), dir.join(name.trim_start_matches("plans/"))).unwrap();
    }
    let edit = |file: &str, from: &str, to: &str| {
        let p = dir.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} lacks {from:?}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        text[..text.find(from).unwrap()].matches('\n').count() as u64 + 1
    };
    let unknown = edit("drought.toml", "lead_department =", "lead_dept =");
    let bad_code = edit("earthquake.toml", "item_code = \"", "item_code = \"9");
    let negative = edit("sandstorm.toml", "quantity = ", "quantity = -");
    let wrong_region = edit("mandulatu-township.toml", "region = \"152523100000\"", "region = \"152523000000\"");
    std::fs::write(dir.join("syntax.toml"), "key = \"x\"\ntitle = \n").unwrap();
    let errors = files::check_dir(&dir).unwrap_err();
    let find = |file: &str| {
        errors.iter().find(|e| e.file.ends_with(file)).unwrap_or_else(|| panic!("no error for {file}: {errors:?}"))
    };
    // A renamed field is both unknown and missing: both are reported.
    let drought: Vec<_> = errors.iter().filter(|e| e.file.ends_with("drought.toml")).collect();
    assert_eq!(drought.len(), 2, "{drought:?}");
    assert!(drought.iter().any(|e| e.line == Some(unknown) && e.message.contains("lead_dept")), "{drought:?}");
    assert!(drought.iter().any(|e| e.message.contains("缺少必填字段 `lead_department`")), "{drought:?}");
    assert_eq!(find("earthquake.toml").line, Some(bad_code));
    assert_eq!(find("sandstorm.toml").line, Some(negative));
    assert_eq!(find("mandulatu-township.toml").line, Some(wrong_region));
    assert_eq!(find("syntax.toml").line, Some(2));
    assert_eq!(errors.len(), 6, "{errors:?}");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_yingji")).args(["plans", "check"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("drought.toml:{unknown}:")), "{stderr}");
    assert!(stderr.contains(&format!("earthquake.toml:{bad_code}:")), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_plan_goes_from_draft_to_superseded_with_history_diff_and_audit() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let planner = app.token("planner", BANNER).await;
    let mut body = plan_body("苏尼特左旗寒潮应急预案", "special", BANNER);
    let id = create(&app, &planner, &body).await;
    let path = format!("/api/v1/plans/{id}");

    body["sections"]["support"] = json!("旗级储备库与协议企业保障。");
    let v = app.put(&planner, &path, &body).await.expect(200).json();
    assert_eq!(v["version"]["content"]["sections"]["support"], "旗级储备库与协议企业保障。");
    app.post(&planner, &format!("{path}/submit"), &json!({})).await.expect(200);
    app.put(&planner, &path, &body).await.problem(409);
    // A planner cannot approve or file.
    let approval = json!({"issued_on": "2026-11-20", "issuing_body": "苏尼特左旗人民政府办公室"});
    app.post(&planner, &format!("{path}/approve"), &approval).await.problem(403);
    let future = json!({"issued_on": "2026-12-01", "issuing_body": "苏尼特左旗人民政府办公室"});
    app.post(&admin, &format!("{path}/approve"), &future).await.problem(422);
    let v = app.post(&admin, &format!("{path}/approve"), &approval).await.expect(200).json();
    assert_eq!((v["status"].as_str(), v["current_version"].as_i64()), (Some("approved"), Some(1)));
    assert_eq!(v["version"]["issuing_body"], "苏尼特左旗人民政府办公室");
    // Approved: never edited in place.
    app.put(&admin, &path, &body).await.problem(409);
    let filing =
        json!({"filed_with": "锡林郭勒盟应急管理局", "filed_on": "2026-11-25", "receipt_no": "锡应急备〔2026〕17号"});
    app.post(&planner, &format!("{path}/file"), &filing).await.problem(403);
    let v = app.post(&admin, &format!("{path}/file"), &filing).await.expect(200).json();
    assert_eq!(v["status"], "filed");
    assert_eq!(v["version"]["filing_receipt"], "锡应急备〔2026〕17号");
    app.post(&admin, &format!("{path}/file"), &filing).await.problem(409);

    // Revision: a new draft version; the filed one stays in force until the new one is approved.
    app.post(&planner, &format!("{path}/revise"), &json!({"reason": "sometimes"})).await.problem(422);
    app.post(&planner, &format!("{path}/revise"), &json!({"reason": "other"})).await.problem(422);
    let rev = json!({"reason": "drill_or_event_findings", "note": "2026 年冬季演练发现物资不足"});
    let v = app.post(&planner, &format!("{path}/revise"), &rev).await.expect(201).json();
    assert_eq!((v["latest_version"].as_i64(), v["current_version"].as_i64()), (Some(2), Some(1)));
    assert_eq!(v["version"]["status"], "draft");
    assert_eq!(v["version"]["revision_reason"], "drill_or_event_findings");
    app.post(&planner, &format!("{path}/revise"), &rev).await.problem(409);
    body["response_levels"][0]["supplies"][0]["quantity"] = json!(300);
    body["kind"] = json!("department");
    app.put(&planner, &path, &body).await.problem(422);
    body["kind"] = json!("special");
    app.put(&planner, &path, &body).await.expect(200);
    app.post(&planner, &format!("{path}/submit"), &json!({})).await.expect(200);
    let approval2 = json!({"issued_on": "2026-11-26", "issuing_body": "苏尼特左旗人民政府办公室"});
    let v = app.post(&admin, &format!("{path}/approve"), &approval2).await.expect(200).json();
    assert_eq!(v["current_version"], 2);

    let versions = app.get(&planner, &format!("{path}/versions")).await.expect(200).json();
    let states: Vec<&str> =
        versions["items"].as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["superseded", "approved"]);
    assert_eq!(versions["items"][0]["filed_with"], "锡林郭勒盟应急管理局", "history keeps the filing");
    let one = app.get(&planner, &format!("{path}/versions/1")).await.expect(200).json();
    assert_eq!(one["content"]["response_levels"][0]["supplies"][0]["quantity"], 100.0);
    app.get(&planner, &format!("{path}/versions/9")).await.problem(404);
    let diff = app.get(&planner, &format!("{path}/diff?from=1&to=2")).await.expect(200).json();
    let changes = diff["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{diff}");
    assert_eq!(changes[0]["path"], "response_levels[0].supplies[0].quantity");
    assert_eq!((changes[0]["before"].as_f64(), changes[0]["after"].as_f64()), (Some(100.0), Some(300.0)));

    let doc = app.get(&planner, &format!("{path}/document")).await.expect(200);
    assert!(doc.content_type.starts_with("text/html"));
    let order = [
        "一、总则",
        "二、组织指挥体系与职责",
        "三、预防与预警机制",
        "四、应急处置",
        "五、应急保障措施",
        "六、事后恢复与重建",
        "七、附则",
    ];
    let positions: Vec<usize> =
        order.iter().map(|h| doc.text.find(h).unwrap_or_else(|| panic!("{h} missing"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert!(doc.text.contains("四级响应") && doc.text.contains("棉大衣") && doc.text.contains("雪灾救援"));
    let old = app.get(&planner, &format!("{path}/document?version=1")).await.expect(200);
    assert!(old.text.contains("锡应急备〔2026〕17号"));

    let actions: Vec<String> = app.audit_rows("plan", &id.to_string()).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        vec!["approve", "supersede", "submit", "update", "revise", "file", "approve", "submit", "update", "create"]
    );
    // Retire: nothing in force any more.
    app.post(&planner, &format!("{path}/retire"), &json!({})).await.problem(403);
    let v = app.post(&admin, &format!("{path}/retire"), &json!({"note": "并入总体预案"})).await.expect(200).json();
    assert_eq!((v["status"].as_str(), v["current_version"].as_i64()), (Some("retired"), None));
}

#[tokio::test]
async fn roles_and_jurisdiction_are_enforced() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let banner_plan = create(&app, &admin, &plan_body("旗寒潮预案", "special", BANNER)).await;
    let town_planner = app.token("planner", MANDULATU).await;
    let town_operator = app.token("operator", MANDULATU).await;
    let path = format!("/api/v1/plans/{banner_plan}");
    // A township cannot touch (or even read) the banner's plans.
    app.get(&town_planner, &path).await.problem(403);
    app.put(&town_planner, &path, &plan_body("x", "special", BANNER)).await.problem(403);
    app.post(&town_planner, &format!("{path}/submit"), &json!({})).await.problem(403);
    app.post(&town_operator, &format!("{path}/submit"), &json!({})).await.problem(403);
    app.post(&town_planner, "/api/v1/plans", &plan_body("x", "special", BANNER)).await.problem(403);
    // Operators do not draft plans; township planners do, in their township.
    app.post(&town_operator, "/api/v1/plans", &plan_body("x", "township", MANDULATU)).await.problem(403);
    let own = create(&app, &town_planner, &plan_body("满都拉图镇寒潮预案", "township", MANDULATU)).await;
    app.post(&town_planner, &format!("/api/v1/plans/{own}/submit"), &json!({})).await.expect(200);
    let approval = json!({"issued_on": "2026-11-20", "issuing_body": "满都拉图镇人民政府"});
    app.post(&town_planner, &format!("/api/v1/plans/{own}/approve"), &approval).await.problem(403);
    let chagan = app.token("admin", CHAGANAOBAO).await;
    app.post(&chagan, &format!("/api/v1/plans/{own}/approve"), &approval).await.problem(403);
    let town_admin = app.token("admin", MANDULATU).await;
    app.post(&town_planner, &format!("/api/v1/plans/{own}/reject"), &json!({})).await.problem(403);
    let v = app
        .post(&town_admin, &format!("/api/v1/plans/{own}/reject"), &json!({"note": "补充风险点清单"}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["status"], "draft");
    let audit =
        app.get(&town_admin, &format!("/api/v1/audit?entity_type=plan&entity_id={own}")).await.expect(200).json();
    let reject = audit["items"].as_array().unwrap().iter().find(|r| r["action"] == "reject").unwrap();
    assert_eq!(reject["after_state"]["note"], "补充风险点清单");
    assert_eq!(reject["after_state"]["status"], "draft");
    app.post(&town_planner, &format!("/api/v1/plans/{own}/submit"), &json!({})).await.expect(200);
    app.post(&town_admin, &format!("/api/v1/plans/{own}/approve"), &approval).await.expect(200);
    // Validation: every problem named by field.
    let mut bad = plan_body("", "township", BANNER);
    bad["response_levels"][0]["level"] = json!(7);
    bad["response_levels"][0]["supplies"][0]["within_km"] = json!(0);
    let p = app.post(&admin, "/api/v1/plans", &bad).await.problem(422);
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["title", "region", "response_levels[0].level", "response_levels[0].supplies[0].within_km"]);
    let mut bad = plan_body("x", "special", BANNER);
    bad["response_levels"][0]["supplies"][0]["item_code"] = json!("4010101");
    app.post(&admin, "/api/v1/plans", &bad).await.problem(422);
    bad["response_levels"][0]["supplies"][0]["item_code"] = json!("1010101");
    bad["surprise"] = json!(1);
    app.post(&admin, "/api/v1/plans", &bad).await.problem(422);
    app.post(&admin, "/api/v1/plans", &plan_body("x", "special", "152523999000")).await.problem(422);
}

#[tokio::test]
async fn deadlines_follow_the_working_day_calendar_across_national_day() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.clock.set(morning(2026, 9, 24));
    let id = create(&app, &admin, &plan_body("旗寒潮预案", "special", BANNER)).await;
    let path = format!("/api/v1/plans/{id}");
    let v = app.get(&admin, &path).await.expect(200).json();
    assert_eq!(v["deadlines"]["filing_due"], Value::Null, "nothing is due before issue");
    app.post(&admin, &format!("{path}/submit"), &json!({})).await.expect(200);
    let approval = json!({"issued_on": "2026-09-24", "issuing_body": "苏尼特左旗人民政府办公室"});
    app.post(&admin, &format!("{path}/approve"), &approval).await.expect(200);
    // 20 working days: 中秋 9/25–27 and 国庆 10/1–7 off, Saturday 10/10 worked.
    let v = app.get(&admin, &path).await.expect(200).json();
    let d = &v["deadlines"];
    assert_eq!(d["filing_due"], "2026-10-29");
    assert_eq!(d["evaluation_due"], "2029-09-24");
    assert_eq!(d["drill_due"], "2029-09-24", "special plans drill every 36 months by default");
    assert_eq!(v["requirements"]["drill_interval_months"], 36);
    assert_eq!(d["overdue"], false);
    app.clock.set(Utc.with_ymd_and_hms(2026, 10, 29, 15, 59, 0).unwrap()); // 23:59 in Shanghai
    let v = app.get(&admin, &path).await.expect(200).json();
    assert_eq!(
        (v["deadlines"]["today"].as_str(), v["deadlines"]["filing_overdue"].as_bool()),
        (Some("2026-10-29"), Some(false))
    );
    app.clock.set(Utc.with_ymd_and_hms(2026, 10, 29, 16, 0, 0).unwrap()); // 00:00 on the 30th
    let v = app.get(&admin, &path).await.expect(200).json();
    assert_eq!(
        (v["deadlines"]["filing_overdue"].as_bool(), v["deadlines"]["overdue"].as_bool()),
        (Some(true), Some(true))
    );
    let overdue = app.get(&admin, "/api/v1/plans?overdue=true").await.expect(200).json();
    assert_eq!(overdue["total"], 1);
    assert_eq!(overdue["items"][0]["id"], id);
    let filing = json!({"filed_with": "锡林郭勒盟应急管理局", "filed_on": "2026-10-30", "receipt_no": "备-001"});
    let v = app.post(&admin, &format!("{path}/file"), &filing).await.expect(200).json();
    assert_eq!(
        (v["deadlines"]["filing_overdue"].as_bool(), v["deadlines"]["filed_late"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(app.get(&admin, "/api/v1/plans?overdue=true").await.expect(200).json()["total"], 0);

    // An evaluation restarts the evaluation clock; a drill the drill clock.
    app.clock.set(morning(2026, 11, 2));
    let eval = json!({"evaluated_on": "2026-11-01", "evaluator": "旗应急管理局预案评估组", "conclusion": "基本适用", "revision_needed": true});
    app.post(&admin, &format!("{path}/evaluations"), &eval).await.problem(422);
    let future = json!({"evaluated_on": "2026-12-01", "evaluator": "x", "conclusion": "x", "revision_needed": false});
    app.post(&admin, &format!("{path}/evaluations"), &future).await.problem(422);
    let eval = json!({"evaluated_on": "2026-11-01", "evaluator": "旗应急管理局预案评估组", "conclusion": "物资数量偏少",
                      "revision_needed": true, "revision_reason": "resources_changed", "revision_note": "新建储备库"});
    let e = app.post(&admin, &format!("{path}/evaluations"), &eval).await.expect(201).json();
    assert_eq!(e["version"], 1);
    let list = app.get(&admin, &format!("{path}/evaluations")).await.expect(200).json();
    assert_eq!(list["items"][0]["revision_reason"], "resources_changed");
    let mut tx = app.state.db.begin().await.unwrap();
    let (actor, at, all) = (yingji::audit::Actor::system(), yingji::time::Timestamp(app.clock.now_utc()), ("0", "9"));
    use yingji::plans::DrillForm::Field;
    let day = |d| NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
    assert!(store::record_drilled(&mut tx, &actor, at, id, day(20), Field, all).await.unwrap());
    assert!(!store::record_drilled(&mut tx, &actor, at, id, day(1), Field, all).await.unwrap(), "keeps the later date");
    assert!(!store::record_drilled(&mut tx, &actor, at, 999_999, day(1), Field, all).await.unwrap());
    tx.commit().await.unwrap();
    let v = app.get(&admin, &path).await.expect(200).json();
    assert_eq!(v["deadlines"]["evaluation_due"], "2029-11-01");
    assert_eq!(v["deadlines"]["last_drilled_on"], "2026-10-20", "an older drill does not move it back");
    assert_eq!(v["deadlines"]["drill_due"], "2029-10-20");
    // Years later, both are overdue.
    app.clock.set(morning(2029, 11, 2));
    let v = app.get(&admin, &path).await.expect(200).json();
    assert_eq!(
        (v["deadlines"]["evaluation_overdue"].as_bool(), v["deadlines"]["drill_overdue"].as_bool()),
        (Some(true), Some(true))
    );

    // Plans in force, with their requirements, for later modules.
    let current = store::current_plans(&app.state.db, (BANNER, BANNER)).await.unwrap();
    assert_eq!(current.len(), 1, "shipped drafts are not in force");
    assert_eq!(current[0].plan_id, id);
    assert_eq!(current[0].response_levels()[0].forces[0].headcount, 20);
}

#[tokio::test]
async fn importing_the_plan_directory_is_idempotent() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let now = Timestamp(app.clock.now_utc());
    let shipped = files::shipped().unwrap();
    let audit_count = || async {
        yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log")
            .fetch_one(p)
            .await
            .unwrap())
    };
    let before = audit_count().await;
    let s = files::import(&app.state.db, &Actor::cli(), now, &shipped).await.unwrap();
    assert_eq!((s.files, s.created, s.revised, s.unchanged, s.templates), (9, 0, 0, 9, 1));
    assert_eq!(audit_count().await, before, "an unchanged import writes nothing");

    let mut changed = shipped.clone();
    let f = changed.iter_mut().find(|f| f.content.key.as_deref() == Some("drought")).unwrap();
    f.content.title = "苏尼特左旗干旱（黑灾）应急预案（修订稿）".into();
    let s = files::import(&app.state.db, &Actor::cli(), now, &changed).await.unwrap();
    assert_eq!((s.created, s.revised, s.unchanged), (0, 1, 8));
    let list = app.get(&admin, "/api/v1/plans?hazard=drought&kind=special").await.expect(200).json();
    let id = list["items"][0]["id"].as_i64().unwrap();
    let versions = app.get(&admin, &format!("/api/v1/plans/{id}/versions")).await.expect(200).json();
    let states: Vec<&str> =
        versions["items"].as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["superseded", "draft"]);
    assert_eq!(versions["items"][1]["content"]["title"], "苏尼特左旗干旱（黑灾）应急预案（修订稿）");
    let s = files::import(&app.state.db, &Actor::cli(), now, &changed).await.unwrap();
    assert_eq!((s.created, s.revised, s.unchanged), (0, 0, 9));

    // The CLI imports a directory the same way (the shipped drought file differs from the changed draft).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yingji"))
        .args(["plans", "import"])
        .arg(&dir)
        .env("DATABASE_URL", &app.db_url)
        .env("YINGJI_PII_KEY", TEST_PII_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("新建 0，新版本 1，未变 8"), "{stdout}");

    // A plan under review does not take a changed file; nothing of that import is written.
    app.post(&admin, &format!("/api/v1/plans/{id}/submit"), &json!({})).await.expect(200);
    let mut again = changed.clone();
    for f in again.iter_mut() {
        f.content.title.push('X');
    }
    let before = audit_count().await;
    assert!(files::import(&app.state.db, &Actor::cli(), now, &again).await.is_err());
    assert_eq!(audit_count().await, before, "all or nothing");
}
