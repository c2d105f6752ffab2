//! `Model::load`: a model packed straight from its file mapping is the model `Model::new` makes
//! from the loaded weights, bit for bit, for GGUF files and Hugging Face folders; a bad file is an
//! error, never a crash.

use qkern::model::{load_with, LoadOptions, Model, QuantType, SessionOptions};
use qkern::{Error, Tier};
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/models")
        .join(name)
}

/// Every model file of the generated test models: each folder and each GGUF in it.
fn sources() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for name in [
        "qwen2_tied",
        "qwen2_untied",
        "qwen3",
        "qwen2_gqa_hd128",
        "qwen2_h384",
    ] {
        if dir(name).join("config.json").is_file() {
            out.push(dir(name));
        }
        let mut ggufs: Vec<PathBuf> = std::fs::read_dir(dir(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .collect();
        ggufs.sort();
        out.extend(ggufs);
    }
    out
}

/// Logits of a prompt's last position and of three decode steps.
fn logits(m: &Model) -> Vec<f32> {
    let vocab = m.config().vocab as u32;
    let mut s = m.session(SessionOptions::default()).unwrap();
    let prompt: Vec<u32> = (0..9).map(|i| (i * 37 + 5) % vocab).collect();
    let mut out = s.prefill(&prompt).unwrap();
    for t in [1, vocab - 1, 17 % vocab] {
        out.extend(s.decode(t).unwrap());
    }
    out
}

#[test]
fn streamed_models_equal_packed_weights() {
    let tier = Tier::active();
    let mut n = 0;
    for path in sources() {
        for quant in [QuantType::Q4_0, QuantType::Q8_0] {
            let options = LoadOptions { quant };
            let want = Model::new(load_with(&path, &options).unwrap(), tier, 2).unwrap();
            let got = Model::load(&path, &options, tier, 2).unwrap();
            let what = format!("{} ({quant})", path.display());
            assert_eq!(got.linear_types(), want.linear_types(), "{what}");
            assert_eq!(got.head_type(), want.head_type(), "{what}");
            assert_eq!(got.embedding_type(), want.embedding_type(), "{what}");
            assert_eq!(logits(&got), logits(&want), "{what}");
            if got.config().tied_embeddings {
                assert_eq!(got.weight_bytes(), want.weight_bytes(), "{what}");
                assert_eq!(got.mapped_bytes(), 0, "{what}");
            } else {
                // The untied embedding stays in the file mapping.
                assert!(got.mapped_bytes() > 0, "{what}");
                assert!(got.weight_bytes() < want.weight_bytes(), "{what}");
            }
            n += 1;
        }
    }
    assert!(n >= 20, "{n} models");
}

#[test]
fn streamed_load_of_a_bad_file_is_an_error() {
    let file = std::fs::read(dir("qwen2_untied").join("model-q4_0.gguf")).unwrap();
    let tmp = std::env::temp_dir().join(format!("qkern-stream-{}.gguf", std::process::id()));
    let tier = Tier::active();
    let lens = (0..4096)
        .step_by(97)
        .chain((4096..file.len()).step_by(file.len() / 16))
        .chain([file.len() - 1]);
    for len in lens {
        std::fs::write(&tmp, &file[..len]).unwrap();
        match Model::load(&tmp, &LoadOptions::default(), tier, 1) {
            Err(Error::Format(_)) => {}
            r => panic!("length {len}: {:?}", r.map(|_| ())),
        }
    }
    // A type without a quantizer for float weights.
    let options = LoadOptions {
        quant: QuantType::Q4K,
    };
    assert!(matches!(
        Model::load(&dir("qwen2_tied"), &options, tier, 1),
        Err(Error::UnsupportedType { .. })
    ));
    std::fs::remove_file(&tmp).unwrap();
    assert!(matches!(
        Model::load(&tmp, &LoadOptions::default(), tier, 1),
        Err(Error::Io(_))
    ));
}
