//! The Qwen model: configuration, weights and their loaders, and the forward pass.
//!
//! * [`Config`] and [`ModelWeights`] hold a model in the formats the forward pass reads: linear
//!   weights, token embedding and output head each a [`QuantTensor`] in its own [`QuantType`]
//!   (Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K; a layer may mix them), norms and biases
//!   f32.
//! * [`load_gguf`] reads a GGUF v3 file as written by llama.cpp (`qwen2`, `qwen3`);
//!   [`load_safetensors_dir`] a Hugging Face folder; [`load`] picks by path. Each has a `_with`
//!   twin taking [`LoadOptions`]; the rules for each tensor's type are on [`LoadOptions`].
//! * [`Model`] (`packed.rs`) packs the weights for one tier; a [`Session`] (`session.rs`) runs one
//!   sequence through them, prefill in chunks and decode with a KV cache, using the row-part
//!   helpers of `parts.rs`; [`OpTimes`] (`profile.rs`) holds its per-op times when profiling.
//! * Text: [`Tokenizer`] (`tokenizer/`: Qwen's byte-level BPE from GGUF metadata or
//!   `tokenizer.json`), [`ChatFormat`] (`chat.rs`: ChatML), [`Sampler`] (`sampler.rs`) and
//!   [`Generator`] (`generate.rs`: [`Session::generate`], an iterator of text pieces).

mod chat;
mod config;
mod convert;
mod generate;
mod gguf;
mod mapped;
mod packed;
mod parts;
mod prepacked;
mod profile;
mod random;
mod safetensors;
mod sampler;
mod session;
mod stream;
mod tokenizer;
mod weights;

pub use chat::{ChatFormat, ChatMessage, QWEN25_DEFAULT_SYSTEM};
pub use config::{Arch, Config};
pub use generate::{Generator, Stop};
pub use gguf::{load_gguf, load_gguf_bytes, load_gguf_bytes_with, load_gguf_with};
pub use packed::Model;
pub use prepacked::{
    checksum as prepacked_checksum, pack_model, CONTAINER_VERSION, MAGIC as PREPACKED_MAGIC,
    TENSOR_ALIGN,
};
pub use profile::{Op, OpTimes, Work};
pub use safetensors::{
    load_safetensors_bytes, load_safetensors_bytes_with, load_safetensors_dir,
    load_safetensors_dir_with,
};
pub use sampler::{argmax, Rng, Sampler, SamplerOptions};
pub use session::{Session, SessionOptions};
pub use tokenizer::{AddedToken, StreamDecoder, Tokenizer, QWEN2_SPLIT_REGEX};
pub use weights::{LayerWeights, ModelWeights, QuantTensor, QuantType, TensorFormat};

use crate::Result;
use std::path::Path;

/// How the loaders choose the type of each weight.
///
/// * A quantized tensor (Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K: every type the kernels
///   run) is kept in that type, bytes unchanged, whatever the options say: a Q8_0 GGUF runs at
///   Q8_0, a Q4_K_M file at its Q4_K / Q6_K / fallback mix, and a file that mixes types (even
///   within a layer) runs them mixed. An embedding table in any of them is read row by row with
///   the format's dequantizer.
/// * F32 / F16 / BF16 linear weights of the layers are quantized to [`LoadOptions::quant`]
///   (Q4_0 or Q8_0, [`QuantType::QUANTIZABLE`]; another type is an error); a float token embedding
///   or output head to Q8_0.
/// * A row length that is not a multiple of the type's block length (32; 256 for the K-quants)
///   is an error naming the tensor.
/// * Any other type is an [`Error::UnsupportedType`](crate::Error::UnsupportedType) naming the
///   tensor and the type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Type float linear weights are quantized to (default Q4_0).
    pub quant: QuantType,
}

/// Loads a model from a `.gguf` file or from a Hugging Face folder (`config.json` plus
/// safetensors): a directory, or a `config.json` / `*.safetensors` / `*.safetensors.index.json`
/// file inside one, is read as a folder; any other path as GGUF. Uses the default
/// [`LoadOptions`].
pub fn load(path: &Path) -> Result<ModelWeights> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with explicit [`LoadOptions`].
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<ModelWeights> {
    if prepacked::is_prepacked(path) {
        return Err(crate::Error::Format(format!(
            "{}: a pre-packed qkern file holds packed weights only: load it with Model::load",
            path.display()
        )));
    }
    match folder_of(path) {
        Some(dir) => load_safetensors_dir_with(dir, options),
        None => load_gguf_with(path, options),
    }
}

/// The Hugging Face folder `path` names ([`load`]'s rule), or `None` for a file read as GGUF.
fn folder_of(path: &Path) -> Option<&Path> {
    if path.is_dir() {
        return Some(path);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_folder = name == "config.json"
        || name.ends_with(".safetensors")
        || name.ends_with(".safetensors.index.json");
    match path.parent() {
        Some(dir) if in_folder => Some(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }),
        _ => None,
    }
}
