//! Data entry that can say what happened on paper (issue 12, item 6): a filing's submitted date
//! on create, import and resubmit; certificates in the members CSV.

use serde_json::json;

use crate::common::*;
use crate::forces::id_number;
use crate::readiness::{findings, run_check};

fn team(code: &str, submitted_on: Option<&str>) -> serde_json::Value {
    let mut v = json!({"code": code, "name": format!("{code}队"), "org_type": "grassroots_team", "region_code": MANDULATU, "lon": 113.6, "lat": 43.9});
    if let Some(d) = submitted_on {
        v["submitted_on"] = json!(d);
    }
    v
}

fn pending(f: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = f.iter().map(|x| x["subject_id"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_filing_received_on_paper_starts_its_clock_on_the_paper_date() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let op = app.token("operator", MANDULATU).await;
    // Today is 2026-11-27; the review limit is 15 days.
    let t = app.post(&op, "/api/v1/teams", &team("PAPER", Some("2026-11-06"))).await.expect(201).json();
    assert_eq!(t["submitted_at"], "2026-11-06T00:00:00+08:00", "{t}");
    app.post(&op, "/api/v1/teams", &team("EDGE", Some("2026-11-12"))).await.expect(201);
    app.post(&op, "/api/v1/teams", &team("TODAY", None)).await.expect(201);
    let p = app.post(&op, "/api/v1/teams", &team("FUTURE", Some("2026-11-28"))).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "submitted_on", "{p}");
    // Entered by whom and when: the audit row of the create.
    let audit = app.get(&admin, "/api/v1/audit?entity_type=team&entity_id=PAPER").await.expect(200).json();
    let create = audit["items"][0].clone();
    assert_eq!(
        (create["action"].as_str(), create["at"].as_str()),
        (Some("create"), Some("2026-11-27T08:00:00+08:00")),
        "{create}"
    );
    assert!(create["actor"].as_str().unwrap().starts_with("operator-"), "{create}");
    assert_eq!(create["after_state"]["submitted_at"], "2026-11-06T00:00:00+08:00");
    // The CSV import takes the date too.
    let csv = "code,name,org_type,region_code,lon,lat,submitted_on\nCSV1,导入队,grassroots_team,152523100000,113.6,43.9,2026-11-01\n";
    app.post_csv(&op, "/api/v1/import/teams", csv).await.expect(200);
    let bad = "code,name,org_type,region_code,lon,lat,submitted_on\nCSV2,导入队,grassroots_team,152523100000,113.6,43.9,2027-01-01\n";
    let p = app.post_csv(&op, "/api/v1/import/teams", bad).await.problem(422);
    assert_eq!(
        (p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()),
        (Some(2), Some("submitted_on")),
        "{p}"
    );
    run_check(&app).await;
    // 21 and 26 days waiting trigger; exactly 15 days (EDGE) and today do not.
    assert_eq!(pending(&findings(&app, &admin, MANDULATU, "TEAM_FILING_PENDING").await), vec!["CSV1", "PAPER"]);
    // Resubmission on paper: rejected, then resubmitted with the paper date 16 days ago.
    app.post(&admin, "/api/v1/teams/EDGE/reject", &json!({"reason": "材料不全"})).await.expect(200);
    app.post(&op, "/api/v1/teams/EDGE/resubmit", &json!({"submitted_on": "2026-12-01"})).await.problem(422);
    app.post(&admin, "/api/v1/teams/TODAY/approve", &json!({"submitted_on": "2026-11-01"})).await.problem(422);
    let t =
        app.post(&op, "/api/v1/teams/EDGE/resubmit", &json!({"submitted_on": "2026-11-11"})).await.expect(200).json();
    assert_eq!(t["submitted_at"], "2026-11-11T00:00:00+08:00");
    run_check(&app).await;
    assert_eq!(pending(&findings(&app, &admin, MANDULATU, "TEAM_FILING_PENDING").await), vec!["CSV1", "EDGE", "PAPER"]);
    // Deciding resolves.
    for code in ["CSV1", "EDGE", "PAPER"] {
        app.post(&admin, &format!("/api/v1/teams/{code}/approve"), &json!({})).await.expect(200);
    }
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "TEAM_FILING_PENDING").await.is_empty());
}

#[tokio::test]
async fn the_members_csv_takes_several_certificates_per_member() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.post(&admin, "/api/v1/teams", &team("T", None)).await.expect(201);
    let header =
        "team_code,name,id_number,skills,certificate_kind,certificate_number,certificate_issued,certificate_expires\n";
    let csv = format!(
        "{header}T,张三,{},grassland_fire,红十字救护员证;草原防火培训合格证,HS-1;CY-1,2024-01-01;2023-11-01,2027-01-01;2026-11-26\nT,李四,{},,救援员证,JY-1,2020-05-01,\n",
        id_number(1),
        id_number(2)
    );
    let s = app.post_csv(&admin, "/api/v1/import/members", &csv).await.expect(200).json();
    assert_eq!(s["created"], 2, "{s}");
    let members = app.get(&admin, "/api/v1/teams/T/members").await.expect(200).json();
    let zhang = members["items"].as_array().unwrap().iter().find(|m| m["name"] == "张三").unwrap().clone();
    assert_eq!(zhang["certificates"].as_array().unwrap().len(), 2, "{zhang}");
    // Re-importing the same file changes nothing; the export re-imports cleanly too.
    let again = app.post_csv(&admin, "/api/v1/import/members", &csv).await.expect(200).json();
    assert_eq!(
        (again["created"].as_i64(), again["updated"].as_i64(), again["unchanged"].as_i64()),
        (Some(0), Some(0), Some(2))
    );
    let export = app.get(&admin, "/api/v1/export/members.csv?header=en").await.expect(200).text;
    assert!(export.contains("HS-1;CY-1") || export.contains("CY-1;HS-1"), "{export}");
    let s = app.post_csv(&admin, "/api/v1/import/members", &export).await.expect(200).json();
    assert_eq!(s["unchanged"], 2, "{s}");
    // The expired one (CY-1, 11-26) is found; 李四's certificate does not expire (near miss).
    run_check(&app).await;
    let f = findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["facts"]["number"], "CY-1");
    // A renewal in the next file resolves it (the old certificate stays in the history).
    let renew = format!("{header}T,张三,{},,草原防火培训合格证,CY-2,2026-11-20,2029-11-19\n", id_number(1));
    app.post_csv(&admin, "/api/v1/import/members", &renew).await.expect(200);
    run_check(&app).await;
    assert!(findings(&app, &admin, MANDULATU, "CERTIFICATE_EXPIRED").await.is_empty());
    // Misaligned columns are an error naming line and column, and nothing is written.
    let bad = format!("{header}T,王五,{},,救援员证;救护员证,JY-9,2020-05-01;2021-01-01,\n", id_number(3));
    let p = app.post_csv(&admin, "/api/v1/import/members", &bad).await.problem(422);
    assert_eq!(
        (p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()),
        (Some(2), Some("certificate_number")),
        "{p}"
    );
    assert_eq!(app.get(&admin, "/api/v1/teams/T/members").await.expect(200).json()["total"], 2);
}
