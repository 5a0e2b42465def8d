//! spinnbed-reports: charts and an HTML page per run. Filled in by the reports issue.
#![forbid(unsafe_code)]
