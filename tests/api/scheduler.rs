//! The scheduler: stored schedules, exactly-once occurrences, missed-run policies, job history.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use crate::common::*;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

async fn runs(app: &TestApp, token: &str, schedule: &str) -> Vec<serde_json::Value> {
    let v = app.get(token, &format!("/api/v1/jobs/runs?schedule={schedule}")).await.expect(200).json();
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn built_in_schedules_are_listed_in_local_time() {
    let app = TestApp::spawn().await;
    let viewer = app.token("viewer", MANDULATU).await;
    let v = app.get(&viewer, "/api/v1/jobs").await.expect(200).json();
    let names: Vec<&str> = v["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec!["drill_reminders", "event_watch", "expiry_sweep", "idempotency_purge", "readiness_check", "warning_sweep"]
    );
    let readiness = &v["items"][4];
    assert_eq!(readiness["cron"], "0 8 * * *");
    assert_eq!(readiness["timezone"], "Asia/Shanghai");
    // The clock stands at 2026-11-27 08:00 +08:00: the next run is tomorrow at 08:00.
    assert_eq!(readiness["next_due_at"], "2026-11-28T08:00:00+08:00");
    assert!(readiness["last_run"].is_null());
    assert_eq!(readiness["job_label"], "准备情况检查");
}

#[tokio::test]
async fn each_occurrence_runs_exactly_once_and_the_next_follows_the_previous_due_time() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.clock.set(at(2026, 11, 28, 8, 0) + Duration::seconds(20));
    app.tick().await;
    app.tick().await;
    app.clock.advance(Duration::minutes(1));
    app.tick().await;
    let r = runs(&app, &admin, "readiness_check").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["due_at"], "2026-11-28T08:00:00+08:00");
    assert_eq!(r[0]["status"], "succeeded");
    assert_eq!(r[0]["late"], false);
    let jobs = app.get(&admin, "/api/v1/jobs").await.expect(200).json();
    let readiness = jobs["items"].as_array().unwrap().iter().find(|s| s["name"] == "readiness_check").unwrap().clone();
    assert_eq!(readiness["next_due_at"], "2026-11-29T08:00:00+08:00");
    assert_eq!(readiness["last_run"]["due_at"], "2026-11-28T08:00:00+08:00");
    // Across midnight and a month end: the run of 2026-12-01 08:00 is its own occurrence.
    app.clock.set(at(2026, 12, 1, 8, 0) + Duration::seconds(5));
    app.tick().await;
    let r = runs(&app, &admin, "readiness_check").await;
    let dues: Vec<&str> = r.iter().map(|x| x["due_at"].as_str().unwrap()).collect();
    assert_eq!(dues[0], "2026-12-01T08:00:00+08:00");
    // The 29th and 30th passed while the service was down. With run_once and today's run on
    // time, that run covers them: they are recorded as skipped, once, with their count.
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[1]["status"], "skipped");
    assert_eq!(r[1]["counts"]["skipped"], 2);
    assert_eq!(r[1]["counts"]["from"], "2026-11-29T08:00:00+08:00");
    assert!(r.iter().all(|x| x["status"] != "succeeded" || x["late"] == false), "{r:?}");
}

#[tokio::test]
async fn missed_runs_follow_the_schedule_policy() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Down for five days, then back at 07:00: nothing on time.
    app.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"missed_policy": "skip"})).await.expect(200);
    app.patch(&admin, "/api/v1/jobs/expiry_sweep", &json!({"missed_policy": "run_all", "max_catchup": 3}))
        .await
        .expect(200);
    app.clock.set(at(2026, 12, 2, 7, 0));
    app.tick().await;
    let r = runs(&app, &admin, "readiness_check").await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["status"], "skipped");
    assert_eq!(r[0]["counts"]["skipped"], 4, "28th to 1st: {r:?}");
    let r = runs(&app, &admin, "expiry_sweep").await;
    // Occurrences at 07:30 on the 28th … 1st: 4 missed; the newest 3 run late, 1 is skipped.
    let ran: Vec<&str> =
        r.iter().filter(|x| x["status"] == "succeeded").map(|x| x["due_at"].as_str().unwrap()).collect();
    assert_eq!(ran, vec!["2026-12-01T07:30:00+08:00", "2026-11-30T07:30:00+08:00", "2026-11-29T07:30:00+08:00"]);
    assert!(r.iter().all(|x| x["late"] == true));
    assert!(r.iter().any(|x| x["status"] == "skipped" && x["counts"]["skipped"] == 1));
    let failed = app.get(&admin, "/api/v1/jobs/runs?status=failed").await.expect(200).json();
    assert_eq!(failed["total"], 0);
}

#[tokio::test]
async fn schedules_are_edited_by_banner_admins_with_standard_cron() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = app.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"cron": "0 8 * *"})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "cron");
    app.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"cron": "0 8 * * 8"})).await.problem(422);
    app.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"timezone": "Mars/Olympus"})).await.problem(422);
    app.patch(&admin, "/api/v1/jobs/nothing", &json!({"enabled": false})).await.problem(404);
    let planner = app.token("planner", BANNER).await;
    app.patch(&planner, "/api/v1/jobs/readiness_check", &json!({"enabled": false})).await.problem(403);
    let town_admin = app.token("admin", MANDULATU).await;
    app.patch(&town_admin, "/api/v1/jobs/readiness_check", &json!({"enabled": false})).await.problem(403);
    // Mondays at 06:30 (1 = Monday in standard cron): the next is 2026-11-30.
    let s = app.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"cron": "30 6 * * 1"})).await.expect(200).json();
    assert_eq!(s["next_due_at"], "2026-11-30T06:30:00+08:00");
    assert_eq!(app.audit_rows("schedule", "readiness_check").await.len(), 1);
    // Disabled schedules do not run.
    app.patch(&admin, "/api/v1/jobs/readiness_check", &json!({"enabled": false})).await.expect(200);
    app.clock.set(at(2026, 11, 30, 6, 31));
    app.tick().await;
    assert!(runs(&app, &admin, "readiness_check").await.is_empty());
}

#[tokio::test]
async fn run_once_runs_the_latest_missed_occurrence_late() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Back at 07:00 on the 1st: the 28th … 30th were missed and nothing is on time.
    app.clock.set(at(2026, 12, 1, 7, 0));
    app.tick().await;
    let r = runs(&app, &admin, "readiness_check").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        (r[0]["due_at"].as_str(), r[0]["status"].as_str(), r[0]["late"].as_bool()),
        (Some("2026-11-30T08:00:00+08:00"), Some("succeeded"), Some(true))
    );
    assert_eq!((r[1]["status"].as_str(), r[1]["counts"]["skipped"].as_i64()), (Some("skipped"), Some(2)));
}
