//! The default parallel driver: a persistent pool that hands out tasks on demand.
//!
//! Tasks are numbered `0..n` and claimed one at a time from a shared counter, so a fast core takes
//! more of them than a slow one (A15: 2 P-cores and 4 E-cores; a static split would wait for the
//! slowest). Kernels expose sub-range entry points, so runtimes with their own threads can ignore
//! this module entirely.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Task = dyn Fn(usize) + Sync;

/// How long an idle worker polls for the next job, and the caller for the workers to finish,
/// before parking on a condition variable. A decode step runs several parallel matmuls per layer
/// with only microseconds of serial work between them: waking a parked thread costs tens of
/// microseconds (a futex round trip and a scheduler wake-up), polling costs nothing then. Past this
/// time the thread parks, so an idle pool uses no CPU.
const SPIN: Duration = Duration::from_micros(200);

/// Polls `done()` for up to [`SPIN`]; whether it became true.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        // Check the clock every 64 polls only (reading it costs more than a poll).
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        // With more runnable threads than cores (a shared machine, or more pool threads than
        // cores), let the thread that has the work run.
        std::thread::yield_now();
        if start.elapsed() >= SPIN {
            return done();
        }
    }
}

struct Job {
    /// Lifetime-erased borrow of the caller's closure; see the SAFETY note in [`ThreadPool::run`].
    task: *const Task,
    n_tasks: usize,
}

// SAFETY: the closure is `Sync`, so sharing the pointer across threads is sound; it is only
// dereferenced while `run` keeps the closure alive.
unsafe impl Send for Job {}

#[derive(Default)]
struct State {
    job: Option<Job>,
    panic: Option<Box<dyn std::any::Any + Send>>,
    shutdown: bool,
    /// Workers parked on `work`.
    parked: usize,
    /// The caller is parked on `done`.
    caller_parked: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    /// Job counter, incremented (under `state`'s lock) each time a job is published; workers poll
    /// it while spinning.
    generation: AtomicU64,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    next: AtomicUsize,
}

/// The scheduling class of a pool's worker threads. Apple's kernels do not let a process pin
/// threads to cores: they place a thread by its quality-of-service class, and user-interactive
/// threads are the ones kept on the performance cores. Elsewhere the class has no effect (pin
/// threads with the OS's own tools, e.g. `taskset`, if needed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThreadQos {
    /// `QOS_CLASS_USER_INTERACTIVE` on Apple targets (the default: prefill and decode are what the
    /// user waits for).
    #[default]
    UserInteractive,
    /// `QOS_CLASS_USER_INITIATED`.
    UserInitiated,
    /// `QOS_CLASS_UTILITY` (long background work; efficiency cores welcome).
    Utility,
    /// Leave the class the thread was created with.
    Inherit,
}

/// Threads a pool should use by default: on Apple targets the performance cores
/// (`sysctl hw.perflevel0.physicalcpu`; an A15 has 2 of its 6 cores), elsewhere (or where that
/// sysctl is missing) every available core. Runtimes that also want the efficiency cores pass a
/// larger count: tasks are claimed on demand, so unequal cores balance themselves.
pub fn default_threads() -> usize {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_vendor = "apple")]
    if let Some(p) = apple::performance_cores() {
        return p.clamp(1, all);
    }
    all
}

#[cfg(target_vendor = "apple")]
mod apple {
    use super::ThreadQos;
    use std::ffi::{c_char, c_int, c_void};

    // <sys/qos.h>: qos_class_t values.
    const QOS_CLASS_USER_INTERACTIVE: u32 = 0x21;
    const QOS_CLASS_USER_INITIATED: u32 = 0x19;
    const QOS_CLASS_UTILITY: u32 = 0x11;

    extern "C" {
        fn pthread_set_qos_class_self_np(qos_class: u32, relative_priority: c_int) -> c_int;
        fn sysctlbyname(
            name: *const c_char,
            oldp: *mut c_void,
            oldlenp: *mut usize,
            newp: *mut c_void,
            newlen: usize,
        ) -> c_int;
    }

    /// Sets the calling thread's QoS class (best effort: an error leaves it as it was).
    pub(super) fn set_qos(qos: ThreadQos) {
        let class = match qos {
            ThreadQos::UserInteractive => QOS_CLASS_USER_INTERACTIVE,
            ThreadQos::UserInitiated => QOS_CLASS_USER_INITIATED,
            ThreadQos::Utility => QOS_CLASS_UTILITY,
            ThreadQos::Inherit => return,
        };
        // SAFETY: a plain call on the current thread with a valid class and relative priority 0.
        let _ = unsafe { pthread_set_qos_class_self_np(class, 0) };
    }

    /// `hw.perflevel0.physicalcpu`, if the kernel has it (Apple silicon; macOS 12, iOS 15).
    pub(super) fn performance_cores() -> Option<usize> {
        let mut n: c_int = 0;
        let mut len = std::mem::size_of::<c_int>();
        // SAFETY: a NUL-terminated name; `oldp` points to a c_int and `oldlenp` holds its size;
        // no new value is set.
        let rc = unsafe {
            sysctlbyname(
                c"hw.perflevel0.physicalcpu".as_ptr(),
                (&mut n as *mut c_int).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0 && len == std::mem::size_of::<c_int>() && n > 0).then_some(n as usize)
    }
}

/// Sets the calling thread's QoS class on Apple targets; nothing elsewhere.
fn set_qos(qos: ThreadQos) {
    #[cfg(target_vendor = "apple")]
    apple::set_qos(qos);
    #[cfg(not(target_vendor = "apple"))]
    let _ = qos;
}

/// A pointer to the output shared by the tasks of one parallel call; tasks write disjoint
/// elements, and the pool joins them all before the borrow of the output ends.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f32);
// SAFETY: every user writes disjoint elements from its tasks, and `ThreadPool::run` joins them
// all before the borrow of the output ends.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A fixed set of worker threads; the calling thread works too, so `ThreadPool::new(n)` uses `n`
/// threads in all.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises `run` calls from different threads.
    run_lock: Mutex<()>,
}

impl ThreadPool {
    /// A pool of `threads` threads in all (the caller plus `threads - 1` workers); 0 counts as 1.
    /// Workers run at [`ThreadQos::UserInteractive`] (Apple targets; see [`ThreadPool::with_qos`]).
    pub fn new(threads: usize) -> Self {
        Self::with_qos(threads, ThreadQos::default())
    }

    /// [`ThreadPool::new`] with the workers' QoS class (the calling thread keeps its own).
    pub fn with_qos(threads: usize, qos: ThreadQos) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("qkern-{i}"))
                    .spawn(move || {
                        set_qos(qos);
                        worker(&shared)
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    /// A pool with one thread per available core.
    pub fn with_available_parallelism() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A pool of [`default_threads`] threads: the performance cores on Apple targets.
    pub fn with_default_threads() -> Self {
        Self::new(default_threads())
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `task(i)` for every `i` in `0..n_tasks`, on all threads, and returns when all are done.
    /// A panic in a task is re-raised here after the other tasks finish.
    pub fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 {
            (0..n_tasks).for_each(task);
            return;
        }
        let _serial = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            shared.next.store(0, Ordering::Relaxed);
            // SAFETY: only the lifetime is erased. This function does not return (not even by
            // unwinding: the caller's own tasks run under catch_unwind) before `pending` is 0,
            // i.e. before every worker has stopped using the pointer, and it clears `job` then.
            let task: *const Task = unsafe {
                std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(task)
            };
            st.job = Some(Job { task, n_tasks });
            shared.pending.store(self.workers.len(), Ordering::Relaxed);
            // Published under the lock: a worker reads the job under it after seeing the new
            // generation, and a worker about to park checks the generation under it.
            shared.generation.fetch_add(1, Ordering::Release);
            if st.parked > 0 {
                shared.work.notify_all();
            }
        }
        let own = catch_unwind(AssertUnwindSafe(|| drain(shared, task, n_tasks)));
        let finished = || shared.pending.load(Ordering::Acquire) == 0;
        let mut st = if spin_until(finished) {
            shared.state.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.caller_parked = true;
            // A worker that brings `pending` to 0 takes the lock before it notifies, so checking
            // under the lock cannot miss the wake-up.
            while !finished() {
                st = shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.caller_parked = false;
            st
        };
        st.job = None;
        let worker_panic = st.panic.take();
        drop(st);
        if let Err(p) = own {
            resume_unwind(p);
        }
        if let Some(p) = worker_panic {
            resume_unwind(p);
        }
    }

    /// Splits `0..total` into chunks of `chunk` (the last one shorter) and runs `task(range)` for
    /// each, on demand.
    pub fn for_each_chunk(
        &self,
        total: usize,
        chunk: usize,
        task: &(dyn Fn(std::ops::Range<usize>) + Sync),
    ) {
        let chunk = chunk.max(1);
        self.run(total.div_ceil(chunk), &|i| {
            let start = i * chunk;
            task(start..(start + chunk).min(total));
        });
    }
}

fn drain(shared: &Shared, task: &(dyn Fn(usize) + Sync + '_), n_tasks: usize) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= n_tasks {
            break;
        }
        task(i);
    }
}

fn worker(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        spin_until(|| shared.generation.load(Ordering::Acquire) != seen);
        let (task, n_tasks) = {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while shared.generation.load(Ordering::Acquire) == seen && !st.shutdown {
                st.parked += 1;
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
                st.parked -= 1;
            }
            if st.shutdown {
                return;
            }
            seen = shared.generation.load(Ordering::Acquire);
            let job = st.job.as_ref().expect("a new generation carries a job");
            (job.task, job.n_tasks)
        };
        // SAFETY: `run` keeps the closure alive until this worker decrements `pending` below.
        let result = catch_unwind(AssertUnwindSafe(|| {
            drain(shared, unsafe { &*task }, n_tasks)
        }));
        if let Err(p) = result {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.panic.get_or_insert(p);
        }
        if shared.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.caller_parked {
                shared.done.notify_all();
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.shutdown = true;
            self.shared.work.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn default_threads_and_qos_classes() {
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = default_threads();
        assert!((1..=all).contains(&d), "{d} of {all}");
        // Every class gives a working pool (on Apple targets the workers set it first).
        for qos in [
            ThreadQos::UserInteractive,
            ThreadQos::UserInitiated,
            ThreadQos::Utility,
            ThreadQos::Inherit,
        ] {
            let pool = ThreadPool::with_qos(3, qos);
            let sum = AtomicUsize::new(0);
            pool.run(100, &|i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            assert_eq!(sum.into_inner(), 4950);
        }
    }

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 3, 8] {
            let pool = ThreadPool::new(threads);
            for n in [0usize, 1, 2, 7, 100] {
                let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                pool.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn chunks_cover_the_range() {
        let pool = ThreadPool::new(3);
        let sum = AtomicU64::new(0);
        pool.for_each_chunk(1001, 64, &|r| {
            sum.fetch_add(r.map(|i| i as u64).sum(), Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 1000 * 1001 / 2);
    }

    #[test]
    fn a_panicking_task_propagates_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(16, &|i| assert!(i != 5, "task 5 fails"));
        }));
        assert!(r.is_err());
        let count = AtomicU64::new(0);
        pool.run(16, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 16);
    }

    #[test]
    fn parked_workers_wake_up_and_a_parked_caller_is_woken() {
        // Idle longer than the spin time so workers park; tasks longer than it so the caller parks.
        let pool = ThreadPool::new(3);
        for round in 0..4 {
            std::thread::sleep(SPIN * 5);
            let count = AtomicU64::new(0);
            pool.run(6, &|i| {
                if round % 2 == 1 && i < 3 {
                    std::thread::sleep(SPIN * 3);
                }
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), 6);
        }
    }

    #[test]
    fn many_short_jobs_in_a_row() {
        let pool = ThreadPool::new(4);
        let count = AtomicU64::new(0);
        let jobs = if cfg!(miri) { 20 } else { 2000 };
        for _ in 0..jobs {
            pool.run(5, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(count.load(Ordering::Relaxed), 5 * jobs);
    }
}
