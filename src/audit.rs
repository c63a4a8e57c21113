//! The audit log: every change writes a row in the same transaction as the change itself.
//! No API updates or deletes audit rows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Principal;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Who made a change.
#[derive(Debug, Clone)]
pub struct Actor {
    /// User name, `cli` for the command line, `system` for the scheduler.
    pub name: String,
    /// Role, when a user acted.
    pub role: Option<String>,
    /// Request id, when the change came through the API.
    pub request_id: Option<String>,
}

impl Actor {
    /// The command-line operator.
    pub fn cli() -> Actor {
        Actor { name: "cli".into(), role: None, request_id: None }
    }

    /// The service itself (scheduler, first-start seeding).
    pub fn system() -> Actor {
        Actor { name: "system".into(), role: None, request_id: None }
    }

    /// A user acting through the API.
    pub fn user(p: &Principal, request_id: &str) -> Actor {
        Actor {
            name: p.name.clone(),
            role: Some(p.role.as_str().to_string()),
            request_id: Some(request_id.to_string()),
        }
    }
}

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// `create`, `update`, `delete`, `import`, `approve`, …
    pub action: &'a str,
    /// `region`, `token`, `plan`, …
    pub entity_type: &'a str,
    /// The entity's id or code.
    pub entity_id: &'a str,
    /// Region the entity belongs to (for jurisdiction filtering of the log).
    pub region_code: Option<&'a str>,
    /// State before (None for a create).
    pub before: Option<Value>,
    /// State after (None for a delete).
    pub after: Option<Value>,
}

/// Writes an audit row inside the caller's transaction.
pub async fn record(tx: &mut Tx, actor: &Actor, at: Timestamp, c: Change<'_>) -> Result<(), sqlx::Error> {
    let before = c.before.map(sqlx::types::Json);
    let after = c.after.map(sqlx::types::Json);
    with_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(at)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(c.action)
        .bind(c.entity_type)
        .bind(c.entity_id)
        .bind(c.region_code)
        .bind(&before)
        .bind(&after)
        .bind(&actor.request_id)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Writes many audit rows inside the caller's transaction, with multi-row inserts in chunks
/// (see [`crate::imports::bulk`]); the same rows [`record`] would write one by one.
pub async fn record_many<'a>(
    tx: &mut Tx,
    actor: &Actor,
    at: Timestamp,
    changes: impl IntoIterator<Item = Change<'a>>,
) -> Result<(), sqlx::Error> {
    let mut changes = changes.into_iter().peekable();
    let per = crate::imports::bulk::chunk(10);
    while changes.peek().is_some() {
        let chunk: Vec<Change<'a>> = changes.by_ref().take(per).collect();
        with_tx!(&mut *tx, |conn| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id) ",
            );
            q.push_values(chunk, |mut b, c| {
                b.push_bind(at)
                    .push_bind(actor.name.clone())
                    .push_bind(actor.role.clone())
                    .push_bind(c.action.to_string())
                    .push_bind(c.entity_type.to_string())
                    .push_bind(c.entity_id.to_string())
                    .push_bind(c.region_code.map(str::to_string))
                    .push_bind(c.before.map(sqlx::types::Json))
                    .push_bind(c.after.map(sqlx::types::Json))
                    .push_bind(actor.request_id.clone());
            });
            q.build().execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// An audit row.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct AuditEntry {
    /// Row id (increasing).
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// Their role.
    pub actor_role: Option<String>,
    /// What kind of change.
    pub action: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: String,
    /// Region of the entity.
    pub region_code: Option<String>,
    /// State before.
    #[schemars(with = "Option<Value>")]
    pub before_state: Option<sqlx::types::Json<Value>>,
    /// State after.
    #[schemars(with = "Option<Value>")]
    pub after_state: Option<sqlx::types::Json<Value>>,
    /// Request id.
    pub request_id: Option<String>,
}

/// Filters for the audit list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entity type, e.g. `region`.
    pub entity_type: Option<String>,
    /// Entity id.
    pub entity_id: Option<String>,
    /// Actor name.
    pub actor: Option<String>,
    /// From this instant (inclusive).
    pub from: Option<Timestamp>,
    /// Up to this instant (exclusive).
    pub to: Option<Timestamp>,
    /// Page size (default 100, max 1000).
    pub limit: Option<crate::http::ctx::Limit>,
    /// Rows to skip.
    pub offset: Option<crate::http::ctx::Offset>,
}

/// Lists audit rows in the jurisdiction bounds `(lo, hi)`, newest first; with `global`, also the
/// rows about things that belong to no region (the supplies catalogue, schedules, the key), which
/// banner-level callers see.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    global: bool,
    q: &AuditQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditEntry>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE ((region_code >= $1 AND region_code <= $2) OR (region_code IS NULL AND $8))
          AND ($3 IS NULL OR entity_type = $3) AND ($4 IS NULL OR entity_id = $4)
          AND ($5 IS NULL OR actor = $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7)";
    let items_sql = format!(
        "SELECT id, at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id
         FROM audit_log {WHERE} ORDER BY id DESC LIMIT $9 OFFSET $10"
    );
    let count_sql = format!("SELECT COUNT(*) FROM audit_log {WHERE}");
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, AuditEntry>(&items_sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(&q.entity_type)
            .bind(&q.entity_id)
            .bind(&q.actor)
            .bind(q.from)
            .bind(q.to)
            .bind(global)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count_sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(&q.entity_type)
            .bind(&q.entity_id)
            .bind(&q.actor)
            .bind(q.from)
            .bind(q.to)
            .bind(global)
            .fetch_one(p)
            .await?;
        Ok((items, total))
    })
}
