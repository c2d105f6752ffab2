//! aarch64 layer ops.

use crate::kernels::elementwise::OpsKernel;
use crate::Tier;

pub(crate) fn ops_kernel(_tier: Tier) -> &'static OpsKernel {
    &crate::arch::scalar::ops::OPS_KERNEL
}
