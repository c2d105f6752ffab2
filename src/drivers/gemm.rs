//! The parallel GEMM driver: one validated call split into blocks of rows and columns that the
//! pool's threads take on demand.

use crate::contract::attention::SharedOut;
use crate::contract::gemm::GemmArgs;
use crate::parallel::ThreadPool;

/// Columns per task: a multiple of every kernel's column tile.
const PAR_COLS: usize = 64;
/// Rows per task.
const PAR_ROWS: usize = 64;

/// Runs `gemm` over the whole call `args` on all threads of `pool`, in blocks of rows and columns
/// handed out on demand, column blocks outer.
///
/// # Safety
/// `args` covers rows `0..m` and columns `0..n` with `ldo == n`, and satisfies the contract of
/// `gemm` (as after validation, with `out` valid for the whole `m x n` output).
pub(crate) unsafe fn gemm_parallel(
    pool: &ThreadPool,
    args: &GemmArgs<'_>,
    gemm: unsafe fn(&GemmArgs<'_>),
) {
    let out = SharedOut(args.out);
    let (m, n, k) = (args.m, args.n, args.k);
    let (w, a, bias) = (args.w, args.a, args.bias);
    debug_assert!(args.rows == (0..m) && args.cols == (0..n) && args.ldo == n);
    let row_blocks = m.div_ceil(PAR_ROWS);
    let col_blocks = n.div_ceil(PAR_COLS);
    pool.run(row_blocks * col_blocks, &|t| {
        // Column blocks outer: consecutive tasks share a block of weights (read from memory
        // once per call, then from cache), the activations stay in cache throughout.
        let (rb, cb) = (t % row_blocks, t / row_blocks);
        let rows = rb * PAR_ROWS..((rb + 1) * PAR_ROWS).min(m);
        let cols = cb * PAR_COLS..((cb + 1) * PAR_COLS).min(n);
        let sub = GemmArgs {
            w,
            n,
            k,
            a,
            m,
            // SAFETY (of the add): (rows.start, cols.start) is inside the m x n output.
            out: unsafe { out.ptr().add(rows.start * n + cols.start) },
            rows,
            cols,
            bias,
            ldo: n,
        };
        // SAFETY: the caller validated the whole m x n call; this block is a sub-range of it and no
        // other task writes its elements.
        unsafe { gemm(&sub) };
    });
}
