//! The three CSV exports (see the parent module).

use chrono::NaiveDate;
use warp::reply::Response;

use super::{CATALOGUE, DEPOTS, ExportQuery, HeaderQuery, STOCK};
use crate::auth::Perm;
use crate::csvio::{self, Column};
use crate::error::ApiResult;
use crate::http::Ctx;
use crate::personal::mask_phone;
use crate::supplies::catalogue;
use crate::supplies::depots;
use crate::with_db;

/// Headers of an export without personal data.
fn chinese(c: &Ctx) -> ApiResult<bool> {
    c.query::<HeaderQuery>()?.chinese()
}

async fn write_csv(
    c: &Ctx,
    sheet: &'static str,
    columns: &'static [Column],
    zh: bool,
    rows: Vec<Vec<String>>,
) -> ApiResult<Response> {
    csvio::export(c.route, sheet, csvio::header_row(columns, zh), rows).await
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

pub(super) async fn export_catalogue(c: Ctx) -> ApiResult<Response> {
    let zh = chinese(&c)?;
    let rows = catalogue::all(&c.app.db)
        .await?
        .into_iter()
        .map(|i| vec![i.code, i.name, i.unit, opt(&i.shelf_life_months)])
        .collect();
    write_csv(&c, "物资目录", CATALOGUE, zh, rows).await
}

pub(super) async fn export_depots(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: ExportQuery = c.query()?;
    let (zh, reveal) = (q.chinese()?, q.reveal);
    if reveal {
        p.require(Perm::RevealPersonal)?;
    }
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
    write_csv(&c, "储备库", DEPOTS, zh, rows).await
}

pub(super) async fn export_stock(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
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
    write_csv(&c, "库存", STOCK, zh, rows).await
}
