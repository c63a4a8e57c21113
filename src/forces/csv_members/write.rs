//! Writing a checked, staged members file in one short transaction, with set-based statements
//! only: status changes through [`transition_many!`](crate::transition_many!) and the stored
//! members' columns updated where their status is still the one checked (a member moved
//! meanwhile, say deployed by a call-up, is a 409 and nothing is written), new members inserted
//! (a person registered meanwhile in the same team is a 409), their skills, certificates,
//! policies and person keys, and one audit row per member with the views sealed while staging.
//! The stored rows are exactly those [`super::super::members::create`] and an edit write one by
//! one.

use std::collections::HashMap;

use super::super::{MemberStatus, member_store};
use super::MemberImport;
use super::stage::{CERTS, DATA, POLICIES, SKILLS, STAGE};
use crate::db::{Backend, Tx};
use crate::error::{ApiError, ApiResult};
use crate::imports::staged::BulkLog;
use crate::regions::import::ImportSummary;
use crate::with_tx;

mod pg;

/// A staged statement's affected rows.
async fn run(tx: &mut Tx, sql: &str) -> Result<u64, sqlx::Error> {
    with_tx!(&mut *tx, |c| sqlx::query(sql).execute(c).await.map(|r| r.rows_affected()))
}

pub(super) fn conflict(what: &str) -> ApiError {
    ApiError::Conflict(format!("导入期间{what}；未写入任何数据，请重新导入"))
}

impl MemberImport {
    /// The write of [`crate::imports::staged::Staged::write`] (`rows`: data rows read).
    pub(super) async fn write_staged(&self, tx: &mut Tx, rows: usize) -> ApiResult<ImportSummary> {
        let now = self.now;
        // How long each statement group takes (logged: where the write lock goes).
        let mut timings: Vec<(&'static str, u128)> = Vec::new();
        let mut last = std::time::Instant::now();
        let mut step = |name: &'static str| {
            timings.push((name, last.elapsed().as_millis()));
            last = std::time::Instant::now();
        };
        let counts = format!(
            "SELECT COALESCE(SUM(CASE WHEN member_id IS NULL THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN action = 2 THEN 1 ELSE 0 END), 0) FROM {STAGE}"
        );
        let (new, changed): (i64, i64) = with_tx!(&mut *tx, |c| sqlx::query_as(&counts).fetch_one(c).await)?;
        // Each team whose members change is one key of the change log: more than a few thousand
        // are logged as one change of every team (migration 0030), not one trigger run per
        // member, skill and policy row.
        let teams: i64 = if new + changed > BulkLog::KEYS {
            let sql = format!("SELECT COUNT(DISTINCT team_id) FROM {STAGE} WHERE member_id IS NULL OR action = 2");
            with_tx!(&mut *tx, |c| sqlx::query_scalar(&sql).fetch_one(c).await)?
        } else {
            new + changed
        };
        let log = BulkLog::begin(tx, crate::change_feed::Topic::Forces, teams).await?;

        // Stored members: status changes first (the one way a status changes), then the columns,
        // where the status is still the one the import checked.
        let steps_sql = format!(
            "SELECT member_id, from_status, status_to FROM {STAGE} WHERE action = 2 AND from_status <> status_to"
        );
        let moves: Vec<(i64, String, String)> = with_tx!(&mut *tx, |c| sqlx::query_as(&steps_sql).fetch_all(c).await)?;
        let mut steps: HashMap<(MemberStatus, MemberStatus), Vec<i64>> = HashMap::new();
        for (id, from, to) in moves {
            let (Some(from), Some(to)) = (MemberStatus::parse(&from), MemberStatus::parse(&to)) else {
                return Err(ApiError::Internal(anyhow::anyhow!("member {id}: staged status unknown")));
            };
            steps.entry((from, to)).or_default().push(id);
        }
        for ((from, to), ids) in steps {
            let moved = crate::transition_many!(&mut *tx, member_store::MEMBER, &ids, from [from.as_str()] => to.as_str(), set { "updated_at" = now })?;
            if moved.len() != ids.len() {
                return Err(conflict(&format!("有队员被其他请求修改（不再是「{}」）", from.label())));
            }
        }
        step("transitions");
        let update = format!(
            "UPDATE members SET name = s.name, phone = s.phone_enc, updated_at = $1
             FROM (SELECT u.member_id, u.name, u.status_to, d.phone_enc FROM {STAGE} u JOIN {DATA} d ON d.line = u.line WHERE u.action = 2) AS s
             WHERE members.id = s.member_id AND members.status = s.status_to"
        );
        let updated =
            with_tx!(&mut *tx, |c| sqlx::query(&update).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
        if updated != changed as u64 {
            return Err(conflict("有队员被其他请求修改（不再是导入检查时的状态）"));
        }

        step("updates");
        // New members: on PostgreSQL with the ids drawn while staging (`pg`); on SQLite in the
        // order prepared outside the lock, with their own details, keys and audit rows
        // (`prepare::write_new`; their staged rows keep `action = 0`).
        let (created, written) = match tx.backend() {
            Backend::Postgres => (pg::insert_new(tx, now).await?, Written::NEW_AND_CHANGED),
            Backend::Sqlite => (super::prepare::write_new(tx, now, &self.actor, new).await?, Written::CHANGED),
        };
        if created != new as u64 {
            return Err(ApiError::Internal(anyhow::anyhow!("{new} members to insert, {created} inserted")));
        }
        step("inserts");
        self.write_details(tx, written, created, updated, &mut step).await?;
        tracing::info!(target: "yingji::imports", steps = ?timings, "members import write steps (ms)");
        log.end(tx).await?;
        let unchanged = rows - (created + updated) as usize;
        Ok(ImportSummary { rows, created: created as usize, updated: updated as usize, unchanged })
    }

    /// The details, person keys and audit rows of the members `written` (`created` new ones
    /// among them when [`Written::new`], `updated` stored ones changed before): skills and
    /// policies replaced for stored members, certificates added or corrected in place by number
    /// (never removed), and one audit row each with the views sealed while staging.
    async fn write_details(
        &self,
        tx: &mut Tx,
        written: Written,
        created: u64,
        updated: u64,
        step: &mut impl FnMut(&'static str),
    ) -> ApiResult<()> {
        let Written { rows, id, new } = written;
        for table in ["member_skills", "member_insurance"].into_iter().filter(|_| updated > 0) {
            run(
                tx,
                &format!("DELETE FROM {table} WHERE member_id IN (SELECT member_id FROM {STAGE} WHERE action = 2)"),
            )
            .await?;
        }
        step("deletes");
        run(
            tx,
            &format!(
                "INSERT INTO member_skills (member_id, specialty)
                 SELECT {id}, k.specialty FROM {SKILLS} k JOIN {STAGE} s ON s.line = k.line WHERE {rows} ORDER BY k.line, k.specialty"
            ),
        )
        .await?;
        step("skills");
        // A new member has no certificate yet: a plain insert (no conflict to look for); a stored
        // member's are corrected by number.
        let certs = format!(
            "INSERT INTO member_certificates (member_id, kind, number, issued, expires)
             SELECT {id}, k.kind, k.number, k.issued, k.expires FROM {CERTS} k JOIN {STAGE} s ON s.line = k.line"
        );
        if new {
            run(tx, &format!("{certs} WHERE s.member_id IS NULL ORDER BY k.line, k.pos")).await?;
        }
        if updated > 0 {
            // `WHERE` before `ON CONFLICT` also keeps SQLite's parser from reading `ON` as a join's.
            run(
                tx,
                &format!(
                    "{certs} WHERE s.action = 2 ORDER BY k.line, k.pos
                     ON CONFLICT (member_id, number) DO UPDATE SET kind = excluded.kind, issued = excluded.issued, expires = excluded.expires"
                ),
            )
            .await?;
        }
        step("certificates");
        run(
            tx,
            &format!(
                "INSERT INTO member_insurance (member_id, insurer, policy_number, start_date, end_date)
                 SELECT {id}, p.insurer, p.policy_number, p.start_date, p.end_date FROM {POLICIES} p JOIN {STAGE} s ON s.line = p.line
                 WHERE {rows} ORDER BY p.line, p.pos"
            ),
        )
        .await?;
        step("insurance");
        // Person keys of new members, and of stored ones who had none yet.
        let keys = format!(
            "INSERT INTO person_keys (member_id, key_enc) SELECT {id}, d.key_enc FROM {STAGE} s JOIN {DATA} d ON d.line = s.line
             WHERE {rows} AND d.key_enc IS NOT NULL ORDER BY s.line"
        );
        match run(tx, &keys).await {
            Ok(_) => {}
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(conflict("有队员被其他请求修改（个人数据密钥已创建）"));
            }
            Err(e) => return Err(e.into()),
        }
        step("person_keys");
        // One audit row per member written, with the views sealed while staging (on PostgreSQL a
        // new member's complete view is staged as `JSONB` with its id; see `stage::pg`).
        let (before, after) = match tx.backend() {
            Backend::Sqlite => ("d.before_state", "d.after_state"),
            Backend::Postgres => (
                "CAST(d.before_state AS JSONB)",
                "CASE WHEN s.member_id IS NULL THEN d.after_json ELSE CAST(d.after_state AS JSONB) END",
            ),
        };
        let audit = format!(
            "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)
             SELECT $1, $2, $3, 'import', 'member', CAST({id} AS TEXT), s.region_code, {before}, {after}, $4
             FROM {STAGE} s JOIN {DATA} d ON d.line = s.line WHERE {rows} ORDER BY s.line"
        );
        let audited = if new { created + updated } else { updated };
        crate::imports::staged::audit_staged(tx, &audit, self.now, &self.actor, audited, "members").await?;
        step("audit");
        Ok(())
    }
}

/// Which staged rows [`MemberImport::write_details`] writes, and each one's member id.
#[derive(Clone, Copy)]
struct Written {
    /// The condition on the stage `s`.
    rows: &'static str,
    /// The member id of a row.
    id: &'static str,
    /// New members are among them.
    new: bool,
}

impl Written {
    /// PostgreSQL: new members (no stored member matched; the id drawn while staging) and the
    /// changed stored ones.
    const NEW_AND_CHANGED: Written =
        Written { rows: "(s.member_id IS NULL OR s.action = 2)", id: "COALESCE(s.member_id, s.new_id)", new: true };
    /// SQLite: the changed stored members only (the new ones are written in key order by
    /// `prepare::write_new`, details and all).
    const CHANGED: Written = Written { rows: "s.action = 2", id: "s.member_id", new: false };
}
