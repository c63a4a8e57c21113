//! Drill storage.

use std::collections::HashMap;

use sqlx::types::Json;

use super::{Actual, Drill, Evaluation, Form, Purpose, Scope, Status};
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    series_id: Option<i64>,
    recurrence: Option<String>,
    title: String,
    #[sqlx(try_from = "String")]
    form: Form,
    #[sqlx(try_from = "String")]
    scope: Scope,
    #[sqlx(try_from = "String")]
    purpose: Purpose,
    objective: String,
    region_code: String,
    organiser_unit: String,
    participating_units: Json<Vec<String>>,
    place_name: String,
    lon: Option<f64>,
    lat: Option<f64>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    #[sqlx(try_from = "String")]
    status: Status,
    reminder_offsets: Json<Vec<i64>>,
    postponed_from: Option<Timestamp>,
    cancel_reason: Option<String>,
    actual: Option<Json<Actual>>,
    evaluation: Option<Json<Evaluation>>,
    sequence: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Row {
    fn into_drill(self, plan_ids: Vec<i64>, team_codes: Vec<String>) -> Drill {
        Drill {
            id: self.id,
            series_id: self.series_id,
            recurrence: self.recurrence,
            title: self.title,
            form: self.form,
            scope: self.scope,
            purpose: self.purpose,
            objective: self.objective,
            region_code: self.region_code,
            organiser_unit: self.organiser_unit,
            participating_units: self.participating_units.0,
            plan_ids,
            team_codes,
            place_name: self.place_name,
            lon: self.lon,
            lat: self.lat,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            status: self.status,
            status_label: self.status.label(),
            reminder_offsets: self.reminder_offsets.0,
            postponed_from: self.postponed_from,
            cancel_reason: self.cancel_reason,
            actual: self.actual.map(|j| j.0),
            evaluation: self.evaluation.map(|j| j.0),
            sequence: self.sequence,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

const COLUMNS: &str = "id, series_id, recurrence, title, form, scope, purpose, objective, region_code, organiser_unit, participating_units,
    place_name, lon, lat, starts_at, ends_at, status, reminder_offsets, postponed_from, cancel_reason, actual, evaluation, sequence, created_at, updated_at";

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Attaches plan ids and team codes to rows, with one query each for the whole batch.
async fn attach(db: &Db, rows: Vec<Row>) -> Result<Vec<Drill>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let ph = placeholders(1, ids.len());
    let plans_sql = format!("SELECT drill_id, plan_id FROM drill_plans WHERE drill_id IN ({ph}) ORDER BY plan_id");
    let teams_sql = format!("SELECT drill_id, team_code FROM drill_teams WHERE drill_id IN ({ph}) ORDER BY team_code");
    let plans: Vec<(i64, i64)> = with_db!(db, |p| {
        let mut q = sqlx::query_as(&plans_sql);
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await?
    });
    let teams: Vec<(i64, String)> = with_db!(db, |p| {
        let mut q = sqlx::query_as(&teams_sql);
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await?
    });
    let mut plan_map: HashMap<i64, Vec<i64>> = HashMap::new();
    for (d, p) in plans {
        plan_map.entry(d).or_default().push(p);
    }
    let mut team_map: HashMap<i64, Vec<String>> = HashMap::new();
    for (d, t) in teams {
        team_map.entry(d).or_default().push(t);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let id = r.id;
            r.into_drill(plan_map.remove(&id).unwrap_or_default(), team_map.remove(&id).unwrap_or_default())
        })
        .collect())
}

/// One drill.
pub async fn get(db: &Db, id: i64) -> Result<Option<Drill>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM drills WHERE id = $1");
    let row = with_db!(db, |p| sqlx::query_as::<_, Row>(&sql).bind(id).fetch_optional(p).await)?;
    Ok(attach(db, row.into_iter().collect()).await?.pop())
}

/// Several drills by id (one query for the drills, one each for their plans and teams).
pub async fn get_many(db: &Db, ids: &[i64]) -> Result<HashMap<i64, Drill>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM drills WHERE id IN ({})", placeholders(1, ids.len()));
    let rows = with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, Row>(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })?;
    Ok(attach(db, rows).await?.into_iter().map(|d| (d.id, d)).collect())
}

/// Filters of the drill list and calendar.
#[derive(Debug, Default)]
pub struct Filter {
    /// Jurisdiction bounds.
    pub bounds: (String, String),
    /// Starting at or after.
    pub from: Option<Timestamp>,
    /// Starting before.
    pub to: Option<Timestamp>,
    /// Status.
    pub status: Option<Status>,
    /// Exercising this plan.
    pub plan_id: Option<i64>,
}

/// Drills matching the filter, by start time.
pub async fn list(db: &Db, f: &Filter, limit: i64, offset: i64) -> Result<(Vec<Drill>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE region_code >= $1 AND region_code <= $2 AND ($3 IS NULL OR starts_at >= $3)
        AND ($4 IS NULL OR starts_at < $4) AND ($5 IS NULL OR status = $5)
        AND ($6 IS NULL OR id IN (SELECT drill_id FROM drill_plans WHERE plan_id = $6))";
    let sql = format!("SELECT {COLUMNS} FROM drills {WHERE} ORDER BY starts_at, id LIMIT $7 OFFSET $8");
    let count = format!("SELECT COUNT(*) FROM drills {WHERE}");
    let status = f.status.map(Status::as_str);
    let (rows, total) = with_db!(db, |p| {
        let rows = sqlx::query_as::<_, Row>(&sql)
            .bind(&f.bounds.0)
            .bind(&f.bounds.1)
            .bind(f.from)
            .bind(f.to)
            .bind(status)
            .bind(f.plan_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await?;
        let total: i64 = sqlx::query_scalar(&count)
            .bind(&f.bounds.0)
            .bind(&f.bounds.1)
            .bind(f.from)
            .bind(f.to)
            .bind(status)
            .bind(f.plan_id)
            .fetch_one(p)
            .await?;
        (rows, total)
    });
    Ok((attach(db, rows).await?, total))
}

/// Inserts a drill with its plans and teams; returns its id.
pub async fn insert(tx: &mut Tx, d: &Drill) -> Result<i64, sqlx::Error> {
    let id: i64 = with_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO drills (series_id, recurrence, title, form, scope, purpose, objective, region_code, organiser_unit,
             participating_units, place_name, lon, lat, starts_at, ends_at, status, reminder_offsets, postponed_from,
             cancel_reason, actual, evaluation, sequence, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
         RETURNING id",
    )
    .bind(d.series_id)
    .bind(&d.recurrence)
    .bind(&d.title)
    .bind(d.form.as_str())
    .bind(d.scope.as_str())
    .bind(d.purpose.as_str())
    .bind(&d.objective)
    .bind(&d.region_code)
    .bind(&d.organiser_unit)
    .bind(Json(&d.participating_units))
    .bind(&d.place_name)
    .bind(d.lon)
    .bind(d.lat)
    .bind(d.starts_at)
    .bind(d.ends_at)
    .bind(d.status.as_str())
    .bind(Json(&d.reminder_offsets))
    .bind(d.postponed_from)
    .bind(&d.cancel_reason)
    .bind(d.actual.as_ref().map(Json))
    .bind(d.evaluation.as_ref().map(Json))
    .bind(d.sequence)
    .bind(d.created_at)
    .bind(d.updated_at)
    .fetch_one(c)
    .await
    })?;
    set_links(tx, id, &d.plan_ids, &d.team_codes).await?;
    Ok(id)
}

async fn set_links(tx: &mut Tx, id: i64, plans: &[i64], teams: &[String]) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query("DELETE FROM drill_plans WHERE drill_id = $1").bind(id).execute(&mut *c).await?;
        sqlx::query("DELETE FROM drill_teams WHERE drill_id = $1").bind(id).execute(&mut *c).await?;
        for p in plans {
            sqlx::query("INSERT INTO drill_plans (drill_id, plan_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(*p)
                .execute(&mut *c)
                .await?;
        }
        for t in teams {
            sqlx::query("INSERT INTO drill_teams (drill_id, team_code) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(t)
                .execute(&mut *c)
                .await?;
        }
        Ok::<(), sqlx::Error>(())
    })
}

/// Writes every mutable field of a drill (and its plans and teams).
pub async fn update(tx: &mut Tx, d: &Drill) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE drills SET title = $2, form = $3, scope = $4, purpose = $5, objective = $6, organiser_unit = $7,
             participating_units = $8, place_name = $9, lon = $10, lat = $11, starts_at = $12, ends_at = $13, status = $14,
             reminder_offsets = $15, postponed_from = $16, cancel_reason = $17, actual = $18, evaluation = $19,
             sequence = $20, updated_at = $21
         WHERE id = $1",
    )
    .bind(d.id)
    .bind(&d.title)
    .bind(d.form.as_str())
    .bind(d.scope.as_str())
    .bind(d.purpose.as_str())
    .bind(&d.objective)
    .bind(&d.organiser_unit)
    .bind(Json(&d.participating_units))
    .bind(&d.place_name)
    .bind(d.lon)
    .bind(d.lat)
    .bind(d.starts_at)
    .bind(d.ends_at)
    .bind(d.status.as_str())
    .bind(Json(&d.reminder_offsets))
    .bind(d.postponed_from)
    .bind(&d.cancel_reason)
    .bind(d.actual.as_ref().map(Json))
    .bind(d.evaluation.as_ref().map(Json))
    .bind(d.sequence)
    .bind(d.updated_at)
    .execute(c)
    .await
    .map(|_| ())
    })?;
    set_links(tx, d.id, &d.plan_ids, &d.team_codes).await
}

/// The latest drill of a series (by start).
pub async fn latest_in_series(tx: &mut Tx, series_id: i64) -> Result<Option<(i64, Timestamp)>, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_as(
        "SELECT id, starts_at FROM drills WHERE id = $1 OR series_id = $1 ORDER BY starts_at DESC, id DESC LIMIT 1"
    )
    .bind(series_id)
    .fetch_optional(c)
    .await)
}

/// Regions of the given teams (for reminder recipients); unknown codes are absent.
pub async fn team_regions(tx: &mut Tx, codes: &[String]) -> Result<Vec<(String, String)>, sqlx::Error> {
    if codes.is_empty() {
        return Ok(vec![]);
    }
    let sql = format!("SELECT code, region_code FROM teams WHERE code IN ({})", placeholders(1, codes.len()));
    with_tx!(tx, |c| {
        let mut q = sqlx::query_as(&sql);
        for code in codes {
            q = q.bind(code);
        }
        q.fetch_all(c).await
    })
}

/// One drill, inside a transaction.
pub async fn get_tx(tx: &mut Tx, id: i64) -> Result<Option<Drill>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM drills WHERE id = $1");
    let row = with_tx!(tx, |c| sqlx::query_as::<_, Row>(&sql).bind(id).fetch_optional(c).await)?;
    let Some(row) = row else { return Ok(None) };
    let plans: Vec<i64> =
        with_tx!(tx, |c| sqlx::query_scalar("SELECT plan_id FROM drill_plans WHERE drill_id = $1 ORDER BY plan_id")
            .bind(id)
            .fetch_all(c)
            .await)?;
    let teams: Vec<String> = with_tx!(tx, |c| sqlx::query_scalar(
        "SELECT team_code FROM drill_teams WHERE drill_id = $1 ORDER BY team_code"
    )
    .bind(id)
    .fetch_all(c)
    .await)?;
    Ok(Some(row.into_drill(plans, teams)))
}

/// Marks a drill as the first of its recurring series.
pub async fn update_series(tx: &mut Tx, id: i64, series_id: i64) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("UPDATE drills SET series_id = $2 WHERE id = $1")
        .bind(id)
        .bind(series_id)
        .execute(c)
        .await
        .map(|_| ()))
}

/// How many drills of a series are still ahead (planned or postponed).
pub async fn upcoming_in_series(tx: &mut Tx, series_id: i64) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM drills WHERE series_id = $1 AND status IN ('planned', 'postponed')"
    )
    .bind(series_id)
    .fetch_one(c)
    .await)
}

/// Records "last drilled" on each plan a completed drill exercised (the drill's local end date).
pub async fn record_drilled(
    tx: &mut Tx,
    actor: &crate::audit::Actor,
    at: Timestamp,
    d: &Drill,
    bounds: (&str, &str),
) -> Result<(), sqlx::Error> {
    let date = d.ends_at.0.with_timezone(&crate::time::LOCAL_TZ).date_naive();
    let Some(form) = crate::plans::DrillForm::parse(d.form.as_str()) else { return Ok(()) };
    for plan in &d.plan_ids {
        crate::plans::store::record_drilled(tx, actor, at, *plan, date, form, bounds).await?;
    }
    Ok(())
}

/// Titles of plans, for the report.
pub async fn plan_titles(db: &Db, ids: &[i64]) -> Result<Vec<(i64, String)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let sql = format!(
        "SELECT p.id, v.title FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = COALESCE(p.current_version, p.latest_version)
         WHERE p.id IN ({}) ORDER BY p.id",
        placeholders(1, ids.len())
    );
    with_db!(db, |p| {
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}
