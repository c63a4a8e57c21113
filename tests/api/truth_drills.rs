//! Drill deadlines count only completed drills of a form the plan lists (issue 12, item 2).

use serde_json::{Value, json};

use crate::common::*;
use crate::readiness::{findings, run_check};
use crate::readiness_rules::{approved_plan, plan};

async fn drill(app: &TestApp, t: &str, plan_id: i64, form: &str, complete: bool) -> Value {
    let d = app
        .post(t, "/api/v1/drills", &json!({
            "title": format!("{form}演练"), "plan_ids": [plan_id], "form": form, "scope": "single", "purpose": "test", "region": MANDULATU,
            "organiser_unit": "镇应急办", "place_name": "镇政府", "starts_at": "2026-11-27T06:00:00+08:00", "ends_at": "2026-11-27T07:00:00+08:00"
        }))
        .await
        .expect(201)
        .json();
    if complete {
        app.post(
            t,
            &format!("/api/v1/drills/{}/complete", d["id"]),
            &json!({"participant_count": 12, "scenario": "草原火情"}),
        )
        .await
        .expect(200);
    }
    d
}

#[tokio::test]
async fn only_completed_drills_of_a_listed_form_move_the_drill_deadline() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Field drills every month, issued 10-20: due 11-20, overdue.
    let field_only = approved_plan(
        &app,
        &admin,
        &plan("实战演练预案", "township", MANDULATU, json!({"drill": {"interval_months": 1, "forms": ["field"]}})),
        "2026-10-20",
    )
    .await;
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "DRILL_OVERDUE").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["facts"]["forms_due"], json!(["field"]));
    assert!(f[0]["message"].as_str().unwrap().contains("最迟应于 2026-11-20 进行实战演练"), "{}", f[0]["message"]);
    // A completed tabletop exercise of the plan does not count, nor does a field drill that was
    // only planned (trigger stays).
    drill(&app, &admin, field_only, "tabletop", true).await;
    drill(&app, &admin, field_only, "field", false).await;
    run_check(&app).await;
    assert_eq!(
        findings(&app, &admin, MANDULATU, "DRILL_OVERDUE").await.len(),
        1,
        "tabletop does not satisfy a field plan"
    );
    let v = app.get(&admin, &format!("/api/v1/plans/{field_only}")).await.expect(200).json();
    assert_eq!(v["deadlines"]["last_drilled_on"], Value::Null, "the deadline did not move: {}", v["deadlines"]);
    // A completed field drill resolves it and moves the deadline.
    drill(&app, &admin, field_only, "field", true).await;
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "DRILL_OVERDUE").await.is_empty());
    let v = app.get(&admin, &format!("/api/v1/plans/{field_only}")).await.expect(200).json();
    assert_eq!(v["deadlines"]["last_drilled_on"], "2026-11-27");
}
