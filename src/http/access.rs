//! The one place access is enforced: every token route declares a [`Guard`] in the route table
//! (see the top of `router.rs`), and [`enforce`] checks it before the handler runs.
//!
//! Order of answers, the same on every route: 401 without a valid token; 403 when the role lacks
//! the permission; 404 when the path object does not exist; 403 when it exists (or a region named
//! in the body or query lies) outside the caller's jurisdiction. "Exists but not yours" is
//! therefore always 403, never 404.

use crate::auth::{Perm, Principal};
use crate::db::Db;
use crate::error::ApiError;

/// The access a route requires.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// The permission the caller's role must carry.
    pub perm: Perm,
    /// Where the regions the route touches come from; each must lie in the caller's jurisdiction.
    pub regions: &'static [Region],
}

/// Where the region of what a route touches comes from.
#[derive(Debug, Clone, Copy)]
pub enum Region {
    /// Nothing regional: the permission alone decides (the supplies catalogue, scheduler jobs).
    Global,
    /// The caller's jurisdiction as a whole (lists, reports, imports that check each row); a
    /// query parameter of this name, when present, must name a region inside it.
    Query(&'static str),
    /// The object named by this path parameter; 404 when it does not exist.
    Path(&'static str, &'static Object),
    /// A region code in this top-level field of the JSON body (when present).
    Body(&'static str),
    /// Acts on the whole banner (scheduler jobs, the readiness run and its configuration): only
    /// callers whose jurisdiction is the banner itself.
    Banner,
    /// An import: the import checks every row's region against the jurisdiction and reports
    /// rows outside it as line errors (422), all or nothing.
    Rows,
}

/// How path parameters are bound into an [`Object`]'s lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A positive integer id.
    Id,
    /// A text code.
    Code,
}

/// A kind of object a route can name in its path, and how to find its region(s).
#[derive(Debug)]
pub struct Object {
    /// Chinese name for messages ("预案").
    pub label: &'static str,
    /// Key type of the path parameter.
    pub key: Key,
    /// Query with one `$1` parameter returning the object's region code(s); no row means the
    /// object does not exist. Where it returns several (a transfer's two depots), any one inside
    /// the jurisdiction is enough.
    pub sql: &'static str,
}

/// 预案 by id.
pub const PLAN: Object = Object { label: "预案", key: Key::Id, sql: "SELECT region_code FROM plans WHERE id = $1" };
/// 演练 by id.
pub const DRILL: Object = Object { label: "演练", key: Key::Id, sql: "SELECT region_code FROM drills WHERE id = $1" };
/// 整改措施 by id.
pub const ACTION: Object =
    Object { label: "整改措施", key: Key::Id, sql: "SELECT region_code FROM corrective_actions WHERE id = $1" };
/// 队伍 by code.
pub const TEAM: Object =
    Object { label: "队伍", key: Key::Code, sql: "SELECT region_code FROM teams WHERE code = $1" };
/// 队员 by id (the region of the member's team).
pub const MEMBER: Object = Object {
    label: "队员",
    key: Key::Id,
    sql: "SELECT t.region_code FROM members m JOIN teams t ON t.id = m.team_id WHERE m.id = $1",
};
/// 调用 (call-up) by id.
pub const CALLUP: Object =
    Object { label: "调用", key: Key::Id, sql: "SELECT region_code FROM callups WHERE id = $1" };
/// 储备库 by id.
pub const DEPOT: Object =
    Object { label: "储备库", key: Key::Id, sql: "SELECT region_code FROM depots WHERE id = $1" };
/// 调拨 by id: visible from either end.
pub const TRANSFER: Object = Object {
    label: "调拨",
    key: Key::Id,
    sql: "SELECT d.region_code FROM transfers t JOIN depots d ON d.id = t.from_depot_id OR d.id = t.to_depot_id \
          WHERE t.id = $1",
};
/// 调拨 by id, as seen by the sending depot (approve, ship).
pub const TRANSFER_SOURCE: Object = Object {
    label: "调拨",
    key: Key::Id,
    sql: "SELECT d.region_code FROM transfers t JOIN depots d ON d.id = t.from_depot_id WHERE t.id = $1",
};
/// 调拨 by id, as seen by the receiving depot (receive).
pub const TRANSFER_DEST: Object = Object {
    label: "调拨",
    key: Key::Id,
    sql: "SELECT d.region_code FROM transfers t JOIN depots d ON d.id = t.to_depot_id WHERE t.id = $1",
};
/// 领用 (requisition) by id.
pub const REQUISITION: Object =
    Object { label: "领用单", key: Key::Id, sql: "SELECT region_code FROM requisitions WHERE id = $1" };
/// 通知渠道 by id.
pub const CHANNEL: Object =
    Object { label: "通知渠道", key: Key::Id, sql: "SELECT region_code FROM channels WHERE id = $1" };
/// 外发消息 (outbox delivery) by id.
pub const DELIVERY: Object =
    Object { label: "外发消息", key: Key::Id, sql: "SELECT region_code FROM outbox WHERE id = $1" };
/// 站内通知 by id.
pub const NOTIFICATION: Object =
    Object { label: "通知", key: Key::Id, sql: "SELECT region_code FROM notifications WHERE id = $1" };
/// 事件 (an emergency event) by id.
pub const EVENT: Object = Object { label: "事件", key: Key::Id, sql: "SELECT region_code FROM events WHERE id = $1" };
/// 预警 by id: visible from its issuing region and from every region it covers.
pub const WARNING: Object = Object {
    label: "预警",
    key: Key::Id,
    sql: "SELECT issuing_region FROM warnings WHERE id = $1 UNION SELECT region_code FROM warning_regions WHERE warning_id = $1",
};
/// 预警 by id, as its issuer (issuing, updating, cancelling).
pub const WARNING_ISSUER: Object =
    Object { label: "预警", key: Key::Id, sql: "SELECT issuing_region FROM warnings WHERE id = $1" };
/// 令牌 by id (the region of its user).
pub const TOKEN: Object = Object {
    label: "令牌",
    key: Key::Id,
    sql: "SELECT u.region_code FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
};
/// 用户 by id (the user's jurisdiction).
pub const USER: Object = Object { label: "用户", key: Key::Id, sql: "SELECT region_code FROM users WHERE id = $1" };
/// 区划 by code (the region itself).
pub const REGION: Object = Object { label: "区划", key: Key::Code, sql: "SELECT code FROM regions WHERE code = $1" };

/// Checks `guard` for `principal` on this request (see the module doc for the order of answers).
pub async fn enforce(
    db: &Db,
    guard: &Guard,
    principal: &Principal,
    params: &[(&'static str, String)],
    query: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    principal.require(guard.perm)?;
    for region in guard.regions {
        match *region {
            Region::Global | Region::Rows => {}
            Region::Banner => {
                if principal.scope.level != crate::regions::Level::Banner {
                    return Err(ApiError::Forbidden(format!(
                        "此操作作用于全旗，只有旗级用户可以执行（您的辖区为 {}）",
                        principal.scope.code
                    )));
                }
            }
            Region::Query(name) => {
                for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                    if k == name && is_code(&v) {
                        principal.require_region(&v)?;
                    }
                }
            }
            Region::Path(param, object) => {
                let raw = params.iter().find(|(n, _)| *n == param).map(|(_, v)| v.as_str()).unwrap_or("");
                let regions = object_regions(db, object, raw).await?;
                if regions.is_empty() {
                    return Err(ApiError::NotFound(format!("{} {raw} 不存在", object.label)));
                }
                if !regions.iter().any(|r| principal.scope.contains(r)) {
                    return Err(ApiError::Forbidden(format!(
                        "{} {raw} 属于区划 {}，不在您的管辖范围（{}）内",
                        object.label, regions[0], principal.scope.code
                    )));
                }
            }
            Region::Body(field) => {
                // A body that is not a JSON object is left to the handler's parser, which says
                // precisely what is wrong with it.
                let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) else {
                    continue;
                };
                if let Some(serde_json::Value::String(code)) = map.get(field)
                    && is_code(code)
                {
                    principal.require_region(code.trim())?;
                }
            }
        }
    }
    Ok(())
}

/// Whether `s` looks like a region code (malformed ones are the handler's 400/422 to report).
fn is_code(s: &str) -> bool {
    let s = s.trim();
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The region codes of the object `raw` names (empty when it does not exist).
pub async fn object_regions(db: &Db, object: &Object, raw: &str) -> Result<Vec<String>, ApiError> {
    let rows: Vec<String> = match object.key {
        Key::Id => {
            let Some(id) = raw.parse::<i64>().ok().filter(|v| *v > 0) else { return Ok(vec![]) };
            crate::with_db!(db, |p| sqlx::query_scalar(object.sql).bind(id).fetch_all(p).await)?
        }
        Key::Code => {
            if raw.is_empty() || raw.len() > 64 {
                return Ok(vec![]);
            }
            crate::with_db!(db, |p| sqlx::query_scalar(object.sql).bind(raw).fetch_all(p).await)?
        }
    };
    Ok(rows)
}

/// A guard's description for the OpenAPI document and the README matrix.
pub fn describe(guard: &Guard) -> String {
    let mut parts = vec![format!("权限：{}（{:?}）", guard.perm.label(), guard.perm)];
    for r in guard.regions {
        parts.push(match r {
            Region::Global => "不限区划".to_string(),
            Region::Query(q) => format!("辖区内；查询参数 {q} 须在辖区内"),
            Region::Path(p, o) => format!("路径 {{{p}}} 所指{}须在辖区内", o.label),
            Region::Body(f) => format!("请求体字段 {f} 的区划须在辖区内"),
            Region::Rows => "导入的每一行须在辖区内".to_string(),
            Region::Banner => "仅限旗级用户（作用于全旗）".to_string(),
        });
    }
    parts.join("；")
}
