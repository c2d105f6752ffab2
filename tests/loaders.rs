//! Loader tests: every generated model (tests/data/models, made by scripts/gen_golden.py) in both
//! formats, GGUF vs safetensors agreement, Q6_K tensors kept as they are and dequantized like the
//! gguf package's numpy reference, and malformed files, each with its specific error.

use qkern::model::{
    load, load_gguf, load_gguf_bytes, load_gguf_bytes_with, load_safetensors_bytes,
    load_safetensors_bytes_with, load_safetensors_dir, load_with, Arch, Config, LoadOptions,
    ModelWeights, QuantTensor, QuantType,
};
use qkern::model::{Model, SessionOptions};
use qkern::quant::{quantize_q4_0, quantize_q8_0, BlockQ4_0, BlockQ6K, BlockQ8_0};
use qkern::{Error, Tier};
use std::path::{Path, PathBuf};

const MODELS: [&str; 4] = ["qwen2_tied", "qwen2_untied", "qwen2_gqa_hd128", "qwen3"];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/models")
        .join(name)
}

fn golden(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir(name).join("golden.json")).unwrap()).unwrap()
}

/// The config golden.json states (written by the script from the values it generated with).
fn golden_config(name: &str) -> Config {
    let g = golden(name);
    let c = &g["config"];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    Config {
        arch: match g["arch"].as_str().unwrap() {
            "qwen2" => Arch::Qwen2,
            _ => Arch::Qwen3,
        },
        n_layers: u("n_layers"),
        hidden: u("hidden"),
        n_head: u("n_head"),
        n_kv_head: u("n_kv_head"),
        head_dim: u("head_dim"),
        ffn: u("ffn"),
        vocab: u("vocab"),
        rope_theta: c["rope_theta"].as_f64().unwrap(),
        rms_eps: c["rms_eps"].as_f64().unwrap() as f32,
        max_positions: u("max_positions"),
        tied_embeddings: c["tied_embeddings"].as_bool().unwrap(),
    }
}

/// Every tensor of `a` and `b` equal (Q4_0/Q8_0 bytes and f32 values).
fn assert_same(a: &ModelWeights, b: &ModelWeights, what: &str) {
    assert_eq!(a.config, b.config, "{what}: config");
    assert!(a.token_embd == b.token_embd, "{what}: token_embd");
    assert!(a.output == b.output, "{what}: output");
    assert_eq!(a.output_norm, b.output_norm, "{what}: output_norm");
    assert_eq!(a.layers.len(), b.layers.len());
    for (i, (x, y)) in a.layers.iter().zip(&b.layers).enumerate() {
        let w = |t: &str| format!("{what}: layer {i} {t}");
        assert_eq!(x.attn_norm, y.attn_norm, "{}", w("attn_norm"));
        assert!(x.wq == y.wq, "{}", w("wq"));
        assert!(x.wk == y.wk, "{}", w("wk"));
        assert!(x.wv == y.wv, "{}", w("wv"));
        assert!(x.wo == y.wo, "{}", w("wo"));
        assert_eq!(x.bq, y.bq, "{}", w("bq"));
        assert_eq!(x.bk, y.bk, "{}", w("bk"));
        assert_eq!(x.bv, y.bv, "{}", w("bv"));
        assert_eq!(x.q_norm, y.q_norm, "{}", w("q_norm"));
        assert_eq!(x.k_norm, y.k_norm, "{}", w("k_norm"));
        assert_eq!(x.ffn_norm, y.ffn_norm, "{}", w("ffn_norm"));
        assert!(x.w_gate == y.w_gate, "{}", w("w_gate"));
        assert!(x.w_up == y.w_up, "{}", w("w_up"));
        assert!(x.w_down == y.w_down, "{}", w("w_down"));
    }
}

#[test]
fn generated_models_load_in_both_formats_and_agree() {
    for name in MODELS {
        let want = golden_config(name);
        let g = load_gguf(&dir(name).join("model-q4_0.gguf")).unwrap();
        let s = load_safetensors_dir(&dir(name)).unwrap();
        assert_eq!(g.config, want, "{name}: GGUF config");
        assert_eq!(s.config, want, "{name}: safetensors config");
        g.validate().unwrap();
        s.validate().unwrap();
        // Tied models have no output head; untied ones have their own.
        assert_eq!(g.output.is_none(), want.tied_embeddings, "{name}");
        assert_eq!(s.output.is_none(), want.tied_embeddings, "{name}");
        // Qwen2: q/k/v biases, no q/k norms; Qwen3 the other way round.
        let l = &g.layers[0];
        let qwen2 = want.arch == Arch::Qwen2;
        assert_eq!(
            l.bq.is_some() && l.bk.is_some() && l.bv.is_some(),
            qwen2,
            "{name}"
        );
        assert_eq!(l.q_norm.is_some() && l.k_norm.is_some(), !qwen2, "{name}");
        // The GGUF file was quantized by the gguf package (ggml's reference rule) from the same
        // weights the folder holds; the safetensors loader quantizes them itself: every byte
        // must agree, f32 tensors too.
        assert_same(&g, &s, name);
        // `load` picks the format by path.
        assert_same(&load(&dir(name)).unwrap(), &s, name);
        assert_same(&load(&dir(name).join("config.json")).unwrap(), &s, name);
        assert_same(&load(&dir(name).join("model-q4_0.gguf")).unwrap(), &g, name);
    }
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn q6_k_tensors_keep_their_type_and_dequantize_like_the_reference() {
    let d = dir("qwen2_gqa_hd128");
    let w = load_gguf(&d.join("model-q6k.gguf")).unwrap();
    let base = load_gguf(&d.join("model-q4_0.gguf")).unwrap();
    for (file, got) in [
        ("q6k_token_embd.f32", &w.token_embd),
        ("q6k_output.f32", w.output.as_ref().unwrap()),
    ] {
        // Kept in Q6_K (the kernels run it), every super-block as in the file.
        let blocks = got.blocks::<BlockQ6K>().expect("Q6_K stays Q6_K");
        assert_eq!(got.quant_type(), QuantType::Q6K);
        // The reference: the gguf package's numpy dequantization of the same Q6_K bytes; ours
        // does the same f32 operations (d * scale * q), so bit for bit.
        let reference = read_f32(&d.join(file));
        assert_eq!(reference.len(), blocks.len() * 256);
        let back = got.dequantize().unwrap();
        assert!(
            back.iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{file}: dequantized values differ from the reference"
        );
        // Row by row (the embedding path) too.
        let mut row = vec![0f32; 256];
        for r in [0, 17, 255] {
            got.dequantize_row(256, r, &mut row).unwrap();
            assert_eq!(row, reference[r * 256..(r + 1) * 256], "{file} row {r}");
        }
    }
    // Everything else is as in the Q4_0 file.
    assert!(w
        .layers
        .iter()
        .zip(&base.layers)
        .all(|(a, b)| a.wq == b.wq && a.w_down == b.w_down));
}

// ---------------------------------------------------------------------------------------------
// Malformed GGUF files, built by a small writer here.

/// GGUF metadata value types.
const T_U32: u32 = 4;
const T_F32: u32 = 6;
const T_STR: u32 = 8;
const T_ARR: u32 = 9;

fn gstr(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

#[derive(Clone)]
struct Tensor {
    name: Vec<u8>,
    ne: Vec<u64>,
    ty: u32,
    /// Offset relative to the data section; `None`: placed after the previous tensor, aligned.
    offset: Option<u64>,
    data: Vec<u8>,
}

#[derive(Clone)]
struct Gguf {
    magic: [u8; 4],
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    kv: Vec<(Vec<u8>, u32, Vec<u8>)>,
    tensors: Vec<Tensor>,
    alignment: usize,
}

/// Byte offsets of the section boundaries of a built file.
#[derive(Debug)]
struct Sections {
    kv_start: usize,
    infos_start: usize,
    infos_end: usize,
    data_start: usize,
}

const H: usize = 64; // hidden
const NH: usize = 4;
const NKV: usize = 2;
const HD: usize = 16;
const FF: usize = 96;
const V: usize = 64;

fn f32_bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            (((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
                .to_le_bytes()
        })
        .collect()
}

impl Gguf {
    /// A valid one-layer qwen2 model with every tensor in F32.
    fn valid() -> Gguf {
        let u32v = |v: u32| v.to_le_bytes().to_vec();
        let mut kv = vec![
            (b"general.architecture".to_vec(), T_STR, gstr(b"qwen2")),
            (b"qwen2.block_count".to_vec(), T_U32, u32v(1)),
            (b"qwen2.context_length".to_vec(), T_U32, u32v(128)),
            (b"qwen2.embedding_length".to_vec(), T_U32, u32v(H as u32)),
            (
                b"qwen2.feed_forward_length".to_vec(),
                T_U32,
                u32v(FF as u32),
            ),
            (
                b"qwen2.attention.head_count".to_vec(),
                T_U32,
                u32v(NH as u32),
            ),
            (
                b"qwen2.attention.head_count_kv".to_vec(),
                T_U32,
                u32v(NKV as u32),
            ),
            (
                b"qwen2.rope.freq_base".to_vec(),
                T_F32,
                1e6f32.to_le_bytes().to_vec(),
            ),
            (
                b"qwen2.attention.layer_norm_rms_epsilon".to_vec(),
                T_F32,
                1e-6f32.to_le_bytes().to_vec(),
            ),
        ];
        let mut toks = T_STR.to_le_bytes().to_vec();
        toks.extend((V as u64).to_le_bytes());
        for i in 0..V {
            toks.extend(gstr(format!("t{i}").as_bytes()));
        }
        kv.push((b"tokenizer.ggml.tokens".to_vec(), T_ARR, toks));
        let t = |name: &str, ne: &[usize]| Tensor {
            name: name.as_bytes().to_vec(),
            ne: ne.iter().map(|&d| d as u64).collect(),
            ty: 0,
            offset: None,
            data: f32_bytes(ne.iter().product(), name.len() as u32),
        };
        let (q, kvd) = (NH * HD, NKV * HD);
        let tensors = vec![
            t("token_embd.weight", &[H, V]),
            t("blk.0.attn_norm.weight", &[H]),
            t("blk.0.attn_q.weight", &[H, q]),
            t("blk.0.attn_k.weight", &[H, kvd]),
            t("blk.0.attn_v.weight", &[H, kvd]),
            t("blk.0.attn_q.bias", &[q]),
            t("blk.0.attn_k.bias", &[kvd]),
            t("blk.0.attn_v.bias", &[kvd]),
            t("blk.0.attn_output.weight", &[q, H]),
            t("blk.0.ffn_norm.weight", &[H]),
            t("blk.0.ffn_gate.weight", &[H, FF]),
            t("blk.0.ffn_up.weight", &[H, FF]),
            t("blk.0.ffn_down.weight", &[FF, H]),
            t("output_norm.weight", &[H]),
        ];
        Gguf {
            magic: *b"GGUF",
            version: 3,
            n_tensors: None,
            n_kv: None,
            kv,
            tensors,
            alignment: 32,
        }
    }

    fn build(&self) -> (Vec<u8>, Sections) {
        let mut b = self.magic.to_vec();
        b.extend(self.version.to_le_bytes());
        b.extend(
            self.n_tensors
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        b.extend(self.n_kv.unwrap_or(self.kv.len() as u64).to_le_bytes());
        let kv_start = b.len();
        for (k, ty, v) in &self.kv {
            b.extend(gstr(k));
            b.extend(ty.to_le_bytes());
            b.extend(v);
        }
        let infos_start = b.len();
        let align = |x: usize| x.div_ceil(self.alignment) * self.alignment;
        let mut next = 0usize;
        let mut offsets = Vec::new();
        for t in &self.tensors {
            b.extend(gstr(&t.name));
            b.extend((t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                b.extend(d.to_le_bytes());
            }
            b.extend(t.ty.to_le_bytes());
            let off = t.offset.unwrap_or(next as u64);
            b.extend(off.to_le_bytes());
            // An absurd explicit offset gets no data (the loader must reject it unread).
            let sane = off < 1 << 24;
            offsets.push(if sane { off as usize } else { usize::MAX });
            if sane {
                next = align(off as usize + t.data.len());
            }
        }
        let infos_end = b.len();
        let data_start = align(b.len());
        b.resize(data_start, 0);
        for (t, &off) in self
            .tensors
            .iter()
            .zip(&offsets)
            .filter(|x| *x.1 != usize::MAX)
        {
            let at = data_start + off;
            if b.len() < at + t.data.len() {
                b.resize(at + t.data.len(), 0);
            }
            b[at..at + t.data.len()].copy_from_slice(&t.data);
        }
        let end = data_start + next;
        if b.len() < end {
            b.resize(end, 0);
        }
        (
            b,
            Sections {
                kv_start,
                infos_start,
                infos_end,
                data_start,
            },
        )
    }

    fn kv_set(&mut self, key: &str, ty: u32, v: Vec<u8>) {
        match self.kv.iter_mut().find(|(k, _, _)| k == key.as_bytes()) {
            Some(e) => *e = (key.as_bytes().to_vec(), ty, v),
            None => self.kv.push((key.as_bytes().to_vec(), ty, v)),
        }
    }

    fn kv_remove(&mut self, key: &str) {
        self.kv.retain(|(k, _, _)| k != key.as_bytes());
    }

    fn tensor(&mut self, name: &str) -> &mut Tensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name.as_bytes())
            .unwrap()
    }

    fn remove_tensor(&mut self, name: &str) {
        self.tensors.retain(|t| t.name != name.as_bytes());
    }

    fn load(&self) -> qkern::Result<ModelWeights> {
        load_gguf_bytes(&self.build().0)
    }
}

/// Asserts an `Error::Format` whose message contains `want`.
#[track_caller]
fn assert_format(r: qkern::Result<ModelWeights>, want: &str) {
    match r {
        Err(Error::Format(s)) => assert!(s.contains(want), "message {s:?} lacks {want:?}"),
        Err(e) => panic!("expected a format error with {want:?}, got {e:?}"),
        Ok(_) => panic!("expected a format error with {want:?}, got a model"),
    }
}

#[test]
fn gguf_writer_here_makes_a_valid_file() {
    let w = Gguf::valid().load().unwrap();
    assert_eq!(w.config.n_layers, 1);
    assert_eq!(w.config.head_dim, HD);
    assert_eq!(w.config.vocab, V);
    assert!(w.config.tied_embeddings);
    // An output head makes it untied; the alignment key is honoured.
    let mut g = Gguf::valid();
    g.tensors.push(Tensor {
        name: b"output.weight".to_vec(),
        ..g.tensors[0].clone()
    });
    g.alignment = 256;
    g.kv_set("general.alignment", T_U32, 256u32.to_le_bytes().to_vec());
    let w = g.load().unwrap();
    assert!(!w.config.tied_embeddings && w.output.is_some());
}

#[test]
fn gguf_truncated_at_every_section_boundary() {
    let (file, s) = Gguf::valid().build();
    let cases = [
        (0, "magic"),
        (3, "magic"),
        (4, "version"),
        (8, "tensor count"),
        (
            16,
            "tensor count = 14 is larger than the rest of the file allows (0 bytes left)",
        ),
        (s.kv_start, "tensor count = 14"),
        (
            s.kv_start + 500,
            "\"tokenizer.ggml.tokens\": array length = 64 is larger",
        ),
        (s.infos_start - 1, "tokenizer.ggml.tokens"),
        (s.infos_start, "name of tensor 0"),
        (s.infos_end - 8, "offset"),
        (s.infos_end, "data section starts"),
        (s.data_start, "outside the data section"),
        (file.len() - 1, "outside the data section"),
    ];
    for (len, want) in cases {
        assert_format(load_gguf_bytes(&file[..len]), want);
    }
    // Every other length fails too, without panicking: every byte through the tensor infos,
    // then a sample of the data section (the extent check is the same for all of them).
    for len in (0..s.data_start + 64).chain((s.data_start..file.len()).step_by(509)) {
        assert!(load_gguf_bytes(&file[..len]).is_err(), "length {len}");
    }
}

#[test]
fn gguf_real_file_truncated_anywhere_fails_cleanly() {
    let file = std::fs::read(dir("qwen2_tied").join("model-q4_0.gguf")).unwrap();
    // The metadata and tensor infos take the first few KiB; past them, sample.
    let lens = (0..8192)
        .chain((8192..file.len()).step_by(4093))
        .chain([file.len() - 1]);
    for len in lens {
        match load_gguf_bytes(&file[..len]) {
            Err(Error::Format(_)) => {}
            r => panic!("length {len}: {:?}", r.map(|_| ())),
        }
    }
}

#[test]
fn gguf_header_errors() {
    let mut g = Gguf::valid();
    g.magic = *b"GGML";
    assert_format(g.load(), "bad magic");
    let mut g = Gguf::valid();
    g.version = 3u32.swap_bytes();
    assert_format(g.load(), "big-endian");
    for v in [1, 4] {
        let mut g = Gguf::valid();
        g.version = v;
        assert_format(g.load(), &format!("version {v}"));
    }
    let mut g = Gguf::valid();
    g.n_tensors = Some(u64::MAX);
    assert_format(g.load(), "tensor count");
    let mut g = Gguf::valid();
    g.n_kv = Some(1 << 40);
    assert_format(g.load(), "metadata count");
}

#[test]
fn gguf_metadata_errors() {
    let mut g = Gguf::valid();
    g.kv[0].0 = vec![b'k', 0xFF, 0xFE];
    assert_format(g.load(), "not UTF-8");
    let mut g = Gguf::valid();
    g.kv_set("general.name", T_STR, gstr(&[0xC3, 0x28]));
    assert_format(g.load(), "not UTF-8");
    // A string whose length runs past the end of the file.
    let mut g = Gguf::valid();
    g.kv_set("general.name", T_STR, u64::MAX.to_le_bytes().to_vec());
    assert_format(g.load(), "exceeds the file");
    // An array longer than the file.
    let mut arr = T_U32.to_le_bytes().to_vec();
    arr.extend((1u64 << 61).to_le_bytes());
    let mut g = Gguf::valid();
    g.kv_set("general.big", T_ARR, arr);
    assert_format(g.load(), "array length");
    // Nested arrays: two levels load, nine do not.
    let nest = |depth: usize| {
        let mut v = T_U32.to_le_bytes().to_vec();
        v.extend(1u64.to_le_bytes());
        v.extend(7u32.to_le_bytes());
        for _ in 0..depth {
            let mut outer = T_ARR.to_le_bytes().to_vec();
            outer.extend(1u64.to_le_bytes());
            outer.extend(v);
            v = outer;
        }
        v
    };
    let mut g = Gguf::valid();
    g.kv_set("general.nested", T_ARR, nest(2));
    g.load().unwrap();
    let mut g = Gguf::valid();
    g.kv_set("general.nested", T_ARR, nest(9));
    assert_format(g.load(), "nested deeper");
    let mut g = Gguf::valid();
    g.kv_set("general.odd", 13, vec![0; 8]);
    assert_format(g.load(), "unknown value type 13");
    let mut g = Gguf::valid();
    let dup = g.kv[1].clone();
    g.kv.push(dup);
    assert_format(g.load(), "duplicate metadata key \"qwen2.block_count\"");
    let mut g = Gguf::valid();
    g.kv_set("general.alignment", T_U32, 3u32.to_le_bytes().to_vec());
    assert_format(g.load(), "general.alignment");
}

#[test]
fn gguf_model_key_errors() {
    let mut g = Gguf::valid();
    g.kv_set("general.architecture", T_STR, gstr(b"llama"));
    assert_format(g.load(), "architecture \"llama\" is not supported");
    let mut g = Gguf::valid();
    g.kv_remove("qwen2.block_count");
    assert_format(g.load(), "qwen2.block_count is missing");
    let mut g = Gguf::valid();
    g.kv_set("qwen2.embedding_length", T_STR, gstr(b"64"));
    assert_format(
        g.load(),
        "qwen2.embedding_length must be a non-negative integer",
    );
    // Inconsistent heads.
    let mut g = Gguf::valid();
    g.kv_set(
        "qwen2.attention.head_count_kv",
        T_U32,
        3u32.to_le_bytes().to_vec(),
    );
    assert_format(g.load(), "not a multiple of n_kv_head");
    let mut g = Gguf::valid();
    g.kv_set(
        "qwen2.attention.head_count",
        T_U32,
        5u32.to_le_bytes().to_vec(),
    );
    assert_format(g.load(), "not a multiple of head_count");
    let mut g = Gguf::valid();
    g.kv_set(
        "qwen2.attention.key_length",
        T_U32,
        32u32.to_le_bytes().to_vec(),
    );
    assert_format(g.load(), "differs from embedding_length");
    let mut g = Gguf::valid();
    g.kv_set(
        "qwen2.rope.dimension_count",
        T_U32,
        8u32.to_le_bytes().to_vec(),
    );
    assert_format(g.load(), "partial rotary");
    // Vocabulary from the token list disagrees with the embedding's shape.
    let mut g = Gguf::valid();
    let mut toks = T_STR.to_le_bytes().to_vec();
    toks.extend(1u64.to_le_bytes());
    toks.extend(gstr(b"x"));
    g.kv_set("tokenizer.ggml.tokens", T_ARR, toks);
    assert_format(g.load(), "\"token_embd.weight\" has shape");
}

#[test]
fn gguf_tensor_errors() {
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_q.weight").ne = vec![64, 64, 1, 1, 1];
    assert_format(g.load(), "has 5 dimensions");
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_q.weight").ne = vec![64, 0];
    assert_format(g.load(), "has dimension 0");
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_q.weight").ne = vec![1 << 32, 1 << 32, 1 << 32];
    assert_format(g.load(), "element count overflows");
    let mut g = Gguf::valid();
    // A size that runs into the next tensor, or past the end.
    g.tensor("blk.0.attn_q.weight").ne = vec![H as u64, 2 * (NH * HD) as u64];
    assert_format(g.load(), "overlap");
    let mut g = Gguf::valid();
    g.tensor("output_norm.weight").ne = vec![2 * H as u64];
    assert_format(g.load(), "\"output_norm.weight\" data (512 bytes at offset");
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_k.weight").offset = Some(8);
    assert_format(g.load(), "not a multiple of the alignment 32");
    let mut g = Gguf::valid();
    g.tensor("output_norm.weight").offset = Some(1 << 40);
    assert_format(g.load(), "outside the data section");
    let mut g = Gguf::valid();
    g.tensor("output_norm.weight").offset = Some(u64::MAX - 31);
    assert_format(g.load(), "output_norm.weight");
    let mut g = Gguf::valid();
    g.tensor("blk.0.ffn_norm.weight").offset = Some(0);
    assert_format(g.load(), "overlap");
    let mut g = Gguf::valid();
    let dup = g.tensors[1].clone();
    g.tensors.push(dup);
    assert_format(g.load(), "duplicate tensor \"blk.0.attn_norm.weight\"");
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_q.weight").name = vec![b'a', 0xFF];
    assert_format(g.load(), "not UTF-8");
    let mut g = Gguf::valid();
    g.remove_tensor("blk.0.ffn_up.weight");
    assert_format(g.load(), "tensor \"blk.0.ffn_up.weight\" is missing");
    let mut g = Gguf::valid();
    g.remove_tensor("output_norm.weight");
    assert_format(g.load(), "tensor \"output_norm.weight\" is missing");
    let mut g = Gguf::valid();
    let mut extra = g.tensors[1].clone();
    extra.name = b"blk.1.attn_norm.weight".to_vec();
    g.tensors.push(extra);
    assert_format(g.load(), "unexpected tensor \"blk.1.attn_norm.weight\"");
    // Wrong shape for the config.
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_k.weight").ne = vec![(NKV * HD) as u64, H as u64];
    assert_format(
        g.load(),
        "\"blk.0.attn_k.weight\" has shape [64, 32], expected [32, 64]",
    );
    // A Q4_0 tensor whose row length is not a multiple of 32.
    let mut g = Gguf::valid();
    let t = g.tensor("blk.0.attn_norm.weight");
    t.ty = 2;
    t.ne = vec![48];
    t.data = vec![0; 27];
    assert_format(g.load(), "not a multiple of the Q4_0 block size 32");
}

#[test]
fn gguf_unsupported_types_name_the_tensor() {
    for (code, name, bytes) in [(11u32, "Q3_K", 110usize), (99, "ggml type 99", 0)] {
        let mut g = Gguf::valid();
        let t = g.tensor("blk.0.ffn_up.weight");
        t.ty = code;
        t.ne = vec![256, FF as u64 * H as u64 / 256];
        t.data = vec![0; bytes * FF * H / 256];
        match g.load() {
            Err(Error::UnsupportedType { tensor, ty }) => {
                assert_eq!(tensor, "blk.0.ffn_up.weight");
                assert_eq!(ty, name);
            }
            r => panic!("{name}: {:?}", r.map(|_| ())),
        }
    }
}

#[test]
fn gguf_other_types_convert() {
    // F16 and BF16 norms and a Q8_0 linear weight load and give the values they hold.
    let mut g = Gguf::valid();
    let t = g.tensor("blk.0.attn_norm.weight");
    t.ty = 1;
    t.data = (0..H)
        .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
        .collect();
    let t = g.tensor("blk.0.ffn_norm.weight");
    t.ty = 30;
    t.data = (0..H)
        .flat_map(|i| half::bf16::from_f32(-(i as f32)).to_le_bytes())
        .collect();
    let t = g.tensor("token_embd.weight");
    t.ty = 8;
    let blocks: Vec<u8> = (0..H * V / 32)
        .flat_map(|b| {
            let mut v = half::f16::from_f32(0.5).to_le_bytes().to_vec();
            v.extend((0..32).map(|j| (b as i32 + j - 64) as i8 as u8));
            v
        })
        .collect();
    t.data = blocks.clone();
    let w = g.load().unwrap();
    assert_eq!(
        w.layers[0].attn_norm,
        (0..H).map(|i| i as f32).collect::<Vec<_>>()
    );
    assert_eq!(
        w.layers[0].ffn_norm,
        (0..H).map(|i| -(i as f32)).collect::<Vec<_>>()
    );
    assert_eq!(w.token_embd.bytes(), &blocks[..]);
}

const LINEAR: [&str; 7] = [
    "blk.0.attn_q.weight",
    "blk.0.attn_k.weight",
    "blk.0.attn_v.weight",
    "blk.0.attn_output.weight",
    "blk.0.ffn_gate.weight",
    "blk.0.ffn_up.weight",
    "blk.0.ffn_down.weight",
];

/// The f32 values of an F32 tensor of the writer's file.
fn f32_values(t: &Tensor) -> Vec<f32> {
    t.data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Stores `name` (an F32 tensor) as Q8_0 (`q8`) or Q4_0, quantized by the reference rule.
fn requantize(g: &mut Gguf, name: &str, q8: bool) -> Vec<u8> {
    let t = g.tensor(name);
    let x = f32_values(t);
    t.data = if q8 {
        let mut b = vec![BlockQ8_0::default(); x.len() / 32];
        quantize_q8_0(&x, &mut b).unwrap();
        bytemuck::cast_slice(&b).to_vec()
    } else {
        let mut b = vec![BlockQ4_0::default(); x.len() / 32];
        quantize_q4_0(&x, &mut b).unwrap();
        bytemuck::cast_slice(&b).to_vec()
    };
    t.ty = if q8 { 8 } else { 2 };
    t.data.clone()
}

/// The layer's linear weights in `LINEAR` order.
fn linear(w: &ModelWeights) -> [&QuantTensor; 7] {
    let l = &w.layers[0];
    [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
}

#[test]
fn gguf_quantized_weights_keep_their_type() {
    // A Q8_0 file: every linear weight stays Q8_0, bytes unchanged, whatever the options say.
    let mut g = Gguf::valid();
    let bytes: Vec<Vec<u8>> = LINEAR.iter().map(|n| requantize(&mut g, n, true)).collect();
    for quant in [QuantType::Q4_0, QuantType::Q8_0] {
        let w = load_gguf_bytes_with(&g.build().0, &LoadOptions { quant }).unwrap();
        for ((t, b), name) in linear(&w).iter().zip(&bytes).zip(LINEAR) {
            assert_eq!(t.quant_type(), QuantType::Q8_0, "{name} with {quant}");
            assert_eq!(t.bytes(), &b[..], "{name}");
        }
        assert_eq!(w.linear_types(), [(QuantType::Q8_0, 7)]);
        // The F32 embedding becomes Q8_0 either way.
        assert_eq!(w.token_embd.quant_type(), QuantType::Q8_0);
    }
    // The same weights as F32 quantized at load to Q8_0 give the same model; by default Q4_0.
    let f32_file = Gguf::valid().build().0;
    let a = load_gguf_bytes_with(
        &f32_file,
        &LoadOptions {
            quant: QuantType::Q8_0,
        },
    )
    .unwrap();
    assert_same(
        &a,
        &load_gguf_bytes(&g.build().0).unwrap(),
        "F32 -> Q8_0 at load",
    );
    let d = load_gguf_bytes(&f32_file).unwrap();
    assert_eq!(d.linear_types(), [(QuantType::Q4_0, 7)]);
    assert_eq!(LoadOptions::default().quant, QuantType::Q4_0);

    // Mixed types within a layer: Q4_0 q, Q8_0 k and gate, F32 (quantized at load) the rest.
    let mut g = Gguf::valid();
    let q = requantize(&mut g, "blk.0.attn_q.weight", false);
    let k = requantize(&mut g, "blk.0.attn_k.weight", true);
    let gate = requantize(&mut g, "blk.0.ffn_gate.weight", true);
    for (quant, want) in [
        (
            QuantType::Q4_0,
            [(QuantType::Q4_0, 5), (QuantType::Q8_0, 2)],
        ),
        (
            QuantType::Q8_0,
            [(QuantType::Q4_0, 1), (QuantType::Q8_0, 6)],
        ),
    ] {
        let w = load_gguf_bytes_with(&g.build().0, &LoadOptions { quant }).unwrap();
        let l = &w.layers[0];
        assert_eq!(
            l.wq.blocks::<BlockQ4_0>().unwrap(),
            bytemuck::cast_slice(&q)
        );
        assert_eq!(
            l.wk.blocks::<BlockQ8_0>().unwrap(),
            bytemuck::cast_slice(&k)
        );
        assert_eq!(
            l.w_gate.blocks::<BlockQ8_0>().unwrap(),
            bytemuck::cast_slice(&gate)
        );
        assert_eq!(l.wv.quant_type(), quant);
        assert_eq!(w.linear_types(), want);
    }
}

#[test]
fn q6_k_linear_weights_keep_their_type_and_run() {
    // A model whose rows are 256 long (Q6_K super-blocks): hidden 256, 4 heads of 64, 2 kv heads,
    // ffn 256; the gate projection in Q6_K, so the fused gate/up matmul mixes a K-quant part
    // (Q8_256 activations) with a Q4_0 or Q8_0 one (Q8_32).
    let mut g = Gguf::valid();
    g.kv_set(
        "qwen2.embedding_length",
        T_U32,
        256u32.to_le_bytes().to_vec(),
    );
    g.kv_set(
        "qwen2.feed_forward_length",
        T_U32,
        256u32.to_le_bytes().to_vec(),
    );
    for t in &mut g.tensors {
        for d in &mut t.ne {
            *d = match *d as usize {
                H | FF => 256,
                32 => 128, // kv_dim
                v => v as u64,
            };
        }
        if t.name == b"token_embd.weight" {
            t.ne[1] = V as u64; // the vocabulary is 64 too
        }
        t.data = f32_bytes(t.ne.iter().product::<u64>() as usize, t.name.len() as u32);
    }
    g.load().unwrap();
    // Q6_K blocks with every 6-bit value 0 (q - 32 = -32), d = 1/64 and scale i + 1 for the i-th
    // group of 16: value p of a block is -(p / 16 + 1) / 2.
    let blocks = 256 * 256 / 256;
    let mut block = vec![0u8; 192];
    block.extend((1..=16).map(|s: u8| s));
    block.extend(half::f16::from_f32(1.0 / 64.0).to_le_bytes());
    let t = g.tensor("blk.0.ffn_gate.weight");
    t.ty = 14;
    t.data = block.repeat(blocks);
    let want: Vec<f32> = (0..256 * 256)
        .map(|i| -(((i % 256) / 16 + 1) as f32) / 2.0)
        .collect();
    for quant in [QuantType::Q4_0, QuantType::Q8_0] {
        let w = load_gguf_bytes_with(&g.build().0, &LoadOptions { quant }).unwrap();
        let gate = &w.layers[0].w_gate;
        // Q6_K as in the file, whatever the options say for float weights.
        assert_eq!(gate.quant_type(), QuantType::Q6K, "with {quant}");
        assert_eq!(gate.bytes(), &block.repeat(blocks)[..]);
        assert_eq!(w.layers[0].w_up.quant_type(), quant);
        // Exact: d * scale * (q - 32) with d = 1/64 is a multiple of 1/2.
        assert_eq!(gate.dequantize().unwrap(), want);
        // The mixed layer runs on every tier, and every tier agrees with the scalar one (the
        // same integer products; only float summation order differs).
        let run = |tier: Tier| {
            let m = Model::new(w.clone(), tier, 1).unwrap();
            assert_eq!(m.linear_types(), [(quant, 6), (QuantType::Q6K, 1)]);
            let mut s = m.session(SessionOptions::default()).unwrap();
            let mut out = s.prefill(&[1, 5, 9, 63]).unwrap();
            out.extend(s.decode(7).unwrap());
            out
        };
        let want_logits = run(Tier::Scalar);
        assert!(want_logits.iter().all(|v| v.is_finite()));
        let scale = want_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
        for tier in Tier::available() {
            let got = run(tier);
            let err = got
                .iter()
                .zip(&want_logits)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // Float-order noise (about 1e-6 of max |logit|), or one int8 rounding flip (< 3 %,
            // as in tests/model_golden.rs); attention in 16 bits (the x86 bf16 path: 8
            // significant bits for Q, K, V and the weights, measured 3.3 %) moves more
            // roundings: the 16-bit tolerance of tests/model_golden.rs (TOL_KV_F16, 6 %).
            let name = qkern::Kernels::for_tier(tier).unwrap().attention_name();
            let tol = if name.contains("bf16") || name.contains("fp16") {
                0.06
            } else {
                0.03
            };
            assert!(err <= tol * scale, "{tier} with {quant}: {err} of {scale}");
        }
    }
}

#[test]
fn load_options_choose_the_type_of_float_linear_weights() {
    // A safetensors folder (float weights): linear weights in the chosen type, embedding Q8_0.
    let name = "qwen2_untied";
    let q8 = LoadOptions {
        quant: QuantType::Q8_0,
    };
    let w = load_with(&dir(name), &q8).unwrap();
    let d = load_safetensors_dir(&dir(name)).unwrap();
    assert_eq!(w.linear_types(), [(QuantType::Q8_0, 7 * w.config.n_layers)]);
    assert_eq!(d.linear_types(), [(QuantType::Q4_0, 7 * d.config.n_layers)]);
    for m in [&w, &d] {
        assert_eq!(m.token_embd.quant_type(), QuantType::Q8_0);
        assert_eq!(m.output.as_ref().unwrap().quant_type(), QuantType::Q8_0);
    }
    // The options do not touch a GGUF's Q4_0 weights.
    let gguf = dir(name).join("model-q4_0.gguf");
    assert_same(&load_with(&gguf, &q8).unwrap(), &load(&gguf).unwrap(), name);
    // Bytes loaders take options too.
    let cfg = std::fs::read(dir(name).join("config.json")).unwrap();
    let st = std::fs::read(dir(name).join("model.safetensors")).unwrap();
    assert_same(
        &load_safetensors_bytes_with(&cfg, &[&st], &q8).unwrap(),
        &w,
        name,
    );
    // Type names parse both ways.
    for &t in QuantType::ALL {
        assert_eq!(t.name().parse::<QuantType>().unwrap(), t);
        assert_eq!(t.to_string(), t.name());
    }
    assert!("q2_k".parse::<QuantType>().is_err());
    // Only Q4_0 and Q8_0 have quantizers: the others are read from files, never chosen for float
    // weights (an error naming the first float weight met).
    assert_eq!(QuantType::QUANTIZABLE, [QuantType::Q4_0, QuantType::Q8_0]);
    for &t in QuantType::ALL {
        assert_eq!(t.can_quantize(), QuantType::QUANTIZABLE.contains(&t));
        if !t.can_quantize() {
            assert!(t.quantize(&[0.5; 256]).is_err(), "{t}");
            match load_with(&dir(name), &LoadOptions { quant: t }) {
                Err(Error::UnsupportedType { tensor, .. }) => {
                    assert_eq!(tensor, "model.layers.0.self_attn.q_proj.weight", "{t}")
                }
                r => panic!("{t}: {:?}", r.map(|_| ())),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Safetensors folders.

fn config_json(extra: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let mut c = serde_json::json!({
        "model_type": "qwen2", "hidden_size": H, "intermediate_size": FF, "num_hidden_layers": 1,
        "num_attention_heads": NH, "num_key_value_heads": NKV, "vocab_size": V,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
        "tie_word_embeddings": true,
    });
    for (k, v) in extra {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(*k);
        } else {
            c[*k] = v.clone();
        }
    }
    serde_json::to_vec(&c).unwrap()
}

/// Safetensors bytes for `tensors` (name, dtype, shape, bytes).
fn st_file(tensors: &[(String, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut off = 0;
    for (name, dt, shape, data) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dt, "shape": shape, "data_offsets": [off, off + data.len()]}),
        );
        off += data.len();
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend(h);
    for (_, _, _, data) in tensors {
        b.extend(data);
    }
    b
}

fn hf_tensors() -> Vec<(String, &'static str, Vec<usize>, Vec<u8>)> {
    let (q, kvd) = (NH * HD, NKV * HD);
    let t = |n: &str, s: &[usize]| {
        (
            n.to_string(),
            "F32",
            s.to_vec(),
            f32_bytes(s.iter().product(), n.len() as u32),
        )
    };
    let p = "model.layers.0.";
    vec![
        t("model.embed_tokens.weight", &[V, H]),
        t(&format!("{p}input_layernorm.weight"), &[H]),
        t(&format!("{p}self_attn.q_proj.weight"), &[q, H]),
        t(&format!("{p}self_attn.k_proj.weight"), &[kvd, H]),
        t(&format!("{p}self_attn.v_proj.weight"), &[kvd, H]),
        t(&format!("{p}self_attn.q_proj.bias"), &[q]),
        t(&format!("{p}self_attn.k_proj.bias"), &[kvd]),
        t(&format!("{p}self_attn.v_proj.bias"), &[kvd]),
        t(&format!("{p}self_attn.o_proj.weight"), &[H, q]),
        t(&format!("{p}post_attention_layernorm.weight"), &[H]),
        t(&format!("{p}mlp.gate_proj.weight"), &[FF, H]),
        t(&format!("{p}mlp.up_proj.weight"), &[FF, H]),
        t(&format!("{p}mlp.down_proj.weight"), &[H, FF]),
        t("model.norm.weight", &[H]),
    ]
}

#[test]
fn safetensors_config_styles() {
    let st = st_file(&hf_tensors());
    let w = load_safetensors_bytes(&config_json(&[]), &[&st]).unwrap();
    assert_eq!(w.config.rope_theta, 1e6);
    assert_eq!(w.config.head_dim, HD);
    assert!(w.config.tied_embeddings && w.output.is_none());
    // Transformers 5: rope_theta inside rope_parameters.
    let v5 = config_json(&[
        ("rope_theta", serde_json::Value::Null),
        (
            "rope_parameters",
            serde_json::json!({"rope_theta": 5e5, "rope_type": "default"}),
        ),
    ]);
    assert_eq!(
        load_safetensors_bytes(&v5, &[&st])
            .unwrap()
            .config
            .rope_theta,
        5e5
    );
    // Defaults: no num_key_value_heads means MHA (then the k/v shapes are wrong here).
    let mha = config_json(&[("num_key_value_heads", serde_json::Value::Null)]);
    assert_format(
        load_safetensors_bytes(&mha, &[&st]),
        "self_attn.k_proj.weight\" has shape",
    );
    // A stored lm_head in a tied model is ignored, as transformers does.
    let mut t = hf_tensors();
    t.push((
        "lm_head.weight".into(),
        "F32",
        vec![V, H],
        f32_bytes(V * H, 9),
    ));
    load_safetensors_bytes(&config_json(&[]), &[&st_file(&t)]).unwrap();
    // Untied: lm_head required.
    let untied = config_json(&[("tie_word_embeddings", false.into())]);
    assert!(load_safetensors_bytes(&untied, &[&st_file(&t)])
        .unwrap()
        .output
        .is_some());
    assert_format(
        load_safetensors_bytes(&untied, &[&st]),
        "\"lm_head.weight\" is missing",
    );
}

#[test]
fn safetensors_config_errors() {
    let st = st_file(&hf_tensors());
    let null = serde_json::Value::Null;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "not valid JSON"),
        (b"[1]".to_vec(), "not a JSON object"),
        (
            config_json(&[("model_type", null.clone())]),
            "model_type is missing",
        ),
        (
            config_json(&[("model_type", "llama".into())]),
            "model_type \"llama\" is not supported",
        ),
        (
            config_json(&[("hidden_size", null.clone())]),
            "hidden_size is missing",
        ),
        (
            config_json(&[("hidden_size", (-1).into())]),
            "hidden_size must be a non-negative integer",
        ),
        (
            config_json(&[("num_key_value_heads", 3.into())]),
            "not a multiple of n_kv_head",
        ),
        (
            config_json(&[("num_attention_heads", 5.into())]),
            "not a multiple of num_attention_heads",
        ),
        (
            config_json(&[("head_dim", 15.into())]),
            "head_dim = 15 is odd",
        ),
        (
            config_json(&[
                ("hidden_size", 48.into()),
                ("num_attention_heads", 3.into()),
            ]),
            "not a multiple of n_kv_head",
        ),
        (
            config_json(&[(
                "rope_scaling",
                serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
            )]),
            "\"yarn\" is not supported",
        ),
        (
            config_json(&[("rope_theta", "big".into())]),
            "rope_theta must be a number",
        ),
        (
            config_json(&[("tie_word_embeddings", "yes".into())]),
            "tie_word_embeddings must be a bool",
        ),
        (
            config_json(&[("use_sliding_window", true.into())]),
            "sliding-window",
        ),
        (config_json(&[("hidden_act", "gelu".into())]), "hidden_act"),
    ];
    for (cfg, want) in cases {
        assert_format(load_safetensors_bytes(&cfg, &[&st]), want);
    }
}

#[test]
fn safetensors_file_errors() {
    let cfg = config_json(&[]);
    let good = st_file(&hf_tensors());
    // Truncated anywhere: a clean error.
    for len in (0..good.len()).step_by(97) {
        assert!(matches!(
            load_safetensors_bytes(&cfg, &[&good[..len]]),
            Err(Error::Format(_))
        ));
    }
    assert_format(
        load_safetensors_bytes(&cfg, &[&good[..4]]),
        "bad safetensors header",
    );
    // Header length beyond the file.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_format(
        load_safetensors_bytes(&cfg, &[&bad]),
        "bad safetensors header",
    );
    // Unsupported dtype.
    let mut t = hf_tensors();
    t[1].1 = "F64";
    t[1].3 = vec![0; H * 8];
    match load_safetensors_bytes(&cfg, &[&st_file(&t)]) {
        Err(Error::UnsupportedType { tensor, ty }) => {
            assert_eq!(tensor, "model.layers.0.input_layernorm.weight");
            assert_eq!(ty, "F64");
        }
        r => panic!("{:?}", r.map(|_| ())),
    }
    // Missing, extra, wrong shape.
    let mut t = hf_tensors();
    t.retain(|x| !x.0.ends_with("up_proj.weight"));
    assert_format(
        load_safetensors_bytes(&cfg, &[&st_file(&t)]),
        "mlp.up_proj.weight\" is missing",
    );
    let mut t = hf_tensors();
    t.push((
        "model.layers.1.input_layernorm.weight".into(),
        "F32",
        vec![H],
        f32_bytes(H, 1),
    ));
    assert_format(
        load_safetensors_bytes(&cfg, &[&st_file(&t)]),
        "unexpected tensor \"model.layers.1",
    );
    let mut t = hf_tensors();
    t[2].2 = vec![NH * HD, 2 * H];
    t[2].3 = f32_bytes(NH * HD * 2 * H, 0);
    assert_format(
        load_safetensors_bytes(&cfg, &[&st_file(&t)]),
        "q_proj.weight\" has shape",
    );
    // Only some of the q/k/v biases.
    let mut t = hf_tensors();
    t.retain(|x| !x.0.ends_with("k_proj.bias"));
    assert_format(
        load_safetensors_bytes(&cfg, &[&st_file(&t)]),
        "not all of the q/k/v biases",
    );
    // The same tensor in two files.
    let all = hf_tensors();
    let (a, b) = all.split_at(5);
    let mut b = b.to_vec();
    b.push(a[0].clone());
    assert_format(
        load_safetensors_bytes(&cfg, &[&st_file(a), &st_file(&b)]),
        "is in both file 0 and file 1",
    );
    // F16 and BF16 data convert exactly.
    let mut t = hf_tensors();
    t[1].1 = "F16";
    t[1].3 = (0..H)
        .flat_map(|i| half::f16::from_f32(i as f32 / 4.0).to_le_bytes())
        .collect();
    t[9].1 = "BF16";
    t[9].3 = (0..H)
        .flat_map(|i| half::bf16::from_f32(i as f32 * 2.0).to_le_bytes())
        .collect();
    let w = load_safetensors_bytes(&cfg, &[&st_file(&t)]).unwrap();
    assert_eq!(w.layers[0].attn_norm[5], 1.25);
    assert_eq!(w.layers[0].ffn_norm[5], 10.0);
}

#[test]
fn safetensors_sharded_index_errors() {
    let src = dir("qwen2_gqa_hd128");
    let tmp = std::env::temp_dir().join(format!("qkern-loaders-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    for f in [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        std::fs::copy(src.join(f), tmp.join(f)).unwrap();
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let write = |i: &serde_json::Value| {
        std::fs::write(
            tmp.join("model.safetensors.index.json"),
            serde_json::to_vec(i).unwrap(),
        )
        .unwrap()
    };
    write(&index);
    load_safetensors_dir(&tmp).unwrap();
    let mut i = index.clone();
    i["weight_map"]["model.norm.weight"] = "../model-00001-of-00002.safetensors".into();
    write(&i);
    assert_format(load_safetensors_dir(&tmp), "not a plain file name");
    let mut i = index.clone();
    let map = i["weight_map"].as_object_mut().unwrap();
    let (name, f) = map
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let other = if f == "model-00001-of-00002.safetensors" {
        "model-00002-of-00002.safetensors"
    } else {
        "model-00001-of-00002.safetensors"
    };
    map.insert(name.clone(), other.into());
    write(&i);
    assert_format(
        load_safetensors_dir(&tmp),
        &format!("index puts tensor {name:?}"),
    );
    let mut i = index.clone();
    i["weight_map"].as_object_mut().unwrap().remove(&name);
    write(&i);
    assert_format(load_safetensors_dir(&tmp), "is not in the index");
    let mut i = index.clone();
    i["weight_map"]["model.layers.9.extra"] = "model-00001-of-00002.safetensors".into();
    write(&i);
    assert_format(load_safetensors_dir(&tmp), "which is in no shard");
    let mut i = index.clone();
    i["weight_map"]["model.layers.9.extra"] = "model-00003-of-00002.safetensors".into();
    write(&i);
    assert!(matches!(load_safetensors_dir(&tmp), Err(Error::Io(_))));
    std::fs::remove_file(tmp.join("model.safetensors.index.json")).unwrap();
    assert!(matches!(load_safetensors_dir(&tmp), Err(Error::Io(_))));
    std::fs::remove_dir_all(&tmp).unwrap();
    // Not a model at all.
    assert!(matches!(load(&dir("no-such-model")), Err(Error::Io(_))));
}

#[test]
fn fuzz_seeds_are_valid_models() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let g = std::fs::read(root.join("gguf_parse/seed-tiny.gguf")).unwrap();
    load_gguf_bytes(&g).unwrap();
    let s = std::fs::read(root.join("safetensors_parse/seed-tiny")).unwrap();
    let sep = s.windows(4).position(|w| w == b"\n--\n").unwrap();
    load_safetensors_bytes(&s[..sep], &[&s[sep + 4..]]).unwrap();
}

#[test]
fn empty_and_missing_files() {
    let tmp = std::env::temp_dir().join(format!("qkern-empty-{}.gguf", std::process::id()));
    std::fs::write(&tmp, b"").unwrap();
    let r = load_gguf(&tmp);
    std::fs::remove_file(&tmp).unwrap();
    assert!(
        matches!(r, Err(Error::Format(_)) | Err(Error::Io(_))),
        "{r:?}",
        r = r.map(|_| ())
    );
    assert!(matches!(
        load_gguf(Path::new("/nonexistent/x.gguf")),
        Err(Error::Io(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// More malformed files: hostile cases the tests above do not reach.

/// Asserts an `Error::Overflow` naming `want`.
#[track_caller]
fn assert_overflow(r: qkern::Result<ModelWeights>, want: &str) {
    match r {
        Err(Error::Overflow(s)) => assert!(s.contains(want), "overflow {s:?} lacks {want:?}"),
        Err(e) => panic!("expected an overflow error with {want:?}, got {e:?}"),
        Ok(_) => panic!("expected an overflow error with {want:?}, got a model"),
    }
}

fn u32v(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

#[test]
fn gguf_value_type_errors() {
    // Unknown array element type; bool neither 0 nor 1; wrong types for known keys.
    let mut arr = 13u32.to_le_bytes().to_vec();
    arr.extend(1u64.to_le_bytes());
    let mut g = Gguf::valid();
    g.kv_set("general.odd", T_ARR, arr);
    assert_format(g.load(), "unknown array element type 13");
    let mut g = Gguf::valid();
    g.kv_set("general.flag", 7, vec![2]);
    assert_format(g.load(), "bool value 2 is neither 0 nor 1");
    let mut g = Gguf::valid();
    g.kv_set("tokenizer.ggml.tokens", T_U32, u32v(64));
    assert_format(
        g.load(),
        "tokenizer.ggml.tokens must be an array, got a unsigned integer",
    );
    let mut g = Gguf::valid();
    g.kv_set("general.architecture", T_U32, u32v(2));
    assert_format(g.load(), "general.architecture must be a string");
    let mut g = Gguf::valid();
    g.kv_remove("general.architecture");
    assert_format(g.load(), "general.architecture is missing");
    let mut g = Gguf::valid();
    g.kv_set("qwen2.rope.freq_base", T_STR, gstr(b"1e6"));
    assert_format(
        g.load(),
        "qwen2.rope.freq_base must be a number, got a string",
    );
    let mut g = Gguf::valid();
    g.kv_remove("qwen2.attention.layer_norm_rms_epsilon");
    assert_format(g.load(), "layer_norm_rms_epsilon is missing");
    // A negative count (INT32 -1).
    let mut g = Gguf::valid();
    g.kv_set("qwen2.block_count", 5, (-1i32).to_le_bytes().to_vec());
    assert_format(g.load(), "qwen2.block_count must be a non-negative integer");
    let mut g = Gguf::valid();
    g.kv_set("qwen2.rope.scaling.type", T_STR, gstr(b"yarn"));
    assert_format(g.load(), "rope scaling \"yarn\" is not supported");
    // Alignment: of the wrong type, or absurdly large.
    let mut g = Gguf::valid();
    g.kv_set("general.alignment", T_STR, gstr(b"32"));
    assert_format(g.load(), "general.alignment must be a power of two");
    let mut g = Gguf::valid();
    g.kv_set("general.alignment", 10, (1u64 << 40).to_le_bytes().to_vec());
    assert_format(g.load(), "general.alignment must be a power of two");
}

#[test]
fn gguf_head_and_vocab_inconsistencies() {
    let set = |g: &mut Gguf, k: &str, v: u32| g.kv_set(k, T_U32, u32v(v));
    // Zero heads, zero KV heads, more KV heads than heads.
    let mut g = Gguf::valid();
    set(&mut g, "qwen2.attention.head_count", 0);
    assert_format(g.load(), "not a multiple of head_count 0");
    let mut g = Gguf::valid();
    set(&mut g, "qwen2.attention.head_count_kv", 0);
    assert_format(g.load(), "n_kv_head is 0");
    let mut g = Gguf::valid();
    set(&mut g, "qwen2.attention.head_count_kv", 8);
    assert_format(g.load(), "n_head = 4 is not a multiple of n_kv_head = 8");
    // head_dim mismatches: value_length differs from key_length.
    let mut g = Gguf::valid();
    set(&mut g, "qwen2.attention.value_length", 8);
    assert_format(
        g.load(),
        "attention.value_length 8 differs from the head size 16",
    );
    // Qwen3 takes head_dim from key_length; the q projection's shape must then follow it.
    let mut g = Gguf::valid();
    g.kv =
        g.kv.iter()
            .map(|(k, t, v)| {
                let k = String::from_utf8(k.clone())
                    .unwrap()
                    .replace("qwen2", "qwen3");
                (k.into_bytes(), *t, v.clone())
            })
            .collect();
    g.kv_set("general.architecture", T_STR, gstr(b"qwen3"));
    set(&mut g, "qwen3.attention.key_length", 32);
    assert_format(
        g.load(),
        "\"blk.0.attn_q.weight\" has shape [64, 64], expected [128, 64]",
    );
    // A qwen3 file without q/k norms, and a qwen2 file with them.
    let mut g = Gguf::valid();
    g.kv =
        g.kv.iter()
            .map(|(k, t, v)| {
                let k = String::from_utf8(k.clone())
                    .unwrap()
                    .replace("qwen2", "qwen3");
                (k.into_bytes(), *t, v.clone())
            })
            .collect();
    g.kv_set("general.architecture", T_STR, gstr(b"qwen3"));
    assert_format(g.load(), "lacks q_norm/k_norm, required by qwen3");
    let mut g = Gguf::valid();
    for n in ["blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight"] {
        let mut t = g.tensor("blk.0.attn_norm.weight").clone();
        t.name = n.as_bytes().to_vec();
        t.ne = vec![HD as u64];
        t.data = f32_bytes(HD, 3);
        g.tensors.push(t);
    }
    assert_format(g.load(), "has q_norm/k_norm, which qwen2 has not");
    // Vocabulary: vocab_size key (no token list) disagrees with the embedding; no source at all;
    // an untied output head of another vocabulary than the embedding.
    let mut g = Gguf::valid();
    g.kv_remove("tokenizer.ggml.tokens");
    set(&mut g, "qwen2.vocab_size", 65);
    assert_format(
        g.load(),
        "\"token_embd.weight\" has shape [64, 64], expected [65, 64]",
    );
    let mut g = Gguf::valid();
    g.kv_remove("tokenizer.ggml.tokens");
    assert_eq!(g.load().unwrap().config.vocab, V, "vocab from token_embd");
    g.remove_tensor("token_embd.weight");
    assert_format(g.load(), "cannot tell the vocabulary size");
    let mut g = Gguf::valid();
    let mut out = g.tensors[0].clone();
    out.name = b"output.weight".to_vec();
    out.ne = vec![H as u64, V as u64 / 2];
    out.data = f32_bytes(H * V / 2, 5);
    g.tensors.push(out);
    assert_format(
        g.load(),
        "\"output.weight\" has shape [32, 64], expected [64, 64]",
    );
}

#[test]
fn gguf_size_and_type_errors() {
    // Byte size overflow (element count fits, times 4 bytes does not).
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_q.weight").ne = vec![1 << 32, 1 << 30];
    assert_format(g.load(), "\"blk.0.attn_q.weight\" byte size overflows");
    // No dimensions.
    let mut g = Gguf::valid();
    g.tensor("blk.0.attn_q.weight").ne = vec![];
    assert_format(g.load(), "has 0 dimensions");
    // A Q6_K row shorter than a super-block.
    let mut g = Gguf::valid();
    let t = g.tensor("blk.0.ffn_up.weight");
    t.ty = 14;
    assert_format(
        g.load(),
        "row length 64 is not a multiple of the Q6_K block size 256",
    );
    // Misaligned under a non-default alignment.
    let mut g = Gguf::valid();
    g.alignment = 64;
    g.kv_set("general.alignment", T_U32, u32v(64));
    g.tensor("blk.0.attn_k.weight").offset = Some(32);
    assert_format(g.load(), "offset 32 is not a multiple of the alignment 64");
    // A huge array of strings: the count fits the file only at 8 bytes per (empty) string.
    let mut arr = T_STR.to_le_bytes().to_vec();
    arr.extend((1u64 << 40).to_le_bytes());
    let mut g = Gguf::valid();
    g.kv_set("general.many", T_ARR, arr);
    assert_format(
        g.load(),
        "\"general.many\": array length = 1099511627776 is larger",
    );
    // A huge array of arrays.
    let mut arr = T_ARR.to_le_bytes().to_vec();
    arr.extend(u64::MAX.to_le_bytes());
    let mut g = Gguf::valid();
    g.kv_set("general.many", T_ARR, arr);
    assert_format(g.load(), "array length = 18446744073709551615 is larger");
    // A key whose length exceeds the file.
    let (mut file, s) = Gguf::valid().build();
    file[s.kv_start..s.kv_start + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_format(load_gguf_bytes(&file), "metadata key 0: string length");
    // Big but well-formed strings and arrays are fine (1 MiB description, 100 000 tokens of
    // metadata that no model key reads).
    let mut g = Gguf::valid();
    g.kv_set("general.description", T_STR, gstr(&vec![b'x'; 1 << 20]));
    let mut arr = T_U32.to_le_bytes().to_vec();
    arr.extend(100_000u64.to_le_bytes());
    arr.extend(vec![0; 400_000]);
    g.kv_set("general.big", T_ARR, arr);
    g.load().unwrap();
}

#[test]
fn gguf_k_quant_shape_errors() {
    // A K-quant tensor whose row length (64) is not a multiple of its super-block (256): an error
    // naming the tensor, for each K-quant type.
    for (code, name) in [(12u32, "Q4_K"), (13, "Q5_K"), (14, "Q6_K")] {
        let mut g = Gguf::valid();
        g.tensor("blk.0.attn_output.weight").ty = code;
        assert_format(
            g.load(),
            &format!(
                "tensor \"blk.0.attn_output.weight\" row length 64 is not a multiple of the \
                 {name} block size 256"
            ),
        );
    }
    // A real llama-quantize Q4_K_M file cut inside the last super-block (or the one before) of
    // the last tensor in file order (blk.1.ffn_up.weight, Q4_K, super-blocks of 144 bytes): an
    // error naming that tensor, never a short read.
    let file = std::fs::read(dir("qwen2_gqa_hd128").join("model-q4_k_m.gguf")).unwrap();
    for cut in [1, 100, 143, 145] {
        assert_format(
            load_gguf_bytes(&file[..file.len() - cut]),
            "tensor \"blk.1.ffn_up.weight\" data",
        );
    }
    load_gguf_bytes(&file).unwrap();
}

/// A safetensors header with explicit entries (name, dtype, shape, offsets) and raw data.
fn st_raw(entries: &[(&str, &str, Vec<u64>, [u64; 2])], data: &[u8]) -> Vec<u8> {
    let mut h = String::from("{");
    for (i, (name, dt, shape, off)) in entries.iter().enumerate() {
        if i > 0 {
            h.push(',');
        }
        h.push_str(&format!(
            "{:?}:{{\"dtype\":{dt:?},\"shape\":{shape:?},\"data_offsets\":[{},{}]}}",
            name, off[0], off[1]
        ));
    }
    h.push('}');
    st_header(&h, data)
}

/// A safetensors file of the header `h` (JSON text) and raw data.
fn st_header(h: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend(h.as_bytes());
    b.extend(data);
    b
}

#[test]
fn safetensors_truncated_at_every_section_boundary() {
    let cfg = config_json(&[]);
    let t = hf_tensors();
    let file = st_file(&t);
    let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let st = |len: usize| load_safetensors_bytes(&cfg, &[&file[..len]]);
    // Inside the length prefix; inside the header; at its end (no data).
    for len in [0, 1, 7] {
        assert_format(st(len), "header too small");
    }
    for len in [8, 9, header_end - 1] {
        assert_format(st(len), "invalid header length");
    }
    assert_format(
        st(header_end),
        "incomplete metadata, file not fully covered",
    );
    // At every tensor boundary but the last, and one byte short of the end.
    let mut at = header_end;
    for (_, _, _, d) in &t[..t.len() - 1] {
        at += d.len();
        assert_format(st(at), "incomplete metadata, file not fully covered");
    }
    assert_format(
        st(file.len() - 1),
        "incomplete metadata, file not fully covered",
    );
    // One extra byte at the end is as wrong.
    let mut long = file.clone();
    long.push(0);
    assert_format(
        load_safetensors_bytes(&cfg, &[&long]),
        "incomplete metadata, file not fully covered",
    );
}

#[test]
fn safetensors_header_errors() {
    let cfg = config_json(&[]);
    let load1 = |b: &[u8]| load_safetensors_bytes(&cfg, &[b]);
    let f4 = vec![0u8; 16];
    // Offsets outside the data, reversed, with a gap, overlapping, or disagreeing with the shape.
    assert_format(
        load1(&st_raw(&[("a", "F32", vec![4], [0, 16])], &f4[..8])),
        "incomplete metadata",
    );
    assert_format(
        load1(&st_raw(&[("a", "F32", vec![0], [16, 0])], &f4)),
        "invalid offset for tensor `a`",
    );
    assert_format(
        load1(&st_raw(
            &[
                ("a", "F32", vec![2], [0, 8]),
                ("b", "F32", vec![1], [12, 16]),
            ],
            &f4,
        )),
        "invalid offset for tensor `b`",
    );
    assert_format(
        load1(&st_raw(
            &[
                ("a", "F32", vec![3], [0, 12]),
                ("b", "F32", vec![2], [8, 16]),
            ],
            &f4,
        )),
        "invalid offset for tensor `b`",
    );
    assert_format(
        load1(&st_raw(&[("a", "F32", vec![3], [0, 16])], &f4)),
        "invalid shape, data type, or offset",
    );
    // Overflowing shape; offsets beyond u64.
    assert_format(
        load1(&st_raw(
            &[("a", "F32", vec![1 << 32, 1 << 32, 1 << 32], [0, 16])],
            &f4,
        )),
        "overflow computing buffer size",
    );
    assert_format(
        load1(&st_header(
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551616]}}"#,
            &f4,
        )),
        "invalid JSON in header",
    );
    // Unknown dtype, wrong JSON types, non-UTF-8 header, a header that is not an object.
    assert_format(
        load1(&st_raw(&[("a", "F99", vec![4], [0, 16])], &f4)),
        "invalid JSON in header",
    );
    assert_format(
        load1(&st_header(
            r#"{"a":{"dtype":32,"shape":[4],"data_offsets":[0,16]}}"#,
            &f4,
        )),
        "invalid JSON in header",
    );
    let mut bad = st_raw(&[("ab", "F32", vec![4], [0, 16])], &f4);
    let at = bad.windows(2).position(|w| w == b"ab").unwrap();
    bad[at] = 0xFF;
    assert_format(load1(&bad), "invalid UTF-8 in header");
    assert_format(load1(&st_header("[]", &[])), "invalid JSON in header");
    // Deeply nested JSON (recursion limit, no stack overflow).
    let deep = format!(
        "{{\"__metadata__\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_format(load1(&st_header(&deep, &[])), "invalid JSON in header");
    // Header length beyond the 100 MB limit.
    let mut b = (200u64 << 20).to_le_bytes().to_vec();
    b.extend(b"{}");
    assert_format(load1(&b), "header too large");
    // The same tensor named twice (the safetensors crate would keep the last silently).
    assert_format(
        load1(&st_raw(
            &[
                ("a", "F32", vec![4], [0, 16]),
                ("a", "F32", vec![4], [0, 16]),
            ],
            &f4,
        )),
        "tensor \"a\" is listed twice",
    );
    let t = hf_tensors();
    let mut e: Vec<(&str, &str, Vec<u64>, [u64; 2])> = Vec::new();
    let mut data = Vec::new();
    for (name, dt, shape, d) in &t {
        let s = data.len() as u64;
        data.extend(d);
        e.push((
            name,
            dt,
            shape.iter().map(|&x| x as u64).collect(),
            [s, data.len() as u64],
        ));
    }
    let norm = e[1].clone();
    e.push(norm);
    assert_format(
        load1(&st_raw(&e, &data)),
        "tensor \"model.layers.0.input_layernorm.weight\" is listed twice",
    );
}

#[test]
fn safetensors_config_value_errors() {
    let st = st_file(&hf_tensors());
    let null = serde_json::Value::Null;
    let load1 = |cfg: &[u8]| load_safetensors_bytes(cfg, &[&st]);
    // Sizes that overflow usize when multiplied (every count alone fits).
    assert_overflow(
        load1(&config_json(&[
            ("hidden_size", (1u64 << 40).into()),
            ("vocab_size", (1u64 << 40).into()),
            ("num_attention_heads", 1.into()),
            ("num_key_value_heads", 1.into()),
        ])),
        "vocab * hidden",
    );
    // Numbers that are not usize: beyond u64, fractional, negative.
    let mut c = String::from_utf8(config_json(&[])).unwrap();
    c = c.replace("\"vocab_size\":64", "\"vocab_size\":18446744073709551616");
    assert_format(
        load1(c.as_bytes()),
        "vocab_size must be a non-negative integer",
    );
    assert_format(
        load1(&config_json(&[("intermediate_size", 96.5.into())])),
        "intermediate_size must be a non-negative integer",
    );
    assert_format(
        load1(&config_json(&[("max_position_embeddings", 0.into())])),
        "max_positions is 0",
    );
    assert_format(
        load1(&config_json(&[("num_key_value_heads", 0.into())])),
        "n_kv_head is 0",
    );
    assert_format(
        load1(&config_json(&[("rms_norm_eps", (-1e-6).into())])),
        "rms_eps = -0.000001 is not a positive number",
    );
    assert_format(
        load1(&config_json(&[("rope_parameters", "default".into())])),
        "rope_parameters must be an object",
    );
    assert_format(
        load1(&config_json(&[("vocab_size", null.clone())])),
        "vocab_size is missing",
    );
    // Non-UTF-8 and deeply nested config.json.
    assert_format(load1(b"{\"model_type\": \"qwen\xff2\"}"), "not valid JSON");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_format(load1(deep.as_bytes()), "not valid JSON");
    // Head and vocabulary mismatches against the tensors.
    assert_format(
        load1(&config_json(&[("head_dim", 32.into())])),
        "\"model.layers.0.self_attn.q_proj.weight\" has shape [64, 64], expected [128, 64]",
    );
    assert_format(
        load1(&config_json(&[("vocab_size", 65.into())])),
        "\"model.embed_tokens.weight\" has shape [64, 64], expected [65, 64]",
    );
    let mut t = hf_tensors();
    t.push((
        "lm_head.weight".into(),
        "F32",
        vec![V / 2, H],
        f32_bytes(V * H / 2, 9),
    ));
    assert_format(
        load_safetensors_bytes(
            &config_json(&[("tie_word_embeddings", false.into())]),
            &[&st_file(&t)],
        ),
        "\"lm_head.weight\" has shape [32, 64], expected [64, 64]",
    );
    assert_format(
        load1(&config_json(&[("model_type", "qwen3".into())])),
        "lacks q_norm/k_norm, required by qwen3",
    );
    // A huge but valid string in an unused key is fine.
    let big = "x".repeat(1 << 20);
    load1(&config_json(&[("comment", big.into())])).unwrap();
}
