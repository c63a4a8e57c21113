//! What every rule needs: the time, the configuration, and the region tree with each region's
//! effective location (its own, else its nearest ancestor's).

use std::collections::HashMap;

use chrono::NaiveDate;

use super::Config;
use crate::regions::{Level, Region};
use crate::time::{LOCAL_TZ, Timestamp};

/// A region as the rules see it.
#[derive(Debug, Clone)]
pub struct RegionInfo {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Level.
    pub level: Level,
    /// Effective location (lon, lat): its own or the nearest ancestor's.
    pub location: Option<(f64, f64)>,
}

/// The inputs of a run.
pub struct Context {
    /// The run's instant.
    pub now: Timestamp,
    /// Today in Asia/Shanghai.
    pub today: NaiveDate,
    /// Configuration.
    pub config: Config,
    /// Regions by code.
    pub regions: HashMap<String, RegionInfo>,
}

impl Context {
    /// Builds the context from the region list (ordered by code, so ancestors come first).
    pub fn new(now: Timestamp, config: Config, regions: Vec<Region>) -> Context {
        let mut map: HashMap<String, RegionInfo> = HashMap::with_capacity(regions.len());
        let mut sorted = regions;
        sorted.sort_by(|a, b| (a.level, &a.code).cmp(&(b.level, &b.code)));
        for r in sorted {
            let own = r.lon.zip(r.lat);
            let inherited = r.parent_code.as_ref().and_then(|p| map.get(p)).and_then(|p| p.location);
            map.insert(
                r.code.clone(),
                RegionInfo { code: r.code, name: r.name, level: r.level, location: own.or(inherited) },
            );
        }
        Context { now, today: now.0.with_timezone(&LOCAL_TZ).date_naive(), config, regions: map }
    }

    /// A region's name (or its code when unknown).
    pub fn name(&self, code: &str) -> String {
        self.regions.get(code).map(|r| r.name.clone()).unwrap_or_else(|| code.to_string())
    }
}
