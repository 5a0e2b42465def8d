//! One module per chart; each has the single-run chart and, where it makes sense, the
//! `compare` version that overlays several runs.

pub mod live;
pub mod machine;
pub mod scp;
pub mod sweep;
pub mod utilisation;
pub mod waits;
pub mod windowing;
