//! The new spalloc REST API and its websocket proxy, beside the v1 protocol, on the same live
//! service (issue #14; being built): accounts, sessions, TLS.

pub mod accounts;
pub mod http;
pub mod proxy_io;
pub mod sessions;
pub mod tls;
