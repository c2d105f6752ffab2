//! CPU tiers: which instruction-set level a kernel runs at, detected once per process.
//!
//! Tiers of one architecture form a chain from slowest to fastest; every kernel exists for every
//! tier of the build target (a tier without its own kernel for some op runs the next lower tier's
//! code for it, see each op module). The chosen tier is the highest the CPU supports, lowered by the
//! environment variable [`TIER_ENV`] if set: `QKERN_TIER=neon` runs a whole process at the `Neon` tier.
//! The variable can only lower the tier; naming a tier the CPU lacks, or an unknown name, leaves the
//! detected tier in place.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Environment variable that lowers the process-wide tier (e.g. `QKERN_TIER=scalar`).
pub const TIER_ENV: &str = "QKERN_TIER";

/// An instruction-set level that kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Portable Rust, any target.
    Scalar,
    /// aarch64 ARMv8.0 Advanced SIMD.
    Neon,
    /// aarch64 with FEAT_DotProd (SDOT).
    NeonDot,
    /// aarch64 with FEAT_DotProd and FEAT_I8MM (SMMLA).
    NeonI8mm,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
    /// x86_64 with AVX2 and AVX-VNNI (vpdpbusd on ymm).
    AvxVnni,
    /// x86_64 with AVX-512 F/BW/VL and AVX-512 VNNI (vpdpbusd on zmm).
    Avx512Vnni,
}

impl Tier {
    /// Every tier, in declaration order.
    pub const ALL: [Tier; 7] = [
        Tier::Scalar,
        Tier::Neon,
        Tier::NeonDot,
        Tier::NeonI8mm,
        Tier::Avx2,
        Tier::AvxVnni,
        Tier::Avx512Vnni,
    ];

    /// The tiers of the build target's architecture, lowest first (always starts with `Scalar`).
    pub fn chain() -> &'static [Tier] {
        cfg_if::cfg_if! {
            if #[cfg(target_arch = "aarch64")] {
                &[Tier::Scalar, Tier::Neon, Tier::NeonDot, Tier::NeonI8mm]
            } else if #[cfg(target_arch = "x86_64")] {
                &[Tier::Scalar, Tier::Avx2, Tier::AvxVnni, Tier::Avx512Vnni]
            } else {
                &[Tier::Scalar]
            }
        }
    }

    /// Lower-case name, as accepted by [`TIER_ENV`] and `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Neon => "neon",
            Tier::NeonDot => "neondot",
            Tier::NeonI8mm => "neoni8mm",
            Tier::Avx2 => "avx2",
            Tier::AvxVnni => "avxvnni",
            Tier::Avx512Vnni => "avx512vnni",
        }
    }

    /// Whether this build can run code of this tier on this CPU (detected at run time, cached by
    /// std).
    pub fn is_supported(self) -> bool {
        match self {
            Tier::Scalar => true,
            #[cfg(target_arch = "aarch64")]
            Tier::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Tier::NeonDot => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(target_arch = "aarch64")]
            Tier::NeonI8mm => {
                std::arch::is_aarch64_feature_detected!("dotprod")
                    && std::arch::is_aarch64_feature_detected!("i8mm")
            }
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Tier::AvxVnni => Tier::Avx2.is_supported() && is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Vnni => {
                Tier::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The highest tier this CPU supports, ignoring [`TIER_ENV`].
    pub fn detect() -> Tier {
        Tier::chain()
            .iter()
            .copied()
            .filter(|t| t.is_supported())
            .max()
            .unwrap_or(Tier::Scalar)
    }

    /// The process-wide tier: [`Tier::detect`], lowered by [`TIER_ENV`]. Computed once.
    pub fn active() -> Tier {
        static ACTIVE: OnceLock<Tier> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let detected = Tier::detect();
            std::env::var(TIER_ENV)
                .ok()
                .and_then(|s| s.parse::<Tier>().ok())
                .filter(|t| t.is_supported() && *t <= detected)
                .unwrap_or(detected)
        })
    }

    /// Whether the opt-out switch `var` leaves its path on: unset, or anything but `0` (the
    /// comparison switches of the attention paths, e.g. `QKERN_ATTN_BF16=0`). Callers read it once
    /// per process.
    pub(crate) fn switch_on(var: &str) -> bool {
        std::env::var(var).map_or(true, |v| v.trim() != "0")
    }

    /// `Ok(self)` if the CPU supports this tier, else [`Error::TierUnavailable`].
    pub fn check(self) -> Result<Tier> {
        if self.is_supported() {
            Ok(self)
        } else {
            Err(Error::TierUnavailable(self))
        }
    }

    /// The tiers of this architecture that the CPU supports, lowest first.
    pub fn available() -> Vec<Tier> {
        Tier::chain()
            .iter()
            .copied()
            .filter(|t| t.is_supported())
            .collect()
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tier {
    type Err = Error;
    fn from_str(s: &str) -> Result<Tier> {
        let lower = s.trim().to_ascii_lowercase();
        Tier::ALL
            .iter()
            .copied()
            .find(|t| t.name() == lower)
            .ok_or_else(|| Error::UnknownTier(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(t.name().parse::<Tier>().unwrap(), t);
        }
        assert!("sse9".parse::<Tier>().is_err());
    }

    #[test]
    fn active_is_supported_and_at_most_detected() {
        let a = Tier::active();
        assert!(a.is_supported());
        assert!(a <= Tier::detect());
        assert!(Tier::chain().contains(&a));
    }
}
