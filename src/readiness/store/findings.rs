//! The findings a run writes: the open ones read for matching, new ones inserted, changed ones
//! updated, gone ones resolved.

use serde_json::Value;
use sqlx::types::Json;

use crate::db::{Db, Tx};
use crate::readiness::{Found, Severity};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Findings: `open` → `resolved`.
pub const FINDING: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("readiness_findings", "准备情况问题");

/// An open finding as a run matches it: by identity, and by the digest of what was written
/// (see [`Found::digest`]).
#[derive(Debug, sqlx::FromRow)]
pub struct OpenRow {
    /// Id.
    pub id: i64,
    /// Identity.
    pub identity: String,
    /// Digest of severity, facts, message and action (None: written before digests were kept).
    pub digest: Option<String>,
    /// When a run last wrote it (see [`list`] for when it was last seen).
    pub last_seen: Timestamp,
    /// The run that last wrote it.
    pub last_run_id: i64,
}

/// Every open finding.
pub async fn open_findings(db: &Db) -> Result<Vec<OpenRow>, sqlx::Error> {
    with_db!(db, |p| {
        sqlx::query_as::<_, OpenRow>(
            "SELECT id, identity, digest, last_seen, last_run_id FROM readiness_findings WHERE status = 'open'",
        )
        .fetch_all(p)
        .await
    })
}

/// The latest run that succeeded: (id, started at). Every finding still open was seen by it
/// (a run resolves what it no longer finds), so it is when an open finding was last seen,
/// unless a later (failed) run wrote the finding.
pub async fn latest_succeeded(db: &Db) -> Result<Option<(i64, Timestamp)>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT id, started_at FROM readiness_runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1"
    )
    .fetch_optional(p)
    .await)
}

/// Inserts new open findings; returns `(identity, id)` of those inserted (one another run
/// opened first is left out, and is not this run's to count or notify). A province run opens
/// hundreds of thousands, so never a round trip per finding: on PostgreSQL one statement takes
/// the whole chunk as arrays (`UNNEST`), on SQLite multi-row statements of [`INSERT_ROWS`].
pub async fn insert_many(
    tx: &mut Tx,
    found: &[(&Found, Severity)],
    run_id: i64,
    now: Timestamp,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    match tx {
        Tx::Postgres(t) => insert_unnest(t, found, run_id, now).await,
        Tx::Sqlite(..) => insert_rows(tx, found, run_id, now).await,
    }
}

/// PostgreSQL: one `INSERT … SELECT FROM UNNEST(arrays)` for the chunk. A statement per 100
/// rows of 11 parameters each cost 76 s of a province's first run (debug build, 244,052
/// findings): planning and binding 1,100 parameters per statement, 2,441 times.
async fn insert_unnest(
    conn: &mut sqlx::PgConnection,
    found: &[(&Found, Severity)],
    run_id: i64,
    now: Timestamp,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let n = found.len();
    let (mut identity, mut rule, mut severity, mut region, mut subject_type, mut subject_id) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut requirement, mut facts, mut message, mut basis, mut action, mut digest) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (f, s) in found {
        identity.push(f.identity());
        rule.push(f.rule.id());
        severity.push(s.as_str());
        region.push(f.region_code.as_str());
        subject_type.push(f.subject_type);
        subject_id.push(f.subject_id.as_str());
        requirement.push(f.requirement.as_str());
        facts.push(Json(&f.facts));
        message.push(f.message.as_str());
        basis.push(f.rule.basis());
        action.push(f.action.as_str());
        digest.push(f.digest(*s));
    }
    sqlx::query_as(
        "INSERT INTO readiness_findings (identity, rule, severity, region_code, subject_type, subject_id, requirement, facts,
                message, basis, action, digest, status, first_seen, last_seen, first_run_id, last_run_id)
         SELECT identity, rule, severity, region_code, subject_type, subject_id, requirement, facts, message, basis, action,
                digest, 'open', $1, $1, $2, $2
         FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[],
                     $11::text[], $12::text[], $13::text[], $14::text[])
              AS f (identity, rule, severity, region_code, subject_type, subject_id, requirement, facts, message, basis, action,
                    digest)
         ON CONFLICT (identity) WHERE status = 'open' DO NOTHING RETURNING identity, id",
    )
    .bind(now)
    .bind(run_id)
    .bind(identity)
    .bind(rule)
    .bind(severity)
    .bind(region)
    .bind(subject_type)
    .bind(subject_id)
    .bind(requirement)
    .bind(facts)
    .bind(message)
    .bind(basis)
    .bind(action)
    .bind(digest)
    .fetch_all(conn)
    .await
}

/// SQLite: multi-row inserts of [`INSERT_ROWS`] rows.
async fn insert_rows(
    tx: &mut Tx,
    found: &[(&Found, Severity)],
    run_id: i64,
    now: Timestamp,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    const COLUMNS: usize = 12;
    let mut out = Vec::with_capacity(found.len());
    for chunk in found.chunks(INSERT_ROWS) {
        let mut sql = String::from(
            "INSERT INTO readiness_findings (identity, rule, severity, region_code, subject_type, subject_id, requirement, facts, message,
                 basis, action, digest, status, first_seen, last_seen, first_run_id, last_run_id) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = 3 + COLUMNS * i;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..COLUMNS {
                sql.push_str(&format!("${}, ", b + c));
            }
            sql.push_str("'open', $1, $1, $2, $2)");
        }
        sql.push_str(" ON CONFLICT (identity) WHERE status = 'open' DO NOTHING RETURNING identity, id");
        let rows: Vec<(String, i64)> = with_tx!(tx, |c| {
            let mut q = sqlx::query_as(&sql).bind(now).bind(run_id);
            for (f, severity) in chunk {
                q = q
                    .bind(f.identity())
                    .bind(f.rule.id())
                    .bind(severity.as_str())
                    .bind(&f.region_code)
                    .bind(f.subject_type)
                    .bind(&f.subject_id)
                    .bind(&f.requirement)
                    .bind(Json(&f.facts))
                    .bind(&f.message)
                    .bind(f.rule.basis())
                    .bind(&f.action)
                    .bind(f.digest(*severity));
            }
            q.fetch_all(c).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// Rows per multi-row statement (11 values each). Small enough that binding stays cheap:
/// SQLite looks a numbered parameter (`$n`) up by walking the statement's parameter list, so
/// binding a statement costs the square of its parameter count (500 rows of 11 took about
/// 100 ms to bind; 100 rows take a twenty-fifth of that per statement).
const INSERT_ROWS: usize = 100;

/// Findings seen again with different numbers (or severity, message, action): writes the new
/// ones, many per statement (on PostgreSQL the whole chunk as arrays), each with the digest the
/// run compared ([`Found::digest`]). Unchanged findings are not written at all.
pub async fn touch_many(
    tx: &mut Tx,
    changed: &[(i64, &Found, Severity, String)],
    run_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(t) if !changed.is_empty() => {
            let ids: Vec<i64> = changed.iter().map(|c| c.0).collect();
            let facts: Vec<Json<&Value>> = changed.iter().map(|c| Json(&c.1.facts)).collect();
            let messages: Vec<&str> = changed.iter().map(|c| c.1.message.as_str()).collect();
            let actions: Vec<&str> = changed.iter().map(|c| c.1.action.as_str()).collect();
            let severities: Vec<&str> = changed.iter().map(|c| c.2.as_str()).collect();
            let digests: Vec<&str> = changed.iter().map(|c| c.3.as_str()).collect();
            sqlx::query(
                "UPDATE readiness_findings SET last_seen = $1, last_run_id = $2, facts = v.facts, message = v.message,
                        action = v.action, severity = v.severity, digest = v.digest
                 FROM UNNEST($3::bigint[], $4::jsonb[], $5::text[], $6::text[], $7::text[], $8::text[])
                      AS v (id, facts, message, action, severity, digest)
                 WHERE readiness_findings.id = v.id",
            )
            .bind(now)
            .bind(run_id)
            .bind(ids)
            .bind(facts)
            .bind(messages)
            .bind(actions)
            .bind(severities)
            .bind(digests)
            .execute(&mut **t)
            .await
            .map(|_| ())
        }
        Tx::Postgres(_) => Ok(()),
        Tx::Sqlite(..) => touch_rows(tx, changed, run_id, now).await,
    }
}

/// SQLite: `UPDATE … FROM (VALUES …)` of [`INSERT_ROWS`] rows.
async fn touch_rows(
    tx: &mut Tx,
    changed: &[(i64, &Found, Severity, String)],
    run_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 6;
    for chunk in changed.chunks(INSERT_ROWS) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 3 + COLUMNS * i;
                format!("(${}, ${}, ${}, ${}, ${}, ${})", b, b + 1, b + 2, b + 3, b + 4, b + 5)
            })
            .collect();
        // `UPDATE … FROM` a list of values: the same text on both backends (SQLite ≥ 3.33).
        let sql = format!(
            "WITH v (id, facts, message, action, severity, digest) AS (VALUES {})
             UPDATE readiness_findings SET last_seen = $1, last_run_id = $2, facts = v.facts, message = v.message,
                    action = v.action, severity = v.severity, digest = v.digest
             FROM v WHERE readiness_findings.id = v.id",
            values.join(", ")
        );
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(now).bind(run_id);
            for (id, f, severity, digest) in chunk {
                q = q
                    .bind(*id)
                    .bind(Json(&f.facts))
                    .bind(&f.message)
                    .bind(&f.action)
                    .bind(severity.as_str())
                    .bind(digest);
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Resolves an open finding, recording when it was last seen (`last_seen`: time and run); false
/// when it was no longer open (a concurrent run resolved it).
pub async fn resolve(tx: &mut Tx, id: i64, now: Timestamp, last_seen: (Timestamp, i64)) -> Result<bool, sqlx::Error> {
    match crate::transition!(tx, FINDING, id, from ["open"] => "resolved",
        set { "resolved_at" = now, "last_seen" = last_seen.0, "last_run_id" = last_seen.1 })
    {
        Ok(()) => Ok(true),
        Err(crate::transition::TransitionError::Db(e)) => Err(e),
        Err(_) => Ok(false),
    }
}
