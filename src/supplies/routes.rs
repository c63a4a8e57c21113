//! Every supplies route, in one list.

use crate::http::router::Route;

/// Routes of the supplies module.
pub fn routes() -> Vec<Route> {
    let mut all = Vec::new();
    all.extend(super::catalogue::routes());
    all.extend(super::depots::routes::routes());
    all.extend(super::movements::routes());
    all.extend(super::transfer_routes::routes());
    all.extend(super::requisitions::routes());
    all.extend(super::nearest::routes());
    all.extend(super::csv::routes());
    all.extend(super::geojson::routes());
    all
}
