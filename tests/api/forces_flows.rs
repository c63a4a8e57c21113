//! Social emergency forces: call-ups through to paid compensation, CSV imports.

use serde_json::{Value, json};

use crate::common::*;
use crate::forces::{approve, id_number, new_member, new_team, north};

#[tokio::test]
async fn a_callup_runs_from_request_to_paid_compensation() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let operator = app.token("operator", MANDULATU).await;
    let planner = app.token("planner", MANDULATU).await;
    new_team(&app, &operator, "T1", MANDULATU, north(5.0), json!([{"specialty": "grassland_fire"}])).await;
    approve(&app, &admin, "T1").await;
    let m: Vec<i64> = [
        new_member(&app, &operator, "T1", 1, "2026-12-31").await,
        new_member(&app, &operator, "T1", 2, "2026-12-31").await,
        new_member(&app, &operator, "T1", 3, "2026-12-31").await,
    ]
    .to_vec();
    let status = |id: i64| {
        let app = &app;
        let admin = admin.clone();
        async move { app.get(&admin, &format!("/api/v1/members/{id}")).await.expect(200).json()["status"].clone() }
    };

    let body = json!({"team_code": "T1", "purpose": "event", "reference": "2026-11 巴彦乌拉草原火灾", "specialty": "grassland_fire", "headcount": 2, "report_at": "2026-11-27T08:00:00+08:00", "report_place": "满都拉图镇应急局", "report_lon": 113.64, "report_lat": 43.85});
    app.post(&operator, "/api/v1/callups", &body).await.problem(403);
    let c = app.post(&planner, "/api/v1/callups", &body).await.expect(201).json();
    assert_eq!(c["status"], "requested");
    let cid = c["id"].as_i64().unwrap();
    let base = format!("/api/v1/callups/{cid}");

    // A temporary volunteer collected for this call-up only.
    let tmp = app
        .post(&operator, "/api/v1/teams/T1/members", &json!({"name": "临时志愿者甲", "id_number": id_number(99), "phone": "13700000099", "skills": ["grassland_fire"], "temporary_for_callup": cid}))
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();

    let p = app.post(&operator, &format!("{base}/accept"), &json!({"members": [m[0], 999_999]})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "members[1]");
    let v =
        app.post(&operator, &format!("{base}/accept"), &json!({"members": [m[0], m[1], tmp]})).await.expect(200).json();
    assert_eq!(v["status"], "accepted");
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert_eq!(status(m[0]).await, "deployed");
    assert_eq!(status(m[1]).await, "deployed");
    assert_eq!(status(m[2]).await, "available");
    app.post(&operator, &format!("{base}/decline"), &json!({"reason": "x"})).await.problem(409);
    app.patch(&operator, &format!("/api/v1/members/{}", m[0]), &json!({"status": "unavailable"})).await.problem(409);
    app.post(
        &operator,
        &format!("{base}/compensation"),
        &json!({"labour": 1, "transport": 0, "supplies": 0, "equipment_wear": 0}),
    )
    .await
    .problem(409);

    app.clock.advance(chrono::Duration::hours(6));
    app.post(&operator, &format!("{base}/close"), &json!({})).await.problem(403);
    let v = app
        .post(&planner, &format!("{base}/close"), &json!({"hours": [{"member_id": m[1], "hours": 4.5}]}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["status"], "closed");
    assert_eq!(status(m[0]).await, "available");
    assert_eq!(status(m[1]).await, "available");
    // The temporary volunteer's personal data is gone, and the erasure is on record.
    let t = app.get(&admin, &format!("/api/v1/members/{tmp}?reveal=true")).await.expect(200).json();
    assert_eq!(t["id_number"], Value::Null);
    assert_eq!(t["phone"], Value::Null);
    assert_eq!(t["status"], "retired");
    assert!(!t["name"].as_str().unwrap().contains("甲"));
    assert!(app.audit_rows("member", &tmp.to_string()).await.iter().any(|(a, _)| a == "erase"));

    let claim =
        json!({"labour": 1200.5, "transport": 300, "supplies": 80.25, "equipment_wear": 0, "note": "两人六小时"});
    app.post(
        &operator,
        &format!("{base}/compensation"),
        &json!({"labour": 1.001, "transport": 0, "supplies": 0, "equipment_wear": 0}),
    )
    .await
    .problem(422);
    let v = app.post(&operator, &format!("{base}/compensation"), &claim).await.expect(201).json();
    assert_eq!(v["status"], "claimed");
    assert_eq!(v["total"], 1580.75);
    app.post(&operator, &format!("{base}/compensation"), &claim).await.problem(409);
    app.post(&planner, &format!("{base}/compensation/pay"), &json!({})).await.problem(409);
    app.post(&operator, &format!("{base}/compensation/approve"), &json!({})).await.problem(403);
    let v = app.post(&planner, &format!("{base}/compensation/approve"), &json!({})).await.expect(200).json();
    assert_eq!(v["status"], "approved");
    let v = app
        .post(&planner, &format!("{base}/compensation/pay"), &json!({"payment_ref": "ZF-2026-001"}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["status"], "paid");
    assert_eq!(v["payment_ref"], "ZF-2026-001");
    let actions: Vec<String> =
        app.audit_rows("compensation", &cid.to_string()).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(actions, ["pay", "approve", "claim"]);
    let actions: Vec<String> = app.audit_rows("callup", &cid.to_string()).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(actions, ["close", "accept", "create"]);

    // History and service records.
    let h = app.get(&operator, "/api/v1/teams/T1/callups").await.expect(200).json();
    assert_eq!(h["total"], 1);
    assert_eq!(h["items"][0]["id"], cid);
    let s = app.get(&operator, &format!("/api/v1/members/{}/service", m[0])).await.expect(200).json();
    assert_eq!(s["callups"], 1);
    assert_eq!(s["hours"], 6.0);
    let s = app.get(&operator, &format!("/api/v1/members/{}/service", m[1])).await.expect(200).json();
    assert_eq!(s["hours"], 4.5);
    let s = app.get(&operator, &format!("/api/v1/members/{}/service", m[2])).await.expect(200).json();
    assert_eq!(s["callups"], 0);

    // A declined call-up; and a retention assessment keeps a temporary volunteer.
    let c2 = app.post(&planner, "/api/v1/callups", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let tmp2 = app
        .post(
            &operator,
            "/api/v1/teams/T1/members",
            &json!({"name": "临时志愿者乙", "id_number": id_number(98), "temporary_for_callup": c2}),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    app.post(
        &planner,
        &format!("/api/v1/callups/{c2}/retention"),
        &json!({"reason": "后续复盘需联系，已评估合法必要并加密保存"}),
    )
    .await
    .expect(200);
    let v = app
        .post(&operator, &format!("/api/v1/callups/{c2}/decline"), &json!({"reason": "人员不足"}))
        .await
        .expect(200)
        .json();
    assert_eq!(v["decline_reason"], "人员不足");
    app.post(&planner, &format!("/api/v1/callups/{c2}/close"), &json!({})).await.expect(200);
    let t = app.get(&admin, &format!("/api/v1/members/{tmp2}")).await.expect(200).json();
    assert_eq!(t["name"], "临时志愿者乙");
    assert!(t["id_number"].is_string());
    app.post(&operator, &format!("/api/v1/callups/{c2}/compensation"), &claim).await.problem(409);

    // Declining without a retention assessment erases the temporary volunteers at once.
    let c3 = app.post(&planner, "/api/v1/callups", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let tmp3 = app
        .post(
            &operator,
            "/api/v1/teams/T1/members",
            &json!({"name": "临时志愿者丙", "id_number": id_number(97), "temporary_for_callup": c3}),
        )
        .await
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    app.post(&operator, &format!("/api/v1/callups/{c3}/decline"), &json!({"reason": "路远"})).await.expect(200);
    let t = app.get(&admin, &format!("/api/v1/members/{tmp3}")).await.expect(200).json();
    assert_eq!(t["id_number"], Value::Null);
    assert!(t["anonymised_at"].is_string());
    let m0 = app.get(&admin, &format!("/api/v1/members/{}", m[0])).await.expect(200).json();
    assert_eq!((m0["insured_today"].as_bool(), m0["certified_today"].as_bool()), (Some(true), Some(true)));

    // A team suspended after the request cannot accept it until reinstated.
    let c4 = app.post(&planner, "/api/v1/callups", &body).await.expect(201).json()["id"].as_i64().unwrap();
    app.post(&planner, "/api/v1/teams/T1/suspend", &json!({"reason": "整改"})).await.expect(200);
    app.post(&operator, &format!("/api/v1/callups/{c4}/accept"), &json!({"members": [m[2]]})).await.problem(409);
    let v = app.post(&planner, "/api/v1/teams/T1/reinstate", &json!({})).await.expect(200).json();
    assert_eq!(v["filing_status"], "approved");
    app.post(&operator, &format!("/api/v1/callups/{c4}/accept"), &json!({"members": [m[2]]})).await.expect(200);
    assert_eq!(status(m[2]).await, "deployed");
}

#[tokio::test]
async fn csv_imports_are_all_or_nothing_with_line_and_column_and_idempotent() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let operator = app.token("operator", MANDULATU).await;

    let bad = format!(
        "code,name,org_type,region_code,lon,lat,specialties,grades,filing_status\n\
         T1,甲队,volunteer_team,{MANDULATU},113.6,43.9,grassland_fire;medical,1;,approved\n\
         T2,乙队,club,{MANDULATU},113.6,43.9,medical,,\n\
         T3,丙队,militia,{MANDULATU},113.6,43.9,medical;transport,1,\n"
    );
    let p = app.post_csv(&admin, "/api/v1/import/teams", &bad).await.problem(422);
    let errs = p["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 2, "{p}");
    assert_eq!(
        (errs[0]["line"].as_u64(), errs[0]["column"].as_u64(), errs[0]["field"].as_str()),
        (Some(3), Some(3), Some("org_type"))
    );
    assert_eq!(
        (errs[1]["line"].as_u64(), errs[1]["column"].as_u64(), errs[1]["field"].as_str()),
        (Some(4), Some(8), Some("grades"))
    );
    assert_eq!(app.get(&admin, "/api/v1/teams").await.expect(200).json()["total"], 0);

    // Chinese headers, BOM, labels instead of codes.
    let good = format!(
        "\u{feff}队伍编码,队伍名称,组织类型,所属区划,经度,纬度,专业,等级,备案状态\n\
         T1,甲队,志愿者队伍,{MANDULATU},113.6,43.9,grassland_fire;medical,1;,approved\n\
         T2,乙队,militia,{MANDULATU},113.7,43.8,医疗救护,,\n"
    );
    let good = good.replace("医疗救护", "应急医疗救护");
    // An operator may not set a filing decision.
    let p = app.post_csv(&operator, "/api/v1/import/teams", &good).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "filing_status");
    let s = app.post_csv(&admin, "/api/v1/import/teams", &good).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 2, "updated": 0, "unchanged": 0}));
    let t1 = app.get(&admin, "/api/v1/teams/T1").await.expect(200).json();
    assert_eq!(t1["filing_status"], "approved");
    assert_eq!(
        t1["specialties"],
        json!([{"specialty": "grassland_fire", "grade": 1}, {"specialty": "medical", "grade": null}])
    );
    let audits = app.audit_rows("team", "T1").await.len();
    let s = app.post_csv(&admin, "/api/v1/import/teams", &good).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 0, "updated": 0, "unchanged": 2}));
    assert_eq!(app.audit_rows("team", "T1").await.len(), audits);
    // The export re-imports as a no-op, in either header language.
    for h in ["zh", "en"] {
        let r = app.get(&admin, &format!("/api/v1/export/teams.csv?header={h}")).await.expect(200);
        assert!(r.content_type.starts_with("text/csv"));
        assert!(r.text.starts_with('\u{feff}'));
        let s = app.post_csv(&operator, "/api/v1/import/teams", &r.text).await.expect(200).json();
        assert_eq!(s["unchanged"], 2, "{h}: {}", r.text);
    }

    let a = id_number(1);
    let mut wrong = id_number(2);
    wrong.replace_range(17..18, if wrong.ends_with('3') { "4" } else { "3" });
    let bad = format!(
        "team_code,name,id_number,phone,skills,insurer,policy_number,insurance_start,insurance_end,status\n\
         T1,张三,{a},13800000001,grassland_fire,人保财险,P1,2026-01-01,2026-12-31,available\n\
         T1,李四,{wrong},13800000002,medical,,,,,\n\
         T9,王五,{a},,,,,,,\n\
         T2,赵六,{},,,人保财险,P2,2026-13-01,,\n",
        id_number(3)
    );
    let p = app.post_csv(&operator, "/api/v1/import/members", &bad).await.problem(422);
    let errs: Vec<(u64, Option<u64>, String)> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_u64(), e["field"].as_str().unwrap_or("").to_string()))
        .collect();
    let expected: Vec<(u64, Option<u64>, String)> = vec![
        (3, Some(3), "id_number".into()),
        (4, Some(1), "team_code".into()),
        (5, Some(8), "insurance_start".into()),
        (5, Some(9), "insurance_end".into()),
    ];
    assert_eq!(errs, expected, "{p}");
    assert!(!p.to_string().contains(&wrong[..14]));
    let list = app.get(&admin, "/api/v1/teams/T1/members").await.expect(200).json();
    assert_eq!(list["total"], 0);

    let good = format!(
        "队伍编码,姓名,身份证号,电话,专业技能,保险公司,保单号,保险起期,保险止期,状态\n\
         T1,张三,{a},13800000001,grassland_fire;medical,人保财险,P1,2026-01-01,2026-12-31,available\n\
         T1,李四,{},13800000002,medical,,,,,unavailable\n",
        id_number(2)
    );
    // Another township's operator may not import into these teams.
    let stranger = app.token("operator", CHAGANAOBAO).await;
    let p = app.post_csv(&stranger, "/api/v1/import/members", &good).await.problem(422);
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
    assert_eq!((p["errors"][0]["line"].as_u64(), p["errors"][0]["field"].as_str()), (Some(2), Some("team_code")));
    app.post_csv(&app.token("viewer", MANDULATU).await, "/api/v1/import/members", &good).await.problem(403);
    let s = app.post_csv(&operator, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 2, "updated": 0, "unchanged": 0}));
    let s = app.post_csv(&operator, "/api/v1/import/members", &good).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 0, "updated": 0, "unchanged": 2}));
    // A masked export (no permission) re-imports cleanly and changes nothing.
    let masked = app.get(&operator, "/api/v1/export/members.csv").await.expect(200).text;
    assert!(!masked.contains(&a));
    let s = app.post_csv(&operator, "/api/v1/import/members", &masked).await.expect(200).json();
    assert_eq!(s["unchanged"], 2, "{masked}");
    // A changed policy end date updates the member.
    let renewed = good.replace("2026-12-31", "2027-12-31");
    let s = app.post_csv(&operator, "/api/v1/import/members", &renewed).await.expect(200).json();
    assert_eq!(s, json!({"rows": 2, "created": 0, "updated": 1, "unchanged": 1}));
    let list = app.get(&admin, "/api/v1/teams/T1/members").await.expect(200).json();
    assert_eq!(list["items"][0]["insurance"][0]["end"], "2027-12-31");
    assert_eq!(list["items"][0]["skills"], json!(["grassland_fire", "medical"]));
}
