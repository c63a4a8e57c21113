//! Social emergency forces: filing, personal data, nearest teams, call-ups and compensation, CSV.

use serde_json::{Value, json};

use crate::common::*;

/// A valid ID number (GB 11643 check digit) for test person `seq`.
pub(crate) fn id_number(seq: u32) -> String {
    let base = format!("15252319900101{:03}", seq % 1000);
    let w = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = base.bytes().zip(w).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{base}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// The banner seat, and a point `km` north of it.
pub(crate) const SEAT: (f64, f64) = (113.644, 43.852);
pub(crate) fn north(km: f64) -> (f64, f64) {
    (SEAT.0, SEAT.1 + km / 111.195)
}

pub(crate) async fn new_team(
    app: &TestApp,
    tok: &str,
    code: &str,
    region: &str,
    at: (f64, f64),
    specs: Value,
) -> Value {
    app.post(
        tok,
        "/api/v1/teams",
        &json!({
            "code": code, "name": format!("{code}救援队"), "org_type": "volunteer_team", "region_code": region,
            "lon": at.0, "lat": at.1, "specialties": specs,
            "equipment": [{"name": "风力灭火机", "quantity": 10}],
            "leader": {"name": "巴特尔", "phone": "13912345678"}
        }),
    )
    .await
    .expect(201)
    .json()
}

pub(crate) async fn approve(app: &TestApp, admin: &str, code: &str) {
    app.post(admin, &format!("/api/v1/teams/{code}/approve"), &json!({})).await.expect(200);
}

/// Adds a member with the skill `grassland_fire` insured until `ins_end`; returns its id.
pub(crate) async fn new_member(app: &TestApp, tok: &str, team: &str, seq: u32, ins_end: &str) -> i64 {
    let v = app
        .post(
            tok,
            &format!("/api/v1/teams/{team}/members"),
            &json!({
                "name": format!("队员{seq}"), "id_number": id_number(seq), "phone": format!("138{:08}", seq),
                "skills": ["grassland_fire"],
                "certificates": [{"kind": "草原防火培训合格证", "number": format!("C{seq}"), "issued": "2025-01-01"}],
                "insurance": [{"insurer": "人保财险", "policy_number": format!("P{seq}"), "start": "2026-01-01", "end": ins_end}]
            }),
        )
        .await
        .expect(201)
        .json();
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn team_filing_is_permission_checked_audited_and_only_approved_teams_count() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let operator = app.token("operator", MANDULATU).await;
    let planner = app.token("planner", MANDULATU).await;
    let other_planner = app.token("planner", CHAGANAOBAO).await;
    let viewer = app.token("viewer", BANNER).await;

    let specs = json!([{"specialty": "grassland_fire", "grade": 2}, {"specialty": "medical"}]);
    let t = new_team(&app, &operator, "T1", MANDULATU, north(5.0), specs.clone()).await;
    assert_eq!(t["filing_status"], "submitted");
    assert_eq!(t["specialties"][0]["grade"], 2);
    assert_eq!(t["leader"]["phone"], "139****5678");
    app.post(&operator, "/api/v1/teams", &json!({"code": "X"})).await.problem(422);
    let body =
        json!({"code": "T9", "name": "n", "org_type": "militia", "region_code": MANDULATU, "lon": 113.0, "lat": 43.0});
    app.post(&viewer, "/api/v1/teams", &body).await.problem(403);
    let mut outside = body.clone();
    outside["region_code"] = json!(CHAGANAOBAO);
    app.post(&operator, "/api/v1/teams", &outside).await.problem(403);
    app.post(
        &operator,
        "/api/v1/teams",
        &json!({"code": "T1", "name": "n", "org_type": "militia", "region_code": MANDULATU, "lon": 113.0, "lat": 43.0}),
    )
    .await
    .problem(409);
    let p = app.post(&operator, "/api/v1/teams", &json!({"code": "T8", "name": "n", "org_type": "militia", "region_code": MANDULATU, "lon": 113.0, "lat": 43.0, "specialties": [{"specialty": "medical", "grade": 4}]})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "specialties");

    // Editing keeps the stored phone when the client (which only sees it masked) leaves it out.
    let mut edit = json!({"code": "T1", "name": "甲队", "org_type": "volunteer_team", "region_code": MANDULATU,
        "lon": north(5.0).0, "lat": north(5.0).1, "specialties": specs, "leader": {"name": "巴特尔"}});
    let v = app.put(&operator, "/api/v1/teams/T1", &edit).await.expect(200).json();
    assert_eq!((v["name"].as_str(), v["leader"]["phone"].as_str()), (Some("甲队"), Some("139****5678")));
    assert_eq!(v["filing_status"], "submitted");
    edit["code"] = json!("T2");
    app.put(&operator, "/api/v1/teams/T1", &edit).await.problem(422);

    // A member who qualifies, so that the team shows in nearest-teams once approved.
    new_member(&app, &operator, "T1", 1, "2026-12-31").await;
    let nearest =
        format!("/api/v1/teams/nearest?specialty=grassland_fire&min_members=1&lon={}&lat={}&max_km=50", SEAT.0, SEAT.1);
    assert_eq!(app.get(&admin, &nearest).await.expect(200).json()["items"], json!([]));

    // Only admins and planners of the team's region decide.
    app.post(&operator, "/api/v1/teams/T1/approve", &json!({})).await.problem(403);
    app.post(&viewer, "/api/v1/teams/T1/approve", &json!({})).await.problem(403);
    app.post(&other_planner, "/api/v1/teams/T1/approve", &json!({})).await.problem(403);
    let v = app.post(&planner, "/api/v1/teams/T1/approve", &json!({})).await.expect(200).json();
    assert_eq!(v["filing_status"], "approved");
    assert!(v["decided_by"].as_str().unwrap().starts_with("planner-"), "{v}");
    assert!(v["decided_at"].as_str().unwrap().ends_with("+08:00"));
    assert_eq!(v["approved_by"], v["decided_by"]);
    app.post(&planner, "/api/v1/teams/T1/approve", &json!({})).await.problem(409);
    app.post(&planner, "/api/v1/teams/T1/reject", &json!({"reason": "材料不全"})).await.problem(409);

    let items = app.get(&admin, &nearest).await.expect(200).json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items[0]["team_code"], "T1");
    assert_eq!(items[0]["grade"], 2);

    // The map shows approved teams, without personal data.
    let map = app.get(&viewer, "/api/v1/teams.geojson").await.expect(200);
    assert_eq!(map.content_type, "application/geo+json");
    let m = map.json();
    assert_eq!(m["features"][0]["properties"]["code"], "T1");
    assert_eq!(m["features"][0]["properties"]["available_members"], 1);
    assert!(
        !map.text.contains("巴特尔") && !map.text.contains("1391234") && !map.text.contains("队员1"),
        "{}",
        map.text
    );

    app.post(&planner, "/api/v1/teams/T1/suspend", &json!({})).await.problem(422);
    app.post(&operator, "/api/v1/teams/T1/suspend", &json!({"reason": "保险到期未续"})).await.problem(403);
    let v = app.post(&planner, "/api/v1/teams/T1/suspend", &json!({"reason": "保险到期未续"})).await.expect(200).json();
    assert_eq!(v["filing_status"], "suspended");
    assert_eq!(v["status_reason"], "保险到期未续");
    assert!(v["approved_by"].as_str().unwrap().starts_with("planner-"), "approval stays on record: {v}");
    assert_eq!(app.get(&admin, &nearest).await.expect(200).json()["items"], json!([]));
    let c = app
        .post(&planner, "/api/v1/callups", &json!({"team_code": "T1", "purpose": "drill", "reference": "2026 草原防火演练", "specialty": "grassland_fire", "headcount": 1, "report_at": "2026-11-28T08:00:00+08:00", "report_place": "满都拉图镇"}))
        .await
        .problem(409);
    assert!(c["detail"].as_str().unwrap().contains("已备案"), "{c}");

    let actions: Vec<String> = app.audit_rows("team", "T1").await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(actions, ["suspend", "approve", "update", "create"]);
    let listed = app.get(&viewer, "/api/v1/teams?filing_status=suspended").await.expect(200).json();
    assert_eq!(listed["total"], 1);
    let other_viewer = app.token("viewer", CHAGANAOBAO).await;
    assert_eq!(app.get(&other_viewer, "/api/v1/teams").await.expect(200).json()["total"], 0);
    app.get(&other_viewer, "/api/v1/teams/T1").await.problem(403);
}

#[tokio::test]
async fn personal_data_is_masked_revealed_only_on_request_with_audit_and_encrypted_at_rest() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let operator = app.token("operator", MANDULATU).await;
    let viewer = app.token("viewer", BANNER).await;
    new_team(&app, &operator, "T1", MANDULATU, north(5.0), json!([])).await;
    let idn = id_number(7);
    let created = app
        .post(
            &operator,
            "/api/v1/teams/T1/members",
            &json!({"name": "其木格", "id_number": idn, "phone": "13812345678", "skills": ["medical"]}),
        )
        .await
        .expect(201)
        .json();
    let id = created["id"].as_i64().unwrap();
    let masked_id = format!("{}**********{}", &idn[..4], &idn[14..]);
    assert_eq!(created["id_number"], masked_id);
    assert_eq!(created["phone"], "138****5678");

    // Bad check digit, and a duplicate person in the same team.
    let mut bad = idn.clone();
    bad.replace_range(17..18, if idn.ends_with('1') { "2" } else { "1" });
    let p = app.post(&operator, "/api/v1/teams/T1/members", &json!({"name": "x", "id_number": bad})).await.problem(422);
    assert_eq!(p["errors"][0]["field"], "id_number");
    assert!(!p.to_string().contains(&bad[..14]), "the error must not echo the number: {p}");
    app.post(&operator, "/api/v1/teams/T1/members", &json!({"name": "y", "id_number": idn})).await.problem(409);
    // The same person in another team is found by ID number (blind index), masked.
    new_team(&app, &operator, "T2", MANDULATU, north(6.0), json!([])).await;
    app.post(&operator, "/api/v1/teams/T2/members", &json!({"name": "其木格", "id_number": idn})).await.expect(201);
    let found = app.post(&viewer, "/api/v1/members/search", &json!({"id_number": idn})).await.expect(200).json();
    assert_eq!(found["total"], 2);
    assert_eq!(found["items"][1]["team_code"], "T2");
    assert_eq!(found["items"][1]["id_number"], masked_id);
    let other =
        app.post(&viewer, "/api/v1/members/search", &json!({"id_number": id_number(8)})).await.expect(200).json();
    assert_eq!(other["total"], 0);

    for tok in [&viewer, &operator, &admin] {
        let m = app.get(tok, &format!("/api/v1/members/{id}")).await.expect(200).json();
        assert_eq!(m["id_number"], masked_id);
        assert_eq!(m["phone"], "138****5678");
        assert_eq!(m["personal_revealed"], false);
        let list = app.get(tok, "/api/v1/teams/T1/members").await.expect(200).json();
        assert_eq!(list["items"][0]["id_number"], masked_id);
        assert_eq!(list["total"], 1);
    }
    assert!(app.audit_rows("member", &id.to_string()).await.iter().all(|(a, _)| a != "reveal"));
    app.get(&viewer, &format!("/api/v1/members/{id}?reveal=true")).await.problem(403);
    app.get(&operator, &format!("/api/v1/members/{id}?reveal=true")).await.problem(403);
    app.get(&operator, "/api/v1/export/members.csv?reveal=true").await.problem(403);

    let full = app.get(&admin, &format!("/api/v1/members/{id}?reveal=true")).await.expect(200).json();
    assert_eq!(full["id_number"], idn.as_str());
    assert_eq!(full["phone"], "13812345678");
    assert_eq!(full["personal_revealed"], true);
    let rows = app.audit_rows("member", &id.to_string()).await;
    assert_eq!(rows[0].0, "reveal");
    assert!(rows[0].1.starts_with("admin-"));

    // Exports: masked without the permission, full (and audited) with it.
    let csv = app.get(&viewer, "/api/v1/export/members.csv").await.expect(200).text;
    assert!(csv.contains(&masked_id) && !csv.contains(&idn) && !csv.contains("13812345678"), "{csv}");
    let csv = app.get(&admin, "/api/v1/export/members.csv?reveal=true&header=en").await.expect(200).text;
    assert!(csv.contains(&idn) && csv.contains("13812345678"), "{csv}");
    assert_eq!(app.audit_rows("member", &id.to_string()).await.iter().filter(|(a, _)| a == "reveal").count(), 2);

    // Nothing in the audit log or the database file holds the number in the clear.
    let audit: Vec<String> = yingji::with_db!(&app.state.db, |p| sqlx::query_scalar::<_, String>(
        "SELECT COALESCE(CAST(before_state AS TEXT), '') || COALESCE(CAST(after_state AS TEXT), '') FROM audit_log"
    )
    .fetch_all(p)
    .await
    .unwrap());
    assert!(audit.iter().all(|a| !a.contains(&idn) && !a.contains("13812345678")));
    let stored: Vec<Option<String>> =
        yingji::with_db!(&app.state.db, |p| sqlx::query_scalar("SELECT id_number FROM members")
            .fetch_all(p)
            .await
            .unwrap());
    assert!(stored.iter().flatten().all(|s| s.starts_with("v2:") && !s.contains(&idn)));
    if app.state.db.backend() == yingji::db::Backend::Sqlite {
        let path = app.db_url.strip_prefix("sqlite://").expect("a SQLite test database is a file");
        let mut bytes = std::fs::read(path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(&idn), "the ID number is in the database file in plain text");
        assert!(!hay.contains("13812345678"), "the phone is in the database file in plain text");
        assert!(hay.contains("其木格"), "sanity: the file was read");
    }
}

#[tokio::test]
async fn nearest_teams_skips_uninsured_and_understaffed_teams() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let g = |grade: u8| json!([{"specialty": "grassland_fire", "grade": grade}]);
    // A (10 km): three members, insurance expired yesterday.
    new_team(&app, &admin, "A", MANDULATU, north(10.0), g(1)).await;
    for s in 1..=3 {
        new_member(&app, &admin, "A", s, "2026-11-26").await;
    }
    // B (20 km): three members but one is unavailable.
    new_team(&app, &admin, "B", MANDULATU, north(20.0), g(1)).await;
    let mut b = Vec::new();
    for s in 11..=13 {
        b.push(new_member(&app, &admin, "B", s, "2026-12-31").await);
    }
    app.patch(&admin, &format!("/api/v1/members/{}", b[0]), &json!({"status": "unavailable"})).await.expect(200);
    // C (40 km): three qualified members.
    new_team(&app, &admin, "C", MANDULATU, north(40.0), g(2)).await;
    for s in 21..=23 {
        new_member(&app, &admin, "C", s, "2026-12-31").await;
    }
    // D (30 km): qualified but only submitted. E (150 km): too far. F (5 km, another township).
    new_team(&app, &admin, "D", MANDULATU, north(30.0), g(3)).await;
    for s in 31..=33 {
        new_member(&app, &admin, "D", s, "2026-12-31").await;
    }
    new_team(&app, &admin, "E", MANDULATU, north(150.0), g(3)).await;
    for s in 41..=43 {
        new_member(&app, &admin, "E", s, "2026-12-31").await;
    }
    new_team(&app, &admin, "F", CHAGANAOBAO, north(5.0), json!([])).await;
    for s in 51..=53 {
        new_member(&app, &admin, "F", s, "2026-12-31").await;
    }
    for code in ["A", "B", "C", "E", "F"] {
        approve(&app, &admin, code).await;
    }
    let q = |min: u32, at: &str| {
        format!(
            "/api/v1/teams/nearest?specialty=grassland_fire&min_members={min}&lon={}&lat={}&max_km=100{at}",
            SEAT.0, SEAT.1
        )
    };
    let codes = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|t| t["team_code"].as_str().unwrap().to_string()).collect()
    };
    let v = app.get(&admin, &q(3, "")).await.expect(200).json();
    assert_eq!(codes(&v), ["F", "C"]);
    assert_eq!(
        v["items"][1],
        json!({"team_code": "C", "name": "C救援队", "region_code": MANDULATU, "distance_km": 40.0, "qualified_members": 3, "grade": 2})
    );
    assert_eq!(v["items"][0]["grade"], Value::Null);
    // With two members enough, B qualifies; a day when A was insured, A leads.
    assert_eq!(codes(&app.get(&admin, &q(2, "")).await.expect(200).json()), ["F", "B", "C"]);
    let yesterday = "&at=2026-11-26T12:00:00%2B08:00";
    assert_eq!(codes(&app.get(&admin, &q(3, yesterday)).await.expect(200).json()), ["F", "A", "C"]);
    // Jurisdiction: a township operator sees only its own teams.
    let op = app.token("operator", MANDULATU).await;
    assert_eq!(codes(&app.get(&op, &q(3, "")).await.expect(200).json()), ["C"]);
    // Bad input is a 4xx naming the parameter.
    let p = app.get(&admin, "/api/v1/teams/nearest?specialty=flying&lon=1&lat=1&max_km=1").await.problem(400);
    assert_eq!(p["errors"][0]["field"], "specialty");
    app.get(&admin, &format!("/api/v1/teams/nearest?specialty=medical&lon={}&lat=95&max_km=10", SEAT.0))
        .await
        .problem(400);
}
