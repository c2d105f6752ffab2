//! Assembles `asm/aarch64/*.S` for aarch64 targets (ELF and Mach-O from one source).
//!
//! Each tier's files get their own `cc::Build` and `-march`, chosen by file-name suffix, so a file
//! can use its tier's instructions and no later tier's:
//! `*_neon.S` armv8-a, `*_dotprod.S` armv8.2-a+dotprod, `*_i8mm.S` armv8.6-a+i8mm.

use std::path::Path;

const TIERS: [(&str, &str); 3] = [
    ("neon", "-march=armv8-a"),
    ("dotprod", "-march=armv8.2-a+dotprod"),
    ("i8mm", "-march=armv8.6-a+i8mm"),
];

fn main() {
    println!("cargo:rerun-if-changed=asm");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("aarch64") {
        return;
    }
    let dir = Path::new("asm/aarch64");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("asm/aarch64 exists")
        .map(|e| e.expect("readable asm dir").path())
        .filter(|p| p.extension().is_some_and(|e| e == "S"))
        .collect();
    files.sort();
    for (tier, march) in TIERS {
        let suffix = format!("_{tier}.S");
        let tier_files: Vec<_> = files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(&suffix))
            .collect();
        if tier_files.is_empty() {
            continue;
        }
        let mut build = cc::Build::new();
        build.include("asm/include").flag(march);
        for f in tier_files {
            build.file(f);
        }
        build.compile(&format!("qkern_asm_{tier}"));
    }
}
