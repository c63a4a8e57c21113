//! Readiness checks: every region measured against its plans, stock, forces and drills, with
//! findings that name the gap, the rule, the numbers and what to do. Findings have an identity,
//! so a gap found day after day is one finding with a first and last sighting, resolved when a
//! run no longer finds it.

pub mod context;
pub mod digest;
pub mod engine;
pub mod report;
pub mod routes;
pub mod rules;
pub mod spatial;
pub mod store;
pub mod targeted;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vocab::Hazard;

macro_rules! rules {
    ($($v:ident = $id:literal, $sev:ident, $zh:literal, $basis:literal;)+) => {
        /// A readiness rule. The ids are fixed: pages, reports and other tools rely on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum Rule {
            $(#[doc = $zh] #[serde(rename = $id)] $v,)+
        }

        impl Rule {
            /// Every rule.
            pub const ALL: &'static [Rule] = &[$(Rule::$v,)+];

            /// The fixed id, e.g. `SUPPLY_SHORTFALL`.
            pub fn id(self) -> &'static str { match self { $(Rule::$v => $id,)+ } }

            /// Default severity.
            pub fn default_severity(self) -> Severity { match self { $(Rule::$v => Severity::$sev,)+ } }

            /// Chinese name.
            pub fn label(self) -> &'static str { match self { $(Rule::$v => $zh,)+ } }

            /// Legal or normative basis (short citation).
            pub fn basis(self) -> &'static str { match self { $(Rule::$v => $basis,)+ } }

            /// Parses a rule id.
            pub fn parse(s: &str) -> Option<Rule> { Rule::ALL.iter().copied().find(|r| r.id() == s) }
        }
    };
}

rules! {
    PlanMissing = "PLAN_MISSING", Critical, "缺少应急预案", "《突发事件应对法》（2024 年修订）：应急预案体系包括总体、专项、部门预案和单位及基层组织（乡镇、村/社区）预案";
    PlanNotFiled = "PLAN_NOT_FILED", Warning, "预案未按期备案", "《突发事件应急预案管理办法》（2024）第二十六条：应急预案印发后 20 个工作日内备案；乡镇预案报上级人民政府（经应急管理部门）备案，村（社区）预案报乡镇备案";
    PlanEvaluationOverdue = "PLAN_EVALUATION_OVERDUE", Warning, "预案评估逾期", "《突发事件应急预案管理办法》（2024）：应急预案应定期评估，县级预案原则上每 3 年评估一次（二手资料）";
    DrillOverdue = "DRILL_OVERDUE", Warning, "预案演练逾期", "《突发事件应急预案管理办法》（2024）：专项和部门预案至少每 3 年演练一次；乡镇每 2 年至少演练一次生产安全事故应急救援预案";
    DrillActionsOverdue = "DRILL_ACTIONS_OVERDUE", Warning, "演练整改措施逾期", "演练评估发现的问题应整改并用于修订预案、培训和补充物资（《突发事件应急预案管理办法》（2024）演练评估与总结要求）";
    SupplyShortfall = "SUPPLY_SHORTFALL", Critical, "应急物资缺口", "《突发事件应对法》（2024 年修订）：易发生自然灾害地区的县级人民政府应储备应急救援物资、生活必需品和应急处置装备；储备量以预案各响应级别的需求为准";
    SupplyBelowMinimum = "SUPPLY_BELOW_MINIMUM", Warning, "储备低于下限", "储备点最低储备量（本储备点的储备定额）";
    SupplyExpiring = "SUPPLY_EXPIRING", Info, "物资即将过期", "应急物资储备管理：临期物资应及时轮换";
    SupplyExpired = "SUPPLY_EXPIRED", Warning, "物资已过期未核销", "应急物资储备管理：过期物资应及时报废核销并补充";
    ForceShortfall = "FORCE_SHORTFALL", Critical, "应急力量缺口", "预案各响应级别规定的应急力量需求；社会应急力量被调用时须服从统一指挥（《突发事件应对法》（2024 年修订））";
    InsuranceExpiring = "INSURANCE_EXPIRING", Warning, "队员保险即将到期", "《突发事件应对法》（2024 年修订）第四十条：组建应急救援队伍的单位应当为队员购买人身意外伤害保险";
    InsuranceExpired = "INSURANCE_EXPIRED", Critical, "队员保险已过期", "《突发事件应对法》（2024 年修订）第四十条：组建应急救援队伍的单位应当为队员购买人身意外伤害保险";
    CertificateExpired = "CERTIFICATE_EXPIRED", Warning, "队员证书已过期", "社会应急力量队员应持有效的专业资格证书参加相应救援";
    TeamFilingPending = "TEAM_FILING_PENDING", Info, "队伍备案待审核", "社会应急力量备案应及时审核（本地规定的审核时限）";
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 严重: act now.
    Critical,
    /// 警告: act soon.
    Warning,
    /// 提示.
    Info,
}

impl Severity {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "严重",
            Severity::Warning => "警告",
            Severity::Info => "提示",
        }
    }

    /// Points a finding of this severity takes off a region's score.
    pub fn weight(self) -> i64 {
        match self {
            Severity::Critical => 15,
            Severity::Warning => 5,
            Severity::Info => 1,
        }
    }
}

impl TryFrom<String> for Severity {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "critical" => Ok(Severity::Critical),
            "warning" => Ok(Severity::Warning),
            "info" => Ok(Severity::Info),
            _ => Err(format!("unknown severity {s:?}")),
        }
    }
}

/// A finding as a rule produces it, before it is matched against stored findings.
#[derive(Debug, Clone)]
pub struct Found {
    /// Rule.
    pub rule: Rule,
    /// Region the finding belongs to.
    pub region_code: String,
    /// Subject type: `plan`, `depot`, `batch`, `team`, `member`, `corrective_action`, `region`.
    pub subject_type: &'static str,
    /// Subject id.
    pub subject_id: String,
    /// What requirement it is about (e.g. `level=2;item=2010101;km=50`), part of the identity.
    pub requirement: String,
    /// The numbers behind it.
    pub facts: Value,
    /// The finding in one Chinese sentence.
    pub message: String,
    /// What to do (Chinese).
    pub action: String,
}

impl Found {
    /// The identity: rule + region + subject + requirement.
    pub fn identity(&self) -> String {
        format!(
            "{}|{}|{}:{}|{}",
            self.rule.id(),
            self.region_code,
            self.subject_type,
            self.subject_id,
            self.requirement
        )
    }

    /// A digest of what a run stores of this finding besides its identity (severity, facts,
    /// message, action): two runs that find the same gap with the same numbers give the same
    /// digest, so a run compares the stored digest instead of reading the facts back.
    pub fn digest(&self, severity: Severity) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [
            severity.as_str().as_bytes(),
            &serde_json::to_vec(&self.facts).unwrap_or_default(),
            self.message.as_bytes(),
            self.action.as_bytes(),
        ] {
            // Each part with its length first: no two different findings run together alike.
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        crate::personal::hex(&h.finalize()[..16])
    }
}

/// Readiness configuration (editable by banner admins).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hazards the banner must have a special plan for.
    pub required_special_hazards: Vec<Hazard>,
    /// Days before expiry that batches, insurance and certificates are warned about.
    #[schemars(range(min = 1, max = 365))]
    pub expiry_warning_days: i64,
    /// Days a team filing may wait for a decision.
    #[schemars(range(min = 1, max = 365))]
    pub team_filing_pending_days: i64,
    /// Severity per rule id, where it should differ from the default.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"$ref": "#/components/schemas/Rule"}))]
    pub severity_overrides: BTreeMap<String, Severity>,
    /// Most newly opened critical findings a region is sent individually per run (the most
    /// urgent first); everything else it opened goes into the region's one digest. 0: digests
    /// only.
    #[serde(default = "default_max_individual_critical")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_individual_critical: i64,
}

fn default_max_individual_critical() -> i64 {
    3
}

impl Default for Config {
    fn default() -> Self {
        Config {
            required_special_hazards: vec![
                Hazard::SnowDisaster,
                Hazard::GrasslandFire,
                Hazard::Sandstorm,
                Hazard::Drought,
                Hazard::Earthquake,
                Hazard::AnimalEpidemic,
                Hazard::MineAccident,
            ],
            expiry_warning_days: 30,
            team_filing_pending_days: 15,
            severity_overrides: BTreeMap::new(),
            max_individual_critical: default_max_individual_critical(),
        }
    }
}

impl Config {
    /// The severity of a rule under this configuration.
    pub fn severity(&self, rule: Rule) -> Severity {
        self.severity_overrides.get(rule.id()).copied().unwrap_or(rule.default_severity())
    }
}

/// A region's score from its open findings (its own and those below it):
/// 100 − 15 × critical − 5 × warning − 1 × info, never below 0.
pub fn score(critical: i64, warning: i64, info: i64) -> i64 {
    (100 - Severity::Critical.weight() * critical
        - Severity::Warning.weight() * warning
        - Severity::Info.weight() * info)
        .max(0)
}
