//! The route table of transfers (调拨): requesting, approving, shipping, receiving, returning
//! and cancelling, each guarded by the depot end it acts on. Handlers live in [`super::transfers`].

use warp::http::Method;

use super::transfers::{self as t, Giveback, NewTransfer, Receipt, Step, Transfer, TransferQuery};
use crate::auth::Perm;
use crate::http::Ctx;
use crate::http::access::{self, Region};
use crate::http::ctx::Page;
use crate::http::router::{Access, BodyKind, Doc, Route, route, schema};

/// Routes of transfers.
pub fn routes() -> Vec<Route> {
    let step = |path: &'static str,
                summary: &'static str,
                description: &'static str,
                request: crate::http::router::SchemaFn,
                h: fn(Ctx) -> crate::http::router::HandlerFuture| {
        route(
            Method::POST,
            path,
            Access::Token,
            BodyKind::Json,
            Doc {
                description,
                request: Some(request),
                response: Some(schema::<Transfer>()),
                ..Doc::new("应急物资", summary)
            },
            h,
        )
    };
    vec![
        route(
            Method::POST,
            "/api/v1/transfers",
            Access::Token,
            BodyKind::Json,
            Doc {
                description: "申请调拨：从一个储备库调往另一个。需要修改权限；调出库须在辖区内。",
                request: Some(schema::<NewTransfer>()),
                response: Some(schema::<Transfer>()),
                status: 201,
                ..Doc::new("应急物资", "申请调拨")
            },
            |c| Box::pin(t::create(c)),
        )
        .guard(Perm::Write, &[Region::Global]),
        route(
            Method::GET,
            "/api/v1/transfers",
            Access::Token,
            BodyKind::None,
            Doc {
                description: "调出或调入库在辖区内的调拨单，新者在前。",
                query: Some(schema::<TransferQuery>()),
                response: Some(schema::<Page<Transfer>>()),
                ..Doc::new("应急物资", "列出调拨单")
            },
            |c| Box::pin(t::list(c)),
        )
        .guard(Perm::Read, &[Region::Query("region")]),
        route(
            Method::GET,
            "/api/v1/transfers/{id}",
            Access::Token,
            BodyKind::None,
            Doc { response: Some(schema::<Transfer>()), ..Doc::new("应急物资", "查看调拨单") },
            |c| Box::pin(t::show(c)),
        )
        .guard(Perm::Read, &[Region::Path("id", &access::TRANSFER)]),
        step(
            "/api/v1/transfers/{id}/approve",
            "批准调拨",
            "批准（管理员或规划员，调出库须在辖区内）。请求体可为 {}。",
            schema::<Step>(),
            |c| Box::pin(t::approve(c)),
        )
        .guard(Perm::Decide, &[Region::Path("id", &access::TRANSFER_SOURCE)]),
        step(
            "/api/v1/transfers/{id}/ship",
            "调拨发运",
            "发运：从调出库记 transfer_out 出库（先到期先出）。库存不足返回 409。支持 Idempotency-Key。",
            schema::<Step>(),
            |c| Box::pin(t::ship(c)),
        )
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER_SOURCE)]),
        step(
            "/api/v1/transfers/{id}/receive",
            "调拨接收",
            "接收：调入库记 transfer_in 入库，无须填写批次号：入库批次沿用发运批次的批次号、日期、储备方式、合同、所有人和资金来源（本库已有同名但属性不同的批次时，命名为「批次-T调拨单号」）；实收数量可少于发运数量，差额记录在调拨单上。支持 Idempotency-Key。",
            schema::<Receipt>(),
            |c| Box::pin(t::receive(c)),
        )
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER_DEST)]),
        step("/api/v1/transfers/{id}/cancel", "取消调拨", "发运前可取消。", schema::<Step>(), |c| {
            Box::pin(t::cancel(c))
        })
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER)]),
        step(
            "/api/v1/transfers/{id}/return",
            "调拨退回",
            "已发运未接收的调拨退回调出库：按发运批次记 return 入库（批次属性不变，重名且属性不同时为「批次-R调拨单号」）；实收数量可少于发运数量，差额记录在调拨单上。支持 Idempotency-Key。",
            schema::<Giveback>(),
            |c| Box::pin(t::give_back(c)),
        )
        .guard(Perm::Write, &[Region::Path("id", &access::TRANSFER_SOURCE)]),
    ]
}
