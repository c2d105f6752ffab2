//! Hugging Face folder loader: `config.json` (transformers 4 and 5 key styles) plus
//! `model.safetensors` or the shards listed by `model.safetensors.index.json`; tensors in F32, F16
//! or BF16.

use super::convert::{build_weights, DType, Names, Part, RawTensor};
use super::mapped::Maps;
use super::{Arch, Config, LoadOptions, ModelWeights};
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

fn err<T>(s: impl Into<String>) -> Result<T> {
    Err(Error::Format(s.into()))
}

/// Reads `config.json`'s fields for a Qwen2/Qwen3 model.
fn parse_config(json: &[u8]) -> Result<Config> {
    let v: Value = serde_json::from_slice(json)
        .or_else(|e| err(format!("config.json is not valid JSON: {e}")))?;
    let Value::Object(o) = v else {
        return err("config.json is not a JSON object");
    };
    let get = |k: &str| o.get(k).filter(|v| !v.is_null());
    let uint = |k: &str| -> Result<Option<usize>> {
        match get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64().map(usize::try_from) {
                Some(Ok(n)) => Ok(Some(n)),
                _ => err(format!(
                    "config.json: {k} must be a non-negative integer, got {v}"
                )),
            },
        }
    };
    let req =
        |k: &str| uint(k)?.ok_or_else(|| Error::Format(format!("config.json: {k} is missing")));
    let float = |o: &Map<String, Value>, k: &str| -> Result<Option<f64>> {
        match o.get(k).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                Error::Format(format!("config.json: {k} must be a number, got {v}"))
            }),
        }
    };
    let arch = match get("model_type").and_then(Value::as_str) {
        Some("qwen2") => Arch::Qwen2,
        Some("qwen3") => Arch::Qwen3,
        Some(t) => {
            return err(format!(
                "config.json: model_type {t:?} is not supported (qwen2, qwen3)"
            ))
        }
        None => return err("config.json: model_type is missing"),
    };
    let hidden = req("hidden_size")?;
    let n_head = req("num_attention_heads")?;
    let head_dim = match uint("head_dim")? {
        Some(d) => d,
        None if n_head != 0 && hidden % n_head == 0 => hidden / n_head,
        None => {
            return err(format!(
            "config.json: hidden_size {hidden} is not a multiple of num_attention_heads {n_head} \
                 (and there is no head_dim)"
        ))
        }
    };
    // Transformers 5 keeps the RoPE settings in `rope_parameters`; 4 has `rope_theta` and
    // `rope_scaling` at the top level.
    let mut rope_theta = float(&o, "rope_theta")?;
    for k in ["rope_parameters", "rope_scaling"] {
        match get(k) {
            None => {}
            Some(Value::Object(p)) => {
                let ty = p.get("rope_type").or_else(|| p.get("type"));
                match ty.and_then(Value::as_str) {
                    None | Some("default") => {}
                    Some(t) => {
                        return err(format!(
                            "config.json: {k}: rope type {t:?} is not supported"
                        ))
                    }
                }
                if let Some(t) = float(p, "rope_theta")? {
                    rope_theta = Some(t);
                }
            }
            Some(v) => return err(format!("config.json: {k} must be an object, got {v}")),
        }
    }
    if get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return err("config.json: sliding-window attention is not supported");
    }
    if let Some(a) = get("hidden_act") {
        if a.as_str() != Some("silu") {
            return err(format!(
                "config.json: hidden_act {a} is not supported (silu)"
            ));
        }
    }
    let tied = match get("tie_word_embeddings") {
        None => false, // Qwen2Config and Qwen3Config default
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return err(format!(
                "config.json: tie_word_embeddings must be a bool, got {v}"
            ))
        }
    };
    let c = Config {
        arch,
        n_layers: req("num_hidden_layers")?,
        hidden,
        n_head,
        n_kv_head: uint("num_key_value_heads")?.unwrap_or(n_head),
        head_dim,
        ffn: req("intermediate_size")?,
        vocab: req("vocab_size")?,
        rope_theta: rope_theta.unwrap_or(10000.0),
        rms_eps: float(&o, "rms_norm_eps")?.unwrap_or(1e-6) as f32,
        max_positions: uint("max_position_embeddings")?.unwrap_or(32768),
        tied_embeddings: tied,
    };
    c.validate()?;
    Ok(c)
}

/// Transformers' tensor names.
pub(crate) struct HfNames;

impl Names for HfNames {
    fn token_embd(&self) -> &'static str {
        "model.embed_tokens.weight"
    }
    fn output(&self) -> &'static str {
        "lm_head.weight"
    }
    fn output_norm(&self) -> &'static str {
        "model.norm.weight"
    }
    fn layer(&self, i: usize, part: Part) -> String {
        let s = match part {
            Part::AttnNorm => "input_layernorm.weight",
            Part::Q => "self_attn.q_proj.weight",
            Part::K => "self_attn.k_proj.weight",
            Part::V => "self_attn.v_proj.weight",
            Part::O => "self_attn.o_proj.weight",
            Part::QBias => "self_attn.q_proj.bias",
            Part::KBias => "self_attn.k_proj.bias",
            Part::VBias => "self_attn.v_proj.bias",
            Part::QNorm => "self_attn.q_norm.weight",
            Part::KNorm => "self_attn.k_norm.weight",
            Part::FfnNorm => "post_attention_layernorm.weight",
            Part::Gate => "mlp.gate_proj.weight",
            Part::Up => "mlp.up_proj.weight",
            Part::Down => "mlp.down_proj.weight",
        };
        format!("model.layers.{i}.{s}")
    }
}

/// The first key that occurs twice in a safetensors header's top-level JSON object. The
/// `safetensors` crate reads the header into a map, which keeps the last of two entries with the
/// same name silently; a file naming a tensor twice is ambiguous, so the loader rejects it. Any
/// other header problem gives `None` here and is reported by the `safetensors` crate.
fn duplicate_header_key(bytes: &[u8]) -> Option<String> {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
    struct FirstDuplicate(Option<String>);
    impl<'de> Deserialize<'de> for FirstDuplicate {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = FirstDuplicate;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<FirstDuplicate, A::Error> {
                    let mut seen = std::collections::HashSet::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<IgnoredAny>()?;
                        if !seen.insert(key.clone()) {
                            return Ok(FirstDuplicate(Some(key)));
                        }
                    }
                    Ok(FirstDuplicate(None))
                }
            }
            d.deserialize_map(V)
        }
    }
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    // The safetensors crate's own limit (100 MB): a larger header is its error to report.
    let len = usize::try_from(len).ok().filter(|&n| n <= 100_000_000)?;
    let end = len.checked_add(8)?;
    serde_json::from_slice::<FirstDuplicate>(bytes.get(8..end)?)
        .ok()?
        .0
}

/// Adds the tensors of one safetensors file to `out` (`file` names it in errors).
fn read_tensors<'a>(
    bytes: &'a [u8],
    file: &str,
    out: &mut HashMap<String, (RawTensor<'a>, String)>,
) -> Result<()> {
    if let Some(name) = duplicate_header_key(bytes) {
        return err(format!(
            "{file}: bad safetensors header: tensor {name:?} is listed twice"
        ));
    }
    let st = safetensors::SafeTensors::deserialize(bytes)
        .or_else(|e| err(format!("{file}: bad safetensors header: {e}")))?;
    for (name, view) in st.iter() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            d => {
                return Err(Error::UnsupportedType {
                    tensor: name.to_string(),
                    ty: format!("{d:?}"),
                })
            }
        };
        let t = RawTensor {
            name: name.to_string(),
            dtype,
            shape: view.shape().to_vec(),
            data: view.data(),
        };
        if let Some((_, other)) = out.insert(name.to_string(), (t, file.to_string())) {
            return err(format!("tensor {name:?} is in both {other} and {file}"));
        }
    }
    Ok(())
}

/// The tensors of the files by name, without the stored output head of a tied model.
fn prepare<'a>(
    config: &Config,
    tensors: HashMap<String, (RawTensor<'a>, String)>,
) -> HashMap<String, RawTensor<'a>> {
    let mut tensors: HashMap<_, _> = tensors.into_iter().map(|(k, (t, _))| (k, t)).collect();
    if config.tied_embeddings {
        // Transformers ties lm_head to the embedding and ignores a stored copy.
        tensors.remove(HfNames.output());
    }
    tensors
}

fn build(
    config: Config,
    tensors: HashMap<String, (RawTensor<'_>, String)>,
    options: &LoadOptions,
) -> Result<ModelWeights> {
    let mut tensors = prepare(&config, tensors);
    build_weights(config, &mut tensors, &HfNames, options)
}

/// Loads a model from the bytes of `config.json` and of one or more safetensors files (what
/// [`load_safetensors_dir`] does after mapping the files).
pub fn load_safetensors_bytes(config_json: &[u8], files: &[&[u8]]) -> Result<ModelWeights> {
    load_safetensors_bytes_with(config_json, files, &LoadOptions::default())
}

/// [`load_safetensors_bytes`] with explicit [`LoadOptions`].
pub fn load_safetensors_bytes_with(
    config_json: &[u8],
    files: &[&[u8]],
    options: &LoadOptions,
) -> Result<ModelWeights> {
    let config = parse_config(config_json)?;
    let mut tensors = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        read_tensors(f, &format!("file {i}"), &mut tensors)?;
    }
    build(config, tensors, options)
}

/// Reads `model.safetensors.index.json`: the shard file names (plain names inside the folder) and
/// which shard holds each tensor.
fn parse_index(json: &[u8]) -> Result<(Vec<String>, HashMap<String, String>)> {
    let v: Value = serde_json::from_slice(json).or_else(|e| {
        err(format!(
            "model.safetensors.index.json is not valid JSON: {e}"
        ))
    })?;
    let Some(Value::Object(map)) = v.get("weight_map") else {
        return err("model.safetensors.index.json: weight_map is missing or not an object");
    };
    let mut files = Vec::new();
    let mut where_ = HashMap::new();
    for (name, f) in map {
        let Some(f) = f.as_str() else {
            return err(format!(
                "model.safetensors.index.json: {name:?} maps to {f}, not a file name"
            ));
        };
        if f.is_empty() || f.contains(['/', '\\']) || f == "." || f == ".." {
            return err(format!(
                "model.safetensors.index.json: shard name {f:?} is not a plain file name"
            ));
        }
        if !files.iter().any(|g| g == f) {
            files.push(f.to_string());
        }
        where_.insert(name.clone(), f.to_string());
    }
    files.sort();
    Ok((files, where_))
}

/// Loads a Hugging Face folder: `config.json` and `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (each tensor must be in the shard the index names, and every
/// tensor of the index must exist). Every file is memory-mapped, converted to the formats of
/// [`ModelWeights`] with the default [`LoadOptions`] (linear weights Q4_0 by ggml's rule,
/// embedding and output head Q8_0, norms and biases f32), and unmapped.
pub fn load_safetensors_dir(dir: &Path) -> Result<ModelWeights> {
    load_safetensors_dir_with(dir, &LoadOptions::default())
}

/// [`load_safetensors_dir`] with explicit [`LoadOptions`] ([`LoadOptions::quant`]: the type of
/// the linear weights).
pub fn load_safetensors_dir_with(dir: &Path, options: &LoadOptions) -> Result<ModelWeights> {
    with_dir_tensors(dir, |config, tensors, _| {
        build_weights(config, tensors, &HfNames, options)
    })
}

/// Maps the safetensors files of the folder `dir` read-only, checks them (and the index) and
/// calls `f` with the configuration, the tensors (borrowing the mappings; a tied model's stored
/// output head left out) and the mappings; a format error names the folder or file.
pub(crate) fn with_dir_tensors<T>(
    dir: &Path,
    f: impl FnOnce(Config, &mut HashMap<String, RawTensor<'_>>, &Maps) -> Result<T>,
) -> Result<T> {
    let with_path = |e: Error, p: &Path| match e {
        Error::Format(s) => Error::Format(format!("{}: {s}", p.display())),
        e => e,
    };
    let cfg_path = dir.join("config.json");
    let cfg =
        std::fs::read(&cfg_path).map_err(|e| Error::Io(format!("{}: {e}", cfg_path.display())))?;
    let config = parse_config(&cfg).map_err(|e| with_path(e, &cfg_path))?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let mut maps = Maps::default();
    if single.is_file() {
        let m = maps.open(&single)?;
        let mut tensors = HashMap::new();
        read_tensors(&m, "model.safetensors", &mut tensors).map_err(|e| with_path(e, &single))?;
        let mut tensors = prepare(&config, tensors);
        return f(config, &mut tensors, &maps).map_err(|e| with_path(e, dir));
    }
    let idx = std::fs::read(&index).map_err(|e| {
        Error::Io(format!(
            "{}: neither model.safetensors nor model.safetensors.index.json is readable ({e})",
            dir.display()
        ))
    })?;
    let (files, where_) = parse_index(&idx).map_err(|e| with_path(e, dir))?;
    let mapped = files
        .iter()
        .map(|f| maps.open(&dir.join(f)))
        .collect::<Result<Vec<_>>>()?;
    let mut tensors = HashMap::new();
    for (f, m) in files.iter().zip(&mapped) {
        read_tensors(m, f, &mut tensors).map_err(|e| with_path(e, dir))?;
    }
    for (name, (_, file)) in &tensors {
        match where_.get(name) {
            Some(f) if f == file => {}
            Some(f) => {
                return Err(with_path(
                    Error::Format(format!(
                        "index puts tensor {name:?} in {f}, found in {file}"
                    )),
                    dir,
                ))
            }
            None => {
                return Err(with_path(
                    Error::Format(format!("tensor {name:?} in {file} is not in the index")),
                    dir,
                ))
            }
        }
    }
    if let Some(name) = where_.keys().filter(|n| !tensors.contains_key(*n)).min() {
        return Err(with_path(
            Error::Format(format!("index lists tensor {name:?}, which is in no shard")),
            dir,
        ));
    }
    let mut tensors = prepare(&config, tensors);
    f(config, &mut tensors, &maps).map_err(|e| with_path(e, dir))
}
