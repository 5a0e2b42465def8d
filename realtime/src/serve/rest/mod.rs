//! The new spalloc REST API and its websocket proxy (what spinnman 7.x's `SpallocClient` and so
//! sPyNNaker use), beside the v1 protocol, on the same live service.
//!
//! - [`http`]: plain HTTP and TLS on one port, bounded handshakes.
//! - [`tls`]: the certificate (given, or self-signed and kept in the state directory).
//! - [`accounts`], [`sessions`]: users (argon2 passwords, bearer tokens), login sessions, CSRF.
//! - [`web`]: the routes; every job operation is a call into the server loop, which runs
//!   [`spinnbed_spalloc::rest`] on the service.
//! - [`memory`]: SCP to a job's boards for REST memory reads and writes and router resets.
//! - [`proxy_io`]: the websocket proxy's sockets around [`spinnbed_spalloc::proxy`].
//! - [`pages`]: pages for people: the login form and the frame every page shares.
//! - [`status`]: the status pages (machines with a live board map, jobs, one job).

pub mod accounts;
pub mod http;
pub mod memory;
pub mod pages;
pub mod proxy_io;
pub mod sessions;
pub mod status;
pub mod tls;
pub mod web;
