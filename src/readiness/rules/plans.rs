//! Plan rules: PLAN_MISSING, PLAN_NOT_FILED, PLAN_EVALUATION_OVERDUE, DRILL_OVERDUE.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde_json::json;

use crate::db::Db;
use crate::plans::calendar::Calendar;
use crate::plans::deadlines::{self, DeadlineInput};
use crate::plans::store::CurrentPlan;
use crate::plans::{DrillForm, PlanKind, PlanStatus};
use crate::readiness::context::Context;
use crate::readiness::{Found, Rule};
use crate::regions::Level;
use crate::vocab::Hazard;
use crate::with_db;

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: i64,
    region_code: String,
    #[sqlx(try_from = "String")]
    kind: PlanKind,
    title: String,
    hazards: String,
    /// Status of the latest version.
    latest_status: String,
    /// Status of the version in force (approved or filed), if any.
    current_status: Option<String>,
    current_version: Option<i64>,
    issued_on: Option<NaiveDate>,
    filed_on: Option<NaiveDate>,
    drill_months: Option<i64>,
    evaluation_months: Option<i64>,
    last_drilled_on: Option<NaiveDate>,
    last_evaluated_on: Option<NaiveDate>,
}

/// A required plan: region, kind, hazard (for special plans).
type Need = (String, &'static str, Option<Hazard>);

fn hazards(text: &str) -> Vec<Hazard> {
    text.split(',').filter_map(Hazard::parse).collect()
}

/// Adds the plan findings.
pub async fn check(
    db: &Db,
    ctx: &Context,
    calendar: &Calendar,
    current: &[CurrentPlan],
    out: &mut Vec<Found>,
) -> anyhow::Result<()> {
    // The drill forms that count for each plan in force.
    let forms: HashMap<i64, Vec<DrillForm>> = current.iter().map(|p| (p.plan_id, p.content.0.drill_forms())).collect();
    let rows: Vec<PlanRow> = with_db!(db, |p| {
        sqlx::query_as::<_, PlanRow>(
        "SELECT p.id, p.region_code, p.kind, l.title, l.hazards, l.status AS latest_status, c.status AS current_status,
                c.version AS current_version, c.issued_on, c.filed_on, c.drill_months, c.evaluation_months, p.last_drilled_on,
                (SELECT MAX(e.evaluated_on) FROM plan_evaluations e WHERE e.plan_id = p.id) AS last_evaluated_on
         FROM plans p
         JOIN plan_versions l ON l.plan_id = p.id AND l.version = p.latest_version
         LEFT JOIN plan_versions c ON c.plan_id = p.id AND c.version = p.current_version AND c.status IN ('approved', 'filed')"
    )
    .fetch_all(p)
    .await
    })?;
    missing(ctx, &rows, out);
    for r in &rows {
        let forms = forms.get(&r.id).cloned().unwrap_or_else(|| DrillForm::ALL.to_vec());
        deadlines_of(ctx, calendar, r, &forms, out);
    }
    Ok(())
}

/// What each region must have, against what is in force (a draft or a plan under review does not
/// count, but is named in the finding so the action is "finish it", not "write it").
fn missing(ctx: &Context, rows: &[PlanRow], out: &mut Vec<Found>) {
    let mut in_force: HashSet<Need> = HashSet::new();
    let mut pending: HashMap<Need, Vec<(i64, String)>> = HashMap::new();
    for r in rows {
        let mut keys = vec![(r.region_code.clone(), r.kind.code(), None)];
        if r.kind == PlanKind::Special {
            keys.extend(hazards(&r.hazards).into_iter().map(|h| (r.region_code.clone(), r.kind.code(), Some(h))));
        }
        for k in keys {
            if r.current_status.is_some() {
                in_force.insert(k);
            } else if !matches!(r.latest_status.as_str(), "retired" | "superseded") {
                pending.entry(k).or_default().push((r.id, r.latest_status.clone()));
            }
        }
    }
    let mut need = |region: &str, kind: PlanKind, hazard: Option<Hazard>, what: String| {
        let key = (region.to_string(), kind.code(), hazard);
        if in_force.contains(&key) {
            return;
        }
        let drafts = pending.get(&key).cloned().unwrap_or_default();
        let requirement = match hazard {
            Some(h) => format!("kind={};hazard={}", kind.code(), h.code()),
            None => format!("kind={}", kind.code()),
        };
        let action = if drafts.is_empty() {
            format!("组织编制{what}，按程序审批印发，并在印发后 20 个工作日内报备案")
        } else {
            format!(
                "已有{what}草稿或送审稿（编号 {}），请完成审核、批准印发并备案",
                drafts.iter().map(|d| d.0.to_string()).collect::<Vec<_>>().join("、")
            )
        };
        out.push(Found {
            rule: Rule::PlanMissing,
            region_code: region.to_string(),
            subject_type: "region",
            subject_id: region.to_string(),
            requirement,
            facts: json!({"kind": kind.code(), "hazard": hazard.map(Hazard::code), "drafts": drafts.iter().map(|d| json!({"plan_id": d.0, "status": d.1})).collect::<Vec<_>>()}),
            message: format!("{}：缺少有效的{what}", ctx.name(region)),
            action,
        });
    };
    let mut regions: Vec<_> = ctx.regions.values().collect();
    regions.sort_by(|a, b| a.code.cmp(&b.code));
    for r in regions {
        match r.level {
            Level::Banner => {
                need(&r.code, PlanKind::Overall, None, "总体应急预案".into());
                for h in &ctx.config.required_special_hazards {
                    need(&r.code, PlanKind::Special, Some(*h), format!("{}专项应急预案", h.label()));
                }
            }
            Level::Township => need(&r.code, PlanKind::Township, None, "乡镇（苏木）应急预案".into()),
            Level::Village => need(&r.code, PlanKind::Village, None, "嘎查/社区应急预案".into()),
        }
    }
}

fn deadlines_of(ctx: &Context, calendar: &Calendar, r: &PlanRow, forms: &[DrillForm], out: &mut Vec<Found>) {
    let Some(status) = r.current_status.as_deref().and_then(PlanStatus::parse) else { return };
    let input = DeadlineInput {
        status: Some(status),
        issued_on: r.issued_on,
        filed_on: r.filed_on,
        drill_months: r.drill_months.unwrap_or(36).max(0) as u32,
        evaluation_months: r.evaluation_months.unwrap_or(36).max(0) as u32,
        last_evaluated_on: r.last_evaluated_on,
        last_drilled_on: r.last_drilled_on,
    };
    let d = deadlines::compute(calendar, ctx.today, &input);
    let region = ctx.name(&r.region_code);
    let version = r.current_version.unwrap_or(0);
    let days = |due: NaiveDate| (ctx.today - due).num_days();
    if d.filing_overdue
        && let Some(due) = d.filing_due
    {
        let with_whom = match r.kind {
            PlanKind::Village => "所属苏木镇人民政府",
            PlanKind::Township => "旗人民政府（经旗应急管理局）",
            _ => "上一级人民政府（经应急管理部门）",
        };
        out.push(Found {
            rule: Rule::PlanNotFiled,
            region_code: r.region_code.clone(),
            subject_type: "plan",
            subject_id: r.id.to_string(),
            requirement: format!("version={version}"),
            facts: json!({"plan_id": r.id, "title": r.title, "version": version, "issued_on": r.issued_on, "filing_due": due, "days_overdue": days(due)}),
            message: format!("{region}：《{}》于 {} 印发，最迟应于 {due} 备案，至今未备案，已逾期 {} 天", r.title, r.issued_on.map(|d| d.to_string()).unwrap_or_default(), days(due)),
            action: format!("尽快报{with_whom}备案，并在系统中登记备案机关、日期和回执号"),
        });
    }
    if d.evaluation_overdue
        && let Some(due) = d.evaluation_due
    {
        out.push(Found {
            rule: Rule::PlanEvaluationOverdue,
            region_code: r.region_code.clone(),
            subject_type: "plan",
            subject_id: r.id.to_string(),
            requirement: format!("version={version}"),
            facts: json!({"plan_id": r.id, "title": r.title, "version": version, "last_evaluated_on": d.last_evaluated_on, "evaluation_due": due, "interval_months": input.evaluation_months, "days_overdue": days(due)}),
            message: format!("{region}：《{}》最迟应于 {due} 完成评估，已逾期 {} 天", r.title, days(due)),
            action: "组织预案评估，记录评估结论；需要修订的，启动修订程序".into(),
        });
    }
    if d.drill_overdue
        && let Some(due) = d.drill_due
    {
        // Only completed drills of a form the plan lists count (plans::store::record_drilled).
        let forms_label = forms.iter().map(|f| f.label()).collect::<Vec<_>>().join("或");
        out.push(Found {
            rule: Rule::DrillOverdue,
            region_code: r.region_code.clone(),
            subject_type: "plan",
            subject_id: r.id.to_string(),
            requirement: format!("version={version}"),
            facts: json!({"plan_id": r.id, "title": r.title, "last_drilled_on": r.last_drilled_on, "drill_due": due, "interval_months": input.drill_months, "days_overdue": days(due),
                          "forms_due": forms.iter().map(|f| f.code()).collect::<Vec<_>>()}),
            message: format!(
                "{region}：《{}》{}，最迟应于 {due} 进行{forms_label}，已逾期 {} 天",
                r.title,
                match r.last_drilled_on {
                    Some(l) => format!("上次演练于 {l}"),
                    None => "印发后从未演练".into(),
                },
                days(due)
            ),
            action: format!("安排一次针对本预案的{forms_label}（本预案只计这些形式的演练），完成后在系统中记录"),
        });
    }
}
