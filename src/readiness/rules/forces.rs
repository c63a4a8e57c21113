//! Force rules: FORCE_SHORTFALL, INSURANCE_EXPIRING, INSURANCE_EXPIRED, CERTIFICATE_EXPIRED,
//! TEAM_FILING_PENDING.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use serde_json::json;

use crate::db::Db;
use crate::plans::store::CurrentPlan;
use crate::plans::types::level_label;
use crate::readiness::context::Context;
use crate::readiness::spatial::{Grid, reach};
use crate::readiness::{Found, Rule};
use crate::time::Timestamp;
use crate::with_db;

/// Adds the member and team findings.
pub async fn check(db: &Db, ctx: &Context, plans: &[CurrentPlan], out: &mut Vec<Found>) -> anyhow::Result<()> {
    shortfall(db, ctx, plans, out).await?;
    insurance(db, ctx, out).await?;
    certificates(db, ctx, out).await?;
    filings(db, ctx, out).await?;
    Ok(())
}

/// For every response level of every plan in force: approved teams within the distance must have
/// enough available, insured people with the specialty (distinct people, not member rows).
pub async fn shortfall(db: &Db, ctx: &Context, plans: &[CurrentPlan], out: &mut Vec<Found>) -> anyhow::Result<()> {
    // One pass over the members of the teams within reach of some requirement (for a warning's
    // check, a box around its regions, not the province): the qualified people of each approved
    // team per specialty. A person is known by the ID-number blind index, so one person in two
    // teams counts once.
    let circles =
        plans.iter().filter_map(|p| Some((p, ctx.regions.get(&p.region_code)?.location?))).flat_map(|(p, at)| {
            p.response_levels().iter().flat_map(move |l| l.forces.iter().map(move |n| (at, n.within_km)))
        });
    let Some(bb) = reach(circles) else { return Ok(()) };
    let rows: Vec<(i64, f64, f64, String, String)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT t.id, t.lon, t.lat, ms.specialty, COALESCE(m.id_index, CAST(m.id AS TEXT))
         FROM teams t
         JOIN members m ON m.team_id = t.id AND m.status = 'available'
         JOIN member_skills ms ON ms.member_id = m.id
         WHERE t.filing_status = 'approved' AND t.lat >= $2 AND t.lat <= $3 AND t.lon >= $4 AND t.lon <= $5
           AND EXISTS (SELECT 1 FROM member_insurance i WHERE i.member_id = m.id AND i.start_date <= $1 AND i.end_date >= $1)
         ORDER BY t.id, ms.specialty"
    )
    .bind(ctx.today)
    .bind(bb.lat_min)
    .bind(bb.lat_max)
    .bind(bb.lon_min)
    .bind(bb.lon_max)
    .fetch_all(p)
    .await
    })?;
    let mut person_ids: HashMap<String, u32> = HashMap::new();
    // ((team, specialty), base, people)
    type TeamPeople = ((i64, String), (f64, f64), Vec<u32>);
    let mut by_team: Vec<TeamPeople> = Vec::new();
    for (team, lon, lat, specialty, person) in rows {
        let next = person_ids.len() as u32;
        let pid = *person_ids.entry(person).or_insert(next);
        match by_team.last_mut() {
            Some((key, _, people)) if key.0 == team && key.1 == specialty => people.push(pid),
            _ => by_team.push(((team, specialty), (lon, lat), vec![pid])),
        }
    }
    let mut grids: HashMap<String, Grid<Vec<u32>>> = HashMap::new();
    for ((_, specialty), (lon, lat), people) in by_team {
        grids.entry(specialty).or_default().insert(lon, lat, people);
    }
    let mut cache: HashMap<(String, String, u64), i64> = HashMap::new();
    // Distinct people within reach, counted with a stamp per person (the requirement's number)
    // rather than a set built per requirement: a province has tens of thousands of requirements,
    // each reaching thousands of people.
    let mut counted = Distinct::new(person_ids.len());
    for plan in plans {
        let Some(at) = ctx.regions.get(&plan.region_code).and_then(|r| r.location) else { continue };
        for level in plan.response_levels() {
            for need in &level.forces {
                let key = (plan.region_code.clone(), need.specialty.code().to_string(), need.within_km.to_bits());
                let available = *cache.entry(key).or_insert_with(|| {
                    let Some(g) = grids.get(need.specialty.code()) else { return 0 };
                    counted.count(g.within(at, need.within_km).into_iter().flat_map(|(p, _)| p.iter().copied()))
                });
                let required = need.headcount as i64;
                if available >= required {
                    continue;
                }
                let title = &plan.content.0.title;
                out.push(Found {
                    rule: Rule::ForceShortfall,
                    region_code: plan.region_code.clone(),
                    subject_type: "plan",
                    subject_id: plan.plan_id.to_string(),
                    requirement: format!("level={};specialty={};km={}", level.level, need.specialty.code(), need.within_km),
                    facts: json!({
                        "plan_id": plan.plan_id, "plan": title, "level": level.level, "specialty": need.specialty.code(),
                        "required": required, "available": available, "shortfall": required - available, "distance_km": need.within_km,
                    }),
                    message: format!(
                        "{}：《{title}》{}响应需要 {} km 内{}人员 {required} 人；可调用且已投保的 {available} 人；缺口 {} 人",
                        ctx.name(&plan.region_code),
                        level_label(level.level),
                        need.within_km,
                        need.specialty.label(),
                        required - available
                    ),
                    action: format!(
                        "动员附近已备案队伍补充{}队员并办理保险，或与周边苏木镇签订力量支援协议；必要时调整预案要求",
                        need.specialty.label()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Counts distinct people (dense ids below a known bound) again and again without allocating:
/// a person counts in the current round when their stamp is not yet the round's number.
struct Distinct {
    stamps: Vec<u32>,
    round: u32,
}

impl Distinct {
    fn new(people: usize) -> Distinct {
        Distinct { stamps: vec![0; people], round: 0 }
    }

    /// How many distinct people `ids` names.
    fn count(&mut self, ids: impl Iterator<Item = u32>) -> i64 {
        self.round += 1;
        let mut n = 0;
        for id in ids {
            let stamp = &mut self.stamps[id as usize];
            if *stamp != self.round {
                *stamp = self.round;
                n += 1;
            }
        }
        n
    }
}

/// Members the member rules look at: not retired, not erased, of a team that is filed or being
/// filed (members of rejected and revoked teams are skipped alike).
const ACTIVE_MEMBERS: &str = "m.status <> 'retired' AND m.anonymised_at IS NULL
    AND t.filing_status IN ('submitted', 'approved', 'suspended')";

/// A policy as the coverage rule sees it: (policy number, first day, last day).
type Policy = (String, NaiveDate, NaiveDate);

/// Coverage of one member on `today`.
#[derive(Debug, PartialEq)]
enum Coverage {
    /// No policy covers today: the last policy that ended (if any) and the next that starts
    /// (if any).
    Gap { ended: Option<(String, NaiveDate)>, next: Option<(String, NaiveDate)> },
    /// Covered without a gap until `until` (following renewals that start by the day after the
    /// previous one ends); `policy` is the one that ends then.
    Covered { until: NaiveDate, policy: String },
}

/// Judges a member's policies on `today`.
fn coverage(today: NaiveDate, policies: &[Policy]) -> Coverage {
    let covering = policies.iter().filter(|p| p.1 <= today && today <= p.2).max_by_key(|p| p.2);
    let Some(first) = covering else {
        let ended = policies.iter().filter(|p| p.2 < today).max_by_key(|p| p.2).map(|p| (p.0.clone(), p.2));
        let next = policies.iter().filter(|p| p.1 > today).min_by_key(|p| p.1).map(|p| (p.0.clone(), p.1));
        return Coverage::Gap { ended, next };
    };
    let (mut until, mut policy) = (first.2, first.0.clone());
    // Follow renewals: a policy starting no later than the day after coverage ends extends it.
    loop {
        let next = policies.iter().filter(|p| p.1 <= until + Duration::days(1) && p.2 > until).max_by_key(|p| p.2);
        match next {
            Some(p) => (until, policy) = (p.2, p.0.clone()),
            None => return Coverage::Covered { until, policy },
        }
    }
}

/// Insurance of each active member: INSURANCE_EXPIRED when no policy covers today (naming the
/// gap and the renewal's start when one is on file), INSURANCE_EXPIRING when coverage (followed
/// through renewals without a gap) ends within the warning window.
async fn insurance(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    let edge = ctx.today + Duration::days(ctx.config.expiry_warning_days);
    type Row = (i64, String, String, String, String, Option<String>, Option<NaiveDate>, Option<NaiveDate>);
    // A member with one policy covering today and ending after the window is covered past it
    // whatever else is on file (the coverage only grows through renewals): left out in the
    // query, so only the few near or past a gap are read, not every member of the province.
    let sql = format!(
        "SELECT m.id, m.name, t.code, t.name, t.region_code, i.policy_number, i.start_date, i.end_date
         FROM members m JOIN teams t ON t.id = m.team_id
         LEFT JOIN member_insurance i ON i.member_id = m.id
         WHERE {ACTIVE_MEMBERS}
           AND NOT EXISTS (SELECT 1 FROM member_insurance c WHERE c.member_id = m.id AND c.start_date <= $1 AND c.end_date > $2)
         ORDER BY m.id"
    );
    let rows: Vec<Row> = with_db!(db, |p| sqlx::query_as(&sql).bind(ctx.today).bind(edge).fetch_all(p).await)?;
    let mut i = 0;
    while i < rows.len() {
        let (id, name, team, team_name, region) =
            (rows[i].0, rows[i].1.clone(), rows[i].2.clone(), rows[i].3.clone(), rows[i].4.clone());
        let mut policies: Vec<Policy> = Vec::new();
        while i < rows.len() && rows[i].0 == id {
            if let (Some(n), Some(s), Some(e)) = (&rows[i].5, rows[i].6, rows[i].7) {
                policies.push((n.clone(), s, e));
            }
            i += 1;
        }
        let who = format!("{}：队伍「{team_name}」（{team}）的队员{name}", ctx.name(&region));
        let (rule, requirement, facts, message, action) = match coverage(ctx.today, &policies) {
            Coverage::Covered { until, .. } if until > edge => continue,
            Coverage::Covered { until, policy } => {
                let days = (until - ctx.today).num_days();
                let when = if days == 0 { "今天".to_string() } else { format!("{days} 天后") };
                (
                    Rule::InsuranceExpiring,
                    format!("policy={policy}"),
                    json!({"team": team, "team_name": team_name, "member": name, "policy_number": policy, "end_date": until, "days_left": days, "window_days": ctx.config.expiry_warning_days}),
                    format!("{who}的人身意外伤害保险保障至 {until}（{when}），其后没有接续的保单"),
                    "提前办理续保，并在到期前录入新保单（起期不晚于到期次日）".to_string(),
                )
            }
            Coverage::Gap { ended, next } => {
                let ended_text = match &ended {
                    Some((p, e)) => format!("保单 {p} 已于 {e} 到期"),
                    None => "没有生效的人身意外伤害保险".to_string(),
                };
                let (next_text, action) = match &next {
                    Some((p, s)) => (
                        format!("，续保保单 {p} 自 {s} 起生效，{} 至 {} 无保障", ctx.today, *s - Duration::days(1)),
                        format!("在 {s} 前不得安排其参加危险救援任务；如可能将续保起期提前"),
                    ),
                    None => (
                        if ended.is_some() { "，没有续保".to_string() } else { String::new() },
                        "立即为该队员购买人身意外伤害保险并录入保单；未投保前不得参加危险救援任务".to_string(),
                    ),
                };
                (
                    Rule::InsuranceExpired,
                    format!("policy={}", ended.as_ref().map(|e| e.0.as_str()).unwrap_or("-")),
                    json!({"team": team, "team_name": team_name, "member": name,
                           "policy_number": ended.as_ref().map(|e| &e.0), "end_date": ended.as_ref().map(|e| e.1),
                           "next_policy_number": next.as_ref().map(|n| &n.0), "next_start": next.as_ref().map(|n| n.1),
                           "gap_from": ended.as_ref().map(|e| e.1 + Duration::days(1)),
                           "gap_until": next.as_ref().map(|n| n.1 - Duration::days(1))}),
                    if ended.is_none() && next.is_none() {
                        format!("{who}没有人身意外伤害保险记录")
                    } else {
                        format!("{who}今天没有保险保障：{ended_text}{next_text}")
                    },
                    action,
                )
            }
        };
        out.push(Found {
            rule,
            region_code: region,
            subject_type: "member",
            subject_id: id.to_string(),
            requirement,
            facts,
            message,
            action,
        });
    }
    Ok(())
}

/// Certificates of active members, by kind: CERTIFICATE_EXPIRED when a certificate of a kind has
/// expired and no certificate of that kind is valid today (a renewal, kept beside the old one,
/// silences it). Revoked certificates are not valid and are not reported as expired.
async fn certificates(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    type Row = (i64, String, String, String, String, String, String, NaiveDate, Option<NaiveDate>, String);
    let sql = format!(
        "SELECT m.id, m.name, t.code, t.name, t.region_code, c.kind, c.number, c.issued, c.expires, c.status
         FROM member_certificates c JOIN members m ON m.id = c.member_id JOIN teams t ON t.id = m.team_id
         WHERE {ACTIVE_MEMBERS} AND c.status <> 'revoked'
           AND EXISTS (SELECT 1 FROM member_certificates x WHERE x.member_id = m.id AND x.kind = c.kind
                       AND x.status <> 'revoked' AND x.expires IS NOT NULL AND x.expires < $1)
         ORDER BY m.id, c.kind, c.expires"
    );
    let rows: Vec<Row> = with_db!(db, |p| sqlx::query_as(&sql).bind(ctx.today).fetch_all(p).await)?;
    // (member, kind) → the latest expired certificate, unless one of the kind is valid today.
    let mut groups: Vec<(Row, bool)> = Vec::new();
    for r in rows {
        let valid = r.7 <= ctx.today && r.8.is_none_or(|e| ctx.today <= e);
        match groups.last_mut() {
            Some((g, any_valid)) if g.0 == r.0 && g.5 == r.5 => {
                *any_valid |= valid;
                if r.8.is_some_and(|e| e < ctx.today) && r.8 > g.8 {
                    *g = r;
                }
            }
            _ => groups.push((r, valid)),
        }
    }
    for ((id, name, team, team_name, region, kind, number, _, expires, _), any_valid) in groups {
        if any_valid {
            continue;
        }
        let Some(expires) = expires.filter(|e| *e < ctx.today) else { continue };
        let label =
            if kind.ends_with('证') || kind.ends_with("证书") { kind.clone() } else { format!("{kind}证书") };
        out.push(Found {
            rule: Rule::CertificateExpired,
            region_code: region.clone(),
            subject_type: "member",
            subject_id: id.to_string(),
            requirement: format!("certificate_kind={kind}"),
            facts: json!({"team": team, "team_name": team_name, "member": name, "kind": kind, "number": number, "expires": expires}),
            message: format!(
                "{}：队伍「{team_name}」（{team}）的队员{name}的{label}（{number}）已于 {expires} 过期，没有同类有效证书",
                ctx.name(&region)
            ),
            action: "组织复训或换证，并在系统中登记换证（原证书保留在历史中）；过期期间不安排其承担该专业任务".into(),
        });
    }
    Ok(())
}

/// Team filings waiting longer than the configured days.
async fn filings(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    let cutoff = Timestamp(ctx.now.0 - Duration::days(ctx.config.team_filing_pending_days));
    let rows: Vec<(String, String, String, Timestamp)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT code, name, region_code, submitted_at FROM teams WHERE filing_status = 'submitted' AND submitted_at < $1"
    )
    .bind(cutoff)
    .fetch_all(p)
    .await
    })?;
    for (code, name, region, submitted) in rows {
        // Whole days waited: a filing dated on paper (its day's midnight) that has waited 15 days
        // and some hours has waited 15 days, not more.
        let days = (ctx.now.0 - submitted.0).num_days();
        if days <= ctx.config.team_filing_pending_days {
            continue;
        }
        out.push(Found {
            rule: Rule::TeamFilingPending,
            region_code: region.clone(),
            subject_type: "team",
            // Teams are known by code (the teams API never shows the row id).
            subject_id: code.clone(),
            requirement: format!("submitted={}", submitted.0.timestamp()),
            facts: json!({"team": code, "team_name": name, "name": name, "submitted_at": submitted, "days_waiting": days, "limit_days": ctx.config.team_filing_pending_days}),
            message: format!("{}：队伍「{name}」（{code}）于 {} 提交备案，已等待 {days} 天未审核", ctx.name(&region), submitted.local_display()),
            action: "由辖区规划员或管理员审核该队伍备案（批准或退回并说明理由）".into(),
        });
    }
    Ok(())
}
