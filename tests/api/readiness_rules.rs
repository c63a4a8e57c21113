//! Each readiness rule: a situation that triggers it, a near miss that must not, and the finding
//! resolving once the situation is fixed. The clock stands at 2026-11-27 08:00 Asia/Shanghai.

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::{findings, run_check};

/// A plan body for `region` with optional drill and evaluation intervals and requirements.
pub(crate) fn plan(title: &str, kind: &str, region: &str, extra: Value) -> Value {
    let mut v = json!({
        "title": title, "kind": kind, "region": region,
        "owning_unit": "应急办", "lead_department": "应急办", "hazards": ["grassland_fire"],
        "sections": {"organization": "统一指挥。", "prevention": "监测预警。", "response": "分级响应。", "support": "物资保障。", "recovery": "恢复重建。"},
        "response_levels": [{"level": 2, "criteria": "过火面积超过 100 公顷", "supplies": [], "forces": []}]
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

/// Creates, submits and approves a plan issued on `issued`; returns its id.
pub(crate) async fn approved_plan(app: &TestApp, admin: &str, body: &Value, issued: &str) -> i64 {
    let id = app.post(admin, "/api/v1/plans", body).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(admin, &format!("/api/v1/plans/{id}/submit"), &json!({})).await.expect(200);
    app.post(
        admin,
        &format!("/api/v1/plans/{id}/approve"),
        &json!({"issued_on": issued, "issuing_body": "人民政府办公室"}),
    )
    .await
    .expect(200);
    id
}

pub(crate) fn subjects(f: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = f.iter().map(|x| x["subject_id"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn plan_missing_filed_evaluation_and_drill_rules() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // 满都拉图镇 has only a draft (shipped): PLAN_MISSING names the draft.
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "PLAN_MISSING").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["severity"], "critical");
    assert_eq!(f[0]["facts"]["kind"], "township");
    assert_eq!(f[0]["facts"]["drafts"].as_array().unwrap().len(), 1, "{}", f[0]);
    assert!(f[0]["action"].as_str().unwrap().contains("草稿"));
    let banner_missing =
        findings(&app, &admin, BANNER, "PLAN_MISSING").await.into_iter().filter(|x| x["region"] == BANNER).count();
    assert_eq!(banner_missing, 8, "overall + the seven configured hazards");

    // Four township plans for 满都拉图镇, each set up to trigger one deadline rule or just miss it.
    let town = |title: &str, extra: Value| plan(title, "township", MANDULATU, extra);
    // Issued 10-20: filing was due 11-17 (20 working days) and nothing is filed.
    let unfiled = approved_plan(&app, &admin, &town("未备案预案", json!({})), "2026-10-20").await;
    // Issued 11-20: filing due 12-18, not yet.
    let fresh = approved_plan(&app, &admin, &town("新印发预案", json!({})), "2026-11-20").await;
    // Evaluation every month: issued 10-20 → due 11-20 (overdue); issued 10-27 → due 11-27 (today, not yet).
    let eval_late =
        approved_plan(&app, &admin, &town("评估逾期预案", json!({"evaluation_interval_months": 1})), "2026-10-20")
            .await;
    let eval_today =
        approved_plan(&app, &admin, &town("今日评估到期预案", json!({"evaluation_interval_months": 1})), "2026-10-27")
            .await;
    // Drill every month, never drilled: counts from issue.
    let drill_late = approved_plan(
        &app,
        &admin,
        &town("演练逾期预案", json!({"drill": {"interval_months": 1, "forms": ["tabletop", "field"]}})),
        "2026-10-20",
    )
    .await;
    let drill_today = approved_plan(
        &app,
        &admin,
        &town("今日演练到期预案", json!({"drill": {"interval_months": 1, "forms": ["tabletop"]}})),
        "2026-10-27",
    )
    .await;
    let s = run_check(&app).await;
    assert_eq!(s["resolved"], 1, "the township now has a plan in force: {s}");
    assert!(findings(&app, &admin, MANDULATU, "PLAN_MISSING").await.is_empty());

    let nf = findings(&app, &admin, MANDULATU, "PLAN_NOT_FILED").await;
    // Filing is due 20 working days after issue: 10-20 → 11-17 and 10-27 → 11-24 have passed;
    // 11-20 → 12-18 has not.
    let mut expected: Vec<String> =
        [unfiled, eval_late, eval_today, drill_late, drill_today].iter().map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(subjects(&nf), expected);
    assert!(!subjects(&nf).contains(&fresh.to_string()));
    let unfiled_finding = nf.iter().find(|x| x["subject_id"].as_str() == Some(unfiled.to_string().as_str())).unwrap();
    assert_eq!(unfiled_finding["facts"]["filing_due"], "2026-11-17");
    assert!(unfiled_finding["action"].as_str().unwrap().contains("旗人民政府"));

    let ev = findings(&app, &admin, MANDULATU, "PLAN_EVALUATION_OVERDUE").await;
    assert_eq!(subjects(&ev), vec![eval_late.to_string()]);
    assert_eq!(ev[0]["facts"]["evaluation_due"], "2026-11-20");
    let dr = findings(&app, &admin, MANDULATU, "DRILL_OVERDUE").await;
    assert_eq!(subjects(&dr), vec![drill_late.to_string()]);
    assert!(dr[0]["message"].as_str().unwrap().contains("从未演练"));

    // Fix each: file the plan, record an evaluation, complete a drill of the plan today.
    app.post(
        &admin,
        &format!("/api/v1/plans/{unfiled}/file"),
        &json!({"filed_with": "苏尼特左旗人民政府", "filed_on": "2026-11-27", "receipt_no": "苏应急备〔2026〕3号"}),
    )
    .await
    .expect(200);
    app.post(&admin, &format!("/api/v1/plans/{eval_late}/evaluations"), &json!({"evaluated_on": "2026-11-27", "evaluator": "旗应急管理局", "conclusion": "适用", "revision_needed": false})).await.expect(201);
    let d = app
        .post(&admin, "/api/v1/drills", &json!({
            "title": "演练", "plan_ids": [drill_late], "form": "tabletop", "scope": "single", "purpose": "test", "region": MANDULATU,
            "organiser_unit": "镇应急办", "place_name": "镇政府", "starts_at": "2026-11-27T06:00:00+08:00", "ends_at": "2026-11-27T07:00:00+08:00"
        }))
        .await
        .expect(201)
        .json();
    app.post(
        &admin,
        &format!("/api/v1/drills/{}/complete", d["id"]),
        &json!({"participant_count": 12, "scenario": "草原火情研判"}),
    )
    .await
    .expect(200);
    run_check(&app).await;
    assert!(!subjects(&findings(&app, &admin, MANDULATU, "PLAN_NOT_FILED").await).contains(&unfiled.to_string()));
    assert!(findings(&app, &admin, MANDULATU, "PLAN_EVALUATION_OVERDUE").await.is_empty());
    assert!(findings(&app, &admin, MANDULATU, "DRILL_OVERDUE").await.is_empty());
}

/// A team at `km` north of the banner seat with `n` members holding `grassland_fire`, insured to
/// `end`; returns the member ids.
pub(crate) async fn team_with_members(
    app: &TestApp,
    admin: &str,
    code: &str,
    km: f64,
    n: u32,
    end: &str,
    seq0: u32,
) -> Vec<i64> {
    let lat = 43.85223 + km / 111.195;
    app.post(admin, "/api/v1/teams", &json!({"code": code, "name": format!("{code}队"), "org_type": "volunteer_team", "region_code": MANDULATU, "lon": 113.64402, "lat": lat, "specialties": [{"specialty": "grassland_fire"}]})).await.expect(201);
    app.post(admin, &format!("/api/v1/teams/{code}/approve"), &json!({})).await.expect(200);
    let mut ids = Vec::new();
    for i in 0..n {
        let seq = seq0 + i;
        let v = app
            .post(admin, &format!("/api/v1/teams/{code}/members"), &json!({
                "name": format!("队员{seq}"), "id_number": id_number(seq), "skills": ["grassland_fire"],
                "insurance": [{"insurer": "人保财险", "policy_number": format!("P{seq}"), "start": "2026-01-01", "end": end}]
            }))
            .await
            .expect(201)
            .json();
        ids.push(v["id"].as_i64().unwrap());
    }
    ids
}

#[tokio::test]
async fn force_shortfall_counts_insured_available_members_within_the_distance() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let needs = json!({"response_levels": [{"level": 2, "criteria": "火线超过 2 公里", "forces": [{"specialty": "grassland_fire", "headcount": 3, "within_km": 50}]}]});
    let plan_id =
        approved_plan(&app, &admin, &plan("镇草原火灾预案", "township", MANDULATU, needs), "2026-11-20").await;
    // 3 qualified members 10 km away: exactly at the requirement (near miss). A team 60 km away
    // and an uninsured member do not count.
    team_with_members(&app, &admin, "NEAR", 10.0, 3, "2027-06-30", 1).await;
    team_with_members(&app, &admin, "FAR", 60.0, 5, "2027-06-30", 10).await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await.is_empty());
    // One member becomes unavailable: shortfall 1.
    let members = app.get(&admin, "/api/v1/teams/NEAR/members").await.expect(200).json();
    let first = members["items"][0]["id"].as_i64().unwrap();
    app.patch(&admin, &format!("/api/v1/members/{first}"), &json!({"status": "unavailable"})).await.expect(200);
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["subject_id"], plan_id.to_string());
    assert_eq!(f[0]["severity"], "critical");
    assert_eq!(
        (f[0]["facts"]["required"].as_i64(), f[0]["facts"]["available"].as_i64(), f[0]["facts"]["shortfall"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    assert!(
        f[0]["message"].as_str().unwrap().contains("二级响应需要 50 km 内草原灭火人员 3 人"),
        "{}",
        f[0]["message"]
    );
    // Back to available: resolved.
    app.patch(&admin, &format!("/api/v1/members/{first}"), &json!({"status": "available"})).await.expect(200);
    let s = run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "FORCE_SHORTFALL").await.is_empty(), "{s}");
}

#[tokio::test]
async fn insurance_certificate_and_filing_rules() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Today is 2026-11-27; the window is 30 days (to 12-27).
    let expired = team_with_members(&app, &admin, "A", 5.0, 1, "2026-11-26", 1).await[0];
    let tomorrow = team_with_members(&app, &admin, "B", 5.0, 1, "2026-11-28", 2).await[0];
    let edge = team_with_members(&app, &admin, "C", 5.0, 1, "2026-12-27", 3).await[0];
    let beyond = team_with_members(&app, &admin, "D", 5.0, 1, "2026-12-28", 4).await[0];
    run_check(&app).await;
    let ex = findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRED").await;
    assert_eq!(subjects(&ex), vec![expired.to_string()], "ending tomorrow is not expired");
    assert_eq!(ex[0]["severity"], "critical");
    let soon = findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRING").await;
    let mut want = vec![tomorrow.to_string(), edge.to_string()];
    want.sort();
    assert_eq!(subjects(&soon), want, "12-28 is past the window's edge");
    assert!(!subjects(&soon).contains(&beyond.to_string()));
    // Renewal resolves; so does retirement.
    app.patch(&admin, &format!("/api/v1/members/{expired}"), &json!({"insurance": [{"insurer": "人保财险", "policy_number": "R1", "start": "2026-11-27", "end": "2027-11-26"}]})).await.expect(200);
    app.patch(&admin, &format!("/api/v1/members/{tomorrow}"), &json!({"status": "retired"})).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRED").await.is_empty());
    assert_eq!(subjects(&findings(&app, &admin, MANDULATU, "INSURANCE_EXPIRING").await), vec![edge.to_string()]);

    // Certificates: expired yesterday triggers, expiring today does not.
    let cert = |exp: &str| json!({"certificates": [{"kind": "草原防火培训合格证", "number": format!("Z-{exp}"), "issued": "2024-01-01", "expires": exp}]});
    app.patch(&admin, &format!("/api/v1/members/{edge}"), &cert("2026-11-26")).await.expect(200);
    app.patch(&admin, &format!("/api/v1/members/{beyond}"), &cert("2026-11-27")).await.expect(200);
    run_check(&app).await;
    let c = findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await;
    assert_eq!(subjects(&c), vec![edge.to_string()]);
    app.patch(&admin, &format!("/api/v1/members/{edge}"), &cert("2028-11-26")).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await.is_empty());

    // Filings: submitted 16 days ago waits too long, 15 days ago does not (limit 15).
    let op = app.token("operator", MANDULATU).await;
    let submit = |code: &str| json!({"code": code, "name": code, "org_type": "grassroots_team", "region_code": MANDULATU, "lon": 113.6, "lat": 43.9});
    app.clock.set(app.clock.now_utc() - chrono::Duration::days(16));
    app.post(&op, "/api/v1/teams", &submit("OLD")).await.expect(201);
    app.clock.set(app.clock.now_utc() + chrono::Duration::days(1));
    app.post(&op, "/api/v1/teams", &submit("NEW")).await.expect(201);
    app.clock.set(app.clock.now_utc() + chrono::Duration::days(15));
    run_check(&app).await;
    let t = findings(&app, &admin, MANDULATU, "TEAM_FILING_PENDING").await;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["facts"]["team"], "OLD");
    assert_eq!(t[0]["facts"]["days_waiting"], 16);
    app.post(&admin, "/api/v1/teams/OLD/approve", &json!({})).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "TEAM_FILING_PENDING").await.is_empty());
}

const QUILT: &str = "1999905";

pub(crate) async fn depot_at(app: &TestApp, t: &str, code: &str, km_north: f64) -> i64 {
    let body = json!({"code": code, "name": format!("{code}储备点"), "region_code": MANDULATU, "kind": "township_point", "lon": 113.64402, "lat": 43.85223 + km_north / 111.195});
    app.post(t, "/api/v1/depots", &body).await.expect(201).json()["id"].as_i64().unwrap()
}

#[allow(clippy::too_many_arguments)]
async fn stock(
    app: &TestApp,
    t: &str,
    depot: i64,
    kind: &str,
    qty: i64,
    batch: &str,
    expiry: Option<&str>,
    mode: &str,
) {
    let mut body = json!({"kind": kind, "item_code": QUILT, "quantity": qty, "batch": batch, "expiry_date": expiry, "reserve_mode": mode});
    if kind == "adjust" {
        body["reason"] = json!(if qty < 0 { "expired" } else { "found" });
        body.as_object_mut().unwrap().remove("expiry_date");
        body.as_object_mut().unwrap().remove("reserve_mode");
    }
    if kind == "issue" {
        body.as_object_mut().unwrap().remove("expiry_date");
        body.as_object_mut().unwrap().remove("reserve_mode");
    }
    app.post(t, &format!("/api/v1/depots/{depot}/movements"), &body).await.expect(201);
}

#[tokio::test]
async fn supply_shortfall_and_minimum_count_unexpired_physical_stock_within_the_distance() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let needs = json!({"response_levels": [{"level": 2, "criteria": "大范围积雪", "supplies": [{"item_code": QUILT, "name": "棉被", "quantity": 100, "unit": "床", "within_km": 50}]}]});
    let plan_id = approved_plan(&app, &admin, &plan("镇白灾预案", "township", MANDULATU, needs), "2026-11-20").await;
    let near = depot_at(&app, &admin, "NEAR", 10.0).await;
    let far = depot_at(&app, &admin, "FAR", 60.0).await;
    // Exactly 100 usable within 50 km (near miss); agreement, expired and far stock do not count.
    stock(&app, &admin, near, "receive", 100, "B1", Some("2027-06-30"), "physical").await;
    stock(&app, &admin, near, "receive", 500, "AG", Some("2027-06-30"), "agreement").await;
    stock(&app, &admin, near, "receive", 40, "OLD", Some("2026-11-26"), "physical").await;
    stock(&app, &admin, far, "receive", 500, "F1", None, "physical").await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await.is_empty());
    stock(&app, &admin, near, "issue", 1, "B1", None, "physical").await;
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["subject_id"], plan_id.to_string());
    assert_eq!(f[0]["severity"], "critical");
    let facts = &f[0]["facts"];
    assert_eq!(
        (
            facts["level"].as_i64(),
            facts["required"].as_i64(),
            facts["available"].as_i64(),
            facts["shortfall"].as_i64(),
            facts["distance_km"].as_f64()
        ),
        (Some(2), Some(100), Some(99), Some(1), Some(50.0))
    );
    assert_eq!(f[0]["message"], "满都拉图镇：《镇白灾预案》二级响应需要 50 km 内棉被 100 床；可用 99 床；缺口 1 床");
    stock(&app, &admin, near, "receive", 1, "B2", Some("2027-06-30"), "physical").await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_SHORTFALL").await.is_empty());

    // Minimum level: 100 usable at NEAR. A minimum of 100 is met; 101 is not.
    app.put(&admin, &format!("/api/v1/depots/{near}/minimums"), &json!({"item_code": QUILT, "minimum": 100}))
        .await
        .expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_BELOW_MINIMUM").await.is_empty());
    app.put(&admin, &format!("/api/v1/depots/{near}/minimums"), &json!({"item_code": QUILT, "minimum": 101}))
        .await
        .expect(200);
    run_check(&app).await;
    let m = findings(&app, &admin, MANDULATU, "SUPPLY_BELOW_MINIMUM").await;
    assert_eq!(m.len(), 1);
    assert_eq!((m[0]["facts"]["held"].as_i64(), m[0]["facts"]["minimum"].as_i64()), (Some(100), Some(101)));
    stock(&app, &admin, near, "receive", 1, "B3", None, "physical").await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_BELOW_MINIMUM").await.is_empty());
}

#[tokio::test]
async fn batches_expiring_within_the_window_and_expired_batches_not_written_off() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let d = depot_at(&app, &admin, "D", 1.0).await;
    // Today 11-27, window to 12-27.
    stock(&app, &admin, d, "receive", 5, "EXPIRED", Some("2026-11-26"), "physical").await;
    stock(&app, &admin, d, "receive", 5, "TODAY", Some("2026-11-27"), "physical").await;
    stock(&app, &admin, d, "receive", 5, "EDGE", Some("2026-12-27"), "physical").await;
    stock(&app, &admin, d, "receive", 5, "BEYOND", Some("2026-12-28"), "physical").await;
    run_check(&app).await;
    let batch = |f: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = f.iter().map(|x| x["facts"]["batch"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        batch(&findings(&app, &admin, MANDULATU, "SUPPLY_EXPIRED").await),
        vec!["EXPIRED"],
        "expiring today is still usable"
    );
    assert_eq!(
        batch(&findings(&app, &admin, MANDULATU, "SUPPLY_EXPIRING").await),
        vec!["EDGE", "TODAY"],
        "12-28 is past the window"
    );
    // Written off: resolved.
    stock(&app, &admin, d, "adjust", -5, "EXPIRED", None, "physical").await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "SUPPLY_EXPIRED").await.is_empty());
    // The expiry sweep (07:30 daily) sends the township one digest for the day, once. On 11-28 the
    // window runs to 12-28, and the batch that expired on 11-27 is no longer "expiring".
    app.clock.set(app.clock.now_utc() + chrono::Duration::hours(23) + chrono::Duration::minutes(31));
    app.tick().await;
    app.tick().await;
    let digest = app.get(&admin, "/api/v1/notifications?kind=expiry_digest").await.expect(200).json();
    assert_eq!(digest["total"], 1, "{digest}");
    let body = digest["items"][0]["body"].as_str().unwrap();
    assert!(body.contains("EDGE") && body.contains("BEYOND") && !body.contains("TODAY"), "{body}");
}
