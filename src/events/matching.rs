//! Plans that match an event: plans in force covering its hazard, nearest region first.

use schemars::JsonSchema;
use serde::Serialize;
use warp::reply::Response;

use super::Event;
use super::handlers::load;
use crate::auth::Perm;
use crate::error::ApiResult;
use crate::http::Ctx;
use crate::http::ctx::{Page, json};

/// A plan that matches the event.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MatchingPlan {
    /// Plan id.
    pub plan_id: i64,
    /// Version in force.
    pub version: i64,
    /// Title.
    pub title: String,
    /// Owner region.
    pub region_code: String,
    /// Kind.
    pub kind: crate::plans::PlanKind,
    /// Levels the plan defines (1 highest).
    pub levels: Vec<u8>,
}

/// Plans in force that cover the event's hazard in its region or a region above it, nearest
/// region first (village → township → banner); an overall plan (总体预案) covers every hazard and
/// comes after the hazard's own plans of the same region.
pub async fn matching_plans(db: &crate::db::Db, ev: &Event) -> ApiResult<Vec<MatchingPlan>> {
    let code = &ev.region_code;
    let mut regions = vec![code.clone(), format!("{:0<12}", &code[..9]), format!("{:0<12}", &code[..6])];
    regions.dedup();
    let mut out = Vec::new();
    for r in &regions {
        let mut here: Vec<(bool, MatchingPlan)> = crate::plans::store::current_plans(db, (r, r))
            .await?
            .into_iter()
            .filter(|p| p.content.0.hazards.contains(&ev.hazard) || p.kind == crate::plans::PlanKind::Overall)
            .map(|p| {
                let own = p.content.0.hazards.contains(&ev.hazard);
                let c = &p.content.0;
                (
                    own,
                    MatchingPlan {
                        plan_id: p.plan_id,
                        version: p.version,
                        title: c.title.clone(),
                        region_code: p.region_code.clone(),
                        kind: p.kind,
                        levels: c.response_levels.iter().map(|l| l.level).collect(),
                    },
                )
            })
            .collect();
        here.sort_by_key(|(own, p)| (!*own, p.plan_id));
        out.extend(here.into_iter().map(|(_, p)| p));
    }
    Ok(out)
}

pub(super) async fn plans(c: Ctx) -> ApiResult<Response> {
    let ev = load(&c, Perm::Read).await?;
    let items = matching_plans(&c.app.db, &ev).await?;
    let total = items.len() as i64;
    json(&Page { items, total })
}
