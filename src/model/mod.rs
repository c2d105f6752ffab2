//! The Qwen model: configuration, weights and their loaders, and the forward pass.
//!
//! * [`Config`] and [`ModelWeights`] hold a model in the formats the forward pass reads: linear
//!   weights Q4_0, token embedding and output head Q8_0, norms and biases f32.
//! * [`load_gguf`] reads a GGUF v3 file as written by llama.cpp (`qwen2`, `qwen3`);
//!   [`load_safetensors_dir`] a Hugging Face folder; [`load`] picks by path.
//! * [`Model`] (`packed.rs`) packs the weights for one tier; a [`Session`] (`session.rs`) runs one
//!   sequence through them, prefill in chunks and decode with a KV cache, using the row-part
//!   helpers of `parts.rs`; [`OpTimes`] (`profile.rs`) holds its per-op times when profiling.

mod config;
mod convert;
mod gguf;
mod packed;
mod parts;
mod profile;
mod q6k;
mod random;
mod safetensors;
mod session;
mod weights;

pub use config::{Arch, Config};
pub use gguf::{load_gguf, load_gguf_bytes};
pub use packed::Model;
pub use profile::{Op, OpTimes, Work};
pub use safetensors::{load_safetensors_bytes, load_safetensors_dir};
pub use session::{Session, SessionOptions};
pub use weights::{LayerWeights, ModelWeights};

use crate::Result;
use std::path::Path;

/// Loads a model from a `.gguf` file or from a Hugging Face folder (`config.json` plus
/// safetensors): a directory, or a `config.json` / `*.safetensors` / `*.safetensors.index.json`
/// file inside one, is read as a folder; any other path as GGUF.
pub fn load(path: &Path) -> Result<ModelWeights> {
    if path.is_dir() {
        return load_safetensors_dir(path);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_folder = name == "config.json"
        || name.ends_with(".safetensors")
        || name.ends_with(".safetensors.index.json");
    match path.parent() {
        Some(dir) if in_folder => load_safetensors_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }),
        _ => load_gguf(path),
    }
}
