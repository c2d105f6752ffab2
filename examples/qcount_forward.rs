//! Builds a random-weight model with the exact layer shapes of Qwen2.5-0.5B or 1.5B (fewer layers
//! and a small vocabulary, which do not change the per-layer work) and runs one prefill on one
//! thread, for instruction counting of the whole forward pass with `../shared/tools/qcount`
//! (see `scripts/qcount-forward.sh`, which subtracts a run with `TOKENS = 0` to leave the prefill).
//!
//! usage: qcount_forward TIER PRESET LAYERS TOKENS   (PRESET: 0.5b or 1.5b)
//!        QKERN_KV=f16|f32|i8 picks the KV cache's dtype (default f16).
//!        qcount_forward TIER FILE.gguf - TOKENS       (a model file, e.g. a few layers of a
//!                                                    Qwen shape quantized by llama-quantize to a
//!                                                    type mix; prints its layer count)

use qkern::model::{Config, LoadOptions, Model, ModelWeights, SessionOptions};
use qkern::{KvDtype, Tier};

fn main() -> qkern::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: {} TIER PRESET LAYERS TOKENS", args[0]);
        std::process::exit(2);
    }
    let tier: Tier = args[1].parse()?;
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    if args[2].ends_with(".gguf") {
        let path = std::path::Path::new(&args[2]);
        let model = Model::load(path, &LoadOptions::default(), tier, 1)?;
        let c = model.config();
        println!("layers {}", c.n_layers);
        let tokens: Vec<u32> = (0..num(4) as u32)
            .map(|t| t * 7919 % c.vocab as u32)
            .collect();
        return prefill(&model, &tokens);
    }
    let mut config = match args[2].as_str() {
        "0.5b" => Config::qwen25_0_5b(),
        "1.5b" => Config {
            hidden: 1536,
            n_head: 12,
            n_kv_head: 2,
            head_dim: 128,
            ffn: 8960,
            ..Config::qwen25_0_5b()
        },
        p => {
            eprintln!("unknown preset {p} (0.5b or 1.5b)");
            std::process::exit(2);
        }
    };
    config.n_layers = num(3);
    config.vocab = 4096;
    let tokens: Vec<u32> = (0..num(4) as u32).map(|t| t * 7919 % 4096).collect();

    let model = Model::new(ModelWeights::random(&config, 1)?, tier, 1)?;
    prefill(&model, &tokens)
}

/// One prefill of `tokens` (none: nothing, so that run counts the build alone).
fn prefill(model: &Model, tokens: &[u32]) -> qkern::Result<()> {
    let kv_dtype: KvDtype = match std::env::var("QKERN_KV") {
        Ok(v) => v.parse()?,
        Err(_) => KvDtype::F16,
    };
    let mut session = model.session(SessionOptions {
        capacity: Some(tokens.len().max(1)),
        kv_dtype,
        ..SessionOptions::default()
    })?;
    if !tokens.is_empty() {
        let logits = session.prefill(tokens)?;
        // Keeps the result observable.
        println!("logit[0] = {}", logits[0]);
    }
    Ok(())
}
