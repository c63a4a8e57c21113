//! Who is calling and what they may do: roles, permissions and jurisdiction.

pub mod login;
pub mod routes;
pub mod tokens;
pub mod user_routes;
pub mod users;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::regions::{Level, RegionCode};

/// A user's role. What each role may do is [`Role::allows`] (and the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// 管理员: everything within the jurisdiction, including approvals, tokens, audit, personal data.
    Admin,
    /// 规划员: plans, drills, supplies and forces within the jurisdiction; decides team filings.
    Planner,
    /// 操作员: day-to-day records (stock movements, teams, members, drills) within the jurisdiction.
    Operator,
    /// 查看者: read only.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Planner, Role::Operator, Role::Viewer];

    /// Parses `admin`, `planner`, `operator` or `viewer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "planner" => Some(Role::Planner),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Planner => "planner",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "管理员",
            Role::Planner => "规划员",
            Role::Operator => "操作员",
            Role::Viewer => "查看者",
        }
    }

    /// Whether this role carries the permission (within its jurisdiction).
    pub fn allows(self, perm: Perm) -> bool {
        use Perm::*;
        match self {
            Role::Admin => true,
            Role::Planner => matches!(perm, Read | Write | Plan | Decide),
            Role::Operator => matches!(perm, Read | Write),
            Role::Viewer => matches!(perm, Read),
        }
    }
}

/// Permissions. Every one is exercised only within the caller's jurisdiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// Read data.
    Read,
    /// Record day-to-day changes: stock movements, teams, members, drills, region locations.
    Write,
    /// Draft and revise plans.
    Plan,
    /// Decide team filings and compensation claims.
    Decide,
    /// Approve plans and record their filing; manage schedules and notification channels.
    Approve,
    /// Import the official division list.
    ImportRegions,
    /// Issue and revoke tokens.
    ManageTokens,
    /// Create users, set their passwords, roles and jurisdictions, disable and enable them.
    ManageUsers,
    /// Read the audit log.
    ReadAudit,
    /// See ID numbers and phones in full (every reveal is audited).
    RevealPersonal,
}

impl Perm {
    /// Chinese description used in 403 messages.
    pub fn label(self) -> &'static str {
        match self {
            Perm::Read => "读取数据",
            Perm::Write => "修改数据",
            Perm::Plan => "编制预案",
            Perm::Decide => "审核备案与补偿",
            Perm::Approve => "批准预案、登记备案、管理调度",
            Perm::ImportRegions => "导入行政区划",
            Perm::ManageTokens => "管理令牌",
            Perm::ManageUsers => "管理用户",
            Perm::ReadAudit => "查看审计日志",
            Perm::RevealPersonal => "查看完整个人信息",
        }
    }
}

/// A jurisdiction: a region and everything below it. Because official division codes nest
/// (6 digits for the county, 9 for the township, 12 for the village), "below" is a code prefix,
/// which every table can filter on with an index range scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The jurisdiction's own region.
    pub code: RegionCode,
    /// Its level.
    pub level: Level,
}

impl Scope {
    /// The subtree of a region, its level read from the code's shape (trailing zeros): the one
    /// way a region becomes a jurisdiction or a `?region=` filter.
    pub fn of(code: &RegionCode) -> Scope {
        let c = code.as_str();
        let level = if c.ends_with("000000") {
            Level::Banner
        } else if c.ends_with("000") {
            Level::Township
        } else {
            Level::Village
        };
        Scope { code: code.clone(), level }
    }

    /// The code prefix that every region inside shares.
    pub fn prefix(&self) -> &str {
        &self.code.as_str()[..self.level.prefix_len()]
    }

    /// Whether `code` lies within this jurisdiction.
    pub fn contains(&self, code: &str) -> bool {
        code.len() == 12 && code.starts_with(self.prefix())
    }

    /// Inclusive bounds `(lo, hi)` on region codes inside, for `region_code BETWEEN $lo AND $hi`.
    pub fn bounds(&self) -> (String, String) {
        let p = self.prefix();
        (format!("{p:0<12}"), format!("{p:9<12}"))
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id.
    pub user_id: i64,
    /// User name (the audit actor).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Jurisdiction.
    pub scope: Scope,
    /// Token id used for this request.
    pub token_id: i64,
}

impl Principal {
    /// Fails with 403 unless the role carries `perm`.
    pub fn require(&self, perm: Perm) -> Result<(), ApiError> {
        if self.role.allows(perm) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("角色「{}」无权{}", self.role.label(), perm.label())))
        }
    }

    /// Fails with 403 unless `region` lies in the caller's jurisdiction.
    pub fn require_region(&self, region: &str) -> Result<(), ApiError> {
        if self.scope.contains(region) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("区划 {region} 不在您的管辖范围（{}）内", self.scope.code)))
        }
    }

    /// Both checks: the permission, exercised on `region`.
    pub fn require_in(&self, perm: Perm, region: &str) -> Result<(), ApiError> {
        self.require(perm)?;
        self.require_region(region)
    }
}
