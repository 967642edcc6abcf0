"""Independent check of the pre-tokenizer splits written down in tests/unit/test_engine_tokenizer.c.

    python3 tools/reference/pretok_splits.py [tests/unit/test_engine_tokenizer.c]

Reads the split_cases table of the test, splits each text with Python's `regex` module (not
PCRE2) using the regexes as published in the models' tokenizer.json files (llama.cpp's stages
where a pre-tokenizer has several), and prints every case whose words differ from the table.
Exits 0 when all agree.

DESIGN
Nothing is shared with the engine: the regexes are typed in again from the tokenizer.json
originals ((?i:...) contractions, \\p{Lu} classes), the splitting (matches and the text between
them become words, stage after stage) is written out here, and the expected words are parsed
from the C source. A disagreement means the hand derivation, PCRE2's reading of a regex, or
the engine's transcription of it is wrong.
"""

import re as stdre
import sys

import regex

C = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
UP = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
LO = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
LEAD = r"[^\r\n\p{L}\p{N}]?"

STAGES = {
    "llama-bpe": [C + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "qwen2": [C + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "qwen35": [C + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "smollm": [r"\p{N}", GPT2],
    "gpt-2": [GPT2],
    "tekken": [LEAD + UP + "*" + LO + "+|" + LEAD + UP + "+" + LO + r"*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "gpt-4o": [LEAD + UP + "*" + LO + "+" + C + "?|" + LEAD + UP + "+" + LO + "*" + C
               + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    "deepseek-v3": [r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+",
                    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
}
STAGES["deepseek-coder"] = [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"]
STAGES["deepseek-r1-qwen"] = STAGES["qwen2"]


def split(pre, text):
    words = [text]
    for pattern in STAGES[pre]:
        rx = regex.compile(pattern)
        out = []
        for w in words:
            gap = 0
            for m in rx.finditer(w):
                if m.end() == m.start():
                    continue
                if m.start() > gap:
                    out.append(w[gap:m.start()])
                out.append(m.group())
                gap = m.end()
            if gap < len(w):
                out.append(w[gap:])
        words = out
    return words


def c_string(lit):
    """The bytes of one or more adjacent C string literals, decoded as UTF-8."""
    data = bytearray()
    for part in stdre.findall(r'"((?:[^"\\]|\\.)*)"', lit):
        i = 0
        while i < len(part):
            ch = part[i]
            if ch != "\\":
                data += ch.encode()
                i += 1
                continue
            nxt = part[i + 1]
            if nxt == "x":
                m = stdre.match(r"[0-9a-fA-F]+", part[i + 2:])
                data.append(int(m.group(), 16))
                i += 2 + len(m.group())
            else:
                data += {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'"}[nxt]
                i += 2
    return data.decode()


def main():
    src = open(sys.argv[1] if len(sys.argv) > 1 else "tests/unit/test_engine_tokenizer.c").read()
    macros = {m.group(1): m.group(2) for m in stdre.finditer(r'#define (T_\w+) ((?:"[^"\n]*"\s*)+)', src)}
    table = src[src.index("split_cases[] = {"):src.index("};", src.index("split_cases[] = {"))]
    bad = n = 0
    for m in stdre.finditer(r'\{"([^"]+)",\s*((?:T_\w+)|(?:"(?:[^"\\]|\\.)*"\s*)+),\s*\{(.*?)\}\}', table, stdre.S):
        pre, text_lit, words_lit = m.groups()
        text = c_string(macros.get(text_lit, text_lit))
        want = [c_string(w) for w in stdre.findall(r'((?:"(?:[^"\\]|\\.)*"\s*)+)', words_lit)]
        got = split(pre, text)
        n += 1
        if got != want:
            bad += 1
            print(f"{pre} {text!r}: regex gives {got}, table says {want}")
    print(f"{n - bad}/{n} cases agree")
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
