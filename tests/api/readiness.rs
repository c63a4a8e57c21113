//! Readiness: findings with identity, resolution, scores, notifications, report, configuration.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use crate::common::*;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

/// Runs the check through the API and returns the summary.
pub async fn run_check(app: &TestApp) -> Value {
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/readiness/run", &json!({})).await.expect(200).json()
}

/// Open findings of a rule in a region (with children).
pub async fn findings(app: &TestApp, token: &str, region: &str, rule: &str) -> Vec<Value> {
    let v =
        app.get(token, &format!("/api/v1/readiness?region={region}&rule={rule}&limit=1000")).await.expect(200).json();
    v["items"].as_array().unwrap().clone()
}

async fn drill_with_action(app: &TestApp, token: &str, due: &str) -> (i64, i64) {
    let d = app
        .post(
            token,
            "/api/v1/drills",
            &json!({
                "title": "白灾应急桌面推演", "form": "tabletop", "scope": "single", "purpose": "test", "region": MANDULATU,
                "organiser_unit": "镇应急办", "place_name": "镇政府会议室",
                "starts_at": "2026-11-20T09:00:00+08:00", "ends_at": "2026-11-20T11:00:00+08:00"
            }),
        )
        .await
        .expect(201)
        .json();
    let id = d["id"].as_i64().unwrap();
    let a = app
        .post(
            token,
            &format!("/api/v1/drills/{id}/actions"),
            &json!({"action": "补充牧区转移安置点清单", "owner_unit": "镇民政办", "due_on": due}),
        )
        .await
        .expect(201)
        .json();
    (id, a["id"].as_i64().unwrap())
}

#[tokio::test]
async fn overdue_corrective_actions_are_found_once_and_resolved_when_done() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    // Due yesterday (11-26): overdue. Due today (11-27): a near miss.
    let (_, late) = drill_with_action(&app, &op, "2026-11-26").await;
    drill_with_action(&app, &op, "2026-11-27").await;
    let s = run_check(&app).await;
    assert_eq!(s["by_rule"]["DRILL_ACTIONS_OVERDUE"], 1, "{s}");
    let f = findings(&app, &op, MANDULATU, "DRILL_ACTIONS_OVERDUE").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["subject_type"], "corrective_action");
    assert_eq!(f[0]["subject_id"], late.to_string());
    assert_eq!(f[0]["severity"], "warning");
    assert_eq!(f[0]["facts"]["days_overdue"], 1);
    assert!(f[0]["message"].as_str().unwrap().contains("满都拉图镇"), "{}", f[0]);
    assert!(f[0]["basis"].as_str().unwrap().contains("演练"));
    let first_seen = f[0]["first_seen"].clone();
    // Again the next day: the same finding, seen again, not a new one; the facts update.
    app.clock.set(at(2026, 11, 28, 8, 0));
    let s = run_check(&app).await;
    assert_eq!(
        (s["opened"].as_i64(), s["still_open"].as_i64()),
        (Some(1), Some(18)),
        "the near miss is now overdue; the first and the 17 missing plans are still open: {s}"
    );
    let f = findings(&app, &op, MANDULATU, "DRILL_ACTIONS_OVERDUE").await;
    let same = f.iter().find(|x| x["subject_id"].as_str() == Some(late.to_string().as_str())).unwrap();
    assert_eq!(same["first_seen"], first_seen);
    assert_eq!(same["last_seen"], "2026-11-28T08:00:00+08:00");
    assert_eq!(same["facts"]["days_overdue"], 2);
    // Done: resolved on the next run, kept in history.
    app.patch(&op, &format!("/api/v1/actions/{late}"), &json!({"status": "done"})).await.expect(200);
    let s = run_check(&app).await;
    assert_eq!(s["resolved"], 1);
    let f = findings(&app, &op, MANDULATU, "DRILL_ACTIONS_OVERDUE").await;
    assert_eq!(f.len(), 1);
    let resolved =
        app.get(&op, &format!("/api/v1/readiness?region={MANDULATU}&resolved=true")).await.expect(200).json();
    assert_eq!(resolved["total"], 1);
    assert!(resolved["items"][0]["resolved_at"].is_string());
}

#[tokio::test]
async fn scores_history_report_and_jurisdiction() {
    let app = TestApp::spawn().await;
    let op = app.token("operator", MANDULATU).await;
    drill_with_action(&app, &op, "2026-11-01").await;
    drill_with_action(&app, &op, "2026-11-02").await;
    run_check(&app).await;
    run_check(&app).await;
    let v = app.get(&op, "/api/v1/readiness").await.expect(200).json();
    assert_eq!(v["region"], MANDULATU);
    assert_eq!(v["region_name"], "满都拉图镇");
    // The shipped plans are drafts, so plans are missing everywhere: the township lacks its own
    // plan (critical) and has the two overdue actions (warnings): 100 − 15 − 2×5 = 75.
    assert_eq!(v["score"], 75);
    assert_eq!(v["total"], 3);
    assert_eq!(v["items"][0]["severity"], "critical", "most severe first");
    let banner = app.admin().await;
    let b = app.get(&banner, "/api/v1/readiness").await.expect(200).json();
    assert_eq!(b["score"], 0, "the banner's view includes everything: 17 missing plans and 2 warnings");
    assert_eq!(b["total"], 19);
    let other = app.get(&banner, &format!("/api/v1/readiness?region={CHAGANAOBAO}")).await.expect(200).json();
    assert_eq!((other["score"].as_i64(), other["total"].as_i64()), (Some(85), Some(1)));
    let own_only =
        app.get(&banner, &format!("/api/v1/readiness?region={BANNER}&include_children=false")).await.expect(200).json();
    assert_eq!(own_only["total"], 8, "the overall plan and seven special plans");
    let h = app.get(&op, "/api/v1/readiness/history").await.expect(200).json();
    assert_eq!(h["total"], 2);
    assert_eq!((h["items"][0]["critical"].as_i64(), h["items"][0]["warning"].as_i64()), (Some(1), Some(2)));
    // Another township sees nothing of this one.
    let viewer = app.token("viewer", CHAGANAOBAO).await;
    app.get(&viewer, &format!("/api/v1/readiness?region={MANDULATU}")).await.problem(403);
    app.get(&viewer, &format!("/api/v1/readiness/report?region={MANDULATU}")).await.problem(403);
    assert_eq!(app.get(&viewer, "/api/v1/readiness").await.expect(200).json()["total"], 1, "only its own missing plan");
    // Only banner admins run the check or change its configuration.
    app.post(&op, "/api/v1/readiness/run", &json!({})).await.problem(403);
    let town_admin = app.token("admin", MANDULATU).await;
    app.post(&town_admin, "/api/v1/readiness/run", &json!({})).await.problem(403);
    // The report.
    let r = app.get(&banner, "/api/v1/readiness/report").await.expect(200);
    assert!(r.content_type.starts_with("text/html"));
    for part in [
        "苏尼特左旗应急准备情况报告",
        "得分：0",
        "严重问题（17 项）",
        "警告问题（2 项）",
        "下级区划得分",
        "演练整改措施逾期",
        "DRILL_ACTIONS_OVERDUE",
        "满都拉图镇",
    ] {
        assert!(r.text.contains(part), "report lacks {part}");
    }
    app.get(&banner, "/api/v1/readiness?rule=NOPE").await.problem(400);
}

#[tokio::test]
async fn configuration_is_validated_and_changes_severity() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    let c = app.get(&admin, "/api/v1/readiness/config").await.expect(200).json();
    assert_eq!(c["expiry_warning_days"], 30);
    assert_eq!(c["team_filing_pending_days"], 15);
    assert_eq!(c["required_special_hazards"].as_array().unwrap().len(), 7);
    let mut new = c.clone();
    new["severity_overrides"] = json!({"DRILL_ACTIONS_OVERDUE": "critical"});
    app.put(&op, "/api/v1/readiness/config", &new).await.problem(403);
    let mut bad = new.clone();
    bad["severity_overrides"] = json!({"NOPE": "critical"});
    app.put(&admin, "/api/v1/readiness/config", &bad).await.problem(422);
    bad = new.clone();
    bad["required_special_hazards"] = json!(["volcano"]);
    app.put(&admin, "/api/v1/readiness/config", &bad).await.problem(422);
    app.put(&admin, "/api/v1/readiness/config", &new).await.expect(200);
    assert_eq!(app.audit_rows("readiness_config", "1").await.len(), 1);
    drill_with_action(&app, &op, "2026-11-01").await;
    run_check(&app).await;
    let f = findings(&app, &op, MANDULATU, "DRILL_ACTIONS_OVERDUE").await;
    assert_eq!(f[0]["severity"], "critical");
}

#[tokio::test]
async fn new_critical_findings_notify_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    let mut c = app.get(&admin, "/api/v1/readiness/config").await.expect(200).json();
    c["severity_overrides"] = json!({"DRILL_ACTIONS_OVERDUE": "critical"});
    app.put(&admin, "/api/v1/readiness/config", &c).await.expect(200);
    drill_with_action(&app, &op, "2026-11-01").await;
    let s1 = run_check(&app).await;
    let s2 = run_check(&app).await;
    assert_eq!(s1["notified"], s1["opened"], "every finding opened is critical here: {s1}");
    assert_eq!(
        (s2["opened"].as_i64(), s2["notified"].as_i64()),
        (Some(0), Some(0)),
        "a run with no change opens and notifies nothing"
    );
    app.tick().await;
    let inbox = app.get(&op, "/api/v1/notifications?kind=readiness_finding").await.expect(200).json();
    let titles: Vec<&str> = inbox["items"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(titles.iter().filter(|t| t.contains("演练整改措施逾期")).count(), 1, "{titles:?}");
    assert_eq!(
        titles.iter().filter(|t| t.contains("缺少应急预案")).count(),
        1,
        "满都拉图镇's own missing plan: {titles:?}"
    );
}

#[tokio::test]
async fn the_scheduled_check_runs_at_eight() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    drill_with_action(&app, &op, "2026-11-01").await;
    app.clock.set(at(2026, 11, 28, 8, 0));
    app.tick().await;
    let runs = app.get(&admin, "/api/v1/jobs/runs?schedule=readiness_check").await.expect(200).json();
    assert_eq!(runs["items"][0]["status"], "succeeded");
    assert_eq!(runs["items"][0]["counts"]["by_rule"]["DRILL_ACTIONS_OVERDUE"], 1);
    let v = app.get(&op, "/api/v1/readiness").await.expect(200).json();
    assert_eq!(v["run_at"], "2026-11-28T08:00:00+08:00");
}
