//! Replays the fuzz targets' seeds (`fuzz/seeds/TARGET/`) and minimized crash inputs
//! (`tests/data/fuzz/TARGET/`) through the same entry points as `fuzz/fuzz_targets/`, so the normal
//! test suite keeps them fixed: each parser input gives a model that validates, or an error, never
//! a panic (a pre-packed file that loads runs); each `kernels_diff` input passes the differential check of every host tier.

use qkern::model::{load_gguf_bytes, load_safetensors_bytes};
use std::path::Path;

// The fuzz target's check itself, so the replay cannot drift from it.
#[path = "../fuzz/fuzz_targets/kernels_diff_check.rs"]
mod kernels_diff_check;

/// Every file of `fuzz/seeds/target` and `tests/data/fuzz/target`.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("fuzz/seeds").join(target),
        root.join("tests/data/fuzz").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn gguf_parse() {
    let inputs = inputs("gguf_parse");
    assert!(!inputs.is_empty(), "the GGUF seed is missing");
    for (name, data) in inputs {
        if let Ok(w) = load_gguf_bytes(&data) {
            w.validate()
                .unwrap_or_else(|e| panic!("{name}: loads but does not validate: {e}"));
        }
        if let Ok(t) = qkern::model::Tokenizer::from_gguf_bytes(&data) {
            let ids = t.encode("Hello, <|im_start|>wörld 123\n");
            let _ = t.decode(&ids);
        }
    }
}

#[test]
fn prepacked_parse() {
    let inputs = inputs("prepacked_parse");
    assert!(!inputs.is_empty(), "the pre-packed seed is missing");
    for (name, data) in inputs {
        for fix in [false, true] {
            let mut v = data.clone();
            if fix && v.len() >= 64 {
                let len = u64::from_le_bytes(v[16..24].try_into().unwrap());
                match usize::try_from(len).ok().and_then(|l| l.checked_add(64)) {
                    Some(end) if end <= v.len() => {
                        let sum = qkern::model::prepacked_checksum(&[&v[..32], &v[64..end]]);
                        v[32..40].copy_from_slice(&sum.to_le_bytes());
                    }
                    _ => {}
                }
            }
            if let Ok(m) = qkern::model::Model::from_prepacked_bytes(&v, qkern::Tier::Scalar, 1) {
                let mut s = m.session(Default::default()).unwrap();
                s.prefill(&[0, 1])
                    .unwrap_or_else(|e| panic!("{name}: loads but does not run: {e}"));
            }
        }
    }
}

#[test]
fn safetensors_parse() {
    const SEP: &[u8] = b"\n--\n";
    let inputs = inputs("safetensors_parse");
    assert!(!inputs.is_empty(), "the safetensors seed is missing");
    for (name, data) in inputs {
        let (config, tensors) = match data.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => (&data[..i], &data[i + SEP.len()..]),
            None => (&data[..], &data[..]),
        };
        if let Ok(w) = load_safetensors_bytes(config, &[tensors]) {
            w.validate()
                .unwrap_or_else(|e| panic!("{name}: loads but does not validate: {e}"));
        }
    }
}

#[test]
fn kernels_diff() {
    let inputs = inputs("kernels_diff");
    assert!(!inputs.is_empty(), "the kernels_diff seeds are missing");
    for (name, data) in inputs {
        let r = std::panic::catch_unwind(|| kernels_diff_check::check(&data));
        assert!(r.is_ok(), "{name}: the differential check failed");
    }
}
