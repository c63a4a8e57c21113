//! Integration tests: one binary, one module per domain. Each test starts the real service on an
//! ephemeral port with a fresh database and speaks HTTP to it.

mod access;
mod common;
mod drills;
mod erasure;
mod forces;
mod forces_flows;
mod foundation;
mod hardening;
mod keys;
mod notify;
mod plans;
mod readiness;
mod readiness_rules;
mod receiver;
mod scheduler;
mod supplies;
mod supplies_flows;
