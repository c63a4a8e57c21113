//! An in-process index for nearest supplies: every depot's place and, per item and reserve mode,
//! its stock grouped by expiry date, so that "where are the nearest 500 quilts?" is answered from
//! memory with exactly the answer of [`super::nearest::search`] (the SQL path).
//!
//! The database stays the truth and the index is never stale: triggers log every write to
//! `depots` and `stock_batches` under the topic `supplies` with the depot's id as key, in the
//! writing transaction (migration 0022), and the change feed ([`crate::change_feed`]) reloads just
//! the changed depots before an answer, so stock moving during an event costs one depot's reload,
//! not a rebuild. Reloaded depots are kept in a small overlay beside the full build (the base,
//! shared between versions); when the overlay grows past [`OVERLAY_REBUILD`] depots a full rebuild
//! starts in the background.
//!
//! Availability is what the SQL path counts: batches with a positive quantity in physical or
//! agreement mode, unexpired on the day asked (expiry date absent or not before it). Stock is kept
//! per expiry date, so an answer on a later day is exact without any reload.
//!
//! Search: the same radii as the SQL path (25 km doubling up to `max_km`), the same bounding box,
//! region range and great-circle distance, so the same depots, order, allocation and searched
//! radius. Depots of an item are kept sorted by region code (a jurisdiction is one slice of them)
//! and by latitude (for a wide jurisdiction: the box's band of latitudes).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use super::nearest::{Nearest, Place, Want, answer, radii, search};
use crate::change_feed::{Feed, Indexed, Snapshot, Source, Topic};
use crate::db::{Db, Tx};
use crate::freshness::Generations;
use crate::geodesy::{bounding_box, distance_km};
use crate::with_tx;

/// Reloaded depots kept beside the base before a full rebuild is asked for.
pub const OVERLAY_REBUILD: usize = 512;

/// A jurisdiction slice of at most this many depots of an item is scanned whole; a larger one is
/// searched by the box's band of latitudes.
const SLICE_SCAN: usize = 2048;

/// The nearest-supplies index of one instance (in `AppState`); cheap to clone.
#[derive(Debug, Clone)]
pub struct SupplyIndex {
    feed: Feed<DepotStock>,
}

impl SupplyIndex {
    /// An index (`enabled`), or one that always answers from the database.
    pub fn new(enabled: bool) -> SupplyIndex {
        SupplyIndex { feed: Feed::new(enabled) }
    }

    /// [`search`], from the index when it can be brought to the committed state cheaply (the
    /// depots changed since it was built re-read), and where the answer came from. `fresh`: the
    /// request's freshness check, when it made one (see [`Feed::fresh`]).
    pub async fn near(
        &self,
        db: &Db,
        fresh: Option<Generations>,
        w: &Want<'_>,
        bounds: (&str, &str),
        day: NaiveDate,
    ) -> Result<(Nearest, Source), sqlx::Error> {
        if let Some(stock) = self.feed.fresh(db, fresh.map(|g| g.of(Topic::Supplies))).await? {
            return Ok((stock.search(w, bounds, day), Source::Index));
        }
        Ok((search(db, w, bounds, day).await?, Source::Database))
    }

    /// Builds the index now and waits for it (benchmarks and tests; the service builds it in the
    /// background on first use).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        self.feed.rebuild(db).await
    }
}

impl Indexed for DepotStock {
    const TOPIC: Topic = Topic::Supplies;
    const WHAT: &'static str = "nearest supplies";

    async fn build(snap: &mut Snapshot) -> Result<DepotStock, sqlx::Error> {
        DepotStock::load(snap.tx()).await
    }

    async fn reload(&self, snap: &mut Snapshot, keys: &[i64]) -> Result<DepotStock, sqlx::Error> {
        self.reloaded(snap.tx(), keys).await
    }

    fn wants_rebuild(&self) -> bool {
        self.overlay.len() > OVERLAY_REBUILD
    }
}

/// Units of one item in one reserve mode at a depot, per expiry date (`None`: never expires).
#[derive(Debug, Default, Clone)]
struct Lots(Vec<(Option<NaiveDate>, i64)>);

impl Lots {
    /// Units not expired on `day`.
    fn on(&self, day: NaiveDate) -> i64 {
        self.0.iter().filter(|(e, _)| e.is_none_or(|e| e >= day)).map(|(_, q)| q).sum()
    }
}

/// One item's stock at a depot.
#[derive(Debug, Default, Clone)]
struct Holding {
    physical: Lots,
    agreement: Lots,
}

/// One depot with its stock.
#[derive(Debug)]
struct Depot {
    id: i64,
    code: String,
    name: String,
    region_code: String,
    lon: f64,
    lat: f64,
    /// Item code → stock (items with some physical or agreement stock only).
    stock: HashMap<String, Holding>,
}

impl Depot {
    fn place(&self) -> Place<'_> {
        Place { id: self.id, code: &self.code, name: &self.name, region_code: &self.region_code }
    }
}

/// The depots holding one item.
#[derive(Debug, Default)]
struct ItemDepots {
    /// Slots sorted by region code (then slot).
    by_region: Vec<u32>,
    /// Slots sorted by latitude.
    by_lat: Vec<u32>,
}

/// A full build.
#[derive(Debug, Default)]
struct Base {
    depots: Vec<Depot>,
    slot: HashMap<i64, u32>,
    items: HashMap<String, ItemDepots>,
}

/// The depots and their stock at one committed state (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct DepotStock {
    base: Arc<Base>,
    /// One bit per base slot: the depot was reloaded (its overlay entry, if any, replaces it).
    replaced: Vec<u64>,
    /// Reloaded depots by id (`None`: deleted).
    overlay: HashMap<i64, Option<Arc<Depot>>>,
}

/// Rows the index is built from.
type DepotRow = (i64, String, String, String, f64, f64);
type StockRow = (i64, String, String, Option<NaiveDate>, i64);

const DEPOTS: &str = "SELECT id, code, name, region_code, lon, lat FROM depots";
const STOCK: &str = "SELECT depot_id, item_code, reserve_mode, expiry_date, CAST(SUM(quantity) AS BIGINT)
    FROM stock_batches WHERE quantity > 0 AND reserve_mode IN ('physical', 'agreement')
    GROUP BY depot_id, item_code, reserve_mode, expiry_date";

/// `depots` for the given ids: `DEPOTS` / `STOCK` restricted with `IN ($1, …)`.
fn restricted(sql: &str, column: &str, n: usize) -> String {
    let list = (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    match sql.find(" GROUP BY") {
        Some(at) => format!("{} AND {column} IN ({list}){}", &sql[..at], &sql[at..]),
        None => format!("{sql} WHERE {column} IN ({list})"),
    }
}

/// Reads depots and their stock through `tx` (all, or the ids given).
async fn read(tx: &mut Tx, ids: Option<&[i64]>) -> Result<Vec<Depot>, sqlx::Error> {
    let (depots, stock): (Vec<DepotRow>, Vec<StockRow>) = match ids {
        None => with_tx!(tx, |c| {
            let d = sqlx::query_as(DEPOTS).fetch_all(&mut *c).await?;
            let s = sqlx::query_as(STOCK).fetch_all(&mut *c).await?;
            (d, s)
        }),
        Some(ids) => {
            let (dsql, ssql) = (restricted(DEPOTS, "id", ids.len()), restricted(STOCK, "depot_id", ids.len()));
            with_tx!(tx, |c| {
                let mut dq = sqlx::query_as(&dsql);
                let mut sq = sqlx::query_as(&ssql);
                for id in ids {
                    dq = dq.bind(*id);
                    sq = sq.bind(*id);
                }
                let d = dq.fetch_all(&mut *c).await?;
                let s = sq.fetch_all(&mut *c).await?;
                (d, s)
            })
        }
    };
    let mut out: Vec<Depot> = Vec::with_capacity(depots.len());
    let mut at: HashMap<i64, usize> = HashMap::with_capacity(depots.len());
    for (id, code, name, region_code, lon, lat) in depots {
        at.insert(id, out.len());
        out.push(Depot { id, code, name, region_code, lon, lat, stock: HashMap::new() });
    }
    for (depot, item, mode, expiry, qty) in stock {
        let Some(&i) = at.get(&depot) else { continue };
        let h = out[i].stock.entry(item).or_default();
        let lots = if mode == "physical" { &mut h.physical } else { &mut h.agreement };
        lots.0.push((expiry, qty));
    }
    Ok(out)
}

impl DepotStock {
    /// The whole index, read through `tx` (one snapshot).
    pub async fn load(tx: &mut Tx) -> Result<DepotStock, sqlx::Error> {
        Ok(DepotStock::from_depots(read(tx, None).await?))
    }

    /// A copy with the depots `ids` re-read through `tx` (a deleted depot disappears); the base is
    /// shared, not copied.
    pub async fn reloaded(&self, tx: &mut Tx, ids: &[i64]) -> Result<DepotStock, sqlx::Error> {
        let fresh = read(tx, Some(ids)).await?;
        Ok(self.with(ids, fresh))
    }

    fn from_depots(depots: Vec<Depot>) -> DepotStock {
        let mut base = Base { depots, ..Base::default() };
        for (i, d) in base.depots.iter().enumerate() {
            base.slot.insert(d.id, i as u32);
            for item in d.stock.keys() {
                base.items.entry(item.clone()).or_default().by_region.push(i as u32);
            }
        }
        let depots = &base.depots;
        for list in base.items.values_mut() {
            list.by_region.sort_by(|a, b| depots[*a as usize].region_code.cmp(&depots[*b as usize].region_code));
            list.by_lat = list.by_region.clone();
            list.by_lat.sort_by(|a, b| depots[*a as usize].lat.total_cmp(&depots[*b as usize].lat));
        }
        let replaced = vec![0; base.depots.len().div_ceil(64)];
        DepotStock { base: Arc::new(base), replaced, overlay: HashMap::new() }
    }

    fn with(&self, ids: &[i64], fresh: Vec<Depot>) -> DepotStock {
        let mut next = self.clone();
        for id in ids {
            if let Some(&s) = next.base.slot.get(id) {
                next.replaced[s as usize / 64] |= 1 << (s % 64);
            }
            next.overlay.insert(*id, None);
        }
        for d in fresh {
            next.overlay.insert(d.id, Some(Arc::new(d)));
        }
        next
    }

    fn is_replaced(&self, slot: u32) -> bool {
        self.replaced[slot as usize / 64] & (1 << (slot % 64)) != 0
    }

    /// [`super::nearest::search`] on the indexed state: the same answer.
    pub fn search(&self, w: &Want<'_>, bounds: (&str, &str), day: NaiveDate) -> Nearest {
        let mut last = (0.0, Vec::new());
        for radius in radii(w.max_km) {
            let found = self.within(w, radius, bounds, day);
            let enough = found.iter().map(|f| f.1).sum::<i64>() >= w.quantity;
            last = (radius, found);
            if enough {
                break;
            }
        }
        let (radius, found) = last;
        let mut physical = Vec::new();
        let mut agreement = Vec::new();
        for (d, phys, agr, depot) in found {
            if phys > 0 {
                physical.push((d, phys, depot.place()));
            }
            if agr > 0 {
                agreement.push((d, agr, depot.place()));
            }
        }
        answer(w, radius, physical, agreement)
    }

    /// Depots in `bounds` within `radius` of the point holding the item on `day`: (distance,
    /// physical units, agreement units, depot).
    fn within<'a>(
        &'a self,
        w: &Want<'_>,
        radius: f64,
        bounds: (&str, &str),
        day: NaiveDate,
    ) -> Vec<(f64, i64, i64, &'a Depot)> {
        let here = w.point;
        let bb = bounding_box(here.0, here.1, radius);
        let mut out = Vec::new();
        let mut take = |d: &'a Depot| {
            if !bb.contains(d.lon, d.lat) || d.region_code.as_str() < bounds.0 || d.region_code.as_str() > bounds.1 {
                return;
            }
            let Some(h) = d.stock.get(w.item) else { return };
            let (phys, agr) = (h.physical.on(day), h.agreement.on(day));
            if phys == 0 && agr == 0 {
                return;
            }
            let dist = distance_km(here, (d.lon, d.lat));
            if dist <= radius {
                out.push((dist, phys, agr, d));
            }
        };
        let base = &self.base;
        if let Some(list) = base.items.get(w.item) {
            let region = |s: &u32| base.depots[*s as usize].region_code.as_str();
            let from = list.by_region.partition_point(|s| region(s) < bounds.0);
            let to = list.by_region.partition_point(|s| region(s) <= bounds.1);
            let band_from = list.by_lat.partition_point(|s| base.depots[*s as usize].lat < bb.lat_min);
            let band_to = list.by_lat.partition_point(|s| base.depots[*s as usize].lat <= bb.lat_max);
            let slots = if to.saturating_sub(from) <= SLICE_SCAN.max(band_to.saturating_sub(band_from)) {
                &list.by_region[from..to.max(from)]
            } else {
                &list.by_lat[band_from..band_to.max(band_from)]
            };
            for &s in slots {
                if !self.is_replaced(s) {
                    take(&base.depots[s as usize]);
                }
            }
        }
        for d in self.overlay.values().flatten() {
            take(d);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot(id: i64, region: &str, lon: f64, lat: f64, stock: &[(&str, &str, Option<NaiveDate>, i64)]) -> Depot {
        let mut d = Depot {
            id,
            code: format!("D{id:03}"),
            name: format!("库{id}"),
            region_code: region.into(),
            lon,
            lat,
            stock: HashMap::new(),
        };
        for (item, mode, expiry, qty) in stock {
            let h = d.stock.entry(item.to_string()).or_default();
            let lots = if *mode == "physical" { &mut h.physical } else { &mut h.agreement };
            lots.0.push((*expiry, *qty));
        }
        d
    }

    fn want(quantity: i64, max_km: Option<f64>) -> Want<'static> {
        Want { item: "1010101", quantity, point: (116.0, 44.0), max_km }
    }

    const ALL: (&str, &str) = ("000000000000", "999999999999");

    #[test]
    fn nearest_first_until_covered_and_expiry_counts_on_the_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let idx = DepotStock::from_depots(vec![
            depot(1, "150101100000", 116.1, 44.0, &[("1010101", "physical", None, 30)]),
            depot(2, "150101100000", 116.5, 44.0, &[("1010101", "physical", Some(day), 50)]),
            depot(3, "150101100000", 117.5, 44.0, &[("1010101", "agreement", None, 500)]),
        ]);
        let a = idx.search(&want(60, None), ALL, day);
        assert_eq!(a.allocations.iter().map(|a| (a.depot_id, a.take)).collect::<Vec<_>>(), vec![(1, 30), (2, 30)]);
        assert_eq!(a.searched_km, 50.0);
        // The next day depot 2's batch has expired: agreement stock covers the shortfall.
        let a = idx.search(&want(60, Some(200.0)), ALL, day.succ_opt().unwrap());
        assert_eq!(a.allocated, 30);
        assert_eq!(a.agreement.iter().map(|a| (a.depot_id, a.take)).collect::<Vec<_>>(), vec![(3, 30)]);
        assert_eq!(a.searched_km, 200.0);
    }

    #[test]
    fn reloaded_depots_replace_the_base() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let idx = DepotStock::from_depots(vec![
            depot(1, "150101100000", 116.1, 44.0, &[("1010101", "physical", None, 30)]),
            depot(2, "150101100000", 116.2, 44.0, &[("1010101", "physical", None, 30)]),
        ]);
        // Depot 1 emptied, depot 2 deleted, depot 7 new.
        let next = idx.with(
            &[1, 2, 7],
            vec![
                depot(1, "150101100000", 116.1, 44.0, &[]),
                depot(7, "150101100000", 116.3, 44.0, &[("1010101", "physical", None, 9)]),
            ],
        );
        let a = next.search(&want(10, Some(100.0)), ALL, day);
        assert_eq!(a.allocations.iter().map(|a| (a.depot_id, a.take)).collect::<Vec<_>>(), vec![(7, 9)]);
        assert_eq!(next.overlay.len(), 3);
        // The old version still answers as before.
        assert_eq!(idx.search(&want(10, Some(100.0)), ALL, day).allocations[0].depot_id, 1);
    }

    /// Every depot checked one by one: what the search must find, whichever list it walks.
    fn brute_force(idx: &DepotStock, w: &Want<'_>, bounds: (&str, &str), day: NaiveDate) -> Nearest {
        let mut last = (0.0, Vec::new(), Vec::new());
        for radius in radii(w.max_km) {
            let bb = bounding_box(w.point.0, w.point.1, radius);
            let (mut physical, mut agreement) = (Vec::new(), Vec::new());
            for d in &idx.base.depots {
                let dist = distance_km(w.point, (d.lon, d.lat));
                let inside = bb.contains(d.lon, d.lat) && dist <= radius;
                if !inside || d.region_code.as_str() < bounds.0 || d.region_code.as_str() > bounds.1 {
                    continue;
                }
                let Some(h) = d.stock.get(w.item) else { continue };
                let (p, a) = (h.physical.on(day), h.agreement.on(day));
                if p > 0 {
                    physical.push((dist, p, d.place()));
                }
                if a > 0 {
                    agreement.push((dist, a, d.place()));
                }
            }
            let enough = physical.iter().map(|x| x.1).sum::<i64>() >= w.quantity;
            last = (radius, physical, agreement);
            if enough {
                break;
            }
        }
        answer(w, last.0, last.1, last.2)
    }

    #[test]
    fn wide_and_narrow_jurisdictions_find_what_checking_every_depot_finds() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let mut seed = 12345u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // 6,000 depots over ~600 km in 30 townships: a province-wide jurisdiction holds more of
        // an item than SLICE_SCAN (the band of latitudes is walked), a township far fewer.
        let depots: Vec<Depot> = (0..6000)
            .map(|i| {
                let region = format!("1501{:02}{:03}000", rand(3), 100 + rand(10));
                let (lon, lat) = (112.0 + rand(6000) as f64 / 1000.0, 42.0 + rand(5000) as f64 / 1000.0);
                let expiry = [None, Some(day), Some(day.pred_opt().unwrap())][rand(3) as usize];
                let mode = if rand(10) < 8 { "physical" } else { "agreement" };
                depot(i, &region, lon, lat, &[("1010101", mode, expiry, 1 + rand(50) as i64)])
            })
            .collect();
        let idx = DepotStock::from_depots(depots);
        assert!(idx.base.items["1010101"].by_region.len() > SLICE_SCAN);
        for k in 0..300 {
            let point = (112.0 + rand(6000) as f64 / 1000.0, 42.0 + rand(5000) as f64 / 1000.0);
            let max_km = [None, Some(10.0), Some(80.0)][k % 3];
            let w = Want { item: "1010101", quantity: 1 + rand(3000) as i64, point, max_km };
            let township = format!("1501{:02}{:03}000", rand(3), 100 + rand(10));
            let banner = format!("1501{:02}000000", rand(3));
            let bounds: [(String, String); 3] = [
                ("000000000000".into(), "999999999999".into()),
                (format!("{}000000", &banner[..6]), format!("{}999999", &banner[..6])),
                (township.clone(), township),
            ];
            for (lo, hi) in &bounds {
                let got = idx.search(&w, (lo, hi), day);
                let want = brute_force(&idx, &w, (lo, hi), day);
                assert_eq!(
                    serde_json::to_value(&got).unwrap(),
                    serde_json::to_value(&want).unwrap(),
                    "{w:?} {lo}..{hi}"
                );
            }
        }
    }
}
