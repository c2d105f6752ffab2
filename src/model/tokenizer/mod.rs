//! The Qwen2 / Qwen2.5 / Qwen3 tokenizer: byte-level BPE with Qwen2's pre-tokenizer, built from a
//! GGUF file's `tokenizer.ggml.*` metadata or a Hugging Face `tokenizer.json`.
//!
//! Encoding follows Hugging Face `tokenizers` exactly (checked on a multilingual corpus with the
//! real Qwen2.5 and Qwen3 vocabularies in `tests/tokenizer.rs`; docs/TOKENIZER.md):
//!
//! 1. added tokens (`<|im_start|>`, `<think>`, ...: GGUF token types CONTROL and USER_DEFINED)
//!    are found in the raw text first, leftmost match first and the longest among those starting
//!    at the same place, whether `special` or not;
//! 2. each stretch of text between them is NFC-normalized (Qwen's `normalizer`),
//! 3. split by Qwen2's pre-tokenizer regex (`pretok.rs`),
//! 4. and each piece's bytes are mapped to GPT-2's byte characters and merged by rank (`bpe.rs`).
//!
//! Decoding maps ids back to bytes (an added token to its text); [`StreamDecoder`] turns ids into
//! text as they come, holding back the bytes of a character split across tokens.

mod bpe;
mod pretok;

use crate::{Error, Result};
use bpe::Merges;
use std::collections::HashMap;
use std::path::Path;

fn terr<T>(s: impl Into<String>) -> Result<T> {
    Err(Error::Tokenizer(s.into()))
}

/// The split regex of Qwen2's `tokenizer.json` (the one pre-tokenizer implemented).
pub const QWEN2_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A token matched in the raw text before BPE (Hugging Face's "added tokens"; GGUF token types
/// CONTROL and USER_DEFINED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedToken {
    /// Its id.
    pub id: u32,
    /// Its text.
    pub content: String,
    /// Marked `special` (Hugging Face) / CONTROL (GGUF). Both kinds are matched in the text.
    pub special: bool,
    /// Whether white space on its left is taken into the match (Hugging Face `lstrip`).
    pub lstrip: bool,
    /// Whether white space on its right is taken into the match (Hugging Face `rstrip`).
    pub rstrip: bool,
}

/// The plain parts a tokenizer is built from, whatever the file.
pub(crate) struct Parts {
    /// Vocabulary strings in GPT-2's byte characters, by id (`None`: no token with that id).
    pub vocab: Vec<Option<String>>,
    /// Merges as pairs of vocabulary strings, by rank.
    pub merges: Vec<(String, String)>,
    pub added: Vec<AddedToken>,
    pub nfc: bool,
    pub ignore_merges: bool,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

/// A Qwen byte-level BPE tokenizer. Build it with [`Tokenizer::load`] (a GGUF file or a Hugging
/// Face folder), [`Tokenizer::from_gguf_bytes`] or [`Tokenizer::from_hf_json`].
#[derive(Clone, Debug)]
pub struct Tokenizer {
    /// The bytes of each id (an added token: its text); `None` for ids without a token.
    bytes: Vec<Option<Vec<u8>>>,
    /// The id of each single byte.
    byte_ids: [u32; 256],
    merges: Merges,
    /// Whole-piece lookup, when the model skips merges for pieces in the vocabulary.
    whole: Option<HashMap<Vec<u8>, u32>>,
    added: Vec<AddedToken>,
    /// Whether an added token starts with this byte.
    added_first: [bool; 256],
    is_added: Vec<bool>,
    nfc: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

impl Tokenizer {
    pub(crate) fn build(p: Parts) -> Result<Tokenizer> {
        let chars = bpe::byte_chars();
        let inverse: HashMap<char, u8> = chars
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let mut n = p.vocab.len();
        for a in &p.added {
            n = n.max(a.id as usize + 1);
        }
        if n > u32::MAX as usize {
            return terr("vocabulary larger than 2^32 tokens");
        }
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(p.vocab.len());
        let mut bytes: Vec<Option<Vec<u8>>> = vec![None; n];
        for (id, s) in p.vocab.iter().enumerate() {
            let Some(s) = s else { continue };
            // A string that appears twice (possible in a GGUF token list) encodes to its first id.
            ids.entry(s.as_str()).or_insert(id as u32);
            // A vocabulary string outside the byte map cannot be produced by BPE; keep its UTF-8.
            bytes[id] =
                Some(bpe::string_bytes(s, &inverse).unwrap_or_else(|| s.as_bytes().to_vec()));
        }
        let mut byte_ids = [0u32; 256];
        for (b, c) in chars.iter().enumerate() {
            match ids.get(c.to_string().as_str()) {
                Some(&id) => byte_ids[b] = id,
                None => {
                    return terr(format!(
                        "the vocabulary has no token for byte 0x{b:02x} ({c:?}): not a byte-level BPE vocabulary"
                    ))
                }
            }
        }
        let mut merges = Merges::with_capacity(p.merges.len());
        for (rank, (a, b)) in p.merges.iter().enumerate() {
            let look = |s: &str| {
                ids.get(s).copied().ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "merge {rank} ({a:?} {b:?}): {s:?} is not in the vocabulary"
                    ))
                })
            };
            let (ia, ib, m) = (look(a)?, look(b)?, look(&format!("{a}{b}"))?);
            // The first (lowest) rank of a pair wins, as in Hugging Face.
            merges.entry((ia, ib)).or_insert((rank as u32, m));
        }
        let whole = p.ignore_merges.then(|| {
            bytes
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((b.clone()?, i as u32)))
                .collect()
        });
        let mut is_added = vec![false; n];
        let mut added_first = [false; 256];
        for a in &p.added {
            if a.content.is_empty() {
                return terr(format!("added token {} has empty text", a.id));
            }
            bytes[a.id as usize] = Some(a.content.as_bytes().to_vec());
            is_added[a.id as usize] = true;
            added_first[a.content.as_bytes()[0] as usize] = true;
        }
        for (what, id) in [("bos", p.bos), ("eos", p.eos), ("eot", p.eot)] {
            if let Some(id) = id {
                if bytes.get(id as usize).is_none_or(|b| b.is_none()) {
                    return terr(format!(
                        "{what} token id {id} is not in the vocabulary of {n}"
                    ));
                }
            }
        }
        Ok(Tokenizer {
            bytes,
            byte_ids,
            merges,
            whole,
            added: p.added,
            added_first,
            is_added,
            nfc: p.nfc,
            bos: p.bos,
            eos: p.eos,
            eot: p.eot,
            add_bos: p.add_bos,
            chat_template: p.chat_template,
        })
    }

    /// Loads the tokenizer of a model path as [`load`](super::load) reads it: a directory (or a
    /// file inside one that is not `.gguf`) as a Hugging Face folder (`tokenizer.json`, plus
    /// `tokenizer_config.json` if present), a pre-packed qkern file as the tokenizer stored in
    /// it, anything else as a GGUF file.
    pub fn load(path: &Path) -> Result<Tokenizer> {
        if super::prepacked::is_prepacked(path) {
            return super::prepacked::tokenizer_from_file(path);
        }
        if path.is_dir() {
            return Tokenizer::from_hf_dir(path);
        }
        let is_gguf = path.extension().is_some_and(|e| e == "gguf");
        match path.parent() {
            Some(dir) if !is_gguf && dir.join("tokenizer.json").is_file() => {
                Tokenizer::from_hf_dir(dir)
            }
            Some(dir) if !is_gguf && dir.join("config.json").is_file() => {
                Tokenizer::from_hf_dir(dir)
            }
            _ => super::gguf::read_vocab_file(path)
                .and_then(Tokenizer::from_gguf_vocab)
                .map_err(|e| match e {
                    Error::Tokenizer(s) => Error::Tokenizer(format!("{}: {s}", path.display())),
                    e => e,
                }),
        }
    }

    /// Reads `tokenizer.json` (required) and `tokenizer_config.json` (optional: eos / bos
    /// tokens, `add_bos_token`, the chat template) from a Hugging Face folder.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
        let tj = dir.join("tokenizer.json");
        let json = std::fs::read(&tj)
            .map_err(|e| Error::Tokenizer(format!("{}: no tokenizer ({e})", tj.display())))?;
        let cj = dir.join("tokenizer_config.json");
        let config = match std::fs::read(&cj) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Io(format!("{}: {e}", cj.display()))),
        };
        Tokenizer::from_hf_json(&json, config.as_deref())
    }

    /// Builds the tokenizer from the bytes of a Hugging Face `tokenizer.json` and, optionally, of
    /// its `tokenizer_config.json`. The file must describe Qwen2's tokenizer: a BPE model, NFC or
    /// no normalizer, the Qwen2 split regex then byte-level pre-tokenization, a byte-level
    /// decoder; anything else is an [`Error::Tokenizer`] naming what differs.
    pub fn from_hf_json(tokenizer_json: &[u8], config_json: Option<&[u8]>) -> Result<Tokenizer> {
        hf::parts(tokenizer_json, config_json).and_then(Tokenizer::build)
    }

    /// Builds the tokenizer from the bytes of a GGUF file (or of its start, up to the end of its
    /// metadata): its metadata (`tokenizer.ggml.model` = `gpt2`,
    /// `tokenizer.ggml.pre` = `qwen2`, tokens, merges, token types, bos / eos / eot ids, the
    /// chat template). Tensors are not read. NFC normalization is applied as in Hugging Face
    /// (llama.cpp skips it; the two differ only on text that is not in NFC).
    pub fn from_gguf_bytes(bytes: &[u8]) -> Result<Tokenizer> {
        super::gguf::read_vocab(bytes).and_then(Tokenizer::from_gguf_vocab)
    }

    fn from_gguf_vocab(v: super::gguf::GgufVocab) -> Result<Tokenizer> {
        let mut vocab = Vec::with_capacity(v.tokens.len());
        let mut added = Vec::new();
        for (i, t) in v.tokens.into_iter().enumerate() {
            match v.types.get(i).copied().unwrap_or(1) {
                // CONTROL, USER_DEFINED: matched in the raw text, stored as plain text.
                ty @ (3 | 4) => {
                    added.push(AddedToken {
                        id: i as u32,
                        content: t,
                        special: ty == 3,
                        lstrip: false,
                        rstrip: false,
                    });
                    vocab.push(None);
                }
                // UNUSED (llama.cpp's converter pads the vocabulary to the model's rows with
                // `[PAD<id>]` tokens of this type): no token.
                5 => vocab.push(None),
                _ => vocab.push(Some(t)),
            }
        }
        let mut merges = Vec::with_capacity(v.merges.len());
        for (i, m) in v.merges.iter().enumerate() {
            let mut it = m.split(' ');
            match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), None) => merges.push((a.to_string(), b.to_string())),
                _ => {
                    return terr(format!(
                        "tokenizer.ggml.merges[{i}] = {m:?} is not two tokens"
                    ))
                }
            }
        }
        Tokenizer::build(Parts {
            vocab,
            merges,
            added,
            nfc: true,
            ignore_merges: false,
            bos: v.bos,
            eos: v.eos,
            eot: v.eot,
            add_bos: v.add_bos,
            chat_template: v.chat_template,
        })
    }

    /// Number of ids (the largest id plus one).
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `id` has a token (decodes to something).
    pub fn has_token(&self, id: u32) -> bool {
        self.bytes.get(id as usize).is_some_and(|b| b.is_some())
    }

    /// The added tokens (special and not), in the file's order.
    pub fn added_tokens(&self) -> &[AddedToken] {
        &self.added
    }

    /// The id of an added token by its text (`"<|im_end|>"`), or of a plain token by its bytes.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        if let Some(a) = self.added.iter().find(|a| a.content == text) {
            return Some(a.id);
        }
        let ids = self.encode(text);
        (ids.len() == 1).then(|| ids[0])
    }

    /// Beginning-of-sequence id (Qwen has none).
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// Whether prompts start with [`bos`](Self::bos) (GGUF `tokenizer.ggml.add_bos_token`,
    /// `tokenizer_config.json` `add_bos_token`; false for Qwen).
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// End-of-sequence id from the file (`<|im_end|>` for instruct models, `<|endoftext|>` for
    /// base models).
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Ids that end a generated reply: eos, eot, `<|im_end|>` and `<|endoftext|>`.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = [self.eos, self.eot].into_iter().flatten().collect();
        for t in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(a) = self.added.iter().find(|a| a.content == t) {
                v.push(a.id);
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The chat template text of the file, if any (only inspected, never executed: see
    /// [`ChatFormat`](super::ChatFormat)).
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Encodes text: added tokens found in it become their ids, the rest goes through NFC,
    /// pre-tokenization and BPE. No bos is added ([`add_bos`](Self::add_bos) says whether to).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, &mut out);
        out
    }

    /// [`encode`](Self::encode), appending to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut start = 0;
        let mut at = 0;
        while let Some((a, b, id)) = self.next_added(text, at, start) {
            self.encode_plain(&text[start..a], out);
            out.push(id);
            start = b;
            at = b;
        }
        self.encode_plain(&text[start..], out);
    }

    /// Encodes text without looking for added tokens: `"<|im_end|>"` becomes ordinary pieces.
    /// For user text that must not inject control tokens.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_plain(text, &mut out);
        out
    }

    /// Encodes bytes that may not be UTF-8: each valid UTF-8 stretch is encoded as by
    /// [`encode`](Self::encode), and each run of invalid bytes is one piece of BPE over its
    /// bytes (byte tokens, merged where the vocabulary has merges for them). So
    /// `decode_bytes(encode_bytes(x)) == x` for any `x` whose text is in NFC.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        for chunk in bytes.utf8_chunks() {
            self.encode_into(chunk.valid(), &mut out);
            if !chunk.invalid().is_empty() {
                self.bpe_piece(chunk.invalid(), &mut out);
            }
        }
        out
    }

    /// The next added token at or after byte `at`: `(start, end, id)` of its match, the match
    /// widened over white space for `lstrip` (not before `floor`) / `rstrip`.
    fn next_added(&self, text: &str, at: usize, floor: usize) -> Option<(usize, usize, u32)> {
        if self.added.is_empty() {
            return None;
        }
        let b = text.as_bytes();
        for p in at..b.len() {
            if !self.added_first[b[p] as usize] {
                continue;
            }
            let best = self
                .added
                .iter()
                .filter(|a| b[p..].starts_with(a.content.as_bytes()))
                .max_by_key(|a| (a.content.len(), std::cmp::Reverse(a.id)));
            if let Some(a) = best {
                let mut s = p;
                let mut e = p + a.content.len();
                if a.lstrip {
                    let t = text[floor..s].trim_end();
                    s = floor + t.len();
                }
                if a.rstrip {
                    e = text.len() - text[e..].trim_start().len();
                }
                return Some((s, e, a.id));
            }
        }
        None
    }

    /// The pieces Qwen2's split regex cuts `text` into ([`QWEN2_SPLIT_REGEX`]; no NFC, no added
    /// tokens): the pre-tokenizer alone, for tests and inspection.
    pub fn split_pieces(text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        pretok::split(text, &mut v);
        v.into_iter().map(|(a, b)| &text[a..b]).collect()
    }

    /// Text without added tokens: NFC, pre-tokenization, BPE per piece.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
        let normalized;
        let text = if self.nfc && is_nfc_quick(text.chars()) != IsNormalized::Yes {
            normalized = text.nfc().collect::<String>();
            normalized.as_str()
        } else {
            text
        };
        let mut pieces = Vec::new();
        pretok::split(text, &mut pieces);
        for (a, b) in pieces {
            self.bpe_piece(&text.as_bytes()[a..b], out);
        }
    }

    fn bpe_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.whole.as_ref().and_then(|w| w.get(piece)) {
            out.push(id);
            return;
        }
        let mut syms: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        bpe::merge(&mut syms, &self.merges, out);
    }

    /// The bytes of `ids` (an added token: its text). An id without a token is an error.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(out)
    }

    /// The text of `ids`; bytes that are not UTF-8 become U+FFFD (Hugging Face's `errors =
    /// "replace"`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// The bytes of one id.
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        match self.bytes.get(id as usize) {
            Some(Some(b)) => Ok(b),
            _ => terr(format!(
                "token id {id} has no text (vocabulary of {} ids)",
                self.bytes.len()
            )),
        }
    }

    /// Whether `id` is an added token (special or not).
    pub fn is_added(&self, id: u32) -> bool {
        self.is_added.get(id as usize).copied().unwrap_or(false)
    }
}

/// Turns ids into text as they come: emits the longest complete UTF-8 prefix of the bytes so far
/// and keeps an incomplete character for the next token. Bytes that can never be UTF-8 become
/// U+FFFD at once.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Adds one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.pending.extend_from_slice(tok.token_bytes(id)?);
        Ok(self.take(false))
    }

    /// Returns whatever is pending, incomplete characters as U+FFFD.
    pub fn flush(&mut self) -> String {
        self.take(true)
    }

    fn take(&mut self, all: bool) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).expect("valid prefix"));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{fffd}');
                            rest = &bad[n..];
                        }
                        None if all => {
                            out.push('\u{fffd}');
                            rest = &[];
                            break;
                        }
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

/// Reading Hugging Face's `tokenizer.json` and `tokenizer_config.json`.
mod hf {
    use super::{terr, AddedToken, Parts, QWEN2_SPLIT_REGEX};
    use crate::{Error, Result};
    use serde_json::Value;

    fn kind(v: &Value) -> Option<&str> {
        v.get("type").and_then(Value::as_str)
    }

    fn check_pre(pre: &Value) -> Result<()> {
        let bad = |what: &str| {
            terr(format!(
                "pre_tokenizer {what}: only Qwen2's (Split with its regex, then ByteLevel \
                 without regex) is supported"
            ))
        };
        if kind(pre) != Some("Sequence") {
            return bad("is not a Sequence");
        }
        let list = pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let [split, bl] = list else {
            return bad("does not have two steps");
        };
        let regex = split
            .get("pattern")
            .and_then(|p| p.get("Regex"))
            .and_then(Value::as_str);
        if kind(split) != Some("Split")
            || regex != Some(QWEN2_SPLIT_REGEX)
            || split.get("behavior").and_then(Value::as_str) != Some("Isolated")
            || split.get("invert").and_then(Value::as_bool) == Some(true)
        {
            return bad("has another split");
        }
        if kind(bl) != Some("ByteLevel")
            || bl.get("use_regex").and_then(Value::as_bool) != Some(false)
            || bl.get("add_prefix_space").and_then(Value::as_bool) == Some(true)
        {
            return bad("has another byte-level step");
        }
        Ok(())
    }

    fn nfc(norm: &Value) -> Result<bool> {
        match norm {
            Value::Null => Ok(false),
            n if kind(n) == Some("NFC") => Ok(true),
            n if kind(n) == Some("Sequence")
                && n.get("normalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|l| l.is_empty()) =>
            {
                Ok(false)
            }
            n => terr(format!(
                "normalizer {:?} is not supported (NFC or none)",
                kind(n).unwrap_or("?")
            )),
        }
    }

    fn config_token(c: &Value, key: &str) -> Option<String> {
        match c.get(key)? {
            Value::String(s) => Some(s.clone()),
            v => v.get("content").and_then(Value::as_str).map(str::to_string),
        }
    }

    pub(super) fn parts(json: &[u8], config: Option<&[u8]>) -> Result<Parts> {
        let t: Value = serde_json::from_slice(json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json is not JSON: {e}")))?;
        let model = t
            .get("model")
            .ok_or_else(|| Error::Tokenizer("tokenizer.json has no model".into()))?;
        if kind(model) != Some("BPE") {
            return terr(format!(
                "tokenizer model {:?} is not supported (BPE)",
                kind(model).unwrap_or("?")
            ));
        }
        if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
            return terr("BPE with byte_fallback is not supported");
        }
        check_pre(t.get("pre_tokenizer").unwrap_or(&Value::Null))?;
        let nfc = nfc(t.get("normalizer").unwrap_or(&Value::Null))?;
        if let Some(d) = t.get("decoder").filter(|d| !d.is_null()) {
            if kind(d) != Some("ByteLevel") {
                return terr("decoder is not ByteLevel");
            }
        }
        let vmap = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::Tokenizer("model.vocab is not an object".into()))?;
        let added_list = t
            .get("added_tokens")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // Ids are dense in real files: bounding them by the number of entries keeps a small
        // malformed file from asking for a huge table.
        let limit = (vmap.len() + added_list.len()) as u64;
        let mut vocab: Vec<Option<String>> = Vec::new();
        for (s, id) in vmap {
            let id = id.as_u64().filter(|&i| i < limit).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "vocab entry {s:?} has id {id}, not below the {limit} entries"
                ))
            })? as usize;
            if id >= vocab.len() {
                vocab.resize(id + 1, None);
            }
            if vocab[id].is_some() {
                return terr(format!("id {id} appears twice in the vocabulary"));
            }
            vocab[id] = Some(s.clone());
        }
        let mut merges = Vec::new();
        for (i, m) in model
            .get("merges")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let pair = match m {
                Value::String(s) => {
                    let mut it = s.split(' ');
                    match (it.next(), it.next(), it.next()) {
                        (Some(a), Some(b), None) => Some((a.to_string(), b.to_string())),
                        _ => None,
                    }
                }
                Value::Array(l) => match l.as_slice() {
                    [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
                    _ => None,
                },
                _ => None,
            };
            merges.push(pair.ok_or_else(|| Error::Tokenizer(format!("merge {i} is not a pair")))?);
        }
        let mut added = Vec::new();
        for a in added_list {
            let flag = |k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
            let id = a
                .get("id")
                .and_then(Value::as_u64)
                .filter(|&i| i < limit)
                .ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "added token {} has no id below the {limit} entries",
                        a.get("content").unwrap_or(&Value::Null)
                    ))
                })?;
            let content = a
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Tokenizer(format!("added token {id} has no content")))?;
            if flag("single_word") {
                return terr(format!(
                    "added token {content:?}: single_word is not supported"
                ));
            }
            added.push(AddedToken {
                id: id as u32,
                content: content.to_string(),
                special: flag("special"),
                lstrip: flag("lstrip"),
                rstrip: flag("rstrip"),
            });
        }
        let mut p = Parts {
            vocab,
            merges,
            added,
            nfc,
            ignore_merges: model
                .get("ignore_merges")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bos: None,
            eos: None,
            eot: None,
            add_bos: false,
            chat_template: None,
        };
        if let Some(c) = config {
            let c: Value = serde_json::from_slice(c)
                .map_err(|e| Error::Tokenizer(format!("tokenizer_config.json is not JSON: {e}")))?;
            let id_of = |p: &Parts, key: &str| -> Result<Option<u32>> {
                let Some(s) = config_token(&c, key) else {
                    return Ok(None);
                };
                let id = p
                    .added
                    .iter()
                    .find(|a| a.content == s)
                    .map(|a| a.id)
                    .or_else(|| {
                        p.vocab
                            .iter()
                            .position(|v| v.as_deref() == Some(&s))
                            .map(|i| i as u32)
                    });
                match id {
                    Some(id) => Ok(Some(id)),
                    None => terr(format!("tokenizer_config.json {key} {s:?} is not a token")),
                }
            };
            p.bos = id_of(&p, "bos_token")?;
            p.eos = id_of(&p, "eos_token")?;
            p.add_bos = c
                .get("add_bos_token")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            p.chat_template = c
                .get("chat_template")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes as tokens 0..256, "ab" = 256, " a" = 257; `<|x|>` added.
    fn tiny() -> Tokenizer {
        let chars = bpe::byte_chars();
        let mut vocab: Vec<Option<String>> = chars.iter().map(|c| Some(c.to_string())).collect();
        vocab.push(Some("ab".into()));
        vocab.push(Some("Ġa".into()));
        Tokenizer::build(Parts {
            vocab,
            merges: vec![("a".into(), "b".into()), ("Ġ".into(), "a".into())],
            added: vec![AddedToken {
                id: 258,
                content: "<|x|>".into(),
                special: true,
                lstrip: false,
                rstrip: false,
            }],
            nfc: true,
            ignore_merges: false,
            bos: None,
            eos: Some(258),
            eot: None,
            add_bos: false,
            chat_template: None,
        })
        .unwrap()
    }

    #[test]
    fn encode_decode_tiny() {
        let t = tiny();
        assert_eq!(t.encode("ab a"), [256, 257]);
        assert_eq!(t.encode("ab<|x|>ab"), [256, 258, 256]);
        assert_eq!(t.encode_ordinary("<|x|>").len(), 5);
        assert_eq!(
            t.decode(&t.encode("ab<|x|> a\u{e9}")).unwrap(),
            "ab<|x|> a\u{e9}"
        );
        // NFC: e + combining acute becomes é.
        assert_eq!(t.encode("e\u{301}"), t.encode("\u{e9}"));
        assert!(t.decode(&[259]).is_err());
        let raw = b"a\xffb\xc3";
        assert_eq!(t.decode_bytes(&t.encode_bytes(raw)).unwrap(), raw);
        assert_eq!(t.stop_ids(), [258]);
        // A long piece costs about its length (the heap BPE), not its square.
        assert_eq!(t.encode(&"ab".repeat(100_000)), vec![256; 100_000]);
    }

    #[test]
    fn stream_decoder_waits_for_whole_characters() {
        let t = tiny();
        let mut d = StreamDecoder::new();
        let ids = t.encode("€"); // 3 byte tokens
        assert_eq!(ids.len(), 3);
        assert_eq!(d.push(&t, ids[0]).unwrap(), "");
        assert_eq!(d.push(&t, ids[1]).unwrap(), "");
        assert_eq!(d.push(&t, ids[2]).unwrap(), "€");
        // Token i is byte i here: 0xff is never UTF-8, 0xe2 starts a 3-byte character.
        assert_eq!(d.push(&t, 0xff).unwrap(), "\u{fffd}");
        assert_eq!(d.push(&t, 0xe2).unwrap(), "");
        assert_eq!(d.flush(), "\u{fffd}");
        assert_eq!(d.flush(), "");
    }
}
