//! `qkern`: benchmark and run Qwen models with qkern's kernels.
//!
//! ```text
//! qkern bench    [--model PATH] [--threads N] [--prompt N] [--decode N] [--reps N] [--tier T] [--chunk N] [--profile] [--quant Q] [--kv T]
//! qkern logits   --model PATH --tokens 1,2,3 [--all] [--decode-tokens 5,6,7] --out FILE [--threads N] [--tier T] [--quant Q] [--kv T]
//! qkern generate --model PATH (--prompt TEXT [--chat] [--system TEXT] [--no-think] | --tokens 1,2,3) [-n 32] [SAMPLING] [--ctx N] [--threads N] [--tier T] [--quant Q] [--kv T]
//! qkern chat     --model PATH [--system TEXT] [--no-think] [-n 512] [SAMPLING] [--ctx N] [--threads N] [--tier T] [--quant Q] [--kv T]
//! qkern tokenize --model PATH --text TEXT
//! qkern pack     MODEL -o FILE.qkern [--tier T] [--quant Q]
//! ```
//! SAMPLING: `--temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S` (default greedy).
//! `PATH` is a GGUF file, a Hugging Face folder or a pre-packed `.qkern` file (`qkern pack`). `bench` without `--model` builds a model with
//! the exact Qwen2.5-0.5B shapes and seeded random weights in memory. `--quant q4_0|q8_0` is the
//! type float linear weights are quantized to at load (quantized tensors of a file, Q4_0, Q8_0,
//! Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, keep their type); for the random model, the type of its linear weights.

use qkern::model::{
    pack_model, ChatFormat, ChatMessage, Config, Generator, LoadOptions, Model, ModelWeights, Op,
    OpTimes, QuantType, Sampler, SamplerOptions, SessionOptions, Stop, Tokenizer,
};
use qkern::{KvDtype, Tier};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage:
  qkern bench    [--model PATH] [--threads N] [--prompt N] [--decode N] [--reps N] [--tier T] [--chunk N] [--profile] [--quant Q] [--kv T]
  qkern logits   --model PATH --tokens 1,2,3 [--all] [--decode-tokens 5,6,7] --out FILE [--threads N] [--tier T] [--quant Q] [--kv T]
  qkern generate --model PATH --prompt TEXT [--chat] [--system TEXT] [--no-think] [-n N] [SAMPLING] [--ctx N] [--threads N] [--tier T] [--quant Q] [--kv T]
  qkern generate --model PATH --tokens 1,2,3 [-n N] [SAMPLING] [--ctx N] [--threads N] [--tier T] [--quant Q] [--kv T]
  qkern chat     --model PATH [--system TEXT] [--no-think] [-n N] [SAMPLING] [--ctx N] [--threads N] [--tier T] [--quant Q] [--kv T]
  qkern tokenize --model PATH --text TEXT
  qkern pack     MODEL -o FILE.qkern [--tier T] [--quant Q]
SAMPLING: --temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S (default: greedy)

PATH is a .gguf file, a Hugging Face folder (config.json + *.safetensors) or a pre-packed .qkern file.
pack writes MODEL's weights packed for one tier (default: this CPU's), its config and tokenizer
into FILE, which every command then maps read-only and runs in place (for that tier only).
bench without --model builds the Qwen2.5-0.5B shapes with seeded random Q4_0 weights in memory and
reports the load time, prefill of 128 and 512 tokens (or --prompt N), decode, per-op times, peak
resident memory and resident memory split into anonymous and file-backed pages;
--profile adds achieved GFLOP/s or GB/s per op kind and a per-layer table.
logits writes raw f32 little-endian logits of the last position (--all: of every position), then,
with --decode-tokens, those of each token fed one at a time through the decode path.
generate --prompt streams the generated text (--chat: wrapped in the model's ChatML template, with
--system as the system prompt; --no-think: Qwen3 without thinking), then the prefill and decode
speeds on stderr; it stops at eos, <|im_end|>, <|endoftext|> or after -n tokens (default 256).
generate --tokens prints the generated token ids (default 32 tokens).
chat reads one user message per line from stdin and streams each reply, keeping the KV cache
across turns (-n per reply, default 512). tokenize prints the ids of TEXT (comma-separated).
--ctx: positions of the KV cache (default: enough for the prompt and -n, at most the model's
context; chat: the model's context, at most 4096). The tokenizer comes from the GGUF metadata or
the folder's tokenizer.json.
--quant q4_0|q8_0 (default q4_0): type float linear weights are quantized to at load; quantized
tensors of a file (Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) keep their type. For the random
model: the type of its linear weights. bench prints the types the model runs.
--threads defaults to the performance cores on Apple targets, all cores elsewhere; --tier lowers the kernel tier (also QKERN_TIER).
--kv f16|f32|i8 (default f16): KV cache type; i8 is blocks of 32 with a scale (0.56x of f16).";

/// Parsed command-line options (every command takes the subset it needs).
#[derive(Default)]
struct Args {
    model: Option<PathBuf>,
    kv: KvDtype,
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
    /// `--prompt` / `--text`.
    text: Option<String>,
    chat: bool,
    system: Option<String>,
    no_think: bool,
    sampling: SamplerOptions,
    decode_tokens: Option<Vec<u32>>,
    ctx: Option<usize>,
}

fn parse_num(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| format!("{flag} expects a non-negative integer, got {v:?}"))
}

fn parse_float(flag: &str, v: &str) -> Result<f32, String> {
    v.parse::<f32>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("{flag} expects a number, got {v:?}"))
}

fn parse_tokens(flag: &str, v: &str) -> Result<Vec<u32>, String> {
    let toks: Result<Vec<u32>, _> = v
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{flag}: {t:?} is not a token id"))
        })
        .collect();
    let toks = toks?;
    if toks.is_empty() {
        return Err(format!("{flag} is empty"));
    }
    Ok(toks)
}

const SAMPLING: [&str; 6] = [
    "--temp",
    "--top-k",
    "--top-p",
    "--min-p",
    "--repeat-penalty",
    "--seed",
];

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
            "--kv",
        ],
        "logits" => &[
            "--model",
            "--tokens",
            "--all",
            "--decode-tokens",
            "--out",
            "--threads",
            "--tier",
            "--quant",
            "--kv",
        ],
        "generate" => &[
            "--model",
            "--tokens",
            "--prompt",
            "--chat",
            "--system",
            "--no-think",
            "-n",
            "--ctx",
            "--threads",
            "--tier",
            "--quant",
            "--kv",
        ],
        "chat" => &[
            "--model",
            "--system",
            "--no-think",
            "-n",
            "--ctx",
            "--threads",
            "--tier",
            "--quant",
            "--kv",
        ],
        "tokenize" => &["--model", "--text"],
        "pack" => &["--model", "-o", "--out", "--tier", "--quant"],
        _ => return Err(format!("unknown command {cmd:?}")),
    };
    let sampling = matches!(cmd, "generate" | "chat");
    let mut a = Args::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if cmd == "pack" && !flag.starts_with('-') && a.model.is_none() {
            a.model = Some(PathBuf::from(flag));
            continue;
        }
        let known =
            allowed.contains(&flag.as_str()) || (sampling && SAMPLING.contains(&flag.as_str()));
        if !known {
            return Err(format!("unknown option {flag:?}"));
        }
        if matches!(
            flag.as_str(),
            "--all" | "--profile" | "--chat" | "--no-think"
        ) {
            a.all |= flag == "--all";
            a.profile |= flag == "--profile";
            a.chat |= flag == "--chat";
            a.no_think |= flag == "--no-think";
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
            "--prompt" if cmd == "generate" => a.text = Some(v.clone()),
            "--prompt" => a.prompt = Some(parse_num(flag, v)?.max(1)),
            "--text" => a.text = Some(v.clone()),
            "--system" => a.system = Some(v.clone()),
            "--ctx" => a.ctx = Some(parse_num(flag, v)?.max(1)),
            "--decode-tokens" => a.decode_tokens = Some(parse_tokens(flag, v)?),
            "--temp" => a.sampling.temperature = parse_float(flag, v)?,
            "--top-k" => a.sampling.top_k = parse_num(flag, v)?,
            "--top-p" => a.sampling.top_p = parse_float(flag, v)?,
            "--min-p" => a.sampling.min_p = parse_float(flag, v)?,
            "--repeat-penalty" => a.sampling.repeat_penalty = parse_float(flag, v)?,
            "--seed" => {
                a.sampling.seed = v
                    .parse::<u64>()
                    .map_err(|_| format!("--seed expects a non-negative integer, got {v:?}"))?
            }
            "--decode" => a.decode = Some(parse_num(flag, v)?),
            "--reps" => a.reps = Some(parse_num(flag, v)?.max(1)),
            "--chunk" => a.chunk = Some(parse_num(flag, v)?.max(1)),
            "--tier" => {
                let t: Tier = v.parse().map_err(|e| format!("--tier: {e}"))?;
                t.check().map_err(|e| format!("--tier: {e}"))?;
                a.tier = Some(t)
            }
            "--tokens" => a.tokens = Some(parse_tokens(flag, v)?),
            "--out" | "-o" => a.out = Some(PathBuf::from(v)),
            "-n" => a.n = Some(parse_num(flag, v)?),
            "--kv" => a.kv = v.parse().map_err(|e| format!("--kv: {e}"))?,
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
    Sampler::new(a.sampling.clone()).map_err(|e| e.to_string())?;
    Ok(a)
}

/// Writes the generator's text pieces to stdout as they come, then a newline.
fn stream(g: &mut Generator<'_, '_>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    for piece in g.by_ref() {
        let piece = piece.map_err(|e| e.to_string())?;
        out.write_all(piece.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| format!("writing the output: {e}"))?;
    }
    let _ = writeln!(out);
    Ok(())
}

fn threads(a: &Args) -> usize {
    a.threads.unwrap_or_else(qkern::parallel::default_threads)
}

fn load_model(a: &Args) -> Result<Model, String> {
    let path = a.model.as_ref().ok_or("--model is required")?;
    let options = LoadOptions { quant: a.quant };
    let tier = a.tier.unwrap_or_else(Tier::active);
    // Packed straight from the file mapping: the weights are never held twice.
    Model::load(path, &options, tier, threads(a))
        .map_err(|e| format!("loading {}: {e}", path.display()))
}

fn main() -> ExitCode {
    // Arguments that are not UTF-8 are an error (not a panic, as `std::env::args` would give).
    let mut args: Vec<String> = Vec::new();
    for (i, a) in std::env::args_os().skip(1).enumerate() {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!(
                    "qkern: argument {} ({}) is not valid UTF-8",
                    i + 1,
                    a.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
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
        "chat" => chat(&a),
        "tokenize" => tokenize(&a),
        "pack" => pack(&a),
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

fn pack(a: &Args) -> Result<(), String> {
    let src = a.model.as_ref().ok_or("MODEL is required")?;
    let out = a.out.as_ref().ok_or("-o FILE is required")?;
    let tier = a.tier.unwrap_or_else(Tier::active);
    let options = LoadOptions { quant: a.quant };
    let t0 = Instant::now();
    let tok = pack_model(src, out, &options, tier)
        .map_err(|e| format!("packing {}: {e}", src.display()))?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}: {:.1} MiB packed for tier {tier}{} in {:.2} s",
        out.display(),
        mib(size),
        if tok {
            ", with the tokenizer"
        } else {
            ", no tokenizer"
        },
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn logits(a: &Args) -> Result<(), String> {
    let tokens = a.tokens.as_ref().ok_or("--tokens is required")?;
    let out = a.out.as_ref().ok_or("--out is required")?;
    let steps: &[u32] = a.decode_tokens.as_deref().unwrap_or(&[]);
    let model = load_model(a)?;
    let mut s = model
        .session(SessionOptions {
            capacity: Some(tokens.len() + steps.len()),
            kv_dtype: a.kv,
            ..SessionOptions::default()
        })
        .map_err(|e| e.to_string())?;
    let mut logits = if a.all {
        s.prefill_all(tokens)
    } else {
        s.prefill(tokens)
    }
    .map_err(|e| e.to_string())?;
    // Then each --decode-tokens token through the decode path, one step at a time.
    for &t in steps {
        logits.extend(s.decode(t).map_err(|e| e.to_string())?);
    }
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
    qkern::model::argmax(v).unwrap_or(0)
}

fn sampler(a: &Args, turn: u64) -> Result<Sampler, String> {
    let mut o = a.sampling.clone();
    o.seed = o.seed.wrapping_add(turn);
    Sampler::new(o).map_err(|e| e.to_string())
}

fn load_tokenizer(a: &Args) -> Result<Tokenizer, String> {
    let path = a.model.as_ref().ok_or("--model is required")?;
    Tokenizer::load(path).map_err(|e| format!("loading the tokenizer of {}: {e}", path.display()))
}

fn tokenize(a: &Args) -> Result<(), String> {
    let text = a.text.as_ref().ok_or("--text is required")?;
    let tok = load_tokenizer(a)?;
    let ids: Vec<String> = tok.encode(text).iter().map(u32::to_string).collect();
    println!("{}", ids.join(","));
    Ok(())
}

/// Token ids of text for the model: bos first if the tokenizer asks for it.
fn prompt_ids(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    if let (true, Some(b)) = (tok.add_bos(), tok.bos()) {
        ids.push(b);
    }
    tok.encode_into(text, &mut ids);
    ids
}

fn rate(n: usize, t: Duration) -> String {
    format!(
        "{n} tokens in {:.1} ms, {:.1} tokens/s",
        t.as_secs_f64() * 1e3,
        n as f64 / t.as_secs_f64().max(1e-9)
    )
}

fn generate(a: &Args) -> Result<(), String> {
    let Some(text) = &a.text else {
        return generate_ids(a);
    };
    if a.tokens.is_some() {
        return Err("give --prompt or --tokens, not both".into());
    }
    let tok = load_tokenizer(a)?;
    let n = a.n.unwrap_or(256);
    let prompt = if a.chat {
        let mut m = Vec::new();
        if let Some(sys) = &a.system {
            m.push(ChatMessage::new("system", sys));
        }
        m.push(ChatMessage::new("user", text));
        ChatFormat::for_tokenizer(&tok).render(&m, true, !a.no_think)
    } else {
        if a.system.is_some() || a.no_think {
            return Err("--system and --no-think need --chat".into());
        }
        text.clone()
    };
    let ids = prompt_ids(&tok, &prompt);
    let model = load_model(a)?;
    let ctx = a.ctx.unwrap_or_else(|| {
        model
            .config()
            .max_positions
            .min(ids.len().saturating_add(n))
    });
    let mut s = model
        .session(SessionOptions {
            capacity: Some(ctx),
            kv_dtype: a.kv,
            ..SessionOptions::default()
        })
        .map_err(|e| e.to_string())?;
    let mut g = s
        .generate(&tok, &ids, sampler(a, 0)?, n)
        .map_err(|e| e.to_string())?;
    stream(&mut g)?;
    let (np, tp) = g.prefill_stats();
    let (nd, td) = g.decode_stats();
    eprintln!(
        "prefill: {}; decode: {}; stopped by {}",
        rate(np, tp),
        rate(nd, td),
        match g.stop() {
            Some(Stop::Token(t)) => format!("token {t}"),
            _ => "length".to_string(),
        }
    );
    Ok(())
}

/// `generate --tokens`: token ids in, token ids out (greedy unless sampling options are given).
fn generate_ids(a: &Args) -> Result<(), String> {
    let tokens = a
        .tokens
        .as_ref()
        .ok_or("--prompt or --tokens is required")?;
    let n = a.n.unwrap_or(32);
    let model = load_model(a)?;
    let mut s = model
        .session(SessionOptions {
            capacity: Some(a.ctx.unwrap_or(tokens.len() + n)),
            kv_dtype: a.kv,
            ..SessionOptions::default()
        })
        .map_err(|e| e.to_string())?;
    let mut smp = sampler(a, 0)?;
    let mut history = tokens.clone();
    let mut logits = s.prefill(tokens).map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let next = smp.sample(&logits, &history).map_err(|e| e.to_string())?;
        ids.push(next.to_string());
        history.push(next);
        if i + 1 < n {
            logits = s.decode(next).map_err(|e| e.to_string())?;
        }
    }
    println!("{}", ids.join(" "));
    Ok(())
}

/// `chat`: one user message per stdin line, replies streamed, the KV cache kept across turns
/// (started over, with a note, when the context is full).
fn chat(a: &Args) -> Result<(), String> {
    let tok = load_tokenizer(a)?;
    let model = load_model(a)?;
    let n = a.n.unwrap_or(512);
    let fmt = ChatFormat::for_tokenizer(&tok);
    let think = !a.no_think;
    let im_end = tok.token_id("<|im_end|>");
    let ctx = a.ctx.unwrap_or(model.config().max_positions.min(4096));
    let mut s = model
        .session(SessionOptions {
            capacity: Some(ctx),
            kv_dtype: a.kv,
            ..SessionOptions::default()
        })
        .map_err(|e| e.to_string())?;
    // How the previous reply ended: (stop, pending token); None before the first turn.
    let mut last: Option<(Option<Stop>, Option<u32>)> = None;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut turn = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
        if got == 0 {
            break;
        }
        let Ok(msg) = std::str::from_utf8(&line) else {
            eprintln!("qkern chat: this line is not valid UTF-8; skipped");
            continue;
        };
        let msg = msg.trim_end_matches(['\n', '\r']);
        if msg.trim().is_empty() {
            continue;
        }
        let first_turn = |fmt: &ChatFormat| {
            let mut m = Vec::new();
            if let Some(sys) = &a.system {
                m.push(ChatMessage::new("system", sys));
            }
            m.push(ChatMessage::new("user", msg));
            prompt_ids(&tok, &fmt.render(&m, true, think))
        };
        let next = fmt.next_turn(msg, think);
        let mut ids = match last {
            None => first_turn(&fmt),
            Some((Some(Stop::Token(t)), _)) if Some(t) == im_end => {
                let mut v = vec![t];
                tok.encode_into(&next, &mut v);
                v
            }
            Some((_, pending)) => {
                let mut v: Vec<u32> = pending
                    .filter(|p| !tok.stop_ids().contains(p))
                    .into_iter()
                    .collect();
                tok.encode_into(&format!("<|im_end|>{next}"), &mut v);
                v
            }
        };
        if s.pos() + ids.len() + 1 > s.capacity() {
            eprintln!("qkern chat: the context is full; starting a new conversation");
            s.reset();
            ids = first_turn(&fmt);
        }
        let mut g = s
            .generate(&tok, &ids, sampler(a, turn)?, n)
            .map_err(|e| e.to_string())?;
        stream(&mut g)?;
        let (np, tp) = g.prefill_stats();
        let (nd, td) = g.decode_stats();
        eprintln!("[prefill: {}; decode: {}]", rate(np, tp), rate(nd, td));
        last = Some((g.stop(), g.pending()));
        turn += 1;
    }
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

/// Resident memory now, as a phone sees it: "resident X MiB (anonymous A, file-backed F)" on
/// Linux (`/proc/self/status` RssAnon / RssFile: anonymous pages are what an app is killed for,
/// clean file-backed pages the system can drop); on macOS the physical footprint (the figure
/// iOS limits) and its peak; elsewhere "not reported".
fn memory_now() -> String {
    #[cfg(target_os = "linux")]
    {
        match (
            proc_status("VmRSS"),
            proc_status("RssAnon"),
            proc_status("RssFile"),
        ) {
            (Some(r), Some(a), Some(f)) => format!(
                "resident {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB)",
                mib(r),
                mib(a),
                mib(f)
            ),
            _ => "resident memory not reported".to_string(),
        }
    }
    #[cfg(target_os = "macos")]
    {
        // SAFETY: `rusage_info_v4` is plain integers, for which all-zero bytes are a valid value.
        let mut ri: libc::rusage_info_v4 = unsafe { std::mem::zeroed() };
        // SAFETY: proc_pid_rusage writes one `rusage_info_v4` (the RUSAGE_INFO_V4 flavour) into
        // `ri`, which we own and which is that type.
        let rc = unsafe {
            libc::proc_pid_rusage(
                libc::getpid(),
                libc::RUSAGE_INFO_V4,
                (&mut ri as *mut libc::rusage_info_v4).cast(),
            )
        };
        if rc != 0 {
            return "resident memory not reported".to_string();
        }
        format!(
            "physical footprint {:.1} MiB (peak {:.1} MiB), resident {:.1} MiB",
            mib(ri.ri_phys_footprint),
            mib(ri.ri_lifetime_max_phys_footprint),
            mib(ri.ri_resident_size)
        )
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        "resident memory split not reported on this OS".to_string()
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
    let load_time = t0.elapsed();
    let c = model.config().clone();
    println!("model: {what}");
    println!(
        "  {} layers, hidden {}, heads {}/{} x {}, ffn {}, vocab {}; tier {}, {} threads; packed weights {:.1} MiB, loaded in {:.2} s",
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
        load_time.as_secs_f64()
    );
    if model.mapped_bytes() > 0 {
        println!(
            "  token embedding read in place from the file mapping ({:.1} MiB of the file)",
            mib(model.mapped_bytes() as u64)
        );
    }
    println!("  after loading: {}", memory_now());
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
        kv_dtype: a.kv,
    };
    let mut s = model.session(opts).map_err(|e| e.to_string())?;
    println!("  KV cache {:.1} MiB ({})", mib(s.kv_bytes() as u64), a.kv);
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
        Some(b) => println!("peak resident memory: {:.1} MiB", mib(b)),
        None => println!("peak resident memory: not reported by this OS"),
    }
    println!("memory now: {}", memory_now());
    Ok(())
}
