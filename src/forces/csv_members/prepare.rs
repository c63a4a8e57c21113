//! SQLite: a checked members file's new members prepared for the write outside any transaction,
//! so that the write (which holds the database's one write lock) only copies rows in key order.
//!
//! A new member's blind index is random, so inserting members in file order writes the unique
//! index `members_person_team` (blind index first, migration 0032) at random places: for a
//! province's 1,000,000 members, an index larger than the import's page cache, each insert
//! reading and spilling a page of it (measured: 5.4 of 7.7 s of CPU for the members insert).
//! Here the new members of a large file (more than [`KEY_ORDER_FROM`]; a smaller one keeps the
//! file's order) are ranked by blind index (`seq` 1, 2, …) and copied, with their skills,
//! certificates, policies, person keys and sealed audit views, into `TEMP` tables in that order;
//! the write ([`write_new`]) inserts them in `seq` order, so the new member of rank `seq` gets the
//! id `MAX(id) + seq` (the rowids of one `INSERT … SELECT` under the write lock are consecutive)
//! and every table and index it writes is written in key order: `members` and the tables keyed by
//! member id at their end, `members_person_team` in one sweep. The ids taken and every new row's
//! team and blind index are verified before anything else is written.

use super::MemberImport;
use super::stage::{CERTS, DATA, POLICIES, SKILLS, STAGE};
use crate::audit::Actor;
use crate::db::{Held, Tx};
use crate::error::{ApiError, ApiResult};
use crate::with_tx;

/// More new members than this are ranked by blind index; fewer keep the file's order (their
/// index pages fit the page cache whatever the order, and a roster's members are listed, by id,
/// in the order the file gave them).
const KEY_ORDER_FROM: i64 = 5_000;

/// Page cache of the temporary database while preparing, in KiB (the same as the write's).
const PREPARE_CACHE_KIB: u32 = 64 * 1024;

/// The new members in the order they are written: `seq` (1, 2, …) and the file line.
const ORDER: &str = "import_new_order";
/// The new members' columns, by `seq`.
const MEMBERS: &str = "import_new_members";
/// The new members' region, person key and sealed audit view, by `seq`.
const DATA_NEW: &str = "import_new_data";
/// The new members' skills, in `seq` order.
const SKILLS_NEW: &str = "import_new_skills";
/// The new members' certificates, in `seq` and file order.
const CERTS_NEW: &str = "import_new_certs";
/// The new members' policies, in `seq` and file order.
const POLICIES_NEW: &str = "import_new_policies";

impl MemberImport {
    /// The preparation of [`crate::imports::staged::Staged::prepare_write`] (SQLite only).
    pub(super) async fn prepare(&self, conn: &mut Held) -> ApiResult<()> {
        let Held::Sqlite(c) = conn else { return Ok(()) };
        let started = std::time::Instant::now();
        let new: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {STAGE} WHERE member_id IS NULL"))
            .fetch_one(&mut **c)
            .await?;
        let order = if new > KEY_ORDER_FROM { "id_index, team_id, line" } else { "line" };
        // The copies look staged rows up by line in rank order: with the temporary database's
        // default 2 MiB page cache each lookup re-reads its page from the file. A larger cache
        // while preparing (measured with `sqlite3`, 1,000,000 members: 32 → 24 s), given back
        // before the write, whose own page cache then takes that memory.
        sqlx::query(&format!("PRAGMA temp.cache_size = -{PREPARE_CACHE_KIB}")).execute(&mut **c).await?;
        let sqls = [
            format!("CREATE TEMP TABLE {ORDER} (seq INTEGER PRIMARY KEY, line INTEGER NOT NULL)"),
            // New members are the staged rows without a member (a file with errors never gets
            // here); each one's (blind index, team) is unique, the line breaks no tie.
            format!("INSERT INTO {ORDER} (line) SELECT line FROM {STAGE} WHERE member_id IS NULL ORDER BY {order}"),
            format!(
                "CREATE TEMP TABLE {MEMBERS} (seq INTEGER PRIMARY KEY, team_id INTEGER NOT NULL, name TEXT NOT NULL,
                   id_enc TEXT, id_index TEXT, phone_enc TEXT, status_to TEXT NOT NULL)"
            ),
            format!(
                "INSERT INTO {MEMBERS} (seq, team_id, name, id_enc, id_index, phone_enc, status_to)
                 SELECT o.seq, s.team_id, s.name, d.id_enc, s.id_index, d.phone_enc, s.status_to
                 FROM {ORDER} o JOIN {STAGE} s ON s.line = o.line JOIN {DATA} d ON d.line = o.line ORDER BY o.seq"
            ),
            format!(
                "CREATE TEMP TABLE {DATA_NEW} (seq INTEGER PRIMARY KEY, region_code TEXT NOT NULL, key_enc TEXT, after_state TEXT)"
            ),
            format!(
                "INSERT INTO {DATA_NEW} (seq, region_code, key_enc, after_state)
                 SELECT o.seq, s.region_code, d.key_enc, d.after_state
                 FROM {ORDER} o JOIN {STAGE} s ON s.line = o.line JOIN {DATA} d ON d.line = o.line ORDER BY o.seq"
            ),
            format!("CREATE TEMP TABLE {SKILLS_NEW} (seq INTEGER NOT NULL, specialty TEXT NOT NULL)"),
            format!(
                "INSERT INTO {SKILLS_NEW} (seq, specialty)
                 SELECT o.seq, k.specialty FROM {ORDER} o JOIN {SKILLS} k ON k.line = o.line ORDER BY o.seq, k.specialty"
            ),
            format!(
                "CREATE TEMP TABLE {CERTS_NEW} (seq INTEGER NOT NULL, kind TEXT NOT NULL, number TEXT NOT NULL,
                   issued TEXT NOT NULL, expires TEXT)"
            ),
            format!(
                "INSERT INTO {CERTS_NEW} (seq, kind, number, issued, expires)
                 SELECT o.seq, k.kind, k.number, k.issued, k.expires FROM {ORDER} o JOIN {CERTS} k ON k.line = o.line ORDER BY o.seq, k.pos"
            ),
            format!(
                "CREATE TEMP TABLE {POLICIES_NEW} (seq INTEGER NOT NULL, insurer TEXT NOT NULL, policy_number TEXT NOT NULL,
                   start_date TEXT NOT NULL, end_date TEXT NOT NULL)"
            ),
            format!(
                "INSERT INTO {POLICIES_NEW} (seq, insurer, policy_number, start_date, end_date)
                 SELECT o.seq, p.insurer, p.policy_number, p.start_date, p.end_date FROM {ORDER} o JOIN {POLICIES} p ON p.line = o.line ORDER BY o.seq, p.pos"
            ),
        ];
        for sql in sqls {
            sqlx::query(&sql).execute(&mut **c).await?;
        }
        sqlx::query("PRAGMA temp.cache_size = -2000").execute(&mut **c).await?;
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(target: "yingji::imports", new, order, ms, "members import: new members prepared");
        Ok(())
    }
}

/// Writes the new members prepared by [`MemberImport::prepare`] (SQLite, in the write
/// transaction): the members, their skills, certificates, policies, person keys and one audit row
/// each, all in `seq` order; `new` is the number of new members the check counted. Returns the
/// number inserted.
pub(super) async fn write_new(tx: &mut Tx, now: crate::time::Timestamp, actor: &Actor, new: i64) -> ApiResult<u64> {
    let mut timings: Vec<(&'static str, u128)> = Vec::new();
    let mut last = std::time::Instant::now();
    let mut step = |name: &'static str| {
        timings.push((name, last.elapsed().as_millis()));
        last = std::time::Instant::now();
    };
    let base: i64 =
        with_tx!(&mut *tx, |c| sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM members").fetch_one(c).await)?;
    let insert = format!(
        "INSERT INTO members (team_id, name, id_number, id_index, phone, status, temp_callup_id, anonymised_at, created_at, updated_at)
         SELECT team_id, name, id_enc, id_index, phone_enc, status_to, NULL, NULL, $1, $1 FROM {MEMBERS} ORDER BY seq"
    );
    let n = match with_tx!(&mut *tx, |c| sqlx::query(&insert).bind(now).execute(c).await.map(|r| r.rows_affected())) {
        Ok(n) => n,
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(super::write::conflict("文件中的队员已被其他请求同时登记到同一队伍"));
        }
        Err(e) => return Err(e.into()),
    };
    step("members");
    // The ids taken are the `n` after the largest, and the member of id `base + seq` is the
    // prepared row of rank `seq` (the `+` keep SQLite on the rowid, not the person index).
    let taken: (i64, Option<i64>, Option<i64>) =
        with_tx!(&mut *tx, |c| sqlx::query_as("SELECT COUNT(*), MIN(id), MAX(id) FROM members WHERE id > $1")
            .bind(base)
            .fetch_one(c)
            .await)?;
    let matching: i64 = with_tx!(&mut *tx, |c| sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {MEMBERS} w CROSS JOIN members m ON m.id = w.seq + $1
         WHERE +m.team_id = w.team_id AND +m.id_index = w.id_index"
    ))
    .bind(base)
    .fetch_one(c)
    .await)?;
    let n_i = n as i64;
    let expected = if n == 0 { (0, None, None) } else { (n_i, Some(base + 1), Some(base + n_i)) };
    if n_i != new || taken != expected || matching != n_i {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "new members' ids: {new} prepared, {n} inserted, ids {taken:?} after {base}, {matching} matching"
        )));
    }
    step("verify");
    let details = [
        (
            "skills",
            format!(
                "INSERT INTO member_skills (member_id, specialty) SELECT seq + {base}, specialty FROM {SKILLS_NEW} ORDER BY rowid"
            ),
        ),
        (
            "certificates",
            format!(
                "INSERT INTO member_certificates (member_id, kind, number, issued, expires)
                 SELECT seq + {base}, kind, number, issued, expires FROM {CERTS_NEW} WHERE true ORDER BY rowid
                 ON CONFLICT (member_id, number) DO UPDATE SET kind = excluded.kind, issued = excluded.issued, expires = excluded.expires"
            ),
        ),
        (
            "insurance",
            format!(
                "INSERT INTO member_insurance (member_id, insurer, policy_number, start_date, end_date)
                 SELECT seq + {base}, insurer, policy_number, start_date, end_date FROM {POLICIES_NEW} ORDER BY rowid"
            ),
        ),
        (
            "person_keys",
            format!(
                "INSERT INTO person_keys (member_id, key_enc) SELECT seq + {base}, key_enc FROM {DATA_NEW} WHERE key_enc IS NOT NULL ORDER BY seq"
            ),
        ),
    ];
    for (name, sql) in details {
        with_tx!(&mut *tx, |c| sqlx::query(&sql).execute(c).await.map(|_| ()))?;
        step(name);
    }
    // One audit row per new member: the view sealed while staging, `"id":0,` replaced by its id
    // (byte for byte what `audit::record` writes, see `write`).
    let audit = format!(
        "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)
         SELECT $1, $2, $3, 'import', 'member', CAST(seq + {base} AS TEXT), region_code, NULL,
           replace(after_state, '\"id\":0,', '\"id\":' || (seq + {base}) || ','), $4
         FROM {DATA_NEW} ORDER BY seq"
    );
    crate::imports::staged::audit_staged(tx, &audit, now, actor, n, "new members").await?;
    step("audit");
    tracing::info!(target: "yingji::imports", steps = ?timings, "members import: new members written (ms)");
    Ok(n)
}
