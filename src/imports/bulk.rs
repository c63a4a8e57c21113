//! Multi-row statements in chunks: how imports write many rows in few statements.
//!
//! Each statement binds at most [`MAX_PARAMS`] values, below SQLite's limit (32,766 since 3.32)
//! and PostgreSQL's (65,535), so a chunk of `MAX_PARAMS / columns` rows is one statement on
//! both backends. Statements are built with `sqlx::QueryBuilder`, which writes `$n` on
//! PostgreSQL and `?` on SQLite, inside [`crate::with_tx!`] so the code is written once.

/// Most bound values in one statement.
pub const MAX_PARAMS: usize = 30_000;

/// Rows per statement for a statement binding `columns` values per row.
pub const fn chunk(columns: usize) -> usize {
    let n = MAX_PARAMS / columns;
    // More rows per statement stop paying off well before the parameter limit.
    if n > 2_000 { 2_000 } else { n }
}
