//! Portable implementations: plain Rust, no `unsafe` beyond writing through the validated output
//! pointer. They define the packed layouts that other tiers fall back to.

pub(crate) mod attention;
pub(crate) mod formats;
pub(crate) mod matmul;
pub(crate) mod matmul_q8;
pub(crate) mod ops;

use crate::contract::attention::{AttnPath, AttnSelect, Problem};
use crate::contract::Kernels;
use crate::Tier;

/// Every op in portable Rust: the `Scalar` tier's table, and what other tiers' tables name for
/// the entries they have no kernel of their own for (`..PORTABLE`).
pub(crate) const PORTABLE: Kernels = Kernels {
    tier: Tier::Scalar,
    act: &matmul::ACT_KERNEL,
    act_k: &matmul::ACT_KERNEL_K,
    q4_0: &matmul::Q4_KERNEL,
    q8_0: &matmul_q8::Q8_KERNEL,
    q4_1: &formats::Q4_1,
    q5_0: &formats::Q5_0,
    q5_1: &formats::Q5_1,
    q4_k: &formats::Q4_K,
    q5_k: &formats::Q5_K,
    q6_k: &formats::Q6_K,
    ops: &ops::OPS_KERNEL,
    attn: AttnSelect {
        name: || "scalar",
        select: select_attention,
        bf16_kv: || None,
        i8_grouped: false,
    },
};

/// The `Scalar` tier.
pub(crate) static TABLE: Kernels = PORTABLE;

fn select_attention(_: &Problem<'_>) -> &'static AttnPath {
    &attention::PATH
}
