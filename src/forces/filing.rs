//! Filing (备案) decisions: `submitted` → `approved` | `rejected`; `approved` → `suspended` |
//! `revoked`; `suspended` → `approved` (reinstated) | `revoked`; `rejected` → `submitted`
//! (resubmitted after corrections). Operators submit and resubmit; admins and planners of the
//! team's region decide ([`Perm::Decide`]). Every step is audited.

use super::personal::Disclosure;
use super::teams::{self, Team};
use super::{FilingStatus, store};
use crate::audit::Actor;
use crate::auth::Perm;
use crate::db::Db;
use crate::error::ApiError;
use crate::personal::Cipher;
use crate::time::Timestamp;

/// A filing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// 批准备案.
    Approve,
    /// 不予备案 (reason required).
    Reject,
    /// 暂停 (reason required).
    Suspend,
    /// 恢复 a suspended team.
    Reinstate,
    /// 撤销备案 (reason required).
    Revoke,
    /// 重新提交 a rejected filing.
    Resubmit,
}

impl Step {
    /// The audit action and URL segment.
    pub fn action(self) -> &'static str {
        match self {
            Step::Approve => "approve",
            Step::Reject => "reject",
            Step::Suspend => "suspend",
            Step::Reinstate => "reinstate",
            Step::Revoke => "revoke",
            Step::Resubmit => "resubmit",
        }
    }

    fn from(self) -> &'static [FilingStatus] {
        use FilingStatus::*;
        match self {
            Step::Approve | Step::Reject => &[Submitted],
            Step::Suspend => &[Approved],
            Step::Reinstate => &[Suspended],
            Step::Revoke => &[Approved, Suspended],
            Step::Resubmit => &[Rejected],
        }
    }

    fn to(self) -> FilingStatus {
        match self {
            Step::Approve | Step::Reinstate => FilingStatus::Approved,
            Step::Reject => FilingStatus::Rejected,
            Step::Suspend => FilingStatus::Suspended,
            Step::Revoke => FilingStatus::Revoked,
            Step::Resubmit => FilingStatus::Submitted,
        }
    }

    /// The permission the step needs (declared on its route).
    pub fn perm(self) -> Perm {
        if self == Step::Resubmit { Perm::Write } else { Perm::Decide }
    }

    /// Whether the step needs a reason.
    pub fn needs_reason(self) -> bool {
        matches!(self, Step::Reject | Step::Suspend | Step::Revoke)
    }
}

/// Applies a filing step to the team `code` (the route's guard has checked the caller's
/// permission in the team's region), checking the current state (409 otherwise). `submitted_at`
/// is when a resubmitted filing counts as submitted (`now`, or the day on paper:
/// [`super::paper::submitted_at`]).
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    db: &Db,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    code: &str,
    step: Step,
    reason: Option<String>,
    submitted_at: Timestamp,
) -> Result<Team, ApiError> {
    if step.needs_reason() && reason.is_none() {
        return Err(ApiError::invalid("reason", "此操作须说明理由"));
    }
    let mut tx = db.begin().await?;
    let before = teams::load_tx(&mut tx, code).await?;
    if !step.from().contains(&before.filing_status) {
        let allowed: Vec<&str> = step.from().iter().map(|s| s.label()).collect();
        return Err(ApiError::StateConflict {
            detail: format!(
                "队伍 {code} 当前状态为「{}」（{}），只有「{}」状态可以{}",
                before.filing_status.label(),
                before.filing_status.as_str(),
                allowed.join("」或「"),
                step_label(step)
            ),
            current: before.filing_status.as_str().to_string(),
        });
    }
    let mut after = before.clone();
    after.filing_status = step.to();
    after.updated_at = now;
    match step {
        Step::Resubmit => {
            after.submitted_by = actor.name.clone();
            after.submitted_at = submitted_at;
            after.status_reason = None;
        }
        _ => {
            after.decided_by = Some(actor.name.clone());
            after.decided_at = Some(now);
            after.status_reason = reason;
            if after.filing_status == FilingStatus::Approved {
                after.approved_by = Some(actor.name.clone());
                after.approved_at = Some(now);
            }
        }
    }
    store::update(&mut tx, &after, before.filing_status).await?;
    let specs = store::specialties_tx(&mut tx, after.id).await?;
    let b = Team::view(&before, specs.clone(), cipher, Disclosure::MASKED);
    let a = Team::view(&after, specs, cipher, Disclosure::MASKED);
    teams::audit_team(&mut tx, actor, now, step.action(), &after, Some(&b), Some(&a)).await?;
    tx.commit().await?;
    Ok(a)
}

fn step_label(step: Step) -> &'static str {
    match step {
        Step::Approve => "批准备案",
        Step::Reject => "不予备案",
        Step::Suspend => "暂停",
        Step::Reinstate => "恢复",
        Step::Revoke => "撤销备案",
        Step::Resubmit => "重新提交",
    }
}
