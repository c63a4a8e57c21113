//! The one helper that checks ids and codes referenced inside a request body: each entry exists,
//! lies where the caller may use it for this purpose, appears once, and the list is no longer
//! than its documented maximum. Every violation is a 422 error naming the field and the entry
//! (`team_codes[3]`), collected with the handler's other errors.
//!
//! One query per list (`… WHERE key IN (…)`), so a long list costs one round trip, and lists are
//! capped before any query runs.

use std::collections::HashMap;

use crate::auth::Scope;
use crate::db::Db;
use crate::error::{ApiError, FieldError};

/// Kinds of things a body can reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 队伍 by code.
    Team,
    /// 预案 by id.
    Plan,
    /// 储备库 by id.
    Depot,
    /// 队员 by id (region of the member's team).
    Member,
    /// 演练 by id.
    Drill,
    /// 区划 by code.
    Region,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Team => "队伍",
            Kind::Plan => "预案",
            Kind::Depot => "储备库",
            Kind::Member => "队员",
            Kind::Drill => "演练",
            Kind::Region => "区划",
        }
    }

    /// Whether the key is an integer id (else a text code).
    fn numeric(self) -> bool {
        matches!(self, Kind::Plan | Kind::Depot | Kind::Member | Kind::Drill)
    }

    /// `SELECT key, region_code … WHERE key IN (` (the list is appended).
    fn select(self) -> &'static str {
        match self {
            Kind::Team => "SELECT code, region_code FROM teams WHERE code IN (",
            Kind::Plan => "SELECT CAST(id AS TEXT), region_code FROM plans WHERE id IN (",
            Kind::Depot => "SELECT CAST(id AS TEXT), region_code FROM depots WHERE id IN (",
            Kind::Member => {
                "SELECT CAST(m.id AS TEXT), t.region_code FROM members m JOIN teams t ON t.id = m.team_id WHERE m.id IN ("
            }
            Kind::Drill => "SELECT CAST(id AS TEXT), region_code FROM drills WHERE id IN (",
            Kind::Region => "SELECT code, code FROM regions WHERE code IN (",
        }
    }
}

/// Where referenced entries must lie: every scope listed (the caller's jurisdiction, and for
/// example a drill's organising region), each with the reason shown when an entry falls outside.
pub struct Within<'a> {
    /// The subtree.
    pub scope: &'a Scope,
    /// Why (shown in the error): "您的管辖范围", "演练组织区划".
    pub reason: &'a str,
}

/// Checks one referenced list. Errors go to `errors`; the return maps each entry that exists to
/// its region code.
pub async fn check<K: ToString>(
    db: &Db,
    field: &str,
    kind: Kind,
    keys: &[K],
    max: usize,
    within: &[Within<'_>],
    errors: &mut Vec<FieldError>,
) -> Result<HashMap<String, String>, ApiError> {
    if keys.len() > max {
        errors.push(FieldError::field(field, format!("最多 {max} 项，收到 {} 项", keys.len())));
        return Ok(HashMap::new());
    }
    let keys: Vec<String> = keys.iter().map(|k| k.to_string().trim().to_string()).collect();
    let mut wanted: Vec<&str> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            errors.push(FieldError::field(format!("{field}[{i}]"), format!("{} {k} 重复", kind.label())));
        } else if kind.numeric() && k.parse::<i64>().ok().is_none_or(|v| v <= 0) {
            errors.push(FieldError::field(format!("{field}[{i}]"), format!("{k:?} 不是有效的编号")));
        } else if k.is_empty() || k.len() > 64 {
            errors.push(FieldError::field(format!("{field}[{i}]"), "代码为空或过长"));
        } else {
            wanted.push(k);
        }
    }
    let found = lookup(db, kind, &wanted).await?;
    for (i, k) in keys.iter().enumerate() {
        if !wanted.contains(&k.as_str()) || keys[..i].contains(k) {
            continue;
        }
        let Some(region) = found.get(k) else {
            errors.push(FieldError::field(format!("{field}[{i}]"), format!("{} {k} 不存在", kind.label())));
            continue;
        };
        if let Some(w) = within.iter().find(|w| !w.scope.contains(region)) {
            errors.push(FieldError::field(
                format!("{field}[{i}]"),
                format!("{} {k} 属于区划 {region}，不在{}（{}）内", kind.label(), w.reason, w.scope.code),
            ));
        }
    }
    Ok(found)
}

/// Checks one referenced entry (a single id field), as [`check`] does for lists.
pub async fn check_one<K: ToString>(
    db: &Db,
    field: &str,
    kind: Kind,
    key: &K,
    within: &[Within<'_>],
    errors: &mut Vec<FieldError>,
) -> Result<Option<String>, ApiError> {
    let mut list_errors = Vec::new();
    let found = check(db, field, kind, std::slice::from_ref(key), 1, within, &mut list_errors).await?;
    let prefix = format!("{field}[0]");
    errors.extend(list_errors.into_iter().map(|mut e| {
        if e.field.as_deref() == Some(prefix.as_str()) {
            e.field = Some(field.to_string());
        }
        e
    }));
    Ok(found.get(key.to_string().trim()).cloned())
}

async fn lookup(db: &Db, kind: Kind, keys: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!("{}{})", kind.select(), placeholders.join(", "));
    let rows: Vec<(String, String)> = if kind.numeric() {
        let ids: Vec<i64> = keys.iter().filter_map(|k| k.parse().ok()).collect();
        crate::with_db!(db, |p| {
            let mut q = sqlx::query_as(&sql);
            for id in &ids {
                q = q.bind(*id);
            }
            q.fetch_all(p).await
        })?
    } else {
        crate::with_db!(db, |p| {
            let mut q = sqlx::query_as(&sql);
            for k in keys {
                q = q.bind(*k);
            }
            q.fetch_all(p).await
        })?
    };
    Ok(rows.into_iter().collect())
}
