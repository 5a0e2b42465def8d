//! The one error type of the wire codecs.

/// What is wrong with a packet that could not be parsed or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the packet needs.
    #[error("{what}: truncated: need at least {need} bytes, got {got}")]
    Truncated {
        /// Which structure was being read.
        what: &'static str,
        /// Minimum length required.
        need: usize,
        /// Length available.
        got: usize,
    },
    /// The buffer is longer than the protocol allows.
    #[error("{what}: too long: at most {max} bytes, got {got}")]
    TooLong {
        /// Which structure was being read.
        what: &'static str,
        /// Maximum length allowed.
        max: usize,
        /// Length given.
        got: usize,
    },
    /// A field holds a value the protocol does not allow.
    #[error("{what}: bad field {field}: {detail}")]
    BadField {
        /// Which structure was being read.
        what: &'static str,
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// Result of a codec operation.
pub type Result<T> = core::result::Result<T, Error>;
