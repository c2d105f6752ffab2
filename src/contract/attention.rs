//! Attention contracts: the shapes the flash-attention driver (`crate::drivers::attention`) hands
//! a path's micro-kernels, the micro-kernel trait every path implements, and the f32 arithmetic
//! trait that the f32 paths share.

use crate::parallel::SharedOut;
use half::f16;

/// Positions per KV tile (the key tile of the micro-kernels and the cache's tiling).
pub const KV_TILE: usize = 64;

/// Consecutive tiles of keys (`head_dim x KV_TILE` each, transposed) and the values of their
/// positions (`positions x head_dim`) as stored, in the kinds every path reads
/// ([`AttnKernel::tile`]).
#[derive(Clone, Copy)]
pub(crate) enum Tile<'a> {
    F16 { kt: &'a [f16], v: &'a [f16] },
    F32 { kt: &'a [f32], v: &'a [f32] },
}

/// An int8 tile in the ungrouped layout of [`Stored::I8`]: key tiles `d x 64` with their scales
/// `[d / 32][64]` per tile (`ks`), value rows with their scales `[row][d / 32]` (`vs`). Handed only
/// to a path's own int8 reader ([`AttnKernel::TILE_I8`]).
#[derive(Clone, Copy)]
#[allow(dead_code)] // read by the x86 bf16 and int8 paths only
pub(crate) struct I8Tile<'a> {
    pub kt: &'a [i8],
    pub ks: &'a [f32],
    pub v: &'a [i8],
    pub vs: &'a [f32],
}

/// A bf16 tile: bf16 bits in the layouts of [`Stored::Bf16`] (keys `[d / 2][64][2]` per tile,
/// values `[d][2]` per pair of positions, starting at an even position). Handed only to a path's
/// own bf16 reader ([`AttnKernel::TILE_BF16`]).
#[derive(Clone, Copy)]
#[allow(dead_code)] // read by the x86 bf16 path only
pub(crate) struct Bf16Tile<'a> {
    pub kt: &'a [u16],
    pub v: &'a [u16],
}

/// A path's reader of int8 tiles: [`AttnKernel::tile`]'s arguments and result for an [`I8Tile`].
pub(crate) type ReadI8<E> =
    for<'a> unsafe fn(I8Tile<'a>, usize, usize, &'a mut [E], &'a mut [E]) -> (&'a [E], &'a [E]);

/// A path's reader of bf16 tiles as stored: the key tiles and value rows of a [`Bf16Tile`] of
/// `nk` positions and head dimension `d` (arguments `nk, d`), as [`AttnKernel::tile`] returns them.
pub(crate) type ReadBf16<E> = for<'a> fn(Bf16Tile<'a>, usize, usize) -> (&'a [E], &'a [E]);

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

/// One path's attention micro-kernels, driven for every path by the one online-softmax driver
/// (`crate::drivers::attention`). Every `unsafe fn` requires that the CPU supports the path's
/// features (the tier's [`AttnSelect`] hands out only such paths); shapes are asserted by the
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
    /// Target number of query rows (query positions x heads of a GQA group) per block: a KV tile
    /// is converted (where the kernel's type differs from the cache's) once per block.
    const BLOCK_ROWS: usize = 64;
    /// Extra f32 scratch per row after the `rows x KEYS` scores, for the kernel's own use in
    /// [`Self::qk_softmax`].
    const S_EXTRA: usize = 0;
    /// The path's own reader of int8 tiles, converting them in one pass; `None`: the driver
    /// dequantizes them to f32 first and hands them to [`Self::tile`] as [`Tile::F32`].
    const TILE_I8: Option<ReadI8<Self::E>> = None;
    /// The path's reader of bf16 tiles as stored (`E = u16`); `None`: the path is never handed a
    /// bf16 cache (only the tier whose selection hands out a bf16 path makes one,
    /// [`AttnSelect::bf16_kv`]).
    const TILE_BF16: Option<ReadBf16<Self::E>> = None;
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
    /// The scores and the online-softmax step of one tile, which a kernel may fuse (the scores
    /// need not reach `s`, the kernel's scratch of `rows x (KEYS + S_EXTRA)` floats).
    ///
    /// Scores `s[r][j] = sum_i q[r][i] * k_j[i]` for the `rows` rows of `q` (padded, a multiple of
    /// [`Self::ROWS`]) and keys `j < nk` (`nk <= KEYS`; key `j` is column `j % 64` of tile `j / 64`
    /// of `kt`). The online-softmax step for the first `real` rows (unpadded): with `v =
    /// mask.valid(r, nk)`, a row with `v = 0` gets `corr = 1` and zero weights; otherwise `m' =
    /// max(m, s[r][..v])`, `corr = e^(m - m')`, `p[r][j] = e^(s[r][j] - m')` for `j < v` and 0 for
    /// `v <= j < nk` (in the kernel's P layout), `l = l corr + sum_j p[r][j]`, `m = m'`
    /// (exponentials in the kernel's units, see [`Self::M_UNIT`]).
    ///
    /// A kernel may also keep a lazy maximum: `m' = m` (and `corr = 1`) while no visible score
    /// exceeds `m` by more than a bound of its own, so that `m` is then at least the row maximum
    /// minus that bound instead of the maximum itself. The driver and the decode merge need only
    /// that `l` and the output are relative to `m` and that the weights stay finite.
    #[allow(clippy::too_many_arguments)]
    unsafe fn qk_softmax(
        q: &[Self::E],
        rows: usize,
        real: usize,
        d: usize,
        kt: &[Self::E],
        nk: usize,
        mask: Mask,
        s: &mut [f32],
        st: &mut Stats<'_>,
        p: &mut [Self::E],
    );
    /// `o[r * d + i] = o[r * d + i] * corr[r] + sum_{j < nk} p[r][j] * v[j * d + i]` for
    /// `r < rows` (a multiple of [`Self::ROWS`]; `nk <= KEYS`). Row `r` has zero weights from key
    /// `mask.valid(r, nk)` on (the tile's causal mask), so a kernel may skip the keys that no row
    /// of a micro-tile sees.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pv(
        p: &[Self::E],
        rows: usize,
        nk: usize,
        mask: Mask,
        v: &[Self::E],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    );
}

/// The arithmetic of an f32 path (Scalar, NEON, AVX2, AVX-512); `drivers::attention::F32` turns
/// it into an [`AttnKernel`] with row-major Q and P, f16 tiles widened once per block, and a
/// per-row softmax. The `unsafe fn`s require the path's CPU features.
pub(crate) trait F32Ops {
    /// `dst = src` widened (same lengths).
    unsafe fn widen(src: &[f16], dst: &mut [f32]);
    /// Largest element.
    unsafe fn max(x: &[f32]) -> f32;
    /// `x[i] = e^(x[i] - m)` (`m` at least every `x[i]`); returns the sum.
    unsafe fn exp_sub_sum(x: &mut [f32], m: f32) -> f32;
    /// The scores for `R <= 4` rows: `q` is `R x d`, `kt` `d x 64`, `s` `R x 64` (columns `< nk` at
    /// least). The caller checked the shapes.
    unsafe fn qk_rows<const R: usize>(
        q: *const f32,
        d: usize,
        kt: *const f32,
        nk: usize,
        s: *mut f32,
    );
    /// [`AttnKernel::pv`] for `R <= 4` rows: `p` is `R x 64`, `v` `nk x d`, `corr` `R`, `o` `R x d`. The
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
        impl $crate::contract::attention::F32Ops for $ty {
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

/// The whole key and value storage of a cache (every layer and KV head), as stored: f16 or f32
/// tiles the paths read directly (as [`Tile::F16`] / [`Tile::F32`]), or int8, which the aarch64
/// int8 paths read as stored and the driver hands every other path per tile, dequantized into
/// f32 unless the path reads int8 tiles itself ([`AttnKernel::TILE_I8`]). Int8 values come in
/// blocks of 32 along the head dimension with an f32 scale per position and block: key scales per
/// tile `[d / 32][KV_TILE]` (transposed like the keys), value scales `[position][d / 32]`; a
/// head's scales start at its value offset / 32. The values are laid out like the f16 cache (keys
/// `[d][KV_TILE]` per tile, values `[position][d]`), or `grouped` (the caches of the `NeonDot` and
/// `NeonI8mm` tiers): keys `[d / 8][KV_TILE][8]` per tile (8 consecutive dimensions of a key
/// contiguous: two keys per 16 bytes, the `B` operand of SMMLA), values `[d][8]` per group of 8
/// positions (8 positions of a dimension contiguous: two dimensions per 16 bytes).
///
/// `Bf16` is the 16-bit cache of a tier that runs the x86 bf16 path (`Avx512Vnni` with
/// AVX512_BF16): bf16 bits in the layouts of that path's products, keys `[d / 2][KV_TILE][2]` per
/// tile (dimensions `2i, 2i + 1` of a key side by side) and values `[d][2]` per pair of positions
/// `2m, 2m + 1` (a head's values start at an even position, so a tile's values start at its
/// first position times `d`, like the others). The second position of a pair not yet written may
/// hold anything (zeros or stale values); readers ignore it.
#[derive(Clone, Copy)]
pub(crate) enum Stored<'a> {
    F16 {
        kt: &'a [f16],
        v: &'a [f16],
    },
    F32 {
        kt: &'a [f32],
        v: &'a [f32],
    },
    I8 {
        kt: &'a [i8],
        v: &'a [i8],
        ks: &'a [f32],
        vs: &'a [f32],
        grouped: bool,
    },
    Bf16 {
        kt: &'a [u16],
        v: &'a [u16],
    },
}

/// Where a cache layout keeps dimension `i` of position `pos` of a head, as an offset from the
/// head's first element: the one definition of the layouts of [`Stored`], for the cache's writer
/// and reader and the driver's dequantization. Every layout interleaves `n` (1, 2 or 8) elements:
/// keys `[d / n][KV_TILE][n]` per tile (`n` consecutive dimensions of a key contiguous), values
/// `[d][n]` per group of `n` positions (`n` consecutive positions of a dimension contiguous). `n =
/// 1` is the plain layout (keys `[d][KV_TILE]` per tile, values `[position][d]`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct KvLayout {
    /// The interleave `n`.
    pub n: usize,
}

impl KvLayout {
    /// f16, f32 and plain int8.
    pub const PLAIN: Self = Self { n: 1 };
    /// bf16 (the x86 bf16 path: two dimensions / positions per 32-bit lane).
    pub const PAIRS: Self = Self { n: 2 };
    /// Grouped int8 (the aarch64 int8 path: the 8-byte operands of SDOT / SMMLA).
    pub const GROUPED: Self = Self { n: 8 };

    /// Offset of key dimension `i` of position `pos`; the next position of the same tile is `n`
    /// further.
    #[inline]
    pub fn key(self, d: usize, pos: usize, i: usize) -> usize {
        let n = self.n;
        pos / KV_TILE * KV_TILE * d + i / n * n * KV_TILE + pos % KV_TILE * n + i % n
    }

    /// Offset of value dimension `i` of position `pos`; the next dimension is `n` further.
    #[inline]
    pub fn value(self, d: usize, pos: usize, i: usize) -> usize {
        let n = self.n;
        pos / n * n * d + i * n + pos % n
    }

    /// Writes key row `src` (`d` values) of position `pos` into `dst` (a head's keys).
    #[inline]
    pub fn put_key<T: Copy>(self, dst: &mut [T], pos: usize, src: &[T]) {
        let (n, k0) = (self.n, self.key(src.len(), pos, 0));
        for (c, chunk) in src.chunks_exact(n).enumerate() {
            dst[k0 + c * n * KV_TILE..][..n].copy_from_slice(chunk);
        }
    }

    /// Writes value row `src` (`d` values) of position `pos` into `dst` (a head's values).
    #[inline]
    pub fn put_value<T: Copy>(self, dst: &mut [T], pos: usize, src: &[T]) {
        let v0 = self.value(src.len(), pos, 0);
        for (o, &x) in dst[v0..].iter_mut().step_by(self.n).zip(src) {
            *o = x;
        }
    }

    /// Int8: offset of the scale of key block `b` (dimensions `32 b..32 b + 32`) of position
    /// `pos` in the head's scales (`[d / 32][KV_TILE]` per tile); the next position of the same
    /// tile is 1 further.
    #[inline]
    pub fn key_scale(d: usize, pos: usize, b: usize) -> usize {
        pos / KV_TILE * KV_TILE * d / 32 + b * KV_TILE + pos % KV_TILE
    }

    /// Int8: offset of the scale of value block `b` of position `pos` (`[position][d / 32]`).
    #[inline]
    pub fn value_scale(d: usize, pos: usize, b: usize) -> usize {
        pos * d / 32 + b
    }
}

impl Stored<'_> {
    /// The layout of the stored keys and values.
    pub(crate) fn layout(&self) -> KvLayout {
        match self {
            Stored::F16 { .. } | Stored::F32 { .. } | Stored::I8 { grouped: false, .. } => {
                KvLayout::PLAIN
            }
            Stored::I8 { grouped: true, .. } => KvLayout::GROUPED,
            Stored::Bf16 { .. } => KvLayout::PAIRS,
        }
    }
}

/// The key and value storage of one cache layer, as the driver reads it.
#[derive(Clone, Copy)]
pub(crate) struct KvView<'a> {
    /// The whole key and value storage of the cache (every layer and KV head).
    pub store: Stored<'a>,
    /// Offset of the layer's KV head 0 in `store`; head `g` starts at `layer_base + g * head_stride`.
    /// Keys: tiles of `head_dim x KV_TILE` (transposed); values: `position x head_dim`.
    pub layer_base: usize,
    pub head_stride: usize,
    /// Largest |k| and |v| ever written to the layer (the fp16 path's overflow guard).
    #[allow(dead_code)] // read by the aarch64 fp16 selection only
    pub amax: [f32; 2],
}

impl KvView<'_> {
    /// Offset of the first element of KV head `g` of the layer.
    pub(crate) fn head_base(&self, g: usize) -> usize {
        self.layer_base + g * self.head_stride
    }
}

/// The validated shape of one attention call.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    /// `t x n_head x d` query values.
    pub q: &'a [f32],
    pub n_head: usize,
    pub d: usize,
    /// Query heads per KV head.
    pub group: usize,
    /// Position of query row 0.
    pub pos0: usize,
    /// Query positions.
    pub t: usize,
    /// Factor applied to `q . k` before the softmax (usually `1 / sqrt(d)`).
    pub scale: f32,
    pub kv: KvView<'a>,
}

/// A path's monomorphized entry points (made by `crate::drivers::attention::path`).
pub(crate) struct AttnPath {
    /// The path's own name where it differs from the tier's attention name (the int8 paths).
    pub name: Option<&'static str>,
    /// The kernel's rows per micro-tile ([`AttnKernel::ROWS`]).
    pub rows: usize,
    /// The kernel's target rows per block ([`AttnKernel::BLOCK_ROWS`]).
    pub block_rows: usize,
    /// Runs block `(g, tile)` of a prefill call, writing its normalized rows to the output.
    /// # Safety
    /// The CPU supports the path; the output holds the call's `t * n_head * d` values and no
    /// other thread writes this block's rows.
    pub prefill: unsafe fn(&Problem<'_>, usize, usize, SharedOut),
    /// Decode partial `[m, l, o[0..d]]` per row of KV head `g`'s group over cache positions.
    /// # Safety
    /// The CPU supports the path.
    pub partial: unsafe fn(&Problem<'_>, usize, std::ops::Range<usize>, &mut [f32]),
}

/// How a tier picks its attention path for one call.
pub(crate) struct AttnSelect {
    /// Name of the path the tier runs on this CPU when the values allow its fastest path
    /// (e.g. `"neon-fp16"`).
    pub name: fn() -> &'static str,
    /// The path for one validated call.
    pub select: fn(&Problem<'_>) -> &'static AttnPath,
    /// Where `select` hands out a path that reads a bf16 cache as stored (the x86 bf16 path,
    /// [`AttnKernel::TILE_BF16`]): the cache's write conversion `dst = bf16(src)`, and the 16-bit
    /// cache of the tier stores [`Stored::Bf16`]. `None` elsewhere. Asked once per cache.
    pub bf16_kv: fn() -> Option<Bf16Write>,
    /// Whether the tier's int8 cache stores its values grouped ([`Stored::I8`]'s `grouped`), for
    /// the integer paths that read them as stored.
    pub i8_grouped: bool,
}

/// Whether an int8 cache runs the tier's integer path where it has one (`QKERN_ATTN_I8=0`: the
/// dequantizing or converting path instead, for comparison), read once per process; the
/// selections of every tier ask it.
pub(crate) fn int8_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| crate::Tier::switch_on("QKERN_ATTN_I8"))
}

/// `dst = bf16(src)` (bf16 bits, round to nearest even; equal lengths, a multiple of 16).
pub(crate) type Bf16Write = fn(&[f32], &mut [u16]);
