//! Importing an official division list (`code,name,level,parent_code[,lon,lat]`): all or
//! nothing, idempotent, every error with its line.

use std::collections::HashMap;

use super::{Level, Region, RegionCode, check_lon_lat, store};
use crate::audit::{self, Actor, Change};
use crate::auth::Scope;
use crate::csvio::{self, Column, Record};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::imports::{self, Errors, Import, Lined, Outcome, bulk};
use crate::time::Timestamp;

pub use crate::imports::ImportSummary;

/// Columns of a division file.
pub const COLUMNS: &[Column] = &[
    Column { name: "code", zh: "区划代码", aliases: &["代码"], required: true },
    Column { name: "name", zh: "名称", aliases: &["区划名称"], required: true },
    Column { name: "level", zh: "级别", aliases: &["层级"], required: true },
    Column { name: "parent_code", zh: "上级代码", aliases: &["上级区划代码"], required: true },
    Column::optional("lon", "经度"),
    Column::optional("lat", "纬度"),
];

/// A division row as parsed.
pub struct Row {
    code: RegionCode,
    name: String,
    level: Level,
    parent: RegionCode,
    location: Option<(f64, f64)>,
}

/// A division file, within `scope` (None for the command line and first-start seeding).
pub struct RegionImport {
    scope: Option<Scope>,
    actor: Actor,
    now: Timestamp,
}

impl RegionImport {
    /// An import by `actor` limited to `scope`.
    pub fn new(scope: Option<Scope>, actor: Actor, now: Timestamp) -> RegionImport {
        RegionImport { scope, actor, now }
    }
}

/// What a division import writes: (new state, stored state) per change, parents first.
pub struct Plan {
    rows: usize,
    unchanged: usize,
    changes: Vec<(Region, Option<Region>)>,
}

impl Import for RegionImport {
    type Row = Row;
    type Plan = Plan;
    const COLUMNS: &'static [Column] = COLUMNS;

    fn parse(rec: &Record<'_>, _now: Timestamp, errors: &mut Vec<FieldError>) -> Option<Row> {
        let code = rec
            .need("code", errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("code", m))).ok());
        let name = rec.need("name", errors).map(str::to_string);
        if let Some(name) = &name
            && name.chars().count() > 100
        {
            errors.push(rec.err("name", "名称超过 100 个字符"));
        }
        let level = rec.need("level", errors).and_then(|v| {
            Level::parse(v)
                .ok_or_else(|| {
                    errors.push(rec.err("level", format!("级别「{v}」无效，应为 banner、township 或 village")))
                })
                .ok()
        });
        let parent = rec
            .need("parent_code", errors)
            .and_then(|v| RegionCode::parse(v).map_err(|m| errors.push(rec.err("parent_code", m))).ok());
        let lon = csvio::opt_f64(rec, "lon", errors);
        let lat = csvio::opt_f64(rec, "lat", errors);
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
        Some(Row { code: code?, name: name?, level: level?, parent: parent?, location })
    }

    async fn check(&self, db: &Db, rows: Vec<Lined<Row>>, errors: &mut Errors) -> ApiResult<Plan> {
        let existing: HashMap<String, Region> =
            store::all(db).await?.into_iter().map(|r| (r.code.clone(), r)).collect();
        let mut in_file: HashMap<&str, &Lined<Row>> = HashMap::new();
        for lined in &rows {
            let row = &lined.row;
            if let Some(prev) = in_file.get(row.code.as_str()) {
                if prev.row.name != row.name || prev.row.level != row.level || prev.row.parent != row.parent {
                    errors.at(
                        lined.line,
                        "code",
                        format!(
                            "区划代码 {} 与第 {} 行重复，但名称或上级不同（「{}」与「{}」）",
                            row.code, prev.line, row.name, prev.row.name
                        ),
                    );
                }
                continue;
            }
            in_file.insert(row.code.as_str(), lined);
        }
        for Lined { line, row } in &rows {
            let line = *line;
            if let Some(scope) = &self.scope
                && !scope.contains(row.code.as_str())
            {
                errors.at(line, "code", format!("区划 {} 不在您的辖区内", row.code));
            }
            if let Some(old) = existing.get(row.code.as_str())
                && old.level != row.level
            {
                errors.at(
                    line,
                    "level",
                    format!("区划 {} 已存在，级别为 {}，不能改为 {}", row.code, old.level.as_str(), row.level.as_str()),
                );
            }
            let Some(want) = row.level.parent_level() else { continue };
            let parent_level = in_file
                .get(row.parent.as_str())
                .map(|p| p.row.level)
                .or_else(|| existing.get(row.parent.as_str()).map(|p| p.level));
            match parent_level {
                None => errors.at(
                    line,
                    "parent_code",
                    format!("上级区划 {} 不存在（既不在文件中，也不在库中）", row.parent),
                ),
                Some(l) if l != want => errors.at(
                    line,
                    "parent_code",
                    format!(
                        "{}级区划的上级应为{}级，而 {} 是{}级",
                        row.level.label(),
                        want.label(),
                        row.parent,
                        l.label()
                    ),
                ),
                Some(l) if !row.code.is_under(&row.parent, l) => {
                    errors.at(line, "code", format!("区划代码 {} 不在上级 {} 的代码段内", row.code, row.parent))
                }
                Some(_) => {}
            }
        }
        let mut plan = Plan { rows: rows.len(), unchanged: 0, changes: Vec::new() };
        if !errors.is_empty() {
            return Ok(plan);
        }
        let mut ordered: Vec<&Row> = in_file.values().map(|l| &l.row).collect();
        ordered.sort_by(|a, b| (a.level, a.code.as_str()).cmp(&(b.level, b.code.as_str())));
        for row in ordered {
            let (lon, lat) = match row.location {
                Some((lon, lat)) => (Some(lon), Some(lat)),
                None => (None, None),
            };
            match existing.get(row.code.as_str()) {
                None => plan.changes.push((
                    Region {
                        code: row.code.to_string(),
                        name: row.name.clone(),
                        level: row.level,
                        parent_code: Some(row.parent.to_string()),
                        lon,
                        lat,
                        boundary: None,
                        created_at: self.now,
                        updated_at: self.now,
                    },
                    None,
                )),
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
                        plan.unchanged += 1;
                        continue;
                    }
                    new.updated_at = self.now;
                    plan.changes.push((new, Some(old.clone())));
                }
            }
        }
        Ok(plan)
    }

    async fn write(&self, tx: &mut Tx, plan: Plan) -> ApiResult<ImportSummary> {
        let mut s = ImportSummary { rows: plan.rows, unchanged: plan.unchanged, ..Default::default() };
        let new: Vec<Region> = plan.changes.iter().filter(|(_, b)| b.is_none()).map(|(r, _)| r.clone()).collect();
        let old: Vec<Region> = plan.changes.iter().filter(|(_, b)| b.is_some()).map(|(r, _)| r.clone()).collect();
        // Sorted by level, so every chunk's parents are in it or in an earlier one.
        for chunk in new.chunks(bulk::chunk(9)) {
            store::insert_many(tx, chunk).await?;
        }
        for chunk in old.chunks(bulk::chunk(6)) {
            store::update_many(tx, chunk).await?;
        }
        (s.created, s.updated) = (new.len(), old.len());
        let json = |r: &Region| serde_json::to_value(r).map_err(|e| ApiError::Internal(e.into()));
        let mut changes = Vec::with_capacity(plan.changes.len());
        for (r, before) in &plan.changes {
            changes.push(Change {
                action: "import",
                entity_type: "region",
                entity_id: &r.code,
                region_code: Some(&r.code),
                before: before.as_ref().map(json).transpose()?,
                after: Some(json(r)?),
            });
        }
        audit::record_many(tx, &self.actor, self.now, changes).await?;
        Ok(s)
    }
}

/// Validates and applies a division file (the command line and first-start seeding). `scope`
/// limits which codes the caller may import (None for the command line). Nothing is written
/// unless every row is valid.
pub async fn import(
    db: &Db,
    actor: &Actor,
    now: Timestamp,
    scope: Option<&Scope>,
    text: &str,
) -> Result<ImportSummary, ApiError> {
    let imp = RegionImport::new(scope.cloned(), actor.clone(), now);
    match imports::run(&imp, db, imports::Upload::Memory(bytes::Bytes::copy_from_slice(text.as_bytes())), now, false)
        .await?
    {
        Outcome::Done(s) => Ok(s),
        Outcome::Preview(_) => Err(ApiError::Internal(anyhow::anyhow!("a division import ran as a dry run"))),
    }
}
