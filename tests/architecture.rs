//! The crate's layering, checked on its source (see docs/ARCHITECTURE.md):
//!
//! ```text
//! model (feature) -> kernels (public ops) -> dispatch -> arch (per ISA) -> drivers -> contract
//!                                                                         -> leaves (quant, tier, error, aligned, parallel, signpost)
//! ```
//!
//! * Every `crate::` reference of a file points to its own layer or a lower one (kernels may
//!   also use the drivers directly), and no two files reference each other.
//! * Only `src/arch/` and `src/dispatch.rs` name `crate::arch` or test `target_arch`: ops that
//!   went around the tier's table (as `KvCache::write` once called NEON helpers by `cfg`, so
//!   `QKERN_TIER=scalar` still ran NEON) fail here.
//! * The only `match` on a tier is in each architecture's `table` function.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Rank of a top-level module: a file may reference modules of its rank or lower.
fn rank(top: &str) -> Option<u32> {
    Some(match top {
        "quant" | "tier" | "error" | "aligned" | "parallel" | "signpost" => 0,
        "contract" => 1,
        "drivers" => 2,
        "arch" => 3,
        "dispatch" => 4,
        "kernels" => 5,
        "model" | "bin" => 6,
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/kernels/matmul.rs` -> ["kernels", "matmul"]; `mod.rs` names its folder.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The source without `//` comments (doc comments describe, they do not depend).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths (`["arch", "scalar", "ops"]`) named after `crate::` in `code`, including the
/// items of `use crate::{a::b, c}` groups.
fn crate_refs(code: &str) -> Vec<Vec<String>> {
    let mut refs = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if rest.starts_with('{') {
            let end = rest.find('}').unwrap_or(rest.len());
            for item in rest[1..end].split(',') {
                refs.push(path_of(item.trim()));
            }
        } else {
            refs.push(path_of(rest));
        }
    }
    refs.retain(|r| !r.is_empty());
    refs
}

fn path_of(s: &str) -> Vec<String> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut parts = Vec::new();
    let mut s = s;
    loop {
        let n = s.find(|c: char| !ident(c)).unwrap_or(s.len());
        if n == 0 {
            break;
        }
        parts.push(s[..n].to_string());
        match s[n..].strip_prefix("::") {
            Some(r) => s = r,
            None => break,
        }
    }
    parts
}

struct File {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

fn files() -> (PathBuf, Vec<File>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files = paths
        .into_iter()
        .map(|p| File {
            module: module_path(&src, &p),
            code: code(&fs::read_to_string(&p).unwrap()),
            path: p,
        })
        .collect();
    (src, files)
}

#[test]
fn layers_point_down_and_files_import_no_cycle() {
    let (_, files) = files();
    // The module (file) each reference resolves to: the longest prefix that is a file's module.
    let by_module: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let mut edges = Vec::new();
    let mut bad = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(own) = f.module.first().and_then(|t| rank(t)) else {
            continue; // lib.rs re-exports; main.rs-style roots
        };
        for r in crate_refs(&f.code) {
            let Some(their) = rank(&r[0]) else { continue };
            let kernels_to_drivers = f.module[0] == "kernels" && r[0] == "drivers";
            let against = their > own || (their == own && r[0] != f.module[0] && own != 0);
            if against && !kernels_to_drivers {
                bad.push(format!("{} -> crate::{}", f.path.display(), r.join("::")));
            }
            let target = (1..=r.len())
                .rev()
                .find_map(|n| by_module.get(&r[..n]).copied());
            if let Some(j) = target.filter(|&j| j != i) {
                edges.push((i, j));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "references against the layering:\n{}",
        bad.join("\n")
    );
    let cycles: Vec<String> = edges
        .iter()
        .filter(|(a, b)| edges.contains(&(*b, *a)) && a < b)
        .map(|&(a, b)| {
            format!(
                "{} <-> {}",
                files[a].path.display(),
                files[b].path.display()
            )
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "files that import each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn only_arch_and_dispatch_choose_code_by_architecture() {
    let (src, files) = files();
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.path.strip_prefix(&src).unwrap();
        let allowed = rel.starts_with("arch") || rel == Path::new("dispatch.rs");
        // tier.rs detects CPU features per architecture; it runs no kernel.
        let detects = rel == Path::new("tier.rs");
        if !allowed && crate_refs(&f.code).iter().any(|r| r[0] == "arch") {
            bad.push(format!("{}: names crate::arch", rel.display()));
        }
        if !allowed && !detects && f.code.contains("target_arch") {
            bad.push(format!("{}: tests target_arch", rel.display()));
        }
        let table = rel.starts_with("arch") && rel.ends_with("mod.rs");
        if !table && f.code.contains("match tier") {
            bad.push(format!("{}: matches on a tier", rel.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checks above can fail: a reference against the layering is found.
#[test]
fn the_checks_see_references() {
    let refs = crate_refs(
        "use crate::arch::aarch64::ops::{a, b};\nlet x = crate::{quant::QK, tier::Tier};",
    );
    assert_eq!(refs[0], ["arch", "aarch64", "ops", ""][..3]);
    assert_eq!(refs[1], ["quant", "QK"]);
    assert_eq!(refs[2], ["tier", "Tier"]);
    assert_eq!(code("let a = 1; // crate::arch"), "let a = 1; ");
}
