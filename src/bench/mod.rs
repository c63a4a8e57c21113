//! Benchmarks run from the command line (`yingji bench …`), on data generated at scale. Timing
//! targets are measured here, never in tests.

pub mod burst;
pub mod console;
pub mod data;
pub mod events;
pub mod imports;
pub mod nearest;
pub mod readiness;
pub mod rows;
pub mod scratch;
pub mod warnings;
pub mod wrk;
