//! The Qwen tokenizer against Hugging Face `tokenizers` (scripts/gen_tokenizer_vectors.py), with
//! the real Qwen2.5 and Qwen3 vocabularies, from `tokenizer.json` and from GGUF metadata; the
//! streaming decoder; bad input; and the CLI's text modes on a small model with a small
//! tokenizer.

mod common;

use flate2::read::GzDecoder;
use qkern::model::{StreamDecoder, Tokenizer};
use qkern::Error;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tokenizer")
        .join(name)
}

fn gunzip(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(std::fs::File::open(data(name)).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn qwen25_json() -> &'static [u8] {
    static J: OnceLock<Vec<u8>> = OnceLock::new();
    J.get_or_init(|| gunzip("qwen2_5_tokenizer.json.gz"))
}

/// Qwen3's tokenizer.json, rebuilt as the generator script does (and checks against the real
/// file): Qwen2.5's with Qwen3's added tokens, merges written as pairs.
fn qwen3_json() -> &'static [u8] {
    static J: OnceLock<Vec<u8>> = OnceLock::new();
    J.get_or_init(|| {
        let mut t: Value = serde_json::from_slice(qwen25_json()).unwrap();
        let c: Value =
            serde_json::from_slice(&std::fs::read(data("qwen3_tokenizer_config.json")).unwrap())
                .unwrap();
        let mut added: Vec<(u64, Value)> = c["added_tokens_decoder"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, v)| {
                let mut v = v.clone();
                let id: u64 = id.parse().unwrap();
                v["id"] = id.into();
                (id, v)
            })
            .collect();
        added.sort_by_key(|a| a.0);
        t["added_tokens"] = Value::Array(added.into_iter().map(|a| a.1).collect());
        let merges: Vec<Value> = t["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let (a, b) = m.as_str().unwrap().split_once(' ').unwrap();
                Value::Array(vec![a.into(), b.into()])
            })
            .collect();
        t["model"]["merges"] = Value::Array(merges);
        serde_json::to_vec(&t).unwrap()
    })
}

fn qwen25() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let c = std::fs::read(data("qwen2_5_tokenizer_config.json")).unwrap();
        Tokenizer::from_hf_json(qwen25_json(), Some(&c)).unwrap()
    })
}

fn qwen3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let c = std::fs::read(data("qwen3_tokenizer_config.json")).unwrap();
        Tokenizer::from_hf_json(qwen3_json(), Some(&c)).unwrap()
    })
}

/// The test strings, in the generator's order: corpus lines, then groups of 5 lines joined by
/// "\n", then groups of 7 joined by "\r\n".
fn strings() -> (usize, Vec<String>) {
    let corpus = String::from_utf8(std::fs::read(data("corpus.txt")).unwrap()).unwrap();
    let lines: Vec<&str> = corpus.split('\n').collect();
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    for (n, sep) in [(5, "\n"), (7, "\r\n")] {
        out.extend(lines.chunks(n).map(|c| c.join(sep)));
    }
    (lines.len(), out)
}

fn expected(name: &str) -> Vec<Vec<u32>> {
    let text = String::from_utf8(gunzip(name)).unwrap();
    text.lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}

/// Encodes every test string and compares with the reference ids; returns (strings, ids).
fn check(tok: &Tokenizer, name: &str) -> (usize, usize) {
    let (n_lines, strings) = strings();
    let want = expected(name);
    assert_eq!(
        want.len(),
        strings.len(),
        "{name}: number of reference rows"
    );
    assert!(n_lines >= 3000, "corpus has {n_lines} lines");
    let mut failures = Vec::new();
    let mut n_ids = 0;
    let t0 = std::time::Instant::now();
    let got_all: Vec<Vec<u32>> = strings.iter().map(|s| tok.encode(s)).collect();
    let t = t0.elapsed().as_secs_f64();
    let bytes: usize = strings.iter().map(String::len).sum();
    eprintln!(
        "{name}: encoded {:.2} MB in {:.3} s ({:.1} MB/s)",
        bytes as f64 / 1e6,
        t,
        bytes as f64 / 1e6 / t
    );
    for (i, ((s, w), got)) in strings.iter().zip(&want).zip(got_all).enumerate() {
        n_ids += w.len();
        if &got != w {
            failures.push(format!("string {i} {s:?}:\n  got  {got:?}\n  want {w:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} strings differ from Hugging Face; first:\n{}",
        failures.len(),
        strings.len(),
        failures[..failures.len().min(5)].join("\n")
    );
    (strings.len(), n_ids)
}

#[test]
fn qwen25_matches_hugging_face() {
    let (n, ids) = check(qwen25(), "expected_qwen2_5.txt.gz");
    eprintln!("qwen2.5: {n} strings, {ids} ids identical");
}

#[test]
fn qwen3_matches_hugging_face() {
    let (n, ids) = check(qwen3(), "expected_qwen3.txt.gz");
    eprintln!("qwen3: {n} strings, {ids} ids identical");
}

/// NFC of the text outside added tokens (what Hugging Face's normalizer gives back).
fn round_trip_target(tok: &Tokenizer, s: &str) -> String {
    // Decoding the ids of each added token and each stretch between them separately gives the
    // same bytes; the stretches are normalized, the tokens not.
    let ids = tok.encode(s);
    let mut out = String::new();
    let mut plain = Vec::new();
    for id in ids {
        if tok.is_added(id) {
            out += &tok.decode(&plain).unwrap();
            plain.clear();
            out += &tok.decode(&[id]).unwrap();
        } else {
            plain.push(id);
        }
    }
    out + &tok.decode(&plain).unwrap()
}

#[test]
fn decode_inverts_encode() {
    let tok = qwen3();
    let (_, strings) = strings();
    let mut changed = 0;
    for s in &strings {
        let is_nfc = s.nfc().eq(s.chars());
        let ids = tok.encode(s);
        let back = tok.decode(&ids).unwrap();
        assert_eq!(back, round_trip_target(tok, s));
        if back != *s {
            // Only NFC may change the text.
            changed += 1;
            assert!(!is_nfc, "{s:?} came back as {back:?}");
        }
        // Streaming, one id at a time, gives the same text.
        let mut d = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            streamed += &d.push(tok, id).unwrap();
        }
        streamed += &d.flush();
        assert_eq!(streamed, back);
        // Bytes in, bytes out.
        assert_eq!(tok.encode_bytes(s.as_bytes()), ids);
    }
    eprintln!(
        "{} strings round-trip, {changed} as their NFC",
        strings.len()
    );
}

/// The hand-written pre-tokenizer against the regex itself (fancy-regex: look-ahead, Unicode
/// classes, case folding) on random strings over characters that exercise every alternative.
#[test]
fn pre_tokenizer_matches_the_regex() {
    use proptest::prelude::*;
    let re = fancy_regex::Regex::new(qkern::model::QWEN2_SPLIT_REGEX).unwrap();
    let alphabet: Vec<char> = " \t\r\n\u{b}\u{c}\u{85}\u{a0}\u{3000}\u{2028}aZzé中ひ한ß1٣½Ⅷ'sSlLeErRvVdDmMtT!.,_-/(\u{301}\u{94d}ſ😀\u{200d}\u{200b}\u{1c}"
        .chars()
        .collect();
    let strat = proptest::collection::vec(proptest::sample::select(alphabet), 0..40)
        .prop_map(|v| v.into_iter().collect::<String>());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(4000));
    runner
        .run(&strat, |s| {
            let want: Vec<&str> = re.find_iter(&s).map(|m| m.unwrap().as_str()).collect();
            prop_assert_eq!(want.concat(), s.clone(), "the regex covers the text");
            prop_assert_eq!(Tokenizer::split_pieces(&s), want, "{:?}", s);
            Ok(())
        })
        .unwrap();
}

#[test]
fn invalid_utf8_is_bytes() {
    let tok = qwen25();
    for raw in [
        &b"\xff"[..],
        b"abc\xffdef",
        b"\xc3",
        b"caf\xc3",
        b"\xe2\x82",
        b"ok \xed\xa0\x80 surrogate",
        b"\x80\x80\x80<|im_end|>\xfe",
    ] {
        let ids = tok.encode_bytes(raw);
        assert_eq!(tok.decode_bytes(&ids).unwrap(), raw, "{raw:?}");
        // Lossy text decoding never fails.
        let _ = tok.decode(&ids).unwrap();
    }
    let mut d = StreamDecoder::new();
    let ids = tok.encode("é"); // one token
    assert_eq!(d.push(tok, ids[0]).unwrap(), "é");
}

#[test]
fn special_tokens_and_unknown_ids() {
    let tok = qwen3();
    let im_end = tok.token_id("<|im_end|>").unwrap();
    assert_eq!(im_end, 151645);
    assert_eq!(tok.encode("<|im_end|>"), [im_end]);
    assert!(tok.encode_ordinary("<|im_end|>").len() > 1);
    // Unknown special-looking text is ordinary text.
    assert!(!tok
        .encode("<|not_a_token|>")
        .iter()
        .any(|&i| tok.is_added(i)));
    assert_eq!(tok.token_id("<think>"), Some(151667));
    assert_eq!(qwen25().token_id("<think>"), None);
    assert!(tok.stop_ids().contains(&151643) && tok.stop_ids().contains(&151645));
    assert_eq!(tok.eos(), Some(151645));
    assert!(!tok.add_bos());
    for bad in [tok.vocab_size() as u32, u32::MAX, 151_700] {
        assert!(matches!(tok.decode(&[bad]), Err(Error::Tokenizer(_))));
        assert!(StreamDecoder::new().push(tok, bad).is_err());
    }
}

// ---- GGUF -------------------------------------------------------------------------------------

/// Metadata entries of a GGUF file, written by hand (keys and values as llama.cpp writes them).
#[derive(Default)]
struct Kv {
    bytes: Vec<u8>,
    n: u64,
}

impl Kv {
    fn key(&mut self, k: &str, ty: u32) {
        self.n += 1;
        self.bytes.extend((k.len() as u64).to_le_bytes());
        self.bytes.extend(k.as_bytes());
        self.bytes.extend(ty.to_le_bytes());
    }
    fn str_raw(&mut self, s: &str) {
        self.bytes.extend((s.len() as u64).to_le_bytes());
        self.bytes.extend(s.as_bytes());
    }
    fn string(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        self.str_raw(v);
    }
    fn u32(&mut self, k: &str, v: u32) {
        self.key(k, 4);
        self.bytes.extend(v.to_le_bytes());
    }
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k, 7);
        self.bytes.push(v as u8);
    }
    fn strings(&mut self, k: &str, v: &[String]) {
        self.key(k, 9);
        self.bytes.extend(8u32.to_le_bytes());
        self.bytes.extend((v.len() as u64).to_le_bytes());
        for s in v {
            self.str_raw(s);
        }
    }
    fn i32s(&mut self, k: &str, v: &[i32]) {
        self.key(k, 9);
        self.bytes.extend(5u32.to_le_bytes());
        self.bytes.extend((v.len() as u64).to_le_bytes());
        for x in v {
            self.bytes.extend(x.to_le_bytes());
        }
    }
}

/// The GGUF tokenizer metadata of a Hugging Face tokenizer.json, as llama.cpp's converter
/// writes it: tokens by id (added tokens as their text), merges "a b", types (1 normal, 3
/// control = special added token, 4 user defined = other added token).
fn gguf_tokenizer_kv(json: &[u8], kv: &mut Kv, eos: u32) {
    let t: Value = serde_json::from_slice(json).unwrap();
    let vocab = t["model"]["vocab"].as_object().unwrap();
    let added = t["added_tokens"].as_array().unwrap();
    let n = vocab.len() + added.len();
    let mut tokens = vec![String::new(); n];
    let mut types = vec![1i32; n];
    for (s, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = s.clone();
    }
    for a in added {
        let id = a["id"].as_u64().unwrap() as usize;
        tokens[id] = a["content"].as_str().unwrap().to_string();
        types[id] = if a["special"].as_bool().unwrap() {
            3
        } else {
            4
        };
    }
    let merges: Vec<String> = t["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            Value::Array(p) => format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()),
            _ => panic!("merge"),
        })
        .collect();
    kv.string("tokenizer.ggml.model", "gpt2");
    kv.string("tokenizer.ggml.pre", "qwen2");
    kv.strings("tokenizer.ggml.tokens", &tokens);
    kv.i32s("tokenizer.ggml.token_type", &types);
    kv.strings("tokenizer.ggml.merges", &merges);
    kv.u32("tokenizer.ggml.eos_token_id", eos);
    kv.u32("tokenizer.ggml.padding_token_id", 151643);
    kv.u32("tokenizer.ggml.bos_token_id", 151643);
    kv.bool("tokenizer.ggml.add_bos_token", false);
}

/// A GGUF file with metadata only (no tensors).
fn gguf_file(kv: &Kv) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(kv.n.to_le_bytes());
    f.extend(&kv.bytes);
    f.resize(f.len().next_multiple_of(32), 0); // the (empty) data section is aligned
    f
}

#[test]
fn gguf_metadata_gives_the_same_ids() {
    let mut kv = Kv::default();
    kv.string("general.architecture", "qwen3");
    gguf_tokenizer_kv(qwen3_json(), &mut kv, 151645);
    let tok = Tokenizer::from_gguf_bytes(&gguf_file(&kv)).unwrap();
    assert_eq!(tok.vocab_size(), qwen3().vocab_size());
    assert_eq!(tok.eos(), Some(151645));
    assert_eq!(tok.stop_ids(), qwen3().stop_ids());
    let (n, ids) = check(&tok, "expected_qwen3.txt.gz");
    eprintln!("qwen3 from GGUF metadata: {n} strings, {ids} ids identical");

    // From a file whose metadata is larger than the first read (8 MiB: a 9 MiB chat template),
    // followed by bytes that are not metadata; padding tokens (UNUSED) have no text.
    let mut kv = Kv::default();
    gguf_tokenizer_kv(qwen3_json(), &mut kv, 151645);
    kv.string("tokenizer.chat_template", &"x".repeat(9 << 20));
    let mut f = gguf_file(&kv);
    f.extend(vec![0xaa; 1 << 20]);
    let path = std::env::temp_dir().join(format!("qkern-tok-meta-{}.gguf", std::process::id()));
    std::fs::write(&path, &f).unwrap();
    let tok = Tokenizer::load(&path);
    std::fs::remove_file(&path).ok();
    let tok = tok.unwrap();
    assert_eq!(tok.chat_template().map(str::len), Some(9 << 20));
    assert_eq!(tok.encode("Hello <think>"), qwen3().encode("Hello <think>"));
}

#[test]
fn gguf_padding_tokens_have_no_text() {
    let mut kv = Kv::default();
    let mut tokens: Vec<String> = (0..256).map(|i| byte_char(i).to_string()).collect();
    tokens.push("[PAD256]".into());
    tokens.push("[PAD257]".into());
    let mut types = vec![1; 256];
    types.extend([5, 5]);
    kv.string("tokenizer.ggml.model", "gpt2");
    kv.string("tokenizer.ggml.pre", "qwen2");
    kv.strings("tokenizer.ggml.tokens", &tokens);
    kv.i32s("tokenizer.ggml.token_type", &types);
    kv.strings("tokenizer.ggml.merges", &[]);
    let tok = Tokenizer::from_gguf_bytes(&gguf_file(&kv)).unwrap();
    assert_eq!(tok.vocab_size(), 258);
    assert!(tok.has_token(255) && !tok.has_token(256) && !tok.has_token(257));
    assert!(tok.decode(&[256]).is_err());
    assert_eq!(tok.decode(&tok.encode("[PAD256]")).unwrap(), "[PAD256]");
}

/// GPT-2's byte character of byte `b`.
fn byte_char(b: u32) -> char {
    let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    if printable {
        return char::from_u32(b).unwrap();
    }
    let rank = (0..b)
        .filter(|&x| !((0x21..=0x7e).contains(&x) || (0xa1..=0xac).contains(&x) || x >= 0xae))
        .count() as u32;
    char::from_u32(256 + rank).unwrap()
}

#[test]
fn gguf_without_tokenizer_is_an_error() {
    // The golden test models carry a token list but no merges.
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/qwen2_tied/model-q4_0.gguf");
    let e = Tokenizer::load(&model).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
    assert!(e.to_string().contains("merges"), "{e}");
    // No tokenizer keys at all; a Hugging Face folder without tokenizer.json.
    let mut kv = Kv::default();
    kv.string("general.architecture", "qwen2");
    let e = Tokenizer::from_gguf_bytes(&gguf_file(&kv)).unwrap_err();
    assert!(e.to_string().contains("no tokenizer"), "{e}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/qwen3");
    assert!(matches!(Tokenizer::load(&dir), Err(Error::Tokenizer(_))));
    // Other tokenizers, broken files: errors, never panics.
    for (key, val) in [
        ("tokenizer.ggml.model", "llama"),
        ("tokenizer.ggml.pre", "gpt-4o"),
    ] {
        let mut kv = Kv::default();
        kv.string(key, val);
        if key != "tokenizer.ggml.model" {
            kv.string("tokenizer.ggml.model", "gpt2");
            kv.strings("tokenizer.ggml.tokens", &["a".into(), "b".into()]);
            kv.strings("tokenizer.ggml.merges", &["a b".into()]);
        }
        let e = Tokenizer::from_gguf_bytes(&gguf_file(&kv)).unwrap_err();
        assert!(e.to_string().contains(val), "{e}");
    }
    let mut kv = Kv::default();
    kv.string("tokenizer.ggml.model", "gpt2");
    kv.string("tokenizer.ggml.pre", "qwen2");
    kv.strings("tokenizer.ggml.tokens", &["a".into(), "b".into()]);
    kv.strings("tokenizer.ggml.merges", &["a b".into()]);
    assert!(Tokenizer::from_gguf_bytes(&gguf_file(&kv)).is_err()); // no byte tokens
    let full = gguf_file(&kv);
    for cut in 0..full.len() {
        assert!(Tokenizer::from_gguf_bytes(&full[..cut]).is_err());
    }
    // A real file with one thing wrong.
    let real: Value = serde_json::from_slice(qwen25_json()).unwrap();
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 5] = [
        ("not below", |t| {
            t["model"]["vocab"] = serde_json::json!({"a": 4_000_000_000u64})
        }),
        ("no id below", |t| {
            t["added_tokens"][0]["id"] = 3_000_000_000u64.into()
        }),
        ("pre_tokenizer", |t| {
            t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+".into()
        }),
        ("normalizer", |t| {
            t["normalizer"] = serde_json::json!({"type": "NFKC"})
        }),
        ("single_word", |t| {
            t["added_tokens"][0]["single_word"] = true.into()
        }),
    ];
    for (what, edit) in edits {
        let mut t = real.clone();
        edit(&mut t);
        let e = Tokenizer::from_hf_json(&serde_json::to_vec(&t).unwrap(), None).unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    for bad in [
        &b"{"[..],
        b"{}",
        b"{\"model\":{\"type\":\"Unigram\"}}",
        b"[1,2]",
    ] {
        assert!(matches!(
            Tokenizer::from_hf_json(bad, None),
            Err(Error::Tokenizer(_))
        ));
    }
}

// ---- A small model with a small tokenizer: Generator and the CLI ---------------------------------

/// Skips one metadata value of GGUF type `ty` at `pos`.
fn skip_value(b: &[u8], pos: &mut usize, ty: u32) {
    let u64_at = |p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap()) as usize;
    match ty {
        0 | 1 | 7 => *pos += 1,
        2 | 3 => *pos += 2,
        4..=6 => *pos += 4,
        10..=12 => *pos += 8,
        8 => *pos += 8 + u64_at(*pos),
        9 => {
            let elem = u32::from_le_bytes(b[*pos..*pos + 4].try_into().unwrap());
            let n = u64_at(*pos + 4);
            *pos += 12;
            for _ in 0..n {
                skip_value(b, pos, elem);
            }
        }
        t => panic!("type {t}"),
    }
}

/// `src` (a GGUF file with the default alignment) with its `tokenizer.*` metadata replaced by
/// `tok`.
fn with_tokenizer(src: &[u8], tok: &Kv) -> Vec<u8> {
    let u64_at = |p: usize| u64::from_le_bytes(src[p..p + 8].try_into().unwrap()) as usize;
    let n_t = u64_at(8);
    let n_kv = u64_at(16);
    let mut pos = 24;
    let mut kv = Kv::default();
    for _ in 0..n_kv {
        let klen = u64_at(pos);
        let key = std::str::from_utf8(&src[pos + 8..pos + 8 + klen])
            .unwrap()
            .to_string();
        pos += 8 + klen;
        let ty = u32::from_le_bytes(src[pos..pos + 4].try_into().unwrap());
        pos += 4;
        let start = pos;
        skip_value(src, &mut pos, ty);
        assert_ne!(key, "general.alignment");
        if !key.starts_with("tokenizer.") {
            kv.key(&key, ty);
            kv.bytes.extend(&src[start..pos]);
        }
    }
    kv.bytes.extend(&tok.bytes);
    kv.n += tok.n;
    let infos = pos;
    for _ in 0..n_t {
        pos += 8 + u64_at(pos);
        let dims = u32::from_le_bytes(src[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4 + 8 * dims + 4 + 8;
    }
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend((n_t as u64).to_le_bytes());
    f.extend(kv.n.to_le_bytes());
    f.extend(&kv.bytes);
    f.extend(&src[infos..pos]);
    f.resize(f.len().next_multiple_of(32), 0);
    f.extend(&src[pos.next_multiple_of(32)..]);
    f
}

/// qwen2_untied (vocab 320) with a 320-token tokenizer: the 256 byte tokens, the first 61 merges
/// of Qwen's list that apply to them, and <|endoftext|>, <|im_start|>, <|im_end|> (CONTROL).
fn tiny_model() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let t: Value = serde_json::from_slice(qwen25_json()).unwrap();
        let vocab = t["model"]["vocab"].as_object().unwrap();
        let mut by_id: Vec<(u64, &str)> = vocab
            .iter()
            .map(|(s, id)| (id.as_u64().unwrap(), s.as_str()))
            .collect();
        by_id.sort();
        let mut tokens: Vec<String> = by_id[..256].iter().map(|x| x.1.to_string()).collect();
        let mut merges = Vec::new();
        for m in t["model"]["merges"].as_array().unwrap() {
            let (a, b) = m.as_str().unwrap().split_once(' ').unwrap();
            let ab = format!("{a}{b}");
            if tokens.iter().any(|x| x == a)
                && tokens.iter().any(|x| x == b)
                && !tokens.contains(&ab)
            {
                tokens.push(ab);
                merges.push(format!("{a} {b}"));
                if merges.len() == 61 {
                    break;
                }
            }
        }
        let mut types = vec![1i32; tokens.len()];
        for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
            tokens.push(s.to_string());
            types.push(3);
        }
        assert_eq!(tokens.len(), 320);
        let mut kv = Kv::default();
        kv.string("tokenizer.ggml.model", "gpt2");
        kv.string("tokenizer.ggml.pre", "qwen2");
        kv.strings("tokenizer.ggml.tokens", &tokens);
        kv.i32s("tokenizer.ggml.token_type", &types);
        kv.strings("tokenizer.ggml.merges", &merges);
        kv.u32("tokenizer.ggml.eos_token_id", 319);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src =
            std::fs::read(root.join("tests/data/models/qwen2_untied/model-q4_0.gguf")).unwrap();
        let path =
            std::env::temp_dir().join(format!("qkern-tokenizer-test-{}.gguf", std::process::id()));
        std::fs::write(&path, with_tokenizer(&src, &kv)).unwrap();
        path
    })
}

fn tiny() -> (qkern::model::Model, Tokenizer) {
    let path = tiny_model();
    let w = qkern::model::load(path).unwrap();
    let m = qkern::model::Model::new(w, qkern::Tier::active(), 1).unwrap();
    (m, Tokenizer::load(path).unwrap())
}

#[test]
fn generator_streams_what_greedy_decoding_gives() {
    use qkern::model::{Sampler, SamplerOptions, SessionOptions, Stop};
    let (model, tok) = tiny();
    assert_eq!(tok.vocab_size(), 320);
    let prompt =
        tok.encode("<|im_start|>user\nHello there, it's me.<|im_end|>\n<|im_start|>assistant\n");
    let opts = SessionOptions {
        capacity: Some(64),
        ..SessionOptions::default()
    };
    // Reference: argmax loop on prefill / decode.
    let mut s = model.session(opts.clone()).unwrap();
    let mut logits = s.prefill(&prompt).unwrap();
    let mut want = Vec::new();
    for _ in 0..20 {
        let t = qkern::model::argmax(&logits).unwrap();
        want.push(t);
        if tok.stop_ids().contains(&t) {
            break;
        }
        logits = s.decode(t).unwrap();
    }
    let mut s = model.session(opts.clone()).unwrap();
    let sampler = Sampler::new(SamplerOptions::default()).unwrap();
    let mut g = s.generate(&tok, &prompt, sampler, 20).unwrap();
    let text: String = g.by_ref().map(|p| p.unwrap()).collect();
    assert_eq!(g.tokens(), &want[..]);
    let shown: Vec<u32> = want
        .iter()
        .copied()
        .filter(|t| !tok.stop_ids().contains(t))
        .collect();
    assert_eq!(text, tok.decode(&shown).unwrap());
    match g.stop() {
        Some(Stop::Token(t)) => assert_eq!(Some(t), want.last().copied()),
        Some(Stop::Length) => assert_eq!(want.len(), 20),
        None => panic!("not stopped"),
    }
    assert_eq!(g.pending(), want.last().copied());
    drop(g);
    assert_eq!(s.pos(), prompt.len() + want.len() - 1);
    // Seeded sampling repeats itself.
    let sample = |seed| {
        let mut s = model.session(opts.clone()).unwrap();
        let o = SamplerOptions {
            temperature: 1.0,
            top_p: 0.9,
            seed,
            ..SamplerOptions::default()
        };
        let mut g = s
            .generate(&tok, &prompt, Sampler::new(o).unwrap(), 15)
            .unwrap();
        let _: Vec<_> = g.by_ref().collect();
        g.tokens().to_vec()
    };
    assert_eq!(sample(5), sample(5));
    // A prompt longer than the context, an empty prompt: errors.
    let mut s = model
        .session(SessionOptions {
            capacity: Some(8),
            ..opts.clone()
        })
        .unwrap();
    let e = s.generate(
        &tok,
        &prompt,
        Sampler::new(SamplerOptions::default()).unwrap(),
        4,
    );
    assert!(matches!(e, Err(Error::ContextFull { .. })));
    assert!(s
        .generate(
            &tok,
            &[],
            Sampler::new(SamplerOptions::default()).unwrap(),
            4
        )
        .is_err());
    // The budget also ends at the end of the context, without an error.
    let mut s = model
        .session(SessionOptions {
            capacity: Some(prompt.len() + 2),
            ..opts
        })
        .unwrap();
    let mut g = s
        .generate(
            &tok,
            &prompt,
            Sampler::new(SamplerOptions::default()).unwrap(),
            100,
        )
        .unwrap();
    assert!(g.by_ref().all(|p| p.is_ok()));
    assert!(g.tokens().len() <= 3);
}

fn qkern(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::process::Stdio;
    let mut c = common::command(env!("CARGO_BIN_EXE_qkern"));
    c.args(args).env("QKERN_THREADS", "1");
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cli_text_modes() {
    let m = tiny_model().to_str().unwrap();
    let (_, tok) = tiny();
    // tokenize
    let text = "Hello <|im_end|> world, it's 2024!";
    let (ok, out, err) = qkern(&["tokenize", "--model", m, "--text", text], None);
    assert!(ok, "{err}");
    let ids: Vec<String> = tok.encode(text).iter().map(u32::to_string).collect();
    assert_eq!(out.trim(), ids.join(","));
    // generate --prompt --chat, seeded: streams text, reports speeds, repeats itself.
    let args = [
        "generate",
        "--model",
        m,
        "--prompt",
        "Hi!",
        "--chat",
        "--system",
        "Be brief.",
        "-n",
        "12",
        "--temp",
        "0.9",
        "--top-k",
        "50",
        "--top-p",
        "0.95",
        "--min-p",
        "0.01",
        "--repeat-penalty",
        "1.1",
        "--seed",
        "7",
        "--threads",
        "1",
    ];
    let (ok, out1, err) = qkern(&args, None);
    assert!(ok, "{err}");
    assert!(
        err.contains("prefill:") && err.contains("tokens/s"),
        "{err}"
    );
    let (_, out2, _) = qkern(&args, None);
    assert_eq!(out1, out2);
    // Plain text continuation, greedy.
    let (ok, _, err) = qkern(
        &["generate", "--model", m, "--prompt", "Once upon", "-n", "5"],
        None,
    );
    assert!(ok, "{err}");
    // The old token-id mode still prints ids.
    let (ok, out, err) = qkern(
        &["generate", "--model", m, "--tokens", "1,2,3", "-n", "4"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.split_whitespace()
            .filter(|t| t.parse::<u32>().is_ok())
            .count(),
        4,
        "{out}"
    );
    // chat: two lines, two replies, one KV cache.
    let (ok, out, err) = qkern(
        &["chat", "--model", m, "-n", "6", "--no-think"],
        Some("Hello\nAnd again?\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(err.matches("[prefill").count(), 2, "{err}");
    assert!(out.lines().count() >= 2, "{out:?}");
    // Bad input: clear errors, exit code 1, no panic.
    let long = "word ".repeat(400);
    let (ok, _, err) = qkern(
        &["generate", "--model", m, "--prompt", &long, "-n", "4"],
        None,
    );
    assert!(!ok && err.contains("context"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let untokenized =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/qwen2_tied/model-q4_0.gguf");
    let (ok, _, err) = qkern(
        &[
            "generate",
            "--model",
            untokenized.to_str().unwrap(),
            "--prompt",
            "Hi",
        ],
        None,
    );
    assert!(!ok && err.contains("tokenizer"), "{err}");
    let (ok, _, err) = qkern(
        &["generate", "--model", m, "--prompt", "Hi", "--temp", "-1"],
        None,
    );
    assert!(!ok && err.contains("temperature"), "{err}");
    let (ok, _, err) = qkern(
        &["generate", "--model", m, "--prompt", "Hi", "--no-think"],
        None,
    );
    assert!(!ok && err.contains("--chat"), "{err}");
}

#[cfg(unix)]
#[test]
fn cli_non_utf8_argument_is_an_error() {
    use std::os::unix::ffi::OsStrExt;
    let o = common::command(env!("CARGO_BIN_EXE_qkern"))
        .args([
            "tokenize",
            "--model",
            tiny_model().to_str().unwrap(),
            "--text",
        ])
        .arg(std::ffi::OsStr::from_bytes(b"bad \xff"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not valid UTF-8") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn cli_logits_decode_tokens() {
    use qkern::model::SessionOptions;
    let m = tiny_model().to_str().unwrap();
    let out = std::env::temp_dir().join(format!("qkern-tok-logits-{}.bin", std::process::id()));
    let (ok, _, err) = qkern(
        &[
            "logits",
            "--model",
            m,
            "--tokens",
            "10,20,30",
            "--decode-tokens",
            "5,6,7",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got.len(), 4 * 320);
    // The same rows as a prefill of the whole sequence (positions 2..6).
    let (model, _) = tiny();
    let mut s = model.session(SessionOptions::default()).unwrap();
    let all = s.prefill_all(&[10, 20, 30, 5, 6, 7]).unwrap();
    let want = &all[2 * 320..];
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-3 * scale,
        "decode rows differ from prefill by {diff} (scale {scale})"
    );
}
