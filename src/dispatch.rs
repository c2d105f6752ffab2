//! Dispatch: the one place that turns a [`Tier`] into the table of its kernels. Each
//! architecture's `table` function holds the only `match` on a tier; this module only adds the
//! CPU check, so a [`Kernels`] handle never exists for a tier the CPU lacks.

use crate::arch;
use crate::contract::Kernels;
use crate::{Result, Tier};

impl Kernels {
    /// The kernels of `tier`; [`crate::Error::TierUnavailable`] if the CPU lacks it.
    pub fn for_tier(tier: Tier) -> Result<&'static Kernels> {
        Ok(table(tier.check()?))
    }

    /// The kernels of the process-wide tier ([`Tier::active`]).
    pub fn active() -> &'static Kernels {
        table(Tier::active())
    }
}

/// The table of a tier of this build's architecture (a tier of another architecture is not
/// supported, so `Tier::check` has already refused it).
fn table(tier: Tier) -> &'static Kernels {
    cfg_if::cfg_if! {
        if #[cfg(target_arch = "x86_64")] {
            arch::x86_64::table(tier)
        } else if #[cfg(target_arch = "aarch64")] {
            arch::aarch64::table(tier)
        } else {
            let _ = tier;
            &arch::scalar::TABLE
        }
    }
}
