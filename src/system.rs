//! Operational endpoints: health, readiness, metrics, and the API description.

use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::access::Region;
use crate::http::ctx::{body, json};
use crate::http::router::{Access, BodyKind, Doc, Route, route};

/// Routes of this module.
pub fn routes() -> Vec<Route> {
    vec![
        route(
            Method::GET,
            "/healthz",
            Access::Public,
            BodyKind::None,
            Doc {
                response_type: Some("text/plain"),
                description: "进程存活即返回 200 ok。",
                ..Doc::new("运维", "存活检查")
            },
            |_| Box::pin(async { Ok(body("text/plain; charset=utf-8", "ok\n")) }),
        ),
        route(
            Method::GET,
            "/readyz",
            Access::Public,
            BodyKind::None,
            Doc {
                response_type: Some("text/plain"),
                description: "数据库可达时返回 200，否则 503。",
                ..Doc::new("运维", "就绪检查")
            },
            |c| Box::pin(readyz(c)),
        ),
        route(
            Method::GET,
            "/metrics",
            Access::Scrape,
            BodyKind::None,
            Doc {
                response_type: Some("text/plain; version=0.0.4"),
                description: "Prometheus 文本格式：按路由和状态计的请求数、延迟直方图、认证失败数、数据库连接池状态。需要 Authorization: Bearer <监控抓取令牌（YINGJI_METRICS_TOKEN）或旗级管理员的 API 令牌>。",
                ..Doc::new("运维", "监控指标")
            },
            |c| {
                Box::pin(async move {
                    Ok(body("text/plain; version=0.0.4; charset=utf-8", c.app.metrics.render(c.app.db.pool_state())))
                })
            },
        )
        .guard(Perm::ReadAudit, &[Region::Banner]),
        route(
            Method::GET,
            "/api/v1/openapi.json",
            Access::Public,
            BodyKind::None,
            Doc { response_type: Some("application/json"), ..Doc::new("运维", "OpenAPI 3.1 接口描述") },
            |c| Box::pin(async move { json(&crate::openapi::document(&c.app.router)) }),
        ),
        route(
            Method::GET,
            "/api/docs",
            Access::Public,
            BodyKind::None,
            Doc { response_type: Some("text/html"), ..Doc::new("运维", "接口说明页（HTML）") },
            |c| Box::pin(async move { Ok(body("text/html; charset=utf-8", crate::openapi::html(&c.app.router))) }),
        ),
    ]
}

async fn readyz(c: Ctx) -> ApiResult<Response> {
    match c.app.db.ping().await {
        Ok(()) => Ok(body("text/plain; charset=utf-8", "ready\n")),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let mut r = body("text/plain; charset=utf-8", "database unreachable\n");
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok(r)
        }
    }
    .map_err(|e: ApiError| e)
}
