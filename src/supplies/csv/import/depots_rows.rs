//! The depots import (staged): depots matched by code, phones sealed, audit states prepared outside the write.

use super::*;

mod pg;

/// `POST /api/v1/import/depots`.
pub(in crate::supplies::csv) async fn import_depots(c: Ctx) -> ApiResult<Response> {
    let imp =
        DepotImport { scope: c.caller()?.scope.clone(), actor: c.actor()?, now: c.now(), cipher: c.app.cipher.clone() };
    imports::staged::respond(&c, &imp).await
}

/// Depots, matched by code, within the caller's jurisdiction.
pub struct DepotImport {
    scope: Scope,
    actor: Actor,
    now: Timestamp,
    cipher: Cipher,
}

/// A depot row as parsed.
pub struct DepotLine {
    code: String,
    name: String,
    region: String,
    kind: DepotKind,
    lon: f64,
    lat: f64,
    address: Option<String>,
    manager: Option<String>,
    /// The new phone (None: keep the stored one, the file had it masked).
    phone: Option<Option<String>>,
}

/// What a depot row is checked against: the caller's jurisdiction, the depots in it (by code),
/// every region, every depot code of the banner, and what the audit states need.
pub struct DepotLookup {
    scope: Scope,
    existing: HashMap<String, DepotRow>,
    regions: HashSet<String>,
    taken: HashSet<String>,
    cipher: Cipher,
    now: Timestamp,
}

/// A checked depot row, as staged: the row to write, with its audit states prepared before the
/// transaction (phones decrypted and masked, JSON built), so the write lock is held only for the
/// set-based statements. Every readable row is staged (for the duplicate check); only changed
/// ones are written.
pub struct StagedDepot {
    line: u64,
    /// Whether the row changes anything (a new depot, or a stored one that differs).
    change: bool,
    row: DepotRow,
    /// The stored state as JSON text (None: a new depot).
    before: Option<String>,
    /// The new state as JSON text (a new depot's `id` is filled in by the insert).
    after: Option<String>,
}

/// The staging table of the depots import.
const DEPOT_STAGE: &str = "import_depots";

/// An audit state as JSON text, keys in the order the audit log writes them (serde's sorted map).
fn audit_text(view: &crate::supplies::depots::Depot) -> Option<String> {
    serde_json::to_value(view).ok().map(|v| v.to_string())
}

impl DepotLine {
    /// Parses a depot row.
    fn parse(rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<DepotLine> {
        let code = rec.need("code", errors).map(str::to_string);
        let name = rec.need("name", errors).map(str::to_string);
        let region = rec
            .need("region_code", errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("region_code", m))).ok());
        let kind = rec.need("kind", errors).and_then(|v| {
            DepotKind::parse(v).or_else(|| {
                errors.push(rec.err("kind", format!("类型「{v}」无效，应为 {}", DepotKind::choices())));
                None
            })
        });
        let lon = rec.need("lon", errors).and(csvio::opt_f64(rec, "lon", errors));
        let lat = rec.need("lat", errors).and(csvio::opt_f64(rec, "lat", errors));
        if let (Some(lon), Some(lat)) = (lon, lat)
            && let Err(m) = check_lon_lat(lon, lat)
        {
            errors.push(rec.err("lon", m));
        }
        let phone = match rec.get("phone") {
            None => Some(None),
            Some(v) if v.contains('*') => None,
            Some(v) => match check_phone(v) {
                Ok(v) => Some(Some(v)),
                Err(m) => {
                    errors.push(rec.err("phone", m));
                    None
                }
            },
        };
        for (col, max) in [("code", 40), ("name", 100), ("address", 200), ("manager", 50)] {
            if rec.get(col).is_some_and(|v| v.chars().count() > max) {
                errors.push(rec.err(col, format!("超过 {max} 个字符")));
            }
        }
        Some(DepotLine {
            code: code?,
            name: name?,
            region: region?.as_str().to_string(),
            kind: kind?,
            lon: lon?,
            lat: lat?,
            address: rec.get("address").map(str::to_string),
            manager: rec.get("manager").map(str::to_string),
            phone,
        })
    }
}

impl Staged for DepotImport {
    type Lookup = DepotLookup;
    type Row = StagedDepot;
    const COLUMNS: &'static [Column] = DEPOTS;

    async fn lookup(&self, db: &Db) -> ApiResult<DepotLookup> {
        let (lo, hi) = self.scope.bounds();
        let existing = depots::all_in(db, (&lo, &hi)).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
        let regions = crate::regions::store::all(db).await?.into_iter().map(|r| r.code).collect();
        // Codes are unique across the banner: one query for all of them, not one per row.
        let taken = with_db!(db, |p| sqlx::query_scalar::<_, String>("SELECT code FROM depots").fetch_all(p).await)?
            .into_iter()
            .collect();
        Ok(DepotLookup {
            scope: self.scope.clone(),
            existing,
            regions,
            taken,
            cipher: self.cipher.clone(),
            now: self.now,
        })
    }

    fn check(lookup: &DepotLookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<StagedDepot> {
        let row = DepotLine::parse(rec, errors)?;
        if !errors.is_empty() {
            return None;
        }
        if !lookup.scope.contains(&row.region) {
            errors.push(rec.err("region_code", format!("区划 {} 不在您的管辖范围内", row.region)));
        } else if !lookup.regions.contains(&row.region) {
            errors.push(rec.err("region_code", format!("区划 {} 不存在", row.region)));
        }
        let before = lookup.existing.get(&row.code);
        if before.is_none() && lookup.taken.contains(&row.code) {
            errors.push(rec.err("code", format!("储备库编码 {} 已被辖区外的储备库使用", row.code)));
        }
        if let Some(old) = before
            && old.region_code != row.region
        {
            errors.push(rec.err(
                "region_code",
                format!("储备库 {} 属于区划 {}，所属区划不能通过导入修改", row.code, old.region_code),
            ));
        }
        let cipher = &lookup.cipher;
        let mut d = DepotRow {
            id: 0,
            code: row.code,
            name: row.name,
            region_code: row.region,
            kind: row.kind,
            lon: row.lon,
            lat: row.lat,
            address: row.address,
            manager: row.manager,
            phone_enc: None,
            notes: None,
            created_at: lookup.now,
            updated_at: lookup.now,
        };
        if !errors.is_empty() {
            // Staged for the duplicate check only: the file will not be written.
            return Some(StagedDepot { line: rec.line, change: false, row: d, before: None, after: None });
        }
        let old_phone = before.and_then(|b| b.phone(cipher));
        let new_phone = row.phone.unwrap_or_else(|| old_phone.clone());
        let staged = match before {
            Some(b)
                if b.name == d.name
                    && b.kind == d.kind
                    && b.lon == d.lon
                    && b.lat == d.lat
                    && b.address == d.address
                    && b.manager == d.manager
                    && old_phone == new_phone =>
            {
                StagedDepot { line: rec.line, change: false, row: d, before: None, after: None }
            }
            Some(b) => {
                d.phone_enc = if old_phone == new_phone {
                    b.phone_enc.clone()
                } else {
                    new_phone.as_deref().map(|p| cipher.encrypt(Field::DEPOT_PHONE, p))
                };
                (d.id, d.notes, d.created_at) = (b.id, b.notes.clone(), b.created_at);
                let before = audit_text(&b.view(cipher, false));
                StagedDepot { line: rec.line, change: true, after: audit_text(&d.view(cipher, false)), row: d, before }
            }
            None => {
                d.phone_enc = new_phone.as_deref().map(|p| cipher.encrypt(Field::DEPOT_PHONE, p));
                StagedDepot {
                    line: rec.line,
                    change: true,
                    after: audit_text(&d.view(cipher, false)),
                    row: d,
                    before: None,
                }
            }
        };
        Some(staged)
    }

    async fn create(conn: &mut Held) -> Result<(), sqlx::Error> {
        let (int, real, time) = match conn.backend() {
            Backend::Sqlite => ("INTEGER", "REAL", "TEXT"),
            Backend::Postgres => ("BIGINT", "DOUBLE PRECISION", "TIMESTAMPTZ"),
        };
        let sql = format!(
            "CREATE TEMP TABLE {DEPOT_STAGE} (line {int} PRIMARY KEY, change {int} NOT NULL, id {int}, code TEXT NOT NULL, name TEXT NOT NULL, region_code TEXT NOT NULL, kind TEXT NOT NULL, lon {real} NOT NULL, lat {real} NOT NULL, address TEXT, manager TEXT, phone_enc TEXT, notes TEXT, created_at {time} NOT NULL, updated_at {time} NOT NULL, before_state TEXT, after_state TEXT)"
        );
        with_held!(&mut *conn, |c| sqlx::query(&sql).execute(c).await.map(|_| ()))?;
        if let Held::Postgres(c) = conn {
            pg::json_columns(c).await?;
        }
        Ok(())
    }

    async fn stage(conn: &mut Held, rows: &[StagedDepot]) -> Result<(), sqlx::Error> {
        if let Held::Postgres(c) = conn {
            return pg::stage(c, rows).await;
        }
        for rows in rows.chunks(bulk::chunk(17)) {
            with_held!(&mut *conn, |c| {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "INSERT INTO {DEPOT_STAGE} (line, change, id, code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at, before_state, after_state) "
                ));
                q.push_values(rows, |mut b, s| {
                    let d = &s.row;
                    b.push_bind(s.line as i64)
                        .push_bind(i64::from(s.change))
                        .push_bind((d.id != 0).then_some(d.id))
                        .push_bind(&d.code)
                        .push_bind(&d.name)
                        .push_bind(&d.region_code)
                        .push_bind(d.kind.as_str())
                        .push_bind(d.lon)
                        .push_bind(d.lat)
                        .push_bind(&d.address)
                        .push_bind(&d.manager)
                        .push_bind(&d.phone_enc)
                        .push_bind(&d.notes)
                        .push_bind(d.created_at)
                        .push_bind(d.updated_at)
                        .push_bind(&s.before)
                        .push_bind(&s.after);
                });
                q.build().execute(c).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    async fn check_staged(&self, conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
        use futures_util::TryStreamExt;
        // A code twice in the file: each later line names the first.
        let sql = format!(
            "SELECT line, code, first FROM (
               SELECT line, code, MIN(line) OVER (PARTITION BY code) AS first FROM {DEPOT_STAGE}) AS d
             WHERE line > first ORDER BY line"
        );
        with_held!(conn, |c| {
            let mut dups = sqlx::query_as::<_, (i64, String, i64)>(&sql).fetch(c);
            while let Some((line, code, first)) = dups.try_next().await? {
                errors.at(line as u64, "code", format!("储备库编码 {code} 与第 {first} 行重复"));
            }
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    async fn write(&self, tx: &mut Tx, rows: usize) -> ApiResult<ImportSummary> {
        let counts = format!(
            "SELECT COALESCE(SUM(CASE WHEN id IS NULL THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN id IS NULL THEN 0 ELSE 1 END), 0) FROM {DEPOT_STAGE} WHERE change = 1"
        );
        let (new, old): (i64, i64) = with_tx!(&mut *tx, |c| sqlx::query_as(&counts).fetch_one(c).await)?;
        // Each changed depot is one key of the change log: more than a few thousand are logged as
        // one change of every depot.
        let log = imports::staged::BulkLog::begin(tx, crate::change_feed::Topic::Supplies, new + old).await?;
        let insert = format!(
            "INSERT INTO depots (code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at)
             SELECT code, name, region_code, kind, lon, lat, address, manager, phone_enc, notes, created_at, updated_at
             FROM {DEPOT_STAGE} WHERE change = 1 AND id IS NULL ORDER BY line"
        );
        let created = with_tx!(&mut *tx, |c| sqlx::query(&insert).execute(c).await.map(|r| r.rows_affected()))?;
        let update = format!(
            "UPDATE depots SET name = s.name, kind = s.kind, lon = s.lon, lat = s.lat, address = s.address, manager = s.manager, phone_enc = s.phone_enc, notes = s.notes, updated_at = s.updated_at
             FROM {DEPOT_STAGE} AS s WHERE s.change = 1 AND depots.id = s.id AND depots.code = s.code"
        );
        let updated = with_tx!(&mut *tx, |c| sqlx::query(&update).execute(c).await.map(|r| r.rows_affected()))?;
        log.end(tx).await?;
        if created != new as u64 || updated != old as u64 {
            return Err(ApiError::Conflict(format!(
                "导入期间储备库被其他请求修改或删除（应新增 {new}、更新 {old}，实际 {created}、{updated}），未写入任何数据；请重新导入"
            )));
        }
        // The audit rows `audit::record_many` would write: the new state with the depot's id.
        let (before, after) = match tx.backend() {
            Backend::Sqlite => ("s.before_state", "json_set(s.after_state, '$.id', d.id)"),
            Backend::Postgres => {
                ("CAST(s.before_state AS JSONB)", "jsonb_set(CAST(s.after_state AS JSONB), '{id}', to_jsonb(d.id))")
            }
        };
        let audit = format!(
            "INSERT INTO audit_log (at, actor, actor_role, action, entity_type, entity_id, region_code, before_state, after_state, request_id)
             SELECT $1, $2, $3, 'import', 'depot', CAST(d.id AS TEXT), s.region_code, {before}, {after}, $4
             FROM {DEPOT_STAGE} s JOIN depots d ON d.code = s.code
             WHERE s.change = 1 ORDER BY s.line"
        );
        imports::staged::audit_staged(tx, &audit, self.now, &self.actor, created + updated, "depots").await?;
        let changed = (created + updated) as usize;
        Ok(ImportSummary { rows, created: created as usize, updated: updated as usize, unchanged: rows - changed })
    }
}
