//! The three supplies imports (see the parent module for the rules they share), each a kind of
//! the one import pipeline ([`crate::imports`]): the catalogue, depots and stock, one module
//! each.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use warp::reply::Response;

use super::{CATALOGUE, DEPOTS, STOCK, date};
use crate::audit::{self, Actor, Change};
use crate::auth::Scope;
use crate::csvio::{self, Column, Record};
use crate::db::{Backend, Db, Held, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Ctx;
use crate::imports::short::Short;
use crate::imports::staged::Staged;
use crate::imports::{self, Errors, Import, ImportSummary, Lined, bulk};
use crate::personal::{Cipher, Field};
use crate::regions::{RegionCode, check_lon_lat};
use crate::supplies::batches::{self, NewBatch};
use crate::supplies::catalogue::{self, Item, check_shelf_life};
use crate::supplies::depots::{self, DepotRow, check_phone};
use crate::supplies::ledger::{self, Details};
use crate::supplies::{DepotKind, ReserveMode, to_audit};
use crate::time::Timestamp;
use crate::vocab::ItemCode;
use crate::{with_db, with_held, with_tx};

mod catalogue_rows;
mod depots_rows;
mod stock_rows;

#[cfg(feature = "bench")]
pub use stock_rows::StockImport;

pub(super) use catalogue_rows::import_catalogue;
pub(super) use depots_rows::import_depots;
pub(super) use stock_rows::import_stock;
