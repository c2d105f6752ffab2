//! The crate's error type.

use std::fmt;

/// Everything that can go wrong in `qkern`. Kernels return it instead of panicking on bad shapes,
/// bad tiers or sizes that overflow; loaders return it for malformed files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A dimension must be a multiple of the block size (32) but is not.
    NotBlockAligned {
        /// Which dimension (e.g. "K").
        what: &'static str,
        /// Its value.
        value: usize,
    },
    /// A buffer has the wrong length for the shape it is used with.
    BadLength {
        /// Which argument.
        what: &'static str,
        /// Length required by the shape.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// Two arguments disagree on a shape, or a range lies outside its shape.
    ShapeMismatch(String),
    /// A size computation overflowed `usize`.
    Overflow(&'static str),
    /// A buffer whose size the caller chose could not be allocated.
    AllocationFailed(&'static str),
    /// The CPU does not support the requested tier.
    TierUnavailable(crate::Tier),
    /// Operands were prepared for different tiers.
    TierMismatch {
        /// Tier of the packed weights.
        weights: crate::Tier,
        /// Tier of the quantized activations.
        activations: crate::Tier,
    },
    /// A tier name that is not known.
    UnknownTier(String),
    /// A quantization type name that is not known (`qkern::model::QuantType` lists the known).
    UnknownQuantType(String),
    /// A model or tensor file is malformed.
    Format(String),
    /// A tensor type the crate does not support.
    UnsupportedType {
        /// Tensor name.
        tensor: String,
        /// Type name or code as found in the file.
        ty: String,
    },
    /// An I/O error, as text (keeps `Error` `Clone + Eq`).
    Io(String),
    /// A tokenizer is missing, malformed or not supported, or an id has no token.
    Tokenizer(String),
    /// A sequence does not fit in the context (the session's KV cache).
    ContextFull {
        /// Positions the sequence would need.
        needed: usize,
        /// Positions available.
        capacity: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotBlockAligned { what, value } => {
                write!(f, "{what} = {value} is not a multiple of 32")
            }
            Error::BadLength {
                what,
                expected,
                actual,
            } => write!(f, "{what}: expected length {expected}, got {actual}"),
            Error::ShapeMismatch(s) => write!(f, "shape mismatch: {s}"),
            Error::Overflow(what) => write!(f, "size overflow computing {what}"),
            Error::AllocationFailed(what) => write!(f, "could not allocate the {what}"),
            Error::TierUnavailable(t) => write!(f, "tier {t} is not supported by this CPU"),
            Error::TierMismatch {
                weights,
                activations,
            } => write!(
                f,
                "weights packed for tier {weights} but activations quantized for tier {activations}"
            ),
            Error::UnknownTier(s) => write!(f, "unknown tier name {s:?}"),
            Error::UnknownQuantType(s) => write!(f, "unknown quantization type {s:?}"),
            Error::Format(s) => write!(f, "malformed file: {s}"),
            Error::UnsupportedType { tensor, ty } => {
                write!(f, "tensor {tensor:?} has unsupported type {ty}")
            }
            Error::Io(s) => write!(f, "I/O error: {s}"),
            Error::Tokenizer(s) => write!(f, "tokenizer: {s}"),
            Error::ContextFull { needed, capacity } => write!(
                f,
                "the sequence needs {needed} positions but the context holds {capacity}"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Checked `a * b`, naming what overflowed.
pub(crate) fn mul(a: usize, b: usize, what: &'static str) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::Overflow(what))
}
