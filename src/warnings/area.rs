//! Which regions a warning concerns: the regions it names (division-code geocodes, or a polygon
//! against region boundaries and points) and every region below them, to which it is passed
//! down.

use std::collections::{BTreeMap, BTreeSet};

use geo::{Contains, Coord, Intersects, LineString, MultiPolygon, Point, Polygon};
use serde_json::Value;

use crate::auth::Scope;
use crate::regions::{Level, Region, RegionCode};

/// The region tree, for mapping areas.
pub struct Tree {
    by_code: BTreeMap<String, Region>,
}

/// Why a geocode could not be mapped.
#[derive(Debug, Clone, PartialEq)]
pub enum GeocodeError {
    /// Not a division code at all.
    Malformed(String),
    /// Inside one of our counties but not a region we know.
    Unknown(String),
}

impl Tree {
    /// The tree over these regions.
    pub fn new(regions: Vec<Region>) -> Tree {
        Tree { by_code: regions.into_iter().map(|r| (r.code.clone(), r)).collect() }
    }

    /// A region by code.
    pub fn get(&self, code: &str) -> Option<&Region> {
        self.by_code.get(code)
    }

    /// A region's name, or the code.
    pub fn name(&self, code: &str) -> String {
        self.by_code.get(code).map(|r| r.name.clone()).unwrap_or_else(|| code.to_string())
    }

    /// The region and every region below it.
    pub fn subtree(&self, code: &str) -> Vec<String> {
        let Some(r) = self.by_code.get(code) else { return vec![] };
        let Ok(rc) = RegionCode::parse(code) else { return vec![] };
        let (lo, hi) = Scope { code: rc, level: r.level }.bounds();
        self.by_code.range(lo..=hi).map(|(c, _)| c.clone()).collect()
    }

    /// Recipients of a warning naming `declared`: each declared region (flag true) and every
    /// region below one (false), once each, by code.
    pub fn recipients(&self, declared: &[String]) -> Vec<(String, bool)> {
        let named: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
        let mut all: BTreeSet<String> = BTreeSet::new();
        for d in declared {
            all.extend(self.subtree(d));
        }
        all.into_iter()
            .map(|c| {
                let d = named.contains(c.as_str());
                (c, d)
            })
            .collect()
    }

    /// Maps a geocode (a 6-, 9- or 12-digit division code) to our regions: a region we know; the
    /// counties we hold when it names a league or province above them; nothing when it names
    /// another county (a message may cover neighbours too). A code inside one of our counties
    /// that we do not know is an error, as is anything that is not a division code.
    pub fn map_geocode(&self, value: &str) -> Result<Vec<String>, GeocodeError> {
        let v = value.trim();
        if !v.bytes().all(|b| b.is_ascii_digit()) || ![6usize, 9, 12].contains(&v.len()) {
            return Err(GeocodeError::Malformed(v.to_string()));
        }
        let code = format!("{v:0<12}");
        if self.by_code.contains_key(&code) {
            return Ok(vec![code]);
        }
        let counties: Vec<&Region> = self.by_code.values().filter(|r| r.level == Level::Banner).collect();
        if counties.iter().any(|c| code[..6] == c.code[..6]) {
            return Err(GeocodeError::Unknown(v.to_string()));
        }
        // A league (4 significant digits) or province (2) above our counties.
        let significant = code.trim_end_matches('0').len();
        let covering: Vec<String> = counties
            .iter()
            .filter(|c| significant <= 4 && c.code.starts_with(&code[..significant.max(2)]))
            .map(|c| c.code.clone())
            .collect();
        Ok(covering)
    }

    /// Regions named by a polygon (lon, lat ring): those whose boundary intersects it, and those
    /// without a boundary whose point lies inside it. Only the highest such region of each branch
    /// is returned (its subtree follows from it).
    pub fn map_polygon(&self, ring: &[(f64, f64)]) -> Vec<String> {
        let poly = Polygon::new(
            LineString::from(ring.iter().map(|(x, y)| Coord { x: *x, y: *y }).collect::<Vec<_>>()),
            vec![],
        );
        let mut hit: Vec<String> = Vec::new();
        for r in self.by_code.values() {
            if hit.iter().any(|h| self.subtree(h).contains(&r.code)) {
                continue;
            }
            let inside = match r.boundary.as_ref().and_then(|b| boundary(&b.0)) {
                Some(b) => b.intersects(&poly),
                None => match (r.lon, r.lat) {
                    (Some(lon), Some(lat)) if r.level != Level::Banner => poly.contains(&Point::new(lon, lat)),
                    _ => false,
                },
            };
            if inside {
                hit.push(r.code.clone());
            }
        }
        hit
    }
}

/// A GeoJSON Polygon or MultiPolygon geometry as geo's type.
fn boundary(v: &Value) -> Option<MultiPolygon<f64>> {
    let ring = |r: &Value| -> Option<LineString<f64>> {
        let pts: Option<Vec<Coord<f64>>> =
            r.as_array()?.iter().map(|p| Some(Coord { x: p.get(0)?.as_f64()?, y: p.get(1)?.as_f64()? })).collect();
        pts.map(LineString::from)
    };
    let polygon = |p: &Value| -> Option<Polygon<f64>> {
        let rings = p.as_array()?;
        let exterior = ring(rings.first()?)?;
        let holes: Option<Vec<LineString<f64>>> = rings.iter().skip(1).map(ring).collect();
        Some(Polygon::new(exterior, holes?))
    };
    match v.get("type")?.as_str()? {
        "Polygon" => Some(MultiPolygon::new(vec![polygon(v.get("coordinates")?)?])),
        "MultiPolygon" => {
            let ps: Option<Vec<Polygon<f64>>> = v.get("coordinates")?.as_array()?.iter().map(polygon).collect();
            Some(MultiPolygon::new(ps?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn region(code: &str, level: Level, parent: &str) -> Region {
        let now = Timestamp(chrono::Utc::now());
        Region {
            code: code.into(),
            name: code.into(),
            level,
            parent_code: Some(parent.into()),
            lon: None,
            lat: None,
            boundary: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn tree() -> Tree {
        Tree::new(vec![
            region("152523000000", Level::Banner, "152500000000"),
            region("152523100000", Level::Township, "152523000000"),
            region("152523100001", Level::Village, "152523100000"),
            region("152523101000", Level::Township, "152523000000"),
        ])
    }

    #[test]
    fn geocodes_map_to_known_regions_covering_counties_or_nothing() {
        let t = tree();
        assert_eq!(t.map_geocode("152523100000"), Ok(vec!["152523100000".to_string()]));
        assert_eq!(t.map_geocode("152523100"), Ok(vec!["152523100000".to_string()]));
        assert_eq!(t.map_geocode("152500"), Ok(vec!["152523000000".to_string()]), "the league covers the banner");
        assert_eq!(t.map_geocode("150000000000"), Ok(vec!["152523000000".to_string()]), "so does the province");
        assert_eq!(t.map_geocode("152524000000"), Ok(vec![]), "a neighbouring county is not ours");
        assert_eq!(t.map_geocode("152523109000"), Err(GeocodeError::Unknown("152523109000".into())));
        assert_eq!(t.map_geocode("15252x"), Err(GeocodeError::Malformed("15252x".into())));
    }

    #[test]
    fn recipients_are_the_named_regions_and_everything_below_once() {
        let t = tree();
        let r = t.recipients(&["152523100000".into(), "152523100001".into()]);
        assert_eq!(r, vec![("152523100000".to_string(), true), ("152523100001".to_string(), true)]);
        assert_eq!(t.recipients(&["152523000000".into()]).len(), 4);
    }
}
