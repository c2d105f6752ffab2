//! GGUF v3 loader (llama.cpp's names and keys for `qwen2` and `qwen3`).
//!
//! Layout: magic `GGUF`, version (2 or 3; they differ only in big-endian support, which this
//! reader does not have), tensor count, metadata count, metadata key/values, tensor infos, padding
//! to `general.alignment` (default 32), then the data section. Every count, size, string, offset
//! and shape is checked against the file before use; a problem is an [`Error::Format`] naming it.

use super::convert::{build_weights, byte_size, DType, Names, Part, RawTensor};
use super::mapped::Maps;
use super::{Arch, Config, LoadOptions, ModelWeights, QuantType};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: usize = 32;
/// Deepest nesting of metadata arrays accepted (llama.cpp accepts none; the format allows any).
const MAX_ARRAY_DEPTH: usize = 8;
/// GGML's `GGML_MAX_DIMS`.
const MAX_DIMS: usize = 4;

fn err<T>(s: impl Into<String>) -> Result<T> {
    Err(Error::Format(s.into()))
}

/// A metadata value. Arrays keep their raw bytes; they were walked (and their strings checked)
/// while parsing.
#[derive(Clone, Debug, PartialEq)]
enum Value<'a> {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
    /// `data`: the bytes of the elements (for the tokenizer's arrays).
    Array {
        elem_type: u32,
        len: usize,
        data: &'a [u8],
    },
}

impl Value<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Uint(_) => "unsigned integer",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Array { .. } => "array",
        }
    }
}

/// A cursor over the file with checked reads.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return err(format!(
                "truncated file: {what} needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            ));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.bytes(N, what)?.try_into().expect("length checked"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in the rest of the file at `min_size` bytes per item.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() / min_size => Ok(n),
            _ => err(format!(
                "{what} = {n} is larger than the rest of the file allows ({} bytes left)",
                self.remaining()
            )),
        }
    }

    fn string(&mut self, what: &str) -> Result<&'a str> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return err(format!(
                "{what}: string length {len} at offset {at} exceeds the file"
            ));
        }
        let b = self.bytes(len as usize, what)?;
        std::str::from_utf8(b).or_else(|_| err(format!("{what} at offset {at} is not UTF-8")))
    }

    /// Reads one value of GGUF type `ty`.
    fn value(&mut self, ty: u32, depth: usize, what: &str) -> Result<Value<'a>> {
        Ok(match ty {
            0 => Value::Uint(self.array::<1>(what)?[0] as u64),
            1 => Value::Int(self.array::<1>(what)?[0] as i8 as i64),
            2 => Value::Uint(u16::from_le_bytes(self.array(what)?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.array(what)?) as i64),
            4 => Value::Uint(self.u32(what)? as u64),
            5 => Value::Int(i32::from_le_bytes(self.array(what)?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array(what)?) as f64),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return err(format!("{what}: bool value {b} is neither 0 nor 1")),
            },
            8 => Value::Str(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return err(format!(
                        "{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    ));
                }
                let elem_type = self.u32(what)?;
                let min = match elem_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return err(format!("{what}: unknown array element type {t}")),
                };
                let len = self.count(min, &format!("{what}: array length"))?;
                let start = self.pos;
                if elem_type != 8 && elem_type != 9 {
                    self.bytes(len * min, what)?; // fixed-size elements: skip at once
                } else {
                    for _ in 0..len {
                        self.value(elem_type, depth + 1, what)?;
                    }
                }
                Value::Array {
                    elem_type,
                    len,
                    data: &self.buf[start..self.pos],
                }
            }
            10 => Value::Uint(self.u64(what)?),
            11 => Value::Int(i64::from_le_bytes(self.array(what)?)),
            12 => Value::Float(f64::from_le_bytes(self.array(what)?)),
            t => return err(format!("{what}: unknown value type {t}")),
        })
    }
}

/// ggml tensor type codes: name, values per block, bytes per block (for the types whose layout is
/// known here, so any tensor's extent can be checked), and the loaders' own type if supported.
fn ggml_type(code: u32) -> Option<(&'static str, usize, usize, Option<DType>)> {
    Some(match code {
        0 => ("F32", 1, 4, Some(DType::F32)),
        1 => ("F16", 1, 2, Some(DType::F16)),
        2 => ("Q4_0", 32, 18, Some(DType::Quant(QuantType::Q4_0))),
        3 => ("Q4_1", 32, 20, Some(DType::Quant(QuantType::Q4_1))),
        6 => ("Q5_0", 32, 22, Some(DType::Quant(QuantType::Q5_0))),
        7 => ("Q5_1", 32, 24, Some(DType::Quant(QuantType::Q5_1))),
        8 => ("Q8_0", 32, 34, Some(DType::Quant(QuantType::Q8_0))),
        9 => ("Q8_1", 32, 36, None),
        10 => ("Q2_K", 256, 84, None),
        11 => ("Q3_K", 256, 110, None),
        12 => ("Q4_K", 256, 144, Some(DType::Quant(QuantType::Q4K))),
        13 => ("Q5_K", 256, 176, Some(DType::Quant(QuantType::Q5K))),
        14 => ("Q6_K", 256, 210, Some(DType::Quant(QuantType::Q6K))),
        15 => ("Q8_K", 256, 292, None),
        24 => ("I8", 1, 1, None),
        25 => ("I16", 1, 2, None),
        26 => ("I32", 1, 4, None),
        27 => ("I64", 1, 8, None),
        28 => ("F64", 1, 8, None),
        30 => ("BF16", 1, 2, Some(DType::BF16)),
        _ => return None,
    })
}

/// One tensor info entry.
struct TensorInfo<'a> {
    name: &'a str,
    /// GGUF order: `ne[0]` (the row length) first.
    ne: Vec<usize>,
    ty: u32,
    offset: usize,
    /// Byte size, when the type's layout is known.
    size: Option<usize>,
}

/// A parsed GGUF file: metadata and tensor infos, borrowing the file's bytes.
struct Gguf<'a> {
    kv: HashMap<&'a str, Value<'a>>,
    tensors: Vec<TensorInfo<'a>>,
    /// The data section (from its aligned start to the end of the file).
    data: &'a [u8],
}

/// The header and metadata at the start of a file: (tensor count, metadata). With `whole`, the
/// tensor count is checked against the rest of the buffer (a prefix of a file has no room for
/// the tensor infos yet).
type Metadata<'a> = (usize, HashMap<&'a str, Value<'a>>);

fn parse_metadata<'a>(r: &mut Reader<'a>, whole: bool) -> Result<Metadata<'a>> {
    if r.bytes(4, "magic")? != MAGIC {
        return err("not a GGUF file (bad magic)");
    }
    let version = r.u32("version")?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return err("big-endian GGUF files are not supported");
    }
    if version != 2 && version != 3 {
        return err(format!("GGUF version {version} is not supported (2 or 3)"));
    }
    // A tensor info is at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 + 8 bytes;
    // a metadata entry at least 8 (key length) + 4 (type) + 1.
    let n_tensors = if whole {
        r.count(32, "tensor count")?
    } else {
        r.u64("tensor count")? as usize
    };
    let n_kv = r.count(13, "metadata count")?;
    let mut kv = HashMap::new();
    for i in 0..n_kv {
        let key = r.string(&format!("metadata key {i}"))?;
        let ty = r.u32(&format!("type of metadata {key:?}"))?;
        let v = r.value(ty, 0, &format!("metadata {key:?}"))?;
        if kv.insert(key, v).is_some() {
            return err(format!("duplicate metadata key {key:?}"));
        }
    }
    Ok((n_tensors, kv))
}

fn parse(buf: &[u8]) -> Result<Gguf<'_>> {
    let mut r = Reader { buf, pos: 0 };
    let (n_tensors, kv) = parse_metadata(&mut r, true)?;
    let mut tensors: Vec<TensorInfo<'_>> = Vec::new();
    let mut seen = HashMap::new();
    for i in 0..n_tensors {
        let name = r.string(&format!("name of tensor {i}"))?;
        let what = |s: &str| format!("tensor {name:?} {s}");
        if seen.insert(name, i).is_some() {
            return err(format!("duplicate tensor {name:?}"));
        }
        let n_dims = r.u32(&what("dimension count"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return err(what(&format!("has {n_dims} dimensions (1 to {MAX_DIMS})")));
        }
        let mut ne = Vec::with_capacity(n_dims);
        let mut count: usize = 1;
        for _ in 0..n_dims {
            let d = r.u64(&what("dimension"))?;
            let d = usize::try_from(d)
                .ok()
                .filter(|&d| d > 0)
                .ok_or_else(|| Error::Format(what(&format!("has dimension {d}"))))?;
            count = count
                .checked_mul(d)
                .ok_or_else(|| Error::Format(what("element count overflows")))?;
            ne.push(d);
        }
        let ty = r.u32(&what("type"))?;
        let offset = r.u64(&what("offset"))?;
        let offset = usize::try_from(offset)
            .or_else(|_| err(what(&format!("offset {offset} exceeds the file"))))?;
        let size = match ggml_type(ty) {
            Some((tname, bv, bb, _)) => {
                if ne[0] % bv != 0 {
                    return err(what(&format!(
                        "row length {} is not a multiple of the {tname} block size {bv}",
                        ne[0]
                    )));
                }
                Some(
                    (count / bv)
                        .checked_mul(bb)
                        .ok_or_else(|| Error::Format(what("byte size overflows")))?,
                )
            }
            None => None,
        };
        tensors.push(TensorInfo {
            name,
            ne,
            ty,
            offset,
            size,
        });
    }
    let alignment = match kv.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::Uint(a)) if a.is_power_of_two() && *a <= 1 << 30 => *a as usize,
        Some(v) => {
            return err(format!(
                "general.alignment must be a power of two, got {v:?}"
            ))
        }
    };
    let data_start = r.pos.div_ceil(alignment).saturating_mul(alignment);
    if data_start > buf.len() {
        return err(format!(
            "truncated file: data section starts at {data_start}, file has {} bytes",
            buf.len()
        ));
    }
    let data = &buf[data_start..];
    // Offsets: aligned, inside the data section, not overlapping.
    let mut extents = Vec::new();
    for t in &tensors {
        if t.offset % alignment != 0 {
            return err(format!(
                "tensor {:?} offset {} is not a multiple of the alignment {alignment}",
                t.name, t.offset
            ));
        }
        if let Some(size) = t.size {
            match t.offset.checked_add(size) {
                Some(end) if end <= data.len() => extents.push((t.offset, end, t.name)),
                _ => {
                    return err(format!(
                        "tensor {:?} data ({} bytes at offset {}) lies outside the data section \
                         ({} bytes)",
                        t.name,
                        size,
                        t.offset,
                        data.len()
                    ))
                }
            }
        }
    }
    extents.sort();
    for w in extents.windows(2) {
        if w[1].0 < w[0].1 {
            return err(format!(
                "tensors {:?} and {:?} overlap in the data section",
                w[0].2, w[1].2
            ));
        }
    }
    Ok(Gguf { kv, tensors, data })
}

impl<'a> Gguf<'a> {
    fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.kv.get(key)
    }

    fn uint(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(&Value::Uint(v)) => usize::try_from(v)
                .map(Some)
                .or_else(|_| err(format!("{key} = {v} is too large"))),
            Some(&Value::Int(v)) if v >= 0 => usize::try_from(v)
                .map(Some)
                .or_else(|_| err(format!("{key} = {v} is too large"))),
            Some(v) => err(format!(
                "{key} must be a non-negative integer, got a {} ({v:?})",
                v.type_name()
            )),
        }
    }

    fn required_uint(&self, key: &str) -> Result<usize> {
        self.uint(key)?
            .ok_or_else(|| Error::Format(format!("metadata key {key} is missing")))
    }

    fn float(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(&Value::Float(v)) => Ok(Some(v)),
            Some(&Value::Uint(v)) => Ok(Some(v as f64)),
            Some(&Value::Int(v)) => Ok(Some(v as f64)),
            Some(v) => err(format!("{key} must be a number, got a {}", v.type_name())),
        }
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(&Value::Str(s)) => Ok(Some(s)),
            Some(v) => err(format!("{key} must be a string, got a {}", v.type_name())),
        }
    }

    /// The tensor infos as [`RawTensor`]s, keyed by name; unsupported types are an error only for
    /// the tensors the model uses, which are the ones the caller takes out of the map (so the type
    /// check happens here for all tensors, which the model must use all of anyway).
    fn raw_tensors(&self) -> Result<HashMap<String, RawTensor<'a>>> {
        let mut out = HashMap::new();
        for t in &self.tensors {
            let (tname, dtype) = match ggml_type(t.ty) {
                Some((n, _, _, d)) => (n.to_string(), d),
                None => (format!("ggml type {}", t.ty), None),
            };
            let (Some(dtype), Some(size)) = (dtype, t.size) else {
                return Err(Error::UnsupportedType {
                    tensor: t.name.to_string(),
                    ty: tname,
                });
            };
            let mut shape = t.ne.clone();
            shape.reverse();
            debug_assert_eq!(byte_size(dtype, shape.iter().product()), Some(size));
            out.insert(
                t.name.to_string(),
                RawTensor {
                    name: t.name.to_string(),
                    dtype,
                    shape,
                    data: &self.data[t.offset..t.offset + size],
                },
            );
        }
        Ok(out)
    }

    fn config(&self) -> Result<Config> {
        let arch_name = self
            .str("general.architecture")?
            .ok_or_else(|| Error::Format("metadata key general.architecture is missing".into()))?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            a => {
                return err(format!(
                    "architecture {a:?} is not supported (qwen2, qwen3)"
                ))
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let hidden = self.required_uint(&key("embedding_length"))?;
        let n_head = self.required_uint(&key("attention.head_count"))?;
        let n_kv_head = self
            .uint(&key("attention.head_count_kv"))?
            .unwrap_or(n_head);
        let head_dim = match self.uint(&key("attention.key_length"))? {
            Some(d) => d,
            None => {
                if n_head == 0 || hidden % n_head != 0 {
                    return err(format!(
                        "embedding_length {hidden} is not a multiple of head_count {n_head} \
                         (and there is no attention.key_length)"
                    ));
                }
                hidden / n_head
            }
        };
        if let Some(v) = self.uint(&key("attention.value_length"))? {
            if v != head_dim {
                return err(format!(
                    "attention.value_length {v} differs from the head size {head_dim}"
                ));
            }
        }
        if let Some(r) = self.uint(&key("rope.dimension_count"))? {
            if r != head_dim {
                return err(format!(
                    "rope.dimension_count {r} differs from the head size {head_dim} \
                     (partial rotary embeddings are not supported)"
                ));
            }
        }
        if let Some(s) = self.str(&key("rope.scaling.type"))? {
            if s != "none" {
                return err(format!("rope scaling {s:?} is not supported"));
            }
        }
        let tokens = match self.get("tokenizer.ggml.tokens") {
            None => None,
            Some(&Value::Array { len, .. }) => Some(len),
            Some(v) => {
                return err(format!(
                    "tokenizer.ggml.tokens must be an array, got a {}",
                    v.type_name()
                ))
            }
        };
        let embd = self.tensors.iter().find(|t| t.name == "token_embd.weight");
        let vocab = match (tokens, self.uint(&key("vocab_size"))?, embd) {
            (Some(n), _, _) | (None, Some(n), _) => n,
            (None, None, Some(t)) if t.ne.len() == 2 => t.ne[1],
            _ => return err("cannot tell the vocabulary size (no tokenizer.ggml.tokens)"),
        };
        let eps = self
            .float(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| {
                Error::Format(format!(
                    "metadata key {} is missing",
                    key("attention.layer_norm_rms_epsilon")
                ))
            })?;
        let c = Config {
            arch,
            n_layers: self.required_uint(&key("block_count"))?,
            hidden,
            n_head,
            n_kv_head,
            head_dim,
            ffn: self.required_uint(&key("feed_forward_length"))?,
            vocab,
            rope_theta: self.float(&key("rope.freq_base"))?.unwrap_or(10000.0),
            rms_eps: eps as f32,
            max_positions: self.required_uint(&key("context_length"))?,
            tied_embeddings: !self.tensors.iter().any(|t| t.name == "output.weight"),
        };
        if arch == Arch::Qwen2 && c.n_head.checked_mul(c.head_dim) != Some(c.hidden) {
            return err(format!(
                "qwen2: head_count {} x head size {} differs from embedding_length {}",
                c.n_head, c.head_dim, c.hidden
            ));
        }
        c.validate()?;
        Ok(c)
    }
}

/// The tokenizer metadata of a GGUF file (`tokenizer.ggml.*`), as plain values.
pub(crate) struct GgufVocab {
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    /// llama.cpp token types (1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte);
    /// empty if the file has none.
    pub types: Vec<i32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

fn tok_err<T>(s: impl Into<String>) -> Result<T> {
    Err(Error::Tokenizer(s.into()))
}

impl<'a> Gguf<'a> {
    /// The strings of a string array.
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(&Value::Array {
                elem_type: 8,
                len,
                data,
            }) => {
                let mut r = Reader { buf: data, pos: 0 };
                (0..len)
                    .map(|i| r.string(&format!("{key}[{i}]")).map(str::to_string))
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
            Some(v) => tok_err(format!(
                "{key} must be an array of strings, got a {}",
                v.type_name()
            )),
        }
    }

    /// The values of an integer array (any integer element type).
    fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.get(key) {
            None => Ok(None),
            Some(&Value::Array {
                elem_type: ty @ (0..=5 | 10 | 11),
                len,
                data,
            }) => {
                let mut r = Reader { buf: data, pos: 0 };
                (0..len)
                    .map(|_| match r.value(ty, 1, key)? {
                        Value::Uint(v) => Ok(v as i64),
                        Value::Int(v) => Ok(v),
                        _ => unreachable!("integer element types"),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
            Some(v) => tok_err(format!(
                "{key} must be an array of integers, got a {}",
                v.type_name()
            )),
        }
    }

    fn token_id(&self, key: &str, n: usize) -> Result<Option<u32>> {
        match self.uint(key)? {
            None => Ok(None),
            Some(id) if id < n => Ok(Some(id as u32)),
            Some(id) => tok_err(format!("{key} = {id} is outside the {n} tokens")),
        }
    }

    fn vocab(&self) -> Result<GgufVocab> {
        let model = self.str("tokenizer.ggml.model")?;
        match model {
            Some("gpt2") => {}
            None => return tok_err("the file has no tokenizer (no tokenizer.ggml.model)"),
            Some(m) => {
                return tok_err(format!(
                    "tokenizer.ggml.model {m:?} is not supported (gpt2, as Qwen's byte-level BPE)"
                ))
            }
        }
        let tokens = self
            .strings("tokenizer.ggml.tokens")?
            .ok_or_else(|| Error::Tokenizer("tokenizer.ggml.tokens is missing".into()))?;
        let merges = self
            .strings("tokenizer.ggml.merges")?
            .ok_or_else(|| Error::Tokenizer("tokenizer.ggml.merges is missing".into()))?;
        match self.str("tokenizer.ggml.pre")? {
            Some("qwen2") => {}
            p => {
                return tok_err(format!(
                    "tokenizer.ggml.pre {p:?} is not supported (qwen2: Qwen2 / Qwen2.5 / Qwen3)"
                ))
            }
        }
        let types = self.ints("tokenizer.ggml.token_type")?.unwrap_or_default();
        if !types.is_empty() && types.len() != tokens.len() {
            return tok_err(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                types.len(),
                tokens.len()
            ));
        }
        let n = tokens.len();
        Ok(GgufVocab {
            bos: self.token_id("tokenizer.ggml.bos_token_id", n)?,
            eos: self.token_id("tokenizer.ggml.eos_token_id", n)?,
            eot: self.token_id("tokenizer.ggml.eot_token_id", n)?,
            add_bos: matches!(
                self.get("tokenizer.ggml.add_bos_token"),
                Some(Value::Bool(true))
            ),
            chat_template: self.str("tokenizer.chat_template")?.map(str::to_string),
            types: types.into_iter().map(|t| t as i32).collect(),
            tokens,
            merges,
        })
    }
}

/// Reads the tokenizer metadata from the start of a GGUF file (`bytes` may stop anywhere after the
/// metadata; tensor infos are not read).
pub(crate) fn read_vocab(bytes: &[u8]) -> Result<GgufVocab> {
    let (_, kv) = parse_metadata(&mut Reader { buf: bytes, pos: 0 }, false)?;
    let g = Gguf {
        kv,
        tensors: Vec::new(),
        data: &[],
    };
    g.vocab()
}

/// Bytes from the start of a GGUF file to the end of its metadata (what [`read_vocab`] needs).
pub(crate) fn metadata_len(bytes: &[u8]) -> Result<usize> {
    let mut r = Reader { buf: bytes, pos: 0 };
    parse_metadata(&mut r, false)?;
    Ok(r.pos)
}

/// [`read_vocab`] on a file, reading only as much of it as the metadata takes (8 MiB first, then
/// four times more until the metadata parses or the whole file is read), not the weights.
pub(crate) fn read_vocab_file(path: &Path) -> Result<GgufVocab> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut buf = Vec::new();
    let mut want: u64 = 8 << 20;
    loop {
        let have = buf.len() as u64;
        f.by_ref()
            .take(want.saturating_sub(have))
            .read_to_end(&mut buf)
            .map_err(io)?;
        let whole = buf.len() as u64 >= len;
        match parse_metadata(&mut Reader { buf: &buf, pos: 0 }, false) {
            Ok(_) => return read_vocab(&buf),
            Err(e) if whole || buf.len() as u64 == have => return Err(e),
            Err(_) => want = want.saturating_mul(4),
        }
    }
}

/// llama.cpp's tensor names.
pub(crate) struct GgufNames;

impl Names for GgufNames {
    fn token_embd(&self) -> &'static str {
        "token_embd.weight"
    }
    fn output(&self) -> &'static str {
        "output.weight"
    }
    fn output_norm(&self) -> &'static str {
        "output_norm.weight"
    }
    fn layer(&self, i: usize, part: Part) -> String {
        let s = match part {
            Part::AttnNorm => "attn_norm.weight",
            Part::Q => "attn_q.weight",
            Part::K => "attn_k.weight",
            Part::V => "attn_v.weight",
            Part::O => "attn_output.weight",
            Part::QBias => "attn_q.bias",
            Part::KBias => "attn_k.bias",
            Part::VBias => "attn_v.bias",
            Part::QNorm => "attn_q_norm.weight",
            Part::KNorm => "attn_k_norm.weight",
            Part::FfnNorm => "ffn_norm.weight",
            Part::Gate => "ffn_gate.weight",
            Part::Up => "ffn_up.weight",
            Part::Down => "ffn_down.weight",
        };
        format!("blk.{i}.{s}")
    }
}

/// Loads a model from the bytes of a GGUF file (what [`load_gguf`] does after mapping the file).
pub fn load_gguf_bytes(bytes: &[u8]) -> Result<ModelWeights> {
    load_gguf_bytes_with(bytes, &LoadOptions::default())
}

/// [`load_gguf_bytes`] with explicit [`LoadOptions`].
pub fn load_gguf_bytes_with(bytes: &[u8], options: &LoadOptions) -> Result<ModelWeights> {
    let g = parse(bytes)?;
    let config = g.config()?;
    let mut tensors = g.raw_tensors()?;
    build_weights(config, &mut tensors, &GgufNames, options)
}

/// Loads a GGUF v3 file (llama.cpp names and keys, `qwen2` or `qwen3`) with the default
/// [`LoadOptions`]: memory-maps it, converts every tensor to the formats of [`ModelWeights`] by
/// the loader's rules ([`LoadOptions`]: quantized tensors kept in their type, bytes unchanged;
/// float linear weights quantized to Q4_0; norms and biases f32), and releases the mapping. A
/// tied model (no `output.weight`) gets `output: None`.
pub fn load_gguf(path: &Path) -> Result<ModelWeights> {
    load_gguf_with(path, &LoadOptions::default())
}

/// [`load_gguf`] with explicit [`LoadOptions`].
pub fn load_gguf_with(path: &Path, options: &LoadOptions) -> Result<ModelWeights> {
    with_gguf_tensors(path, |config, tensors, _| {
        build_weights(config, tensors, &GgufNames, options)
    })
}

/// Maps the GGUF file `path` read-only, parses it and calls `f` with its configuration, its
/// tensors (borrowing the mapping) and the mapping; a format error names the file.
pub(crate) fn with_gguf_tensors<T>(
    path: &Path,
    f: impl FnOnce(Config, &mut HashMap<String, RawTensor<'_>>, &Maps) -> Result<T>,
) -> Result<T> {
    let mut maps = Maps::default();
    let map = maps.open(path)?;
    let run = || {
        let g = parse(&map)?;
        let config = g.config()?;
        let mut tensors = g.raw_tensors()?;
        // The metadata (the tokenizer's strings among it) is read: its pages can go.
        maps.release(&map[..map.len() - g.data.len()]);
        f(config, &mut tensors, &maps)
    };
    run().map_err(|e| match e {
        Error::Format(s) => Error::Format(format!("{}: {s}", path.display())),
        e => e,
    })
}
