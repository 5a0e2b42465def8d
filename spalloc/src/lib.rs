//! spinnbed's spalloc server, sans-IO: the reference server's JSON-line protocol over
//! spinnbed's allocation [`Service`](spinnbed_core::service::Service), the journal that makes
//! it durable, and the reference's job log.
//!
//! - [`wire`]: request lines parsed into calls, or the bad lines the reference disconnects for.
//! - [`bind`]: arguments bound to a command's parameters with Python's `TypeError` texts.
//! - [`pyjson`]: JSON and Python values as the reference writes them.
//! - [`server`]: the protocol server: commands, watches, notifications.
//! - [`rest`]: the new spalloc REST API (spinnman 7.x's `SpallocClient`) over the same service.
//! - [`describe`]: how jobs, boards and links are described to clients, shared by both.
//! - [`joblog`]: the reference's job log, message by message.
//! - [`journal`]: the service's inputs as an append-only, checksummed log.
//! - [`proxy`]: the new spalloc's websocket proxy: its frames, and one session per websocket.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bind;
pub mod describe;
pub mod joblog;
pub mod journal;
pub mod proxy;
pub mod pyjson;
pub mod rest;
pub mod server;
pub mod wire;

pub use server::{ClientId, Disconnect, Server, ServerStats, VERSION};
