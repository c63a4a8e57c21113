//! Plan vocabularies (kind, status, revision reason, drill form) and the plan content that both
//! the API and the `plans/` files carry.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::regions::RegionCode;
use crate::time::Timestamp;
use crate::vocab::{Hazard, ItemCode, Specialty};

crate::vocabulary! {
    /// Kind of plan (预案类别) in the plan system.
    PlanKind {
        Overall = "overall", "总体应急预案";
        Special = "special", "专项应急预案";
        Department = "department", "部门应急预案";
        Township = "township", "乡镇(苏木)应急预案";
        Village = "village", "村(嘎查)/社区应急预案";
        Unit = "unit", "单位应急预案";
        Catastrophe = "catastrophe", "巨灾应急预案";
        Joint = "joint", "联合应急预案";
    }
}

crate::vocabulary! {
    /// Lifecycle state of one plan version.
    PlanStatus {
        Draft = "draft", "草稿";
        Review = "review", "审核中";
        Approved = "approved", "已印发";
        Filed = "filed", "已备案";
        Superseded = "superseded", "已被新版本替代";
        Retired = "retired", "已废止";
    }
}

crate::vocabulary! {
    /// Why a plan is revised (the legal triggers for revision, plus `other`).
    RevisionReason {
        LawsChanged = "laws_changed", "有关法律、法规、规章、标准、上位预案中的有关规定发生重大变化";
        CommandChanged = "command_changed", "应急指挥机构及其职责发生重大调整";
        RisksChanged = "risks_changed", "面临的风险发生重大变化";
        ResourcesChanged = "resources_changed", "重要应急资源发生重大变化";
        DrillOrEventFindings = "drill_or_event_findings", "在突发事件实际应对和应急演练中发现问题需要作出重大调整";
        Other = "other", "其他原因";
    }
}

crate::vocabulary! {
    /// Drill form (演练形式).
    DrillForm {
        Tabletop = "tabletop", "桌面推演";
        Field = "field", "实战演练";
    }
}

impl PlanKind {
    /// Default drill interval in months. Law: special and department plans at least every 3
    /// years; every township drills its production-safety plan at least every 2 years; mines
    /// and hazardous-material units every half year (DOMAIN.md, "Drills"). The values for
    /// overall, village, unit, catastrophe and joint plans are **local policy** of this service
    /// (see plans/README.md) and can be overridden per plan.
    pub fn default_drill_months(self) -> u32 {
        match self {
            PlanKind::Special | PlanKind::Department => 36,
            PlanKind::Township => 24,
            PlanKind::Overall | PlanKind::Catastrophe | PlanKind::Joint => 36,
            PlanKind::Village => 24,
            PlanKind::Unit => 12,
        }
    }

    /// Default evaluation interval in months: county-level plans are evaluated "in principle
    /// every 3 years" (2024 rule); applying 36 months to every kind is local policy.
    pub fn default_evaluation_months(self) -> u32 {
        36
    }

    /// Region level the owner region must have, when the kind fixes one.
    pub fn required_level(self) -> Option<crate::regions::Level> {
        use crate::regions::Level;
        match self {
            PlanKind::Overall => Some(Level::Banner),
            PlanKind::Township => Some(Level::Township),
            PlanKind::Village => Some(Level::Village),
            _ => None,
        }
    }
}

impl PlanStatus {
    /// Whether the version is (or was last) in force: approved or filed.
    pub fn in_force(self) -> bool {
        matches!(self, PlanStatus::Approved | PlanStatus::Filed)
    }
}

/// Chinese name of a response level: 一级 … 四级 (一级 highest).
pub fn level_label(level: u8) -> &'static str {
    match level {
        1 => "一级",
        2 => "二级",
        3 => "三级",
        4 => "四级",
        _ => "?",
    }
}

/// A member unit of the command structure and its duties (指挥部成员单位及职责).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberUnit {
    /// Unit name, e.g. 旗消防救援大队.
    pub name: String,
    /// Its duties under this plan.
    pub duties: String,
}

/// The sections a plan must have (突发事件应对法, 2024 revision: 组织指挥体系与职责, 预防与预警机制,
/// 处置程序, 应急保障措施, 事后恢复与重建), plus the customary 总则 and 附则.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sections {
    /// 总则: purpose, basis, scope, principles (optional).
    #[serde(default)]
    pub general: String,
    /// 组织指挥体系与职责.
    pub organization: String,
    /// 预防与预警机制.
    pub prevention: String,
    /// 处置程序 (the response levels are listed with it).
    pub response: String,
    /// 应急保障措施.
    pub support: String,
    /// 事后恢复与重建.
    pub recovery: String,
    /// 附则 (optional).
    #[serde(default)]
    pub supplementary: String,
}

/// Supplies a response level needs: a GB/T 38565 item, how much, and within what distance of
/// the plan's region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SupplyNeed {
    /// GB/T 38565-2020 item code (7 digits, first 1–3).
    pub item_code: ItemCode,
    /// What the item is, for people (optional; the code is what counts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Quantity needed (> 0), in `unit`.
    pub quantity: f64,
    /// Unit of the quantity, e.g. 顶, 件, 台, 吨 (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Counted only if held within this many km of the plan's region (> 0).
    pub within_km: f64,
}

/// Rescue forces a response level needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceNeed {
    /// Specialty.
    pub specialty: Specialty,
    /// People needed (≥ 1).
    pub headcount: u32,
    /// Counted only if based within this many km (> 0).
    pub within_km: f64,
}

/// One response level (响应分级) with its activation criteria and resource requirements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseLevel {
    /// 1 (一级, highest) to 4 (四级).
    pub level: u8,
    /// When this level is activated (启动条件).
    pub criteria: String,
    /// Response measures at this level (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub measures: String,
    /// Supplies needed.
    #[serde(default)]
    pub supplies: Vec<SupplyNeed>,
    /// Forces needed.
    #[serde(default)]
    pub forces: Vec<ForceNeed>,
}

/// How often the plan must be drilled and in which forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillRequirement {
    /// Interval between drills, months (1–120).
    pub interval_months: u32,
    /// Forms that count (at least one).
    pub forms: Vec<DrillForm>,
}

/// A plan's content: one version of it. The same structure is the API body and a `plans/`
/// TOML file (documented field by field in plans/README.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanContent {
    /// Stable key of the plan (lowercase letters, digits, `-`): how `plans import` recognises
    /// the plan a file describes. Optional for plans created through the API; fixed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Title, e.g. 苏尼特左旗草原火灾应急预案.
    pub title: String,
    /// Kind (fixed for the plan's life).
    pub kind: PlanKind,
    /// Owner region, 12-digit code (fixed for the plan's life).
    pub region: RegionCode,
    /// Owning unit (编制单位), e.g. 苏尼特左旗应急管理局.
    pub owning_unit: String,
    /// Lead department (牵头部门).
    pub lead_department: String,
    /// Hazards covered (at least one).
    pub hazards: Vec<Hazard>,
    /// Command structure: member units and their duties.
    #[serde(default)]
    pub member_units: Vec<MemberUnit>,
    /// The plan's text, section by section.
    pub sections: Sections,
    /// Response levels (unique, 1–4).
    pub response_levels: Vec<ResponseLevel>,
    /// Drill requirement; omitted: the kind's default, both forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillRequirement>,
    /// Evaluation interval, months (1–120); omitted: 36.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_interval_months: Option<u32>,
}

impl PlanContent {
    /// Drill interval in force (the plan's, else the kind's default).
    pub fn drill_months(&self) -> u32 {
        self.drill.as_ref().map(|d| d.interval_months).unwrap_or(self.kind.default_drill_months())
    }

    /// Drill forms that count.
    pub fn drill_forms(&self) -> Vec<DrillForm> {
        self.drill.as_ref().map(|d| d.forms.clone()).unwrap_or_else(|| DrillForm::ALL.to_vec())
    }

    /// Evaluation interval in force.
    pub fn evaluation_months(&self) -> u32 {
        self.evaluation_interval_months.unwrap_or(self.kind.default_evaluation_months())
    }

    /// SHA-256 of the canonical JSON, to tell whether an imported file changed.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let digest = sha2::Sha256::digest(&bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One version of a plan as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanVersion {
    /// Version number (1, 2, …).
    pub version: i64,
    /// Lifecycle state of this version.
    pub status: PlanStatus,
    /// Chinese name of the state.
    pub status_label: &'static str,
    /// Why this version was made (None for version 1).
    pub revision_reason: Option<RevisionReason>,
    /// Free-text explanation of the revision.
    pub revision_note: Option<String>,
    /// Issue date (印发日期), set on approval.
    pub issued_on: Option<NaiveDate>,
    /// Issuing body (印发机关).
    pub issuing_body: Option<String>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Filed with whom (备案机关).
    pub filed_with: Option<String>,
    /// Filing date.
    pub filed_on: Option<NaiveDate>,
    /// Filing receipt number (备案回执编号).
    pub filing_receipt: Option<String>,
    /// The content.
    pub content: PlanContent,
    /// Who created the version.
    pub created_by: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its content or state last changed.
    pub updated_at: Timestamp,
}

/// Effective drill and evaluation requirements (the plan's own or the kind's defaults).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Requirements {
    /// Drill interval, months.
    pub drill_interval_months: u32,
    /// Drill forms that count.
    pub drill_forms: Vec<DrillForm>,
    /// Whether the drill requirement is the kind's default.
    pub drill_is_default: bool,
    /// Evaluation interval, months.
    pub evaluation_interval_months: u32,
    /// Whether the evaluation interval is the default.
    pub evaluation_is_default: bool,
}

impl Requirements {
    /// The requirements of a content.
    pub fn of(c: &PlanContent) -> Requirements {
        Requirements {
            drill_interval_months: c.drill_months(),
            drill_forms: c.drill_forms(),
            drill_is_default: c.drill.is_none(),
            evaluation_interval_months: c.evaluation_months(),
            evaluation_is_default: c.evaluation_interval_months.is_none(),
        }
    }
}

/// A recorded evaluation (预案评估).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Evaluation {
    /// Id.
    pub id: i64,
    /// Plan id.
    pub plan_id: i64,
    /// Version evaluated.
    pub version: i64,
    /// Date of the evaluation.
    pub evaluated_on: NaiveDate,
    /// Who evaluated (person or body).
    pub evaluator: String,
    /// Conclusion.
    pub conclusion: String,
    /// Whether the plan needs revision.
    pub revision_needed: bool,
    /// Why (the legal trigger), when revision is needed.
    pub revision_reason: Option<RevisionReason>,
    /// Explanation.
    pub revision_note: Option<String>,
    /// Who recorded it.
    pub created_by: String,
    /// When it was recorded.
    pub created_at: Timestamp,
}
