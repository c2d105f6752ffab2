//! Portable implementations: plain Rust, no `unsafe` beyond writing through the validated output
//! pointer. They define the packed layouts that other tiers fall back to.

pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod matmul_q8;
pub(crate) mod ops;

use crate::contract::attention::{AttnPath, AttnSelect, Problem};
use crate::contract::Kernels;
use crate::Tier;

/// The `Scalar` tier: every op in portable Rust.
pub(crate) static TABLE: Kernels = Kernels {
    tier: Tier::Scalar,
    act: &matmul::ACT_KERNEL,
    q4_0: &matmul::Q4_KERNEL,
    q8_0: &matmul_q8::Q8_KERNEL,
    ops: &ops::OPS_KERNEL,
    attn: AttnSelect {
        name: || "scalar",
        select: select_attention,
    },
};

fn select_attention(_: &Problem<'_>) -> &'static AttnPath {
    &attention::PATH
}
