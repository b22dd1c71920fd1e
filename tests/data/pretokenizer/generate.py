#!/usr/bin/env python3
"""Expected pre-tokenizer splits for tests/test_pretokenizer.cpp, from the regexes themselves.

Each pre type's regex is the one llama.cpp's llama-vocab.cpp uses (llm_tokenizer_bpe), applied with the `regex`
module (pip install regex), which knows \\p{L} and \\p{N}. Like llama.cpp's unicode_regex_split, text that no
alternative matches becomes a piece of its own (only the GPT-2 regex, which has no final \\s+, leaves such gaps).

The corpus is llama.cpp's own test texts (../../../../shared/models/vocab/*.inp when present) plus the cases below.
A case is dropped, with a note on stderr, when one of its code points is classified differently by the `regex`
module and by the tables edgespec was generated from (Python unicodedata, see scripts/gen_unicode_tables.py): the
expected split would then depend on the Unicode version rather than on the splitter.

Usage: python3 tests/data/pretokenizer/generate.py > tests/data/pretokenizer/splits.jsonl
Output: one JSON array per line: [pre, text, [piece, ...]].
"""
import json
import pathlib
import sys
import unicodedata

import regex

CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"  # llama.cpp's form of (?i:'s|...|'d)
REGEXES = {
    "gpt-2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    "llama3": CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

# Unicode White_Space, as in scripts/gen_unicode_tables.py.
WHITE_SPACE = {*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000}

OWN_CASES = [
    # contractions, any case
    "I'M here, DON'T go; you'RE, we'Ve, they'LL, she'D, it'S, 'T",
    "i'm don't you're we've they'll she'd it's",
    "''s '''t 'x 'S's rock'n'roll O'Neil",
    "'", "'s", "'LL", "'l", "a'", "'\n'",
    # digit runs 1..7, and with punctuation
    "1", "12", "123", "1234", "12345", "123456", "1234567",
    " 1 22 333 4444 55555 666666 7777777",
    "3.14159 1,000,000 $1234.56 -42 +7 1e-10 0x7FFF 10:30 2024-01-31 v1.2.3 50%",
    "abc123def4567ghi",
    "x²+y³=z¹ ½ ¾ Ⅻ ⅷ",  # superscripts, vulgar fractions, Roman numerals are \p{N}
    "٣٤٥٦ ١٢٣ ०१२३४ ๑๒๓๔๕",  # Arabic-Indic, Devanagari, Thai digits
    # whitespace: \r\n, tabs, runs of spaces before words and at the end
    "line one\r\nline two\r\n\r\n  indented\n\n\n",
    "\n", "\r\n", " \n", "\n ", " \n \n x", "a\n\n\tb", "a \r\n  \t b",
    "\tword\ttab\t\t", "  two spaces", "   three   spaces   ", "end   ",
    "x  \n  y", "\u3000full\u3000width\u3000\u3000space", "nbsp\u00a0word\u00a0\u00a0\u00a0x",
    "vt\x0bff\x0c\x85nel\u2028ls\u2029ps",
    # punctuation followed by newlines, leading space variants
    "Hello!\n\nWorld?!\r\n...", " ...\n\n", " (parenthesized) [brackets] {braces}",
    "a.b,c;d:e!f?g", "--flag=value --x", "((word)) ((", "#include <stdio.h>\n",
    "def f(x):\n    return x**2  # square\n",
    "email@example.com https://example.org/path?q=1&r=2",
    # emoji, ZWJ sequences, variation selectors, flags, combining marks
    "🦙 llamas 🚀🚀 👩‍👩‍👧 ✅ ❤️ 🇺🇸",
    "e\u0301 cafe\u0301 n\u0303 a\u030a\u0323 \u0301alone",
    # scripts: Khmer, CJK, Arabic, Hebrew, Devanagari, Thai, Korean, Cyrillic, Greek
    "ខ្មែរ ភាសា", "日本語のテキストと中文字符。", "العربية: مرحبا بالعالم", "עברית שלום",
    "हिन्दी भाषा", "ภาษาไทย", "한국어 텍스트", "Привет, мир!", "Ελληνικά κείμενο",
    "mixed日本語and English123中文456",
    # controls and others
    "nul\x00byte", "\x01\x02\x1f\x7f controls", "tab\tafter:\t\tx", "\ufeffbom", "zero\u200bwidth",
    # long runs
    "a" * 50, " " * 20 + "x", "9" * 20, "!" * 10 + "\n" * 3,
    # Kawi (Unicode 15): a letter for the `regex` module, unassigned in Unicode 14, so this case is dropped.
    "Kawi \U00011F04\U00011F05",
]


def classes_differ(text: str) -> list:
    bad = []
    for ch in set(text):
        cat = unicodedata.category(ch)[0]
        ours = ("L" if cat == "L" else "N" if cat == "N" else "") + ("s" if ord(ch) in WHITE_SPACE else "")
        theirs = ("L" if regex.match(r"\p{L}", ch) else "N" if regex.match(r"\p{N}", ch) else "") + \
                 ("s" if regex.match(r"\s", ch) else "")
        if ours != theirs:
            bad.append(f"U+{ord(ch):04X} (unicodedata {unicodedata.unidata_version}: '{ours}', regex: '{theirs}')")
    return bad


def split(pattern, text: str) -> list:
    pieces, at = [], 0
    for m in pattern.finditer(text):
        if m.start() > at:
            pieces.append(text[at:m.start()])
        if m.end() > m.start():
            pieces.append(m.group())
        at = m.end()
    if at < len(text):
        pieces.append(text[at:])
    return pieces


def llama_cpp_cases() -> list:
    cases = []
    vocab_dir = pathlib.Path(__file__).resolve().parents[4] / "shared" / "models" / "vocab"
    for inp in sorted(vocab_dir.glob("*.inp")):
        raw = inp.read_bytes().decode("utf-8")
        parts = raw.split("\n__ggml_vocab_test__\n")
        cases.extend(parts[:-1])  # the text after the last separator is not a case
    return cases


def main() -> None:
    patterns = {name: regex.compile(r) for name, r in REGEXES.items()}
    seen, cases = set(), []
    for text in llama_cpp_cases() + OWN_CASES:
        if text in seen:
            continue
        seen.add(text)
        bad = classes_differ(text)
        if bad:
            print(f"dropped {text!r}: Unicode-version-dependent {', '.join(bad)}", file=sys.stderr)
            continue
        cases.append(text)
    print(f"{len(cases)} texts, unicodedata {unicodedata.unidata_version}, regex {regex.__version__}",
          file=sys.stderr)
    for text in cases:
        for name, pattern in patterns.items():
            pieces = split(pattern, text)
            assert "".join(pieces) == text
            print(json.dumps([name, text, pieces], ensure_ascii=False))


if __name__ == "__main__":
    main()
