//! The scheduler inside `yingji serve`: cron schedules, drill reminders and sweeps.
//!
//! So far: standard cron expressions ([`cron_expr::CronExpr`]).

pub mod cron_expr;
