//! Qwen2's pre-tokenizer: the split regex of its `tokenizer.json`, written as a small state
//! machine over characters.
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! Each piece is the match of the first alternative that matches at the current position (the
//! regex engine's leftmost-first rule, backtracking included), and the pieces cover the text:
//! every character is a letter (`\p{L}`), a number (`\p{N}`), white space (`\s`, Unicode's
//! `White_Space`, which is [`char::is_whitespace`]) or something else, and each kind starts some
//! alternative. Letters and numbers are the Unicode general categories L (Lu Ll Lt Lm Lo) and N
//! (Nd Nl No); `char::is_alphabetic` is not `\p{L}` (it includes marks such as Devanagari vowel
//! signs), so the categories come from `unicode-general-category`.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// What the regex distinguishes about a character.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Letter,
    Number,
    /// `\r` or `\n` (also white space).
    Newline,
    /// Other white space.
    Space,
    Other,
}

fn kind(c: char) -> Kind {
    if c == '\r' || c == '\n' {
        return Kind::Newline;
    }
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            Kind::Letter
        } else if c.is_ascii_digit() {
            Kind::Number
        } else if c.is_ascii_whitespace() || c == '\x0b' {
            Kind::Space
        } else {
            Kind::Other
        };
    }
    if c.is_whitespace() {
        return Kind::Space;
    }
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Kind::Letter,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Kind::Number,
        _ => Kind::Other,
    }
}

fn is_space(k: Kind) -> bool {
    matches!(k, Kind::Space | Kind::Newline)
}

/// Length in characters of `'s|'t|'re|'ve|'m|'ll|'d` (any case) at the start of `c`, or 0.
fn contraction(c: &[(usize, char)]) -> usize {
    if c.first().map(|x| x.1) != Some('\'') {
        return 0;
    }
    // Case-insensitive as Oniguruma folds: `ſ` (U+017F) folds to `s`.
    let low = |i: usize| {
        c.get(i).map(|x| match x.1 {
            '\u{17f}' => 's',
            ch => ch.to_ascii_lowercase(),
        })
    };
    match low(1) {
        Some('s' | 't' | 'm' | 'd') => 2,
        Some('r') if low(2) == Some('e') => 3,
        Some('v') if low(2) == Some('e') => 3,
        Some('l') if low(2) == Some('l') => 3,
        _ => 0,
    }
}

/// Splits `text` into the pieces the regex matches, as byte ranges.
pub(crate) fn split(text: &str, out: &mut Vec<(usize, usize)>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let kinds: Vec<Kind> = chars.iter().map(|&(_, c)| kind(c)).collect();
    let n = chars.len();
    let byte = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let mut i = 0;
    while i < n {
        let end = match_at(&chars[i..], &kinds[i..]) + i;
        debug_assert!(end > i);
        out.push((byte(i), byte(end)));
        i = end;
    }
}

/// Length in characters of the match at the start of `c` (at least 1).
fn match_at(c: &[(usize, char)], k: &[Kind]) -> usize {
    let n = k.len();
    let run = |from: usize, f: &dyn Fn(Kind) -> bool| {
        let mut j = from;
        while j < n && f(k[j]) {
            j += 1;
        }
        j
    };
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    let l = contraction(c);
    if l > 0 {
        return l;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if !matches!(k[0], Kind::Newline | Kind::Letter | Kind::Number) && n > 1 && k[1] == Kind::Letter
    {
        return run(1, &|x| x == Kind::Letter);
    }
    if k[0] == Kind::Letter {
        return run(0, &|x| x == Kind::Letter);
    }
    // \p{N}
    if k[0] == Kind::Number {
        return 1;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    let other_from = |s: usize| {
        let j = run(s, &|x| x == Kind::Other);
        run(j, &|x| x == Kind::Newline)
    };
    if c[0].1 == ' ' && n > 1 && k[1] == Kind::Other {
        return other_from(1);
    }
    if k[0] == Kind::Other {
        return other_from(0);
    }
    // Here c[0] is white space.
    let e = run(0, &|x| is_space(x));
    // \s*[\r\n]+ : up to the last newline of the white-space run.
    if let Some(last) = (0..e).rev().find(|&j| k[j] == Kind::Newline) {
        return last + 1;
    }
    // \s+(?!\S) : the whole run at the end of the text, else all but its last character.
    if e == n {
        return e;
    }
    if e >= 2 {
        return e - 1;
    }
    // \s+
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        split(s, &mut v);
        v.iter().map(|&(a, b)| &s[a..b]).collect()
    }

    #[test]
    fn regex_cases() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("I'M here"), ["I", "'M", " here"]);
        assert_eq!(pieces("a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces("a  \n\n b  "), ["a", "  \n\n", " b", "  "]);
        assert_eq!(pieces("x = 12;\n"), ["x", " =", " ", "1", "2", ";\n"]);
        assert_eq!(pieces("  !!\r\nx"), [" ", " !!\r\n", "x"]);
        assert_eq!(pieces("(abc"), ["(abc"]);
        assert_eq!(pieces("\tfoo"), ["\tfoo"]);
        assert_eq!(pieces(" \n"), [" \n"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }
}
