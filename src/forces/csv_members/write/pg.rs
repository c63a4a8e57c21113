//! The PostgreSQL write of new members and of the details, keys and audit rows of every member
//! written. The stage gave each row that may make a new member its id already (`new_id`, drawn
//! from the members' sequence: see `stage::pg`) and its complete audit view (`after_json`), so
//! no statement joins the new members back to the stage or updates the stage, and the audit
//! insert parses no JSON. A member written is a new one (`member_id IS NULL`: no stored member
//! matched) or a changed stored one (`action = 2`).

use super::super::MemberImport;
use super::super::stage::{CERTS, DATA, POLICIES, SKILLS, STAGE};
use super::{conflict, run};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::with_tx;

/// The rows written, and each one's member id.
const WRITTEN: &str = "(s.member_id IS NULL OR s.action = 2)";
const ID: &str = "COALESCE(s.member_id, s.new_id)";

/// Inserts the `new` members, then the details, person keys and audit rows of every member
/// written (`updated` stored members changed before); the number of members inserted. `step`
/// records how long each statement group took.
pub(super) async fn write_new(
    tx: &mut Tx,
    imp: &MemberImport,
    new: i64,
    updated: u64,
    step: &mut impl FnMut(&'static str),
) -> ApiResult<u64> {
    let now = imp.now;
    let missing: i64 = with_tx!(&mut *tx, |c| sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {STAGE} WHERE member_id IS NULL AND new_id IS NULL"
    ))
    .fetch_one(c)
    .await)?;
    if missing != 0 {
        return Err(ApiError::Internal(anyhow::anyhow!("{missing} new members staged without an id")));
    }
    // In file order (the ids were drawn in that order): each index insert appends.
    let insert = format!(
        "INSERT INTO members (id, team_id, name, id_number, id_index, phone, status, temp_callup_id, anonymised_at, created_at, updated_at)
         SELECT s.new_id, s.team_id, s.name, d.id_enc, s.id_index, d.phone_enc, s.status_to, NULL, NULL, $1, $1
         FROM {STAGE} s JOIN {DATA} d ON d.line = s.line WHERE s.member_id IS NULL ORDER BY s.line"
    );
    let created =
        match with_tx!(&mut *tx, |c| sqlx::query(&insert).bind(now).execute(c).await.map(|r| r.rows_affected())) {
            Ok(n) => n,
            Err(e) if crate::db::is_unique_violation(&e) => {
                return Err(conflict("文件中的队员已被其他请求同时登记到同一队伍"));
            }
            Err(e) => return Err(e.into()),
        };
    if created != new as u64 {
        return Err(ApiError::Internal(anyhow::anyhow!("{new} members to insert, {created} inserted")));
    }
    step("inserts");
    // Details: skills and policies replaced for stored members, certificates added or corrected
    // in place by number (never removed).
    for table in ["member_skills", "member_insurance"].into_iter().filter(|_| updated > 0) {
        run(tx, &format!("DELETE FROM {table} WHERE member_id IN (SELECT member_id FROM {STAGE} WHERE action = 2)"))
            .await?;
    }
    step("deletes");
    run(
        tx,
        &format!(
            "INSERT INTO member_skills (member_id, specialty)
             SELECT {ID}, k.specialty FROM {SKILLS} k JOIN {STAGE} s ON s.line = k.line WHERE {WRITTEN} ORDER BY k.line, k.specialty"
        ),
    )
    .await?;
    step("skills");
    // A new member has no certificate yet: a plain insert (no conflict to look for); a stored
    // member's are corrected by number.
    let certs = format!(
        "INSERT INTO member_certificates (member_id, kind, number, issued, expires)
         SELECT {ID}, k.kind, k.number, k.issued, k.expires FROM {CERTS} k JOIN {STAGE} s ON s.line = k.line"
    );
    run(tx, &format!("{certs} WHERE s.member_id IS NULL ORDER BY k.line, k.pos")).await?;
    if updated > 0 {
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
             SELECT {ID}, p.insurer, p.policy_number, p.start_date, p.end_date FROM {POLICIES} p JOIN {STAGE} s ON s.line = p.line
             WHERE {WRITTEN} ORDER BY p.line, p.pos"
        ),
    )
    .await?;
    step("insurance");
    // Person keys of new members, and of stored ones who had none yet.
    let keys = format!(
        "INSERT INTO person_keys (member_id, key_enc) SELECT {ID}, d.key_enc FROM {STAGE} s JOIN {DATA} d ON d.line = s.line
         WHERE {WRITTEN} AND d.key_enc IS NOT NULL ORDER BY s.line"
    );
    match run(tx, &keys).await {
        Ok(_) => {}
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(conflict("有队员被其他请求修改（个人数据密钥已创建）"));
        }
        Err(e) => return Err(e.into()),
    }
    step("person_keys");
    // One audit row per member written: a new member's view as staged (`JSONB` already, with
    // its id), a stored member's before and after views as the check sealed them.
    let audit = format!(
        "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)
         SELECT $1, $2, $3, 'import', 'member', CAST({ID} AS TEXT), s.region_code, CAST(d.before_state AS JSONB),
            CASE WHEN s.member_id IS NULL THEN d.after_json ELSE CAST(d.after_state AS JSONB) END, $4
         FROM {STAGE} s JOIN {DATA} d ON d.line = s.line WHERE {WRITTEN} ORDER BY s.line"
    );
    crate::imports::staged::audit_staged(tx, &audit, now, &imp.actor, created + updated, "members").await?;
    step("audit");
    Ok(created)
}
