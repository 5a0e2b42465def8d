//! spinnbed-outputs: the files a run writes, as types.
//!
//! - [`rows`]: one struct per CSV row (`jobs.csv`, `timeline.csv`, `boards.csv`, `scp.csv`,
//!   `scp_jobs.csv`, the windowing study's `scp.csv`). The simulator writes them with
//!   [`rows::to_csv`] and the reports read them back into the same types, so the two can never
//!   disagree on a column. `docs/outputs.md` describes every column.
//! - [`dir`]: output directories that are complete or absent (written beside their
//!   destination and swapped in whole; stale temporaries of dead processes cleaned).
#![forbid(unsafe_code)]

pub mod dir;
pub mod rows;
