//! Pre-packed model files (`qkern pack`, docs/PREPACKED.md): a packed file runs in place and gives
//! the logits of the model it was packed from, bit for bit; a file for another tier, another
//! container or layout version, a truncated or altered file is an error, never a crash.

use flate2::read::GzDecoder;
use qkern::model::{
    pack_model, prepacked_checksum, LoadOptions, Model, SessionOptions, Tokenizer,
    CONTAINER_VERSION, PREPACKED_MAGIC, TENSOR_ALIGN,
};
use qkern::{Error, Tier};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/models")
        .join(name)
}

/// A fresh temporary path for this test process.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qkern-prepacked-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn logits(m: &Model) -> Vec<f32> {
    let vocab = m.config().vocab as u32;
    let mut s = m.session(SessionOptions::default()).unwrap();
    let prompt: Vec<u32> = (0..7).map(|i| (i * 41 + 3) % vocab).collect();
    let mut out = s.prefill(&prompt).unwrap();
    for t in [0, vocab - 1, 11] {
        out.extend(s.decode(t).unwrap());
    }
    out
}

/// Packs `src` for `tier` into a temporary file; returns its path and bytes.
fn packed(src: &Path, tier: Tier, name: &str) -> (PathBuf, Vec<u8>) {
    let out = tmp(name);
    pack_model(src, &out, &LoadOptions::default(), tier).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    (out, bytes)
}

#[test]
fn packed_files_run_in_place_and_match_their_source() {
    let tier = Tier::active();
    let mut sources = Vec::new();
    for name in [
        "qwen2_tied",
        "qwen2_untied",
        "qwen3",
        "qwen2_gqa_hd128",
        "qwen2_h384",
    ] {
        if dir(name).join("config.json").is_file() {
            sources.push(dir(name));
        }
        for e in std::fs::read_dir(dir(name)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "gguf") {
                sources.push(p);
            }
        }
    }
    sources.sort();
    for (i, src) in sources.iter().enumerate() {
        let (path, bytes) = packed(src, tier, &format!("m{i}.qkern"));
        assert_eq!(&bytes[..8], PREPACKED_MAGIC);
        let want = Model::load(src, &LoadOptions::default(), tier, 2).unwrap();
        let got = Model::load(&path, &LoadOptions::default(), tier, 2).unwrap();
        assert!(got.weights_in_place(), "{}", src.display());
        assert!(!want.weights_in_place());
        assert_eq!(got.linear_types(), want.linear_types());
        assert_eq!(got.head_type(), want.head_type());
        assert_eq!(got.embedding_type(), want.embedding_type());
        assert_eq!(logits(&got), logits(&want), "{}", src.display());
        let from_bytes = Model::from_prepacked_bytes(&bytes, tier, 1).unwrap();
        assert_eq!(logits(&from_bytes), logits(&want), "{}", src.display());
        // Every tensor starts at an aligned offset.
        let (h, data_start) = header(&bytes);
        for t in h["tensors"].as_array().unwrap() {
            let off = data_start + t["offset"].as_u64().unwrap() as usize;
            assert_eq!(off % TENSOR_ALIGN, 0);
        }
        // The old API says what to do with such a file.
        match qkern::model::load(&path) {
            Err(Error::Format(s)) => assert!(s.contains("Model::load"), "{s}"),
            r => panic!("{:?}", r.map(|_| ())),
        }
        std::fs::remove_file(&path).unwrap();
    }
    assert!(sources.len() >= 10, "{} sources", sources.len());
}

#[test]
fn every_tier_round_trips() {
    for src in [
        dir("qwen2_tied").join("model-q4_0.gguf"),
        dir("qwen2_gqa_hd128").join("model-q4_k_m.gguf"),
        dir("qwen2_untied"),
    ] {
        for tier in Tier::available() {
            let (path, _) = packed(&src, tier, &format!("t-{tier}.qkern"));
            let want = Model::load(&src, &LoadOptions::default(), tier, 1).unwrap();
            let got = Model::load(&path, &LoadOptions::default(), tier, 1).unwrap();
            assert_eq!(got.tier(), tier);
            assert!(got.weights_in_place());
            assert_eq!(logits(&got), logits(&want), "{tier} {}", src.display());
        }
    }
}

#[test]
fn packed_file_carries_the_tokenizer() {
    // A folder: the tied test model with Qwen2.5's tokenizer.
    let d = tmp("with-tokenizer");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(dir("qwen2_tied").join(f), d.join(f)).unwrap();
    }
    let tok_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer");
    let mut json = Vec::new();
    GzDecoder::new(std::fs::File::open(tok_dir.join("qwen2_5_tokenizer.json.gz")).unwrap())
        .read_to_end(&mut json)
        .unwrap();
    std::fs::write(d.join("tokenizer.json"), &json).unwrap();
    std::fs::copy(
        tok_dir.join("qwen2_5_tokenizer_config.json"),
        d.join("tokenizer_config.json"),
    )
    .unwrap();
    let out = tmp("tok.qkern");
    assert!(pack_model(&d, &out, &LoadOptions::default(), Tier::active()).unwrap());
    let want = Tokenizer::load(&d).unwrap();
    let got = Tokenizer::load(&out).unwrap();
    let text = "Hello, <|im_start|>wörld 123\n";
    assert_eq!(got.encode(text), want.encode(text));
    assert_eq!(got.vocab_size(), want.vocab_size());
    // A file without one says so.
    let (bare, _) = packed(
        &dir("qwen2_tied").join("model-q4_0.gguf"),
        Tier::active(),
        "b.qkern",
    );
    assert!(matches!(Tokenizer::load(&bare), Err(Error::Tokenizer(_))));
}

/// The header JSON and the data start of a packed file.
fn header(b: &[u8]) -> (Value, usize) {
    let len = u64::from_le_bytes(b[16..24].try_into().unwrap()) as usize;
    let data_start = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&b[64..64 + len]).unwrap(),
        data_start,
    )
}

/// The file with its header JSON changed by `f` and the checksum made right again (the data
/// section stays where it is).
fn rewrite(b: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let (mut h, data_start) = header(b);
    f(&mut h);
    let json = serde_json::to_vec(&h).unwrap();
    assert!(64 + json.len() <= data_start, "the new header must fit");
    let mut out = b.to_vec();
    out[16..24].copy_from_slice(&(json.len() as u64).to_le_bytes());
    out[64..data_start].fill(0);
    out[64..64 + json.len()].copy_from_slice(&json);
    let sum = prepacked_checksum(&[&out[..32], &json]);
    out[32..40].copy_from_slice(&sum.to_le_bytes());
    out
}

#[track_caller]
fn assert_format(r: qkern::Result<Model>, want: &str) {
    match r {
        Err(Error::Format(s)) => assert!(s.contains(want), "message {s:?} lacks {want:?}"),
        Err(e) => panic!("expected a format error with {want:?}, got {e:?}"),
        Ok(_) => panic!("expected a format error with {want:?}, got a model"),
    }
}

/// 64-bit FNV-1a, as docs/PREPACKED.md defines the checksum (independent of the crate's).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

#[test]
fn bad_files_are_errors() {
    let src = dir("qwen2_untied").join("model-q4_0.gguf");
    let (_, file) = packed(&src, Tier::Scalar, "scalar.qkern");
    let load = |b: &[u8]| Model::from_prepacked_bytes(b, Tier::Scalar, 1);
    load(&file).unwrap();
    // The checksum is FNV-1a 64 over the first 32 bytes and the header JSON.
    let len = u64::from_le_bytes(file[16..24].try_into().unwrap()) as usize;
    assert_eq!(
        fnv(&[&file[..32], &file[64..64 + len]]),
        u64::from_le_bytes(file[32..40].try_into().unwrap())
    );
    assert_eq!(
        u32::from_le_bytes(file[8..12].try_into().unwrap()),
        CONTAINER_VERSION
    );

    // Another tier than the file's: named, whether or not the CPU has it.
    if Tier::active() != Tier::Scalar {
        assert_format(
            Model::from_prepacked_bytes(&file, Tier::active(), 1),
            "packed for tier scalar",
        );
    }
    let other = rewrite(&file, |h| h["tier"] = "neoni8mm".into());
    let r = Model::from_prepacked_bytes(&other, Tier::Scalar, 1);
    assert!(matches!(r, Err(Error::Format(_))), "{:?}", r.map(|_| ()));
    let other = rewrite(&file, |h| h["tier"] = "pentium".into());
    assert!(matches!(load(&other), Err(Error::UnknownTier(_))));

    // Another container version.
    let mut v = file.clone();
    v[8] = 2;
    assert_format(load(&v), "container version 2");
    let mut v = file.clone();
    v[0] = b'G';
    assert_format(load(&v), "bad magic");

    // Any change to the header or table without fixing the checksum.
    for at in [20, 24, 40, 64, 100, 64 + len / 2, 64 + len - 1] {
        let mut v = file.clone();
        v[at] ^= 0x20;
        assert!(matches!(load(&v), Err(Error::Format(_))), "byte {at}");
    }
    let mut v = file.clone();
    v[64 + len / 2] ^= 1;
    assert_format(load(&v), "checksum");

    // Consistent checksums, inconsistent contents.
    assert_format(
        load(&rewrite(&file, |h| {
            h["formats"]["q4_0"]["layout"] = 99.into()
        })),
        "layout version",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            h["formats"]["q4_0"]["kernel"] = "scalar-v0".into()
        })),
        "kernel",
    );
    assert_format(
        load(&rewrite(&file, |h| h["formats"] = serde_json::json!({}))),
        "not among the file's formats",
    );
    let first_packed = |h: &Value| {
        h["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .position(|t| t["kind"] == "packed")
            .unwrap()
    };
    assert_format(
        load(&rewrite(&file, |h| {
            let i = first_packed(h);
            let l = h["tensors"][i]["len"].as_u64().unwrap();
            h["tensors"][i]["len"] = (l - 64).into();
        })),
        "packed bytes",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            let i = first_packed(h);
            h["tensors"][i]["rows"] = 1_000_000_000_000u64.into();
        })),
        "cannot hold",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            let i = first_packed(h);
            h["tensors"][i]["offset"] = 64.into();
        })),
        "not a multiple",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            let i = first_packed(h);
            h["tensors"][i]["offset"] = u64::MAX.into();
        })),
        "overflow",
    );
    assert_format(
        load(&rewrite(&file, |h| h["config"]["n_layers"] = 3.into())),
        "layers",
    );
    assert_format(
        load(&rewrite(&file, |h| h["config"]["hidden"] = 32.into())),
        "",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            h["config"]["tied_embeddings"] = true.into()
        })),
        "embedding",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            h["layers"][0]["wqkv"]["cols"][0] = 1.into()
        })),
        "wqkv",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            h["layers"][0]["wo"]["mats"][0] = 9999.into()
        })),
        "not in the table",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            h["layers"][0]["wo"]["mats"][0] = h["layers"][0]["attn_norm"].clone()
        })),
        "expected packed",
    );
    assert_format(
        load(&rewrite(&file, |h| {
            h["layers"][0]["q_norm"] = h["layers"][0]["attn_norm"].clone()
        })),
        "q_norm",
    );
    // An altered norm (its own checksum).
    let (h, data_start) = header(&file);
    let i = h["layers"][0]["attn_norm"].as_u64().unwrap() as usize;
    let at = data_start + h["tensors"][i]["offset"].as_u64().unwrap() as usize;
    let mut v = file.clone();
    v[at] ^= 1;
    assert_format(load(&v), "checksum of its bytes");

    // Truncated anywhere: an error, never a panic.
    let lens = (0..200)
        .chain((200..file.len()).step_by(997))
        .chain([file.len() - 1]);
    for n in lens {
        assert!(
            matches!(load(&file[..n]), Err(Error::Format(_))),
            "length {n}"
        );
    }
}
