//! A grid index over points for "what lies within D km of here", used by the shortfall rules
//! (thousands of requirements against tens of thousands of depots or teams in one run). The cells
//! searched are those under the exact bounding box of the circle ([`crate::geodesy`]), so the
//! answer is exact at any radius and latitude.

use std::collections::HashMap;

pub use crate::geodesy::distance_km;
use crate::geodesy::{BoundingBox, bounding_box};

/// The box that holds every point within `km` of any of `circles` ((lon, lat), km): the union
/// of each circle's exact bounding box, so a query bounded by it misses nothing any circle
/// reaches. None when there is no circle.
pub fn reach(circles: impl IntoIterator<Item = ((f64, f64), f64)>) -> Option<BoundingBox> {
    circles.into_iter().map(|((lon, lat), km)| bounding_box(lon, lat, km)).reduce(|a, b| BoundingBox {
        lat_min: a.lat_min.min(b.lat_min),
        lat_max: a.lat_max.max(b.lat_max),
        lon_min: a.lon_min.min(b.lon_min),
        lon_max: a.lon_max.max(b.lon_max),
    })
}

/// Grid cell size in degrees.
const CELL: f64 = 0.25;

/// A point (lon, lat) with its payload.
type Entry<T> = (f64, f64, T);

/// Points with a payload, bucketed by grid cell.
pub struct Grid<T> {
    cells: HashMap<(i32, i32), Vec<Entry<T>>>,
}

impl<T> Default for Grid<T> {
    fn default() -> Self {
        Grid { cells: HashMap::new() }
    }
}

fn cell(lon: f64, lat: f64) -> (i32, i32) {
    ((lon / CELL).floor() as i32, (lat / CELL).floor() as i32)
}

impl<T> Grid<T> {
    /// Adds a point.
    pub fn insert(&mut self, lon: f64, lat: f64, payload: T) {
        self.cells.entry(cell(lon, lat)).or_default().push((lon, lat, payload));
    }

    /// Every point within `km` of `at` (great-circle), with its distance.
    pub fn within(&self, at: (f64, f64), km: f64) -> Vec<(&T, f64)> {
        let bb: BoundingBox = bounding_box(at.0, at.1, km);
        let (x0, y0) = cell(bb.lon_min, bb.lat_min);
        let (x1, y1) = cell(bb.lon_max, bb.lat_max);
        let box_cells = (i64::from(x1) - i64::from(x0) + 1) * (i64::from(y1) - i64::from(y0) + 1);
        let buckets: Vec<&Vec<Entry<T>>> = if box_cells > self.cells.len() as i64 {
            // A wide box (long range, near a pole, across the antimeridian): fewer cells are
            // occupied than the box covers, so walk the occupied ones.
            self.cells
                .iter()
                .filter(|((x, y), _)| (x0..=x1).contains(x) && (y0..=y1).contains(y))
                .map(|(_, points)| points)
                .collect()
        } else {
            (x0..=x1).flat_map(|x| (y0..=y1).filter_map(move |y| self.cells.get(&(x, y)))).collect()
        };
        let mut out = Vec::new();
        for (plon, plat, payload) in buckets.into_iter().flatten() {
            let d = distance_km(at, (*plon, *plat));
            if d <= km {
                out.push((payload, d));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geodesy::destination;

    #[test]
    fn finds_points_within_the_radius_only() {
        let mut g = Grid::default();
        g.insert(113.644, 43.852, "seat");
        g.insert(114.5, 43.852, "east");
        g.insert(113.644, 45.0, "north");
        let mut near: Vec<&str> = g.within((113.644, 43.852), 80.0).into_iter().map(|(p, _)| *p).collect();
        near.sort();
        assert_eq!(near, vec!["east", "seat"]);
        let d = distance_km((113.644, 43.852), (114.5, 43.852));
        assert!((d - 68.7).abs() < 0.5, "{d}");
    }

    #[test]
    fn the_reach_holds_every_circle() {
        assert_eq!(reach(std::iter::empty()), None);
        let circles = [((113.644, 43.852), 50.0), ((115.0, 44.5), 120.0), ((112.0, 42.0), 1.0)];
        let bb = reach(circles).unwrap();
        for ((lon, lat), km) in circles {
            for i in 0..36 {
                let (plon, plat) = destination(lon, lat, i as f64 * 10.0, km);
                assert!(bb.contains(plon, plat), "{lon},{lat} {km} km bearing {}", i * 10);
            }
        }
    }

    #[test]
    fn exact_at_long_range_in_every_direction_and_across_the_antimeridian() {
        for at in [(113.64402, 43.85223), (179.8, 50.0), (0.0, 89.0)] {
            for km in [1.0, 440.0, 1000.0, 2000.0] {
                let mut g = Grid::default();
                for i in 0..72 {
                    let bearing = i as f64 * 5.0;
                    let (lon, lat) = destination(at.0, at.1, bearing, km * 0.999);
                    g.insert(lon, lat, (bearing, true));
                    let (lon, lat) = destination(at.0, at.1, bearing, km * 1.001);
                    g.insert(lon, lat, (bearing, false));
                }
                let found = g.within(at, km);
                assert_eq!(found.len(), 72, "{at:?} {km} km: {}", found.len());
                assert!(found.iter().all(|(p, _)| p.1), "{at:?} {km} km: a point beyond the radius counted");
            }
        }
    }
}
