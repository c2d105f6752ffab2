//! [`Generator`]: text generation on a [`Session`], one text piece at a time.
//!
//! ```no_run
//! use qkern::model::{load, ChatFormat, ChatMessage, Model, Sampler, SamplerOptions, SessionOptions, Tokenizer};
//! # fn main() -> qkern::Result<()> {
//! let path = std::path::Path::new("qwen2.5-0.5b-instruct-q4_0.gguf");
//! let tok = Tokenizer::load(path)?;
//! let model = Model::new(load(path)?, qkern::Tier::active(), 4)?;
//! let mut session = model.session(SessionOptions::default())?;
//! let prompt = ChatFormat::for_tokenizer(&tok).render(&[ChatMessage::new("user", "Hi!")], true, true);
//! let sampler = Sampler::new(SamplerOptions { temperature: 0.7, top_p: 0.8, seed: 1, ..Default::default() })?;
//! for piece in session.generate(&tok, &tok.encode(&prompt), sampler, 256)? {
//!     print!("{}", piece?);
//! }
//! # Ok(())
//! # }
//! ```

use super::sampler::Sampler;
use super::tokenizer::{StreamDecoder, Tokenizer};
use super::Session;
use crate::{Error, Result};
use std::time::{Duration, Instant};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A stop token was sampled (it is not part of the text; see [`Generator::pending`]).
    Token(u32),
    /// The token budget or the context is used up.
    Length,
}

/// Generates text after a prompt: an iterator of text pieces, each complete UTF-8 (a character
/// split across tokens comes out with its last token). Made by [`Session::generate`] or
/// [`Generator::new`], which run the prompt (prefill) at once.
///
/// Each step samples a token from the last logits; a stop token ([`Tokenizer::stop_ids`] or
/// the caller's) ends generation without being run; any other is decoded into text, and run
/// through the model (one decode step) when the next token is asked for. So the session holds
/// the prompt and every generated token except the last sampled one, [`pending`](Self::pending),
/// which a caller continuing the conversation feeds first. Ids without a token in the tokenizer
/// (a model's padding rows beyond the vocabulary) are never sampled.
pub struct Generator<'a, 'm> {
    session: &'a mut Session<'m>,
    tok: &'a Tokenizer,
    sampler: Sampler,
    decoder: StreamDecoder,
    history: Vec<u32>,
    logits: Vec<f32>,
    pending: Option<u32>,
    remaining: usize,
    stops: Vec<u32>,
    stop: Option<Stop>,
    generated: Vec<u32>,
    prompt_len: usize,
    prefill_time: Duration,
    decode_time: Duration,
    decode_steps: usize,
}

impl<'a, 'm> Generator<'a, 'm> {
    /// Runs `prompt` (appended to whatever the session holds) and prepares to generate at most
    /// `max_tokens` tokens. An empty prompt is an error, and so is a prompt that does not fit in
    /// the context ([`Error::ContextFull`]).
    pub fn new(
        session: &'a mut Session<'m>,
        tok: &'a Tokenizer,
        prompt: &[u32],
        sampler: Sampler,
        max_tokens: usize,
    ) -> Result<Generator<'a, 'm>> {
        if prompt.is_empty() {
            return Err(Error::ShapeMismatch("the prompt has no tokens".into()));
        }
        let needed = session.pos().saturating_add(prompt.len());
        if needed > session.capacity() {
            return Err(Error::ContextFull {
                needed,
                capacity: session.capacity(),
            });
        }
        let t0 = Instant::now();
        let logits = session.prefill(prompt)?;
        let prefill_time = t0.elapsed();
        Ok(Generator {
            session,
            tok,
            sampler,
            decoder: StreamDecoder::new(),
            history: prompt.to_vec(),
            logits,
            pending: None,
            remaining: max_tokens,
            stops: tok.stop_ids(),
            stop: None,
            generated: Vec::new(),
            prompt_len: prompt.len(),
            prefill_time,
            decode_time: Duration::ZERO,
            decode_steps: 0,
        })
    }

    /// Adds ids that end generation (besides the tokenizer's stop ids).
    pub fn stop_at(mut self, ids: &[u32]) -> Self {
        self.stops.extend_from_slice(ids);
        self
    }

    /// Why generation ended (`None` while it goes on).
    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }

    /// The last sampled token, which the session has not run yet (the stop token, or the last
    /// token when the budget ran out).
    pub fn pending(&self) -> Option<u32> {
        self.pending
    }

    /// The ids generated so far (a stop token included).
    pub fn tokens(&self) -> &[u32] {
        &self.generated
    }

    /// Prompt tokens and the time their prefill took.
    pub fn prefill_stats(&self) -> (usize, Duration) {
        (self.prompt_len, self.prefill_time)
    }

    /// Decode steps run and their total time.
    pub fn decode_stats(&self) -> (usize, Duration) {
        (self.decode_steps, self.decode_time)
    }

    fn finish(&mut self, why: Stop) -> Option<Result<String>> {
        self.stop = Some(why);
        let rest = self.decoder.flush();
        (!rest.is_empty()).then_some(Ok(rest))
    }

    fn step(&mut self) -> Result<Option<String>> {
        if let Some(p) = self.pending.take() {
            if self.session.pos() >= self.session.capacity() {
                self.pending = Some(p);
                return Ok(None);
            }
            let t0 = Instant::now();
            self.logits = self.session.decode(p)?;
            self.decode_time += t0.elapsed();
            self.decode_steps += 1;
            self.history.push(p);
        }
        for (i, x) in self.logits.iter_mut().enumerate() {
            if !self.tok.has_token(i as u32) {
                *x = f32::NEG_INFINITY;
            }
        }
        let id = self.sampler.sample(&self.logits, &self.history)?;
        self.remaining -= 1;
        self.generated.push(id);
        self.pending = Some(id);
        if self.stops.contains(&id) {
            self.stop = Some(Stop::Token(id));
            return Ok(Some(String::new()));
        }
        self.decoder.push(self.tok, id).map(Some)
    }
}

impl Iterator for Generator<'_, '_> {
    type Item = Result<String>;

    /// The next piece of text (never empty), or `None` when generation has ended.
    fn next(&mut self) -> Option<Result<String>> {
        loop {
            if self.stop.is_some() {
                return None;
            }
            if self.remaining == 0 {
                return self.finish(Stop::Length);
            }
            match self.step() {
                Err(e) => {
                    self.stop = Some(Stop::Length);
                    return Some(Err(e));
                }
                Ok(None) => return self.finish(Stop::Length),
                Ok(Some(text)) => {
                    if let Some(Stop::Token(t)) = self.stop {
                        return self.finish(Stop::Token(t));
                    }
                    if !text.is_empty() {
                        return Some(Ok(text));
                    }
                }
            }
        }
    }
}

impl<'m> Session<'m> {
    /// Starts generating after `prompt` (see [`Generator`]): runs the prompt, then yields text
    /// pieces as tokens are sampled, until a stop token, `max_tokens` or the end of the context.
    pub fn generate<'a>(
        &'a mut self,
        tok: &'a Tokenizer,
        prompt: &[u32],
        sampler: Sampler,
        max_tokens: usize,
    ) -> Result<Generator<'a, 'm>> {
        Generator::new(self, tok, prompt, sampler, max_tokens)
    }
}
