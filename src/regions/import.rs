//! Importing an official division list (`code,name,level,parent_code[,lon,lat]`): all or
//! nothing, idempotent, every error with its line.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Level, Region, RegionCode, check_lon_lat, store};
use crate::audit::{self, Actor, Change};
use crate::auth::Scope;
use crate::csvio::{self, Column};
use crate::db::Db;
use crate::error::{ApiError, FieldError};
use crate::time::Timestamp;

/// Columns of a division file.
pub const COLUMNS: &[Column] = &[
    Column { name: "code", zh: "区划代码", aliases: &["代码"], required: true },
    Column { name: "name", zh: "名称", aliases: &["区划名称"], required: true },
    Column { name: "level", zh: "级别", aliases: &["层级"], required: true },
    Column { name: "parent_code", zh: "上级代码", aliases: &["上级区划代码"], required: true },
    Column::optional("lon", "经度"),
    Column::optional("lat", "纬度"),
];

/// What an import did.
#[derive(Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct ImportSummary {
    /// Data rows read.
    pub rows: usize,
    /// Regions created.
    pub created: usize,
    /// Regions whose name or location changed.
    pub updated: usize,
    /// Rows that matched what was already stored.
    pub unchanged: usize,
}

struct Row {
    line: u64,
    code: RegionCode,
    name: String,
    level: Level,
    parent: RegionCode,
    location: Option<(f64, f64)>,
}

/// Parses the rows; returns the valid ones and the errors of the others.
fn parse_rows(text: &str) -> Result<(Vec<Row>, Vec<FieldError>), Vec<FieldError>> {
    let records = csvio::parse(text, COLUMNS)?;
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for rec in &records {
        let n = errors.len();
        let code = rec
            .need("code", &mut errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("code", m))).ok());
        let name = rec.need("name", &mut errors).map(str::to_string);
        if let Some(name) = &name
            && name.chars().count() > 100
        {
            errors.push(rec.err("name", "名称超过 100 个字符"));
        }
        let level = rec.need("level", &mut errors).and_then(|v| {
            Level::parse(v)
                .ok_or_else(|| {
                    errors.push(rec.err("level", format!("级别「{v}」无效，应为 banner、township 或 village")))
                })
                .ok()
        });
        let parent = rec
            .need("parent_code", &mut errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("parent_code", m))).ok());
        let lon = csvio::opt_f64(rec, "lon", &mut errors);
        let lat = csvio::opt_f64(rec, "lat", &mut errors);
        let location = match (lon, lat, rec.get("lon"), rec.get("lat")) {
            (Some(lon), Some(lat), _, _) => match check_lon_lat(lon, lat) {
                Ok(()) => Some((lon, lat)),
                Err(m) => {
                    errors.push(rec.err(if (-180.0..=180.0).contains(&lon) { "lat" } else { "lon" }, m));
                    None
                }
            },
            (_, _, None, None) => None,
            (_, _, Some(_), None) => {
                errors.push(rec.err("lat", "给出经度时须同时给出纬度"));
                None
            }
            (_, _, None, Some(_)) => {
                errors.push(rec.err("lon", "给出纬度时须同时给出经度"));
                None
            }
            _ => None,
        };
        if let (Some(code), Some(level)) = (&code, level)
            && let Err(m) = code.check_level(level)
        {
            errors.push(rec.err("code", m));
        }
        if errors.len() == n
            && let (Some(code), Some(name), Some(level), Some(parent)) = (code, name, level, parent)
        {
            rows.push(Row { line: rec.line, code, name, level, parent, location });
        }
    }
    Ok((rows, errors))
}

/// Validates and applies a division file. `scope` limits which codes the caller may import
/// (None for the command line). Nothing is written unless every row is valid.
pub async fn import(
    db: &Db,
    actor: &Actor,
    now: Timestamp,
    scope: Option<&Scope>,
    text: &str,
) -> Result<ImportSummary, ApiError> {
    let owned = text.to_string();
    let (rows, mut errors) =
        crate::blocking::cpu(move || parse_rows(&owned)).await?.map_err(|e| ApiError::invalid_many(summary(&e), e))?;
    let existing: HashMap<String, Region> = store::all(db).await?.into_iter().map(|r| (r.code.clone(), r)).collect();
    let mut in_file: HashMap<&str, &Row> = HashMap::new();
    for row in &rows {
        if let Some(prev) = in_file.get(row.code.as_str()) {
            if prev.name != row.name || prev.level != row.level || prev.parent != row.parent {
                errors.push(FieldError::line(
                    row.line,
                    Some(("code", 1)),
                    format!(
                        "第 {} 行：区划代码 {} 与第 {} 行重复，但名称或上级不同（「{}」与「{}」）",
                        row.line, row.code, prev.line, row.name, prev.name
                    ),
                ));
            }
            continue;
        }
        in_file.insert(row.code.as_str(), row);
    }
    for row in &rows {
        if let Some(scope) = scope
            && !scope.contains(row.code.as_str())
        {
            errors.push(FieldError::line(
                row.line,
                Some(("code", 1)),
                format!("第 {} 行：区划 {} 不在您的辖区内", row.line, row.code),
            ));
        }
        if let Some(old) = existing.get(row.code.as_str())
            && old.level != row.level
        {
            errors.push(FieldError::line(
                row.line,
                Some(("level", 3)),
                format!(
                    "第 {} 行：区划 {} 已存在，级别为 {}，不能改为 {}",
                    row.line,
                    row.code,
                    old.level.as_str(),
                    row.level.as_str()
                ),
            ));
        }
        let Some(want) = row.level.parent_level() else { continue };
        let parent_level = in_file
            .get(row.parent.as_str())
            .map(|p| p.level)
            .or_else(|| existing.get(row.parent.as_str()).map(|p| p.level));
        match parent_level {
            None => errors.push(FieldError::line(
                row.line,
                Some(("parent_code", 4)),
                format!("第 {} 行：上级区划 {} 不存在（既不在文件中，也不在库中）", row.line, row.parent),
            )),
            Some(l) if l != want => errors.push(FieldError::line(
                row.line,
                Some(("parent_code", 4)),
                format!(
                    "第 {} 行：{}级区划的上级应为{}级，而 {} 是{}级",
                    row.line,
                    row.level.label(),
                    want.label(),
                    row.parent,
                    l.label()
                ),
            )),
            Some(l) => {
                if !row.code.is_under(&row.parent, l) {
                    errors.push(FieldError::line(
                        row.line,
                        Some(("code", 1)),
                        format!("第 {} 行：区划代码 {} 不在上级 {} 的代码段内", row.line, row.code, row.parent),
                    ));
                }
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ApiError::invalid_many(summary(&errors), errors));
    }

    let mut ordered: Vec<&Row> = in_file.values().copied().collect();
    ordered.sort_by(|a, b| (a.level, a.code.as_str()).cmp(&(b.level, b.code.as_str())));
    let mut s = ImportSummary { rows: rows.len(), created: 0, updated: 0, unchanged: 0 };
    let mut tx = db.begin().await?;
    for row in ordered {
        let (lon, lat) = match row.location {
            Some((lon, lat)) => (Some(lon), Some(lat)),
            None => (None, None),
        };
        match existing.get(row.code.as_str()) {
            None => {
                let r = Region {
                    code: row.code.to_string(),
                    name: row.name.clone(),
                    level: row.level,
                    parent_code: Some(row.parent.to_string()),
                    lon,
                    lat,
                    boundary: None,
                    created_at: now,
                    updated_at: now,
                };
                store::insert(&mut tx, &r).await?;
                audit_change(&mut tx, actor, now, &r, None).await?;
                s.created += 1;
            }
            Some(old) => {
                let mut new = old.clone();
                new.name = row.name.clone();
                new.parent_code = Some(row.parent.to_string());
                if row.location.is_some() {
                    (new.lon, new.lat) = (lon, lat);
                }
                if new.name == old.name
                    && new.parent_code == old.parent_code
                    && new.lon == old.lon
                    && new.lat == old.lat
                {
                    s.unchanged += 1;
                    continue;
                }
                new.updated_at = now;
                store::update(&mut tx, &new).await?;
                audit_change(&mut tx, actor, now, &new, Some(old)).await?;
                s.updated += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(s)
}

async fn audit_change(
    tx: &mut crate::db::Tx,
    actor: &Actor,
    now: Timestamp,
    r: &Region,
    before: Option<&Region>,
) -> Result<(), ApiError> {
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: "import",
            entity_type: "region",
            entity_id: &r.code,
            region_code: Some(&r.code),
            before: before.map(serde_json::to_value).transpose().map_err(anyhow::Error::from)?,
            after: Some(serde_json::to_value(r).map_err(anyhow::Error::from)?),
        },
    )
    .await?;
    Ok(())
}

fn summary(errors: &[FieldError]) -> String {
    let first = errors.first().map(|e| e.message.as_str()).unwrap_or("");
    format!("导入文件有 {} 处错误，未写入任何数据。首个错误：{first}", errors.len())
}
