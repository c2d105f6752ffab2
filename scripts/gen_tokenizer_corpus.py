#!/usr/bin/env python3
"""Writes tests/data/tokenizer/corpus.txt: a deterministic multilingual corpus for the tokenizer
test (tests/tokenizer.rs), one test string per line ("\\n"-separated; a line may hold "\\r",
tabs, leading and trailing spaces).

Every sentence is built here from word lists written for this file (no copied text): English
prose with contractions in any case, Chinese, Japanese, Korean, Arabic, Hebrew, Russian, Greek,
Hindi (Devanagari), Thai, Vietnamese, decomposed accents (NFC matters), code in Rust / Python / C
with indentation and tabs, emoji with ZWJ sequences, skin tones, flags and keycaps, whitespace
runs, long numbers, Qwen's special tokens inline, and random mixtures of all of these.

    python3 scripts/gen_tokenizer_corpus.py          # then scripts/gen_tokenizer_vectors.py
"""
import os
import random

R = random.Random(16)

EN_SUBJ = ["the cat", "my neighbour", "a small robot", "the old library", "every engineer",
           "our team", "the river", "this compiler", "a quiet student", "the weather",
           "she", "he", "they", "we", "you", "it", "I", "the kernel", "the tokenizer"]
EN_VERB = ["reads", "builds", "forgets", "measures", "paints", "tests", "carries", "answers",
           "ignores", "sorts", "compiles", "watches", "borrows", "explains", "counts"]
EN_OBJ = ["the long report", "three apples", "a broken clock", "every line of code",
          "the blue door", "its own shadow", "the morning train", "a list of numbers",
          "the matrix", "forty-two tests", "the cache", "an empty box", "the map"]
EN_ADV = ["slowly", "today", "again", "without a sound", "before lunch", "in the garden",
          "twice", "on Mondays", "carefully", "at 3:15 pm", "for no reason", "quickly"]
CONTR = ["it's", "IT'S", "It'S", "we'll", "WE'LL", "We'Ll", "they're", "THEY'RE", "I'm",
         "I'M", "you've", "YOU'VE", "she'd", "SHE'D", "don't", "DON'T", "can't", "won't",
         "John's", "JOHN'S", "the dog's", "'s", "'S", "''", "'tis", "rock 'n' roll", "o'clock",
         "y'all", "'LL", " 'll", "l'homme", "aujourd'hui", "isn’t", "it’s"]

ZH = ["我们", "今天", "明天", "去", "公园", "散步", "学习", "编程", "电脑", "非常", "快", "慢",
      "喜欢", "喝茶", "天气", "很好", "下雨", "朋友", "一起", "吃饭", "这个", "问题", "简单",
      "模型", "推理", "速度", "内存", "北京", "上海", "火车", "飞机", "书", "看", "写", "字"]
ZH_P = ["，", "。", "！", "？", "、", "：", "；", "“", "”", "（", "）", "《", "》"]
JA = ["私は", "今日", "東京へ", "行きます", "コンピューター", "が", "好きです", "ラーメン",
      "を食べた", "明日は", "雨", "でしょう", "カタカナ", "ひらがな", "漢字", "とても",
      "きれい", "ですね", "プログラム", "テスト", "ｶﾀｶﾅ", "ー", "っ", "ゃ"]
JA_P = ["、", "。", "「", "」", "！", "？", "・"]
KO = ["안녕하세요", "저는", "학생입니다", "오늘", "날씨가", "좋네요", "컴퓨터", "프로그램을",
      "만들어요", "한국어", "공부", "하고", "있어요", "서울", "부산", "기차", "빠르다", "감사합니다"]
AR = ["مرحبا", "بالعالم", "كيف", "حالك", "اليوم", "الطقس", "جميل", "أنا", "أحب", "البرمجة",
      "الكتاب", "على", "الطاولة", "مُحَمَّد", "السَّلَامُ", "عَلَيْكُمْ", "١٢٣", "٤٥٦٧٨٩٠"]
HE = ["שלום", "עולם", "מה", "שלומך", "היום", "ספר", "מחשב", "תודה", "בְּרֵאשִׁית"]
RU = ["Привет", "мир", "сегодня", "хорошая", "погода", "Мы", "пишем", "код", "на", "Rust",
      "Ёлка", "ЪЫЬ", "быстро", "медленно", "память", "модель"]
EL = ["Καλημέρα", "κόσμε", "Ελληνικά", "λόγος", "ΑΒΓΔ", "αβγδ", "ῥυθμός", "ἄνθρωπος"]
HI = ["नमस्ते", "दुनिया", "आज", "मौसम", "अच्छा", "है", "मैं", "हिंदी", "सीख", "रहा", "हूँ",
      "क्षत्रिय", "ज्ञान", "१२३४", "कृपया", "धन्यवाद"]
TH = ["สวัสดี", "ครับ", "ค่ะ", "ภาษาไทย", "วันนี้", "อากาศ", "ดี", "มาก", "คอมพิวเตอร์",
      "น้ำ", "ผู้ใหญ่", "๑๒๓"]
VI = ["Xin chào", "thế giới", "Tiếng Việt", "hôm nay", "trời", "đẹp", "quá", "người",
      "Nguyễn", "Đà Nẵng", "phở"]
DECOMP = ["cafe\u0301", "e\u0301te\u0301", "n\u0303", "Cre\u0300me bru\u0302le\u0301e",
          "A\u030angstro\u0308m", "u\u0308ber", "O\u0308l", "s\u0323\u0307", "q\u0307\u0323",
          "\u0301", "a\u0301\u0301\u0301", "ﬁ ligature", "Ω Ω", "Å Å", "ḱ", "\u1100\u1161\u11a8",
          "한\u0301", "e\u0301\u0302", "i\u0307", "Z\u0335a\u0336l\u0337g\u0338o"]
EMOJI = ["😀", "😂", "👍", "👍🏽", "👋🏿", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "❤️‍🔥",
         "🇫🇷", "🇯🇵🇰🇷", "1️⃣", "#️⃣", "🧑🏻‍🤝‍🧑🏾", "🙂‍↔️", "✨", "🚀", "🦀", "🐍",
         "☕", "👁️‍🗨️", "🤷‍♀️", "🤷🏼‍♂️", "✌️", "©️", "™", "🔥🔥🔥"]
MISC = ["½", "²", "³", "¼", "Ⅷ", "ⅻ", "①", "⑳", "㊿", "ⓐ", "Ⓑ", "µ", "ª", "º", "ǅ", "ʰ",
        "ˆ", "〆", "々", "〇", "〥", "ߊ", "ᐁ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟘𝟙𝟚", "𐍈", "🄰", "℃", "№",
        "\u00a0", "\u2003", "\u200b", "\u200d", "\u2028", "\u3000", "\ufeff", "\u00ad",
        "…", "—", "–", "«", "»", "§", "¶", "†", "•", "→", "⇒", "∀x∈ℝ", "√2", "≠", "≤"]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>",
           "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
           "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|vision_start|>",
           "<|im_start", "im_end|>", "<|im_start|><|im_end|>", "<thinking>", "<|unknown|>",
           "< think>", "<think>>", "<<think>"]
CODE_RS = ["fn main() {", "    let x: Vec<u32> = (0..10).collect();",
           "    for (i, v) in x.iter().enumerate() {", "        println!(\"{i}: {v}\");",
           "    }", "}", "impl<'a> Reader<'a> {", "    pub fn new(buf: &'a [u8]) -> Self {",
           "        Self { buf, pos: 0 }", "#[derive(Clone, Debug)]",
           "    match self { Value::Uint(v) => *v as f64, _ => 0.0 }",
           "\tlet s = String::from(\"tabs\\tand\\nescapes\");", "// comment with  two  spaces",
           "/// Doc comment: `x >>= 2;` &mut *ptr", "    assert_eq!(a, b, \"{what}: lengths\");",
           "let r = a.checked_mul(b).ok_or(Error::Overflow(\"x\"))?;"]
CODE_PY = ["def tokenize(text: str) -> list[int]:", "    return [ord(c) for c in text]",
           "class Foo(Bar):", "    def __init__(self, x=0, *args, **kwargs):",
           "        self.x = x  # trailing comment", "if __name__ == \"__main__\":",
           "\tprint(f\"{x!r:>10}\")", "    lambda a, b: a**2 + b//3 - 7 % 2",
           "import numpy as np", "    data = {'key': [1, 2, 3], \"other\": None}",
           "        raise ValueError('bad value: %s' % v)", "@decorator(arg=True)",
           "    async def run(): await asyncio.sleep(0.5)"]
CODE_C = ["#include <stdio.h>", "int main(int argc, char **argv) {",
          "\tfor (int i = 0; i < argc; ++i) {", "\t\tprintf(\"%d: %s\\n\", i, argv[i]);",
          "\t}", "\treturn 0;", "}", "static inline uint32_t rotl(uint32_t x, int k) {",
          "    return (x << k) | (x >> (32 - k));", "#define MAX(a, b) ((a) > (b) ? (a) : (b))",
          "/* block comment */ x->y = &z[3];", "    if (p != NULL && *p == '\\0') goto done;"]
PUNCT = ["...", "!!!", "???", "?!", "--", "---", "==>", "<=>", "//", "/*", "*/", "&&", "||",
         "::", "->", "=>", "#", "$", "%", "^", "~", "`", "```", "@", "\\", "|", "\"", "'",
         "(", ")", "[", "]", "{", "}", "<", ">", ",", ".", ";", ":", "_", "__init__", "*"]
SEPS = [" ", "  ", "   ", "\t", " \t ", "", "\n", "\r\n", "\r", " \n ", "\n\n", "    "]


def sentence_en():
    s = f"{R.choice(EN_SUBJ)} {R.choice(EN_VERB)} {R.choice(EN_OBJ)} {R.choice(EN_ADV)}"
    if R.random() < 0.4:
        s = f"{R.choice(CONTR)} {s}"
    if R.random() < 0.3:
        s += f", and {R.choice(CONTR)} {R.choice(EN_ADV)}"
    s = s[0].upper() + s[1:]
    if R.random() < 0.1:
        s = s.upper()
    return s + R.choice([".", "!", "?", "...", ";", ""])


def words(ws, punct, joiner, lo=3, hi=9):
    out = []
    for _ in range(R.randint(lo, hi)):
        out.append(R.choice(ws))
        if R.random() < 0.25:
            out.append(R.choice(punct))
    return joiner.join(out) + R.choice(punct)


def number():
    k = R.randint(0, 6)
    if k == 0:
        return str(R.randint(0, 10 ** R.randint(1, 40)))
    if k == 1:
        return f"{R.uniform(-1e6, 1e6):.{R.randint(0, 9)}f}"
    if k == 2:
        return f"{R.randint(0, 10**9):,}"
    if k == 3:
        return f"+1 ({R.randint(100, 999)}) {R.randint(100, 999)}-{R.randint(1000, 9999)}"
    if k == 4:
        return f"{R.randint(1, 9)}e{R.randint(-30, 30)} 0x{R.randint(0, 2**32):08X}"
    if k == 5:
        return f"{R.randint(1900, 2100)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}"
    return "".join(R.choice("0123456789") for _ in range(R.randint(50, 120)))


def whitespace_line():
    k = R.randint(0, 7)
    if k == 0:
        return " " * R.randint(1, 12)
    if k == 1:
        return sentence_en() + " " * R.randint(1, 5)
    if k == 2:
        return " " * R.randint(1, 8) + sentence_en()
    if k == 3:
        return sentence_en() + "\r"
    if k == 4:
        return "\t" * R.randint(1, 4) + R.choice(CODE_PY).strip()
    if k == 5:
        return R.choice(["a  b", "a   b   c", "x \t y", "end.   ", "  \t  ", "\r", " \r", "\t\r",
                         "word\r\rword", "a \r\n b", "one\u3000two", "\u00a0nbsp\u00a0"])
    if k == 6:
        return R.choice(SEPS).join(sentence_en() for _ in range(2))
    return "".join(R.choice([" ", "\t", "\r", "x", "\u00a0", "!", "1"]) for _ in range(R.randint(1, 20)))


def code_line():
    c = R.choice([CODE_RS, CODE_PY, CODE_C])
    i = R.randint(0, len(c) - 1)
    return R.choice(["", "", "    ", "\t"]) + c[i]


def special_line():
    parts = []
    for _ in range(R.randint(1, 5)):
        parts.append(R.choice([R.choice(SPECIAL), sentence_en(), words(ZH, ZH_P, ""),
                               R.choice(["system", "user", "assistant"]), "\n", " ", ""]))
    return R.choice(["", " ", "\n"]).join(parts)


def mixed_line():
    pools = [lambda: sentence_en(), lambda: words(ZH, ZH_P, ""), lambda: words(JA, JA_P, ""),
             lambda: words(KO, ["", ".", "?"], " "), lambda: words(AR, ["", "،", "؟"], " "),
             lambda: words(RU, [",", ".", ""], " "), lambda: R.choice(EMOJI),
             lambda: R.choice(MISC), lambda: R.choice(DECOMP), lambda: number(),
             lambda: R.choice(PUNCT), lambda: R.choice(CONTR), lambda: R.choice(SPECIAL),
             lambda: R.choice(HI) + R.choice(HI), lambda: R.choice(TH) + R.choice(TH),
             lambda: R.choice(EL), lambda: R.choice(HE), lambda: R.choice(VI)]
    return "".join(R.choice(pools)() + R.choice(SEPS[:6] + ["", "", ""])
                   for _ in range(R.randint(2, 8)))


def byte_soup():
    """Random code points from ranges where the categories vary a lot."""
    ranges = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff),
              (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f),
              (0x2150, 0x218f), (0x2460, 0x24ff), (0x3000, 0x30ff), (0x4e00, 0x4fff),
              (0xac00, 0xad00), (0xff00, 0xffef), (0x1f300, 0x1f5ff), (0x1d400, 0x1d4ff)]
    out = []
    for _ in range(R.randint(1, 25)):
        lo, hi = R.choice(ranges)
        c = R.randint(lo, hi)
        if 0xd800 <= c <= 0xdfff or c in (0x0a, 0x85, 0x2028, 0x2029):
            continue
        out.append(chr(c))
    return "".join(out)


GEN = [(sentence_en, 8), (lambda: words(ZH, ZH_P, ""), 3), (lambda: words(JA, JA_P, ""), 3),
       (lambda: words(KO, ["", ".", "?", "!"], " "), 2), (lambda: words(AR, ["", "،", "؟", "."], " "), 2),
       (lambda: words(HE, ["", ".", ","], " "), 1), (lambda: words(RU, [",", ".", ""], " "), 2),
       (lambda: words(EL, [",", ".", ""], " "), 1), (lambda: words(HI, ["", "।", ","], " "), 2),
       (lambda: words(TH, ["", " "], ""), 2), (lambda: words(VI, [",", ".", ""], " "), 1),
       (lambda: words(DECOMP, ["", " "], " ", 1, 4), 2), (lambda: words(EMOJI, ["", " ", "!"], "", 1, 6), 3),
       (lambda: words(MISC, ["", " "], "", 1, 6), 2), (number, 3), (whitespace_line, 5),
       (code_line, 6), (special_line, 4), (mixed_line, 8), (byte_soup, 3),
       (lambda: words(PUNCT, [" ", ""], "", 1, 8), 2)]


def main():
    lines = []
    # Fixed cases first: edge cases worth naming.
    lines += ["", " ", "  ", "\t", "\r", "a", "A", "'s", "'S", "'LL", "I'M FINE", "HE'S HERE",
              "Hello, world!", "Hello  world", "Hello   world  ", " leading", "trailing ",
              "1234567890123456789012345678901234567890", "3.14159", "-42", "x=1+2",
              "<|im_start|>user\rHello<|im_end|>", "<|im_start|>assistant", "<think></think>",
              "<|endoftext|><|endoftext|>", "<|im_start|>system", "café", "cafe\u0301",
              "👨‍👩‍👧‍👦👍🏽", "你好，世界！", "こんにちは世界", "안녕하세요 세계", "مرحبا بالعالم",
              "नमस्ते दुनिया", "สวัสดีชาวโลก", "\u200b\u200d", "a\u0300\u0301b", "\ufeffBOM",
              "'\u017f", "IT'\u017f", "x'\ufb05", "\x1c\x1d\x1e\x1f", "a\x0b\x0cb", "\x85x",
              "a\u0338>\u0338", "<think>\u0338", "\u1e9b\u0323"]
    weights = [w for _, w in GEN]
    while len(lines) < 4000:
        f = R.choices([g for g, _ in GEN], weights)[0]
        s = f()
        s = s.replace("\n", R.choice([" ", "\t", "\r", ""]))
        lines.append(s)
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "tokenizer", "corpus.txt")
    with open(out, "wb") as f:
        f.write("\n".join(lines).encode("utf-8"))
    print(f"wrote {len(lines)} lines to {out}")


if __name__ == "__main__":
    main()
