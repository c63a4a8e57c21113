//! The checks across a staged members file and against stored members, as SQL on the staged rows
//! (outside any transaction, no lock on the service's tables): each row resolved to the stored
//! member it updates (same team and blind index, or the one member of the team with that name
//! and masked ID number) or to none (a new member), rows naming one person twice, the checks a
//! new member passes (prepared while staging), and for rows that update a stored member the
//! checks the one-by-one API makes (masked phone, status change, details) and the change itself
//! prepared (phone encrypted, audit views sealed under the person's key), so the write is
//! set-based.

use chrono::NaiveDate;
use futures_util::TryStreamExt;

use super::super::members::{self, Certificate, Details, Insurance, MemberRow};
use super::super::{MemberStatus, member_store};
use super::row::{Skills, merge_details};
use super::stage::{CERTS, DATA, PHONE_MASKED, PHONE_SET, POLICIES, SKILLS, STAGE, stage_policies, stage_skills};
use super::{MemberImport, problem_text, sealed};
use crate::db::{Backend, Held};
use crate::error::{ApiError, ApiResult};
use crate::imports::{Errors, bulk};
use crate::personal::{Field, mask_id, mask_phone};
use crate::with_held;

/// Staged rows that update stored members, checked at a time.
const CHUNK: i64 = 2_000;

/// A staged row that names a stored member, with that member.
#[derive(sqlx::FromRow)]
struct Matched {
    line: i64,
    file_name: String,
    phone_kind: i64,
    file_phone: Option<String>,
    phone_mask: Option<String>,
    skills: Option<i64>,
    file_status: Option<String>,
    key_enc: Option<String>,
    #[sqlx(flatten)]
    member: MemberRow,
}

/// A stored member's change, as staged for the write.
struct Change {
    line: i64,
    name: String,
    phone: Option<String>,
    to: MemberStatus,
    from: MemberStatus,
    before: String,
    after: String,
    /// A new person key (the member had none yet).
    key_enc: Option<String>,
    details: Details,
}

impl MemberImport {
    /// The check of [`crate::imports::staged::Staged::check_staged`].
    pub(super) async fn resolve(&self, conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
        let backend = conn.backend();
        if backend == Backend::Postgres {
            // Temporary tables are never analysed by autovacuum: without statistics the planner
            // takes them for a few rows.
            for t in [STAGE, DATA, SKILLS, CERTS, POLICIES] {
                with_held!(&mut *conn, |c| sqlx::query(&format!("ANALYZE {t}")).execute(c).await.map(|_| ()))?;
            }
        }
        // Full ID numbers: the stored member of the team with that blind index.
        let by_index = match backend {
            Backend::Sqlite => format!(
                "UPDATE {STAGE} SET member_id = (SELECT m.id FROM members m WHERE m.team_id = {STAGE}.team_id AND m.id_index = {STAGE}.id_index)
                 WHERE id_index IS NOT NULL"
            ),
            Backend::Postgres => format!(
                "UPDATE {STAGE} SET member_id = m.id FROM members m WHERE m.team_id = {STAGE}.team_id AND m.id_index = {STAGE}.id_index"
            ),
        };
        with_held!(&mut *conn, |c| sqlx::query(&by_index).execute(c).await.map(|_| ()))?;
        self.match_masked(conn, errors).await?;
        // Rows naming one person twice: each later line names the first.
        let dups_sql = format!(
            "SELECT line, first FROM (
               SELECT line, MIN(line) OVER (PARTITION BY team_id, id_index) AS first FROM {STAGE} WHERE id_index IS NOT NULL) AS d
             WHERE line > first ORDER BY line"
        );
        let dups: Vec<(i64, i64)> = with_held!(&mut *conn, |c| sqlx::query_as(&dups_sql).fetch_all(c).await)?;
        for (line, first) in &dups {
            errors.at(*line as u64, "id_number", format!("与第 {first} 行是同一名队员"));
        }
        for chunk in dups.chunks(500) {
            with_held!(&mut *conn, |c| {
                let mut q = sqlx::QueryBuilder::new(format!("UPDATE {STAGE} SET dup = 1 WHERE line IN ("));
                let mut list = q.separated(", ");
                for (line, _) in chunk {
                    list.push_bind(*line);
                }
                q.push(")");
                q.build().execute(c).await.map(|_| ())
            })?;
        }
        // New members: the checks made while staging.
        let new_sql = format!(
            "SELECT line, new_error_column, new_error FROM {STAGE}
             WHERE member_id IS NULL AND id_index IS NOT NULL AND dup = 0 AND new_error IS NOT NULL ORDER BY line"
        );
        with_held!(&mut *conn, |c| {
            let mut rows = sqlx::query_as::<_, (i64, Option<String>, String)>(&new_sql).fetch(c);
            while let Some((line, column, message)) = rows.try_next().await? {
                match column.as_deref() {
                    Some("phone") => errors.at(line as u64, "phone", message),
                    Some("status") => errors.at(line as u64, "status", message),
                    _ => errors.row(line as u64, message),
                }
            }
            Ok::<_, sqlx::Error>(())
        })?;
        // Stored members: checked and their changes prepared, a chunk at a time.
        let mut after = 0i64;
        loop {
            let last = self.check_updates(conn, after, errors).await?;
            match last {
                Some(l) => after = l,
                None => break,
            }
        }
        Ok(())
    }

    /// Rows with a masked ID number: the one stored member of the team with that name and mask,
    /// or an error.
    async fn match_masked(&self, conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
        let sql = format!(
            "SELECT s.line, s.masked_id, m.id, m.id_number, m.id_index FROM {STAGE} s
             LEFT JOIN members m ON m.team_id = s.team_id AND m.name = s.name AND m.id_number IS NOT NULL
             WHERE s.masked_id IS NOT NULL ORDER BY s.line, m.id"
        );
        type Hit = (i64, String, Option<i64>, Option<String>, Option<String>);
        let mut found: Vec<(i64, i64, String)> = Vec::new();
        let mut unmatched: Vec<i64> = Vec::new();
        let cipher = &self.cipher;
        with_held!(&mut *conn, |c| {
            let mut rows = sqlx::query_as::<_, Hit>(&sql).fetch(c);
            // The line being read: its hits so far.
            let mut current: Option<(i64, Vec<(i64, String)>)> = None;
            let mut settle = |cur: Option<(i64, Vec<(i64, String)>)>| {
                if let Some((line, hits)) = cur {
                    match <[_; 1]>::try_from(hits) {
                        Ok([(id, index)]) => found.push((line, id, index)),
                        Err(_) => unmatched.push(line),
                    }
                }
            };
            while let Some((line, masked, id, enc, index)) = rows.try_next().await? {
                if current.as_ref().is_none_or(|(l, _)| *l != line) {
                    settle(current.take());
                    current = Some((line, Vec::new()));
                }
                if let (Some(id), Some(enc), Some(index)) = (id, enc, index)
                    && cipher.decrypt(Field::MEMBER_ID_NUMBER, &enc).is_some_and(|plain| mask_id(&plain) == masked)
                    && let Some((_, hits)) = current.as_mut()
                {
                    hits.push((id, index));
                }
            }
            settle(current.take());
            Ok::<_, sqlx::Error>(())
        })?;
        for line in unmatched {
            errors.at(
                line as u64,
                "id_number",
                "脱敏的身份证号只能用于匹配本队同名的已有队员；登记新队员须填写完整身份证号",
            );
        }
        for chunk in found.chunks(bulk::chunk(3)) {
            with_held!(&mut *conn, |c| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "UPDATE {STAGE} SET member_id = v.column2, id_index = v.column3 FROM ("
                ));
                q.push_values(chunk, |mut b, (line, id, index)| {
                    b.push_bind(*line).push_bind(*id).push_bind(index);
                });
                q.push(format!(") AS v WHERE {STAGE}.line = v.column1"));
                q.build().execute(c).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Checks the next chunk of rows that name stored members (lines after `after`), recording
    /// errors, and stages the changes; the last line checked, or None when there are no more.
    async fn check_updates(&self, conn: &mut Held, after: i64, errors: &mut Errors) -> ApiResult<Option<i64>> {
        let sql = format!(
            "SELECT s.line, s.name AS file_name, s.phone_kind, d.phone_enc AS file_phone, s.phone_mask, s.skills,
                    s.status AS file_status, pk.key_enc,
                    m.id, m.team_id, t.code AS team_code, t.region_code, m.name, m.id_number, m.id_index, m.phone,
                    m.status, m.temp_callup_id, m.anonymised_at, m.created_at, m.updated_at
             FROM {STAGE} s JOIN {DATA} d ON d.line = s.line JOIN members m ON m.id = s.member_id JOIN teams t ON t.id = m.team_id
             LEFT JOIN person_keys pk ON pk.member_id = m.id
             WHERE s.member_id IS NOT NULL AND s.dup = 0 AND s.line > $1 ORDER BY s.line LIMIT {CHUNK}"
        );
        let rows: Vec<Matched> = with_held!(&mut *conn, |c| sqlx::query_as(&sql).bind(after).fetch_all(c).await)?;
        let Some(last) = rows.last().map(|r| r.line) else { return Ok(None) };
        let (stored, certs, policies) = self.chunk_details(conn, after, last).await?;
        let mut changes = Vec::new();
        let mut certs = certs.into_iter().peekable();
        let mut policies = policies.into_iter().peekable();
        for r in rows {
            let mut row_certs = Vec::new();
            while let Some((_, c)) = certs.next_if(|(l, _)| *l == r.line) {
                row_certs.push(c);
            }
            let mut policy = None;
            while let Some((_, p)) = policies.next_if(|(l, _)| *l == r.line) {
                policy = Some(p);
            }
            let old = stored.get(&r.member.id).cloned().unwrap_or_default();
            if let Some(change) = self.check_update(r, &old, &row_certs, policy, errors)? {
                changes.push(change);
            }
        }
        if errors.is_empty() && !changes.is_empty() {
            self.stage_changes(conn, after, last, &changes).await?;
        }
        Ok(Some(last))
    }

    /// Stored details of the members named by the lines in `(after, last]`, and those lines'
    /// certificates and policies as read.
    #[allow(clippy::type_complexity)]
    async fn chunk_details(
        &self,
        conn: &mut Held,
        after: i64,
        last: i64,
    ) -> ApiResult<(std::collections::HashMap<i64, Details>, Vec<(i64, Certificate)>, Vec<(i64, Insurance)>)> {
        let within = "s.member_id IS NOT NULL AND s.dup = 0 AND s.line > $1 AND s.line <= $2";
        let sqls = [
            format!(
                "SELECT k.member_id, k.specialty FROM member_skills k JOIN {STAGE} s ON s.member_id = k.member_id WHERE {within} ORDER BY k.member_id, k.specialty"
            ),
            format!(
                "SELECT c.member_id, c.kind, c.number, c.issued, c.expires, c.status, c.renewed_by, c.revoked_reason FROM member_certificates c JOIN {STAGE} s ON s.member_id = c.member_id WHERE {within} ORDER BY c.member_id, c.id"
            ),
            format!(
                "SELECT i.member_id, i.insurer, i.policy_number, i.start_date, i.end_date FROM member_insurance i JOIN {STAGE} s ON s.member_id = i.member_id WHERE {within} ORDER BY i.member_id, i.start_date, i.id"
            ),
            format!(
                "SELECT line, kind, number, issued, expires FROM {CERTS} WHERE line > $1 AND line <= $2 ORDER BY line, pos"
            ),
            format!(
                "SELECT line, insurer, policy_number, start_date, end_date FROM {POLICIES} WHERE line > $1 AND line <= $2 ORDER BY line, pos"
            ),
        ];
        type FileCert = (i64, String, String, NaiveDate, Option<NaiveDate>);
        let (skills, stored_certs, ins, certs, policies) = with_held!(&mut *conn, |c| {
            let skills: Vec<(i64, String)> = sqlx::query_as(&sqls[0]).bind(after).bind(last).fetch_all(&mut *c).await?;
            let stored_certs: Vec<member_store::CertRow> =
                sqlx::query_as(&sqls[1]).bind(after).bind(last).fetch_all(&mut *c).await?;
            let ins: Vec<member_store::InsRow> =
                sqlx::query_as(&sqls[2]).bind(after).bind(last).fetch_all(&mut *c).await?;
            let certs: Vec<FileCert> = sqlx::query_as(&sqls[3]).bind(after).bind(last).fetch_all(&mut *c).await?;
            let policies: Vec<member_store::InsRow> =
                sqlx::query_as(&sqls[4]).bind(after).bind(last).fetch_all(&mut *c).await?;
            Ok::<_, sqlx::Error>((skills, stored_certs, ins, certs, policies))
        })?;
        let certs = certs
            .into_iter()
            .map(|(line, kind, number, issued, expires)| (line, Certificate::new(kind, number, issued, expires)))
            .collect();
        let policies = policies
            .into_iter()
            .map(|(line, insurer, policy_number, start, end)| (line, Insurance { insurer, policy_number, start, end }))
            .collect();
        Ok((member_store::collect(skills, stored_certs, ins), certs, policies))
    }

    /// The checks of one row that names a stored member, as the one-by-one API makes them; the
    /// change to write (None: unchanged, or an error was recorded).
    fn check_update(
        &self,
        r: Matched,
        old: &Details,
        certs: &[Certificate],
        policy: Option<Insurance>,
        errors: &mut Errors,
    ) -> ApiResult<Option<Change>> {
        let (cipher, line, e) = (&self.cipher, r.line as u64, &r.member);
        let stored_phone = e.phone.as_deref().and_then(|p| cipher.decrypt(Field::MEMBER_PHONE, p));
        if r.phone_kind == PHONE_MASKED && stored_phone.as_deref().map(mask_phone) != r.phone_mask {
            errors.at(line, "phone", "脱敏的电话与已登记的不符；请填写完整号码");
            return Ok(None);
        }
        let to = match r.file_status.as_deref().and_then(MemberStatus::parse) {
            None => e.status,
            Some(s) => match members::check_status_change(e.status, s) {
                Ok(()) => s,
                Err(err) => {
                    errors.at(line, "status", problem_text(&err));
                    return Ok(None);
                }
            },
        };
        let skills = r.skills.map(|b| Skills::from_bits(b as u32));
        let details = merge_details(old, skills, certs, policy);
        if let Err(err) = members::check_details(&details.skills, &details.certificates, &details.insurance) {
            errors.row(line, problem_text(&err));
            return Ok(None);
        }
        let phone = match r.phone_kind {
            PHONE_SET => r.file_phone.as_deref().and_then(|p| cipher.decrypt(Field::MEMBER_PHONE, p)),
            _ => stored_phone.clone(),
        };
        let sorted = |v: &[crate::vocab::Specialty]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        if e.name == r.file_name
            && stored_phone == phone
            && sorted(&old.skills) == sorted(&details.skills)
            && norm(&old.insurance) == norm(&details.insurance)
            && old.certificates == details.certificates
            && e.status == to
        {
            return Ok(None);
        }
        if !errors.is_empty() {
            // The file will not be written: no need to prepare the change.
            return Ok(None);
        }
        let mut m = e.clone();
        m.name = r.file_name.clone();
        if stored_phone != phone {
            m.phone = r.file_phone.clone();
        }
        m.status = to;
        m.updated_at = self.now;
        let (key, key_enc) = match r.key_enc.as_deref() {
            Some(enc) => (
                cipher.open_person_key(enc).ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("person key of member {} does not decrypt", e.id))
                })?,
                None,
            ),
            None => {
                let (key, enc) = cipher.new_person_key();
                (key, Some(enc))
            }
        };
        let before = sealed(e, old.clone(), cipher, self.now, &key)?;
        let after = sealed(&m, details.clone(), cipher, self.now, &key)?;
        Ok(Some(Change {
            line: r.line,
            name: m.name,
            phone: m.phone,
            to,
            from: e.status,
            before,
            after,
            key_enc,
            details,
        }))
    }

    /// Stages the changes of the lines in `(after, last]`: the row marked as an update, and its
    /// skills and policies replaced by the member's whole new lists (certificates are written by
    /// number, so the file's own are enough).
    async fn stage_changes(&self, conn: &mut Held, after: i64, last: i64, changes: &[Change]) -> ApiResult<()> {
        for chunk in changes.chunks(bulk::chunk(4)) {
            with_held!(&mut *conn, |c| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "UPDATE {STAGE} SET action = 2, name = v.column2, status_to = v.column3, from_status = v.column4 FROM ("
                ));
                q.push_values(chunk, |mut b, ch| {
                    b.push_bind(ch.line).push_bind(&ch.name).push_bind(ch.to.as_str()).push_bind(ch.from.as_str());
                });
                q.push(format!(") AS v WHERE {STAGE}.line = v.column1"));
                q.build().execute(c).await.map(|_| ())
            })?;
        }
        for chunk in changes.chunks(bulk::chunk(5)) {
            with_held!(&mut *conn, |c| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "UPDATE {DATA} SET phone_enc = v.column2, before_state = v.column3, after_state = v.column4, key_enc = v.column5 FROM ("
                ));
                q.push_values(chunk, |mut b, ch| {
                    b.push_bind(ch.line)
                        .push_bind(&ch.phone)
                        .push_bind(&ch.before)
                        .push_bind(&ch.after)
                        .push_bind(&ch.key_enc);
                });
                q.push(format!(") AS v WHERE {DATA}.line = v.column1"));
                q.build().execute(c).await.map(|_| ())
            })?;
        }
        for table in [SKILLS, POLICIES] {
            let sql = format!(
                "DELETE FROM {table} WHERE line IN (SELECT line FROM {STAGE} WHERE action = 2 AND line > $1 AND line <= $2)"
            );
            with_held!(&mut *conn, |c| sqlx::query(&sql).bind(after).bind(last).execute(c).await.map(|_| ()))?;
        }
        let skills: Vec<(i64, &str)> =
            changes.iter().flat_map(|ch| ch.details.skills.iter().map(move |k| (ch.line, k.code()))).collect();
        stage_skills(conn, &skills).await?;
        let policies: Vec<(i64, &Insurance)> =
            changes.iter().flat_map(|ch| ch.details.insurance.iter().map(move |p| (ch.line, p))).collect();
        stage_policies(conn, &policies).await?;
        Ok(())
    }
}

fn norm(v: &[Insurance]) -> Vec<Insurance> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| (a.start, &a.policy_number).cmp(&(b.start, &b.policy_number)));
    v
}
