//! Qwen's ChatML prompt format, written out (the Jinja chat templates of Qwen2.5 and Qwen3 are
//! not executed; [`ChatFormat::for_tokenizer`] reads which of the two a file has).
//!
//! ```text
//! <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n
//! ```
//! Qwen2.5's template puts in a default system prompt when there is none; Qwen3's has no default
//! and, with `enable_thinking = false`, appends an empty thinking block after the assistant header
//! (`<think>\n\n</think>\n\n`) and drops the thinking of earlier assistant turns.

use super::Tokenizer;

/// Qwen2.5's default system prompt (its template's words).
pub const QWEN25_DEFAULT_SYSTEM: &str =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// Which of Qwen's chat templates: the default system prompt and the thinking switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatFormat {
    /// System prompt used when the conversation has none (Qwen2.5's template has one).
    pub default_system: Option<String>,
    /// Whether the template knows `enable_thinking` (Qwen3).
    pub thinking: bool,
}

impl ChatFormat {
    /// Qwen2 / Qwen2.5 instruct.
    pub fn qwen25() -> ChatFormat {
        ChatFormat {
            default_system: Some(QWEN25_DEFAULT_SYSTEM.to_string()),
            thinking: false,
        }
    }

    /// Qwen3.
    pub fn qwen3() -> ChatFormat {
        ChatFormat {
            default_system: None,
            thinking: true,
        }
    }

    /// The format of a tokenizer's chat template: Qwen3's if the template mentions
    /// `enable_thinking` (or, without a template, if the vocabulary has `<think>`), Qwen2.5's
    /// default system prompt if the template contains it.
    pub fn for_tokenizer(tok: &Tokenizer) -> ChatFormat {
        match tok.chat_template() {
            Some(t) => ChatFormat {
                default_system: t
                    .contains(QWEN25_DEFAULT_SYSTEM)
                    .then(|| QWEN25_DEFAULT_SYSTEM.to_string()),
                thinking: t.contains("enable_thinking"),
            },
            None if tok.added_tokens().iter().any(|a| a.content == "<think>") => {
                ChatFormat::qwen3()
            }
            None => ChatFormat::qwen25(),
        }
    }

    /// The prompt text of `messages`: a leading `system` message, or the default system prompt,
    /// then every message; with `add_generation_prompt` the assistant header, and the empty
    /// thinking block if `enable_thinking` is false and the format has the switch.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        enable_thinking: bool,
    ) -> String {
        let mut out = String::new();
        let (system, rest) = match messages.first() {
            Some(m) if m.role == "system" => (Some(m.content.as_str()), &messages[1..]),
            _ => (self.default_system.as_deref(), messages),
        };
        if let Some(s) = system {
            out += &format!("<|im_start|>system\n{s}<|im_end|>\n");
        }
        let last_user = rest.iter().rposition(|m| m.role == "user");
        for (i, m) in rest.iter().enumerate() {
            let mut content = m.content.as_str();
            // Qwen3 keeps no reasoning of the turns before the last user message.
            if self.thinking && m.role == "assistant" && last_user.is_some_and(|u| i < u) {
                if let Some((_, after)) = content.rsplit_once("</think>") {
                    content = after.trim_start_matches('\n');
                }
            }
            out += &format!("<|im_start|>{}\n{content}<|im_end|>\n", m.role);
        }
        if add_generation_prompt {
            out += &self.assistant_header(enable_thinking);
        }
        out
    }

    /// `<|im_start|>assistant\n`, plus the empty thinking block when thinking is switched off.
    pub fn assistant_header(&self, enable_thinking: bool) -> String {
        let mut s = "<|im_start|>assistant\n".to_string();
        if self.thinking && !enable_thinking {
            s += "<think>\n\n</think>\n\n";
        }
        s
    }

    /// The text that continues a conversation whose last assistant reply ended with
    /// `<|im_end|>`: the newline after it, the next user message and the assistant header.
    pub fn next_turn(&self, user: &str, enable_thinking: bool) -> String {
        format!(
            "\n<|im_start|>user\n{user}<|im_end|>\n{}",
            self.assistant_header(enable_thinking)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml() {
        let m = [ChatMessage::new("user", "Hi")];
        assert_eq!(
            ChatFormat::qwen25().render(&m, true, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful \
             assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatFormat::qwen3().render(&m, true, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        );
        assert_eq!(
            ChatFormat::qwen3().render(&m, true, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let m = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "<think>\nhm\n</think>\n\nHello"),
            ChatMessage::new("user", "Bye"),
        ];
        assert_eq!(
            ChatFormat::qwen3().render(&m, false, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        );
        // Qwen2.5 keeps the assistant text as it is; a given system prompt replaces the default.
        assert!(ChatFormat::qwen25()
            .render(&m, false, true)
            .starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
        assert!(ChatFormat::qwen25()
            .render(&m, false, true)
            .contains("<think>\nhm\n</think>"));
    }
}
