//! [`Kernels`]: everything one tier implements, in one value. Each architecture builds the tables
//! of its tiers (`crate::arch::<isa>::table`, the one `match` on a tier); `crate::dispatch` hands
//! them out only for tiers the CPU supports.

use super::attention::AttnSelect;
use super::gemm::{ActKernel, WeightKernel};
use super::ops::OpsKernel;
use crate::quant::{
    ActBlock, ActBlockK, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};
use crate::Tier;
use std::fmt;

/// The kernels of one tier that this CPU supports: a checked handle.
///
/// A `&Kernels` exists only for a tier that passed the CPU check ([`Kernels::for_tier`],
/// [`Kernels::active`]), so the ops that take one (norms, element-wise ops, RoPE, embedding
/// rows, the int8 dot product) need no further check. Operands that are laid out for a tier
/// (packed weights, quantized activations, the KV cache) carry their tier's kernels instead.
pub struct Kernels {
    pub(crate) tier: Tier,
    /// Activation quantizers: blocks of 32 (the layout of the tier's 32-block weight kernels)
    /// and of 256 (K-quants).
    pub(crate) act: &'static ActKernel<ActBlock>,
    pub(crate) act_k: &'static ActKernel<ActBlockK>,
    /// Weight kernels, one per format.
    pub(crate) q4_0: &'static WeightKernel<BlockQ4_0>,
    pub(crate) q8_0: &'static WeightKernel<BlockQ8_0>,
    pub(crate) q4_1: &'static WeightKernel<BlockQ4_1>,
    pub(crate) q5_0: &'static WeightKernel<BlockQ5_0>,
    pub(crate) q5_1: &'static WeightKernel<BlockQ5_1>,
    pub(crate) q4_k: &'static WeightKernel<BlockQ4K>,
    pub(crate) q5_k: &'static WeightKernel<BlockQ5K>,
    pub(crate) q6_k: &'static WeightKernel<BlockQ6K>,
    /// Small layer ops.
    pub(crate) ops: &'static OpsKernel,
    /// Attention path selection.
    pub(crate) attn: AttnSelect,
}

impl Kernels {
    /// The tier these kernels run at.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Name of the layer-op implementation (e.g. `"avx512"`).
    pub fn ops_name(&self) -> &'static str {
        self.ops.name
    }

    /// Name of the attention path that runs when the values allow the tier's fastest path
    /// (e.g. `"neon-fp16"`; the fp16 path falls back to NEON f32 for values too large for f16
    /// partial sums).
    pub fn attention_name(&self) -> &'static str {
        (self.attn.name)()
    }
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels")
            .field("tier", &self.tier)
            .field("q4_0", &self.q4_0.name)
            .field("q8_0", &self.q8_0.name)
            .field("ops", &self.ops.name)
            .field("attention", &self.attention_name())
            .finish()
    }
}

impl PartialEq for Kernels {
    fn eq(&self, other: &Self) -> bool {
        self.tier == other.tier
    }
}
