//! The PostgreSQL insert of new members. The stage gave each row that may make a new member its
//! id already (`new_id`, drawn from the members' sequence: see `stage::pg`) and its complete
//! audit view (`after_json`), so no statement joins the new members back to the stage or updates
//! the stage, and the audit insert parses no JSON (their details, keys and audit rows are written
//! with the changed stored members', by [`super::MemberImport::write_details`]).

use super::super::stage::{DATA, STAGE};
use super::conflict;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::time::Timestamp;
use crate::with_tx;

/// Inserts the new members with the ids drawn while staging, in file order (the order the ids
/// were drawn in, so each index insert appends); the number inserted. A person registered
/// meanwhile in the same team is a 409.
pub(super) async fn insert_new(tx: &mut Tx, now: Timestamp) -> ApiResult<u64> {
    let missing: i64 = with_tx!(&mut *tx, |c| sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {STAGE} WHERE member_id IS NULL AND new_id IS NULL"
    ))
    .fetch_one(c)
    .await)?;
    if missing != 0 {
        return Err(ApiError::Internal(anyhow::anyhow!("{missing} new members staged without an id")));
    }
    let insert = format!(
        "INSERT INTO members (id, team_id, name, id_number, id_index, phone, status, temp_callup_id, anonymised_at, created_at, updated_at)
         SELECT s.new_id, s.team_id, s.name, d.id_enc, s.id_index, d.phone_enc, s.status_to, NULL, NULL, $1, $1
         FROM {STAGE} s JOIN {DATA} d ON d.line = s.line WHERE s.member_id IS NULL ORDER BY s.line"
    );
    match with_tx!(&mut *tx, |c| sqlx::query(&insert).bind(now).execute(c).await.map(|r| r.rows_affected())) {
        Ok(n) => Ok(n),
        Err(e) if crate::db::is_unique_violation(&e) => Err(conflict("文件中的队员已被其他请求同时登记到同一队伍")),
        Err(e) => Err(e.into()),
    }
}
