//! Staging on PostgreSQL: each chunk copied into the staging tables with `COPY … FROM STDIN`
//! ([`crate::imports::copy`]), and every row that may make a new member given its id now, drawn
//! from the members' own sequence, so that the write inserts the members with their ids (no
//! statement joins the new members back to the stage) and their audit views are staged complete
//! (`after_json`, already `JSONB`: the write copies them, it parses nothing).
//!
//! An id drawn for a row that turns out to update a stored member, or for an import that is
//! rejected, is never used: the sequence has a gap there, as after any rolled-back insert.

use sqlx::PgConnection;

use super::{CERTS, DATA, POLICIES, SKILLS, STAGE, StagedMember};
use crate::forces::MemberStatus;
use crate::imports::copy::CopyRows;

/// Adds the PostgreSQL stage's columns to [`STAGE`] (`new_id`: the id a new member gets) and
/// [`DATA`] (`after_json`: a new member's audit view with that id).
pub(super) async fn add_columns(c: &mut PgConnection) -> Result<(), sqlx::Error> {
    for sql in [
        format!("ALTER TABLE {STAGE} ADD COLUMN new_id BIGINT"),
        format!("ALTER TABLE {DATA} ADD COLUMN after_json JSONB"),
    ] {
        sqlx::query(&sql).execute(&mut *c).await?;
    }
    Ok(())
}

/// Stages a chunk of checked rows (see the module documentation).
pub(super) async fn stage(c: &mut PgConnection, rows: &[StagedMember]) -> Result<(), sqlx::Error> {
    let wanted = rows.iter().filter(|s| s.after.is_some()).count();
    let mut ids: Vec<i64> = if wanted == 0 {
        Vec::new()
    } else {
        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('members', 'id')) FROM generate_series(1, $1)")
            .bind(wanted as i64)
            .fetch_all(&mut *c)
            .await?
    };
    if ids.len() != wanted {
        return Err(sqlx::Error::Protocol(format!("{wanted} member ids asked for, {} drawn", ids.len())));
    }
    // In file order, as the one `INSERT … ORDER BY line` gave them before.
    ids.sort_unstable();
    let mut ids = ids.into_iter();

    let (mut stage, mut data) = (CopyRows::new(), CopyRows::new());
    let (mut skills, mut certs, mut policies) = (CopyRows::new(), CopyRows::new(), CopyRows::new());
    for s in rows {
        let line = s.line as i64;
        let new_id = if s.after.is_some() { ids.next() } else { None };
        stage
            .plain(Some(line))
            .plain(Some(s.team_id))
            .text(Some(&s.region))
            .text(Some(&s.name))
            .text(s.id_index.as_deref())
            .text(s.masked_id.as_deref())
            .plain(Some(s.phone_kind))
            .text(s.phone_mask.as_deref())
            .plain(s.skills.map(|k| k.bits()))
            .text(s.status.map(MemberStatus::as_str))
            .text(Some(s.status_to.as_str()))
            .text(s.new_error.as_ref().map(|e| e.0))
            .text(s.new_error.as_ref().map(|e| e.1.as_str()))
            .plain(new_id);
        stage.end_row();
        // The view was checked to hold `"id":0,` once (see `check`): the id goes there.
        let after = match (new_id, &s.after) {
            (Some(id), Some(view)) => Some(view.replacen("\"id\":0,", &format!("\"id\":{id},"), 1)),
            _ => None,
        };
        data.plain(Some(line))
            .text(s.id_enc.as_deref())
            .text(s.phone_enc.as_deref())
            .text(s.key_enc.as_deref())
            .text(after.as_deref());
        data.end_row();
        for k in s.skills.map(super::row::Skills::list).unwrap_or_default() {
            skills.plain(Some(line)).text(Some(k.code()));
            skills.end_row();
        }
        for (pos, k) in s.certs.iter().enumerate() {
            certs
                .plain(Some(line))
                .plain(Some(pos))
                .text(Some(&k.kind))
                .text(Some(&k.number))
                .plain(Some(k.issued))
                .plain(k.expires);
            certs.end_row();
        }
        if let Some(p) = &s.policy {
            policies
                .plain(Some(line))
                .plain(Some(0))
                .text(Some(&p.insurer))
                .text(Some(&p.policy_number))
                .plain(Some(p.start))
                .plain(Some(p.end));
            policies.end_row();
        }
    }
    stage
        .copy_into(
            c,
            STAGE,
            "line, team_id, region_code, name, id_index, masked_id, phone_kind, phone_mask, skills, status, status_to, new_error_column, new_error, new_id",
        )
        .await?;
    data.copy_into(c, DATA, "line, id_enc, phone_enc, key_enc, after_json").await?;
    skills.copy_into(c, SKILLS, "line, specialty").await?;
    certs.copy_into(c, CERTS, "line, pos, kind, number, issued, expires").await?;
    policies.copy_into(c, POLICIES, "line, pos, insurer, policy_number, start_date, end_date").await?;
    Ok(())
}
