//! The flash-attention driver, written once for every path: the block loop with the online
//! softmax over KV tiles ([`block`]), the prefill and split-decode schedules ([`run`]), and the
//! adapter that turns a path's f32 arithmetic ([`F32Ops`]) into micro-kernels ([`F32`]).
//!
//! * **Blocks**: all query heads that share a KV head are processed together, for a block of
//!   query positions at once (about 64 query rows in all, or the path's `BLOCK_ROWS`). For each KV tile the block computes
//!   `S = Q K^T` (the call's scale folded into Q), the causal mask, an online-softmax update of
//!   the running row maximum and sum in f32 (one `AttnKernel::qk_softmax` call, which a path may
//!   fuse), and `O = O * corr + P V` (`AttnKernel::pv`, given the mask). A KV tile is converted
//!   (f16 -> f32, where the path computes in f32) once per block, never per row. No `T x T` score
//!   matrix exists: scratch is `rows x 64` scores plus the `rows x head_dim` output accumulator.
//! * **Decode** (`t = 1`) on a pool: the KV range is split into chunks of [`KV_CHUNK`] positions
//!   that threads take on demand; each yields a partial (row max, sum, unnormalized output) and
//!   the partials are merged exactly: `M = max m_c`, `L = sum l_c e^(m_c - M)`,
//!   `O = sum O_c e^(m_c - M) / L`.

use crate::contract::attention::{
    AttnKernel, AttnPath, Bf16Tile, F32Ops, I8Tile, KvLayout, Mask, Problem, Stats, Stored, Tile,
    KV_TILE,
};
use crate::contract::ops::exp_f32;
use crate::parallel::{SharedOut, ThreadPool};
use std::cell::RefCell;
use std::ops::Range;

/// Positions per task of the split decode (a multiple of every path's keys per step).
pub const KV_CHUNK: usize = 256;

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

    unsafe fn qk_softmax(
        q: &[f32],
        rows: usize,
        real: usize,
        d: usize,
        kt: &[f32],
        nk: usize,
        mask: Mask,
        s: &mut [f32],
        st: &mut Stats<'_>,
        p: &mut [f32],
    ) {
        // SAFETY: the path's CPU features (the trait's contract); the functions check the shapes.
        unsafe {
            Self::qk(q, rows, d, kt, nk, s);
            Self::softmax(s, real, nk, mask, st, p);
        }
    }

    unsafe fn pv(
        p: &[f32],
        rows: usize,
        nk: usize,
        _mask: Mask,
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

/// The f32 paths do not fuse: [`AttnKernel::qk_softmax`] is these two passes.
impl<T: F32Ops> F32<T> {
    /// The scores of [`AttnKernel::qk_softmax`]: `s[r * KV_TILE + j] = sum_i q[r][i] * k_j[i]` for
    /// `r < rows` and at least every `j < nk` (columns past `nk` may be left unwritten).
    ///
    /// # Safety
    /// The path's CPU features.
    unsafe fn qk(q: &[f32], rows: usize, d: usize, kt: &[f32], nk: usize, s: &mut [f32]) {
        assert!(nk <= KV_TILE && d.is_multiple_of(16));
        assert!(q.len() >= rows * d && kt.len() >= d * KV_TILE && s.len() >= rows * KV_TILE);
        let (q, kt, s) = (q.as_ptr(), kt.as_ptr(), s.as_mut_ptr());
        // SAFETY: rows r..r + R lie inside the checked shapes; CPU features forwarded.
        row_groups!(rows, r, R => unsafe {
            T::qk_rows::<R>(q.add(r * d), d, kt, nk, s.add(r * KV_TILE))
        });
    }

    /// The online-softmax step of [`AttnKernel::qk_softmax`] on the scores in `s` (overwritten)
    /// for rows `r < rows`: per row, the maximum and the exponentials of its visible keys.
    ///
    /// # Safety
    /// The path's CPU features.
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
            let corr = exp_f32(st.m[r] - m_new);
            // SAFETY: as above.
            let sum = unsafe { T::exp_sub_sum(srow, m_new) };
            prow[..valid].copy_from_slice(srow);
            prow[valid..].fill(0.0);
            st.l[r] = st.l[r] * corr + sum;
            st.m[r] = m_new;
            st.corr[r] = corr;
        }
    }
}

/// Query positions per block for a GQA group size, the kernel's rows per micro-tile and its
/// target rows per block.
fn block_positions(group: usize, kernel_rows: usize, block_rows: usize) -> usize {
    // Nearest multiple of `step` to block_rows / group, so that the rows fill whole micro-tiles.
    let step = kernel_rows / gcd(group, kernel_rows);
    ((block_rows + group * step / 2) / (group * step)).max(1) * step
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
    /// An int8 cache's key and value tiles, dequantized.
    kq: Vec<f32>,
    vq: Vec<f32>,
    /// `rows x d` output accumulator, then `m`, `l` and `corr` per row.
    pub o: Vec<f32>,
    pub m: Vec<f32>,
    pub l: Vec<f32>,
    corr: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

pub(crate) fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
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
    let scale = p.scale;
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
    let base = p.kv.head_base(g);
    let mut ts = kv.start;
    while ts < kv_end {
        let nk = K::KEYS.min(kv_end - ts);
        let off = base + ts * d;
        let kt_len = nk.next_multiple_of(KV_TILE) * d;
        let kbuf = bytemuck::cast_slice_mut(&mut sc.kbuf[..]);
        let vbuf = bytemuck::cast_slice_mut(&mut sc.vbuf[..]);
        // SAFETY (all kernel calls of the loop): forwarded CPU support; the shapes are the ones
        // the trait documents, and the implementations assert them.
        let (kt, vt) = match p.kv.store {
            Stored::F16 { kt, v } => {
                let t = Tile::F16 {
                    kt: &kt[off..off + kt_len],
                    v: &v[off..off + nk * d],
                };
                unsafe { K::tile(t, nk, d, kbuf, vbuf) }
            }
            Stored::F32 { kt, v } => {
                let t = Tile::F32 {
                    kt: &kt[off..off + kt_len],
                    v: &v[off..off + nk * d],
                };
                unsafe { K::tile(t, nk, d, kbuf, vbuf) }
            }
            Stored::Bf16 { kt, v } => {
                // A bf16 cache is made only for the tier whose path reads it
                // (`AttnSelect::bf16_kv`, decided once per process like `select`), and calls
                // select from the cache's tier.
                let read = K::TILE_BF16.expect("a bf16 cache is read only by its tier's bf16 path");
                // Pairs of positions: the tile's values start at `off` (`ts` is even).
                let t = Bf16Tile {
                    kt: &kt[off..off + kt_len],
                    v: &v[off..off + nk.next_multiple_of(2) * d],
                };
                read(t, nk, d)
            }
            Stored::I8 {
                kt,
                v,
                ks,
                vs,
                grouped,
            } => match K::TILE_I8 {
                Some(read) if !grouped => {
                    let t = I8Tile {
                        kt: &kt[off..off + kt_len],
                        ks: &ks[off / 32..(off + kt_len) / 32],
                        v: &v[off..off + nk * d],
                        vs: &vs[off / 32..(off + nk * d) / 32],
                    };
                    unsafe { read(t, nk, d, kbuf, vbuf) }
                }
                _ => {
                    let layout = p.kv.store.layout();
                    let n = layout.n;
                    let (kq, vq) = (&mut sc.kq, &mut sc.vq);
                    grow(kq, kt_len);
                    grow(vq, nk * d);
                    // Key dimension i of the positions of tile tt (the next position n further),
                    // their scales (the next position 1 further). The plain layout's rows are
                    // contiguous: slices of fixed length, so that the loop is vectorized.
                    for (c, kc) in kq[..kt_len].chunks_exact_mut(KV_TILE).enumerate() {
                        let (i, pos) = (c % d, ts + c / d * KV_TILE);
                        let k0 = base + layout.key(d, pos, i);
                        let scales = &ks[base / 32 + KvLayout::key_scale(d, pos, i / 32)..];
                        let scales = &scales[..KV_TILE];
                        if n == 1 {
                            let src = &kt[k0..k0 + KV_TILE];
                            for ((o, &q), &s) in kc.iter_mut().zip(src).zip(scales) {
                                *o = q as f32 * s;
                            }
                        } else {
                            let src = kt[k0..].iter().step_by(n);
                            for ((o, &q), &s) in kc.iter_mut().zip(src).zip(scales) {
                                *o = q as f32 * s;
                            }
                        }
                    }
                    // Value row j (the next dimension n further) and its scales.
                    for (j, row) in vq[..nk * d].chunks_exact_mut(d).enumerate() {
                        let pos = ts + j;
                        let v0 = base + layout.value(d, pos, 0);
                        let scales = &vs[base / 32 + KvLayout::value_scale(d, pos, 0)..][..d / 32];
                        for (b, (blk, &s)) in row.chunks_exact_mut(32).zip(scales).enumerate() {
                            if n == 1 {
                                let src = &v[v0 + 32 * b..v0 + 32 * b + 32];
                                for (o, &q) in blk.iter_mut().zip(src) {
                                    *o = q as f32 * s;
                                }
                            } else {
                                let src = v[v0 + 32 * b * n..].iter().step_by(n);
                                for (o, &q) in blk.iter_mut().zip(src) {
                                    *o = q as f32 * s;
                                }
                            }
                        }
                    }
                    let t = Tile::F32 {
                        kt: &kq[..kt_len],
                        v: &vq[..nk * d],
                    };
                    unsafe { K::tile(t, nk, d, kbuf, vbuf) }
                }
            },
        };
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
        unsafe { K::qk_softmax(qb, rp, rows, d, kt, nk, mask, &mut sc.s, &mut st, pbuf) };
        unsafe { K::pv(pbuf, rp, nk, mask, vt, d, &sc.corr, &mut sc.o) };
        ts += K::KEYS;
    }
}

/// Runs block `(g, tile)` of a prefill call and writes its normalized rows to `out`.
///
/// # Safety
/// The CPU supports `K`'s features; `out` points to the call's `t * n_head * d` outputs, and no
/// other thread writes the rows of this block concurrently.
unsafe fn prefill_block<B: Block>(p: &Problem<'_>, g: usize, tile: usize, out: SharedOut) {
    let bq = block_positions(p.group, B::ROWS, B::BLOCK_ROWS);
    let qi0 = tile * bq;
    let nq = bq.min(p.t - qi0);
    SCRATCH.with(|sc| {
        let sc = &mut *sc.borrow_mut();
        // SAFETY: forwarded.
        unsafe { B::block(p, g, qi0, nq, 0..p.pos0 + qi0 + nq, sc) };
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

/// Decode partial over cache positions `kv` for KV head `g` (`t = 1`): per row of the group,
/// `[m, l, o[0..d]]` into `dst` (`group * (d + 2)` values).
///
/// # Safety
/// The CPU supports `K`'s features.
unsafe fn decode_partial<B: Block>(p: &Problem<'_>, g: usize, kv: Range<usize>, dst: &mut [f32]) {
    SCRATCH.with(|sc| {
        let sc = &mut *sc.borrow_mut();
        // SAFETY: forwarded.
        unsafe { B::block(p, g, 0, 1, kv, sc) };
        let d = p.d;
        for (r, part) in dst.chunks_exact_mut(d + 2).take(p.group).enumerate() {
            part[0] = sc.m[r] * B::M_UNIT;
            part[1] = sc.l[r];
            part[2..].copy_from_slice(&sc.o[r * d..(r + 1) * d]);
        }
    });
}

/// One block of query rows against a range of cache positions, as [`block`] computes it for an
/// [`AttnKernel`]; a path with its own block loop (the aarch64 int8 path) implements it directly
/// and shares the schedules and the normalization of this driver.
pub(crate) trait Block {
    /// Rows per micro-tile (a block's rows are padded to a multiple of it).
    const ROWS: usize;
    /// Target rows per block.
    const BLOCK_ROWS: usize;
    /// Natural-log units per unit of the row maxima `sc.m` ([`AttnKernel::M_UNIT`]).
    const M_UNIT: f32;
    /// Attention of `rows = nq * group` query rows (query positions `qi0..qi0 + nq`, heads of
    /// KV head `g`) against cache positions `kv` (clipped causally per row): the unnormalized
    /// output, row maxima and sums in `sc.o`, `sc.m`, `sc.l` (`kv.start` a multiple of
    /// [`KV_TILE`]; every row sees at least one position).
    ///
    /// # Safety
    /// The CPU supports the path's features.
    unsafe fn block(
        p: &Problem<'_>,
        g: usize,
        qi0: usize,
        nq: usize,
        kv: Range<usize>,
        sc: &mut Scratch,
    );
}

/// An [`AttnKernel`] driven by [`block`].
pub(crate) struct Flash<K>(std::marker::PhantomData<K>);

impl<K: AttnKernel> Block for Flash<K> {
    const ROWS: usize = K::ROWS;
    const BLOCK_ROWS: usize = K::BLOCK_ROWS;
    const M_UNIT: f32 = K::M_UNIT;

    unsafe fn block(
        p: &Problem<'_>,
        g: usize,
        qi0: usize,
        nq: usize,
        kv: Range<usize>,
        sc: &mut Scratch,
    ) {
        // SAFETY: forwarded CPU support.
        unsafe { block::<K>(p, g, qi0, nq, kv, sc) }
    }
}

pub(crate) const fn path<K: AttnKernel>() -> AttnPath {
    block_path::<Flash<K>>(None)
}

/// The entry points of a [`Block`] implementation, `name` the path's own name (or `None`: the
/// tier's attention name).
pub(crate) const fn block_path<B: Block>(name: Option<&'static str>) -> AttnPath {
    AttnPath {
        name,
        rows: B::ROWS,
        block_rows: B::BLOCK_ROWS,
        prefill: prefill_block::<B>,
        partial: decode_partial::<B>,
    }
}

thread_local! {
    /// Decode partials of [`run`] on the calling thread.
    static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs a validated call on `path`: on the calling thread, or on all threads of `pool`.
/// Prefill: tasks over (KV head, block of query positions), largest first. Decode (`t = 1`) with
/// more than [`KV_CHUNK`] cached positions on a pool: tasks over (KV head, chunk of positions),
/// merged exactly.
///
/// # Safety
/// The CPU supports `path` (the tier's selection handed it out); `out` holds `t * n_head * d`
/// values.
pub(crate) unsafe fn run(
    p: &Problem<'_>,
    path: &AttnPath,
    pool: Option<&ThreadPool>,
    out: &mut [f32],
) {
    let n_kv = p.n_head / p.group;
    let kv_len = p.pos0 + 1;
    let tiles =
        p.t.div_ceil(block_positions(p.group, path.rows, path.block_rows));
    let o = SharedOut(out.as_mut_ptr());
    let Some(pool) = pool else {
        for tile in 0..tiles {
            for g in 0..n_kv {
                // SAFETY: forwarded CPU support; `out` has the call's values and this thread is
                // the only writer.
                unsafe { (path.prefill)(p, g, tile, o) };
            }
        }
        return;
    };
    if p.t == 1 && kv_len > KV_CHUNK && pool.threads() > 1 {
        let chunks = kv_len.div_ceil(KV_CHUNK);
        let (d, group) = (p.d, p.group);
        let per_task = group * (d + 2);
        PARTIALS.with(|buf| {
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
                // SAFETY: forwarded CPU support.
                unsafe { (path.partial)(p, g, kv, dst) };
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
                        let w = exp_f32(pc[0] - m);
                        l += pc[1] * w;
                        for (oi, &v) in o.iter_mut().zip(&pc[2..]) {
                            *oi += v * w;
                        }
                    }
                    let inv = 1.0 / l;
                    o.iter_mut().for_each(|v| *v *= inv);
                }
            }
        });
        return;
    }
    pool.run(tiles * n_kv, &|task| {
        // Largest (latest) blocks first, so the on-demand schedule ends with small ones.
        let tile = tiles - 1 - task / n_kv;
        let g = task % n_kv;
        // SAFETY: forwarded CPU support; `out` holds the call's values and each (g, tile) block
        // is one task.
        unsafe { (path.prefill)(p, g, tile, o) };
    });
}
