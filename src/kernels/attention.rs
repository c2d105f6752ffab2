//! Causal grouped-query attention over a KV cache, flash style.
//!
//! * **Cache** ([`KvCache`]): per layer and KV head, f16 (default) or f32. Keys are stored in tiles
//!   of [`KV_TILE`] positions, each tile transposed (`head_dim x 64`), so the `Q K^T` micro-kernel
//!   reads a tile as a plain row-major right-hand matrix without any per-call transposition;
//!   values are stored row-major (`position x head_dim`).
//! * **Blocks**: all query heads that share a KV head are processed together, for a block of
//!   query positions at once (about 64 query rows in all). For each KV tile the block computes
//!   `S = Q K^T` (scale `1/sqrt(head_dim)` folded into Q), the causal mask, an online-softmax
//!   update of the running row maximum and sum in f32, and `O = O * corr + P V`. A KV tile is
//!   converted (f16 -> f32, where the path computes in f32) once per block, i.e. once for all
//!   rows of the GQA group and query positions, never per row. No `T x T` score matrix exists:
//!   scratch is `rows x 64` scores plus the `rows x head_dim` output accumulator.
//! * **Positions**: query row `r` of a call is at position `pos0 + r`; it sees cache positions
//!   `0..=pos0 + r`, which must have been written ([`KvCache::write`]). A prefill split in chunks
//!   (each chunk written then attended with its own `pos0`) equals the one-shot call.
//! * **Decode** (`t = 1`) in [`attention_parallel`]: the KV range is split into chunks of
//!   [`KV_CHUNK`] positions that threads take on demand; each yields a partial (row max, sum,
//!   unnormalized output) and the partials are merged exactly:
//!   `M = max m_c`, `L = sum l_c e^(m_c - M)`, `O = sum O_c e^(m_c - M) / L`.
//!
//! Paths: `Scalar` (portable), AVX2 and AVX-512 f32 (x86_64, F16C / AVX-512F widening of f16
//! tiles), NEON f32, and on aarch64 CPUs with FEAT_FP16 an fp16 path (FMLA on 8 half-precision
//! lanes for `Q K^T` and `P V`, softmax statistics and the output accumulator in f32), selected
//! at run time; see [`attention_path`].

use crate::arch;
use crate::parallel::ThreadPool;
use crate::quant::check_len;
use crate::{Error, Result, Tier};
use half::f16;
use std::cell::RefCell;
use std::ops::Range;

/// Positions per KV tile (the key tile of the micro-kernels and the cache's tiling).
pub const KV_TILE: usize = 64;
/// Positions per task of the split decode in [`attention_parallel`] (a multiple of every path's
/// keys per step).
pub const KV_CHUNK: usize = 256;
/// Target number of query rows (query positions x heads of a GQA group) per block.
const BLOCK_ROWS: usize = 64;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvDtype {
    /// IEEE half precision (round to nearest even on write). The default.
    #[default]
    F16,
    /// f32.
    F32,
}

enum KvStore {
    F16 { k: Vec<f16>, v: Vec<f16> },
    F32 { k: Vec<f32>, v: Vec<f32> },
}

/// Keys and values of every layer, for positions `0..capacity`.
pub struct KvCache {
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
    /// A zeroed cache. `head_dim` must be a non-zero multiple of 16; all sizes non-zero.
    pub fn new(
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
        let store = match dtype {
            KvDtype::F16 => KvStore::F16 {
                k: zeroed_vec(len)?,
                v: zeroed_vec(len)?,
            },
            KvDtype::F32 => KvStore::F32 {
                k: zeroed_vec(len)?,
                v: zeroed_vec(len)?,
            },
        };
        Ok(KvCache {
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

    /// Element type.
    pub fn dtype(&self) -> KvDtype {
        match self.store {
            KvStore::F16 { .. } => KvDtype::F16,
            KvStore::F32 { .. } => KvDtype::F32,
        }
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
            KvStore::F32 { k, v } => (k.len() + v.len()) * 4,
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
        let a = &mut self.amax[layer];
        a[0] = a[0].max(max_abs(k));
        a[1] = a[1].max(max_abs(v));
        let d = self.head_dim;
        let mut buf = [f16::ZERO; KV_TILE];
        for g in 0..self.n_kv {
            let base = self.head_base(layer, g);
            for r in 0..t {
                let pos = pos0 + r;
                let src_k = &k[(r * self.n_kv + g) * d..][..d];
                let src_v = &v[(r * self.n_kv + g) * d..][..d];
                // Key element i of the position goes to row i of its tile (stride KV_TILE).
                let kt = base + pos / KV_TILE * KV_TILE * d + pos % KV_TILE;
                let vo = base + pos * d;
                match &mut self.store {
                    KvStore::F16 { k, v } => {
                        for (c, chunk) in src_k.chunks(KV_TILE).enumerate() {
                            let h = &mut buf[..chunk.len()];
                            to_f16(chunk, h);
                            let col = &mut k[kt + c * KV_TILE * KV_TILE..];
                            for (o, &x) in col.iter_mut().step_by(KV_TILE).zip(h.iter()) {
                                *o = x;
                            }
                        }
                        to_f16(src_v, &mut v[vo..vo + d]);
                    }
                    KvStore::F32 { k, v } => {
                        for (o, &x) in k[kt..].iter_mut().step_by(KV_TILE).zip(src_k) {
                            *o = x;
                        }
                        v[vo..vo + d].copy_from_slice(src_v);
                    }
                }
            }
        }
        self.len[layer] = pos0 + t;
        Ok(())
    }

    /// Offset of the first element of `(layer, kv head g)` in `k` and `v`.
    fn head_base(&self, layer: usize, g: usize) -> usize {
        (layer * self.n_kv + g) * self.cap_pad * self.head_dim
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
        let idx: Vec<usize> = if value {
            (0..d).map(|i| base + pos * d + i).collect()
        } else {
            (0..d)
                .map(|i| base + pos / KV_TILE * KV_TILE * d + i * KV_TILE + pos % KV_TILE)
                .collect()
        };
        Ok(match &self.store {
            KvStore::F16 { k, v } => {
                let s = if value { v } else { k };
                idx.iter().map(|&i| s[i].to_f32()).collect()
            }
            KvStore::F32 { k, v } => {
                let s = if value { v } else { k };
                idx.iter().map(|&i| s[i]).collect()
            }
        })
    }
}

/// Largest |x| (NaN ignored); 0 if empty.
fn max_abs(x: &[f32]) -> f32 {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: NEON is present on every aarch64 CPU.
    return unsafe { arch::aarch64::ops::max_abs(x) };
    #[cfg(not(target_arch = "aarch64"))]
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// `dst = f16(src)`, rounding to nearest even (what `f16::from_f32` does), vectorized.
fn to_f16(src: &[f32], dst: &mut [f16]) {
    #[cfg(target_arch = "aarch64")]
    arch::aarch64::attention::to_f16(src, 1.0, dst);
    #[cfg(not(target_arch = "aarch64"))]
    half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src);
}

fn check_head_dim(d: usize) -> Result<()> {
    if d == 0 || !d.is_multiple_of(16) {
        return Err(Error::ShapeMismatch(format!(
            "attention head_dim {d} is not a non-zero multiple of 16"
        )));
    }
    Ok(())
}

/// Consecutive tiles of keys (`head_dim x KV_TILE` each, transposed) and the values of their
/// positions (`positions x head_dim`) as stored.
#[derive(Clone, Copy)]
pub(crate) enum Tile<'a> {
    F16 { kt: &'a [f16], v: &'a [f16] },
    F32 { kt: &'a [f32], v: &'a [f32] },
}

/// The causal mask of one KV tile for the rows of a block: row `r` sees the first
/// `clamp(first + r / group, 0, nk)` keys of the tile.
#[derive(Clone, Copy)]
pub(crate) struct Mask {
    pub first: isize,
    pub group: usize,
}

impl Mask {
    /// Keys of an `nk`-key tile that row `r` sees.
    #[inline]
    pub(crate) fn valid(self, r: usize, nk: usize) -> usize {
        (self.first + (r / self.group) as isize).clamp(0, nk as isize) as usize
    }
}

/// Online-softmax state of a block's rows: running maximum, running sum, and the factor the
/// last tile rescaled the output by.
pub(crate) struct Stats<'a> {
    pub m: &'a mut [f32],
    pub l: &'a mut [f32],
    pub corr: &'a mut [f32],
}

/// One path's attention micro-kernels, driven by [`block`] for every path (one online-softmax
/// driver). Every `unsafe fn` requires that the CPU supports the path's features (checked by
/// [`attention_path`]'s selection, after `Tier::check`); shapes are asserted by the
/// implementations.
pub(crate) trait AttnKernel {
    /// Element type of Q blocks, key/value tiles and P.
    type E: bytemuck::Pod;
    /// Query rows per micro-tile. A block's rows are padded to a multiple of it: padding rows
    /// have zero Q and zero P (the driver zeroes both buffers), their outputs are discarded.
    const ROWS: usize;
    /// Keys per step of the driver (a multiple of [`KV_TILE`]): the key tile of a step is
    /// `nk.div_ceil(KV_TILE)` consecutive cache tiles (`d x 64` each, transposed), the scores and
    /// weights are `rows x KEYS`.
    const KEYS: usize = KV_TILE;
    /// Extra f32 scratch per row after the `rows x KEYS` scores, for the kernel's own use between
    /// `qk` and `softmax`.
    const S_EXTRA: usize = 0;
    /// Natural-log units per unit of the scores (and of the row maxima `m`): 1, or `ln 2` for a
    /// kernel that scales Q by `log2 e` and computes its weights as powers of 2.
    const M_UNIT: f32 = 1.0;
    /// Writes query row `r` of the block, `src * scale` (`d = src.len()` values; times
    /// `1 / M_UNIT`), into the Q buffer `qb` in the kernel's layout.
    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [Self::E]);
    /// The key tiles (`nk.div_ceil(64)` of `d x 64`) and the first `nk` value rows (`nk x d`) in
    /// `Self::E`, converted into `kbuf` / `vbuf` if the storage type differs.
    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [Self::E],
        vbuf: &'a mut [Self::E],
    ) -> (&'a [Self::E], &'a [Self::E]);
    /// `s[r * KEYS + j] = sum_i q[r][i] * k_j[i]` for `r < rows` (a multiple of [`Self::ROWS`])
    /// and at least every `j < nk` (`nk <= KEYS`; key `j` is column `j % 64` of tile `j / 64` of
    /// `kt`; columns past `nk` may be left unwritten).
    unsafe fn qk(q: &[Self::E], rows: usize, d: usize, kt: &[Self::E], nk: usize, s: &mut [f32]);
    /// The online-softmax step of one tile for rows `r < rows` (unpadded): with
    /// `v = mask.valid(r, nk)`, a row with `v = 0` gets `corr = 1` and zero weights; otherwise
    /// `m' = max(m, s[r][..v])`, `corr = e^(m - m')`, `p[r][j] = e^(s[r][j] - m')` for `j < v`
    /// and 0 for `v <= j < nk` (in the kernel's P layout), `l = l corr + sum_j p[r][j]`, `m = m'`
    /// (exponentials in the kernel's units, see [`Self::M_UNIT`]). `s` may be overwritten.
    unsafe fn softmax(
        s: &mut [f32],
        rows: usize,
        nk: usize,
        mask: Mask,
        st: &mut Stats<'_>,
        p: &mut [Self::E],
    );
    /// `o[r * d + i] = o[r * d + i] * corr[r] + sum_{j < nk} p[r][j] * v[j * d + i]` for
    /// `r < rows` (a multiple of [`Self::ROWS`]; `nk <= KEYS`).
    unsafe fn pv(
        p: &[Self::E],
        rows: usize,
        nk: usize,
        v: &[Self::E],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    );
}

/// The arithmetic of an f32 path (Scalar, NEON, AVX2, AVX-512); [`F32`] turns it into an
/// [`AttnKernel`] with row-major Q and P, f16 tiles widened once per block, and the per-row
/// softmax of [`softmax_rows`]. The `unsafe fn`s require the path's CPU features.
pub(crate) trait F32Ops {
    /// `dst = src` widened (same lengths).
    unsafe fn widen(src: &[f16], dst: &mut [f32]);
    /// Largest element.
    unsafe fn max(x: &[f32]) -> f32;
    /// `x[i] = e^(x[i] - m)` (`m` at least every `x[i]`); returns the sum.
    unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32;
    /// `qk` for `R <= 4` rows: `q` is `R x d`, `kt` `d x 64`, `s` `R x 64` (columns `< nk` at
    /// least). The caller checked the shapes.
    unsafe fn qk_rows<const R: usize>(
        q: *const f32,
        d: usize,
        kt: *const f32,
        nk: usize,
        s: *mut f32,
    );
    /// `pv` for `R <= 4` rows: `p` is `R x 64`, `v` `nk x d`, `corr` `R`, `o` `R x d`. The
    /// caller checked the shapes.
    unsafe fn pv_rows<const R: usize>(
        p: *const f32,
        nk: usize,
        v: *const f32,
        d: usize,
        corr: *const f32,
        o: *mut f32,
    );
}

/// Implements [`F32Ops`] for an ISA's marker type by forwarding to its functions: `widen`,
/// `max`, `exp_sub_sum` (slices) and the row kernels `qk_rows::<R>(q, d, kt, nk, s)` and
/// `pv_rows::<R>(p, nk, v, d, corr, o)`. Callers of `F32Ops` guarantee the CPU features and the
/// shapes, as the functions require.
macro_rules! f32_ops {
    ($ty:ty {
        widen: $widen:path,
        max: $max:path,
        exp_sub_sum: $exp:path,
        qk_rows: $qk:ident,
        pv_rows: $pv:ident $(,)?
    }) => {
        #[allow(unused_unsafe)]
        impl $crate::kernels::attention::F32Ops for $ty {
            unsafe fn widen(src: &[half::f16], dst: &mut [f32]) {
                // SAFETY: the path's CPU features (the trait's contract).
                unsafe { $widen(src, dst) }
            }

            unsafe fn max(x: &[f32]) -> f32 {
                // SAFETY: as above.
                unsafe { $max(x) }
            }

            unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
                // SAFETY: as above.
                unsafe { $exp(x, m) }
            }

            unsafe fn qk_rows<const R: usize>(
                q: *const f32,
                d: usize,
                kt: *const f32,
                nk: usize,
                s: *mut f32,
            ) {
                // SAFETY: as above; the caller checked the shapes.
                unsafe { $qk::<R>(q, d, kt, nk, s) }
            }

            unsafe fn pv_rows<const R: usize>(
                p: *const f32,
                nk: usize,
                v: *const f32,
                d: usize,
                corr: *const f32,
                o: *mut f32,
            ) {
                // SAFETY: as above.
                unsafe { $pv::<R>(p, nk, v, d, corr, o) }
            }
        }
    };
}
pub(crate) use f32_ops;

/// An f32 path as an [`AttnKernel`].
pub(crate) struct F32<T>(std::marker::PhantomData<T>);

/// Runs `$body` for row groups of `$R` rows (`$R` a `const`: 4 while 4 rows remain, then 3, 2 or
/// 1), with `$r` the group's first row.
macro_rules! row_groups {
    ($rows:expr, $r:ident, $R:ident => $body:expr) => {{
        let rows = $rows;
        let mut $r = 0;
        while $r + 4 <= rows {
            const $R: usize = 4;
            $body;
            $r += 4;
        }
        match rows - $r {
            3 => {
                const $R: usize = 3;
                $body
            }
            2 => {
                const $R: usize = 2;
                $body
            }
            1 => {
                const $R: usize = 1;
                $body
            }
            _ => {}
        }
    }};
}

impl<T: F32Ops> AttnKernel for F32<T> {
    type E = f32;
    const ROWS: usize = 1;

    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [f32]) {
        let d = src.len();
        for (o, &x) in qb[r * d..(r + 1) * d].iter_mut().zip(src) {
            *o = x * scale;
        }
    }

    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [f32],
        vbuf: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]) {
        match t {
            Tile::F32 { kt, v } => (&kt[..KV_TILE * d], &v[..nk * d]),
            Tile::F16 { kt, v } => {
                // SAFETY: the path's CPU features (the trait's contract).
                unsafe {
                    T::widen(&kt[..KV_TILE * d], &mut kbuf[..KV_TILE * d]);
                    T::widen(&v[..nk * d], &mut vbuf[..nk * d]);
                }
                (&kbuf[..KV_TILE * d], &vbuf[..nk * d])
            }
        }
    }

    unsafe fn qk(q: &[f32], rows: usize, d: usize, kt: &[f32], nk: usize, s: &mut [f32]) {
        assert!(nk <= KV_TILE && d.is_multiple_of(16));
        assert!(q.len() >= rows * d && kt.len() >= d * KV_TILE && s.len() >= rows * KV_TILE);
        let (q, kt, s) = (q.as_ptr(), kt.as_ptr(), s.as_mut_ptr());
        // SAFETY: rows r..r + R lie inside the checked shapes; CPU features forwarded.
        row_groups!(rows, r, R => unsafe {
            T::qk_rows::<R>(q.add(r * d), d, kt, nk, s.add(r * KV_TILE))
        });
    }

    unsafe fn softmax(
        s: &mut [f32],
        rows: usize,
        nk: usize,
        mask: Mask,
        st: &mut Stats<'_>,
        p: &mut [f32],
    ) {
        for r in 0..rows {
            let valid = mask.valid(r, nk);
            let prow = &mut p[r * KV_TILE..r * KV_TILE + nk];
            if valid == 0 {
                st.corr[r] = 1.0;
                prow.fill(0.0);
                continue;
            }
            let srow = &mut s[r * KV_TILE..r * KV_TILE + valid];
            // SAFETY: the path's CPU features (the trait's contract).
            let m_new = st.m[r].max(unsafe { T::max(srow) });
            let corr = arch::scalar::ops::exp_f32(st.m[r] - m_new);
            // SAFETY: as above.
            let sum = unsafe { T::exp_sub_sum(srow, m_new) };
            prow[..valid].copy_from_slice(srow);
            prow[valid..].fill(0.0);
            st.l[r] = st.l[r] * corr + sum;
            st.m[r] = m_new;
            st.corr[r] = corr;
        }
    }

    unsafe fn pv(
        p: &[f32],
        rows: usize,
        nk: usize,
        v: &[f32],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    ) {
        assert!(nk <= KV_TILE && d.is_multiple_of(16) && p.len() >= rows * KV_TILE);
        assert!(v.len() >= nk * d && corr.len() >= rows && o.len() >= rows * d);
        let (p, v, c, o) = (p.as_ptr(), v.as_ptr(), corr.as_ptr(), o.as_mut_ptr());
        // SAFETY: rows r..r + R lie inside the checked shapes; CPU features forwarded.
        row_groups!(rows, r, R => unsafe {
            T::pv_rows::<R>(p.add(r * KV_TILE), nk, v, d, c.add(r), o.add(r * d))
        });
    }
}

/// The attention path that runs for `tier` on this CPU with a cache of `dtype`, e.g.
/// `"neon-fp16"`. (The fp16 path also needs the cache's values to be small enough that f16
/// accumulation cannot overflow; see [`attention`]. Otherwise the NEON f32 path runs.)
pub fn attention_path(tier: Tier, dtype: KvDtype) -> Result<&'static str> {
    tier.check()?;
    let _ = dtype;
    Ok(match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::AvxVnni | Tier::Avx512Vnni => arch::x86_64::attention::path_name(tier),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::NeonDot | Tier::NeonI8mm => arch::aarch64::attention::path_name(tier),
        _ => "scalar",
    })
}

/// The validated shape of one attention call.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub q: &'a [f32],
    pub n_head: usize,
    pub d: usize,
    pub group: usize,
    pub pos0: usize,
    pub t: usize,
    pub cache: &'a KvCache,
    pub layer: usize,
}

fn validate<'a>(
    tier: Tier,
    q: &'a [f32],
    n_head: usize,
    cache: &'a KvCache,
    layer: usize,
    pos0: usize,
    out_len: usize,
) -> Result<Problem<'a>> {
    tier.check()?;
    let d = cache.head_dim;
    if n_head == 0 || !n_head.is_multiple_of(cache.n_kv) {
        return Err(Error::ShapeMismatch(format!(
            "{n_head} query heads is not a non-zero multiple of the {} KV heads",
            cache.n_kv
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
    if layer >= cache.n_layers {
        return Err(Error::ShapeMismatch(format!(
            "layer {layer} of a {}-layer KV cache",
            cache.n_layers
        )));
    }
    let t = q.len() / width;
    if pos0 > cache.len[layer] || t > cache.len[layer] - pos0 {
        return Err(Error::ShapeMismatch(format!(
            "queries at positions {pos0}..{} but layer {layer} holds {} positions",
            pos0.saturating_add(t),
            cache.len[layer]
        )));
    }
    Ok(Problem {
        q,
        n_head,
        d,
        group: n_head / cache.n_kv,
        pos0,
        t,
        cache,
        layer,
    })
}

/// Query positions per block for a GQA group size and the kernel's rows per micro-tile.
fn block_positions(group: usize, kernel_rows: usize) -> usize {
    // Nearest multiple of `step` to BLOCK_ROWS / group, so that the rows fill whole micro-tiles.
    let step = kernel_rows / gcd(group, kernel_rows);
    ((BLOCK_ROWS + group * step / 2) / (group * step)).max(1) * step
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Reusable per-thread scratch (grown on first use, then kept).
#[derive(Default)]
pub(crate) struct Scratch {
    qb: Vec<f32>,
    s: Vec<f32>,
    p: Vec<f32>,
    kbuf: Vec<f32>,
    vbuf: Vec<f32>,
    /// `rows x d` output accumulator, then `m`, `l` and `corr` per row.
    pub o: Vec<f32>,
    pub m: Vec<f32>,
    pub l: Vec<f32>,
    corr: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Attention of `rows = nq * group` query rows (query positions `qi0..qi0 + nq` of the call,
/// heads of KV head `g`) against cache positions `kv` (clipped causally per row), leaving the
/// unnormalized output, row maxima and sums in `sc.o`, `sc.m`, `sc.l`. `kv.start` is a multiple of
/// `K::KEYS`, and every row sees at least one position of `kv`.
///
/// # Safety
/// The CPU supports `K`'s features.
unsafe fn block<K: AttnKernel>(
    p: &Problem<'_>,
    g: usize,
    qi0: usize,
    nq: usize,
    kv: Range<usize>,
    sc: &mut Scratch,
) {
    let (d, group) = (p.d, p.group);
    let rows = nq * group;
    let rp = rows.next_multiple_of(K::ROWS);
    grow(&mut sc.qb, rp * d);
    grow(&mut sc.s, rp * (K::KEYS + K::S_EXTRA));
    grow(&mut sc.p, rp * K::KEYS);
    grow(&mut sc.kbuf, K::KEYS * d);
    grow(&mut sc.vbuf, K::KEYS * d);
    grow(&mut sc.o, rp * d);
    grow(&mut sc.m, rp);
    grow(&mut sc.l, rp);
    grow(&mut sc.corr, rp);
    let scale = 1.0 / (d as f32).sqrt();
    let zero = <K::E as bytemuck::Zeroable>::zeroed();
    let qb: &mut [K::E] = &mut bytemuck::cast_slice_mut(&mut sc.qb[..])[..rp * d];
    let pbuf: &mut [K::E] = &mut bytemuck::cast_slice_mut(&mut sc.p[..])[..rp * K::KEYS];
    if rp > rows {
        // Padding rows: zero Q, zero P (the softmax writes real rows only), corr 1.
        qb.fill(zero);
        pbuf.fill(zero);
        sc.corr[rows..rp].fill(1.0);
    }
    for qi in 0..nq {
        for hh in 0..group {
            let src = &p.q[((qi0 + qi) * p.n_head + g * group + hh) * d..][..d];
            // SAFETY: forwarded CPU support.
            unsafe { K::load_q(src, scale, qi * group + hh, qb) };
        }
    }
    let qb: &[K::E] = qb;
    sc.o[..rp * d].fill(0.0);
    sc.m[..rows].fill(f32::NEG_INFINITY);
    sc.l[..rows].fill(0.0);
    let kv_end = kv.end.min(p.pos0 + qi0 + nq);
    let base = p.cache.head_base(p.layer, g);
    let mut ts = kv.start;
    while ts < kv_end {
        let nk = K::KEYS.min(kv_end - ts);
        let off = base + ts * d;
        let kt_len = nk.next_multiple_of(KV_TILE) * d;
        let tile = match &p.cache.store {
            KvStore::F16 { k, v } => Tile::F16 {
                kt: &k[off..off + kt_len],
                v: &v[off..off + nk * d],
            },
            KvStore::F32 { k, v } => Tile::F32 {
                kt: &k[off..off + kt_len],
                v: &v[off..off + nk * d],
            },
        };
        let kbuf = bytemuck::cast_slice_mut(&mut sc.kbuf[..]);
        let vbuf = bytemuck::cast_slice_mut(&mut sc.vbuf[..]);
        // Row r (position pos0 + qi0 + r / group) sees keys ts..=pos of the tile.
        let mask = Mask {
            first: (p.pos0 + qi0 + 1) as isize - ts as isize,
            group,
        };
        let mut st = Stats {
            m: &mut sc.m[..],
            l: &mut sc.l[..],
            corr: &mut sc.corr[..],
        };
        // SAFETY (all kernel calls of the loop): forwarded CPU support; the shapes are the ones
        // the trait documents, and the implementations assert them.
        let (kt, vt) = unsafe { K::tile(tile, nk, d, kbuf, vbuf) };
        unsafe { K::qk(qb, rp, d, kt, nk, &mut sc.s) };
        unsafe { K::softmax(&mut sc.s, rows, nk, mask, &mut st, pbuf) };
        unsafe { K::pv(pbuf, rp, nk, vt, d, &sc.corr, &mut sc.o) };
        ts += K::KEYS;
    }
}

/// A pointer to the output shared by the tasks of one parallel call; tasks write disjoint rows.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint (position, head) rows, and `ThreadPool::run` joins them all before
// the borrow of `out` ends.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Runs block `(g, tile)` of a prefill call and writes its normalized rows to `out`.
///
/// # Safety
/// The CPU supports `K`'s features; `out` points to the call's `t * n_head * d` outputs, and no
/// other thread writes the rows of this block concurrently.
unsafe fn prefill_block<K: AttnKernel>(p: &Problem<'_>, g: usize, tile: usize, out: SharedOut) {
    let bq = block_positions(p.group, K::ROWS);
    let qi0 = tile * bq;
    let nq = bq.min(p.t - qi0);
    SCRATCH.with(|sc| {
        let sc = &mut *sc.borrow_mut();
        // SAFETY: forwarded.
        unsafe { block::<K>(p, g, qi0, nq, 0..p.pos0 + qi0 + nq, sc) };
        let d = p.d;
        for qi in 0..nq {
            let row0 = ((qi0 + qi) * p.n_head + g * p.group) * d;
            // SAFETY: the group's rows `row0 .. row0 + group * d` lie inside the call's
            // `t * n_head * d` outputs, and this block is their only writer.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr().add(row0), p.group * d) };
            let rows = qi * p.group..(qi + 1) * p.group;
            let src = &sc.o[rows.start * d..rows.end * d];
            for ((o, s), &l) in dst
                .chunks_exact_mut(d)
                .zip(src.chunks_exact(d))
                .zip(&sc.l[rows])
            {
                let inv = 1.0 / l;
                for (o, &s) in o.iter_mut().zip(s) {
                    *o = s * inv;
                }
            }
        }
    });
}

/// The path's monomorphized entry points.
pub(crate) struct AttnPath {
    /// The kernel's rows per micro-tile ([`AttnKernel::ROWS`]).
    pub rows: usize,
    pub prefill: unsafe fn(&Problem<'_>, usize, usize, SharedOut),
    pub partial: unsafe fn(&Problem<'_>, usize, Range<usize>, &mut [f32]),
}

/// Decode partial over cache positions `kv` for KV head `g` (`t = 1`): per row of the group,
/// `[m, l, o[0..d]]` into `dst` (`group * (d + 2)` values).
///
/// # Safety
/// The CPU supports `K`'s features.
unsafe fn decode_partial<K: AttnKernel>(
    p: &Problem<'_>,
    g: usize,
    kv: Range<usize>,
    dst: &mut [f32],
) {
    SCRATCH.with(|sc| {
        let sc = &mut *sc.borrow_mut();
        // SAFETY: forwarded.
        unsafe { block::<K>(p, g, 0, 1, kv, sc) };
        let d = p.d;
        for (r, part) in dst.chunks_exact_mut(d + 2).take(p.group).enumerate() {
            part[0] = sc.m[r] * K::M_UNIT;
            part[1] = sc.l[r];
            part[2..].copy_from_slice(&sc.o[r * d..(r + 1) * d]);
        }
    });
}

pub(crate) const fn path<K: AttnKernel>() -> AttnPath {
    AttnPath {
        rows: K::ROWS,
        prefill: prefill_block::<K>,
        partial: decode_partial::<K>,
    }
}

fn select(p: &Problem<'_>, tier: Tier) -> &'static AttnPath {
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::AvxVnni | Tier::Avx512Vnni => arch::x86_64::attention::select(tier),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::NeonDot | Tier::NeonI8mm => {
            arch::aarch64::attention::select(tier, p.cache.amax[p.layer], p.q, p.d)
        }
        _ => {
            let _ = p;
            &arch::scalar::attention::PATH
        }
    }
}

/// Causal GQA attention of `t` query rows (`q`, `out`: `t x n_head x head_dim`) at positions
/// `pos0..pos0 + t` against `layer` of `cache`, on the calling thread.
pub fn attention(
    tier: Tier,
    q: &[f32],
    n_head: usize,
    cache: &KvCache,
    layer: usize,
    pos0: usize,
    out: &mut [f32],
) -> Result<()> {
    let p = validate(tier, q, n_head, cache, layer, pos0, out.len())?;
    let _iv = crate::signpost::interval(crate::signpost::ATTENTION, || {
        format!("L{layer} T={} heads={n_head} pos0={pos0}", p.t)
    });
    let path = select(&p, tier);
    let tiles = p.t.div_ceil(block_positions(p.group, path.rows));
    let o = SharedOut(out.as_mut_ptr());
    for tile in 0..tiles {
        for g in 0..cache.n_kv {
            // SAFETY: the tier passed `check` and `select` picked a path the CPU supports; `out`
            // has `t * n_head * d` values (validated) and this thread is the only writer.
            unsafe { (path.prefill)(&p, g, tile, o) };
        }
    }
    Ok(())
}

thread_local! {
    /// Decode partials of [`attention_parallel`] on the calling thread.
    static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// [`attention`] on all threads of `pool`. Prefill: tasks over (KV head, block of query
/// positions), largest first. Decode (`t = 1`) with more than [`KV_CHUNK`] cached positions:
/// tasks over (KV head, chunk of positions), merged exactly.
#[allow(clippy::too_many_arguments)]
pub fn attention_parallel(
    pool: &ThreadPool,
    tier: Tier,
    q: &[f32],
    n_head: usize,
    cache: &KvCache,
    layer: usize,
    pos0: usize,
    out: &mut [f32],
) -> Result<()> {
    let p = validate(tier, q, n_head, cache, layer, pos0, out.len())?;
    let _iv = crate::signpost::interval(crate::signpost::ATTENTION, || {
        format!("L{layer} T={} heads={n_head} pos0={pos0}", p.t)
    });
    let path = select(&p, tier);
    let n_kv = cache.n_kv;
    let kv_len = pos0 + 1;
    if p.t == 1 && kv_len > KV_CHUNK && pool.threads() > 1 {
        let chunks = kv_len.div_ceil(KV_CHUNK);
        let (d, group) = (p.d, p.group);
        let per_task = group * (d + 2);
        return PARTIALS.with(|buf| {
            let mut buf = buf.borrow_mut();
            grow(&mut buf, chunks * n_kv * per_task);
            let parts = SharedOut(buf.as_mut_ptr());
            pool.run(chunks * n_kv, &|task| {
                let (c, g) = (task / n_kv, task % n_kv);
                let kv = c * KV_CHUNK..((c + 1) * KV_CHUNK).min(kv_len);
                // SAFETY: task `task` owns values `task * per_task ..` of the buffer, which holds
                // `chunks * n_kv * per_task`; `run` joins before the buffer is used again.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(parts.ptr().add(task * per_task), per_task)
                };
                // SAFETY: the tier passed `check`; `select` picked a supported path.
                unsafe { (path.partial)(&p, g, kv, dst) };
            });
            for g in 0..n_kv {
                for hh in 0..group {
                    let part = |c: usize| &buf[(c * n_kv + g) * per_task + hh * (d + 2)..][..d + 2];
                    let m = (0..chunks).fold(f32::NEG_INFINITY, |m, c| m.max(part(c)[0]));
                    let o = &mut out[(g * group + hh) * d..][..d];
                    o.fill(0.0);
                    let mut l = 0.0f32;
                    for c in 0..chunks {
                        let pc = part(c);
                        let w = arch::scalar::ops::exp_f32(pc[0] - m);
                        l += pc[1] * w;
                        for (oi, &v) in o.iter_mut().zip(&pc[2..]) {
                            *oi += v * w;
                        }
                    }
                    let inv = 1.0 / l;
                    o.iter_mut().for_each(|v| *v *= inv);
                }
            }
            Ok(())
        });
    }
    let tiles = p.t.div_ceil(block_positions(p.group, path.rows));
    let o = SharedOut(out.as_mut_ptr());
    pool.run(tiles * n_kv, &|task| {
        // Largest (latest) blocks first, so the on-demand schedule ends with small ones.
        let tile = tiles - 1 - task / n_kv;
        let g = task % n_kv;
        // SAFETY: the tier passed `check`, `select` picked a supported path, `out` holds the
        // validated `t * n_head * d` values and each (g, tile) block is one task.
        unsafe { (path.prefill)(&p, g, tile, o) };
    });
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
