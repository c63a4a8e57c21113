//! State transitions: the one way any status in the service changes.
//!
//! Every lifecycle (plans, transfers, requisitions, drills, corrective actions, teams, call-ups,
//! compensation, outbox deliveries, job runs, events, warnings …) moves a row from one of a set of
//! allowed states to a new state with [`transition!`](crate::transition!): one conditional update
//!
//! ```sql
//! UPDATE <table> SET status = $to, <effects…> WHERE <key> = $id AND status IN (<from…>) [AND <guard> = $g …]
//! ```
//!
//! followed by an affected-row check, inside the transaction that writes the transition's effects
//! (movements, audit rows, reminders, outbox). The database decides the race, not the handler:
//! on PostgreSQL a concurrent update of the same row waits for the winner's commit and then finds
//! the status changed; on SQLite `BEGIN IMMEDIATE` serialises writers. The loser gets
//! [`TransitionError::Conflict`] naming the current state (409 through [`ApiError`]) and, because
//! the caller's transaction is dropped without commit, nothing it would have written is written.
//!
//! Never read a status, decide in Rust, then write "by id": that is the bug this module exists
//! to make impossible. Reading first is fine for *validation and messages*; the update's `WHERE`
//! clause is what decides.
//!
//! Guards (`guard { "lease" = token }`) add equality conditions, for fenced background work: a
//! claimant that lost its lease finds zero rows and gets [`TransitionError::Conflict`] too.

use crate::error::ApiError;

/// One lifecycle's storage: the table, its key column and what a person calls one row.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// Table holding the `status` column.
    pub table: &'static str,
    /// Key column (`id`, or `code` where the API names rows by code).
    pub key: &'static str,
    /// Column holding the state (usually `status`).
    pub column: &'static str,
    /// Chinese noun for messages, e.g. `调拨单`.
    pub noun: &'static str,
    /// Where several rows share a key (a plan's versions): the column whose highest value names
    /// the row whose state a conflict reports.
    pub latest_by: Option<&'static str>,
}

impl Lifecycle {
    /// A lifecycle whose state lives in a column named `status`, keyed by `id`.
    pub const fn new(table: &'static str, noun: &'static str) -> Lifecycle {
        Lifecycle { table, key: "id", column: "status", noun, latest_by: None }
    }

    /// The same lifecycle keyed by another column.
    pub const fn keyed_by(self, key: &'static str) -> Lifecycle {
        Lifecycle { key, ..self }
    }

    /// The same lifecycle with its state in another column.
    pub const fn state_column(self, column: &'static str) -> Lifecycle {
        Lifecycle { column, ..self }
    }

    /// The same lifecycle over rows sharing a key (the update names one with a guard); a conflict
    /// reports the state of the row with the highest `column`.
    pub const fn latest_by(self, column: &'static str) -> Lifecycle {
        Lifecycle { latest_by: Some(column), ..self }
    }

    /// The conditional update. Placeholders: `$1` new state, `$2` key, then one per `set` column,
    /// one per guard column, then one per allowed `from` state.
    pub fn update_sql(&self, sets: &[&str], guards: &[&str], from: usize) -> String {
        let mut sql = format!("UPDATE {} SET {} = $1", self.table, self.column);
        let mut n = 2;
        for col in sets {
            n += 1;
            sql.push_str(&format!(", {col} = ${n}"));
        }
        sql.push_str(&format!(" WHERE {} = $2", self.key));
        for col in guards {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
        }
        let states: Vec<String> = (0..from).map(|i| format!("${}", n + 1 + i)).collect();
        sql.push_str(&format!(" AND {} IN ({})", self.column, states.join(", ")));
        sql
    }

    /// The conditional update of many rows at once, returning the keys it moved. Placeholders:
    /// `$1` new state, then one per `set` column, one per guard column, one per allowed `from`
    /// state, then one per key.
    pub fn update_many_sql(&self, sets: &[&str], guards: &[&str], from: usize, keys: usize) -> String {
        let mut sql = format!("UPDATE {} SET {} = $1", self.table, self.column);
        let mut n = 1;
        for col in sets {
            n += 1;
            sql.push_str(&format!(", {col} = ${n}"));
        }
        let mut conds = Vec::new();
        for col in guards {
            n += 1;
            conds.push(format!("{col} = ${n}"));
        }
        let states: Vec<String> = (0..from).map(|i| format!("${}", n + 1 + i)).collect();
        n += from;
        conds.push(format!("{} IN ({})", self.column, states.join(", ")));
        let keys: Vec<String> = (0..keys).map(|i| format!("${}", n + 1 + i)).collect();
        conds.push(format!("{} IN ({})", self.key, keys.join(", ")));
        sql.push_str(&format!(" WHERE {} RETURNING {}", conds.join(" AND "), self.key));
        sql
    }

    /// Reads the current state of one row (`$1` = key).
    pub fn status_sql(&self) -> String {
        let order = self.latest_by.map(|c| format!(" ORDER BY {c} DESC LIMIT 1")).unwrap_or_default();
        format!("SELECT {} FROM {} WHERE {} = $1{order}", self.column, self.table, self.key)
    }
}

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// No row with that key.
    #[error("{noun}不存在")]
    NotFound {
        /// What a person calls the row.
        noun: &'static str,
    },
    /// The row is in a state the step does not start from (someone else moved it first), or a
    /// guard (a lease) no longer matches.
    #[error("{noun}当前状态为「{current}」，不能变为「{to}」（可从 {from} 变更）")]
    Conflict {
        /// What a person calls the row.
        noun: &'static str,
        /// The state the row is in now.
        current: String,
        /// The state that was asked for.
        to: String,
        /// The states the step may start from, joined for display.
        from: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl TransitionError {
    /// Builds the error for a zero-row update, given the row's current state (if it exists).
    pub fn after_miss(life: &Lifecycle, current: Option<String>, to: &str, from: &[&str]) -> TransitionError {
        match current {
            None => TransitionError::NotFound { noun: life.noun },
            Some(current) => {
                TransitionError::Conflict { noun: life.noun, current, to: to.to_string(), from: from.join("、") }
            }
        }
    }

    /// True when the step lost a race or started from the wrong state.
    pub fn is_conflict(&self) -> bool {
        matches!(self, TransitionError::Conflict { .. })
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> ApiError {
        match e {
            TransitionError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            TransitionError::Conflict { ref current, .. } => {
                ApiError::StateConflict { detail: e.to_string(), current: current.clone() }
            }
            TransitionError::Db(d) => ApiError::from(d),
        }
    }
}

/// Moves one row from one of the `from` states to `to`, writing the `set` columns with it, inside
/// an open [`Tx`](crate::db::Tx). Evaluates to `Result<(), TransitionError>`.
///
/// ```ignore
/// transition!(&mut tx, TRANSFER, id, from ["approved"] => "shipped",
///     set { "shipped_at" = now, "shipped_qty" = qty })?;
/// transition!(&mut tx, DELIVERY, id, from ["sending"] => "delivered",
///     set { "delivered_at" = now }, guard { "lease" = token })?;
/// ```
///
/// The key, set values and guard values may be any type sqlx binds on both backends. The key
/// expression is evaluated once.
///
/// Where the allowed states are computed, `from_any <slice expr>` takes a `&[&str]` instead of
/// the bracketed list:
///
/// ```ignore
/// transition!(&mut tx, DRILL, id, from_any allowed => "cancelled", guard { "sequence" = seq })?;
/// ```
#[macro_export]
macro_rules! transition {
    (@run $tx:expr, $life:expr, $id:expr, $from_list:expr, $to:expr
     $(, set { $($col:literal = $val:expr),* })?
     $(, guard { $($gcol:literal = $gval:expr),* })?) => {{
        let life: &$crate::transition::Lifecycle = &$life;
        let from: &[&str] = $from_list;
        let to: &str = $to;
        let id = &$id;
        let sets: &[&str] = &[$($($col),*)?];
        let guards: &[&str] = &[$($($gcol),*)?];
        let sql = life.update_sql(sets, guards, from.len());
        let tx: &mut $crate::db::Tx = $tx;
        let done: Result<u64, sqlx::Error> = $crate::with_tx!(tx, |c| {
            let q = sqlx::query(&sql).bind(to).bind(id);
            $($(let q = q.bind($val);)*)?
            $($(let q = q.bind($gval);)*)?
            let q = from.iter().fold(q, |q, f| q.bind(*f));
            q.execute(c).await.map(|r| r.rows_affected())
        });
        match done {
            Err(e) => Err($crate::transition::TransitionError::Db(e)),
            Ok(1) => Ok(()),
            Ok(_) => {
                let status_sql = life.status_sql();
                let current: Result<Option<String>, sqlx::Error> = $crate::with_tx!(tx, |c| {
                    sqlx::query_scalar(&status_sql).bind(id).fetch_optional(c).await
                });
                match current {
                    Err(e) => Err($crate::transition::TransitionError::Db(e)),
                    Ok(cur) => Err($crate::transition::TransitionError::after_miss(life, cur, to, from)),
                }
            }
        }
    }};
    ($tx:expr, $life:expr, $id:expr, from [$($from:expr),+ $(,)?] => $to:expr
     $(, set { $($col:literal = $val:expr),* $(,)? })?
     $(, guard { $($gcol:literal = $gval:expr),* $(,)? })? $(,)?) => {
        $crate::transition!(@run $tx, $life, $id, &[$($from),+], $to
            $(, set { $($col = $val),* })? $(, guard { $($gcol = $gval),* })?)
    };
    ($tx:expr, $life:expr, $id:expr, from_any $from:expr => $to:expr
     $(, set { $($col:literal = $val:expr),* $(,)? })?
     $(, guard { $($gcol:literal = $gval:expr),* $(,)? })? $(,)?) => {
        $crate::transition!(@run $tx, $life, $id, $from, $to
            $(, set { $($col = $val),* })? $(, guard { $($gcol = $gval),* })?)
    };
}

/// [`transition!`] for many rows with the same effects, in one statement: each row moves only
/// if it is in one of the `from` states and matches the guards, exactly as one `transition!`
/// per row would. Evaluates to `Result<Vec<i64>, TransitionError>` with the keys that moved;
/// the caller treats every other key as having lost (say, to a lease taken over). Keys are
/// `i64`, bound in chunks of 100 (SQLite binds numbered parameters in time growing with the square
/// of their number, so statements stay small).
///
/// ```ignore
/// let moved = transition_many!(&mut tx, DELIVERY, &ids, from ["sending"] => "delivered",
///     set { "delivered_at" = now }, guard { "lease" = token })?;
/// ```
#[macro_export]
macro_rules! transition_many {
    ($tx:expr, $life:expr, $ids:expr, from [$($from:expr),+ $(,)?] => $to:expr
     $(, set { $($col:literal = $val:expr),* $(,)? })?
     $(, guard { $($gcol:literal = $gval:expr),* $(,)? })? $(,)?) => {{
        let life: &$crate::transition::Lifecycle = &$life;
        let from: &[&str] = &[$($from),+];
        let to: &str = $to;
        let ids: &[i64] = $ids;
        let sets: &[&str] = &[$($($col),*)?];
        let guards: &[&str] = &[$($($gcol),*)?];
        let tx: &mut $crate::db::Tx = $tx;
        let mut moved: Vec<i64> = Vec::with_capacity(ids.len());
        let mut failure: Option<sqlx::Error> = None;
        for chunk in ids.chunks(100) {
            let sql = life.update_many_sql(sets, guards, from.len(), chunk.len());
            let done: Result<Vec<i64>, sqlx::Error> = $crate::with_tx!(&mut *tx, |c| {
                let q = sqlx::query_scalar::<_, i64>(&sql).bind(to);
                $($(let q = q.bind($val);)*)?
                $($(let q = q.bind($gval);)*)?
                let q = from.iter().fold(q, |q, f| q.bind(*f));
                let q = chunk.iter().fold(q, |q, k| q.bind(*k));
                q.fetch_all(c).await
            });
            match done {
                Ok(m) => moved.extend(m),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            Some(e) => Err($crate::transition::TransitionError::Db(e)),
            None => Ok(moved),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_sql_numbers_placeholders_in_bind_order() {
        let life = Lifecycle::new("transfers", "调拨单");
        assert_eq!(
            life.update_sql(&["shipped_at", "shipped_qty"], &["lease"], 2),
            "UPDATE transfers SET status = $1, shipped_at = $3, shipped_qty = $4 WHERE id = $2 AND lease = $5 AND status IN ($6, $7)"
        );
        assert_eq!(
            life.keyed_by("code").update_sql(&[], &[], 1),
            "UPDATE transfers SET status = $1 WHERE code = $2 AND status IN ($3)"
        );
    }

    #[test]
    fn update_many_sql_numbers_placeholders_in_bind_order() {
        let life = Lifecycle::new("outbox", "通知投递");
        assert_eq!(
            life.update_many_sql(&["delivered_at"], &["lease"], 1, 3),
            "UPDATE outbox SET status = $1, delivered_at = $2 WHERE lease = $3 AND status IN ($4) AND id IN ($5, $6, $7) RETURNING id"
        );
    }

    #[test]
    fn a_miss_names_the_current_state() {
        let life = Lifecycle::new("drills", "演练");
        let e = TransitionError::after_miss(&life, Some("cancelled".into()), "in_progress", &["planned"]);
        assert!(e.is_conflict());
        assert!(e.to_string().contains("cancelled"), "{e}");
        let e = TransitionError::after_miss(&life, None, "in_progress", &["planned"]);
        assert!(matches!(e, TransitionError::NotFound { .. }));
    }
}
