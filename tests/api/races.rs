//! Races: many requests for the same or conflicting lifecycle steps arriving together end with
//! exactly one winner; the losers get 409 `state-conflict` naming the current state and write
//! nothing (no movement, no audit row, no reminder). Each family runs on the test database
//! (SQLite, or PostgreSQL when `YINGJI_TEST_DATABASE_URL` is set).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::common::*;
use crate::supplies::{QUILT, check_ledger, count, depot, receive};

/// Simultaneous calls per race (the issue asks for at least 20).
pub(crate) const N: usize = 24;

/// One request of a race: token, path, body.
pub(crate) type Call = (String, String, Value);

/// POSTs every call at once (all tasks wait on one barrier first); responses in call order.
pub(crate) async fn race(app: &Arc<TestApp>, calls: Vec<Call>) -> Vec<Resp> {
    race_with(app, reqwest::Method::POST, calls).await
}

/// Like [`race`] with another method.
pub(crate) async fn race_with(app: &Arc<TestApp>, method: reqwest::Method, calls: Vec<Call>) -> Vec<Resp> {
    let barrier = Arc::new(Barrier::new(calls.len()));
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|(t, path, body)| {
            let (app, barrier, method) = (app.clone(), barrier.clone(), method.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.send(method, &path, Some(&t), Some(Body::Json(&body))).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

/// Counts the winners (2xx) of each call group and checks every loser is a 409 state conflict
/// naming one of `states` as the current state. `groups` gives, per call, its group index.
#[track_caller]
pub(crate) fn tally(resps: Vec<Resp>, groups: &[usize], states: &[&str]) -> Vec<usize> {
    let mut wins = vec![0; groups.iter().max().map_or(0, |m| m + 1)];
    for (r, g) in resps.into_iter().zip(groups) {
        if r.status.is_success() {
            wins[*g] += 1;
            continue;
        }
        let p = r.problem(409);
        assert_eq!(p["type"], "/problems/state-conflict", "{p}");
        let current = p["current_status"].as_str().unwrap_or_default().to_string();
        assert!(states.contains(&current.as_str()), "loser names {current:?}, expected one of {states:?}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(&current), "{p}");
    }
    wins
}

/// `n` copies of one call.
pub(crate) fn times(n: usize, t: &str, path: &str, body: Value) -> Vec<Call> {
    (0..n).map(|_| (t.to_string(), path.to_string(), body.clone())).collect()
}

/// Group index per call: the first `a` calls are group 0, the rest group 1.
pub(crate) fn split(a: usize, total: usize) -> Vec<usize> {
    (0..total).map(|i| usize::from(i >= a)).collect()
}

/// Audit rows of one entity.
pub(crate) async fn audits(app: &TestApp, kind: &str, id: i64) -> Vec<String> {
    app.audit_rows(kind, &id.to_string()).await.into_iter().map(|r| r.0).collect()
}

struct Setup {
    app: Arc<TestApp>,
    admin: String,
    a: i64,
    b: i64,
}

async fn two_depots(stock: i64) -> Setup {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin().await;
    let a = depot(&app, &admin, "A", MANDULATU, 113.6, 43.8).await;
    let b = depot(&app, &admin, "B", CHAGANAOBAO, 113.1, 44.2).await;
    receive(&app, &admin, a, QUILT, stock, "Q1", Some("2027-03-01"), "physical").await;
    Setup { app, admin, a, b }
}

impl Setup {
    async fn transfer(&self, qty: i64, approve: bool) -> i64 {
        let body = json!({"from_depot_id": self.a, "to_depot_id": self.b, "item_code": QUILT, "quantity": qty});
        let id =
            self.app.post(&self.admin, "/api/v1/transfers", &body).await.expect(201).json()["id"].as_i64().unwrap();
        if approve {
            self.app.post(&self.admin, &format!("/api/v1/transfers/{id}/approve"), &json!({})).await.expect(200);
        }
        id
    }

    async fn balance(&self, depot: i64) -> i64 {
        count(
            &self.app,
            &format!("SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM stock_batches WHERE depot_id = {depot}"),
        )
        .await
    }

    fn path(id: i64, step: &str) -> String {
        format!("/api/v1/transfers/{id}/{step}")
    }
}

#[tokio::test]
async fn transfer_ship_races_ship_and_cancel_with_one_winner() {
    let s = two_depots(50).await;
    // The same step N times.
    let id = s.transfer(10, true).await;
    let resps = race(&s.app, times(N, &s.admin, &Setup::path(id, "ship"), json!({}))).await;
    assert_eq!(tally(resps, &[0; N], &["shipped"]), [1]);
    assert_eq!((s.balance(s.a).await, s.balance(s.b).await), (40, 0));
    assert_eq!(count(&s.app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'transfer_out'").await, 1);
    assert_eq!(audits(&s.app, "transfer", id).await, ["ship", "approve", "create"]);
    // Conflicting steps: ship against cancel.
    let id = s.transfer(10, true).await;
    let mut calls = times(N / 2, &s.admin, &Setup::path(id, "ship"), json!({}));
    calls.extend(times(N / 2, &s.admin, &Setup::path(id, "cancel"), json!({})));
    let wins = tally(race(&s.app, calls).await, &split(N / 2, N), &["shipped", "cancelled"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    let status = s.app.get(&s.admin, &Setup::path(id, "")).await.expect(200).json()["status"].clone();
    let shipped = if wins[0] == 1 { 10 } else { 0 };
    assert_eq!(status, if wins[0] == 1 { "shipped" } else { "cancelled" });
    assert_eq!(s.balance(s.a).await, 40 - shipped);
    assert_eq!(audits(&s.app, "transfer", id).await.len(), 3);
    // Goods on the way are in no depot.
    assert_eq!(check_ledger(&s.app).await, 40 - shipped);
}

#[tokio::test]
async fn transfer_ship_and_receive_together_move_the_goods_once() {
    let s = two_depots(50).await;
    let id = s.transfer(10, true).await;
    let mut calls = times(N / 2, &s.admin, &Setup::path(id, "ship"), json!({}));
    calls.extend(times(N / 2, &s.admin, &Setup::path(id, "receive"), json!({})));
    let wins = tally(race(&s.app, calls).await, &split(N / 2, N), &["approved", "shipped", "received"]);
    assert_eq!(wins[0], 1, "exactly one ship: {wins:?}");
    assert!(wins[1] <= 1, "at most one receive: {wins:?}");
    let received = 10 * wins[1] as i64;
    assert_eq!((s.balance(s.a).await, s.balance(s.b).await), (40, received));
    assert_eq!(count(&s.app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'transfer_in'").await, wins[1] as i64);
    assert_eq!(audits(&s.app, "transfer", id).await.len(), 3 + wins[1]);
    // On a shipped transfer, receive against return: one of them, once.
    let id = s.transfer(10, true).await;
    s.app.post(&s.admin, &Setup::path(id, "ship"), &json!({})).await.expect(200);
    let mut calls = times(N / 2, &s.admin, &Setup::path(id, "receive"), json!({}));
    calls.extend(times(N / 2, &s.admin, &Setup::path(id, "return"), json!({})));
    let wins = tally(race(&s.app, calls).await, &split(N / 2, N), &["received", "returned"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    assert_eq!(s.balance(s.a).await + s.balance(s.b).await, 50);
    assert_eq!(s.balance(s.b).await, received + 10 * wins[0] as i64);
    assert_eq!(audits(&s.app, "transfer", id).await.len(), 4);
    assert_eq!(check_ledger(&s.app).await, 50 - (10 - received));
}

#[tokio::test]
async fn transfer_return_races_return_with_one_winner() {
    let s = two_depots(10).await;
    let id = s.transfer(10, true).await;
    s.app.post(&s.admin, &Setup::path(id, "ship"), &json!({})).await.expect(200);
    assert_eq!(s.balance(s.a).await, 0);
    let resps = race(&s.app, times(N, &s.admin, &Setup::path(id, "return"), json!({}))).await;
    assert_eq!(tally(resps, &[0; N], &["returned"]), [1]);
    assert_eq!((s.balance(s.a).await, s.balance(s.b).await), (10, 0));
    assert_eq!(count(&s.app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'return'").await, 1);
    assert_eq!(audits(&s.app, "transfer", id).await, ["return", "ship", "approve", "create"]);
    assert_eq!(check_ledger(&s.app).await, 10);
}

#[tokio::test]
async fn requisition_return_and_compensation_race_with_one_winner() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin().await;
    let d = depot(&app, &admin, "D1", MANDULATU, 113.6, 43.8).await;
    let body =
        json!({"depot_id": d, "owner": "某运输公司", "item_code": "3999901", "quantity": 2, "condition": "完好"});
    let id = app.post(&admin, "/api/v1/requisitions", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let path = format!("/api/v1/requisitions/{id}/return");
    let resps = race(&app, times(N, &admin, &path, json!({"condition": "完好"}))).await;
    assert_eq!(tally(resps, &[0; N], &["returned"]), [1]);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'issue'").await, 1);
    assert_eq!(check_ledger(&app).await, 0);
    assert_eq!(audits(&app, "requisition", id).await, ["return", "create"]);
    // Paying against waiving: one decision.
    let path = format!("/api/v1/requisitions/{id}/compensation");
    let mut calls: Vec<Call> = Vec::new();
    let mut groups = Vec::new();
    for i in 0..N {
        let body = if i % 2 == 0 { json!({"status": "paid", "amount": 850.5}) } else { json!({"status": "waived"}) };
        calls.push((admin.clone(), path.clone(), body));
        groups.push(i % 2);
    }
    let resps = race_with(&app, reqwest::Method::PUT, calls).await;
    let wins = tally(resps, &groups, &["paid", "waived"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    assert_eq!(audits(&app, "requisition", id).await.len(), 3);
    let fen = count(&app, &format!("SELECT COALESCE(compensation_fen, -1) FROM requisitions WHERE id = {id}")).await;
    assert_eq!(fen, if wins[0] == 1 { 85_050 } else { -1 });
}

fn drill_body() -> Value {
    json!({
        "title": "满都拉图镇草原火灾扑救实战演练", "form": "field", "scope": "comprehensive", "purpose": "test",
        "objective": "检验响应启动", "region": MANDULATU, "organiser_unit": "满都拉图镇应急办",
        "participating_units": ["满都拉图镇政府"], "place_name": "白音哈拉图嘎查北草场", "lon": 113.7, "lat": 43.9,
        "starts_at": "2026-12-05T09:00:00+08:00", "ends_at": "2026-12-05T12:00:00+08:00"
    })
}

/// A drill's reminders without the row ids that differ between drills.
async fn reminder_shape(app: &TestApp, t: &str, id: i64) -> Vec<Value> {
    let v = app.get(t, &format!("/api/v1/drills/{id}/reminders")).await.expect(200).json();
    let mut out = v.as_array().unwrap().clone();
    for r in &mut out {
        let o = r.as_object_mut().unwrap();
        o.retain(|k, _| k != "id" && k != "drill_id");
    }
    out
}

/// The effects of a drill step an observer can count: status, sequence, audit rows, reminders.
async fn drill_effects(app: &TestApp, t: &str, id: i64) -> (Value, Value, usize, Vec<Value>) {
    let d = app.get(t, &format!("/api/v1/drills/{id}")).await.expect(200).json();
    (d["status"].clone(), d["sequence"].clone(), audits(app, "drill", id).await.len(), reminder_shape(app, t, id).await)
}

#[tokio::test]
async fn drill_start_and_cancel_race_with_one_winner_and_the_effects_of_one_call() {
    let app = Arc::new(TestApp::spawn().await);
    let op = app.token("operator", MANDULATU).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.post(&op, "/api/v1/drills", &drill_body()).await.expect(201).json()["id"].as_i64().unwrap());
    }
    let path = |id: i64, step: &str| format!("/api/v1/drills/{id}/{step}");
    let cancel = json!({"reason": "大风天气"});
    // The same step N times, against one call on a twin drill.
    let resps = race(&app, times(N, &op, &path(ids[0], "start"), json!({}))).await;
    assert_eq!(tally(resps, &[0; N], &["in_progress"]), [1]);
    app.post(&op, &path(ids[2], "start"), &json!({})).await.expect(200);
    let single = drill_effects(&app, &op, ids[2]).await;
    assert_eq!(drill_effects(&app, &op, ids[0]).await, single);
    assert_eq!(single.2, 2, "create and one start");
    // Start against cancel.
    let mut calls = times(N / 2, &op, &path(ids[1], "start"), json!({}));
    calls.extend(times(N / 2, &op, &path(ids[1], "cancel"), cancel.clone()));
    let wins = tally(race(&app, calls).await, &split(N / 2, N), &["in_progress", "cancelled"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    let twin = app.post(&op, "/api/v1/drills", &drill_body()).await.expect(201).json()["id"].as_i64().unwrap();
    if wins[0] == 1 {
        app.post(&op, &path(twin, "start"), &json!({})).await.expect(200);
    } else {
        app.post(&op, &path(twin, "cancel"), &cancel).await.expect(200);
    }
    assert_eq!(drill_effects(&app, &op, ids[1]).await, drill_effects(&app, &op, twin).await);
}

#[tokio::test]
async fn plan_approve_and_reject_and_revisions_race_with_one_winner() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin().await;
    let body = crate::plans::plan_body("苏尼特左旗寒潮应急预案", "special", BANNER);
    let id = app.post(&admin, "/api/v1/plans", &body).await.expect(201).json()["id"].as_i64().unwrap();
    let path = |step: &str| format!("/api/v1/plans/{id}/{step}");
    let resps = race(&app, times(N, &admin, &path("submit"), json!({}))).await;
    assert_eq!(tally(resps, &[0; N], &["review"]), [1]);
    let approval = json!({"issued_on": "2026-11-20", "issuing_body": "苏尼特左旗人民政府办公室"});
    let mut calls = times(N / 2, &admin, &path("approve"), approval.clone());
    calls.extend(times(N / 2, &admin, &path("reject"), json!({"note": "补充物资保障"})));
    let wins = tally(race(&app, calls).await, &split(N / 2, N), &["approved", "draft"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    assert_eq!(audits(&app, "plan", id).await.len(), 3);
    if wins[1] == 1 {
        app.post(&admin, &path("submit"), &json!({})).await.expect(200);
        app.post(&admin, &path("approve"), &approval).await.expect(200);
    }
    let audited = audits(&app, "plan", id).await.len();
    let rev = json!({"reason": "drill_or_event_findings", "note": "演练发现物资不足"});
    let resps = race(&app, times(N, &admin, &path("revise"), rev)).await;
    assert_eq!(tally(resps, &[0; N], &["draft"]), [1]);
    let v = app.get(&admin, &format!("/api/v1/plans/{id}")).await.expect(200).json();
    assert_eq!((v["latest_version"].as_i64(), v["current_version"].as_i64()), (Some(2), Some(1)), "{v}");
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM plan_versions WHERE plan_id = {id}")).await, 2);
    assert_eq!(audits(&app, "plan", id).await.len(), audited + 1);
}

#[tokio::test]
async fn forces_filing_callups_members_and_compensation_race_with_one_winner() {
    use crate::forces::{approve, new_member, new_team, north};
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin().await;
    // Team filing: approve against reject.
    new_team(&app, &admin, "T1", MANDULATU, north(5.0), json!([{"specialty": "grassland_fire"}])).await;
    let mut calls = times(N / 2, &admin, "/api/v1/teams/T1/approve", json!({}));
    calls.extend(times(N / 2, &admin, "/api/v1/teams/T1/reject", json!({"reason": "资料不全"})));
    let wins = tally(race(&app, calls).await, &split(N / 2, N), &["approved", "rejected"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    assert_eq!(app.audit_rows("team", "T1").await.len(), 2);
    new_team(&app, &admin, "T2", MANDULATU, north(6.0), json!([{"specialty": "grassland_fire"}])).await;
    approve(&app, &admin, "T2").await;
    let m = new_member(&app, &admin, "T2", 1, "2027-12-31").await;
    let callup = |app: Arc<TestApp>, t: String| async move {
        let body = json!({"team_code": "T2", "purpose": "event", "reference": "草原火灾", "specialty": "grassland_fire",
            "headcount": 1, "report_at": "2026-11-27T10:00:00+08:00", "report_place": "满都拉图镇"});
        app.post(&t, "/api/v1/callups", &body).await.expect(201).json()["id"].as_i64().unwrap()
    };
    // Call-up: accept against decline.
    let c1 = callup(app.clone(), admin.clone()).await;
    let mut calls = times(N / 2, &admin, &format!("/api/v1/callups/{c1}/accept"), json!({"members": [m]}));
    calls.extend(times(N / 2, &admin, &format!("/api/v1/callups/{c1}/decline"), json!({"reason": "人员不足"})));
    let wins = tally(race(&app, calls).await, &split(N / 2, N), &["accepted", "declined", "deployed"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    let member = app.get(&admin, &format!("/api/v1/members/{m}")).await.expect(200).json();
    assert_eq!(member["status"], if wins[0] == 1 { "deployed" } else { "available" });
    assert_eq!(audits(&app, "callup", c1).await.len(), 2);
    if wins[0] == 1 {
        // Close N times: one close, the member back once.
        let resps = race(&app, times(N, &admin, &format!("/api/v1/callups/{c1}/close"), json!({}))).await;
        assert_eq!(tally(resps, &[0; N], &["closed"]), [1]);
        assert_eq!(audits(&app, "callup", c1).await.len(), 3);
    }
    // One member offered to N call-ups at once: deployed by exactly one of them.
    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(callup(app.clone(), admin.clone()).await);
    }
    let calls: Vec<Call> =
        ids.iter().map(|c| (admin.clone(), format!("/api/v1/callups/{c}/accept"), json!({"members": [m]}))).collect();
    assert_eq!(tally(race(&app, calls).await, &[0; N], &["deployed"]), [1]);
    assert_eq!(app.get(&admin, &format!("/api/v1/members/{m}")).await.expect(200).json()["status"], "deployed");
    let accepted = count(&app, "SELECT COUNT(*) FROM callups WHERE status = 'accepted'").await;
    assert_eq!(accepted, 1);
    let won = count(&app, "SELECT id FROM callups WHERE status = 'accepted'").await;
    app.post(&admin, &format!("/api/v1/callups/{won}/close"), &json!({})).await.expect(200);
    // Compensation: approve N times, then pay N times.
    let claim = json!({"labour": 100.5, "transport": 0, "supplies": 0, "equipment_wear": 0});
    app.post(&admin, &format!("/api/v1/callups/{won}/compensation"), &claim).await.expect(201);
    let resps = race(&app, times(N, &admin, &format!("/api/v1/callups/{won}/compensation/approve"), json!({}))).await;
    assert_eq!(tally(resps, &[0; N], &["approved"]), [1]);
    let resps = race(&app, times(N, &admin, &format!("/api/v1/callups/{won}/compensation/pay"), json!({}))).await;
    assert_eq!(tally(resps, &[0; N], &["paid"]), [1]);
    assert_eq!(audits(&app, "compensation", won).await.len(), 3, "claim, approve, pay");
}

#[tokio::test]
async fn drill_complete_and_corrective_action_steps_race_with_one_winner() {
    let app = Arc::new(TestApp::spawn().await);
    let op = app.token("operator", MANDULATU).await;
    let id = app.post(&op, "/api/v1/drills", &drill_body()).await.expect(201).json()["id"].as_i64().unwrap();
    let actual = json!({"participant_count": 12, "units": ["满都拉图镇政府"], "teams": [], "scenario": "草原火越境",
        "outline": "接警、集结", "timeline": []});
    let mut calls = times(N / 2, &op, &format!("/api/v1/drills/{id}/complete"), actual);
    calls.extend(times(N / 2, &op, &format!("/api/v1/drills/{id}/cancel"), json!({"reason": "大风"})));
    let wins = tally(race(&app, calls).await, &split(N / 2, N), &["completed", "cancelled"]);
    assert_eq!(wins.iter().sum::<usize>(), 1, "{wins:?}");
    assert_eq!(audits(&app, "drill", id).await.len(), 2);
    let body = json!({"action": "补足风力灭火机燃油", "owner_unit": "镇应急办", "due_on": "2026-12-20"});
    let aid =
        app.post(&op, &format!("/api/v1/drills/{id}/actions"), &body).await.expect(201).json()["id"].as_i64().unwrap();
    let resps = race_with(
        &app,
        reqwest::Method::PATCH,
        times(N, &op, &format!("/api/v1/actions/{aid}"), json!({"status": "done"})),
    )
    .await;
    assert_eq!(tally(resps, &[0; N], &["done"]), [1]);
    assert_eq!(audits(&app, "corrective_action", aid).await.len(), 2);
}

#[tokio::test]
async fn member_retirement_races_with_one_winner() {
    use crate::forces::{approve, new_member, new_team, north};
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin().await;
    new_team(&app, &admin, "T1", MANDULATU, north(5.0), json!([{"specialty": "grassland_fire"}])).await;
    approve(&app, &admin, "T1").await;
    let m = new_member(&app, &admin, "T1", 1, "2027-12-31").await;
    let path = format!("/api/v1/members/{m}");
    let resps = race_with(&app, reqwest::Method::PATCH, times(N, &admin, &path, json!({"status": "retired"}))).await;
    assert_eq!(tally(resps, &[0; N], &["retired"]), [1]);
    assert_eq!(audits(&app, "member", m).await, ["retire", "create"]);
    // An edit that names the status the member is in stays an edit.
    let m2 = new_member(&app, &admin, "T1", 2, "2027-12-31").await;
    let v =
        app.patch(&admin, &format!("/api/v1/members/{m2}"), &json!({"name": "队员二", "status": "available"})).await;
    assert_eq!(v.expect(200).json()["status"], "available");
}
