//! GGUF v3 loader.

use super::ModelWeights;
use crate::{Error, Result};
use std::path::Path;

/// Loads a GGUF v3 file (llama.cpp names and keys, `qwen2` or `qwen3`).
pub fn load_gguf(path: &Path) -> Result<ModelWeights> {
    Err(Error::Format(format!(
        "{}: GGUF loader not written yet",
        path.display()
    )))
}
