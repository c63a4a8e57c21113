//! Every module's routes, in one table.

use crate::http::router::Router;

/// The service's route table.
pub fn router() -> Router {
    let mut all = Vec::new();
    all.extend(crate::system::routes());
    all.extend(crate::auth::routes::routes());
    all.extend(crate::regions::routes::routes());
    all.extend(crate::supplies::routes::routes());
    Router::new(all)
}
