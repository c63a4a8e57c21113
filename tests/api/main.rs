//! Integration tests: one binary, one module per domain. Each test starts the real service on an
//! ephemeral port with a fresh database and speaks HTTP to it.

mod access;
mod background;
mod blocking;
mod browser;
mod common;
mod console;
mod crash;
mod drills;
mod erasure;
mod events;
mod forces;
mod forces_flows;
mod foundation;
mod hardening;
mod idempotency;
mod keys;
mod migrations;
mod notify;
mod plans;
mod races;
mod readiness;
mod readiness_rules;
mod receiver;
mod scheduler;
mod supplies;
mod supplies_flows;
mod supplies_transfers;
mod truth_distance;
mod truth_drills;
mod truth_forces;
mod truth_notify;
mod truth_paper;
mod truth_small;
mod truth_supplies;
mod warnings;
