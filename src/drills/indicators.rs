//! Evaluation indicator sets, separate for tabletop and field drills, following the structure of
//! GB/T 46792-2025 (drills scored against indicator sets, by form). The indicator names and
//! weights here are local defaults modelled on that structure, not the standard's text.

use schemars::JsonSchema;
use serde::Serialize;

use super::{Evaluation, Form};

/// One indicator.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Indicator {
    /// Code used in evaluations.
    pub code: &'static str,
    /// Chinese name.
    pub name: &'static str,
    /// Weight in the total (weights of a set add up to 100).
    pub weight: u32,
}

const TABLETOP: &[Indicator] = &[
    Indicator { code: "scenario", name: "情景设置的合理性与针对性", weight: 10 },
    Indicator { code: "plan_familiarity", name: "对预案的熟悉程度", weight: 15 },
    Indicator { code: "roles", name: "指挥体系与职责分工的明确性", weight: 15 },
    Indicator { code: "decision", name: "研判决策与响应启动", weight: 20 },
    Indicator { code: "information", name: "信息报告与预警发布", weight: 15 },
    Indicator { code: "resources", name: "资源调配方案", weight: 15 },
    Indicator { code: "coordination", name: "部门协同与社会力量联动", weight: 10 },
];

const FIELD: &[Indicator] = &[
    Indicator { code: "plan_fit", name: "预案的适用性与可操作性", weight: 10 },
    Indicator { code: "command", name: "指挥协调", weight: 15 },
    Indicator { code: "warning", name: "预警与信息报告", weight: 10 },
    Indicator { code: "mobilisation", name: "响应启动与队伍集结", weight: 10 },
    Indicator { code: "evacuation", name: "人员疏散与转移安置", weight: 10 },
    Indicator { code: "operations", name: "现场处置", weight: 15 },
    Indicator { code: "supplies", name: "物资与装备保障", weight: 10 },
    Indicator { code: "communications", name: "通信保障", weight: 5 },
    Indicator { code: "medical", name: "医疗救护", weight: 5 },
    Indicator { code: "safety", name: "安全防护", weight: 5 },
    Indicator { code: "recovery", name: "后期处置与恢复", weight: 5 },
];

/// The indicator set of a form.
pub fn set(form: Form) -> &'static [Indicator] {
    match form {
        Form::Tabletop => TABLETOP,
        Form::Field => FIELD,
    }
}

/// Checks that an evaluation scores exactly the form's indicators (0–100 each) and fills in the
/// weighted total and the grade. Returns the errors as (field, message).
pub fn score(form: Form, e: &mut Evaluation) -> Result<(), Vec<(String, String)>> {
    let set = set(form);
    let mut errors = Vec::new();
    for (i, s) in e.indicators.iter().enumerate() {
        if !set.iter().any(|ind| ind.code == s.code) {
            let codes: Vec<&str> = set.iter().map(|i| i.code).collect();
            errors.push((
                format!("indicators[{i}].code"),
                format!("{}的指标中没有 {:?}；可用：{}", form.label(), s.code, codes.join(", ")),
            ));
        }
        if !(0.0..=100.0).contains(&s.score) || !s.score.is_finite() {
            errors.push((format!("indicators[{i}].score"), "评分应在 0 到 100 之间".into()));
        }
        if e.indicators[..i].iter().any(|o| o.code == s.code) {
            errors.push((format!("indicators[{i}].code"), format!("指标 {} 重复", s.code)));
        }
    }
    for ind in set {
        if !e.indicators.iter().any(|s| s.code == ind.code) {
            errors.push(("indicators".into(), format!("缺少指标 {}（{}）的评分", ind.code, ind.name)));
        }
    }
    if e.conclusion.trim().is_empty() {
        errors.push(("conclusion".into(), "评估结论不能为空".into()));
    }
    if e.evaluator.trim().is_empty() {
        errors.push(("evaluator".into(), "评估人不能为空".into()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let total: f64 = set
        .iter()
        .map(|ind| {
            e.indicators.iter().find(|s| s.code == ind.code).map(|s| s.score).unwrap_or(0.0) * ind.weight as f64 / 100.0
        })
        .sum();
    e.total = (total * 10.0).round() / 10.0;
    e.grade = match e.total {
        t if t >= 90.0 => "优秀",
        t if t >= 75.0 => "良好",
        t if t >= 60.0 => "合格",
        _ => "不合格",
    }
    .to_string();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_add_up() {
        for form in [Form::Tabletop, Form::Field] {
            assert_eq!(set(form).iter().map(|i| i.weight).sum::<u32>(), 100);
        }
    }
}
