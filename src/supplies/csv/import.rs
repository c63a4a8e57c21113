//! The three CSV imports (see the parent module for the rules they share).

use std::collections::{HashMap, HashSet};

use warp::reply::Response;

use super::{CATALOGUE, DEPOTS, ImportSummary, STOCK, date, fail};
use crate::audit::{self, Change};
use crate::csvio;
use crate::error::ApiResult;
use crate::http::Ctx;
use crate::http::ctx::json;
use crate::personal::Field;
use crate::regions::{RegionCode, check_lon_lat};
use crate::supplies::batches::{self, NewBatch};
use crate::supplies::catalogue::{self, Item, check_shelf_life};
use crate::supplies::depots::{self, DepotRow, check_phone};
use crate::supplies::ledger::{self, BatchAttrs, Details};
use crate::supplies::{DepotKind, MovementKind, ReserveMode, to_audit};
use crate::vocab::ItemCode;
use crate::with_db;

pub(super) async fn import_catalogue(c: Ctx) -> ApiResult<Response> {
    let records = c.csv(CATALOGUE).await?.map_err(fail)?;
    let now = c.now();
    let mut errors = Vec::new();
    let mut rows: Vec<Item> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut dropped = 0;
    for rec in &records {
        crate::error::cap_errors(&mut errors, &mut dropped);
        let n = errors.len();
        let code = rec
            .need("code", &mut errors)
            .and_then(|v| ItemCode::parse(v).map_err(|m| errors.push(rec.err("code", m))).ok());
        let name = rec.need("name", &mut errors).map(str::to_string);
        let unit = rec.need("unit", &mut errors).map(str::to_string);
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
        if let Some(code) = &code
            && let Some(prev) = seen.insert(code.as_str().to_string(), rec.line)
        {
            errors.push(rec.err("code", format!("物资编码 {code} 与第 {prev} 行重复")));
        }
        if errors.len() == n
            && let (Some(code), Some(name), Some(unit)) = (code, name, unit)
        {
            rows.push(Item {
                code: code.as_str().to_string(),
                name,
                unit,
                shelf_life_months: shelf,
                provisional: false,
                created_at: now,
                updated_at: now,
            });
        }
    }
    crate::error::finish_errors(&mut errors, dropped);
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    let existing: HashMap<String, Item> =
        catalogue::all(&c.app.db).await?.into_iter().map(|i| (i.code.clone(), i)).collect();
    let mut summary = ImportSummary { rows: rows.len(), ..Default::default() };
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    for mut row in rows {
        let before = existing.get(&row.code);
        match before {
            Some(b) if b.name == row.name && b.unit == row.unit && b.shelf_life_months == row.shelf_life_months => {
                summary.unchanged += 1;
                continue;
            }
            Some(b) => {
                row.provisional = b.provisional;
                row.created_at = b.created_at;
                catalogue::update(&mut tx, &row).await?;
                summary.updated += 1;
            }
            None => {
                catalogue::insert(&mut tx, &row).await?;
                summary.created += 1;
            }
        }
        let change = Change {
            action: "import",
            entity_type: "supply_item",
            entity_id: &row.code,
            region_code: None,
            before: before.map(to_audit).transpose()?,
            after: Some(to_audit(&row)?),
        };
        audit::record(&mut tx, &actor, now, change).await?;
    }
    tx.commit().await?;
    json(&summary)
}

pub(super) async fn import_depots(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let records = c.csv(DEPOTS).await?.map_err(fail)?;
    let now = c.now();
    let (lo, hi) = p.scope.bounds();
    let existing: HashMap<String, DepotRow> =
        depots::all_in(&c.app.db, (&lo, &hi)).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
    let regions: HashSet<String> = crate::regions::store::all(&c.app.db).await?.into_iter().map(|r| r.code).collect();
    let mut errors = Vec::new();
    // (row, new clear phone or None to keep the stored one)
    let mut rows: Vec<(DepotRow, Option<Option<String>>)> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut dropped = 0;
    for rec in &records {
        crate::error::cap_errors(&mut errors, &mut dropped);
        let n = errors.len();
        let code = rec.need("code", &mut errors).map(str::to_string);
        let name = rec.need("name", &mut errors).map(str::to_string);
        let region = rec.need("region_code", &mut errors).and_then(|v| match RegionCode::parse(v) {
            Err(m) => {
                errors.push(rec.err("region_code", m));
                None
            }
            Ok(r) if !p.scope.contains(r.as_str()) => {
                errors.push(rec.err("region_code", format!("区划 {r} 不在您的管辖范围内")));
                None
            }
            Ok(r) if !regions.contains(r.as_str()) => {
                errors.push(rec.err("region_code", format!("区划 {r} 不存在")));
                None
            }
            Ok(r) => Some(r.as_str().to_string()),
        });
        let kind = rec.need("kind", &mut errors).and_then(|v| {
            DepotKind::parse(v).or_else(|| {
                errors.push(rec.err("kind", format!("类型「{v}」无效，应为 {}", DepotKind::choices())));
                None
            })
        });
        let lon = rec.need("lon", &mut errors).and(csvio::opt_f64(rec, "lon", &mut errors));
        let lat = rec.need("lat", &mut errors).and(csvio::opt_f64(rec, "lat", &mut errors));
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
        if let Some(code) = &code {
            if let Some(prev) = seen.insert(code.clone(), rec.line) {
                errors.push(rec.err("code", format!("储备库编码 {code} 与第 {prev} 行重复")));
            }
            if !existing.contains_key(code) && depot_code_taken(&c, code).await? {
                errors.push(rec.err("code", format!("储备库编码 {code} 已被辖区外的储备库使用")));
            }
            if let (Some(old), Some(new)) = (existing.get(code), &region)
                && old.region_code != *new
            {
                errors.push(rec.err(
                    "region_code",
                    format!("储备库 {code} 属于区划 {}，所属区划不能通过导入修改", old.region_code),
                ));
            }
        }
        if errors.len() == n
            && let (Some(code), Some(name), Some(region), Some(kind), Some(lon), Some(lat)) =
                (code, name, region, kind, lon, lat)
        {
            let row = DepotRow {
                id: 0,
                code,
                name,
                region_code: region,
                kind,
                lon,
                lat,
                address: rec.get("address").map(str::to_string),
                manager: rec.get("manager").map(str::to_string),
                phone_enc: None,
                notes: None,
                created_at: now,
                updated_at: now,
            };
            rows.push((row, phone));
        }
    }
    crate::error::finish_errors(&mut errors, dropped);
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    let cipher = &c.app.cipher;
    let mut summary = ImportSummary { rows: rows.len(), ..Default::default() };
    let actor = c.actor()?;
    let mut tx = c.app.db.begin().await?;
    for (mut row, phone) in rows {
        let before = existing.get(&row.code);
        let old_phone = before.and_then(|b| b.phone(cipher));
        let new_phone = phone.unwrap_or_else(|| old_phone.clone());
        match before {
            Some(b)
                if b.name == row.name
                    && b.region_code == row.region_code
                    && b.kind == row.kind
                    && b.lon == row.lon
                    && b.lat == row.lat
                    && b.address == row.address
                    && b.manager == row.manager
                    && old_phone == new_phone =>
            {
                summary.unchanged += 1;
                continue;
            }
            Some(b) => {
                row.phone_enc = if old_phone == new_phone {
                    b.phone_enc.clone()
                } else {
                    new_phone.as_deref().map(|p| cipher.encrypt(Field::DEPOT_PHONE, p))
                };
                (row.id, row.notes, row.created_at) = (b.id, b.notes.clone(), b.created_at);
                depots::update(&mut tx, &row).await?;
                summary.updated += 1;
            }
            None => {
                row.phone_enc = new_phone.as_deref().map(|p| cipher.encrypt(Field::DEPOT_PHONE, p));
                row.id = depots::insert(&mut tx, &row).await?;
                summary.created += 1;
            }
        }
        let change = Change {
            action: "import",
            entity_type: "depot",
            entity_id: &row.id.to_string(),
            region_code: Some(&row.region_code),
            before: before.map(|b| to_audit(&b.view(cipher, false))).transpose()?,
            after: Some(to_audit(&row.view(cipher, false))?),
        };
        audit::record(&mut tx, &actor, now, change).await?;
    }
    tx.commit().await?;
    json(&summary)
}

async fn depot_code_taken(c: &Ctx, code: &str) -> ApiResult<bool> {
    let n: i64 = with_db!(&c.app.db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM depots WHERE code = $1")
        .bind(code)
        .fetch_one(p)
        .await)?;
    Ok(n > 0)
}

struct StockRow {
    depot: DepotRow,
    item: String,
    quantity: i64,
    batch: String,
    attrs: BatchAttrs,
}

pub(super) async fn import_stock(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let records = c.csv(STOCK).await?.map_err(fail)?;
    let now = c.now();
    let (lo, hi) = p.scope.bounds();
    let depots: HashMap<String, DepotRow> =
        depots::all_in(&c.app.db, (&lo, &hi)).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
    let items: HashMap<String, Item> =
        catalogue::all(&c.app.db).await?.into_iter().map(|i| (i.code.clone(), i)).collect();
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut seen: HashMap<(String, String, String), u64> = HashMap::new();
    let mut dropped = 0;
    for rec in &records {
        crate::error::cap_errors(&mut errors, &mut dropped);
        let n = errors.len();
        let depot = rec.need("depot_code", &mut errors).and_then(|v| {
            depots.get(v).cloned().or_else(|| {
                errors.push(rec.err("depot_code", format!("储备库 {v} 不存在或不在您的管辖范围内")));
                None
            })
        });
        let item = rec.need("item_code", &mut errors).and_then(|v| match ItemCode::parse(v) {
            Err(m) => {
                errors.push(rec.err("item_code", m));
                None
            }
            Ok(i) if !items.contains_key(i.as_str()) => {
                errors.push(rec.err("item_code", format!("物资编码 {i} 不在物资目录中")));
                None
            }
            Ok(i) => Some(i.as_str().to_string()),
        });
        let quantity = rec.need("quantity", &mut errors).and_then(|v| match v.parse::<i64>() {
            Ok(q) if (1..=crate::supplies::MAX_QUANTITY).contains(&q) => Some(q),
            _ => {
                errors.push(rec.err("quantity", format!("「{v}」不是正整数")));
                None
            }
        });
        let batch = rec.need("batch", &mut errors).and_then(|v| match batches::batch_id(v) {
            Ok(b) => Some(b),
            Err(e) => {
                errors.push(rec.err(e.field, e.message));
                None
            }
        });
        let production_date = date(rec, "production_date", &mut errors);
        let expiry_date = date(rec, "expiry_date", &mut errors);
        let reserve_mode = match rec.get("reserve_mode") {
            None => Some(ReserveMode::Physical),
            Some(v) => ReserveMode::parse(v).or_else(|| {
                errors.push(rec.err("reserve_mode", format!("储备方式「{v}」无效，应为 {}", ReserveMode::choices())));
                None
            }),
        };
        if let (Some(d), Some(i), Some(b)) = (&depot, &item, &batch)
            && let Some(prev) = seen.insert((d.code.clone(), i.clone(), b.clone()), rec.line)
        {
            errors.push(rec.row_err(format!("储备库 {}、物资 {i}、批次 {b} 与第 {prev} 行重复", d.code)));
        }
        if errors.len() == n
            && let (Some(depot), Some(item), Some(quantity), Some(batch), Some(mode)) =
                (depot, item, quantity, batch, reserve_mode)
        {
            // The same batch rules as a receive movement (shelf-life expiry, identity, mode).
            let new = NewBatch { batch, production_date, expiry_date, reserve_mode: Some(mode), ..NewBatch::default() };
            match batches::new_batch(&items[&item], new) {
                Ok((batch, attrs)) => rows.push(StockRow { depot, item, quantity, batch, attrs }),
                Err(e) => errors.push(rec.err(e.field, e.message)),
            }
        }
    }
    crate::error::finish_errors(&mut errors, dropped);
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    let mut summary = ImportSummary { rows: rows.len(), ..Default::default() };
    let actor = c.actor()?;
    let details = Details { reference: Some("CSV 导入".into()), ..Details::default() };
    let mut tx = c.app.db.begin().await?;
    for r in rows {
        if ledger::find_batch(&mut tx, r.depot.id, &r.item, &r.batch).await?.is_some() {
            summary.unchanged += 1;
            continue;
        }
        let batch = ledger::open_batch(&mut tx, r.depot.id, &r.item, &r.batch, &r.attrs, now).await?;
        let m = ledger::apply(&mut tx, &batch, MovementKind::Receive, r.quantity, &details, now, &actor.name).await?;
        summary.created += 1;
        let change = Change {
            action: "import",
            entity_type: "stock_movement",
            entity_id: &m.id.to_string(),
            region_code: Some(&r.depot.region_code),
            before: None,
            after: Some(to_audit(&m)?),
        };
        audit::record(&mut tx, &actor, now, change).await?;
    }
    tx.commit().await?;
    json(&summary)
}
