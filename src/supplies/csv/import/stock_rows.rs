//! The stock import (staged): receipts into new batches through the ledger's set-based receive.

use super::*;

mod pg;

/// `POST /api/v1/import/stock`.
pub(in crate::supplies::csv) async fn import_stock(c: Ctx) -> ApiResult<Response> {
    let imp = StockImport { scope: c.caller()?.scope.clone(), actor: c.actor()?, now: c.now() };
    imports::staged::respond(&c, &imp).await
}

/// Stock: one received batch per row, within the caller's jurisdiction. A staged import
/// ([`imports::staged`]): rows are checked and staged as they are read, then received with
/// set-based statements ([`ledger::receive_staged`]) and audited the same way.
pub struct StockImport {
    scope: Scope,
    actor: Actor,
    now: Timestamp,
}

#[cfg(feature = "bench")]
impl StockImport {
    /// A stock import outside a request (tests: see [`imports::staged::run_with_meanwhile`]).
    pub fn for_tests(scope: Scope, actor: Actor, now: Timestamp) -> StockImport {
        StockImport { scope, actor, now }
    }
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

impl StockLine {
    /// Parses a stock row.
    fn parse(rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<StockLine> {
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

/// What a stock row is checked against: the depots of the caller's jurisdiction (code → id and
/// region) and the catalogue.
pub struct StockLookup {
    depots: HashMap<String, (i64, Short)>,
    items: HashMap<String, Item>,
}

/// A checked stock row, as staged (see [`ledger::STAGED_RECEIPTS`]). A row whose depot or item
/// is unknown is staged too (depot None), for the duplicate check; such a file is never written.
pub struct StagedStock {
    line: u64,
    depot: Short,
    depot_id: Option<i64>,
    /// The depot's region (empty when the depot is unknown).
    region: Short,
    item: Short,
    batch: Short,
    quantity: i64,
    production_date: Option<NaiveDate>,
    expiry_date: Option<NaiveDate>,
    reserve_mode: ReserveMode,
}

impl Staged for StockImport {
    type Lookup = StockLookup;
    type Row = StagedStock;
    const COLUMNS: &'static [Column] = STOCK;

    async fn lookup(&self, db: &Db) -> ApiResult<StockLookup> {
        let (lo, hi) = self.scope.bounds();
        let depots = depots::all_in(db, (&lo, &hi))
            .await?
            .into_iter()
            .map(|d| (d.code, (d.id, Short::from(d.region_code.as_str()))))
            .collect();
        let items = catalogue::all(db).await?.into_iter().map(|i| (i.code.clone(), i)).collect();
        Ok(StockLookup { depots, items })
    }

    fn check(lookup: &StockLookup, rec: &Record<'_>, errors: &mut Vec<FieldError>) -> Option<StagedStock> {
        let l = StockLine::parse(rec, errors)?;
        if !errors.is_empty() {
            return None;
        }
        let depot = lookup.depots.get(l.depot.as_str());
        let depot_id = depot.map(|d| d.0);
        if depot_id.is_none() {
            errors.push(rec.err("depot_code", format!("储备库 {} 不存在或不在您的管辖范围内", l.depot)));
        }
        let item = lookup.items.get(l.item.as_str());
        if item.is_none() {
            errors.push(rec.err("item_code", format!("物资编码 {} 不在物资目录中", l.item)));
        }
        let mut expiry_date = l.expiry_date;
        if let (Some(_), Some(item)) = (depot_id, item) {
            match l.new_batch(item) {
                Ok((_, attrs)) => expiry_date = attrs.expiry_date,
                Err(e) => errors.push(rec.err(e.field, e.message)),
            }
        }
        Some(StagedStock {
            line: rec.line,
            depot: l.depot,
            depot_id,
            region: depot.map_or_else(|| Short::from(""), |d| d.1.clone()),
            item: l.item,
            batch: l.batch,
            quantity: l.quantity,
            production_date: l.production_date,
            expiry_date,
            reserve_mode: l.reserve_mode,
        })
    }

    async fn create(conn: &mut Held) -> Result<(), sqlx::Error> {
        let (int, date) = match conn.backend() {
            Backend::Sqlite => ("INTEGER", "TEXT"),
            Backend::Postgres => ("BIGINT", "DATE"),
        };
        let sql = format!(
            "CREATE TEMP TABLE {} (line {int} PRIMARY KEY, depot_code TEXT NOT NULL, depot_id {int}, region_code TEXT NOT NULL, item_code TEXT NOT NULL, batch TEXT NOT NULL, quantity {int} NOT NULL, production_date {date}, expiry_date {date}, reserve_mode TEXT NOT NULL, existing {int} NOT NULL DEFAULT 0)",
            ledger::STAGED_RECEIPTS
        );
        with_held!(conn, |c| sqlx::query(&sql).execute(c).await.map(|_| ()))
    }

    async fn stage(conn: &mut Held, rows: &[StagedStock]) -> Result<(), sqlx::Error> {
        if let Held::Postgres(c) = conn {
            return pg::stage(c, rows).await;
        }
        with_held!(conn, |c| {
            let mut q = sqlx::QueryBuilder::new(format!(
                "INSERT INTO {} (line, depot_code, depot_id, region_code, item_code, batch, quantity, production_date, expiry_date, reserve_mode) ",
                ledger::STAGED_RECEIPTS
            ));
            q.push_values(rows, |mut b, r| {
                b.push_bind(r.line as i64)
                    .push_bind(r.depot.as_str())
                    .push_bind(r.depot_id)
                    .push_bind(r.region.as_str())
                    .push_bind(r.item.as_str())
                    .push_bind(r.batch.as_str())
                    .push_bind(r.quantity)
                    .push_bind(r.production_date)
                    .push_bind(r.expiry_date)
                    .push_bind(r.reserve_mode.as_str());
            });
            q.build().execute(c).await.map(|_| ())
        })
    }

    async fn check_staged(&self, conn: &mut Held, errors: &mut Errors) -> ApiResult<()> {
        use futures_util::TryStreamExt;
        // Duplicates within the file: each later line names the first line with its identity.
        let sql = format!(
            "SELECT line, depot_code, item_code, batch, first FROM (
               SELECT line, depot_code, item_code, batch, MIN(line) OVER (PARTITION BY depot_code, item_code, batch) AS first
               FROM {}) AS d
             WHERE line > first ORDER BY line",
            ledger::STAGED_RECEIPTS
        );
        with_held!(conn, |c| {
            let mut dups = sqlx::query_as::<_, (i64, String, String, String, i64)>(&sql).fetch(c);
            while let Some((line, depot, item, batch, first)) = dups.try_next().await? {
                errors.row(line as u64, format!("储备库 {depot}、物资 {item}、批次 {batch} 与第 {first} 行重复"));
            }
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    async fn write(&self, tx: &mut Tx, rows: usize) -> ApiResult<ImportSummary> {
        let details = Details { reference: Some("CSV 导入".into()), ..Details::default() };
        let (created, unchanged) = ledger::receive_staged(tx, &details, self.now, &self.actor).await?;
        Ok(ImportSummary { rows, created: created as usize, updated: 0, unchanged: unchanged as usize })
    }
}
