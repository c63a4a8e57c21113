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

use chrono::NaiveDate;
use warp::http::Method;

use crate::auth::Perm;
use crate::csvio::{Column, Record};
use crate::error::FieldError;
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

mod export;
mod import;

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

pub use crate::imports::ImportSummary;

pub use crate::csvio::{ExportQuery, HeaderQuery};

pub(crate) fn date(rec: &Record, name: &'static str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
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
            Doc {
                description,
                query: Some(schema::<crate::imports::ImportQuery>()),
                response: Some(schema::<crate::imports::Outcome>()),
                ..Doc::new("应急物资", summary)
            },
            h,
        )
    };
    let export = |path, summary, query, h: fn(Ctx) -> crate::http::router::HandlerFuture| {
        route(
            Method::GET,
            path,
            Access::Token,
            BodyKind::None,
            Doc {
                description: "CSV（UTF-8 带 BOM，默认中文表头，?header=en 为英文表头），可原样重新导入。",
                query: Some(query),
                response_type: Some("text/csv"),
                ..Doc::new("应急物资", summary)
            },
            h,
        )
    };
    let mut routes = vec![
        import(
            "/api/v1/import/catalogue",
            "导入物资目录",
            "表头 code,name,unit,shelf_life_months（或 物资编码,名称,计量单位,保质期（月））。管理员或规划员；全有或全无；按编码新增或更新。",
            |c| Box::pin(import::import_catalogue(c)),
        )
        .guard(Perm::Plan, &[Region::Global]),
        import(
            "/api/v1/import/depots",
            "导入储备库",
            "表头 code,name,region_code,kind,lon,lat,address,manager,phone。限辖区内；全有或全无；按编码新增或更新；掩码电话保留原值。",
            |c| Box::pin(import::import_depots(c)),
        )
        .guard(Perm::Write, &[Region::Rows]),
        import(
            "/api/v1/import/stock",
            "导入库存",
            "表头 depot_code,item_code,quantity,batch,production_date,expiry_date,reserve_mode。每行记一笔 receive 入库；按（储备库、物资、批次）识别，已存在的批次跳过，故重复导入不产生变化。",
            |c| Box::pin(import::import_stock(c)),
        )
        .guard(Perm::Write, &[Region::Rows]),
        export("/api/v1/export/catalogue.csv", "导出物资目录", schema::<HeaderQuery>(), |c| Box::pin(export::export_catalogue(c)))
        .guard(Perm::Read, &[Region::Global]),
        export("/api/v1/export/depots.csv", "导出储备库", schema::<ExportQuery>(), |c| Box::pin(export::export_depots(c)))
        .guard(Perm::Read, &[Region::Query("region")]),
        export("/api/v1/export/stock.csv", "导出库存", schema::<HeaderQuery>(), |c| Box::pin(export::export_stock(c)))
        .guard(Perm::Read, &[Region::Query("region")]),
    ];
    let twins =
        [(3, "/api/v1/export/catalogue.xlsx"), (4, "/api/v1/export/depots.xlsx"), (5, "/api/v1/export/stock.xlsx")];
    for (i, path) in twins {
        let twin = crate::imports::xlsx::twin(&routes[i], path);
        routes.push(twin);
    }
    routes
}

/// The stock import, for tests (see `imports::staged::run_with_meanwhile`).
#[cfg(feature = "bench")]
pub use import::StockImport;
