//! The KV cache of causal attention: per layer and KV head, f16 (default), f32 or int8. Keys are
//! stored in tiles of [`KV_TILE`] positions, each tile transposed (`head_dim x 64`), so the
//! `Q K^T` micro-kernel reads a tile as a plain row-major right-hand matrix without any per-call
//! transposition; values are stored row-major (`position x head_dim`).
//!
//! The cache carries its tier's kernels (like packed weights): writes convert and scan through
//! them, and [`crate::attention`] runs the tier's attention path on it.
//!
//! Where the tier's attention is the x86 bf16 path (`Avx512Vnni` on a CPU with AVX512_BF16,
//! unless `QKERN_ATTN_BF16=0`; the tier's `AttnSelect::bf16_kv`, asked when the cache is made),
//! the 16-bit cache ([`KvDtype::F16`]) stores bf16 instead of f16, in the layouts that path's
//! products read (keys `[d / 2][64][2]` per tile, values `[d][2]` per pair of positions; see
//! `contract::attention::Stored`), so attention reads its tiles without a conversion pass. It
//! still reports [`KvDtype::F16`] (the type asked for: 16 bits per value);
//! [`KvCache::stores_bf16`] tells which rounding it applies.

use crate::contract::attention::{Bf16Write, KvLayout, KvView, Stored, KV_TILE};
use crate::contract::Kernels;
use crate::quant::{check_len, quantize_activation_block};
use crate::{Error, Result, Tier};
use half::f16;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvDtype {
    /// 16 bits per value: IEEE half precision (round to nearest even on write). The default.
    /// Where the tier's attention is the x86 bf16 path (`Avx512Vnni` with AVX512_BF16), bf16
    /// instead, in that path's layouts (see [`KvCache::stores_bf16`]).
    #[default]
    F16,
    /// f32.
    F32,
    /// int8 in blocks of 32 along the head dimension with an f32 scale per position and block
    /// (like Q8_0 blocks: `d = amax / 127`, values rounded half away from zero; 1.125 bytes per
    /// value, 0.56x the f16 cache). Needs `head_dim` a multiple of 32. The `NeonDot` and
    /// `NeonI8mm` tiers run integer attention on it (SDOT / SMMLA on the stored int8, in a layout
    /// chosen for them), the x86 bf16 path runs `Q K^T` on the stored keys (`vpdpbusd`, the
    /// path `avx512-i8qk`) and converts the values to bf16 per tile, and every other path gets
    /// them dequantized to f32.
    I8,
}

impl KvDtype {
    /// Its name as `FromStr` reads it: `f16`, `f32`, `i8`.
    pub fn name(self) -> &'static str {
        match self {
            KvDtype::F16 => "f16",
            KvDtype::F32 => "f32",
            KvDtype::I8 => "i8",
        }
    }
}

impl std::fmt::Display for KvDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KvDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [KvDtype::F16, KvDtype::F32, KvDtype::I8]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::ShapeMismatch(format!("unknown KV cache type {s:?} (f16, f32, i8)"))
            })
    }
}

enum KvStore {
    F16 {
        k: Vec<f16>,
        v: Vec<f16>,
    },
    F32 {
        k: Vec<f32>,
        v: Vec<f32>,
    },
    /// Values as the others, or grouped for the aarch64 int8 attention (`grouped`, chosen by
    /// the tier); scales per block of 32 (see `Stored::I8` for both layouts).
    I8 {
        k: Vec<i8>,
        v: Vec<i8>,
        ks: Vec<f32>,
        vs: Vec<f32>,
        grouped: bool,
    },
    /// The 16-bit cache of a tier that runs the x86 bf16 attention: bf16 bits (round to nearest
    /// even from f32), keys `[d / 2][64][2]` per tile, values `[d][2]` per pair of positions.
    Bf16 {
        k: Vec<u16>,
        v: Vec<u16>,
        /// The tier's conversion (`AttnSelect::bf16_kv`).
        conv: Bf16Write,
    },
}

/// A position's key row then value row, converted to the stored element type by
/// [`KvCache::write`].
struct RowBuf {
    f16: Vec<f16>,
    bf16: Vec<u16>,
    i8: Vec<i8>,
}

impl RowBuf {
    fn new(d: usize) -> Self {
        RowBuf {
            f16: vec![f16::ZERO; 2 * d],
            bf16: vec![0; 2 * d],
            i8: vec![0; 2 * d],
        }
    }
}

/// Keys and values of every layer, for positions `0..capacity`.
pub struct KvCache {
    kernels: &'static Kernels,
    n_layers: usize,
    n_kv: usize,
    head_dim: usize,
    capacity: usize,
    /// `capacity` rounded up to a whole tile.
    cap_pad: usize,
    store: KvStore,
    /// Positions written per layer.
    len: Vec<usize>,
    /// Per layer: largest |k| and |v| ever written (guards the fp16 path against overflow).
    amax: Vec<[f32; 2]>,
}

impl KvCache {
    /// A zeroed cache for the process-wide tier. `head_dim` must be a non-zero multiple of 16;
    /// all sizes non-zero.
    pub fn new(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: KvDtype,
    ) -> Result<Self> {
        Self::with_kernels(
            Kernels::active(),
            n_layers,
            n_kv_heads,
            head_dim,
            capacity,
            dtype,
        )
    }

    /// [`KvCache::new`] for an explicit tier; an error if the CPU lacks it.
    pub fn with_tier(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: KvDtype,
        tier: Tier,
    ) -> Result<Self> {
        let kernels = Kernels::for_tier(tier)?;
        Self::with_kernels(kernels, n_layers, n_kv_heads, head_dim, capacity, dtype)
    }

    /// [`KvCache::new`] for the tier of `kernels`.
    pub fn with_kernels(
        kernels: &'static Kernels,
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: KvDtype,
    ) -> Result<Self> {
        check_head_dim(head_dim)?;
        if n_layers == 0 || n_kv_heads == 0 || capacity == 0 {
            return Err(Error::ShapeMismatch(format!(
                "KV cache with {n_layers} layers, {n_kv_heads} KV heads, capacity {capacity}"
            )));
        }
        let cap_pad = capacity
            .checked_next_multiple_of(KV_TILE)
            .ok_or(Error::Overflow("KV capacity"))?;
        let len = crate::error::mul(n_layers, n_kv_heads, "KV cache size")?;
        let len = crate::error::mul(len, cap_pad, "KV cache size")?;
        let len = crate::error::mul(len, head_dim, "KV cache size")?;
        crate::error::mul(len, 8, "KV cache bytes")?;
        // The tier's attention decides (once per process) whether it reads a bf16 cache.
        let bf16 = (kernels.attn.bf16_kv)();
        let store = match (dtype, bf16) {
            (KvDtype::F16, Some(conv)) => KvStore::Bf16 {
                k: zeroed_vec(len)?,
                v: zeroed_vec(len)?,
                conv,
            },
            (KvDtype::F16, None) => KvStore::F16 {
                k: zeroed_vec(len)?,
                v: zeroed_vec(len)?,
            },
            (KvDtype::F32, _) => KvStore::F32 {
                k: zeroed_vec(len)?,
                v: zeroed_vec(len)?,
            },
            (KvDtype::I8, _) => {
                if !head_dim.is_multiple_of(32) {
                    return Err(Error::ShapeMismatch(format!(
                        "an int8 KV cache needs head_dim a multiple of 32, not {head_dim}"
                    )));
                }
                KvStore::I8 {
                    k: zeroed_vec(len)?,
                    v: zeroed_vec(len)?,
                    ks: zeroed_vec(len / 32)?,
                    vs: zeroed_vec(len / 32)?,
                    grouped: kernels.attn.i8_grouped,
                }
            }
        };
        Ok(KvCache {
            kernels,
            n_layers,
            n_kv: n_kv_heads,
            head_dim,
            capacity,
            cap_pad,
            store,
            len: vec![0; n_layers],
            amax: vec![[0.0; 2]; n_layers],
        })
    }

    /// Tier the cache is written and read at.
    pub fn tier(&self) -> Tier {
        self.kernels.tier
    }

    /// The kernels of that tier.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Layers.
    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// KV heads.
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv
    }

    /// Head vector length.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Element type, as asked for: [`KvDtype::F16`] also for a cache that stores bf16 (see
    /// [`KvCache::stores_bf16`]).
    pub fn dtype(&self) -> KvDtype {
        match self.store {
            KvStore::F16 { .. } | KvStore::Bf16 { .. } => KvDtype::F16,
            KvStore::F32 { .. } => KvDtype::F32,
            KvStore::I8 { .. } => KvDtype::I8,
        }
    }

    /// Whether this 16-bit cache stores bf16 (round to nearest even from f32, 8 significant
    /// bits) rather than f16: exactly where its tier's attention is the x86 bf16 path
    /// (`avx512-bf16`), which then reads the stored tiles without converting them.
    pub fn stores_bf16(&self) -> bool {
        matches!(self.store, KvStore::Bf16 { .. })
    }

    /// Positions of `layer` written so far (`0` for a layer out of range).
    pub fn len(&self, layer: usize) -> usize {
        self.len.get(layer).copied().unwrap_or(0)
    }

    /// Whether no layer holds any position.
    pub fn is_empty(&self) -> bool {
        self.len.iter().all(|&l| l == 0)
    }

    /// Forgets every position of every layer (the memory is kept).
    pub fn clear(&mut self) {
        self.len.iter_mut().for_each(|l| *l = 0);
        self.amax.iter_mut().for_each(|a| *a = [0.0; 2]);
    }

    /// Bytes of key and value storage.
    pub fn bytes(&self) -> usize {
        match &self.store {
            KvStore::F16 { k, v } => (k.len() + v.len()) * 2,
            KvStore::Bf16 { k, v, .. } => (k.len() + v.len()) * 2,
            KvStore::F32 { k, v } => (k.len() + v.len()) * 4,
            KvStore::I8 { k, v, ks, vs, .. } => k.len() + v.len() + (ks.len() + vs.len()) * 4,
        }
    }

    /// Stores `t` rows of keys and values (`n_kv_heads * head_dim` values per row) at positions
    /// `pos0..pos0 + t` of `layer`. `pos0` may not exceed what the layer holds (no gaps); the
    /// layer then holds `pos0 + t` positions (writing at an earlier position drops later ones).
    pub fn write(&mut self, layer: usize, pos0: usize, k: &[f32], v: &[f32]) -> Result<()> {
        if layer >= self.n_layers {
            return Err(Error::ShapeMismatch(format!(
                "layer {layer} of a {}-layer KV cache",
                self.n_layers
            )));
        }
        let width = self.n_kv * self.head_dim;
        if k.is_empty() || !k.len().is_multiple_of(width) {
            return Err(Error::ShapeMismatch(format!(
                "k has {} values, not a non-zero multiple of n_kv_heads * head_dim = {width}",
                k.len()
            )));
        }
        check_len("v", v.len(), k.len())?;
        let t = k.len() / width;
        if pos0 > self.len[layer] {
            return Err(Error::ShapeMismatch(format!(
                "writing at position {pos0} but layer {layer} holds only {}",
                self.len[layer]
            )));
        }
        if t > self.capacity - pos0 {
            return Err(Error::ShapeMismatch(format!(
                "positions {pos0}..{} exceed the KV capacity {}",
                pos0 + t,
                self.capacity
            )));
        }
        let ops = self.kernels.ops;
        let a = &mut self.amax[layer];
        // SAFETY (all kernel calls below): the cache's kernels exist only for a supported tier;
        // source and destination slices have equal lengths.
        a[0] = a[0].max(unsafe { (ops.max_abs)(k) });
        a[1] = a[1].max(unsafe { (ops.max_abs)(v) });
        let d = self.head_dim;
        let layout = self.layout();
        // One converted row (keys, then values) in the stored element type.
        let mut row = RowBuf::new(d);
        for g in 0..self.n_kv {
            let base = self.head_base(layer, g);
            for r in 0..t {
                let pos = pos0 + r;
                let src_k = &k[(r * self.n_kv + g) * d..][..d];
                let src_v = &v[(r * self.n_kv + g) * d..][..d];
                match &mut self.store {
                    KvStore::F16 { k, v } => {
                        let (hk, hv) = row.f16.split_at_mut(d);
                        unsafe { (ops.f32_to_f16)(src_k, hk) };
                        unsafe { (ops.f32_to_f16)(src_v, hv) };
                        layout.put_key(&mut k[base..], pos, hk);
                        layout.put_value(&mut v[base..], pos, hv);
                    }
                    KvStore::Bf16 { k, v, conv } => {
                        let (hk, hv) = row.bf16.split_at_mut(d);
                        conv(src_k, hk);
                        conv(src_v, hv);
                        layout.put_key(&mut k[base..], pos, hk);
                        layout.put_value(&mut v[base..], pos, hv);
                    }
                    KvStore::F32 { k, v } => {
                        layout.put_key(&mut k[base..], pos, src_k);
                        layout.put_value(&mut v[base..], pos, src_v);
                    }
                    KvStore::I8 { k, v, ks, vs, .. } => {
                        // Blocks of 32 along the head dimension, one scale each.
                        let (qk, qv) = row.i8.split_at_mut(d);
                        for (b, (xk, xv)) in src_k
                            .chunks_exact(32)
                            .zip(src_v.chunks_exact(32))
                            .enumerate()
                        {
                            let q = quantize_activation_block(xk.try_into().expect("32 values"));
                            qk[32 * b..32 * b + 32].copy_from_slice(&q.qs);
                            ks[base / 32 + KvLayout::key_scale(d, pos, b)] = q.d;
                            let q = quantize_activation_block(xv.try_into().expect("32 values"));
                            qv[32 * b..32 * b + 32].copy_from_slice(&q.qs);
                            vs[base / 32 + KvLayout::value_scale(d, pos, b)] = q.d;
                        }
                        layout.put_key(&mut k[base..], pos, qk);
                        layout.put_value(&mut v[base..], pos, qv);
                    }
                }
            }
        }
        self.len[layer] = pos0 + t;
        Ok(())
    }

    /// The layout of the stored keys and values (the same in every layer).
    fn layout(&self) -> KvLayout {
        self.view(0).store.layout()
    }

    /// Offset of the first element of `(layer, kv head g)` in `k` and `v`.
    fn head_base(&self, layer: usize, g: usize) -> usize {
        (layer * self.n_kv + g) * self.cap_pad * self.head_dim
    }

    /// The storage of `layer` as the attention driver reads it (`layer` is in range).
    pub(crate) fn view(&self, layer: usize) -> KvView<'_> {
        KvView {
            store: match &self.store {
                KvStore::F16 { k, v } => Stored::F16 { kt: k, v },
                KvStore::F32 { k, v } => Stored::F32 { kt: k, v },
                KvStore::Bf16 { k, v, .. } => Stored::Bf16 { kt: k, v },
                KvStore::I8 {
                    k,
                    v,
                    ks,
                    vs,
                    grouped,
                } => Stored::I8 {
                    kt: k,
                    v,
                    ks,
                    vs,
                    grouped: *grouped,
                },
            },
            layer_base: self.head_base(layer, 0),
            head_stride: self.cap_pad * self.head_dim,
            amax: self.amax[layer],
        }
    }

    /// The stored values of one key or value row, as f32 (for tests and debugging).
    pub fn read(&self, layer: usize, pos: usize, kv_head: usize, value: bool) -> Result<Vec<f32>> {
        if layer >= self.n_layers || kv_head >= self.n_kv || pos >= self.len[layer] {
            return Err(Error::ShapeMismatch(format!(
                "no KV row at layer {layer}, position {pos}, head {kv_head}"
            )));
        }
        let d = self.head_dim;
        let base = self.head_base(layer, kv_head);
        let layout = self.layout();
        let idx: Vec<usize> = (0..d)
            .map(|i| {
                base + if value {
                    layout.value(d, pos, i)
                } else {
                    layout.key(d, pos, i)
                }
            })
            .collect();
        Ok(match &self.store {
            KvStore::F16 { k, v } => {
                let s = if value { v } else { k };
                idx.iter().map(|&i| s[i].to_f32()).collect()
            }
            KvStore::F32 { k, v } => {
                let s = if value { v } else { k };
                idx.iter().map(|&i| s[i]).collect()
            }
            KvStore::Bf16 { k, v, .. } => {
                let s = if value { v } else { k };
                idx.iter()
                    .map(|&i| f32::from_bits((s[i] as u32) << 16))
                    .collect()
            }
            KvStore::I8 { k, v, ks, vs, .. } => idx
                .iter()
                .enumerate()
                .map(|(i, &at)| {
                    if value {
                        v[at] as f32 * vs[base / 32 + KvLayout::value_scale(d, pos, i / 32)]
                    } else {
                        k[at] as f32 * ks[base / 32 + KvLayout::key_scale(d, pos, i / 32)]
                    }
                })
                .collect(),
        })
    }
}

fn check_head_dim(d: usize) -> Result<()> {
    if d == 0 || !d.is_multiple_of(16) {
        return Err(Error::ShapeMismatch(format!(
            "attention head_dim {d} is not a non-zero multiple of 16"
        )));
    }
    Ok(())
}

/// `len` zeros, or an error (not an abort) when the allocation fails: a cache capacity comes from
/// the caller and may be far larger than memory.
fn zeroed_vec<T: Clone + num_traits::Zero>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::AllocationFailed("KV cache"))?;
    v.resize(len, T::zero());
    Ok(v)
}
