//! Region storage.

use super::{Level, Region};
use crate::db::{Db, Tx};
use crate::{with_db, with_tx};

const SELECT: &str = "SELECT code, name, level, parent_code, lon, lat, boundary, created_at, updated_at FROM regions";

/// One region by code.
pub async fn get(db: &Db, code: &str) -> Result<Option<Region>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_db!(db, |p| sqlx::query_as::<_, Region>(&sql).bind(code).fetch_optional(p).await)
}

/// One region by code, inside a transaction (locks nothing; for read-your-writes).
pub async fn get_tx(tx: &mut Tx, code: &str) -> Result<Option<Region>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, Region>(&sql).bind(code).fetch_optional(c).await)
}

/// Regions within the bounds, optionally under a parent and at a level, ordered by code.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    parent: Option<&str>,
    level: Option<Level>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Region>, i64), sqlx::Error> {
    const WHERE: &str =
        "WHERE code >= $1 AND code <= $2 AND ($3 IS NULL OR parent_code = $3) AND ($4 IS NULL OR level = $4)";
    let sql = format!("{SELECT} {WHERE} ORDER BY code LIMIT $5 OFFSET $6");
    let count = format!("SELECT COUNT(*) FROM regions {WHERE}");
    let level = level.map(Level::as_str);
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, Region>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(parent)
            .bind(level)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 =
            sqlx::query_scalar(&count).bind(bounds.0).bind(bounds.1).bind(parent).bind(level).fetch_one(p).await?;
        Ok((items, total))
    })
}

/// Every region (code, name, level, parent, lon, lat) — the tree is small (tens of thousands at
/// most), and import and readiness need all of it.
pub async fn all(db: &Db) -> Result<Vec<Region>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY code");
    with_db!(db, |p| sqlx::query_as::<_, Region>(&sql).fetch_all(p).await)
}

/// Inserts a region.
pub async fn insert(tx: &mut Tx, r: &Region) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO regions (code, name, level, parent_code, lon, lat, boundary, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&r.code)
        .bind(&r.name)
        .bind(r.level.as_str())
        .bind(&r.parent_code)
        .bind(r.lon)
        .bind(r.lat)
        .bind(&r.boundary)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(c)
        .await
        .map(|_| ())
    })
}

/// Inserts many regions with one multi-row statement (at most
/// [`crate::imports::bulk::chunk`]`(9)` rows; parents before children).
pub async fn insert_many(tx: &mut Tx, rows: &[Region]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO regions (code, name, level, parent_code, lon, lat, boundary, created_at, updated_at) ",
        );
        q.push_values(rows, |mut b, r| {
            b.push_bind(&r.code)
                .push_bind(&r.name)
                .push_bind(r.level.as_str())
                .push_bind(&r.parent_code)
                .push_bind(r.lon)
                .push_bind(r.lat)
                .push_bind(&r.boundary)
                .push_bind(r.created_at)
                .push_bind(r.updated_at);
        });
        q.build().execute(c).await.map(|_| ())
    })
}

/// Writes name, parent, location and `updated_at` of many regions (by code) with one
/// `UPDATE … FROM (VALUES …)` (at most [`crate::imports::bulk::chunk`]`(6)` rows).
pub async fn update_many(tx: &mut Tx, rows: &[Region]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    with_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "UPDATE regions SET name = v.column2, parent_code = v.column3, lon = v.column4, lat = v.column5, updated_at = v.column6 FROM (",
        );
        q.push_values(rows, |mut b, r| {
            b.push_bind(&r.code)
                .push_bind(&r.name)
                .push_bind(&r.parent_code)
                .push_bind(r.lon)
                .push_bind(r.lat)
                .push_bind(r.updated_at);
        });
        q.push(") AS v WHERE regions.code = v.column1");
        q.build().execute(c).await.map(|_| ())
    })
}

/// Writes a region's mutable fields (name, parent, location, boundary, updated_at).
pub async fn update(tx: &mut Tx, r: &Region) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query("UPDATE regions SET name = $2, parent_code = $3, lon = $4, lat = $5, boundary = $6, updated_at = $7 WHERE code = $1")
            .bind(&r.code)
            .bind(&r.name)
            .bind(&r.parent_code)
            .bind(r.lon)
            .bind(r.lat)
            .bind(&r.boundary)
            .bind(r.updated_at)
            .execute(c)
            .await
            .map(|_| ())
    })
}
