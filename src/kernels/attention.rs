//! Causal grouped-query attention over a [`KvCache`], flash style.
//!
//! * **Positions**: query row `r` of a call is at position `pos0 + r`; it sees cache positions
//!   `0..=pos0 + r`, which must have been written ([`KvCache::write`]). A prefill split in chunks
//!   (each chunk written then attended with its own `pos0`) equals the one-shot call.
//! * **Scale**: scores are `scale * q . k`, `scale` defaulting to `1 / sqrt(head_dim)`.
//! * **Paths**: the cache's tier runs its path: `Scalar` (portable), AVX2 and AVX-512 f32
//!   (x86_64, F16C / AVX-512F widening of f16 tiles), NEON f32, and on aarch64 CPUs with
//!   FEAT_FP16 an fp16 path (FMLA on 8 half-precision lanes for `Q K^T` and `P V`, softmax
//!   statistics and the output accumulator in f32), selected per call when the values are small
//!   enough for f16 partial sums, and on x86_64 CPUs with AVX512_BF16 a bf16 path at the
//!   `Avx512Vnni` tier (`vdpbf16ps`, f32 softmax; `QKERN_ATTN_BF16=0` keeps the f32 path);
//!   [`crate::Kernels::attention_name`] names it. Over an int8 cache the aarch64 `NeonDot` and
//!   `NeonI8mm` tiers run integer paths (SDOT / SMMLA on the int8 keys and values, int8 weights),
//!   and the x86_64 bf16 path computes `Q K^T` in int8 (`vpdpbusd` on the stored keys,
//!   `avx512-i8qk`); `QKERN_ATTN_I8=0` dequantizes (converts) instead, as every other tier does;
//!   [`attention_path_name`] names the path of a call.
//! * The block loop, the online softmax and the split decode are written once in
//!   `crate::drivers::attention` (module notes there).

use crate::contract::attention::Problem;
use crate::kernels::kv_cache::KvCache;
use crate::parallel::ThreadPool;
use crate::quant::check_len;
use crate::{Error, Result};

pub use crate::contract::attention::KV_TILE;
pub use crate::drivers::attention::KV_CHUNK;

#[allow(clippy::too_many_arguments)]
fn validate<'a>(
    q: &'a [f32],
    n_head: usize,
    scale: Option<f32>,
    cache: &'a KvCache,
    layer: usize,
    pos0: usize,
    out_len: usize,
) -> Result<Problem<'a>> {
    let (d, n_kv) = (cache.head_dim(), cache.n_kv_heads());
    if n_head == 0 || !n_head.is_multiple_of(n_kv) {
        return Err(Error::ShapeMismatch(format!(
            "{n_head} query heads is not a non-zero multiple of the {n_kv} KV heads"
        )));
    }
    let width = crate::error::mul(n_head, d, "n_head * head_dim")?;
    if q.is_empty() || !q.len().is_multiple_of(width) {
        return Err(Error::ShapeMismatch(format!(
            "q has {} values, not a non-zero multiple of n_head * head_dim = {width}",
            q.len()
        )));
    }
    check_len("attention output", out_len, q.len())?;
    if layer >= cache.n_layers() {
        return Err(Error::ShapeMismatch(format!(
            "layer {layer} of a {}-layer KV cache",
            cache.n_layers()
        )));
    }
    let scale = scale.unwrap_or(1.0 / (d as f32).sqrt());
    if !scale.is_finite() {
        return Err(Error::ShapeMismatch(format!(
            "attention scale {scale} is not finite"
        )));
    }
    let t = q.len() / width;
    let held = cache.len(layer);
    if pos0 > held || t > held - pos0 {
        return Err(Error::ShapeMismatch(format!(
            "queries at positions {pos0}..{} but layer {layer} holds {held} positions",
            pos0.saturating_add(t),
        )));
    }
    Ok(Problem {
        q,
        n_head,
        d,
        group: n_head / n_kv,
        pos0,
        t,
        scale,
        kv: cache.view(layer),
    })
}

/// Causal GQA attention of `t` query rows (`q`, `out`: `t x n_head x head_dim`) at positions
/// `pos0..pos0 + t` against `layer` of `cache`, on the calling thread, at the cache's tier.
/// `scale` multiplies `q . k` before the softmax; `None` is `1 / sqrt(head_dim)`.
pub fn attention(
    q: &[f32],
    n_head: usize,
    scale: Option<f32>,
    cache: &KvCache,
    layer: usize,
    pos0: usize,
    out: &mut [f32],
) -> Result<()> {
    run(None, q, n_head, scale, cache, layer, pos0, out)
}

/// [`attention`] on all threads of `pool`. Prefill: tasks over (KV head, block of query
/// positions), largest first. Decode (`t = 1`) with more than [`KV_CHUNK`] cached positions:
/// tasks over (KV head, chunk of positions), merged exactly.
#[allow(clippy::too_many_arguments)]
pub fn attention_parallel(
    pool: &ThreadPool,
    q: &[f32],
    n_head: usize,
    scale: Option<f32>,
    cache: &KvCache,
    layer: usize,
    pos0: usize,
    out: &mut [f32],
) -> Result<()> {
    run(Some(pool), q, n_head, scale, cache, layer, pos0, out)
}

#[allow(clippy::too_many_arguments)]
fn run(
    pool: Option<&ThreadPool>,
    q: &[f32],
    n_head: usize,
    scale: Option<f32>,
    cache: &KvCache,
    layer: usize,
    pos0: usize,
    out: &mut [f32],
) -> Result<()> {
    let p = validate(q, n_head, scale, cache, layer, pos0, out.len())?;
    let _iv = crate::signpost::interval(crate::signpost::ATTENTION, || {
        format!("L{layer} T={} heads={n_head} pos0={pos0}", p.t)
    });
    let path = (cache.kernels().attn.select)(&p);
    // SAFETY: the cache's kernels exist only for a supported tier, whose selection hands out
    // paths the CPU supports; `out` holds the validated `t * n_head * d` values.
    unsafe { crate::drivers::attention::run(&p, path, pool, out) };
    Ok(())
}

/// Name of the path that [`attention`] runs for these arguments (validated alike): the int8
/// paths of an int8 cache report their own names (e.g. `"neondot-i8-sdot"`), every other path
/// the tier's [`crate::Kernels::attention_name`].
pub fn attention_path_name(
    q: &[f32],
    n_head: usize,
    scale: Option<f32>,
    cache: &KvCache,
    layer: usize,
    pos0: usize,
) -> Result<&'static str> {
    let p = validate(q, n_head, scale, cache, layer, pos0, q.len())?;
    let path = (cache.kernels().attn.select)(&p);
    Ok(path
        .name
        .unwrap_or_else(|| cache.kernels().attention_name()))
}
