//! Integration tests: one binary, one module per domain. Each test starts the real service on an
//! ephemeral port with a fresh database and speaks HTTP to it.

mod browser;
mod common;
mod console;
mod drills;
mod forces;
mod forces_flows;
mod foundation;
mod notify;
mod plans;
mod readiness;
mod readiness_rules;
mod receiver;
mod scheduler;
mod supplies;
mod supplies_flows;
