//! The parallel GEMM driver: one validated call split into blocks of rows and columns that the
//! pool's threads take on demand.

use crate::aligned::AlignedBuf;
use crate::contract::attention::SharedOut;
use crate::contract::gemm::GemmArgs;
use crate::parallel::ThreadPool;

/// Columns per task: a multiple of every kernel's column tile.
const PAR_COLS: usize = 64;
/// Rows per task.
const PAR_ROWS: usize = 64;

/// Runs `gemm` over the whole calls `parts` (the same weights, `bias` and output width `n`; the
/// activations and outputs of consecutive row blocks of one matmul) on all threads of `pool`, in
/// blocks of rows and columns handed out on demand, column blocks outer: each block of weights
/// is read from memory once for the rows of all parts, not once per part.
///
/// # Safety
/// Every element of `parts` covers its rows `0..m` and columns `0..n` with `ldo == n`, shares
/// the first one's `w`, `n`, `k` and `bias`, and satisfies the contract of `gemm` (as after
/// validation, with `out` valid for its whole `m x n` output); the outputs do not overlap.
pub(crate) unsafe fn gemm_parallel(
    pool: &ThreadPool,
    parts: &[GemmArgs<'_>],
    gemm: unsafe fn(&GemmArgs<'_>),
) {
    let Some(first) = parts.first() else {
        return;
    };
    let (n, k) = (first.n, first.k);
    let (w, bias) = (first.w, first.bias);
    // Per part: its activations, rows, output and first row block (row blocks counted over all
    // parts in order); `Sync`, unlike the raw output pointers of the arguments.
    let mut row_blocks = 0;
    let split: Vec<(&AlignedBuf, usize, SharedOut, usize)> = parts
        .iter()
        .map(|p| {
            debug_assert!(p.rows == (0..p.m) && p.cols == (0..n) && p.ldo == n);
            debug_assert!(std::ptr::eq(p.w, w) && p.k == k);
            let first_block = row_blocks;
            row_blocks += p.m.div_ceil(PAR_ROWS);
            (p.a, p.m, SharedOut(p.out), first_block)
        })
        .collect();
    let col_blocks = n.div_ceil(PAR_COLS);
    pool.run(row_blocks * col_blocks, &|t| {
        // Column blocks outer: consecutive tasks share a block of weights (read from memory
        // once per call, then from cache), the activations stay in cache throughout.
        let (rb, cb) = (t % row_blocks, t / row_blocks);
        let i = split.partition_point(|s| s.3 <= rb) - 1;
        let (a, m, out, first_block) = split[i];
        let rb = rb - first_block;
        let rows = rb * PAR_ROWS..((rb + 1) * PAR_ROWS).min(m);
        let cols = cb * PAR_COLS..((cb + 1) * PAR_COLS).min(n);
        let sub = GemmArgs {
            w,
            n,
            k,
            a,
            m,
            // SAFETY (of the add): (rows.start, cols.start) is inside part i's m x n output.
            out: unsafe { out.ptr().add(rows.start * n + cols.start) },
            rows,
            cols,
            bias,
            ldo: n,
        };
        // SAFETY: the caller validated every part's whole m x n call; this block is a sub-range
        // of part i's, and no other task writes its elements (the parts' outputs are disjoint).
        unsafe { gemm(&sub) };
    });
}
