//! Team storage.

use std::collections::HashMap;

use super::teams::TeamRow;
use super::{FilingStatus, SpecialtyGrade};
use crate::db::{Db, Tx};
use crate::vocab::Specialty;
use crate::{with_db, with_tx};

const SELECT: &str = "SELECT id, code, name, org_type, registration_no, region_code, lon, lat, equipment,
    leader_name, leader_phone, contact_name, contact_phone, filing_status, status_reason, submitted_by,
    submitted_at, decided_by, decided_at, approved_by, approved_at, created_at, updated_at FROM teams";

/// A team by code.
pub async fn get(db: &Db, code: &str) -> Result<Option<TeamRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_db!(db, |p| sqlx::query_as::<_, TeamRow>(&sql).bind(code).fetch_optional(p).await)
}

/// A team by code, inside a transaction.
pub async fn get_tx(tx: &mut Tx, code: &str) -> Result<Option<TeamRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE code = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, TeamRow>(&sql).bind(code).fetch_optional(c).await)
}

/// A team by id, inside a transaction.
pub async fn get_by_id_tx(tx: &mut Tx, id: i64) -> Result<Option<TeamRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, TeamRow>(&sql).bind(id).fetch_optional(c).await)
}

/// Filters of the team list.
#[derive(Debug, Default)]
pub struct TeamFilter<'a> {
    /// Only this filing state.
    pub status: Option<FilingStatus>,
    /// Only teams holding this specialty.
    pub specialty: Option<Specialty>,
    /// Name or code containing this text.
    pub q: Option<&'a str>,
}

/// Teams within the bounds, ordered by code.
pub async fn list(
    db: &Db,
    bounds: (&str, &str),
    f: &TeamFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TeamRow>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR filing_status = $3)
        AND ($4 IS NULL OR id IN (SELECT team_id FROM team_specialties WHERE specialty = $4))
        AND ($5 IS NULL OR name LIKE $5 OR code LIKE $5)";
    let sql = format!("{SELECT} {WHERE} ORDER BY code LIMIT $6 OFFSET $7");
    let count = format!("SELECT COUNT(*) FROM teams {WHERE}");
    let status = f.status.map(FilingStatus::as_str);
    let specialty = f.specialty.map(Specialty::code);
    let like = f.q.map(|q| format!("%{}%", q.replace(['%', '_'], "")));
    with_db!(db, |p| {
        let items = sqlx::query_as::<_, TeamRow>(&sql)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(status)
            .bind(specialty)
            .bind(&like)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(bounds.0)
            .bind(bounds.1)
            .bind(status)
            .bind(specialty)
            .bind(&like)
            .fetch_one(p)
            .await?;
        Ok((items, total))
    })
}

/// Every team in the bounds (for exports, maps and imports), ordered by code.
pub async fn all(db: &Db, bounds: (&str, &str), status: Option<FilingStatus>) -> Result<Vec<TeamRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR filing_status = $3) ORDER BY code"
    );
    let status = status.map(FilingStatus::as_str);
    with_db!(db, |p| sqlx::query_as::<_, TeamRow>(&sql).bind(bounds.0).bind(bounds.1).bind(status).fetch_all(p).await)
}

type SpecRow = (i64, String, Option<i64>);

fn to_grade(row: &SpecRow) -> Option<SpecialtyGrade> {
    Some(SpecialtyGrade { specialty: Specialty::parse(&row.1)?, grade: row.2.and_then(|g| u8::try_from(g).ok()) })
}

/// A team's specialties in their recorded order.
pub async fn specialties(db: &Db, team_id: i64) -> Result<Vec<SpecialtyGrade>, sqlx::Error> {
    const SQL: &str = "SELECT team_id, specialty, grade FROM team_specialties WHERE team_id = $1 ORDER BY position";
    let rows: Vec<SpecRow> = with_db!(db, |p| sqlx::query_as(SQL).bind(team_id).fetch_all(p).await)?;
    Ok(rows.iter().filter_map(to_grade).collect())
}

/// A team's specialties, inside a transaction.
pub async fn specialties_tx(tx: &mut Tx, team_id: i64) -> Result<Vec<SpecialtyGrade>, sqlx::Error> {
    const SQL: &str = "SELECT team_id, specialty, grade FROM team_specialties WHERE team_id = $1 ORDER BY position";
    let rows: Vec<SpecRow> = with_tx!(tx, |c| sqlx::query_as(SQL).bind(team_id).fetch_all(c).await)?;
    Ok(rows.iter().filter_map(to_grade).collect())
}

/// Specialties of every team in the bounds, by team id.
pub async fn specialties_in(db: &Db, bounds: (&str, &str)) -> Result<HashMap<i64, Vec<SpecialtyGrade>>, sqlx::Error> {
    const SQL: &str = "SELECT s.team_id, s.specialty, s.grade FROM team_specialties s JOIN teams t ON t.id = s.team_id
        WHERE t.region_code >= $1 AND t.region_code <= $2 ORDER BY s.team_id, s.position";
    let rows: Vec<SpecRow> = with_db!(db, |p| sqlx::query_as(SQL).bind(bounds.0).bind(bounds.1).fetch_all(p).await)?;
    let mut map: HashMap<i64, Vec<SpecialtyGrade>> = HashMap::new();
    for r in &rows {
        if let Some(g) = to_grade(r) {
            map.entry(r.0).or_default().push(g);
        }
    }
    Ok(map)
}

/// Inserts a team; returns its id.
pub async fn insert(tx: &mut Tx, r: &TeamRow) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO teams (code, name, org_type, registration_no, region_code, lon, lat, equipment, leader_name,
                leader_phone, contact_name, contact_phone, filing_status, status_reason, submitted_by, submitted_at,
                decided_by, decided_at, created_at, updated_at, approved_by, approved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
             RETURNING id",
        )
        .bind(&r.code)
        .bind(&r.name)
        .bind(r.org_type.as_str())
        .bind(&r.registration_no)
        .bind(&r.region_code)
        .bind(r.lon)
        .bind(r.lat)
        .bind(&r.equipment)
        .bind(&r.leader_name)
        .bind(&r.leader_phone)
        .bind(&r.contact_name)
        .bind(&r.contact_phone)
        .bind(r.filing_status.as_str())
        .bind(&r.status_reason)
        .bind(&r.submitted_by)
        .bind(r.submitted_at)
        .bind(&r.decided_by)
        .bind(r.decided_at)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(&r.approved_by)
        .bind(r.approved_at)
        .fetch_one(c)
        .await
    })
}

/// A team's filing lifecycle (state in `filing_status`).
pub const TEAM: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("teams", "队伍").state_column("filing_status");

/// Moves a team from filing state `from` to `r.filing_status` (the [`transition!`](crate::transition!)
/// that decides; `from` = `to` for an edit) and writes every mutable column. A team no longer in
/// `from` is a conflict naming its state, and nothing is written.
pub async fn update(tx: &mut Tx, r: &TeamRow, from: FilingStatus) -> Result<(), crate::transition::TransitionError> {
    crate::transition!(tx, TEAM, r.id, from [from.as_str()] => r.filing_status.as_str(), set { "updated_at" = r.updated_at })?;
    with_tx!(tx, |c| {
        sqlx::query(
            "UPDATE teams SET name = $2, org_type = $3, registration_no = $4, region_code = $5, lon = $6, lat = $7,
                equipment = $8, leader_name = $9, leader_phone = $10, contact_name = $11, contact_phone = $12,
                filing_status = $13, status_reason = $14, submitted_by = $15, submitted_at = $16, decided_by = $17,
                decided_at = $18, updated_at = $19, approved_by = $21, approved_at = $22
             WHERE id = $1 AND filing_status = $20",
        )
        .bind(r.id)
        .bind(&r.name)
        .bind(r.org_type.as_str())
        .bind(&r.registration_no)
        .bind(&r.region_code)
        .bind(r.lon)
        .bind(r.lat)
        .bind(&r.equipment)
        .bind(&r.leader_name)
        .bind(&r.leader_phone)
        .bind(&r.contact_name)
        .bind(&r.contact_phone)
        .bind(r.filing_status.as_str())
        .bind(&r.status_reason)
        .bind(&r.submitted_by)
        .bind(r.submitted_at)
        .bind(&r.decided_by)
        .bind(r.decided_at)
        .bind(r.updated_at)
        .bind(r.filing_status.as_str())
        .bind(&r.approved_by)
        .bind(r.approved_at)
        .execute(c)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Replaces a team's specialties.
pub async fn set_specialties(tx: &mut Tx, team_id: i64, list: &[SpecialtyGrade]) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query("DELETE FROM team_specialties WHERE team_id = $1").bind(team_id).execute(&mut *c).await?;
        for (i, s) in list.iter().enumerate() {
            sqlx::query("INSERT INTO team_specialties (team_id, specialty, grade, position) VALUES ($1, $2, $3, $4)")
                .bind(team_id)
                .bind(s.specialty.code())
                .bind(s.grade.map(i64::from))
                .bind(i as i64)
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    })
}
