//! Filing, evaluation and drill deadlines of the version in force, and whether they are overdue.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Serialize;

use super::PlanStatus;
use super::calendar::{Calendar, add_months};

/// Working days allowed between issue and filing (2024 办法 art. 26).
pub const FILING_WORKING_DAYS: u32 = 20;

/// What the deadlines are computed from: the version in force and the plan's history.
#[derive(Debug, Clone)]
pub struct DeadlineInput {
    /// Status of the version in force (approved or filed), None when no version is in force.
    pub status: Option<PlanStatus>,
    /// Its issue date.
    pub issued_on: Option<NaiveDate>,
    /// Its filing date.
    pub filed_on: Option<NaiveDate>,
    /// Its drill interval, months.
    pub drill_months: u32,
    /// Its evaluation interval, months.
    pub evaluation_months: u32,
    /// Date of the latest evaluation of the plan.
    pub last_evaluated_on: Option<NaiveDate>,
    /// Date the plan was last drilled.
    pub last_drilled_on: Option<NaiveDate>,
}

/// A plan's deadlines as of `today` (Asia/Shanghai date from the injected clock). All are None
/// while no version is in force.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Deadlines {
    /// The date the deadlines are judged against.
    pub today: NaiveDate,
    /// Filing due: 20 working days after issue (working-day calendar).
    pub filing_due: Option<NaiveDate>,
    /// Approved, not yet filed, and past the due date.
    pub filing_overdue: bool,
    /// Filed after the due date (None until filed).
    pub filed_late: Option<bool>,
    /// Latest evaluation on or after the issue of the version in force.
    pub last_evaluated_on: Option<NaiveDate>,
    /// Evaluation due: last evaluation (or issue date) + evaluation interval.
    pub evaluation_due: Option<NaiveDate>,
    /// Past the evaluation due date.
    pub evaluation_overdue: bool,
    /// Last drill of the plan.
    pub last_drilled_on: Option<NaiveDate>,
    /// Drill due: last drill (or issue date) + drill interval.
    pub drill_due: Option<NaiveDate>,
    /// Past the drill due date.
    pub drill_overdue: bool,
    /// Any of the above overdue.
    pub overdue: bool,
}

/// Computes the deadlines.
pub fn compute(cal: &Calendar, today: NaiveDate, i: &DeadlineInput) -> Deadlines {
    let mut d = Deadlines {
        today,
        filing_due: None,
        filing_overdue: false,
        filed_late: None,
        last_evaluated_on: None,
        evaluation_due: None,
        evaluation_overdue: false,
        last_drilled_on: i.last_drilled_on,
        drill_due: None,
        drill_overdue: false,
        overdue: false,
    };
    let (Some(status), Some(issued)) = (i.status, i.issued_on) else { return d };
    let filing_due = cal.add_working_days(issued, FILING_WORKING_DAYS);
    d.filing_due = Some(filing_due);
    match (status, i.filed_on) {
        (PlanStatus::Filed, Some(filed)) => d.filed_late = Some(filed > filing_due),
        _ => d.filing_overdue = today > filing_due,
    }
    // An evaluation of an earlier version does not restart the clock of a newly issued one.
    d.last_evaluated_on = i.last_evaluated_on.filter(|e| *e >= issued);
    let eval_from = d.last_evaluated_on.unwrap_or(issued);
    let evaluation_due = add_months(eval_from, i.evaluation_months);
    d.evaluation_due = Some(evaluation_due);
    d.evaluation_overdue = today > evaluation_due;
    let drill_from = i.last_drilled_on.map_or(issued, |l| l.max(issued));
    let drill_due = add_months(drill_from, i.drill_months);
    d.drill_due = Some(drill_due);
    d.drill_overdue = today > drill_due;
    d.overdue = d.filing_overdue || d.evaluation_overdue || d.drill_overdue;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn input(status: PlanStatus, filed_on: Option<NaiveDate>) -> DeadlineInput {
        DeadlineInput {
            status: Some(status),
            issued_on: Some(d(2026, 9, 24)),
            filed_on,
            drill_months: 24,
            evaluation_months: 36,
            last_evaluated_on: None,
            last_drilled_on: None,
        }
    }

    #[test]
    fn filing_is_overdue_only_after_the_twentieth_working_day() {
        let cal = Calendar::shipped().unwrap();
        let on_due = compute(&cal, d(2026, 10, 29), &input(PlanStatus::Approved, None));
        assert_eq!(on_due.filing_due, Some(d(2026, 10, 29)));
        assert!(!on_due.filing_overdue && !on_due.overdue);
        let after = compute(&cal, d(2026, 10, 30), &input(PlanStatus::Approved, None));
        assert!(after.filing_overdue && after.overdue);
        let filed = compute(&cal, d(2027, 1, 1), &input(PlanStatus::Filed, Some(d(2026, 10, 30))));
        assert_eq!((filed.filing_overdue, filed.filed_late), (false, Some(true)));
        assert_eq!(filed.evaluation_due, Some(d(2029, 9, 24)));
        assert_eq!(filed.drill_due, Some(d(2028, 9, 24)));
    }

    #[test]
    fn nothing_is_due_before_issue() {
        let cal = Calendar::default();
        let i = DeadlineInput { status: None, issued_on: None, ..input(PlanStatus::Draft, None) };
        let r = compute(&cal, d(2026, 1, 1), &i);
        assert_eq!((r.filing_due, r.overdue), (None, false));
    }
}
