//! The dispatcher picks the right tier on each CPU, and the environment override only lowers it.
//!
//! The test runner (`scripts/test-all.sh`) sets `QKERN_EXPECT_TIER` to the tier each CPU must get
//! (`cortex-a72` -> neon, `neoverse-n1` -> neondot, `max` -> neoni8mm, this host -> avx512vnni).

mod common;

use qkern::{Tier, TIER_ENV};

const CHILD: &str = "QKERN_DISPATCH_CHILD";

#[test]
fn detected_tier_is_the_expected_one() {
    let detected = Tier::detect();
    eprintln!(
        "detected tier: {detected}; available: {:?}",
        Tier::available()
    );
    assert!(detected.is_supported());
    assert_eq!(Tier::available().last(), Some(&detected));
    match std::env::var("QKERN_EXPECT_TIER") {
        Ok(want) => assert_eq!(
            detected,
            want.parse::<Tier>().unwrap(),
            "wrong tier for this CPU"
        ),
        Err(_) => eprintln!("QKERN_EXPECT_TIER not set: only consistency checked"),
    }
}

#[test]
fn tiers_of_other_architectures_are_unsupported() {
    for t in Tier::ALL {
        if !Tier::chain().contains(&t) {
            assert!(!t.is_supported(), "{t}");
            assert!(t.check().is_err());
        }
    }
    assert!(Tier::Scalar.is_supported());
}

/// Not a test of its own: run by `env_override_only_lowers` in a child process, it prints the
/// process-wide tier (which is computed once per process, so each setting needs a fresh process).
#[test]
fn child_reports_active_tier() {
    if std::env::var(CHILD).is_ok() {
        println!("ACTIVE={}", Tier::active());
    }
}

fn active_with(value: &str) -> Tier {
    let exe = std::env::current_exe().unwrap();
    // Under qemu-user the child runs through the emulator again (`common::command`).
    let mut cmd = common::command(&exe);
    let out = cmd
        .args([
            "--exact",
            "child_reports_active_tier",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(TIER_ENV, value)
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split("ACTIVE=").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "child printed no tier (under qemu set QKERN_RUNNER): {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.trim().parse().unwrap()
}

#[test]
fn env_override_only_lowers() {
    let best = Tier::detect();
    for &t in Tier::available().iter() {
        assert_eq!(active_with(t.name()), t, "{TIER_ENV}={t} must select it");
    }
    // Unknown names and tiers the CPU lacks leave the detected tier.
    assert_eq!(active_with("no-such-tier"), best);
    for t in Tier::ALL.into_iter().filter(|t| !t.is_supported()) {
        assert_eq!(
            active_with(t.name()),
            best,
            "{TIER_ENV}={t} must be ignored"
        );
    }
}
