//! x86_64 attention paths.

use crate::kernels::attention::AttnPath;
use crate::Tier;

pub(crate) fn path_name(_tier: Tier) -> &'static str {
    "scalar"
}

pub(crate) fn select(_tier: Tier) -> &'static AttnPath {
    &crate::arch::scalar::attention::PATH
}
