//! Force rules: FORCE_SHORTFALL, INSURANCE_EXPIRING, INSURANCE_EXPIRED, CERTIFICATE_EXPIRED,
//! TEAM_FILING_PENDING.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use serde_json::json;

use crate::db::Db;
use crate::plans::store::CurrentPlan;
use crate::plans::types::level_label;
use crate::readiness::context::Context;
use crate::readiness::spatial::Grid;
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
/// enough available, insured members with the specialty.
pub async fn shortfall(db: &Db, ctx: &Context, plans: &[CurrentPlan], out: &mut Vec<Found>) -> anyhow::Result<()> {
    if plans.iter().all(|p| p.response_levels().iter().all(|l| l.forces.is_empty())) {
        return Ok(());
    }
    // One pass over the members: qualified members per approved team and specialty.
    let rows: Vec<(String, f64, f64, String, i64)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT t.code, t.lon, t.lat, ms.specialty, COUNT(*)
         FROM teams t
         JOIN members m ON m.team_id = t.id AND m.status = 'available'
         JOIN member_skills ms ON ms.member_id = m.id
         WHERE t.filing_status = 'approved'
           AND EXISTS (SELECT 1 FROM member_insurance i WHERE i.member_id = m.id AND i.start_date <= $1 AND i.end_date >= $1)
         GROUP BY t.code, t.lon, t.lat, ms.specialty"
    )
    .bind(ctx.today)
    .fetch_all(p)
    .await
    })?;
    let mut grids: HashMap<String, Grid<i64>> = HashMap::new();
    for (_, lon, lat, specialty, n) in rows {
        grids.entry(specialty).or_default().insert(lon, lat, n);
    }
    let mut cache: HashMap<(String, String, u64), i64> = HashMap::new();
    for plan in plans {
        let Some(at) = ctx.regions.get(&plan.region_code).and_then(|r| r.location) else { continue };
        for level in plan.response_levels() {
            for need in &level.forces {
                let key = (plan.region_code.clone(), need.specialty.code().to_string(), need.within_km.to_bits());
                let available = *cache.entry(key).or_insert_with(|| {
                    grids
                        .get(need.specialty.code())
                        .map(|g| g.within(at, need.within_km).into_iter().map(|(n, _)| *n).sum())
                        .unwrap_or(0)
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

/// Each active member's latest policy: expired, or ending within the warning window.
async fn insurance(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    let edge = ctx.today + Duration::days(ctx.config.expiry_warning_days);
    type Row = (i64, String, String, String, Option<NaiveDate>, Option<String>);
    let rows: Vec<Row> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT m.id, m.name, t.code, t.region_code, i.end_date, i.policy_number
         FROM members m JOIN teams t ON t.id = m.team_id
         LEFT JOIN member_insurance i ON i.member_id = m.id
           AND i.end_date = (SELECT MAX(j.end_date) FROM member_insurance j WHERE j.member_id = m.id)
         WHERE m.status <> 'retired' AND m.anonymised_at IS NULL AND t.filing_status IN ('submitted', 'approved', 'suspended')
           AND (i.end_date IS NULL OR i.end_date <= $1)"
    )
    .bind(edge)
    .fetch_all(p)
    .await
    })?;
    let mut seen = std::collections::HashSet::new();
    for (id, name, team, region, end, policy) in rows {
        if !seen.insert(id) {
            continue;
        }
        let (rule, message, action) = match end {
            None => (
                Rule::InsuranceExpired,
                format!("{}：队伍 {team} 的队员{name}没有人身意外伤害保险记录", ctx.name(&region)),
                "为该队员购买人身意外伤害保险并录入保单；未投保前不得参加危险救援任务".to_string(),
            ),
            Some(end) if end < ctx.today => (
                Rule::InsuranceExpired,
                format!("{}：队伍 {team} 的队员{name}的人身意外伤害保险已于 {end} 到期", ctx.name(&region)),
                "立即续保并录入新保单；续保前不得参加危险救援任务".to_string(),
            ),
            Some(end) => (
                Rule::InsuranceExpiring,
                format!(
                    "{}：队伍 {team} 的队员{name}的人身意外伤害保险将于 {end} 到期（{} 天后）",
                    ctx.name(&region),
                    (end - ctx.today).num_days()
                ),
                "提前办理续保，并在到期前录入新保单".to_string(),
            ),
        };
        out.push(Found {
            rule,
            region_code: region.clone(),
            subject_type: "member",
            subject_id: id.to_string(),
            requirement: format!("policy={}", policy.as_deref().unwrap_or("-")),
            facts: json!({"team": team, "member": name, "policy_number": policy, "end_date": end, "window_days": ctx.config.expiry_warning_days}),
            message,
            action,
        });
    }
    Ok(())
}

/// Certificates of active members past their expiry date.
async fn certificates(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    let rows: Vec<(i64, String, String, String, String, String, NaiveDate)> = with_db!(db, |p| sqlx::query_as(
        "SELECT m.id, m.name, t.code, t.region_code, c.kind, c.number, c.expires
         FROM member_certificates c JOIN members m ON m.id = c.member_id JOIN teams t ON t.id = m.team_id
         WHERE m.status <> 'retired' AND m.anonymised_at IS NULL AND c.expires IS NOT NULL AND c.expires < $1"
    )
    .bind(ctx.today)
    .fetch_all(p)
    .await)?;
    for (id, name, team, region, kind, number, expires) in rows {
        out.push(Found {
            rule: Rule::CertificateExpired,
            region_code: region.clone(),
            subject_type: "member",
            subject_id: id.to_string(),
            requirement: format!("certificate={kind}:{number}"),
            facts: json!({"team": team, "member": name, "kind": kind, "number": number, "expires": expires}),
            message: format!(
                "{}：队伍 {team} 的队员{name}的{kind}证书（{number}）已于 {expires} 过期",
                ctx.name(&region)
            ),
            action: "组织复训或换证，录入新证书；过期期间不安排其承担该专业任务".into(),
        });
    }
    Ok(())
}

/// Team filings waiting longer than the configured days.
async fn filings(db: &Db, ctx: &Context, out: &mut Vec<Found>) -> anyhow::Result<()> {
    let cutoff = Timestamp(ctx.now.0 - Duration::days(ctx.config.team_filing_pending_days));
    let rows: Vec<(i64, String, String, String, Timestamp)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT id, code, name, region_code, submitted_at FROM teams WHERE filing_status = 'submitted' AND submitted_at < $1"
    )
    .bind(cutoff)
    .fetch_all(p)
    .await
    })?;
    for (id, code, name, region, submitted) in rows {
        let days = (ctx.now.0 - submitted.0).num_days();
        out.push(Found {
            rule: Rule::TeamFilingPending,
            region_code: region.clone(),
            subject_type: "team",
            subject_id: id.to_string(),
            requirement: format!("submitted={}", submitted.0.timestamp()),
            facts: json!({"team": code, "name": name, "submitted_at": submitted, "days_waiting": days, "limit_days": ctx.config.team_filing_pending_days}),
            message: format!("{}：队伍「{name}」（{code}）于 {} 提交备案，已等待 {days} 天未审核", ctx.name(&region), submitted.local_display()),
            action: "由辖区规划员或管理员审核该队伍备案（批准或退回并说明理由）".into(),
        });
    }
    Ok(())
}
