//! Wire codecs for the protocols a SpiNNaker host speaks.
//!
//! Every packet type follows the same shape (borrowed from smoltcp's `wire` module):
//! - a checked zero-copy view `Packet<T: AsRef<[u8]>>` whose `new_checked` validates lengths
//!   once, after which field accessors are infallible;
//! - an owned representation (`Repr`) with `parse(&packet)` and `emit(&mut packet)`;
//! - unknown codes are kept as values (`Unknown(n)`), never rejected or panicked on.
//!
//! Parsing arbitrary bytes never panics: it returns an [`Error`] that says what is wrong.

pub mod boot;
pub mod eieio;
pub mod scp;
pub mod sdp;

mod error;
pub use error::{Error, Result};
