//! Emergency plans (应急预案): the plan system as records and as reviewed files, their lifecycle
//! (draft → review → approved → filed → superseded/retired), versions, filing/evaluation/drill
//! deadlines on a working-day calendar, response levels and what each level needs.
//!
//! Identity: a **plan** has a stable id (and, when it comes from `plans/`, a stable `key`), an
//! owner region and a kind, all fixed for its life. Its content lives in numbered **versions**;
//! only the latest version can be a draft, and an approved or filed version is never edited: a
//! revision is a new version, and the previous approved/filed version becomes `superseded` when
//! the new one is approved. The plan's *current* version is the one in force (approved or
//! filed); deadlines are computed from it.

pub mod calendar;
pub mod deadlines;
pub mod diff;
pub mod document;
pub mod evaluations;
pub mod files;
pub mod lifecycle;
pub mod routes;
pub mod store;
pub mod strict;
pub mod types;
pub mod validate;
pub mod view;

pub use types::*;
