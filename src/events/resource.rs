//! The resource plan (资源方案) of a response level: for each supply and force requirement of
//! the level, the nearest allocation *from the event's point* (the existing nearest-supplies and
//! nearest-teams searches), what is already committed to the event, the gap, and for each gap
//! the next sources: agreement enterprises (协议储备), farther depots and teams (neighbouring
//! regions), and requisition (征用) as the last resort.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::Event;
use super::lines::{Line, NewLine};
use crate::db::Db;
use crate::forces::nearest::{Search, qualified_teams_near};
use crate::plans::ResponseLevel;
use crate::supplies::nearest::{self as supply_nearest, Want};
use crate::time::Timestamp;
use crate::vocab::Specialty;

/// Region-code bounds covering every region: the plan looks wherever the resources are.
pub const ALL_REGIONS: (&str, &str) = ("000000000000", "999999999999");
/// How far "beyond" looks for teams when those within the plan's distance fall short, km.
pub const BEYOND_KM: f64 = 500.0;

/// Radii a team search widens through: the plan's distance, then doubling up to [`BEYOND_KM`],
/// so that a shortfall looks only as far as it must (a 500 km circle holds a quarter of a
/// province's teams).
fn radii(within_km: f64) -> Vec<f64> {
    let mut out = vec![within_km];
    let mut r = within_km;
    while r < BEYOND_KM {
        r = (r * 2.0).min(BEYOND_KM);
        out.push(r);
    }
    out
}

/// One requirement of the level, as the board shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NeedView {
    /// `supply` or `force`.
    pub kind: &'static str,
    /// Item code or specialty code.
    pub need: String,
    /// Chinese name.
    pub label: String,
    /// Unit (床, 顶, 人 …).
    pub unit: String,
    /// Required by the level.
    pub required: i64,
    /// Within this distance of the event's point, km (the plan's figure).
    pub within_km: f64,
    /// Committed: dispatched, requested or accepted and not declined.
    pub committed: i64,
    /// Proposed from the nearest sources within the distance and not yet acted on.
    pub proposed: i64,
    /// `required - committed - proposed` (never negative): what nothing covers yet.
    pub gap: i64,
    /// Where the gap (and any decline) can be covered next, nearest first.
    pub next_sources: Vec<NextSource>,
}

/// A next source for a gap.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NextSource {
    /// `agreement` (协议储备企业), `nearest` (the next nearest team not yet engaged), `beyond`
    /// (farther depot or team, e.g. a neighbouring township), `requisition` (征用, supplies) or
    /// `request_support` (请求上级或相邻地区支援, forces).
    pub source: &'static str,
    /// Line proposing it, when one was stored.
    pub line_id: Option<i64>,
    /// Depot or team name (empty for requisition).
    pub name: String,
    /// Depot or team code.
    pub code: String,
    /// Region.
    pub region_code: String,
    /// Distance from the event's point, km.
    pub distance_km: Option<f64>,
    /// Units or people it could give toward the gap.
    pub take: i64,
}

/// What a level needs.
struct Need {
    kind: &'static str,
    code: String,
    label: String,
    unit: String,
    required: i64,
    within_km: f64,
}

fn needs(level: &ResponseLevel) -> Vec<Need> {
    let mut out = Vec::new();
    for s in &level.supplies {
        out.push(Need {
            kind: "supply",
            code: s.item_code.as_str().to_string(),
            label: if s.name.is_empty() { s.item_code.as_str().to_string() } else { s.name.clone() },
            unit: s.unit.clone(),
            required: s.quantity.ceil() as i64,
            within_km: s.within_km,
        });
    }
    for f in &level.forces {
        out.push(Need {
            kind: "force",
            code: f.specialty.code().to_string(),
            label: f.specialty.label().to_string(),
            unit: "人".into(),
            required: i64::from(f.headcount),
            within_km: f.within_km,
        });
    }
    out
}

fn committed(lines: &[Line], kind: &str, code: &str) -> i64 {
    lines.iter().filter(|l| l.kind == kind && l.need == code && l.counts()).map(|l| l.quantity).sum()
}

/// Teams already engaged for the event (requested, accepted, declined or on site): never
/// proposed again for the same event.
fn engaged_teams(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            l.kind == "force" && !matches!(l.status, super::LineStatus::Proposed | super::LineStatus::Superseded)
        })
        .map(|l| l.code.clone())
        .collect()
}

/// Computes the lines to propose for `level`, given the event's existing lines (what is
/// committed is subtracted; engaged teams are skipped).
pub async fn propose(
    db: &Db,
    ev: &Event,
    level: &ResponseLevel,
    existing: &[Line],
    now: Timestamp,
) -> Result<Vec<NewLine>, sqlx::Error> {
    let point = (ev.lon, ev.lat);
    let day = crate::supplies::today(now);
    let mut out = Vec::new();
    let engaged = engaged_teams(existing);
    for n in needs(level) {
        let mut left = n.required - committed(existing, n.kind, &n.code);
        if left <= 0 {
            continue;
        }
        if n.kind == "supply" {
            // An exercise moves no stock, so what its lines "sent" is still on the shelves: it
            // is held back here, as the real dispatch would have taken it.
            let mut held: HashMap<i64, i64> = HashMap::new();
            if ev.exercise {
                for l in existing.iter().filter(|l| l.kind == "supply" && l.need == n.code && l.counts()) {
                    *held.entry(l.depot_id.unwrap_or_default()).or_default() += l.quantity;
                }
            }
            let extra: i64 = held.values().sum();
            let want = Want { item: &n.code, quantity: left + extra, point, max_km: Some(n.within_km) };
            let near = supply_nearest::search(db, &want, ALL_REGIONS, day).await?;
            let far = if near.shortfall > near.agreement.iter().map(|a| a.take).sum::<i64>() {
                // Farther physical stock (neighbouring regions): an open search, keeping only
                // depots beyond the plan's distance.
                let want = Want { item: &n.code, quantity: n.required + extra, point, max_km: None };
                supply_nearest::search(db, &want, ALL_REGIONS, day).await?.allocations
            } else {
                Vec::new()
            };
            let candidates = near
                .allocations
                .iter()
                .map(|a| ("nearest", a))
                .chain(near.agreement.iter().map(|a| ("agreement", a)))
                .chain(far.iter().filter(|a| a.distance_km > n.within_km).map(|a| ("beyond", a)));
            for (source, a) in candidates {
                if left <= 0 {
                    break;
                }
                let available = a.available - held.get(&a.depot_id).copied().unwrap_or(0);
                if available <= 0 {
                    continue;
                }
                let take = available.min(left);
                out.push(NewLine {
                    kind: "supply",
                    need: n.code.clone(),
                    source,
                    depot_id: Some(a.depot_id),
                    team_code: None,
                    region_code: a.region_code.clone(),
                    quantity: take,
                    distance_km: a.distance_km,
                });
                left -= take;
            }
        } else {
            let Some(specialty) = Specialty::parse(&n.code) else { continue };
            let mut taken: Vec<String> = Vec::new();
            for max_km in radii(n.within_km) {
                if left <= 0 {
                    break;
                }
                let source = if max_km <= n.within_km { "nearest" } else { "beyond" };
                let s = Search { specialty, min_members: 1, point, max_km, at: now };
                for t in qualified_teams_near(db, ALL_REGIONS, &s).await?.teams {
                    if left <= 0 {
                        break;
                    }
                    if engaged.contains(&t.team_code) || taken.contains(&t.team_code) {
                        continue;
                    }
                    taken.push(t.team_code.clone());
                    let take = t.qualified_members.min(left);
                    out.push(NewLine {
                        kind: "force",
                        need: n.code.clone(),
                        source,
                        depot_id: None,
                        team_code: Some(t.team_code),
                        region_code: t.region_code,
                        quantity: take,
                        distance_km: t.distance_km,
                    });
                    left -= take;
                }
            }
        }
    }
    Ok(out)
}

/// The board's view of a level: each requirement with what is committed, proposed, the gap,
/// and the next sources. A force gap left by a decline is looked up live: the nearest qualified
/// teams not yet engaged for the event.
pub async fn view(
    db: &Db,
    ev: &Event,
    level: &ResponseLevel,
    lines: &[Line],
    now: Timestamp,
) -> Result<Vec<NeedView>, sqlx::Error> {
    let mut out = Vec::new();
    let engaged = engaged_teams(lines);
    for n in needs(level) {
        let mine = |l: &&Line| l.kind == n.kind && l.need == n.code;
        let committed = committed(lines, n.kind, &n.code);
        let proposed_lines: Vec<&Line> =
            lines.iter().filter(mine).filter(|l| l.status == super::LineStatus::Proposed).collect();
        let proposed: i64 = proposed_lines.iter().filter(|l| l.source == "nearest").map(|l| l.quantity).sum();
        let gap = (n.required - committed - proposed).max(0);
        let mut next_sources: Vec<NextSource> = proposed_lines
            .iter()
            .filter(|l| l.source != "nearest")
            .map(|l| NextSource {
                source: if l.source == "agreement" { "agreement" } else { "beyond" },
                line_id: Some(l.id),
                name: l.name.clone(),
                code: l.code.clone(),
                region_code: l.region_code.clone(),
                distance_km: Some(l.distance_km),
                take: l.quantity,
            })
            .collect();
        let mut left = gap - next_sources.iter().map(|s| s.take).sum::<i64>();
        if left > 0
            && n.kind == "force"
            && let Some(specialty) = Specialty::parse(&n.code)
        {
            let mut seen: Vec<String> = Vec::new();
            for max_km in radii(n.within_km) {
                if left <= 0 {
                    break;
                }
                let s = Search { specialty, min_members: 1, point: (ev.lon, ev.lat), max_km, at: now };
                for t in qualified_teams_near(db, ALL_REGIONS, &s).await?.teams {
                    if left <= 0 {
                        break;
                    }
                    let proposed = lines
                        .iter()
                        .any(|l| l.kind == "force" && l.code == t.team_code && l.status == super::LineStatus::Proposed);
                    if engaged.contains(&t.team_code) || proposed || seen.contains(&t.team_code) {
                        continue;
                    }
                    seen.push(t.team_code.clone());
                    let take = t.qualified_members.min(left);
                    next_sources.push(NextSource {
                        source: if t.distance_km <= n.within_km { "nearest" } else { "beyond" },
                        line_id: None,
                        name: t.name,
                        code: t.team_code,
                        region_code: t.region_code,
                        distance_km: Some(t.distance_km),
                        take,
                    });
                    left -= take;
                }
            }
        }
        if left > 0 {
            next_sources.push(NextSource {
                source: if n.kind == "supply" { "requisition" } else { "request_support" },
                line_id: None,
                name: if n.kind == "supply" {
                    "依法征用（应对法第十二条）".into()
                } else {
                    "请求上级或相邻地区支援".into()
                },
                code: String::new(),
                region_code: ev.region_code.clone(),
                distance_km: None,
                take: left,
            });
        }
        out.push(NeedView {
            kind: n.kind,
            need: n.code.clone(),
            label: n.label.clone(),
            unit: n.unit.clone(),
            required: n.required,
            within_km: n.within_km,
            committed,
            proposed,
            gap,
            next_sources,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_searches_widen_by_doubling_up_to_the_limit() {
        assert_eq!(radii(50.0), vec![50.0, 100.0, 200.0, 400.0, 500.0]);
        assert_eq!(radii(600.0), vec![600.0]);
    }
}
