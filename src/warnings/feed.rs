//! The Atom feed of active warnings (RFC 4287), each entry linking to its CAP message, for
//! subscribers such as neighbouring platforms and feed readers.

use std::fmt::Write;

use warp::reply::Response;

use super::routes::FeedParams;
use super::store::{self, WarningQuery};
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::body;
use crate::plans::document::esc;

pub(super) async fn feed(c: Ctx) -> ApiResult<Response> {
    let q: FeedParams = c.query()?;
    let principal = match &q.token {
        Some(t) => {
            let user = crate::drills::ics::authenticate(&c.app.db, t).await?.ok_or_else(|| {
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
    let (lo, hi) = principal.scope.bounds();
    let filter = WarningQuery { active: Some(true), ..Default::default() };
    let (items, _) = store::list(&c.app.db, (&lo, &hi), &filter, now, 1000, 0).await?;
    let updated = items.iter().map(|w| w.updated_at).max().unwrap_or(now);
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(x, "  <id>urn:yingji:warnings:{}</id>", esc(principal.scope.code.as_str()));
    x.push_str("  <title>生效中的预警</title>\n");
    let _ = writeln!(x, "  <updated>{}</updated>", super::cap::cap_time(updated.0));
    x.push_str("  <link rel=\"self\" href=\"/api/v1/warnings.atom\"/>\n  <author><name>yingji</name></author>\n");
    for w in &items {
        x.push_str("  <entry>\n");
        let _ = writeln!(x, "    <id>urn:cap:{}</id>", esc(&w.identifier));
        let _ = writeln!(x, "    <title>{}</title>", esc(&super::issue::title(w)));
        let _ = writeln!(x, "    <updated>{}</updated>", super::cap::cap_time(w.updated_at.0));
        let _ = writeln!(x, "    <published>{}</published>", super::cap::cap_time(w.sent_at.0));
        let _ =
            writeln!(x, "    <summary>{}</summary>", esc(&format!("{}（{}）{}", w.area_desc, w.issuer, w.description)));
        let _ = writeln!(
            x,
            "    <link rel=\"alternate\" type=\"application/cap+xml\" href=\"/api/v1/warnings/{}.xml\"/>",
            w.id
        );
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    Ok(body("application/atom+xml; charset=utf-8", x))
}
