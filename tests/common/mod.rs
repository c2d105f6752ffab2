//! Shared test harness: per-tier test instantiation and guard-page buffers.
#![allow(dead_code)]

pub mod format_vectors;
pub mod guard;
pub mod matmul_check;

use qkern::Tier;

/// Comma-separated tier names that the test runner expects this CPU to have
/// (`QKERN_EXPECT_TIERS`, set by `scripts/test-all.sh`). A per-tier test for a listed tier that the
/// CPU lacks fails instead of skipping, so a broken detector cannot make tests vanish.
pub const EXPECT_ENV: &str = "QKERN_EXPECT_TIERS";

/// `true` if tests for `tier` should run; `false` (skip) if the CPU lacks it and nobody expects it.
pub fn tier_runs(tier: Tier) -> bool {
    if tier.is_supported() {
        return true;
    }
    let expected = std::env::var(EXPECT_ENV).unwrap_or_default();
    assert!(
        !expected.split(',').any(|t| t.trim() == tier.name()),
        "tier {tier} is expected ({EXPECT_ENV}={expected}) but not detected"
    );
    eprintln!("skipping: CPU lacks tier {tier}");
    false
}

/// Instantiates `fn $body(tier: Tier)` as one `#[test]` per tier, in a module named `$name`, with
/// test names ending in `::tier_<name>` (the runner counts tests per tier by that suffix).
#[macro_export]
macro_rules! per_tier_test {
    ($name:ident, $body:path) => {
        mod $name {
            use qkern::Tier;
            fn run(tier: Tier) {
                if $crate::common::tier_runs(tier) {
                    $body(tier);
                }
            }
            #[test]
            fn tier_scalar() {
                run(Tier::Scalar)
            }
            #[cfg(target_arch = "aarch64")]
            #[test]
            fn tier_neon() {
                run(Tier::Neon)
            }
            #[cfg(target_arch = "aarch64")]
            #[test]
            fn tier_neondot() {
                run(Tier::NeonDot)
            }
            #[cfg(target_arch = "aarch64")]
            #[test]
            fn tier_neoni8mm() {
                run(Tier::NeonI8mm)
            }
            #[cfg(target_arch = "x86_64")]
            #[test]
            fn tier_avx2() {
                run(Tier::Avx2)
            }
            #[cfg(target_arch = "x86_64")]
            #[test]
            fn tier_avxvnni() {
                run(Tier::AvxVnni)
            }
            #[cfg(target_arch = "x86_64")]
            #[test]
            fn tier_avx512vnni() {
                run(Tier::Avx512Vnni)
            }
        }
    };
}

use qkern::quant::{ActBlock, BlockQ4_0};
use qkern_reference as r;

/// qkern blocks as the reference crate's own type.
pub fn to_ref_q4(b: &[BlockQ4_0]) -> Vec<r::BlockQ4_0> {
    b.iter()
        .map(|b| r::BlockQ4_0 { d: b.d, qs: b.qs })
        .collect()
}

/// qkern activation blocks as the reference crate's own type.
pub fn to_ref_act(b: &[ActBlock]) -> Vec<r::ActBlock> {
    b.iter().map(|b| r::ActBlock { d: b.d, qs: b.qs }).collect()
}

/// A small deterministic generator (xorshift64*), so failures reproduce without proptest state.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
    /// Random Q4_0 blocks with all 16 nibble values and scales spread over several octaves.
    pub fn q4_blocks(&mut self, n: usize) -> Vec<BlockQ4_0> {
        (0..n)
            .map(|_| {
                let mut qs = [0u8; 16];
                for q in &mut qs {
                    *q = self.next_u64() as u8;
                }
                let e = (self.next_u64() % 8) as i32 - 6;
                BlockQ4_0 {
                    d: half::f16::from_f32(self.f32() * 2f32.powi(e)),
                    qs,
                }
            })
            .collect()
    }
}

/// The kernels of a tier the test runs at (which the CPU has: per-tier tests skip other tiers).
pub fn kern(t: Tier) -> &'static qkern::Kernels {
    qkern::Kernels::for_tier(t).expect("the tier under test is supported")
}

/// A command running the program `exe`; under qemu-user through the emulator again (no
/// binfmt_misc in containers): `scripts/test-all.sh` sets `QKERN_RUNNER`, e.g.
/// "qemu-aarch64 -L /usr/aarch64-linux-gnu".
pub fn command(exe: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let runner = std::env::var("QKERN_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(prog) => {
            let mut c = std::process::Command::new(prog);
            c.args(words).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    }
}
