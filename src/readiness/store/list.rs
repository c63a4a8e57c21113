//! Findings as the API lists them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::latest_succeeded;
use crate::db::Db;
use crate::readiness::{Rule, Severity};
use crate::time::Timestamp;
use crate::with_db;

/// A finding as the API shows it.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Finding {
    /// Id.
    pub id: i64,
    /// Rule id.
    #[sqlx(try_from = "String")]
    pub rule: RuleId,
    /// Severity.
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    /// Region.
    pub region: String,
    /// Subject type.
    pub subject_type: String,
    /// Subject id.
    pub subject_id: String,
    /// The requirement it is about.
    pub requirement: String,
    /// The numbers behind it.
    #[schemars(with = "Value")]
    pub facts: Json<Value>,
    /// The finding in Chinese.
    pub message: String,
    /// Legal or normative basis.
    pub basis: String,
    /// What to do.
    pub action: String,
    /// `open` or `resolved`.
    pub status: String,
    /// First seen.
    pub first_seen: Timestamp,
    /// Last seen.
    pub last_seen: Timestamp,
    /// Resolved.
    pub resolved_at: Option<Timestamp>,
}

/// A rule id as stored (a newtype so it can be read with `try_from`).
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct RuleId(pub Rule);

impl TryFrom<String> for RuleId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Rule::parse(&s).map(RuleId).ok_or_else(|| format!("unknown rule {s:?}"))
    }
}

/// Filters of the findings list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    /// Region (default: the caller's jurisdiction).
    pub region: Option<crate::regions::RegionCode>,
    /// Only this rule.
    #[schemars(with = "Option<Rule>")]
    pub rule: Option<String>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Include the regions below (default true).
    pub include_children: Option<bool>,
    /// Resolved findings instead of open ones (default false).
    pub resolved: Option<bool>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Items to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Findings in `bounds` (or of exactly `exact` region), most severe first.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    exact: Option<&str>,
    q: &FindingQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Finding>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR region_code = $3)
        AND ($4 IS NULL OR rule = $4) AND ($5 IS NULL OR severity = $5) AND status = $6";
    let sql = format!(
        "SELECT id, rule, severity, region_code AS region, subject_type, subject_id, requirement, facts, message, basis, action, status,
                first_seen, last_seen, resolved_at
         FROM readiness_findings {WHERE}
         ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, rule, region_code, id LIMIT $7 OFFSET $8"
    );
    let count = format!("SELECT COUNT(*) FROM readiness_findings {WHERE}");
    let status = if q.resolved.unwrap_or(false) { "resolved" } else { "open" };
    let severity = q.severity.map(Severity::as_str);
    let (mut items, total) = with_db!(db, |p| {
        let items = sqlx::query_as::<_, Finding>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(exact)
            .bind(&q.rule)
            .bind(severity)
            .bind(status)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(exact)
            .bind(&q.rule)
            .bind(severity)
            .bind(status)
            .fetch_one(p)
            .await?;
        Ok::<_, sqlx::Error>((items, total))
    })?;
    // An open finding was seen by every run that succeeded since it opened (a run resolves
    // what it no longer finds), so its last sighting is the latest successful run, unless a
    // later run wrote it: runs do not rewrite unchanged findings just to date them.
    if status == "open"
        && let Some((_, at)) = latest_succeeded(db).await?
    {
        for f in &mut items {
            if f.last_seen.0 < at.0 {
                f.last_seen = at;
            }
        }
    }
    Ok((items, total))
}
