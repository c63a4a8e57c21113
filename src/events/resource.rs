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
use super::nearby::{self, ALL_REGIONS, SupplyAsk};
use crate::db::Db;
use crate::forces::team_index::TeamIndex;
use crate::plans::ResponseLevel;
use crate::supplies::nearest::Allocation;
use crate::time::Timestamp;
use crate::vocab::Specialty;

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
/// committed is subtracted; engaged teams are skipped). The searches are batched
/// ([`super::nearby`]): one query for every item within the plan's distances, one for the
/// farther stock of the items still short, one per radius for the specialties still short.
pub async fn propose(
    db: &Db,
    index: &TeamIndex,
    ev: &Event,
    level: &ResponseLevel,
    existing: &[Line],
    now: Timestamp,
) -> Result<Vec<NewLine>, sqlx::Error> {
    let point = (ev.lon, ev.lat);
    let day = crate::supplies::today(now);
    let engaged = engaged_teams(existing);
    let all = needs(level);
    let mut per_need: Vec<Vec<NewLine>> = all.iter().map(|_| Vec::new()).collect();

    // Supplies: what each item still needs, and (drill mode) what exercise lines hold back.
    struct Item {
        need: usize,
        left: i64,
        held: HashMap<i64, i64>,
        extra: i64,
    }
    let mut items = Vec::new();
    for (k, n) in all.iter().enumerate().filter(|(_, n)| n.kind == "supply") {
        let left = n.required - committed(existing, n.kind, &n.code);
        if left <= 0 {
            continue;
        }
        // An exercise moves no stock, so what its lines "sent" is still on the shelves: it is
        // held back here, as the real dispatch would have taken it.
        let mut held: HashMap<i64, i64> = HashMap::new();
        if ev.exercise {
            for l in existing.iter().filter(|l| l.kind == "supply" && l.need == n.code && l.counts()) {
                *held.entry(l.depot_id.unwrap_or_default()).or_default() += l.quantity;
            }
        }
        let extra = held.values().sum();
        items.push(Item { need: k, left, held, extra });
    }
    let asks: Vec<SupplyAsk> = items
        .iter()
        .map(|i| SupplyAsk {
            item: all[i.need].code.clone(),
            quantity: i.left + i.extra,
            max_km: Some(all[i.need].within_km),
        })
        .collect();
    let widest = asks.iter().filter_map(|a| a.max_km).fold(0.0, f64::max);
    let near = nearby::supplies(db, point, &asks, ALL_REGIONS, day, widest).await?;
    // Farther physical stock (neighbouring regions) for the items that agreement stock does not
    // cover either: an open search, keeping only depots beyond the plan's distance.
    let short: Vec<usize> = (0..items.len())
        .filter(|&i| near[i].shortfall > near[i].agreement.iter().map(|a| a.take).sum::<i64>())
        .collect();
    let far_asks: Vec<SupplyAsk> = short
        .iter()
        .map(|&i| SupplyAsk {
            item: all[items[i].need].code.clone(),
            quantity: all[items[i].need].required + items[i].extra,
            max_km: None,
        })
        .collect();
    let far = nearby::supplies(db, point, &far_asks, ALL_REGIONS, day, widest * 2.0).await?;
    let mut far_of: HashMap<usize, Vec<Allocation>> = HashMap::new();
    for (&i, f) in short.iter().zip(far) {
        far_of.insert(i, f.allocations);
    }
    for (i, item) in items.iter().enumerate() {
        let n = &all[item.need];
        let mut left = item.left;
        let none = Vec::new();
        let candidates = near[i]
            .allocations
            .iter()
            .map(|a| ("nearest", a))
            .chain(near[i].agreement.iter().map(|a| ("agreement", a)))
            .chain(
                far_of.get(&i).unwrap_or(&none).iter().filter(|a| a.distance_km > n.within_km).map(|a| ("beyond", a)),
            );
        for (source, a) in candidates {
            if left <= 0 {
                break;
            }
            let available = a.available - item.held.get(&a.depot_id).copied().unwrap_or(0);
            if available <= 0 {
                continue;
            }
            let take = available.min(left);
            per_need[item.need].push(NewLine {
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
    }

    // Forces: each specialty's teams, widening by radius while people are short.
    let forces: Vec<(usize, Specialty)> = all
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind == "force")
        .filter_map(|(k, n)| Specialty::parse(&n.code).map(|s| (k, s)))
        .collect();
    let search: Vec<(Specialty, f64)> = forces.iter().map(|&(k, s)| (s, all[k].within_km)).collect();
    let mut left: Vec<i64> =
        forces.iter().map(|&(k, _)| all[k].required - committed(existing, "force", &all[k].code)).collect();
    let mut taken: Vec<Vec<String>> = forces.iter().map(|_| Vec::new()).collect();
    let wanting = left.iter().map(|l| *l > 0).collect();
    nearby::walk_teams(db, index, point, now, &search, wanting, |f, r, t| {
        let n = &all[forces[f].0];
        if engaged.contains(&t.team_code) || taken[f].contains(&t.team_code) {
            return true;
        }
        taken[f].push(t.team_code.clone());
        let take = t.qualified_members.min(left[f]);
        per_need[forces[f].0].push(NewLine {
            kind: "force",
            need: n.code.clone(),
            source: if r <= n.within_km { "nearest" } else { "beyond" },
            depot_id: None,
            team_code: Some(t.team_code.clone()),
            region_code: t.region_code.clone(),
            quantity: take,
            distance_km: t.distance_km,
        });
        left[f] -= take;
        left[f] > 0
    })
    .await?;
    Ok(per_need.into_iter().flatten().collect())
}

/// The board's view of a level: each requirement with what is committed, proposed, the gap,
/// and the next sources. A force gap left by a decline is looked up live: the nearest qualified
/// teams not yet engaged for the event.
pub async fn view(
    db: &Db,
    index: &TeamIndex,
    ev: &Event,
    level: &ResponseLevel,
    lines: &[Line],
    now: Timestamp,
) -> Result<Vec<NeedView>, sqlx::Error> {
    let engaged = engaged_teams(lines);
    let all = needs(level);
    let mut out = Vec::new();
    for n in &all {
        let mine = |l: &&Line| l.kind == n.kind && l.need == n.code;
        let committed = committed(lines, n.kind, &n.code);
        let proposed_lines: Vec<&Line> =
            lines.iter().filter(mine).filter(|l| l.status == super::LineStatus::Proposed).collect();
        let proposed: i64 = proposed_lines.iter().filter(|l| l.source == "nearest").map(|l| l.quantity).sum();
        let gap = (n.required - committed - proposed).max(0);
        let next_sources: Vec<NextSource> = proposed_lines
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
    let mut left: Vec<i64> = out.iter().map(|v| v.gap - v.next_sources.iter().map(|s| s.take).sum::<i64>()).collect();
    // A force gap (a decline, or nothing near enough) names the nearest qualified teams not yet
    // engaged or proposed, widening by radius: one batched walk for every specialty.
    let forces: Vec<(usize, Specialty)> = all
        .iter()
        .enumerate()
        .filter(|(k, n)| n.kind == "force" && left[*k] > 0)
        .filter_map(|(k, n)| Specialty::parse(&n.code).map(|s| (k, s)))
        .collect();
    let search: Vec<(Specialty, f64)> = forces.iter().map(|&(k, s)| (s, all[k].within_km)).collect();
    let mut seen: Vec<Vec<String>> = forces.iter().map(|_| Vec::new()).collect();
    let wanting = forces.iter().map(|_| true).collect();
    nearby::walk_teams(db, index, (ev.lon, ev.lat), now, &search, wanting, |f, _, t| {
        let k = forces[f].0;
        let proposed =
            lines.iter().any(|l| l.kind == "force" && l.code == t.team_code && l.status == super::LineStatus::Proposed);
        if engaged.contains(&t.team_code) || proposed || seen[f].contains(&t.team_code) {
            return true;
        }
        seen[f].push(t.team_code.clone());
        let take = t.qualified_members.min(left[k]);
        out[k].next_sources.push(NextSource {
            source: if t.distance_km <= all[k].within_km { "nearest" } else { "beyond" },
            line_id: None,
            name: t.name.clone(),
            code: t.team_code.clone(),
            region_code: t.region_code.clone(),
            distance_km: Some(t.distance_km),
            take,
        });
        left[k] -= take;
        left[k] > 0
    })
    .await?;
    for (v, left) in out.iter_mut().zip(left) {
        if left > 0 {
            v.next_sources.push(NextSource {
                source: if v.kind == "supply" { "requisition" } else { "request_support" },
                line_id: None,
                name: if v.kind == "supply" {
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
    }
    Ok(out)
}
