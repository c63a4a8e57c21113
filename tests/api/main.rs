//! Integration tests: one binary, one module per domain. Each test starts the real service on an
//! ephemeral port with a fresh database and speaks HTTP to it.

mod common;
mod foundation;
mod supplies;
