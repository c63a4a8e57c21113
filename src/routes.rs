//! Every module's routes, in one table.

use crate::http::router::Router;

/// The service's route table.
pub fn router() -> Router {
    let mut all = Vec::new();
    all.extend(crate::system::routes());
    all.extend(crate::auth::routes::routes());
    all.extend(crate::regions::routes::routes());
    all.extend(crate::forces::routes::routes());
    all.extend(crate::scheduler::routes::routes());
    all.extend(crate::notify::routes::routes());
    all.extend(crate::drills::routes::routes());
    all.extend(crate::readiness::routes::routes());
    all.extend(crate::plans::routes::routes());
    all.extend(crate::supplies::routes::routes());
    all.extend(crate::events::routes::routes());
    all.extend(crate::warnings::routes::routes());
    all.extend(crate::auth::user_routes::routes());
    Router::new(all)
}
