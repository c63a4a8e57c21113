//! The teams import (`POST /api/v1/import/teams`), staged ([`crate::imports::staged`]): each
//! row is parsed ([`row`]) and checked against the stored teams and regions loaded once, with the
//! team as it will be written and its audit states prepared outside the write ([`check`]), staged
//! chunk by chunk in a `TEMP` table, checked across rows as SQL (duplicate codes), then written in
//! one short transaction of set-based statements ([`write`]): new teams, changed teams
//! (conditional on the filing state the check saw, affected rows counted: a team moved or deleted
//! meanwhile is a 409 and nothing is written), their specialties and audit rows.

use std::collections::{HashMap, HashSet};

use warp::reply::Response;

use super::teams::TeamRow;
use super::{FilingStatus, SpecialtyGrade};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::csvio::{Column, Record};
use crate::db::{Db, Held, Tx};
use crate::error::{ApiResult, FieldError};
use crate::http::Ctx;
use crate::imports::staged::Staged;
use crate::imports::{Errors, ImportSummary};
use crate::personal::Cipher;
use crate::time::Timestamp;

mod check;
mod row;
mod stage;
mod write;

/// `POST /api/v1/import/teams`.
pub async fn import(c: Ctx) -> ApiResult<Response> {
    let imp =
        TeamImport { principal: c.caller()?.clone(), actor: c.actor()?, now: c.now(), cipher: c.app.cipher.clone() };
    crate::imports::staged::respond(&c, &imp).await
}

/// A teams file, for a caller: teams matched by code, within the caller's jurisdiction.
pub struct TeamImport {
    principal: Principal,
    actor: Actor,
    now: Timestamp,
    cipher: Cipher,
}

/// A stored team with its specialties.
type Stored = (TeamRow, Vec<SpecialtyGrade>);

/// What a team row is checked against: the caller, every stored team by code (codes are unique
/// across the banner, so teams outside the jurisdiction too), every region, and what the team and
/// its audit states need (the actor, the clock, the cipher that masks stored phones).
pub struct TeamLookup {
    principal: Principal,
    actor: String,
    now: Timestamp,
    cipher: Cipher,
    existing: HashMap<String, Stored>,
    regions: HashSet<String>,
}

/// A checked team row, as staged. Every readable row is staged (for the duplicate check); only
/// rows that change something are written.
pub struct StagedTeam {
    line: u64,
    /// The team's code.
    code: String,
    /// The team as it will be stored (`id` 0 for a new team); None when the row changes nothing
    /// or has errors.
    team: Option<TeamRow>,
    /// Whether its specialties are (re)written: a new team, or changed specialties.
    specs_changed: bool,
    /// The filing state the check saw (None: a new team); the update is conditional on it.
    old_status: Option<FilingStatus>,
    specialties: Vec<SpecialtyGrade>,
    /// The stored state as audit JSON text (None: a new team).
    before: Option<String>,
    /// The new state as audit JSON text.
    after: Option<String>,
}

impl Staged for TeamImport {
    type Lookup = TeamLookup;
    type Row = StagedTeam;
    const COLUMNS: &'static [Column] = super::csv::TEAM_COLUMNS;

    async fn lookup(&self, db: &Db) -> ApiResult<TeamLookup> {
        check::lookup(self, db).await
    }

    fn check(lookup: &TeamLookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<StagedTeam> {
        check::check(lookup, rec, errors)
    }

    async fn create(conn: &mut Held) -> Result<(), sqlx::Error> {
        stage::create(conn).await
    }

    async fn stage(conn: &mut Held, rows: &[StagedTeam]) -> Result<(), sqlx::Error> {
        stage::stage(conn, rows).await
    }

    async fn check_staged(&self, conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
        stage::duplicates(conn, errors).await
    }

    async fn write(&self, tx: &mut Tx, rows: usize) -> ApiResult<ImportSummary> {
        write::write(tx, &self.actor, self.now, rows).await
    }
}
