//! aarch64 attention paths.

use crate::kernels::attention::AttnPath;
use crate::Tier;

pub(crate) fn path_name(_tier: Tier) -> &'static str {
    "scalar"
}

pub(crate) fn select(_tier: Tier, _amax: [f32; 2], _q: &[f32]) -> &'static AttnPath {
    &crate::arch::scalar::attention::PATH
}
