//! Tier-independent drivers, written once over the micro-kernel contracts of
//! [`crate::contract`]: the flash-attention block loop and schedules ([`attention`]) and the
//! parallel GEMM split ([`gemm`]). Per-ISA code instantiates them (`attention::path::<K>()`);
//! the public ops call them with the kernels of their operands' tier.

pub(crate) mod attention;
pub(crate) mod gemm;
