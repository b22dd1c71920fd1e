#!/usr/bin/env python3
"""Expected pre-tokenizer splits for tests/test_pretokenizer.cpp, for every pre-tokenizer type.

Each type's regexes are the strings llama.cpp's llama-vocab.cpp lists for it (llm_tokenizer_bpe), applied as its
unicode_regex_split applies them: in order, each regex cutting every piece left by the previous one, matches and
the gaps between them becoming pieces. llama.cpp runs them with std::regex (ECMAScript) over a view of the code
points, and this script builds the same view and rewrites the regex for Python's `regex` module so that it means
what std::regex reads:

  collapsed view (the regex contains \\p{N} \\p{L} \\p{P} \\p{M} or \\p{S}): ASCII stays, other White_Space -> \\x0b,
      other code points -> \\xd1 \\xd2 \\xd3 \\xd4 \\xd5 for N L P M S, \\xd0 for the rest; \\p{X} -> [its byte + the
      ASCII members llama.cpp lists for X] (\\p{S} lacks '~' there)
  wide view (no \\p{..}): the code points, non-ASCII White_Space -> \\x0b
  \\s -> [\\t\\n\\x0b\\x0c\\r ] (std::regex's classic-locale ctype), $ -> \\Z (ECMAScript: end of input only)

Categories are Unicode 15.1, llama.cpp's version (pip install unicodedata2==15.1.0), so no case depends on the
Unicode version of the `regex` module. llama.cpp runs the GPT-2 and Llama 3 regexes with hand-written code
instead; that code matches the regex (the corpus below was checked against llama.cpp's unicode_regex_split).

The corpus is llama.cpp's own test texts (../../../../shared/models/vocab/*.inp when present), the hand-written
cases below, and generated combinations of hard fragments.

Usage: pip install regex unicodedata2==15.1.0
       python3 tests/data/pretokenizer/generate.py > tests/data/pretokenizer/splits.jsonl
Output: one JSON array per line: [pre, text, [piece, ...]]; pre is a tokenizer.ggml.pre name of the type.
"""
import json
import pathlib
import random
import sys

import regex
import unicodedata2 as ucd

assert ucd.unidata_version == "15.1.0", "pip install unicodedata2==15.1.0"

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
LLAMA3 = CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
BLOOM = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
DEEPSEEK_LETTERS = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
    "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f"
    "\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
    "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d"
    "\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4"
    "\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a"
    "\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2"
    "\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+")
TEKKEN = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+"
          r"((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+" + CONTRACTIONS +
         r"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*" + CONTRACTIONS +
         r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# tokenizer.ggml.pre name of each type -> its regexes (llama.cpp's LLAMA_VOCAB_PRE_TYPE_* lists; gpt-4o from a
# newer llama.cpp).
TYPES = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
    "gpt-2": [GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "deepseek-llm": ["[\r\n]", DEEPSEEK_LETTERS, "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
                     r"\s+$", CJK, r"\p{N}+"],
    "deepseek-coder": ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"],
    "deepseek-v3": [r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
                    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
                    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
    "starcoder": [r"\p{N}", GPT2],
    "bloom": [BLOOM],
    "viking": [BLOOM, r"\p{N}"],
    "tekken": [TEKKEN],
    "chameleon": ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )", r"\p{N}",
                  r"[\p{P}!-/:-@\[-`{-~]", GPT2],
    "gpt-4o": [GPT4O],
}

WHITE_SPACE = {*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
COLLAPSED = {"N": "\xd1", "L": "\xd2", "P": "\xd3", "M": "\xd4", "S": "\xd5"}
# llama.cpp's k_ucat_map: the ASCII members of each category in the collapsed regex.
ASCII_MEMBERS = {"N": "0-9", "L": "A-Za-z", "P": r"!-#%-*,-/:-;?-@\[-\]_\{\}", "M": "", "S": r"\$\+<->\^`\|"}
SPACE = r"\t\n\x0b\x0c\r "


def uses_categories(expr: str) -> bool:
    return any(f"\\p{{{c}}}" in expr for c in COLLAPSED)


def view(text: str, collapsed: bool) -> str:
    out = []
    for ch in text:
        c = ord(ch)
        if c < 128:
            out.append(ch)
        elif c in WHITE_SPACE:
            out.append("\x0b")
        elif collapsed:
            out.append(COLLAPSED.get(ucd.category(ch)[0], "\xd0"))
        else:
            out.append(ch)
    return "".join(out)


def translate(expr: str) -> str:
    """The regex as std::regex reads it (after llama.cpp's collapsing), in Python `regex` syntax."""
    out, inside, i = [], False, 0
    while i < len(expr):
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            inside = True
        elif inside and c == "]" and expr[i - 1] != "\\":
            inside = False
        if c == "\\" and expr[i + 1:i + 3] == "p{" and expr[i + 4:i + 5] == "}":
            members = COLLAPSED[expr[i + 3]] + ASCII_MEMBERS[expr[i + 3]]
            out.append(members if inside else f"[{members}]")
            i += 5
            continue
        if c == "\\" and expr[i + 1] in "sS":
            if expr[i + 1] == "s":
                out.append(SPACE if inside else f"[{SPACE}]")
            else:
                assert not inside
                out.append(f"[^{SPACE}]")
            i += 2
            continue
        if c == "\\":
            out.append(expr[i:i + 2])
            i += 2
            continue
        if c == "$" and not inside:
            out.append(r"\Z")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def split(text: str, exprs: list) -> list:
    ends = [len(text)] if text else []
    for expr in exprs:
        collapsed = uses_categories(expr)
        units = view(text, collapsed)
        pattern = regex.compile(translate(expr))
        new_ends, b = [], 0
        for e in ends:
            sub, at = units[b:e], 0
            for m in pattern.finditer(sub):
                assert m.end() > m.start(), f"empty match of {expr!r} in {text!r}"
                if m.start() > at:
                    new_ends.append(b + m.start())
                new_ends.append(b + m.end())
                at = m.end()
            if at < len(sub):
                new_ends.append(e)
            b = e
        ends = new_ends
    pieces, b = [], 0
    for e in ends:
        pieces.append(text[b:e])
        b = e
    return pieces


OWN_CASES = [
    # contractions, any case
    "I'M here, DON'T go; you'RE, we'Ve, they'LL, she'D, it'S, 'T",
    "i'm don't you're we've they'll she'd it's",
    "''s '''t 'x 'S's rock'n'roll O'Neil",
    "'", "'s", "'LL", "'l", "a'", "'\n'", "HELLO'S WORLD'LL don'T", "JOHN'S café's NAÏVE'RE",
    # digit runs 1..7, and with punctuation
    "1", "12", "123", "1234", "12345", "123456", "1234567",
    " 1 22 333 4444 55555 666666 7777777",
    "3.14159 1,000,000 $1234.56 -42 +7 1e-10 0x7FFF 10:30 2024-01-31 v1.2.3 50%",
    "abc123def4567ghi",
    "x²+y³=z¹ ½ ¾ Ⅻ ⅷ",  # superscripts, vulgar fractions, Roman numerals are \p{N}
    "٣٤٥٦ ١٢٣ ०१२३४ ๑๒๓๔๕",  # Arabic-Indic, Devanagari, Thai digits
    # whitespace: \r\n, tabs, runs of spaces before words and at the end
    "line one\r\nline two\r\n\r\n  indented\n\n\n",
    "\n", "\r\n", " \n", "\n ", " \n \n x", "a\n\n\tb", "a \r\n  \t b", "\r\r\n\n\r x \r\n",
    "\tword\ttab\t\t", "  two spaces", "   three   spaces   ", "end   ", "    four", "        eight\n    four",
    "x  \n  y", "\u3000full\u3000width\u3000\u3000space", "nbsp\u00a0word\u00a0\u00a0\u00a0x",
    "vt\x0bff\x0c\x85nel\u2028ls\u2029ps", "\x1c\x1d\x1e\x1f separators",
    # punctuation followed by newlines, leading space variants
    "Hello!\n\nWorld?!\r\n...", " ...\n\n", " (parenthesized) [brackets] {braces}",
    "a.b,c;d:e!f?g", "--flag=value --x", "((word)) ((", "#include <stdio.h>\n",
    "def f(x):\n    return x**2  # square\n", "path/to/file.txt //comment /x",
    "email@example.com https://example.org/path?q=1&r=2", "$+<=>^~|` symbols $100 a+b<c>d^e~f|g`h",
    "«quotes» „German“ 『』【】〈〉 ‘single’ “double” — – … ·", "!!! ??? ... ,,, ;;; ::: ---",
    # emoji, ZWJ sequences, variation selectors, flags, combining marks
    "🦙 llamas 🚀🚀 👩‍👩‍👧 ✅ ❤️ 🇺🇸",
    "e\u0301 cafe\u0301 n\u0303 a\u030a\u0323 \u0301alone",
    # scripts: Khmer, CJK, Arabic, Hebrew, Devanagari, Thai, Korean, Cyrillic, Greek
    "ខ្មែរ ភាសា", "日本語のテキストと中文字符。", "العربية: مرحبا بالعالم", "עברית שלום",
    "हिन्दी भाषा।", "ภาษาไทย", "한국어 텍스트", "Привет, мир!", "Ελληνικά κείμενο",
    "mixed日本語and English123中文456", "カタカナ ひらがな 漢字 ｶﾀｶﾅ", "ᄀᄁ ㄱㄴ 가나다라 힣", "ﬀﬁﬂ ＡＢＣａｂｃ！？：～",
    "Ꭰꭰ Ⴀ Ა 𐐀𐐨 ℂℕ K Ω ⅅ Ⰰ",
    # capitalisation (tekken, gpt-4o)
    "HelloWorld XMLHttpRequest iPhone McDonald's ABCdef abcDEF", "ÀÉÎõü ÉCOLE École straße STRASSE ǅungla",
    # controls and others
    "nul\x00byte", "\x01\x02\x1f\x7f controls", "tab\tafter:\t\tx", "\ufeffbom", "zero\u200bwidth",
    "\x80\x9f C1 controls", "private \ue000\uf8ff use",
    # chameleon and other special-looking text
    "<sentinel:12> <sentinel:> <sentinel:007>x IMGIMGABCDZ IMGIMGJZ IMGIMGAZZ",
    "<|endoftext|> <s> </s> [INST] <<SYS>>",
    # long runs
    "a" * 50, " " * 20 + "x", "9" * 20, "!" * 10 + "\n" * 3,
    # Unicode 15.0 (Kawi letters) and 15.1 (CJK extension I) are letters; 16.0's Garay is unassigned in 15.1
    "Kawi \U00011F04\U00011F05 ext-I \U0002EBF0\U0002EBF1 Garay \U00010D4A\U00010D4B",
]

FRAGMENTS = [
    "word", "Word", "WORD", "wOrD", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "1", "12", "1234", "3.14",
    "'s", "'S", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'t", "'x", "'", "!", "?!", "...", "…", "。", "，", "、",
    "(", ")", "[x]", "{}", "<>", "$", "+", "~", "|", "`", "^", "/", "//", "-", "_", "#", "@", "%", "&", "*",
    "é", "É", "e\u0301", "ß", "ǅ", "日本", "中文", "한국", "ㄱ", "カナ", "ひら", "Привет", "Ελλάδα", "עברית", "عربي",
    "हिन्दी", "ไทย", "ខ្មែរ", "🦙", "👩‍👧", "❤️", "🇺🇸", "²", "½", "٣", "०", "\u00a0", "\u3000", "\u2028", "\u0085",
    "\u200b", "\ufeff", "Ａ", "ａ", "！", "ｶ", "<sentinel:3>", "IMGIMGABZ", "    ", "\x0b", "\x00", "\x1f",
]


def llama_cpp_cases() -> list:
    cases = []
    vocab_dir = pathlib.Path(__file__).resolve().parents[4] / "shared" / "models" / "vocab"
    for inp in sorted(vocab_dir.glob("*.inp")):
        raw = inp.read_bytes().decode("utf-8")
        parts = raw.split("\n__ggml_vocab_test__\n")
        cases.extend(parts[:-1])  # the text after the last separator is not a case
    return cases


def generated_cases(n: int) -> list:
    rng = random.Random(20240601)
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(2, 12))) for _ in range(n)]


def main() -> None:
    seen, cases = set(), []
    for text in llama_cpp_cases() + OWN_CASES + generated_cases(250):
        if text not in seen:
            seen.add(text)
            cases.append(text)
    print(f"{len(cases)} texts x {len(TYPES)} types, Unicode {ucd.unidata_version}, regex {regex.__version__}",
          file=sys.stderr)
    for text in cases:
        for name, exprs in TYPES.items():
            pieces = split(text, exprs)
            assert "".join(pieces) == text
            print(json.dumps([name, text, pieces], ensure_ascii=False))


if __name__ == "__main__":
    main()
