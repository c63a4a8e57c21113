//! Handlers for the iCalendar feed and its feed tokens.

use chrono::Duration;
use warp::http::StatusCode;
use warp::reply::Response;

use super::handlers::bounds_for;
use super::routes::FeedQuery;
use super::{ics, store};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::{body, json, json_status, no_content};
use crate::time::Timestamp;

pub(super) async fn feed(c: Ctx) -> ApiResult<Response> {
    let q: FeedQuery = c.query()?;
    let principal = match &q.token {
        Some(t) => {
            let user = ics::authenticate(&c.app.db, t).await?.ok_or_else(|| {
                c.app.metrics.auth_failure("feed");
                ApiError::Unauthorized("订阅令牌无效或已吊销".into())
            })?;
            crate::auth::tokens::principal_for_user(&c.app.db, user)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("订阅令牌无效".into()))?
        }
        None => crate::http::authenticate_headers(&c.app, &c.headers, &c.request_id).await?,
    };
    let now = c.now();
    let bounds = bounds_for(&principal, q.region.as_ref())?;
    let f = store::Filter {
        bounds,
        from: Some(q.from.unwrap_or(Timestamp(now.0 - Duration::days(90)))),
        to: Some(q.to.unwrap_or(Timestamp(now.0 + Duration::days(366)))),
        status: None,
        plan_id: None,
    };
    let (drills, _) = store::list(&c.app.db, &f, 5000, 0).await?;
    let text = crate::blocking::cpu(move || ics::render(&drills, now)).await?;
    Ok(body("text/calendar; charset=utf-8", text))
}

pub(super) async fn list_feed_tokens(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let items = ics::list(&c.app.db, p.user_id).await?;
    json(&crate::http::Page { total: items.len() as i64, items })
}

pub(super) async fn issue_feed_token(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let issued = ics::issue(&c.app.db, p.user_id, c.now()).await?;
    json_status(StatusCode::CREATED, &issued)
}

pub(super) async fn revoke_feed_token(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let id = c.id_param("id")?;
    if ics::revoke(&c.app.db, p.user_id, id, c.now()).await? {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound(format!("订阅令牌 {id} 不存在")))
    }
}
