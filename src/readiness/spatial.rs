//! A grid index over points for "what lies within D km of here", used by the shortfall rules
//! (thousands of requirements against tens of thousands of depots or teams in one run).

use std::collections::HashMap;

use geo::{Distance, Haversine, Point};

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

/// Great-circle distance in km between (lon, lat) points.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.0, a.1), Point::new(b.0, b.1)) / 1000.0
}

impl<T> Grid<T> {
    /// Adds a point.
    pub fn insert(&mut self, lon: f64, lat: f64, payload: T) {
        self.cells.entry(cell(lon, lat)).or_default().push((lon, lat, payload));
    }

    /// Every point within `km` of `at`, with its distance.
    pub fn within(&self, at: (f64, f64), km: f64) -> Vec<(&T, f64)> {
        let (lon, lat) = at;
        let dlat = km / 110.574 + 0.01;
        let cos = lat.to_radians().cos().max(0.01);
        let dlon = (km / (111.320 * cos) + 0.01).min(180.0);
        let (x0, y0) = cell(lon - dlon, lat - dlat);
        let (x1, y1) = cell(lon + dlon, lat + dlat);
        let mut out = Vec::new();
        for x in x0..=x1 {
            for y in y0..=y1 {
                let Some(points) = self.cells.get(&(x, y)) else { continue };
                for (plon, plat, payload) in points {
                    let d = distance_km(at, (*plon, *plat));
                    if d <= km {
                        out.push((payload, d));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_points_within_the_radius_only() {
        let mut g = Grid::default();
        g.insert(113.644, 43.852, "seat");
        g.insert(114.5, 43.852, "east");
        g.insert(113.644, 45.0, "north");
        let near: Vec<&str> = g.within((113.644, 43.852), 80.0).into_iter().map(|(p, _)| *p).collect();
        assert_eq!(near, vec!["seat", "east"]);
        let d = distance_km((113.644, 43.852), (114.5, 43.852));
        assert!((d - 68.7).abs() < 0.5, "{d}");
    }
}
