//! The catalogue import: supply items matched by code.

use super::*;

/// `POST /api/v1/import/catalogue`.
pub(in crate::supplies::csv) async fn import_catalogue(c: Ctx) -> ApiResult<Response> {
    let imp = CatalogueImport { actor: c.actor()?, now: c.now() };
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
