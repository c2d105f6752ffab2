//! Pre-packed model files (`.qkern`): the packed weights of one tier, mapped read-only and used in
//! place, so the weights are clean file-backed pages the system can drop and read again.
//! The format is described in `docs/PREPACKED.md`.
//!
//! [`pack_model`] loads a model ([`Model::load`]) and writes it; [`Model::load`] recognises the
//! file by its magic and calls [`load`] here: the fixed header, the checksum of the header and
//! tensor table, the container version, the tier (the CPU must have it), each format's layout
//! version and kernel, every shape against the configuration and every tensor's extent and packed
//! length are checked before anything is used; any problem is an [`Error`], never a panic.

use super::convert::DType;
use super::mapped::{MappedRows, Maps};
use super::packed::{Embedding, Layer, Linear, PackedTensor};
use super::weights::{check_optional_parts, with_format, TensorFormat};
use super::{Arch, Config, LoadOptions, Model, QuantType, Tokenizer};
use crate::aligned::{AlignedBuf, SharedBytes};
use crate::{Error, Kernels, Result, Tier};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The first 8 bytes of a pre-packed file.
pub const MAGIC: &[u8; 8] = b"QKERNPK\0";
/// Version of the container (fixed header, header JSON, data placement) this build reads and
/// writes.
pub const CONTAINER_VERSION: u32 = 1;
/// Every tensor starts at a multiple of this many bytes from the start of the file (a 16 KiB page
/// on Apple silicon, four 4 KiB pages elsewhere; and a multiple of the 64 the kernels want).
pub const TENSOR_ALIGN: usize = 16384;
/// Bytes of the fixed header before the header JSON.
const FIXED: usize = 64;

/// The version of each format's packed layouts (the same number for every tier of this build).
/// Bump a format's number whenever any tier's packed layout of that format changes: files packed
/// with another number are refused. (The kernel name of the format at the file's tier is checked
/// too.)
const LAYOUT_VERSIONS: [(QuantType, u64); 8] = [
    (QuantType::Q4_0, 2),
    (QuantType::Q8_0, 2),
    (QuantType::Q4_1, 1),
    (QuantType::Q5_0, 3),
    (QuantType::Q5_1, 1),
    (QuantType::Q4K, 3),
    (QuantType::Q5K, 2),
    (QuantType::Q6K, 2),
];

fn layout_version(ty: QuantType) -> u64 {
    LAYOUT_VERSIONS
        .iter()
        .find(|(t, _)| *t == ty)
        .map_or(0, |(_, v)| *v)
}

fn err<T>(s: impl Into<String>) -> Result<T> {
    Err(Error::Format(s.into()))
}

/// 64-bit FNV-1a over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for &b in *p {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Whether `path` is a file that starts with [`MAGIC`].
pub(crate) fn is_prepacked(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == MAGIC
}

// ------------------------------------------------------------------------------------------------
// Writing.

/// The tokenizer a pre-packed file carries: the bytes its loader reads.
enum TokenizerSource {
    /// The start of a GGUF file, through its metadata.
    Gguf(Vec<u8>),
    /// `tokenizer.json` and, if present, `tokenizer_config.json`.
    Hf(Vec<u8>, Option<Vec<u8>>),
}

/// The tokenizer of the model at `src`, if it has one that loads.
fn tokenizer_source(src: &Path) -> Result<Option<TokenizerSource>> {
    if let Some(dir) = super::folder_of(src) {
        let json = match std::fs::read(dir.join("tokenizer.json")) {
            Ok(j) => j,
            Err(_) => return Ok(None),
        };
        let config = std::fs::read(dir.join("tokenizer_config.json")).ok();
        let ok = Tokenizer::from_hf_json(&json, config.as_deref()).is_ok();
        return Ok(ok.then_some(TokenizerSource::Hf(json, config)));
    }
    let mut maps = Maps::default();
    let map = maps.open(src)?;
    let Ok(end) = super::gguf::metadata_len(&map) else {
        return Ok(None);
    };
    let prefix = map[..end].to_vec();
    let ok = Tokenizer::from_gguf_bytes(&prefix).is_ok();
    Ok(ok.then_some(TokenizerSource::Gguf(prefix)))
}

/// Loads the model at `src` (a GGUF file or a Hugging Face folder, as [`Model::load`] reads it)
/// packed for `tier`, and writes it to `out` as a pre-packed file with its tokenizer (if it has
/// one that loads). Returns whether a tokenizer was included.
pub fn pack_model(src: &Path, out: &Path, options: &LoadOptions, tier: Tier) -> Result<bool> {
    let model = Model::load(src, options, tier, 1)?;
    let tok = tokenizer_source(src)?;
    let has_tok = tok.is_some();
    write(&model, tok.as_ref(), out)?;
    Ok(has_tok)
}

/// The tensors of a file being written: table entries and their bytes.
#[derive(Default)]
struct Entries<'a> {
    table: Vec<Value>,
    data: Vec<Cow<'a, [u8]>>,
}

impl<'a> Entries<'a> {
    fn push(&mut self, mut entry: Map<String, Value>, data: Cow<'a, [u8]>) -> usize {
        entry.insert("len".into(), json!(data.len()));
        entry.insert("fnv".into(), json!(checksum(&[&data])));
        self.table.push(Value::Object(entry));
        self.data.push(data);
        self.table.len() - 1
    }

    fn vector(&mut self, v: &[f32]) -> usize {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut e = Map::new();
        e.insert("kind".into(), json!("f32"));
        self.push(e, Cow::Owned(bytes))
    }

    fn opt_vector(&mut self, v: Option<&[f32]>) -> Value {
        v.map_or(Value::Null, |v| json!(self.vector(v)))
    }

    fn blob(&mut self, b: &'a [u8]) -> usize {
        let mut e = Map::new();
        e.insert("kind".into(), json!("blob"));
        self.push(e, Cow::Borrowed(b))
    }

    fn linear(&mut self, l: &'a Linear, formats: &mut Map<String, Value>) -> Value {
        let mats: Vec<usize> = l
            .mats()
            .iter()
            .map(|m| {
                let (n, k) = m.shape();
                let ty = m.quant_type();
                formats.insert(
                    ty.name().into(),
                    json!({"layout": layout_version(ty), "kernel": m.kernel_name()}),
                );
                let mut e = Map::new();
                e.insert("kind".into(), json!("packed"));
                e.insert("type".into(), json!(ty.name()));
                e.insert("rows".into(), json!(n));
                e.insert("k".into(), json!(k));
                self.push(e, Cow::Borrowed(m.packed_data()))
            })
            .collect();
        json!({"cols": l.cols(), "mats": mats})
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::Quant(t) => t.name(),
    }
}

fn dtype_from(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => DType::Quant(s.parse().or_else(|_| err(format!("unknown type {s:?}")))?),
    })
}

fn config_json(c: &Config) -> Value {
    json!({
        "arch": c.arch.name(),
        "n_layers": c.n_layers,
        "hidden": c.hidden,
        "n_head": c.n_head,
        "n_kv_head": c.n_kv_head,
        "head_dim": c.head_dim,
        "ffn": c.ffn,
        "vocab": c.vocab,
        "rope_theta": c.rope_theta,
        "rms_eps": c.rms_eps as f64,
        "max_positions": c.max_positions,
        "tied_embeddings": c.tied_embeddings,
    })
}

/// Writes `model` (and the tokenizer `tok`) to `out` as a pre-packed file.
fn write(model: &Model, tok: Option<&TokenizerSource>, out: &Path) -> Result<()> {
    let c = model.config();
    let mut e = Entries::default();
    let mut formats = Map::new();
    let mut layers = Vec::new();
    for l in &model.layers {
        let layer: &Layer = l;
        layers.push(json!({
            "attn_norm": e.vector(&layer.attn_norm),
            "bqkv": e.opt_vector(layer.bqkv.as_deref()),
            "q_norm": e.opt_vector(layer.q_norm.as_deref()),
            "k_norm": e.opt_vector(layer.k_norm.as_deref()),
            "ffn_norm": e.vector(&layer.ffn_norm),
            "wqkv": e.linear(&layer.wqkv, &mut formats),
            "wo": e.linear(&layer.wo, &mut formats),
            "wgu": e.linear(&layer.wgu, &mut formats),
            "wdown": e.linear(&layer.wdown, &mut formats),
        }));
    }
    let output_norm = e.vector(&model.output_norm);
    let head = e.linear(&model.head, &mut formats);
    let embedding = match model.embedding() {
        Embedding::Head => Value::Null,
        Embedding::Table(t) => {
            let mut m = Map::new();
            m.insert("kind".into(), json!("table"));
            let i = e.push(m, Cow::Borrowed(t.bytes()));
            json!({"tensor": i, "dtype": t.quant_type().name()})
        }
        Embedding::Mapped(rows) => {
            let mut m = Map::new();
            m.insert("kind".into(), json!("table"));
            let i = e.push(m, Cow::Borrowed(rows.data()));
            json!({"tensor": i, "dtype": dtype_name(rows.dtype())})
        }
    };
    let tokenizer = match tok {
        None => Value::Null,
        Some(TokenizerSource::Gguf(b)) => json!({"kind": "gguf", "tensor": e.blob(b)}),
        Some(TokenizerSource::Hf(j, cfg)) => {
            let json_i = e.blob(j);
            let cfg_i = cfg.as_deref().map_or(Value::Null, |c| json!(e.blob(c)));
            json!({"kind": "hf", "json": json_i, "config": cfg_i})
        }
    };
    // Offsets from the start of the data section, each a multiple of TENSOR_ALIGN.
    let mut at = 0usize;
    for (entry, data) in e.table.iter_mut().zip(&e.data) {
        entry["offset"] = json!(at);
        at += data.len().div_ceil(TENSOR_ALIGN) * TENSOR_ALIGN;
    }
    let header = serde_json::to_vec(&json!({
        "producer": concat!("qkern ", env!("CARGO_PKG_VERSION")),
        "tier": model.tier().name(),
        "formats": formats,
        "config": config_json(c),
        "tensors": e.table,
        "layers": layers,
        "output_norm": output_norm,
        "head": head,
        "embedding": embedding,
        "tokenizer": tokenizer,
    }))
    .map_err(|e| Error::Format(format!("writing the header: {e}")))?;
    let data_start = (FIXED + header.len()).div_ceil(TENSOR_ALIGN) * TENSOR_ALIGN;
    let mut fixed = [0u8; FIXED];
    fixed[..8].copy_from_slice(MAGIC);
    fixed[8..12].copy_from_slice(&CONTAINER_VERSION.to_le_bytes());
    fixed[16..24].copy_from_slice(&(header.len() as u64).to_le_bytes());
    fixed[24..32].copy_from_slice(&(data_start as u64).to_le_bytes());
    let sum = checksum(&[&fixed[..32], &header]);
    fixed[32..40].copy_from_slice(&sum.to_le_bytes());

    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", out.display()));
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut pos = 0usize;
    let mut put = |w: &mut std::io::BufWriter<std::fs::File>, b: &[u8], to: usize| {
        let pad = to - pos;
        w.write_all(&vec![0u8; pad])?;
        w.write_all(b)?;
        pos = to + b.len();
        Ok::<_, std::io::Error>(())
    };
    put(&mut w, &fixed, 0).map_err(io)?;
    put(&mut w, &header, FIXED).map_err(io)?;
    let mut at = data_start;
    for data in &e.data {
        put(&mut w, data, at).map_err(io)?;
        at += data.len().div_ceil(TENSOR_ALIGN) * TENSOR_ALIGN;
    }
    w.flush().map_err(io)?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Reading.

/// One entry of the tensor table, checked to lie in the file.
struct Entry {
    kind: String,
    ty: Option<String>,
    rows: usize,
    k: usize,
    /// Absolute offset in the file.
    start: usize,
    len: usize,
    fnv: u64,
}

fn get<'v>(v: &'v Value, key: &str, what: &str) -> Result<&'v Value> {
    v.get(key)
        .ok_or_else(|| Error::Format(format!("{what}: {key} is missing")))
}

fn uint(v: &Value, key: &str, what: &str) -> Result<usize> {
    get(v, key, what)?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::Format(format!("{what}: {key} is not a non-negative integer")))
}

fn string<'v>(v: &'v Value, key: &str, what: &str) -> Result<&'v str> {
    get(v, key, what)?
        .as_str()
        .ok_or_else(|| Error::Format(format!("{what}: {key} is not a string")))
}

/// The checked header of a pre-packed file: its JSON and the tensor table.
struct Header {
    json: Value,
    entries: Vec<Entry>,
}

fn parse_header(b: &[u8]) -> Result<Header> {
    if b.len() < FIXED {
        return err(format!(
            "truncated pre-packed file: {} bytes, the fixed header alone takes {FIXED}",
            b.len()
        ));
    }
    if &b[..8] != MAGIC {
        return err("not a qkern pre-packed file (bad magic)");
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != CONTAINER_VERSION {
        return err(format!(
            "pre-packed container version {version}; this build reads version \
             {CONTAINER_VERSION}: pack the model again with this qkern"
        ));
    }
    if b[12..16].iter().chain(&b[40..FIXED]).any(|&x| x != 0) {
        return err("reserved bytes of the fixed header are not zero: the file is damaged");
    }
    let header_end = usize::try_from(u64_at(16))
        .ok()
        .and_then(|n| n.checked_add(FIXED))
        .filter(|&e| e <= b.len())
        .ok_or_else(|| {
            Error::Format(format!(
                "truncated pre-packed file: header of {} bytes, file of {}",
                u64_at(16),
                b.len()
            ))
        })?;
    let header = &b[FIXED..header_end];
    if checksum(&[&b[..32], header]) != u64_at(32) {
        return err(
            "the checksum of the header and tensor table does not match: the file is \
                    damaged or was altered",
        );
    }
    let data_start = usize::try_from(u64_at(24)).unwrap_or(usize::MAX);
    if data_start < header_end || !data_start.is_multiple_of(TENSOR_ALIGN) || data_start > b.len() {
        return err(format!(
            "data section at {data_start} (header ends at {header_end}, file of {} bytes)",
            b.len()
        ));
    }
    let json: Value = serde_json::from_slice(header)
        .or_else(|e| err(format!("the header is not valid JSON: {e}")))?;
    let Some(table) = json.get("tensors").and_then(Value::as_array) else {
        return err("the header has no tensor table");
    };
    let mut entries = Vec::with_capacity(table.len());
    for (i, t) in table.iter().enumerate() {
        let what = format!("tensor {i}");
        let offset = uint(t, "offset", &what)?;
        let len = uint(t, "len", &what)?;
        let start = data_start.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(len));
        let (Some(start), Some(end)) = (start, end) else {
            return err(format!("{what}: offset {offset} and length {len} overflow"));
        };
        if end > b.len() {
            return err(format!(
                "truncated pre-packed file: {what} ends at {end}, the file has {} bytes",
                b.len()
            ));
        }
        if !offset.is_multiple_of(TENSOR_ALIGN) {
            return err(format!(
                "{what}: offset {offset} is not a multiple of {TENSOR_ALIGN}"
            ));
        }
        let kind = string(t, "kind", &what)?.to_string();
        let packed = kind == "packed";
        entries.push(Entry {
            ty: t.get("type").and_then(Value::as_str).map(str::to_string),
            rows: if packed { uint(t, "rows", &what)? } else { 0 },
            k: if packed { uint(t, "k", &what)? } else { 0 },
            kind,
            start,
            len,
            fnv: get(t, "fnv", &what)?
                .as_u64()
                .ok_or_else(|| Error::Format(format!("{what}: fnv is not an integer")))?,
        });
    }
    Ok(Header { json, entries })
}

fn parse_config(v: &Value) -> Result<Config> {
    let w = "config";
    let arch = match string(v, "arch", w)? {
        "qwen2" => Arch::Qwen2,
        "qwen3" => Arch::Qwen3,
        a => return err(format!("config: architecture {a:?} is not supported")),
    };
    let float = |k: &str| {
        get(v, k, w)?
            .as_f64()
            .ok_or_else(|| Error::Format(format!("config: {k} is not a number")))
    };
    let c = Config {
        arch,
        n_layers: uint(v, "n_layers", w)?,
        hidden: uint(v, "hidden", w)?,
        n_head: uint(v, "n_head", w)?,
        n_kv_head: uint(v, "n_kv_head", w)?,
        head_dim: uint(v, "head_dim", w)?,
        ffn: uint(v, "ffn", w)?,
        vocab: uint(v, "vocab", w)?,
        rope_theta: float("rope_theta")?,
        rms_eps: float("rms_eps")? as f32,
        max_positions: uint(v, "max_positions", w)?,
        tied_embeddings: get(v, "tied_embeddings", w)?
            .as_bool()
            .ok_or_else(|| Error::Format("config: tied_embeddings is not a bool".into()))?,
    };
    c.validate()?;
    Ok(c)
}

/// Builds the model of a pre-packed file held by `owner`, for `tier`.
struct Reader<'h> {
    owner: SharedBytes,
    h: &'h Header,
    kernels: &'static Kernels,
}

impl Reader<'_> {
    fn bytes(&self) -> &[u8] {
        (*self.owner).as_ref()
    }

    fn entry(&self, v: &Value, what: &str) -> Result<&Entry> {
        let i = v
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| Error::Format(format!("{what}: not a tensor index")))?;
        self.h
            .entries
            .get(i)
            .ok_or_else(|| Error::Format(format!("{what}: tensor {i} is not in the table")))
    }

    /// An entry of `kind` whose bytes pass its checksum (for the small tensors read whole).
    fn checked(&self, v: &Value, kind: &str, what: &str) -> Result<&[u8]> {
        let e = self.entry(v, what)?;
        if e.kind != kind {
            return err(format!("{what}: a {} tensor, expected {kind}", e.kind));
        }
        let b = &self.bytes()[e.start..e.start + e.len];
        if checksum(&[b]) != e.fnv {
            return err(format!(
                "{what}: the checksum of its bytes does not match: the file is damaged or was \
                 altered"
            ));
        }
        Ok(b)
    }

    fn vector(&self, v: &Value, n: usize, what: &str) -> Result<Vec<f32>> {
        let b = self.checked(v, "f32", what)?;
        if b.len() != n * 4 {
            return err(format!(
                "{what}: {} bytes, expected {n} f32 values",
                b.len()
            ));
        }
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    fn opt_vector(&self, v: &Value, key: &str, n: usize, what: &str) -> Result<Option<Vec<f32>>> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(i) => self.vector(i, n, &format!("{what} {key}")).map(Some),
        }
    }

    fn packed(&self, v: &Value, k: usize, what: &str) -> Result<PackedTensor> {
        let e = self.entry(v, what)?;
        if e.kind != "packed" {
            return err(format!(
                "{what}: a {} tensor, expected packed weights",
                e.kind
            ));
        }
        let name = e.ty.as_deref().unwrap_or("");
        let ty: QuantType = name
            .parse()
            .or_else(|_| err(format!("{what}: unknown weight type {name:?}")))?;
        if !self.h.json["formats"]
            .get(ty.name())
            .is_some_and(|f| f.is_object())
        {
            return err(format!("{what}: type {ty} is not among the file's formats"));
        }
        if e.k != k || e.rows == 0 {
            return err(format!(
                "{what}: {} rows of {} values, expected rows of {k}",
                e.rows, e.k
            ));
        }
        // Packing never shrinks the blocks to less than half: a table claiming a larger matrix
        // than its bytes is refused before `from_buf` packs zeros of that shape to learn its
        // size (so a hostile table cannot make it allocate much more than the file).
        let (bv, bb) = with_format!(ty, F => (F::BLOCK_VALUES, std::mem::size_of::<F>()));
        let plain = e.rows.checked_mul(k / bv).and_then(|b| b.checked_mul(bb));
        if !k.is_multiple_of(bv)
            || plain.is_none_or(|p| p > e.len.saturating_mul(2).saturating_add(65536))
        {
            return err(format!(
                "{what}: {} bytes cannot hold {} rows of {k} {ty} values",
                e.len, e.rows
            ));
        }
        let buf = AlignedBuf::shared(self.owner.clone(), e.start, e.len).ok_or_else(|| {
            Error::Format(format!(
                "{what}: {} bytes at {} are not 64-byte aligned whole lines",
                e.len, e.start
            ))
        })?;
        PackedTensor::from_buf(self.kernels, ty, buf, e.rows, k).map_err(|err| match err {
            Error::ShapeMismatch(s) => Error::Format(format!("{what}: {s}")),
            err => err,
        })
    }

    /// A linear layer whose parts must have `cols` rows (`None`: any positive rows, `n` in all)
    /// of `k` values.
    fn linear(
        &self,
        v: &Value,
        cols: Option<&[usize]>,
        n: usize,
        k: usize,
        what: &str,
    ) -> Result<Linear> {
        let got: Vec<usize> = get(v, "cols", what)?
            .as_array()
            .ok_or_else(|| Error::Format(format!("{what}: cols is not an array")))?
            .iter()
            .map(|c| {
                c.as_u64()
                    .and_then(|c| usize::try_from(c).ok())
                    .unwrap_or(0)
            })
            .collect();
        let ok = match cols {
            Some(want) => got == want,
            None => !got.is_empty() && got.iter().all(|&c| c > 0) && got.iter().sum::<usize>() == n,
        };
        if !ok {
            return err(format!(
                "{what}: parts of {got:?} rows, expected {n} rows in all"
            ));
        }
        let mats = get(v, "mats", what)?
            .as_array()
            .ok_or_else(|| Error::Format(format!("{what}: mats is not an array")))?
            .iter()
            .enumerate()
            .map(|(i, m)| self.packed(m, k, &format!("{what} matrix {i}")))
            .collect::<Result<Vec<_>>>()?;
        Linear::from_mats(got, mats).map_err(|e| match e {
            Error::Format(s) => Error::Format(format!("{what}: {s}")),
            e => e,
        })
    }

    fn model(&self, threads: usize) -> Result<Model> {
        let j = &self.h.json;
        let tier = self.kernels.tier();
        let Some(formats) = j.get("formats").and_then(Value::as_object) else {
            return err("the header has no formats");
        };
        for (name, f) in formats {
            let ty: QuantType = name
                .parse()
                .or_else(|_| err(format!("unknown weight format {name:?}")))?;
            let layout = f.get("layout").and_then(Value::as_u64);
            if layout != Some(layout_version(ty)) {
                return err(format!(
                    "{ty} weights packed with layout version {layout:?}; this build's is {}: \
                     pack the model again with this qkern",
                    layout_version(ty)
                ));
            }
            let kernel = with_format!(ty, F => crate::kernels::matmul::kernel_name::<F>(tier)?);
            let theirs = f.get("kernel").and_then(Value::as_str);
            if theirs != Some(kernel) {
                return err(format!(
                    "{ty} weights packed for kernel {theirs:?}; this build's {tier} kernel is \
                     {kernel:?}: pack the model again with this qkern"
                ));
            }
        }
        let c = parse_config(get(j, "config", "header")?)?;
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        let Some(ls) = j.get("layers").and_then(Value::as_array) else {
            return err("the header has no layers");
        };
        if ls.len() != c.n_layers {
            return err(format!(
                "{} layers, the config says {}",
                ls.len(),
                c.n_layers
            ));
        }
        let mut layers = Vec::with_capacity(ls.len());
        for (i, l) in ls.iter().enumerate() {
            let what = format!("layer {i}");
            let bqkv = self.opt_vector(l, "bqkv", q + 2 * kv, &what)?;
            let q_norm = self.opt_vector(l, "q_norm", c.head_dim, &what)?;
            let k_norm = self.opt_vector(l, "k_norm", c.head_dim, &what)?;
            let b = bqkv.is_some();
            check_optional_parts(&c, i, [b, b, b], (q_norm.is_some(), k_norm.is_some()))?;
            let lin = |key: &str, cols: &[usize], k: usize| {
                self.linear(
                    get(l, key, &what)?,
                    Some(cols),
                    cols.iter().sum(),
                    k,
                    &format!("{what} {key}"),
                )
            };
            layers.push(Layer {
                attn_norm: self.vector(get(l, "attn_norm", &what)?, h, &what)?,
                wqkv: lin("wqkv", &[q, kv, kv], h)?,
                bqkv,
                q_norm,
                k_norm,
                wo: lin("wo", &[h], q)?,
                ffn_norm: self.vector(get(l, "ffn_norm", &what)?, h, &what)?,
                wgu: lin("wgu", &[f, f], h)?,
                wdown: lin("wdown", &[h], f)?,
            });
        }
        let output_norm = self.vector(get(j, "output_norm", "header")?, h, "output_norm")?;
        let head = self.linear(get(j, "head", "header")?, None, c.vocab, h, "head")?;
        let embedding = match (j.get("embedding"), c.tied_embeddings) {
            (None | Some(Value::Null), true) => Embedding::Head,
            (Some(e @ Value::Object(_)), false) => {
                let t = self.entry(get(e, "tensor", "embedding")?, "embedding")?;
                if t.kind != "table" {
                    return err(format!("embedding: a {} tensor, expected a table", t.kind));
                }
                let dtype = dtype_from(string(e, "dtype", "embedding")?)?;
                let rows =
                    MappedRows::new(self.owner.clone(), t.start, c.vocab, h, dtype, "embedding")?;
                if rows.bytes() != t.len {
                    return err(format!(
                        "embedding: {} bytes, expected {}",
                        t.len,
                        rows.bytes()
                    ));
                }
                Embedding::Mapped(rows)
            }
            (_, tied) => {
                return err(format!(
                    "the embedding table does not match the config (tied embeddings: {tied})"
                ))
            }
        };
        Ok(Model::assemble(
            c,
            self.kernels,
            threads,
            layers,
            output_norm,
            head,
            embedding,
        ))
    }
}

/// The tier a pre-packed file's header names.
fn file_tier(h: &Header) -> Result<Tier> {
    string(&h.json, "tier", "header")?.parse()
}

/// The model of a pre-packed file's bytes held by `owner`, for `tier`.
fn load_owner(owner: SharedBytes, tier: Tier, threads: usize) -> Result<Model> {
    let h = parse_header((*owner).as_ref())?;
    let theirs = file_tier(&h)?;
    if theirs != tier {
        return err(format!(
            "the file is packed for tier {theirs}, not {tier}: load it for tier {theirs} (if \
             this CPU has it) or pack the model again for {tier}"
        ));
    }
    let kernels = Kernels::for_tier(tier)?;
    Reader {
        owner: owner.clone(),
        h: &h,
        kernels,
    }
    .model(threads)
}

/// Maps the pre-packed file `path` read-only and uses its weights in place.
pub(crate) fn load(path: &Path, tier: Tier, threads: usize) -> Result<Model> {
    let mut maps = Maps::default();
    let map = maps.open(path)?;
    load_owner(map as SharedBytes, tier, threads).map_err(|e| match e {
        Error::Format(s) => Error::Format(format!("{}: {s}", path.display())),
        e => e,
    })
}

/// Bytes copied into a 64-byte-aligned buffer, as [`SharedBytes`].
struct AlignedBytes {
    buf: AlignedBuf,
    len: usize,
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buf.bytes()[..self.len]
    }
}

impl Model {
    /// The model of a pre-packed file's bytes (copied once into an aligned buffer), for `tier`:
    /// what [`Model::load`] does with such a file after mapping it, for tests and fuzzing.
    pub fn from_prepacked_bytes(bytes: &[u8], tier: Tier, threads: usize) -> Result<Model> {
        let mut buf = AlignedBuf::zeroed(bytes.len());
        buf.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
        let owner: SharedBytes = Arc::new(AlignedBytes {
            buf,
            len: bytes.len(),
        });
        load_owner(owner, tier, threads)
    }

    /// Whether the packed weights are used in place from a pre-packed file's mapping.
    pub fn weights_in_place(&self) -> bool {
        let linears = self
            .layers
            .iter()
            .flat_map(|l| [&l.wqkv, &l.wo, &l.wgu, &l.wdown])
            .chain([&self.head]);
        linears.flat_map(|l| l.mats()).all(PackedTensor::is_shared)
    }
}

/// The tokenizer stored in a pre-packed file's bytes.
pub(crate) fn tokenizer_from_bytes(b: &[u8]) -> Result<Tokenizer> {
    let h = parse_header(b).map_err(|e| match e {
        Error::Format(s) => Error::Tokenizer(s),
        e => e,
    })?;
    let t = &h.json["tokenizer"];
    let blob = |v: &Value| -> Result<&[u8]> {
        let i = v.as_u64().and_then(|i| usize::try_from(i).ok());
        let e = i
            .and_then(|i| h.entries.get(i))
            .filter(|e| e.kind == "blob")
            .ok_or_else(|| Error::Tokenizer("the tokenizer entry names no blob".into()))?;
        let data = &b[e.start..e.start + e.len];
        if checksum(&[data]) != e.fnv {
            return Err(Error::Tokenizer(
                "the checksum of the tokenizer does not match: the file is damaged or altered"
                    .into(),
            ));
        }
        Ok(data)
    };
    match t.get("kind").and_then(Value::as_str) {
        Some("gguf") => Tokenizer::from_gguf_bytes(blob(&t["tensor"])?),
        Some("hf") => {
            let config = match &t["config"] {
                Value::Null => None,
                v => Some(blob(v)?),
            };
            Tokenizer::from_hf_json(blob(&t["json"])?, config)
        }
        _ => Err(Error::Tokenizer(
            "the pre-packed file has no tokenizer".into(),
        )),
    }
}

/// The tokenizer stored in the pre-packed file `path`.
pub(crate) fn tokenizer_from_file(path: &Path) -> Result<Tokenizer> {
    let mut maps = Maps::default();
    let map = maps.open(path)?;
    tokenizer_from_bytes(&map).map_err(|e| match e {
        Error::Tokenizer(s) => Error::Tokenizer(format!("{}: {s}", path.display())),
        e => e,
    })
}
