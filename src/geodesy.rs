//! Distances on the earth, one way for every search (readiness, nearest supplies, nearest teams):
//! great-circle distance (the geo crate's Haversine on the mean earth radius) and the bounding
//! box that a search prefilters with.
//!
//! The box is exact on the sphere (Matuschek, "Finding points within a distance of a
//! latitude/longitude using bounding coordinates"): every point within the radius lies inside it,
//! at every latitude and radius. A box that would cross the antimeridian or reach a pole widens
//! to every longitude (still a correct superset, and rare in a Chinese banner); callers then keep
//! only points whose exact distance is within the radius. A linear "km / 111 / cos(lat)" box is
//! too narrow from a few hundred kilometres on (440 km at the banner's latitude), which is why it
//! is not used anywhere.

use geo::{Distance, Haversine, Point};

/// Mean earth radius used by the geo crate's Haversine, in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Half the earth's circumference: a radius that covers everything.
pub const WHOLE_EARTH_KM: f64 = std::f64::consts::PI * EARTH_RADIUS_KM;

/// Great-circle distance in km between two (lon, lat) points in degrees.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.0, a.1), Point::new(b.0, b.1)) / 1000.0
}

/// A box of latitudes and longitudes, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    /// Southern edge.
    pub lat_min: f64,
    /// Northern edge.
    pub lat_max: f64,
    /// Western edge.
    pub lon_min: f64,
    /// Eastern edge.
    pub lon_max: f64,
}

impl BoundingBox {
    /// Whether a (lon, lat) point lies in the box.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        (self.lat_min..=self.lat_max).contains(&lat) && (self.lon_min..=self.lon_max).contains(&lon)
    }
}

/// The box enclosing every point within `km` of (lon, lat) (a little larger, so that rounding
/// never leaves out a point exactly on the circle).
pub fn bounding_box(lon: f64, lat: f64, km: f64) -> BoundingBox {
    use std::f64::consts::{FRAC_PI_2, PI};
    // One part in a million of the radius, plus a millimetre: a margin for floating-point error.
    let r = (km.max(0.0) * (1.0 + 1e-6) + 1e-6) / EARTH_RADIUS_KM;
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    let (la_min, la_max) = (la - r, la + r);
    let whole = BoundingBox {
        lat_min: la_min.max(-FRAC_PI_2).to_degrees(),
        lat_max: la_max.min(FRAC_PI_2).to_degrees(),
        lon_min: -180.0,
        lon_max: 180.0,
    };
    if r >= PI || la_min <= -FRAC_PI_2 || la_max >= FRAC_PI_2 {
        // The circle reaches a pole: every longitude.
        return whole;
    }
    let ratio = r.sin() / la.cos();
    if ratio >= 1.0 {
        return whole;
    }
    let d = ratio.asin();
    if lo - d < -PI || lo + d > PI {
        // Crosses the antimeridian.
        return whole;
    }
    BoundingBox {
        lat_min: la_min.to_degrees(),
        lat_max: la_max.to_degrees(),
        lon_min: (lo - d).to_degrees(),
        lon_max: (lo + d).to_degrees(),
    }
}

/// The point `km` from (lon, lat) along the initial bearing `bearing_deg` (clockwise from north),
/// on the same sphere as [`distance_km`]. Used to place points at a known distance.
pub fn destination(lon: f64, lat: f64, bearing_deg: f64, km: f64) -> (f64, f64) {
    let (p1, l1, d, b) = (lat.to_radians(), lon.to_radians(), km / EARTH_RADIUS_KM, bearing_deg.to_radians());
    let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).clamp(-1.0, 1.0).asin();
    let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
    let lon2 = (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (lon2, p2.to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_contains_every_point_within_the_radius_at_any_place_and_range() {
        let places = [
            (113.64402, 43.85223),
            (0.0, 0.0),
            (179.9, 43.85),
            (-179.9, -43.85),
            (113.6, 70.0),
            (20.0, 89.9),
            (-60.0, -89.9),
            (113.6, 88.0),
        ];
        for (lon, lat) in places {
            for km in [1.0, 440.0, 1000.0, 2000.0, 5000.0] {
                let bb = bounding_box(lon, lat, km);
                for i in 0..720 {
                    let (plon, plat) = destination(lon, lat, i as f64 / 2.0, km);
                    let d = distance_km((lon, lat), (plon, plat));
                    assert!((d - km).abs() < 1e-6 * km.max(1.0), "destination is {d}, not {km}");
                    assert!(
                        bb.contains(plon, plat),
                        "({lon}, {lat}) {km} km bearing {}: ({plon}, {plat}) not in {bb:?}",
                        i as f64 / 2.0
                    );
                }
            }
        }
    }

    #[test]
    fn the_box_is_tight_where_it_can_be() {
        // At the banner seat a 1,000 km box spans about ±9 degrees of latitude and ±12.52 of
        // longitude (a linear estimate gives ±12.46 and misses the widest points of the circle).
        let bb = bounding_box(113.64402, 43.85223, 1000.0);
        assert!((bb.lat_max - 43.85223 - 8.993).abs() < 0.01, "{bb:?}");
        assert!((bb.lon_max - 113.64402 - 12.519).abs() < 0.005, "{bb:?}");
        // Across the antimeridian and near a pole: every longitude.
        assert_eq!(bounding_box(179.5, 10.0, 100.0).lon_min, -180.0);
        assert_eq!(bounding_box(0.0, 89.5, 100.0).lon_max, 180.0);
    }

    #[test]
    fn haversine_km() {
        // Banner seat to about one degree of latitude south: roughly 111 km.
        let d = distance_km((113.644, 43.852), (113.644, 42.852));
        assert!((d - 111.2).abs() < 0.5, "{d}");
    }
}
