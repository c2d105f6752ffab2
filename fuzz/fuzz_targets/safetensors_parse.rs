//! Any `config.json` and safetensors bytes given to the Hugging Face loader give a model or an
//! error, never a panic. The input is split at the first `\n--\n`: config before, safetensors
//! after (no separator: the whole input is tried as both).
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\n--\n";

fuzz_target!(|data: &[u8]| {
    let (config, tensors) = match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(i) => (&data[..i], &data[i + SEP.len()..]),
        None => (data, data),
    };
    if let Ok(w) = qkern::model::load_safetensors_bytes(config, &[tensors]) {
        w.validate().expect("a loaded model validates");
    }
});
