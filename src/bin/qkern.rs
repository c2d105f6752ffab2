//! `qkern`: benchmark and run Qwen models with qkern's kernels.
//!
//! ```text
//! qkern bench    [--model PATH] [--threads N] [--prompt N] [--decode N] [--reps N] [--tier T] [--chunk N] [--profile] [--quant Q]
//! qkern logits   --model PATH --tokens 1,2,3 [--all] --out FILE [--threads N] [--tier T] [--quant Q]
//! qkern generate --model PATH --tokens 1,2,3 [-n 32] [--threads N] [--tier T] [--quant Q]
//! ```
//! `PATH` is a GGUF file or a Hugging Face folder. `bench` without `--model` builds a model with
//! the exact Qwen2.5-0.5B shapes and seeded random weights in memory. `--quant q4_0|q8_0` is the
//! type float linear weights are quantized to at load (quantized tensors of a file, Q4_0, Q8_0,
//! Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, keep their type); for the random model, the type of its linear weights.

use qkern::model::{
    load_with, Config, LoadOptions, Model, ModelWeights, Op, OpTimes, QuantType, SessionOptions,
};
use qkern::Tier;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage:
  qkern bench    [--model PATH] [--threads N] [--prompt N] [--decode N] [--reps N] [--tier T] [--chunk N] [--profile] [--quant Q]
  qkern logits   --model PATH --tokens 1,2,3 [--all] --out FILE [--threads N] [--tier T] [--quant Q]
  qkern generate --model PATH --tokens 1,2,3 [-n N] [--threads N] [--tier T] [--quant Q]

PATH is a .gguf file or a Hugging Face folder (config.json + *.safetensors).
bench without --model builds the Qwen2.5-0.5B shapes with seeded random Q4_0 weights in memory and
reports prefill of 128 and 512 tokens (or --prompt N), decode, per-op times and peak memory;
--profile adds achieved GFLOP/s or GB/s per op kind and a per-layer table.
logits writes raw f32 little-endian logits of the last position (--all: of every position).
generate prints greedy token ids.
--quant q4_0|q8_0 (default q4_0): type float linear weights are quantized to at load; quantized
tensors of a file (Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) keep their type. For the random
model: the type of its linear weights. bench prints the types the model runs.
--threads defaults to the available parallelism; --tier lowers the kernel tier (also QKERN_TIER).";

/// Parsed command-line options (every command takes the subset it needs).
#[derive(Default)]
struct Args {
    model: Option<PathBuf>,
    threads: Option<usize>,
    prompt: Option<usize>,
    decode: Option<usize>,
    reps: Option<usize>,
    chunk: Option<usize>,
    tier: Option<Tier>,
    tokens: Option<Vec<u32>>,
    all: bool,
    /// `bench --profile`: per-op and per-layer table with achieved rates.
    profile: bool,
    out: Option<PathBuf>,
    n: Option<usize>,
    quant: QuantType,
}

fn parse_num(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| format!("{flag} expects a non-negative integer, got {v:?}"))
}

fn parse_tokens(v: &str) -> Result<Vec<u32>, String> {
    let toks: Result<Vec<u32>, _> = v
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("--tokens: {t:?} is not a token id"))
        })
        .collect();
    let toks = toks?;
    if toks.is_empty() {
        return Err("--tokens is empty".into());
    }
    Ok(toks)
}

fn parse_args(cmd: &str, rest: &[String]) -> Result<Args, String> {
    let allowed: &[&str] = match cmd {
        "bench" => &[
            "--model",
            "--threads",
            "--prompt",
            "--decode",
            "--reps",
            "--tier",
            "--chunk",
            "--profile",
            "--quant",
        ],
        "logits" => &[
            "--model",
            "--tokens",
            "--all",
            "--out",
            "--threads",
            "--tier",
            "--quant",
        ],
        "generate" => &[
            "--model",
            "--tokens",
            "-n",
            "--threads",
            "--tier",
            "--quant",
        ],
        _ => return Err(format!("unknown command {cmd:?}")),
    };
    let mut a = Args::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if !allowed.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag:?}"));
        }
        if flag == "--all" || flag == "--profile" {
            a.all |= flag == "--all";
            a.profile |= flag == "--profile";
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} expects a value"))?;
        match flag.as_str() {
            "--model" => a.model = Some(PathBuf::from(v)),
            "--threads" => {
                let n = parse_num(flag, v)?;
                if n == 0 {
                    return Err("--threads must be at least 1".into());
                }
                a.threads = Some(n)
            }
            "--prompt" => a.prompt = Some(parse_num(flag, v)?.max(1)),
            "--decode" => a.decode = Some(parse_num(flag, v)?),
            "--reps" => a.reps = Some(parse_num(flag, v)?.max(1)),
            "--chunk" => a.chunk = Some(parse_num(flag, v)?.max(1)),
            "--tier" => {
                let t: Tier = v.parse().map_err(|e| format!("--tier: {e}"))?;
                t.check().map_err(|e| format!("--tier: {e}"))?;
                a.tier = Some(t)
            }
            "--tokens" => a.tokens = Some(parse_tokens(v)?),
            "--out" => a.out = Some(PathBuf::from(v)),
            "-n" => a.n = Some(parse_num(flag, v)?),
            "--quant" => {
                let known = || {
                    let names: Vec<_> = QuantType::QUANTIZABLE.iter().map(|t| t.name()).collect();
                    names.join(", ")
                };
                let t: QuantType = v
                    .parse()
                    .map_err(|e| format!("--quant: {e} (known: {})", known()))?;
                if !t.can_quantize() {
                    return Err(format!(
                        "--quant: {t} has no quantizer (float weights can become: {}; files \
                         in {t} load as they are)",
                        known()
                    ));
                }
                a.quant = t
            }
            _ => unreachable!("flag list above"),
        }
    }
    Ok(a)
}

fn threads(a: &Args) -> usize {
    a.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn load_model(a: &Args) -> Result<Model, String> {
    let path = a.model.as_ref().ok_or("--model is required")?;
    let options = LoadOptions { quant: a.quant };
    let weights =
        load_with(path, &options).map_err(|e| format!("loading {}: {e}", path.display()))?;
    let tier = a.tier.unwrap_or_else(Tier::active);
    Model::new(weights, tier, threads(a)).map_err(|e| format!("preparing the model: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if matches!(cmd.as_str(), "help" | "-h" | "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = parse_args(cmd, &args[1..]).and_then(|a| match cmd.as_str() {
        "bench" => bench(&a),
        "logits" => logits(&a),
        "generate" => generate(&a),
        _ => unreachable!("parse_args rejects unknown commands"),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qkern {cmd}: {e}");
            if e.contains("unknown") || e.contains("expects") || e.contains("required") {
                eprintln!("\n{USAGE}");
            }
            ExitCode::from(1)
        }
    }
}

fn logits(a: &Args) -> Result<(), String> {
    let tokens = a.tokens.as_ref().ok_or("--tokens is required")?;
    let out = a.out.as_ref().ok_or("--out is required")?;
    let model = load_model(a)?;
    let mut s = model
        .session(SessionOptions {
            capacity: Some(tokens.len()),
            ..SessionOptions::default()
        })
        .map_err(|e| e.to_string())?;
    let logits = if a.all {
        s.prefill_all(tokens)
    } else {
        s.prefill(tokens)
    }
    .map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out, bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    eprintln!(
        "wrote {} x {} f32 logits to {}",
        logits.len() / model.config().vocab,
        model.config().vocab,
        out.display()
    );
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn generate(a: &Args) -> Result<(), String> {
    let tokens = a.tokens.as_ref().ok_or("--tokens is required")?;
    let n = a.n.unwrap_or(32);
    let model = load_model(a)?;
    let mut s = model
        .session(SessionOptions {
            capacity: Some(tokens.len() + n),
            ..SessionOptions::default()
        })
        .map_err(|e| e.to_string())?;
    let mut logits = s.prefill(tokens).map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let next = argmax(&logits);
        ids.push(next.to_string());
        if i + 1 < n {
            logits = s.decode(next).map_err(|e| e.to_string())?;
        }
    }
    println!("{}", ids.join(" "));
    Ok(())
}

/// A `/proc/self/status` field in bytes (Linux), e.g. `VmHWM` (peak resident) or `VmRSS`.
#[cfg(target_os = "linux")]
fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident memory of this process in bytes, if the OS reports it.
fn peak_rss() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        proc_status("VmHWM")
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
                return None;
            }
            ru
        };
        // ru_maxrss is in bytes on macOS/iOS, in kilobytes on the BSDs.
        let scale = if cfg!(target_vendor = "apple") {
            1
        } else {
            1024
        };
        Some(ru.ru_maxrss as u64 * scale)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time used by the whole process so far (all threads), if the OS reports it.
fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into `ts`, which we own.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Wall and CPU time of one measured run.
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

impl Timing {
    fn measure<R>(f: impl FnOnce() -> R) -> (R, Timing) {
        let (c0, t0) = (process_cpu(), Instant::now());
        let r = f();
        let wall = t0.elapsed();
        let cpu = match (c0, process_cpu()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        (r, Timing { wall, cpu })
    }

    /// "cpu 1.23 s = 1.9 of 2 threads busy": how much of the run the process actually had the
    /// CPUs (a shared machine shows up here as a low share).
    fn cpu_note(&self, threads: usize) -> String {
        match self.cpu {
            Some(c) => format!(
                "cpu {:.2} s, {:.2} of {threads} threads busy",
                c.as_secs_f64(),
                c.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
            ),
            None => String::new(),
        }
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Deterministic pseudo-random prompt tokens.
fn prompt_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % vocab as u64) as u32
        })
        .collect()
}

fn print_breakdown(what: &str, times: &OpTimes, wall: Duration, profile: bool) {
    let total = times.total().as_secs_f64().max(1e-12);
    println!(
        "  per-op time, {what} (sum {:.1} ms of {:.1} ms wall):",
        total * 1e3,
        wall.as_secs_f64() * 1e3
    );
    if profile {
        print!("{}", times.report());
        return;
    }
    for op in Op::ALL {
        let t = times.op(op).as_secs_f64();
        if t > 0.0 {
            println!(
                "    {:<18} {:>9.2} ms {:>6.1}%",
                op.name(),
                t * 1e3,
                100.0 * t / total
            );
        }
    }
}

/// Converts every linear weight of `w` to `quant` (through f32; a no-op for weights already in
/// that type).
fn requantize_linear(w: &mut ModelWeights, quant: QuantType) -> qkern::Result<()> {
    for l in &mut w.layers {
        for t in [
            &mut l.wq,
            &mut l.wk,
            &mut l.wv,
            &mut l.wo,
            &mut l.w_gate,
            &mut l.w_up,
            &mut l.w_down,
        ] {
            if t.quant_type() != quant {
                *t = quant.quantize(&t.dequantize()?)?;
            }
        }
    }
    Ok(())
}

fn bench(a: &Args) -> Result<(), String> {
    let n_threads = threads(a);
    let tier = a.tier.unwrap_or_else(Tier::active);
    let t0 = Instant::now();
    let (model, what) = match &a.model {
        Some(p) => (load_model(a)?, p.display().to_string()),
        None => {
            let config = Config::qwen25_0_5b();
            let mut w = ModelWeights::random(&config, 0x5eed).map_err(|e| e.to_string())?;
            requantize_linear(&mut w, a.quant).map_err(|e| e.to_string())?;
            let m = Model::new(w, tier, n_threads).map_err(|e| e.to_string())?;
            (m, "random weights, Qwen2.5-0.5B shapes".to_string())
        }
    };
    let c = model.config().clone();
    println!("model: {what}");
    println!(
        "  {} layers, hidden {}, heads {}/{} x {}, ffn {}, vocab {}; tier {}, {} threads; packed weights {:.1} MiB, built in {:.2} s",
        c.n_layers,
        c.hidden,
        c.n_head,
        c.n_kv_head,
        c.head_dim,
        c.ffn,
        c.vocab,
        model.tier(),
        model.threads(),
        mib(model.weight_bytes() as u64),
        t0.elapsed().as_secs_f64()
    );
    let types: Vec<String> = model
        .linear_types()
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!(
        "  linear weights: {}; head {}; embedding {}",
        types.join(", "),
        model.head_type(),
        model.embedding_type()
    );
    let prompts = match a.prompt {
        Some(n) => vec![n],
        None => vec![128, 512],
    };
    let n_decode = a.decode.unwrap_or(32);
    let reps = a.reps.unwrap_or(2);
    let max_prompt = *prompts.iter().max().expect("non-empty");
    let opts = SessionOptions {
        capacity: Some(max_prompt + n_decode + 1),
        chunk: a.chunk.unwrap_or(SessionOptions::default().chunk),
        profile: true,
        ..SessionOptions::default()
    };
    let mut s = model.session(opts).map_err(|e| e.to_string())?;
    println!("  KV cache {:.1} MiB", mib(s.kv_bytes() as u64));
    let mut last_logits = Vec::new();
    for &n in &prompts {
        let tokens = prompt_tokens(n, c.vocab, n as u64);
        let mut best: Option<Timing> = None;
        let mut best_times = OpTimes::default();
        for _ in 0..reps {
            s.reset();
            s.clear_times();
            let (logits, t) = Timing::measure(|| s.prefill(&tokens));
            last_logits = logits.map_err(|e| e.to_string())?;
            if best.as_ref().is_none_or(|b| t.wall < b.wall) {
                best = Some(t);
                best_times = s.times().clone();
            }
        }
        let best = best.expect("reps >= 1");
        println!(
            "prefill {n:>5} tokens: {:>8.1} tokens/s ({:.1} ms, best of {reps}; {})",
            n as f64 / best.wall.as_secs_f64(),
            best.wall.as_secs_f64() * 1e3,
            best.cpu_note(model.threads())
        );
        if n == max_prompt {
            print_breakdown(&format!("prefill {n}"), &best_times, best.wall, a.profile);
        }
    }
    if n_decode > 0 {
        // Decode continues the last (longest) prompt.
        s.clear_times();
        let mut next = argmax(&last_logits);
        let (r, t) = Timing::measure(|| -> Result<(), String> {
            for _ in 0..n_decode {
                let logits = s.decode(next).map_err(|e| e.to_string())?;
                next = argmax(&logits);
            }
            Ok(())
        });
        r?;
        println!(
            "decode {n_decode:>6} tokens: {:>8.1} tokens/s ({:.2} ms/token after a {max_prompt}-token prompt; {})",
            n_decode as f64 / t.wall.as_secs_f64(),
            t.wall.as_secs_f64() * 1e3 / n_decode as f64,
            t.cpu_note(model.threads())
        );
        print_breakdown(&format!("decode {n_decode}"), s.times(), t.wall, a.profile);
    }
    match peak_rss() {
        Some(b) => println!(
            "peak resident memory: {:.1} MiB (includes the plain weights while they are packed)",
            mib(b)
        ),
        None => println!("peak resident memory: not reported by this OS"),
    }
    #[cfg(target_os = "linux")]
    if let Some(b) = proc_status("VmRSS") {
        println!("resident memory now: {:.1} MiB", mib(b));
    }
    Ok(())
}
