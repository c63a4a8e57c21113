//! CSV import and export of the catalogue, depots and stock.
//!
//! Imports are all-or-nothing, accept English or Chinese headers and a BOM, name the line and
//! column of every error, and are idempotent: catalogue items and depots are matched by code
//! (created, updated, or left alone when equal); stock rows are matched by their batch identity
//! (depot, item, batch): a row whose batch already exists is left alone, a new one is received
//! with a `receive` movement. So re-importing a file changes nothing, and quantities change only
//! through movements. Exports use Chinese headers (`?header=en` for English) with a UTF-8 BOM
//! and re-import cleanly. Depot phones are exported masked unless the exporter may see personal
//! data (each revealed phone is audited); a masked phone on import keeps the stored one.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::Method;
use warp::reply::Response;

use super::catalogue::{self, Item, check_shelf_life};
use super::depots::{self, DepotRow, check_phone};
use super::ledger::{self, BatchAttrs, Details};
use super::{DepotKind, MovementKind, ReserveMode, to_audit};
use crate::audit::{self, Change};
use crate::auth::Perm;
use crate::csvio::{self, Column, Record};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::http::ctx::{body, json};
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};
use crate::personal::mask_phone;
use crate::regions::{RegionCode, check_lon_lat};
use crate::vocab::ItemCode;
use crate::with_db;

/// Columns of the catalogue file.
pub const CATALOGUE: &[Column] = &[
    Column { name: "code", zh: "物资编码", aliases: &["编码"], required: true },
    Column::required("name", "名称"),
    Column { name: "unit", zh: "计量单位", aliases: &["单位"], required: true },
    Column {
        name: "shelf_life_months", zh: "保质期（月）", aliases: &["保质期(月)", "保质期"], required: false
    },
];

/// Columns of the depots file.
pub const DEPOTS: &[Column] = &[
    Column { name: "code", zh: "储备库编码", aliases: &["编码"], required: true },
    Column::required("name", "名称"),
    Column { name: "region_code", zh: "区划代码", aliases: &["所属区划"], required: true },
    Column::required("kind", "类型"),
    Column::required("lon", "经度"),
    Column::required("lat", "纬度"),
    Column::optional("address", "地址"),
    Column { name: "manager", zh: "管理员", aliases: &["负责人"], required: false },
    Column { name: "phone", zh: "联系电话", aliases: &["电话"], required: false },
];

/// Columns of the stock file.
pub const STOCK: &[Column] = &[
    Column::required("depot_code", "储备库编码"),
    Column::required("item_code", "物资编码"),
    Column::required("quantity", "数量"),
    Column::required("batch", "批次"),
    Column::optional("production_date", "生产日期"),
    Column { name: "expiry_date", zh: "有效期至", aliases: &["过期日期", "失效日期"], required: false },
    Column::optional("reserve_mode", "储备方式"),
];

/// What an import did.
#[derive(Debug, Serialize, JsonSchema, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Data rows read.
    pub rows: usize,
    /// Entities created (stock: batches received).
    pub created: usize,
    /// Entities changed.
    pub updated: usize,
    /// Rows matching what is stored (stock: batches that already exist).
    pub unchanged: usize,
}

/// Query of the exports.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `zh` (default, for Excel) or `en`.
    pub header: Option<String>,
}

fn fail(errors: Vec<FieldError>) -> ApiError {
    let first = errors.first().map(|e| e.message.clone()).unwrap_or_default();
    ApiError::invalid_many(format!("导入文件有 {} 处错误，未写入任何数据；第一处：{first}", errors.len()), errors)
}

fn date(rec: &Record, name: &'static str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let v = rec.get(name)?;
    ["%Y-%m-%d", "%Y/%m/%d"].iter().find_map(|f| NaiveDate::parse_from_str(v, f).ok()).or_else(|| {
        errors.push(rec.err(name, format!("「{v}」不是日期，应为 YYYY-MM-DD")));
        None
    })
}

/// Routes of CSV import and export.
pub fn routes() -> Vec<Route> {
    let import = |path, summary, description, h: fn(Ctx) -> crate::http::router::HandlerFuture| {
        route(
            Method::POST,
            path,
            Access::Token,
            BodyKind::Csv,
            Doc { description, response: Some(schema::<ImportSummary>()), ..Doc::new("应急物资", summary) },
            h,
        )
    };
    let export = |path, summary, h: fn(Ctx) -> crate::http::router::HandlerFuture| {
        route(
            Method::GET,
            path,
            Access::Token,
            BodyKind::None,
            Doc {
                description: "CSV（UTF-8 带 BOM，默认中文表头，?header=en 为英文表头），可原样重新导入。",
                query: Some(schema::<ExportQuery>()),
                response_type: Some("text/csv"),
                ..Doc::new("应急物资", summary)
            },
            h,
        )
    };
    vec![
        import(
            "/api/v1/import/catalogue",
            "导入物资目录",
            "表头 code,name,unit,shelf_life_months（或 物资编码,名称,计量单位,保质期（月））。管理员或规划员；全有或全无；按编码新增或更新。",
            |c| Box::pin(import_catalogue(c)),
        ),
        import(
            "/api/v1/import/depots",
            "导入储备库",
            "表头 code,name,region_code,kind,lon,lat,address,manager,phone。限辖区内；全有或全无；按编码新增或更新；掩码电话保留原值。",
            |c| Box::pin(import_depots(c)),
        ),
        import(
            "/api/v1/import/stock",
            "导入库存",
            "表头 depot_code,item_code,quantity,batch,production_date,expiry_date,reserve_mode。每行记一笔 receive 入库；按（储备库、物资、批次）识别，已存在的批次跳过，故重复导入不产生变化。",
            |c| Box::pin(import_stock(c)),
        ),
        export("/api/v1/export/catalogue.csv", "导出物资目录", |c| Box::pin(export_catalogue(c))),
        export("/api/v1/export/depots.csv", "导出储备库", |c| Box::pin(export_depots(c))),
        export("/api/v1/export/stock.csv", "导出库存", |c| Box::pin(export_stock(c))),
    ]
}

async fn import_catalogue(c: Ctx) -> ApiResult<Response> {
    c.require(Perm::Plan)?;
    let records = csvio::parse(c.text()?, CATALOGUE).map_err(fail)?;
    let now = c.now();
    let mut errors = Vec::new();
    let mut rows: Vec<Item> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for rec in &records {
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

async fn import_depots(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Write)?;
    let records = csvio::parse(c.text()?, DEPOTS).map_err(fail)?;
    let now = c.now();
    let (lo, hi) = p.scope.bounds();
    let existing: HashMap<String, DepotRow> =
        depots::all_in(&c.app.db, (&lo, &hi)).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
    let regions: HashSet<String> = crate::regions::store::all(&c.app.db).await?.into_iter().map(|r| r.code).collect();
    let mut errors = Vec::new();
    // (row, new clear phone or None to keep the stored one)
    let mut rows: Vec<(DepotRow, Option<Option<String>>)> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for rec in &records {
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
                errors.push(rec.err("kind", format!("类型「{v}」无效，应为 {}", DepotKind::codes())));
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
            Some(b) if b.region_code != row.region_code => {
                return Err(fail(vec![FieldError::field(
                    "region_code",
                    format!("储备库 {} 的所属区划不能通过导入修改", b.code),
                )]));
            }
            Some(b) => {
                row.phone_enc = if old_phone == new_phone {
                    b.phone_enc.clone()
                } else {
                    new_phone.as_deref().map(|p| cipher.encrypt(p))
                };
                (row.id, row.notes, row.created_at) = (b.id, b.notes.clone(), b.created_at);
                depots::update(&mut tx, &row).await?;
                summary.updated += 1;
            }
            None => {
                row.phone_enc = new_phone.as_deref().map(|p| cipher.encrypt(p));
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

async fn import_stock(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Write)?;
    let records = csvio::parse(c.text()?, STOCK).map_err(fail)?;
    let now = c.now();
    let (lo, hi) = p.scope.bounds();
    let depots: HashMap<String, DepotRow> =
        depots::all_in(&c.app.db, (&lo, &hi)).await?.into_iter().map(|d| (d.code.clone(), d)).collect();
    let items: HashSet<String> = catalogue::all(&c.app.db).await?.into_iter().map(|i| i.code).collect();
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut seen: HashMap<(String, String, String), u64> = HashMap::new();
    for rec in &records {
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
            Ok(i) if !items.contains(i.as_str()) => {
                errors.push(rec.err("item_code", format!("物资编码 {i} 不在物资目录中")));
                None
            }
            Ok(i) => Some(i.as_str().to_string()),
        });
        let quantity = rec.need("quantity", &mut errors).and_then(|v| match v.parse::<i64>() {
            Ok(q) if q > 0 => Some(q),
            _ => {
                errors.push(rec.err("quantity", format!("「{v}」不是正整数")));
                None
            }
        });
        let batch = rec.need("batch", &mut errors).map(str::to_string);
        if batch.as_ref().is_some_and(|b| b.chars().count() > 60) {
            errors.push(rec.err("batch", "批次号超过 60 个字符"));
        }
        let production_date = date(rec, "production_date", &mut errors);
        let expiry_date = date(rec, "expiry_date", &mut errors);
        let reserve_mode = match rec.get("reserve_mode") {
            None => Some(ReserveMode::Physical),
            Some(v) => ReserveMode::parse(v).or_else(|| {
                errors.push(rec.err("reserve_mode", format!("储备方式「{v}」无效，应为 {}", ReserveMode::codes())));
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
            let attrs = BatchAttrs { production_date, expiry_date, reserve_mode: mode, ..BatchAttrs::physical() };
            rows.push(StockRow { depot, item, quantity, batch, attrs });
        }
    }
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

fn chinese(c: &Ctx) -> ApiResult<bool> {
    let q: ExportQuery = c.query()?;
    match q.header.as_deref() {
        None | Some("zh") => Ok(true),
        Some("en") => Ok(false),
        Some(other) => Err(ApiError::invalid("header", format!("header「{other}」无效，应为 zh 或 en"))),
    }
}

fn write_csv(columns: &[Column], zh: bool, rows: Vec<Vec<String>>) -> ApiResult<Response> {
    let mut w = ::csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let internal = |e: ::csv::Error| ApiError::Internal(e.into());
    w.write_record(csvio::header_row(columns, zh)).map_err(internal)?;
    for r in rows {
        w.write_record(r).map_err(internal)?;
    }
    let data = w.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    Ok(body("text/csv; charset=utf-8", data))
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

async fn export_catalogue(c: Ctx) -> ApiResult<Response> {
    c.require(Perm::Read)?;
    let zh = chinese(&c)?;
    let rows = catalogue::all(&c.app.db)
        .await?
        .into_iter()
        .map(|i| vec![i.code, i.name, i.unit, opt(&i.shelf_life_months)])
        .collect();
    write_csv(CATALOGUE, zh, rows)
}

async fn export_depots(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let zh = chinese(&c)?;
    let reveal = p.role.allows(Perm::RevealPersonal);
    let (lo, hi) = p.scope.bounds();
    let all = depots::all_in(&c.app.db, (&lo, &hi)).await?;
    if reveal && all.iter().any(|d| d.phone_enc.is_some()) {
        let mut tx = c.app.db.begin().await?;
        for d in all.iter().filter(|d| d.phone_enc.is_some()) {
            depots::audit_reveal(&mut tx, &c, d).await?;
        }
        tx.commit().await?;
    }
    let rows = all
        .iter()
        .map(|d| {
            let phone = d.phone(&c.app.cipher).map(|p| if reveal { p } else { mask_phone(&p) });
            vec![
                d.code.clone(),
                d.name.clone(),
                d.region_code.clone(),
                d.kind.as_str().to_string(),
                d.lon.to_string(),
                d.lat.to_string(),
                opt(&d.address),
                opt(&d.manager),
                opt(&phone),
            ]
        })
        .collect();
    write_csv(DEPOTS, zh, rows)
}

async fn export_stock(c: Ctx) -> ApiResult<Response> {
    let p = c.require(Perm::Read)?;
    let zh = chinese(&c)?;
    let (lo, hi) = p.scope.bounds();
    #[derive(sqlx::FromRow)]
    struct Row {
        depot_code: String,
        item_code: String,
        quantity: i64,
        batch: String,
        production_date: Option<NaiveDate>,
        expiry_date: Option<NaiveDate>,
        reserve_mode: String,
    }
    let rows: Vec<Row> = with_db!(&c.app.db, |db| {
        sqlx::query_as::<_, Row>(
        "SELECT d.code AS depot_code, s.item_code, s.quantity, s.batch, s.production_date, s.expiry_date, s.reserve_mode
         FROM stock_batches s JOIN depots d ON d.id = s.depot_id
         WHERE d.region_code >= $1 AND d.region_code <= $2 AND s.quantity > 0
         ORDER BY d.code, s.item_code, s.batch"
    )
    .bind(&lo)
    .bind(&hi)
    .fetch_all(db)
    .await
    })?;
    let rows = rows
        .into_iter()
        .map(|r| {
            vec![
                r.depot_code,
                r.item_code,
                r.quantity.to_string(),
                r.batch,
                opt(&r.production_date),
                opt(&r.expiry_date),
                r.reserve_mode,
            ]
        })
        .collect();
    write_csv(STOCK, zh, rows)
}
