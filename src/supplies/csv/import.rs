//! The three supplies imports (see the parent module for the rules they share), each a kind of
//! the one import pipeline ([`crate::imports`]).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use warp::reply::Response;

use super::{CATALOGUE, DEPOTS, STOCK, date};
use crate::audit::{self, Actor, Change};
use crate::auth::Scope;
use crate::csvio::{self, Column, Record};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::imports::short::Short;
use crate::imports::{self, Errors, Import, ImportSummary, Lined, bulk};
use crate::personal::{Cipher, Field};
use crate::regions::{RegionCode, check_lon_lat};
use crate::supplies::batches::{self, NewBatch};
use crate::supplies::catalogue::{self, Item, check_shelf_life};
use crate::supplies::depots::{self, DepotRow, check_phone};
use crate::supplies::ledger::{self, Details, Receipt};
use crate::supplies::{DepotKind, ReserveMode, to_audit};
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::with_db;

/// `POST /api/v1/import/catalogue`.
pub(super) async fn import_catalogue(c: Ctx) -> ApiResult<Response> {
    let imp = CatalogueImport { actor: c.actor()?, now: c.now() };
    imports::respond(&c, &imp).await
}

/// `POST /api/v1/import/depots`.
pub(super) async fn import_depots(c: Ctx) -> ApiResult<Response> {
    let imp =
        DepotImport { scope: c.caller()?.scope.clone(), actor: c.actor()?, now: c.now(), cipher: c.app.cipher.clone() };
    imports::respond(&c, &imp).await
}

/// `POST /api/v1/import/stock`.
pub(super) async fn import_stock(c: Ctx) -> ApiResult<Response> {
    let imp = StockImport { scope: c.caller()?.scope.clone(), actor: c.actor()?, now: c.now() };
    imports::respond(&c, &imp).await
}

/// The supplies catalogue, matched by item code.
pub struct CatalogueImport {
    actor: Actor,
    now: Timestamp,
}

/// A catalogue row as parsed.
pub struct CatalogueRow {
    code: String,
    name: String,
    unit: String,
    shelf: Option<i64>,
}

/// What a catalogue import writes.
pub struct CataloguePlan {
    rows: usize,
    unchanged: usize,
    /// (new, before) — before None for a new item.
    changes: Vec<(Item, Option<Item>)>,
}

impl Import for CatalogueImport {
    type Row = CatalogueRow;
    type Plan = CataloguePlan;
    const COLUMNS: &'static [Column] = CATALOGUE;

    fn parse(rec: &Record<'_>, _now: Timestamp, errors: &mut Vec<FieldError>) -> Option<CatalogueRow> {
        let code =
            rec.need("code", errors).and_then(|v| ItemCode::parse(v).map_err(|m| errors.push(rec.err("code", m))).ok());
        let name = rec.need("name", errors).map(str::to_string);
        let unit = rec.need("unit", errors).map(str::to_string);
        let shelf = match rec.get("shelf_life_months") {
            None => None,
            Some(v) => {
                match v.parse::<i64>().map_err(|_| format!("「{v}」不是整数")).and_then(|m| check_shelf_life(Some(m)))
                {
                    Ok(m) => m,
                    Err(m) => {
                        errors.push(rec.err("shelf_life_months", m));
                        None
                    }
                }
            }
        };
        Some(CatalogueRow { code: code?.as_str().to_string(), name: name?, unit: unit?, shelf })
    }

    async fn check(&self, db: &Db, rows: Vec<Lined<CatalogueRow>>, errors: &mut Errors) -> ApiResult<CataloguePlan> {
        let existing: HashMap<String, Item> =
            catalogue::all(db).await?.into_iter().map(|i| (i.code.clone(), i)).collect();
        let mut plan = CataloguePlan { rows: rows.len(), unchanged: 0, changes: Vec::new() };
        let mut seen: HashMap<String, u64> = HashMap::new();
        for Lined { line, row } in rows {
            if let Some(prev) = seen.insert(row.code.clone(), line) {
                errors.at(line, "code", format!("物资编码 {} 与第 {prev} 行重复", row.code));
                continue;
            }
            let before = existing.get(&row.code);
            let mut item = Item {
                code: row.code,
                name: row.name,
                unit: row.unit,
                shelf_life_months: row.shelf,
                provisional: false,
                created_at: self.now,
                updated_at: self.now,
            };
            match before {
                Some(b)
                    if b.name == item.name && b.unit == item.unit && b.shelf_life_months == item.shelf_life_months =>
                {
                    plan.unchanged += 1
                }
                Some(b) => {
                    (item.provisional, item.created_at) = (b.provisional, b.created_at);
                    plan.changes.push((item, Some(b.clone())));
                }
                None => plan.changes.push((item, None)),
            }
        }
        Ok(plan)
    }

    async fn write(&self, tx: &mut Tx, plan: CataloguePlan) -> ApiResult<ImportSummary> {
        let (new, old): (Vec<_>, Vec<_>) = plan.changes.iter().partition(|(_, b)| b.is_none());
        let mut summary = ImportSummary { rows: plan.rows, unchanged: plan.unchanged, ..Default::default() };
        for chunk in new.chunks(bulk::chunk(7)) {
            let items: Vec<Item> = chunk.iter().map(|(i, _)| i.clone()).collect();
            catalogue::insert_many(tx, &items).await?;
        }
        for chunk in old.chunks(bulk::chunk(6)) {
            let items: Vec<Item> = chunk.iter().map(|(i, _)| i.clone()).collect();
            catalogue::update_many(tx, &items).await?;
        }
        (summary.created, summary.updated) = (new.len(), old.len());
        let mut changes = Vec::with_capacity(plan.changes.len());
        for (item, before) in &plan.changes {
            changes.push(Change {
                action: "import",
                entity_type: "supply_item",
                entity_id: &item.code,
                region_code: None,
                before: before.as_ref().map(to_audit).transpose()?,
                after: Some(to_audit(item)?),
            });
        }
        audit::record_many(tx, &self.actor, self.now, changes).await?;
        Ok(summary)
    }
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

/// What a depot import writes.
pub struct DepotPlan {
    rows: usize,
    unchanged: usize,
    changes: Vec<DepotChange>,
}

/// One depot to write, with its audit states prepared before the transaction (phones decrypted
/// and masked, JSON built), so the write lock is held only for the statements.
pub struct DepotChange {
    row: DepotRow,
    /// The stored state as JSON text (None: a new depot). Text, not `Value`: a large file keeps
    /// one per row, and a `Value` tree is ten times the size.
    before: Option<String>,
    /// The new state as JSON text (a new depot's `id` is filled in once inserted).
    after: String,
}

fn audit_text(view: &crate::supplies::depots::Depot) -> ApiResult<String> {
    serde_json::to_string(view).map_err(|e| crate::error::ApiError::Internal(e.into()))
}

fn audit_value(text: &str) -> ApiResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| crate::error::ApiError::Internal(e.into()))
}

impl Import for DepotImport {
    type Row = DepotLine;
    type Plan = DepotPlan;
    const COLUMNS: &'static [Column] = DEPOTS;

    fn parse(rec: &Record<'_>, _now: Timestamp, errors: &mut Vec<FieldError>) -> Option<DepotLine> {
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

    async fn check(&self, db: &Db, rows: Vec<Lined<DepotLine>>, errors: &mut Errors) -> ApiResult<DepotPlan> {
        let (lo, hi) = self.scope.bounds();
        let existing: HashMap<String, DepotRow> =
            depots::all_in(db, (&lo, &hi)).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
        let regions: HashSet<String> = crate::regions::store::all(db).await?.into_iter().map(|r| r.code).collect();
        // Codes are unique across the banner: one query for all of them, not one per row.
        let taken: HashSet<String> =
            with_db!(db, |p| sqlx::query_scalar::<_, String>("SELECT code FROM depots").fetch_all(p).await)?
                .into_iter()
                .collect();
        let mut plan = DepotPlan { rows: rows.len(), unchanged: 0, changes: Vec::new() };
        let mut seen: HashMap<String, u64> = HashMap::new();
        let cipher = &self.cipher;
        for Lined { line, row } in rows {
            if !self.scope.contains(&row.region) {
                errors.at(line, "region_code", format!("区划 {} 不在您的管辖范围内", row.region));
            } else if !regions.contains(&row.region) {
                errors.at(line, "region_code", format!("区划 {} 不存在", row.region));
            }
            if let Some(prev) = seen.insert(row.code.clone(), line) {
                errors.at(line, "code", format!("储备库编码 {} 与第 {prev} 行重复", row.code));
            }
            let before = existing.get(&row.code);
            if before.is_none() && taken.contains(&row.code) {
                errors.at(line, "code", format!("储备库编码 {} 已被辖区外的储备库使用", row.code));
            }
            if let Some(old) = before
                && old.region_code != row.region
            {
                errors.at(
                    line,
                    "region_code",
                    format!("储备库 {} 属于区划 {}，所属区划不能通过导入修改", row.code, old.region_code),
                );
            }
            if !errors.is_empty() {
                // Once the file is certain to fail, only errors are of interest.
                continue;
            }
            let old_phone = before.and_then(|b| b.phone(cipher));
            let new_phone = row.phone.unwrap_or_else(|| old_phone.clone());
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
                created_at: self.now,
                updated_at: self.now,
            };
            match before {
                Some(b)
                    if b.name == d.name
                        && b.kind == d.kind
                        && b.lon == d.lon
                        && b.lat == d.lat
                        && b.address == d.address
                        && b.manager == d.manager
                        && old_phone == new_phone =>
                {
                    plan.unchanged += 1;
                }
                Some(b) => {
                    d.phone_enc = if old_phone == new_phone {
                        b.phone_enc.clone()
                    } else {
                        new_phone.as_deref().map(|p| cipher.encrypt(Field::DEPOT_PHONE, p))
                    };
                    (d.id, d.notes, d.created_at) = (b.id, b.notes.clone(), b.created_at);
                    let before = Some(audit_text(&b.view(cipher, false))?);
                    plan.changes.push(DepotChange { after: audit_text(&d.view(cipher, false))?, row: d, before });
                }
                None => {
                    d.phone_enc = new_phone.as_deref().map(|p| cipher.encrypt(Field::DEPOT_PHONE, p));
                    plan.changes.push(DepotChange { after: audit_text(&d.view(cipher, false))?, row: d, before: None });
                }
            }
        }
        Ok(plan)
    }

    async fn write(&self, tx: &mut Tx, plan: DepotPlan) -> ApiResult<ImportSummary> {
        let mut summary = ImportSummary { rows: plan.rows, unchanged: plan.unchanged, ..Default::default() };
        for chunk in plan.changes.chunks(bulk::chunk(12)) {
            let new: Vec<DepotRow> = chunk.iter().filter(|c| c.before.is_none()).map(|c| c.row.clone()).collect();
            let old: Vec<DepotRow> = chunk.iter().filter(|c| c.before.is_some()).map(|c| c.row.clone()).collect();
            let ids: HashMap<String, i64> =
                depots::insert_many(tx, &new).await?.into_iter().map(|(id, code)| (code, id)).collect();
            depots::update_many(tx, &old).await?;
            summary.created += new.len();
            summary.updated += old.len();
            let entity_ids: Vec<i64> =
                chunk.iter().map(|c| ids.get(&c.row.code).copied().unwrap_or(c.row.id)).collect();
            let names: Vec<String> = entity_ids.iter().map(i64::to_string).collect();
            let mut changes = Vec::with_capacity(chunk.len());
            for ((c, id), name) in chunk.iter().zip(&entity_ids).zip(&names) {
                let mut after = audit_value(&c.after)?;
                after["id"] = (*id).into();
                changes.push(Change {
                    action: "import",
                    entity_type: "depot",
                    entity_id: name,
                    region_code: Some(&c.row.region_code),
                    before: c.before.as_deref().map(audit_value).transpose()?,
                    after: Some(after),
                });
            }
            audit::record_many(tx, &self.actor, self.now, changes).await?;
        }
        Ok(summary)
    }
}

/// Stock: one received batch per row, within the caller's jurisdiction.
pub struct StockImport {
    scope: Scope,
    actor: Actor,
    now: Timestamp,
}

/// A stock row as parsed.
pub struct StockLine {
    depot: Short,
    item: Short,
    quantity: i64,
    batch: Short,
    production_date: Option<NaiveDate>,
    expiry_date: Option<NaiveDate>,
    reserve_mode: ReserveMode,
}

/// What a stock import writes: the checked rows themselves, turned into receipts a chunk at a
/// time as they are written (a second full copy of a large file would double its memory).
pub struct StockPlan {
    rows: usize,
    lines: Vec<Lined<StockLine>>,
    /// Depot id of each line.
    depot_ids: Vec<i64>,
    /// The catalogue (for the batch rules).
    items: HashMap<String, Item>,
    /// Region of each depot (for the audit rows).
    regions: HashMap<i64, String>,
}

impl StockLine {
    /// The batch this line opens (the same rules as a receive movement: shelf-life expiry,
    /// identity, mode).
    fn new_batch(&self, item: &Item) -> Result<(String, ledger::BatchAttrs), batches::RuleError> {
        let new = NewBatch {
            batch: self.batch.to_string(),
            production_date: self.production_date,
            expiry_date: self.expiry_date,
            reserve_mode: Some(self.reserve_mode),
            ..NewBatch::default()
        };
        batches::new_batch(item, new)
    }
}

impl Import for StockImport {
    type Row = StockLine;
    type Plan = StockPlan;
    const COLUMNS: &'static [Column] = STOCK;

    fn parse(rec: &Record<'_>, _now: Timestamp, errors: &mut Vec<FieldError>) -> Option<StockLine> {
        let depot = rec.need("depot_code", errors).map(Short::from);
        let item = rec.need("item_code", errors).and_then(|v| match ItemCode::parse(v) {
            Err(m) => {
                errors.push(rec.err("item_code", m));
                None
            }
            Ok(i) => Some(Short::from(i.as_str())),
        });
        let quantity = rec.need("quantity", errors).and_then(|v| match v.parse::<i64>() {
            Ok(q) if (1..=crate::supplies::MAX_QUANTITY).contains(&q) => Some(q),
            _ => {
                errors.push(rec.err("quantity", format!("「{v}」不是正整数")));
                None
            }
        });
        let batch = rec.need("batch", errors).and_then(|v| match batches::batch_id(v) {
            Ok(b) => Some(Short::from(b.as_str())),
            Err(e) => {
                errors.push(rec.err(e.field, e.message));
                None
            }
        });
        let production_date = date(rec, "production_date", errors);
        let expiry_date = date(rec, "expiry_date", errors);
        let reserve_mode = match rec.get("reserve_mode") {
            None => Some(ReserveMode::Physical),
            Some(v) => ReserveMode::parse(v).or_else(|| {
                errors.push(rec.err("reserve_mode", format!("储备方式「{v}」无效，应为 {}", ReserveMode::choices())));
                None
            }),
        };
        Some(StockLine {
            depot: depot?,
            item: item?,
            quantity: quantity?,
            batch: batch?,
            production_date,
            expiry_date,
            reserve_mode: reserve_mode?,
        })
    }

    async fn check(&self, db: &Db, rows: Vec<Lined<StockLine>>, errors: &mut Errors) -> ApiResult<StockPlan> {
        let (lo, hi) = self.scope.bounds();
        let depots: HashMap<String, (i64, String)> =
            depots::all_in(db, (&lo, &hi)).await?.into_iter().map(|d| (d.code, (d.id, d.region_code))).collect();
        let items: HashMap<String, Item> = catalogue::all(db).await?.into_iter().map(|i| (i.code.clone(), i)).collect();
        // Duplicates within the file: sort line indices by identity (no copy of the keys).
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        let key = |i: u32| {
            let r = &rows[i as usize].row;
            (r.depot.as_str(), r.item.as_str(), r.batch.as_str())
        };
        order.sort_unstable_by(|a, b| key(*a).cmp(&key(*b)).then(a.cmp(b)));
        let mut dup: HashMap<u32, u64> = HashMap::new();
        for w in order.windows(2) {
            if key(w[0]) == key(w[1]) {
                let first = dup.get(&w[0]).copied().unwrap_or(rows[w[0] as usize].line);
                dup.insert(w[1], first);
            }
        }
        drop(order);
        // The rows stay where they are (the plan keeps them): only their depot ids are added.
        let mut depot_ids = Vec::with_capacity(rows.len());
        let mut regions = HashMap::new();
        let total = rows.len();
        for (i, Lined { line, row }) in rows.iter().enumerate() {
            let line = *line;
            let n = errors.total();
            let depot = depots.get(row.depot.as_str());
            if depot.is_none() {
                errors.at(line, "depot_code", format!("储备库 {} 不存在或不在您的管辖范围内", row.depot));
            }
            let item = items.get(row.item.as_str());
            if item.is_none() {
                errors.at(line, "item_code", format!("物资编码 {} 不在物资目录中", row.item));
            }
            if let Some(prev) = dup.get(&(i as u32)) {
                errors.row(
                    line,
                    format!("储备库 {}、物资 {}、批次 {} 与第 {prev} 行重复", row.depot, row.item, row.batch),
                );
            }
            let (Some((depot_id, region)), Some(item)) = (depot, item) else { continue };
            if errors.total() != n {
                continue;
            }
            if let Err(e) = row.new_batch(item) {
                errors.at(line, e.field, e.message);
            }
            if errors.is_empty() {
                regions.entry(*depot_id).or_insert_with(|| region.clone());
                depot_ids.push(*depot_id);
            } else if !depot_ids.is_empty() {
                // Certain to fail: keep only errors from here on.
                depot_ids = Vec::new();
            }
        }
        let lines = if errors.is_empty() { rows } else { Vec::new() };
        Ok(StockPlan { rows: total, lines, depot_ids, items, regions })
    }

    async fn write(&self, tx: &mut Tx, plan: StockPlan) -> ApiResult<ImportSummary> {
        let mut summary = ImportSummary { rows: plan.rows, ..Default::default() };
        let details = Details { reference: Some("CSV 导入".into()), ..Details::default() };
        let per = bulk::chunk(13);
        for (lines, ids) in plan.lines.chunks(per).zip(plan.depot_ids.chunks(per)) {
            let mut chunk = Vec::with_capacity(lines.len());
            for (Lined { row: l, .. }, depot_id) in lines.iter().zip(ids) {
                let item = plan
                    .items
                    .get(l.item.as_str())
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("item vanished")))?;
                let (batch, attrs) = l.new_batch(item).map_err(|e| ApiError::invalid(e.field, e.message))?;
                chunk.push(Receipt {
                    depot_id: *depot_id,
                    item_code: l.item.to_string(),
                    batch,
                    quantity: l.quantity,
                    attrs,
                });
            }
            let chunk = &chunk[..];
            let moved = ledger::receive_new(tx, chunk, &details, self.now, &self.actor.name).await?;
            summary.created += moved.len();
            summary.unchanged += chunk.len() - moved.len();
            let ids: Vec<String> = moved.iter().map(|m| m.id.to_string()).collect();
            let mut changes = Vec::with_capacity(moved.len());
            for (m, id) in moved.iter().zip(&ids) {
                changes.push(Change {
                    action: "import",
                    entity_type: "stock_movement",
                    entity_id: id,
                    region_code: plan.regions.get(&m.depot_id).map(String::as_str),
                    before: None,
                    after: Some(to_audit(m)?),
                });
            }
            audit::record_many(tx, &self.actor, self.now, changes).await?;
        }
        Ok(summary)
    }
}
