//! spinnbed-sim: drivers (discrete-event and real-time) and the `sim` command line.
#![forbid(unsafe_code)]
