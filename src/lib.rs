//! yingji (应急): emergency readiness for 苏尼特左旗 — plans, supplies, social rescue forces,
//! drills, and the scheduler that keeps them current.
//!
//! `main.rs` only wires; each domain lives in its own module with its types, storage and routes.

pub mod app;
pub mod audit;
pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod blocking;
pub mod change_feed;
pub mod cli;
pub mod clock;
pub mod csvio;
pub mod db;
pub mod drills;
pub mod error;
pub mod events;
pub mod forces;
pub mod freshness;
pub mod geodesy;
pub mod http;
/// The one import pipeline behind every bulk import.
pub mod imports;
pub mod keys;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod personal;
pub mod plans;
pub mod readiness;
pub mod regions;
pub mod routes;
pub mod scheduler;
pub mod seed;
pub mod supplies;
pub mod system;
pub mod time;
pub mod transition;
pub mod vocab;
pub mod warnings;
pub mod web;
