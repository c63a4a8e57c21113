//! The access matrix: every token route × every role × an object (or region) in the caller's own
//! township, a sibling township and the parent banner. The expected answer comes from the route's
//! declared guard and the role table; the README documents the same matrix (checked below).

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use yingji::auth::{Perm, Role};
use yingji::http::access::{Guard, Region};
use yingji::http::router::{Access, BodyKind, Route};

use crate::common::*;
use crate::forces::{approve, new_member, new_team};
use crate::supplies::depot;

/// Where the target of a request lies, seen from a caller whose jurisdiction is 满都拉图镇.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Own,
    Sibling,
    Parent,
}

const TARGETS: [(Target, &str); 3] =
    [(Target::Own, MANDULATU), (Target::Sibling, CHAGANAOBAO), (Target::Parent, BANNER)];

/// Ids of one object of each kind in one region.
#[derive(Default, Clone)]
struct Fixture {
    ids: BTreeMap<&'static str, String>,
}

async fn fixture(app: &TestApp, admin: &str, region: &str, n: u32) -> Fixture {
    let mut f = Fixture::default();
    let kind = if region == BANNER { "special" } else { "township" };
    let plan = app
        .post(
            admin,
            "/api/v1/plans",
            &json!({
                "title": format!("矩阵测试预案{n}"), "kind": kind, "region": region,
                "owning_unit": "应急管理局", "lead_department": "应急管理局", "hazards": ["snow_disaster"],
                "member_units": [{"name": "消防救援大队", "duties": "搜救"}],
                "sections": {"organization": "统一指挥。", "prevention": "预警。", "response": "响应。", "support": "保障。", "recovery": "恢复。"},
                "response_levels": [{"level": 4, "criteria": "积雪超过 20 厘米", "supplies": [], "forces": []}]
            }),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("预案", plan["id"].to_string());
    let drill = app
        .post(
            admin,
            "/api/v1/drills",
            &json!({
                "title": "矩阵测试演练", "form": "tabletop", "scope": "single", "purpose": "test", "region": region,
                "organiser_unit": "应急办", "place_name": "会议室",
                "starts_at": "2026-12-20T09:00:00+08:00", "ends_at": "2026-12-20T11:00:00+08:00"
            }),
        )
        .await
        .expect(201)
        .json();
    let drill_id = drill["id"].to_string();
    let action = app
        .post(
            admin,
            &format!("/api/v1/drills/{drill_id}/actions"),
            &json!({"action": "补充清单", "owner_unit": "民政办", "due_on": "2027-01-10"}),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("演练", drill_id);
    f.ids.insert("整改措施", action["id"].to_string());
    let team = format!("MX{n}");
    new_team(app, admin, &team, region, (113.6, 43.8), json!([{"specialty": "grassland_fire", "grade": 2}])).await;
    approve(app, admin, &team).await;
    let member = new_member(app, admin, &team, 900 + n, "2027-12-31").await;
    f.ids.insert("队员", member.to_string());
    let callup = app
        .post(
            admin,
            "/api/v1/callups",
            &json!({"team_code": team, "purpose": "drill", "reference": "矩阵测试", "specialty": "grassland_fire", "headcount": 1,
                    "report_at": "2026-12-20T08:00:00+08:00", "report_place": "镇政府"}),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("调用", callup["id"].to_string());
    f.ids.insert("队伍", team);
    let a = depot(app, admin, &format!("MXA{n}"), region, 113.6, 43.8).await;
    let b = depot(app, admin, &format!("MXB{n}"), region, 113.7, 43.9).await;
    f.ids.insert("储备库", a.to_string());
    let transfer = app
        .post(
            admin,
            "/api/v1/transfers",
            &json!({"from_depot_id": a, "to_depot_id": b, "item_code": "1999905", "quantity": 1}),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("调拨", transfer["id"].to_string());
    let req = app
        .post(
            admin,
            "/api/v1/requisitions",
            &json!({"depot_id": a, "owner": "运输公司", "item_code": "3999901", "quantity": 1, "condition": "完好"}),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("领用单", req["id"].to_string());
    let channel = app
        .post(
            admin,
            "/api/v1/channels",
            &json!({"region": region, "kind": "webhook", "name": "矩阵", "url": "http://127.0.0.1:9/x"}),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("通知渠道", channel["id"].to_string());
    let issued = yingji::auth::tokens::issue(
        &app.state.db,
        &yingji::audit::Actor::cli(),
        yingji::time::Timestamp(app.clock.now_utc()),
        &format!("matrix-{n}"),
        Role::Viewer,
        &yingji::regions::RegionCode::parse(region).unwrap(),
        None,
    )
    .await
    .unwrap();
    f.ids.insert("令牌", issued.info.id.to_string());
    let user = yingji::auth::users::by_name(&app.state.db, &format!("matrix-{n}")).await.unwrap().unwrap();
    f.ids.insert("用户", user.id.to_string());
    let event = app
        .post(
            admin,
            "/api/v1/events",
            &json!({
                "hazard": "snow_disaster", "title": "矩阵测试事件", "occurred_at": "2026-11-27T06:30:00+08:00",
                "region_code": region, "place": "嘎查", "lon": 113.6, "lat": 43.8, "description": "积雪", "severity": "general",
                "source": "电话", "reporter": "嘎查长"
            }),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("事件", event["event"]["id"].to_string());
    // Issued from the region itself, so the region is the warning's issuer too. A banner warning
    // reaches every township below it, so the banner's one covers only a sibling township: seen
    // from 满都拉图镇 it is the parent's object.
    let local_admin = app.token("admin", region).await;
    let covered = if region == BANNER { CHAGANAOBAO } else { region };
    let warning = app
        .post(
            &local_admin,
            "/api/v1/warnings",
            &json!({
                "hazard": "snow_disaster", "level": 3, "headline": "暴雪黄色预警", "description": "预计有暴雪。",
                "instruction": "做好防范。", "issuer": "气象台", "expires_at": "2026-11-28T08:00:00+08:00",
                "regions": [covered], "issue": false
            }),
        )
        .await
        .expect(201)
        .json();
    f.ids.insert("预警", warning["id"].to_string());
    f.ids.insert("区划", region.to_string());
    f
}

/// Outbox deliveries and in-app notifications need the delivery loop: enqueue one message per
/// region, run a pass, then pick each region's rows.
async fn add_messages(app: &TestApp, admin: &str, fixtures: &mut [Fixture]) {
    for (i, (_, region)) in TARGETS.iter().enumerate() {
        let m = yingji::notify::outbox::Message {
            key: format!("matrix-{i}"),
            region_code: region.to_string(),
            kind: "test".into(),
            title: "矩阵".into(),
            body: "矩阵测试".into(),
            data: json!({}),
            late: false,
            source: None,
        };
        let mut tx = app.state.db.begin().await.unwrap();
        yingji::notify::outbox::enqueue(&mut tx, yingji::time::Timestamp(app.clock.now_utc()), &m).await.unwrap();
        tx.commit().await.unwrap();
    }
    app.tick().await;
    let outbox = app.get(admin, "/api/v1/outbox?limit=1000").await.expect(200).json();
    let inbox = app.get(admin, "/api/v1/notifications?limit=1000").await.expect(200).json();
    for (i, (_, region)) in TARGETS.iter().enumerate() {
        let pick = |list: &Value| {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["region_code"] == *region)
                .map(|d| d["id"].to_string())
                .unwrap_or_else(|| panic!("no row for {region} in {list}"))
        };
        fixtures[i].ids.insert("外发消息", pick(&outbox));
        fixtures[i].ids.insert("通知", pick(&inbox));
    }
}

/// The request for `route` aimed at `target`: path ids, body and query all point there.
fn request(route: &Route, guard: &Guard, f: &Fixture, region: &str) -> (String, Option<Value>) {
    let mut path = route.path.to_string();
    for r in guard.regions {
        if let Region::Path(param, object) = r {
            path = path.replace(&format!("{{{param}}}"), &f.ids[object.label]);
        }
    }
    // Parameters that are not the guarded object.
    for (param, value) in [("{version}", "1"), ("{name}", "readiness"), ("{code}", "1999905"), ("{id}", "1")] {
        path = path.replace(param, value);
    }
    let mut query = Vec::new();
    let mut body = serde_json::Map::new();
    for r in guard.regions {
        match r {
            Region::Query(q) => query.push(format!("{q}={region}")),
            Region::Body(field) => {
                body.insert(field.to_string(), json!(region));
            }
            _ => {}
        }
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let body = match route.body {
        BodyKind::None => None,
        BodyKind::Json => Some(Value::Object(body)),
        BodyKind::Csv => Some(Value::Null),
        BodyKind::Xml => Some(Value::Bool(true)),
    };
    (path, body)
}

/// What the README's matrix says: whether `role` may call a route with this guard on `target`.
fn allowed(guard: &Guard, role: Role, target: Target) -> bool {
    if !role.allows(guard.perm) {
        return false;
    }
    guard.regions.iter().all(|r| match r {
        Region::Global | Region::Rows => true,
        Region::Banner => false,
        Region::Query(_) | Region::Path(..) | Region::Body(_) => target == Target::Own,
    })
}

#[tokio::test]
async fn every_route_answers_the_documented_matrix_for_every_role_and_region() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut fixtures = Vec::new();
    for (n, (_, region)) in TARGETS.iter().enumerate() {
        fixtures.push(fixture(&app, &admin, region, n as u32 + 1).await);
    }
    add_messages(&app, &admin, &mut fixtures).await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, app.token(role.as_str(), MANDULATU).await));
    }
    let router = yingji::routes::router();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for route in router.routes().iter().filter(|r| r.access == Access::Token) {
        let guard = route.guard.expect("every token route declares a guard");
        for (role, token) in &tokens {
            for (i, (target, region)) in TARGETS.iter().enumerate() {
                let (path, body) = request(route, &guard, &fixtures[i], region);
                let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
                let body = match &body {
                    None => None,
                    Some(Value::Null) => Some(Body::Raw("text/csv", "")),
                    Some(Value::Bool(true)) => Some(Body::Raw("application/xml", "")),
                    Some(v) => Some(Body::Json(v)),
                };
                let status = app.send(method, &path, Some(token), body).await.status.as_u16();
                let expect_allowed = allowed(&guard, *role, *target);
                let ok = if expect_allowed { status != 401 && status != 403 && status < 500 } else { status == 403 };
                if !ok {
                    wrong.push(format!(
                        "{} {path} as {} on {target:?}: {status}, expected {}",
                        route.method,
                        role.as_str(),
                        if expect_allowed { "not 401/403/5xx" } else { "403" }
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {checked} requests answered wrongly:\n{}", wrong.len(), wrong.join("\n"));
    assert!(checked > 1000, "the matrix covers every route: {checked} requests");
}

/// The README's table is generated from the same route table, so it cannot drift.
#[test]
fn the_readme_documents_the_access_matrix() {
    let table = matrix_markdown();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = "<!-- access-matrix:start -->\n";
    let end = "<!-- access-matrix:end -->";
    let _ = std::fs::write(std::env::temp_dir().join("yingji-access-matrix.md"), &table);
    let (Some(a), Some(b)) = (readme.find(start), readme.find(end)) else {
        panic!("README.md lacks the access-matrix markers; paste this between them:\n{table}");
    };
    let documented = &readme[a + start.len()..b];
    if documented != table {
        panic!("README access matrix is out of date; regenerated table written to the temp dir:\n{table}");
    }
}

fn matrix_markdown() -> String {
    let router = yingji::routes::router();
    let mut out = String::from(
        "| 方法 | 路径 | 权限 | admin | planner | operator | viewer | 区划来源 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in router.routes().iter().filter(|r| r.access == Access::Token) {
        let g = r.guard.unwrap();
        let cells: Vec<String> = Role::ALL
            .iter()
            .map(|role| {
                TARGETS.iter().map(|(t, _)| if allowed(&g, *role, *t) { "✓" } else { "✗" }).collect::<Vec<_>>().join("")
            })
            .collect();
        let source: Vec<String> = g
            .regions
            .iter()
            .map(|r| match r {
                Region::Global => "不限区划".to_string(),
                Region::Query(q) => format!("辖区（?{q}=）"),
                Region::Path(p, o) => format!("路径 {{{p}}}：{}", o.label),
                Region::Body(f) => format!("请求体 {f}"),
                Region::Rows => "逐行".to_string(),
                Region::Banner => "仅旗级".to_string(),
            })
            .collect();
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |\n",
            r.method,
            r.path,
            perm_name(g.perm),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            source.join("；")
        ));
    }
    out
}

fn perm_name(p: Perm) -> String {
    format!("{p:?}")
}
