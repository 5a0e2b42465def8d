//! Shared helpers for spinnbed's integration and snapshot tests (the tests live in `tests/tests/`).
#![forbid(unsafe_code)]
