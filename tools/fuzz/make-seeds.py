#!/usr/bin/env python3
"""Writes the committed seed corpora of tests/fuzz/corpus/ (run from the repository root).

The GGUF seeds are tiny files written here byte by byte from the layout in
src/engine/include/eng_gguf.h: every value type, a nested array, tensors of several types, and
a few deliberately broken variants. The model seed is the engine's own random `tiny` shape in
Q8_0 (made with rbee-gguf). SSE and tokenizer seeds are short texts.
"""
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def gguf(kvs, tensors, align=32, version=3):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    out += b"".join(kvs)
    data = b""
    infos = b""
    for name, ttype, dims, raw in tensors:
        off = len(data)
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ttype, off)
        data += raw + b"\0" * ((-len(raw)) % align)
    out += infos
    if tensors:
        out += b"\0" * ((-len(out)) % align)
    return out + data


def seeds_gguf():
    kvs = [
        kv("general.architecture", 8, gstr("llama")),
        kv("u8", 0, struct.pack("<B", 7)), kv("i8", 1, struct.pack("<b", -7)),
        kv("u16", 2, struct.pack("<H", 700)), kv("i16", 3, struct.pack("<h", -700)),
        kv("u32", 4, struct.pack("<I", 70000)), kv("i32", 5, struct.pack("<i", -70000)),
        kv("f32", 6, struct.pack("<f", 1.5)), kv("bool", 7, struct.pack("<B", 1)),
        kv("u64", 10, struct.pack("<Q", 1 << 40)), kv("i64", 11, struct.pack("<q", -(1 << 40))),
        kv("f64", 12, struct.pack("<d", 2.5)),
        kv("strs", 9, struct.pack("<IQ", 8, 3) + gstr("a") + gstr("") + gstr("ccc")),
        kv("ints", 9, struct.pack("<IQ", 5, 3) + struct.pack("<iii", 1, -2, 3)),
        kv("nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 4, 1) + struct.pack("<I", 9)
           + struct.pack("<IQ", 8, 1) + gstr("x")),
    ]
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    f16 = struct.pack("<4e", 1, 2, 3, 4)
    q8 = struct.pack("<e", 0.5) + bytes(range(32))  # one Q8_0 block (type 8)
    tensors = [("a.weight", 0, [2, 2], f32), ("b.weight", 1, [4], f16), ("c.weight", 8, [32], q8)]
    full = gguf(kvs, tensors)
    yield "full.gguf", full
    yield "kv-only.gguf", gguf(kvs, [])
    yield "align64.gguf", gguf(kvs[:1] + [kv("general.alignment", 4, struct.pack("<I", 64))], tensors, 64)
    yield "v2.gguf", gguf(kvs[:3], tensors[:1], version=2)
    yield "truncated.gguf", full[: len(full) // 2]
    yield "bad-count.gguf", full[:16] + struct.pack("<Q", 1 << 60) + full[24:]


def main():
    d = os.path.join(CORPUS, "fuzz_gguf")
    os.makedirs(d, exist_ok=True)
    for name, data in seeds_gguf():
        open(os.path.join(d, name), "wb").write(data)
    d = os.path.join(CORPUS, "fuzz_model")
    os.makedirs(d, exist_ok=True)
    tool = os.path.join(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"), "rbee-gguf")
    subprocess.run([tool, "random", os.path.join(d, "tiny-q8_0.gguf"), "--like", "tiny", "--type",
                    "q8_0", "--seed", "1"], check=True)
    d = os.path.join(CORPUS, "fuzz_sse")
    os.makedirs(d, exist_ok=True)
    sse = {
        "events.txt": b"data: {\"type\":\"token\",\"t\":\"a\"}\n\ndata: [DONE]\n\n",
        "crlf.txt": b"\xef\xbb\xbfevent: x\r\ndata: one\r\ndata: two\r\n\r\n: keep-alive\r\n\r\n",
        "cr.txt": b"data:a\rdata:b\r\rid: 1\rretry: 10\r\r",
    }
    for name, data in sse.items():
        open(os.path.join(d, name), "wb").write(data)
    d = os.path.join(CORPUS, "fuzz_tokenizer")
    os.makedirs(d, exist_ok=True)
    tok = {
        "plain.txt": b"\x00In the beginning God created the heaven and the earth.",
        "special.txt": b"\x11<|im_start|>user\nHi<|im_end|>\n<s></s>",
        "unicode.txt": b"\x02caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 12345 don't",
        "bytes.txt": b"\x33\xff\xfe\x80 \xe2\x82",
    }
    for name, data in tok.items():
        open(os.path.join(d, name), "wb").write(data)


if __name__ == "__main__":
    main()
