//! Resource-plan lines: one depot's units of an item, or one team's people of a specialty,
//! proposed for an event and then acted on. A line's own state moves only through
//! [`crate::transition!`]; a force line's answer (accepted/declined) is the call-up's state.

use schemars::JsonSchema;
use serde::Serialize;

use super::LineStatus;
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// A line as stored, with the names a person reads and the call-up's state.
#[derive(Debug, Clone, Serialize, JsonSchema, sqlx::FromRow)]
pub struct Line {
    /// Id.
    pub id: i64,
    /// Activation (level decision) that proposed it.
    pub activation_id: i64,
    /// `supply` or `force`.
    pub kind: String,
    /// Item code (supply) or specialty code (force).
    pub need: String,
    /// `nearest` (within the plan's distance), `agreement` (协议储备) or `beyond` (farther away,
    /// e.g. a neighbouring township).
    pub source: String,
    /// Depot (supply lines).
    pub depot_id: Option<i64>,
    /// Depot or team name.
    pub name: String,
    /// Depot code or team code.
    pub code: String,
    /// Region of the depot or team.
    pub region_code: String,
    /// Units (supply) or people (force).
    pub quantity: i64,
    /// Distance from the event's point, km.
    pub distance_km: f64,
    /// The line's own state.
    #[sqlx(try_from = "String")]
    pub status: LineStatus,
    /// Drill-mode line: no stock moved.
    pub exercise: bool,
    /// Call-up (force lines once requested).
    pub callup_id: Option<i64>,
    /// Call-up state (`requested`, `accepted`, `declined`, `closed`).
    pub callup_status: Option<String>,
    /// Escalation of an unanswered call-up: `none`, `region`, `banner`.
    pub escalation: String,
    /// Who acted on it (requested or dispatched).
    pub acted_by: Option<String>,
    /// When.
    pub acted_at: Option<Timestamp>,
    /// When it reached the scene.
    pub arrived_at: Option<Timestamp>,
}

impl Line {
    /// What the board shows: the line's state, or the team's answer while the call-up waits
    /// for arrival.
    pub fn board_state(&self) -> &str {
        match (self.status, self.callup_status.as_deref()) {
            (LineStatus::Requested, Some("accepted")) => "accepted",
            (LineStatus::Requested | LineStatus::Returned, Some("declined")) => "declined",
            (s, _) => s.code(),
        }
    }

    /// Whether the line still counts toward its requirement (not superseded or declined).
    pub fn counts(&self) -> bool {
        !matches!(self.status, LineStatus::Proposed | LineStatus::Superseded) && self.board_state() != "declined"
    }
}

const SELECT: &str = "SELECT l.id, l.activation_id, l.kind, l.need, l.source, l.depot_id,
    COALESCE(d.name, t.name) AS name, COALESCE(d.code, t.code) AS code, l.region_code, l.quantity, l.distance_km, l.status,
    l.exercise, l.callup_id, c.status AS callup_status, l.escalation, l.acted_by, l.acted_at, l.arrived_at
    FROM event_lines l LEFT JOIN depots d ON d.id = l.depot_id LEFT JOIN teams t ON t.id = l.team_id
    LEFT JOIN callups c ON c.id = l.callup_id";

/// An event's lines in order.
pub async fn of_event(db: &Db, event_id: i64) -> Result<Vec<Line>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE l.event_id = $1 ORDER BY l.id");
    with_db!(db, |p| sqlx::query_as::<_, Line>(&sql).bind(event_id).fetch_all(p).await)
}

/// An event's lines inside a transaction.
pub async fn of_event_tx(tx: &mut Tx, event_id: i64) -> Result<Vec<Line>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE l.event_id = $1 ORDER BY l.id");
    with_tx!(tx, |c| sqlx::query_as::<_, Line>(&sql).bind(event_id).fetch_all(c).await)
}

/// A line to insert.
#[derive(Debug, Clone)]
pub struct NewLine {
    /// `supply` or `force`.
    pub kind: &'static str,
    /// Item or specialty code.
    pub need: String,
    /// Source.
    pub source: &'static str,
    /// Depot.
    pub depot_id: Option<i64>,
    /// Team code.
    pub team_code: Option<String>,
    /// Region of the depot or team.
    pub region_code: String,
    /// Units or people.
    pub quantity: i64,
    /// Distance, km.
    pub distance_km: f64,
}

/// Inserts proposed lines for an activation.
pub async fn insert(
    tx: &mut Tx,
    event_id: i64,
    activation_id: i64,
    exercise: bool,
    lines: &[NewLine],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    for l in lines {
        with_tx!(&mut *tx, |c| {
            sqlx::query(
            "INSERT INTO event_lines (event_id, activation_id, kind, need, source, depot_id, team_id, region_code, quantity,
                distance_km, status, exercise, escalation, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, (SELECT id FROM teams WHERE code = $7), $8, $9, $10, 'proposed', $11, 'none', $12)"
        )
        .bind(event_id)
        .bind(activation_id)
        .bind(l.kind)
        .bind(&l.need)
        .bind(l.source)
        .bind(l.depot_id)
        .bind(&l.team_code)
        .bind(&l.region_code)
        .bind(l.quantity)
        .bind(l.distance_km)
        .bind(exercise)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ())
        })?;
    }
    Ok(())
}
