//! Member storage: members with their skills, certificates and insurance.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::MemberStatus;
use super::members::{Certificate, CertificateStatus, Details, Insurance, MemberRow};
use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::vocab::Specialty;
use crate::{with_db, with_tx};

const SELECT: &str = "SELECT m.id, m.team_id, t.code AS team_code, t.region_code, m.name, m.id_number, m.id_index,
    m.phone, m.status, m.temp_callup_id, m.anonymised_at, m.created_at, m.updated_at
    FROM members m JOIN teams t ON t.id = m.team_id";

/// Which members to read.
#[derive(Debug, Clone, Copy)]
pub enum Which {
    /// One member.
    Id(i64),
    /// Every member of a team.
    Team(i64),
}

impl Which {
    fn clause(self) -> (&'static str, i64) {
        match self {
            Which::Id(id) => ("m.id = $1", id),
            Which::Team(id) => ("m.team_id = $1", id),
        }
    }
}

/// Members, ordered by id.
pub async fn rows(db: &Db, which: Which) -> Result<Vec<MemberRow>, sqlx::Error> {
    let (w, v) = which.clause();
    let sql = format!("{SELECT} WHERE {w} ORDER BY m.id");
    with_db!(db, |p| sqlx::query_as::<_, MemberRow>(&sql).bind(v).fetch_all(p).await)
}

/// Members, inside a transaction.
pub async fn rows_tx(tx: &mut Tx, which: Which) -> Result<Vec<MemberRow>, sqlx::Error> {
    let (w, v) = which.clause();
    let sql = format!("{SELECT} WHERE {w} ORDER BY m.id");
    with_tx!(tx, |c| sqlx::query_as::<_, MemberRow>(&sql).bind(v).fetch_all(c).await)
}

/// Members whose ids are given, inside a transaction (unknown ids are left out).
pub async fn rows_by_ids_tx(tx: &mut Tx, ids: &[i64]) -> Result<Vec<MemberRow>, sqlx::Error> {
    let mut out = Vec::new();
    for id in ids {
        out.extend(rows_tx(tx, Which::Id(*id)).await?);
    }
    Ok(out)
}

/// Members in the bounds whose ID number has this blind index (one person across teams).
pub async fn rows_by_index(db: &Db, index: &str, bounds: (&str, &str)) -> Result<Vec<MemberRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE m.id_index = $1 AND t.region_code >= $2 AND t.region_code <= $3 ORDER BY m.id");
    with_db!(db, |p| sqlx::query_as::<_, MemberRow>(&sql).bind(index).bind(bounds.0).bind(bounds.1).fetch_all(p).await)
}

/// Temporary volunteers of a call-up not yet erased.
pub async fn temporaries_tx(tx: &mut Tx, callup_id: i64) -> Result<Vec<MemberRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE m.temp_callup_id = $1 AND m.anonymised_at IS NULL ORDER BY m.id");
    with_tx!(tx, |c| sqlx::query_as::<_, MemberRow>(&sql).bind(callup_id).fetch_all(c).await)
}

pub(super) type CertRow = (i64, String, String, NaiveDate, Option<NaiveDate>, String, Option<String>, Option<String>);
pub(super) type InsRow = (i64, String, String, NaiveDate, NaiveDate);

pub(super) fn collect(skills: Vec<(i64, String)>, certs: Vec<CertRow>, ins: Vec<InsRow>) -> HashMap<i64, Details> {
    let mut map: HashMap<i64, Details> = HashMap::new();
    for (m, s) in skills {
        if let Some(s) = Specialty::parse(&s) {
            map.entry(m).or_default().skills.push(s);
        }
    }
    for (m, kind, number, issued, expires, status, renewed_by, revoked_reason) in certs {
        let status = CertificateStatus::parse(&status).unwrap_or_default();
        map.entry(m).or_default().certificates.push(Certificate {
            kind,
            number,
            issued,
            expires,
            status,
            renewed_by,
            revoked_reason,
        });
    }
    for (m, insurer, policy_number, start, end) in ins {
        map.entry(m).or_default().insurance.push(Insurance { insurer, policy_number, start, end });
    }
    map
}

fn detail_sql(which: Which) -> (String, String, String, i64) {
    let (w, v) = which.clause();
    (
        format!(
            "SELECT s.member_id, s.specialty FROM member_skills s JOIN members m ON m.id = s.member_id WHERE {w} ORDER BY s.member_id, s.specialty"
        ),
        format!(
            "SELECT c.member_id, c.kind, c.number, c.issued, c.expires, c.status, c.renewed_by, c.revoked_reason FROM member_certificates c JOIN members m ON m.id = c.member_id WHERE {w} ORDER BY c.member_id, c.id"
        ),
        format!(
            "SELECT i.member_id, i.insurer, i.policy_number, i.start_date, i.end_date FROM member_insurance i JOIN members m ON m.id = i.member_id WHERE {w} ORDER BY i.member_id, i.start_date, i.id"
        ),
        v,
    )
}

/// Skills, certificates and insurance of the members, by member id.
pub async fn details(db: &Db, which: Which) -> Result<HashMap<i64, Details>, sqlx::Error> {
    let (a, b, c, v) = detail_sql(which);
    with_db!(db, |p| {
        let skills = sqlx::query_as(&a).bind(v).fetch_all(p).await?;
        let certs = sqlx::query_as(&b).bind(v).fetch_all(p).await?;
        let ins = sqlx::query_as(&c).bind(v).fetch_all(p).await?;
        Ok(collect(skills, certs, ins))
    })
}

/// Details inside a transaction.
pub async fn details_tx(tx: &mut Tx, which: Which) -> Result<HashMap<i64, Details>, sqlx::Error> {
    let (a, b, c, v) = detail_sql(which);
    with_tx!(tx, |conn| {
        let skills = sqlx::query_as(&a).bind(v).fetch_all(&mut *conn).await?;
        let certs = sqlx::query_as(&b).bind(v).fetch_all(&mut *conn).await?;
        let ins = sqlx::query_as(&c).bind(v).fetch_all(&mut *conn).await?;
        Ok(collect(skills, certs, ins))
    })
}

/// Members of many teams with their details (imports: one query per table for up to 500 teams,
/// not one per team), ordered by id.
pub async fn of_teams(db: &Db, team_ids: &[i64]) -> Result<(Vec<MemberRow>, HashMap<i64, Details>), sqlx::Error> {
    let mut rows = Vec::new();
    let mut details = HashMap::new();
    for chunk in team_ids.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        let list = match db {
            Db::Sqlite(_) => list,
            Db::Postgres(_) => (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
        };
        let sqls = [
            format!("{SELECT} WHERE m.team_id IN ({list}) ORDER BY m.id"),
            format!(
                "SELECT s.member_id, s.specialty FROM member_skills s JOIN members m ON m.id = s.member_id WHERE m.team_id IN ({list}) ORDER BY s.member_id, s.specialty"
            ),
            format!(
                "SELECT c.member_id, c.kind, c.number, c.issued, c.expires, c.status, c.renewed_by, c.revoked_reason FROM member_certificates c JOIN members m ON m.id = c.member_id WHERE m.team_id IN ({list}) ORDER BY c.member_id, c.id"
            ),
            format!(
                "SELECT i.member_id, i.insurer, i.policy_number, i.start_date, i.end_date FROM member_insurance i JOIN members m ON m.id = i.member_id WHERE m.team_id IN ({list}) ORDER BY i.member_id, i.start_date, i.id"
            ),
        ];
        with_db!(db, |p| {
            let q = sqlx::query_as::<_, MemberRow>(&sqls[0]);
            rows.extend(chunk.iter().fold(q, |q, id| q.bind(*id)).fetch_all(p).await?);
            let q = sqlx::query_as(&sqls[1]);
            let skills = chunk.iter().fold(q, |q, id| q.bind(*id)).fetch_all(p).await?;
            let q = sqlx::query_as(&sqls[2]);
            let certs = chunk.iter().fold(q, |q, id| q.bind(*id)).fetch_all(p).await?;
            let q = sqlx::query_as(&sqls[3]);
            let ins = chunk.iter().fold(q, |q, id| q.bind(*id)).fetch_all(p).await?;
            details.extend(collect(skills, certs, ins));
            Ok::<_, sqlx::Error>(())
        })?;
    }
    Ok((rows, details))
}

/// Inserts a member; returns its id.
pub async fn insert(tx: &mut Tx, r: &MemberRow) -> Result<i64, sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO members (team_id, name, id_number, id_index, phone, status, temp_callup_id, anonymised_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(r.team_id)
        .bind(&r.name)
        .bind(&r.id_number)
        .bind(&r.id_index)
        .bind(&r.phone)
        .bind(r.status.as_str())
        .bind(r.temp_callup_id)
        .bind(r.anonymised_at)
        .bind(r.created_at)
        .bind(r.updated_at)
        .fetch_one(c)
        .await
    })
}

/// The member status lifecycle (available, unavailable, deployed, retired).
pub const MEMBER: crate::transition::Lifecycle = crate::transition::Lifecycle::new("members", "队员");

/// Moves a member from `from` to `r.status` (the [`transition!`](crate::transition!) that decides;
/// `from` = `to` for an edit) and writes its mutable columns; a member no longer in `from` is a
/// conflict naming its status.
pub async fn update(tx: &mut Tx, r: &MemberRow, from: MemberStatus) -> Result<(), crate::transition::TransitionError> {
    update_from(tx, r, &[from]).await
}

/// Like [`update`], from any of several states (a user's status change).
pub async fn update_from(
    tx: &mut Tx,
    r: &MemberRow,
    from: &[MemberStatus],
) -> Result<(), crate::transition::TransitionError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    crate::transition!(tx, MEMBER, r.id, from_any &from => r.status.as_str(), set { "updated_at" = r.updated_at })?;
    with_tx!(tx, |c| {
        sqlx::query(
            "UPDATE members SET name = $2, id_number = $3, id_index = $4, phone = $5, status = $6, anonymised_at = $7,
                updated_at = $8 WHERE id = $1 AND status = $9",
        )
        .bind(r.id)
        .bind(&r.name)
        .bind(&r.id_number)
        .bind(&r.id_index)
        .bind(&r.phone)
        .bind(r.status.as_str())
        .bind(r.anonymised_at)
        .bind(r.updated_at)
        .bind(r.status.as_str())
        .execute(c)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Moves a member from status `from` to `to`; a member no longer in `from` is a conflict.
pub async fn set_status(
    tx: &mut Tx,
    id: i64,
    from: MemberStatus,
    to: MemberStatus,
    now: Timestamp,
) -> Result<(), crate::transition::TransitionError> {
    crate::transition!(tx, MEMBER, id, from [from.as_str()] => to.as_str(), set { "updated_at" = now })
}

/// Replaces a member's skills and insurance, and adds its certificates (a certificate with a
/// number the member already holds is corrected in place: kind and dates; its status stays).
/// Certificates are never removed here: they are a history ([`erase_certificates`] is for
/// erasing a temporary volunteer's personal data).
pub async fn set_details(tx: &mut Tx, member_id: i64, d: &Details) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        for table in ["member_skills", "member_insurance"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE member_id = $1")).bind(member_id).execute(&mut *c).await?;
        }
        for s in &d.skills {
            sqlx::query("INSERT INTO member_skills (member_id, specialty) VALUES ($1, $2)")
                .bind(member_id)
                .bind(s.code())
                .execute(&mut *c)
                .await?;
        }
        for k in &d.certificates {
            sqlx::query(
                "INSERT INTO member_certificates (member_id, kind, number, issued, expires) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (member_id, number) DO UPDATE SET kind = excluded.kind, issued = excluded.issued, expires = excluded.expires",
            )
            .bind(member_id)
            .bind(&k.kind)
            .bind(&k.number)
            .bind(k.issued)
            .bind(k.expires)
            .execute(&mut *c)
            .await?;
        }
        for i in &d.insurance {
            sqlx::query(
                "INSERT INTO member_insurance (member_id, insurer, policy_number, start_date, end_date) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(member_id)
            .bind(&i.insurer)
            .bind(&i.policy_number)
            .bind(i.start)
            .bind(i.end)
            .execute(&mut *c)
            .await?;
        }
        Ok(())
    })
}

/// Removes every certificate of a member (erasure of a temporary volunteer's personal data).
pub async fn erase_certificates(tx: &mut Tx, member_id: i64) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| sqlx::query("DELETE FROM member_certificates WHERE member_id = $1")
        .bind(member_id)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Number of members of a team per status.
pub async fn count_by_status(db: &Db, team_id: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    with_db!(db, |p| sqlx::query_as("SELECT status, COUNT(*) FROM members WHERE team_id = $1 GROUP BY status")
        .bind(team_id)
        .fetch_all(p)
        .await)
}
