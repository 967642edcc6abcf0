"""Independent PyTorch reference for GGUF llama models (F32/F16 tensors).

    /usr/bin/python3 tools/reference/reference.py models/kjv-5m-f16.gguf \
        [--prompt "In the beginning"] [--n-greedy 32] [--out FILE.ref.json]

Writes JSON next to the model (MODEL.ref.json unless --out is given):

    {"model": file name, "prompt": text, "tokens": [ids, BOS first],
     "logits": [[n_vocab floats] per prompt position],
     "greedy": [n greedy continuation ids], "greedy_text": text}

DESIGN
Nothing here is shared with the writer or the trainer except the SPM encoding
algorithm (tools/train/spm.py), which is the specification the C tokenizer
follows anyway.  The GGUF file is parsed with its own small reader, tensors are
viewed with numpy, and the forward pass is written out again from the
metadata, so a mistake in the training model or in the writer shows up as a
mismatch instead of being copied.

Forward pass (llama.cpp's `llama` graph, computed in float64):
    x = token_embd[ids]
    per block:  h = rms_norm(x) * attn_norm
                q = h Wq, k = h Wk, v = h Wv    (heads of head_dim = dim / n_head)
                rope on q, k: pairs (2i, 2i+1) of the first rope.dimension_count
                    features, angle pos * freq_base^(-2i / rope.dimension_count)
                query head j uses kv head j // (n_head / n_head_kv)
                causal softmax(q k^T / sqrt(head_dim)) v, then Wo, add to x
                h = rms_norm(x) * ffn_norm;  x += W_down(silu(W_gate h) * W_up h)
    logits = (rms_norm(x) * output_norm) W_out, with W_out = token_embd if the
    file has no output.weight.
Greedy decoding takes the arg-max (lowest id on ties) and does not stop at EOS,
so "greedy" always has n entries.  "greedy_text" is the decoded continuation
only, with its leading space kept (pieces concatenated, "▁" -> " ").
"""

import argparse
import json
import mmap
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))

# ------------------------------------------------------------------ GGUF reader

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_TENSOR_TYPES = {0: ("F32", np.dtype("<f4")), 1: ("F16", np.dtype("<f2"))}


# Block types, from ggml's block definitions (ggml-common.h, the GGUF spec's "ggml types"):
# (name, values per block, bytes per block, dequantizer of an (n_blocks, bytes) uint8 array
# to (n_blocks, values) float64). Written from the layouts, not from any decoder's code.
def _f16(col):
    return np.ascontiguousarray(col).view("<f2").reshape(-1).astype(np.float64)


def _deq_q8_0(b):
    # { f16 d; int8 qs[32]; }: x = d * q
    d = _f16(b[:, 0:2])
    return d[:, None] * b[:, 2:34].view(np.int8).astype(np.float64)


def _k_scales(sc):
    # Q4_K/Q5_K's 12 bytes: 8 six-bit scales and 8 six-bit mins. j < 4: scale = low 6 bits of
    # byte j, min = low 6 bits of byte j + 4; j >= 4: the low (scale) or high (min) nibble of
    # byte j + 4, with the top two bits of byte j - 4 (scale) or byte j (min) above them.
    sc = sc.astype(np.int64)
    scale = np.empty((sc.shape[0], 8), np.int64)
    mins = np.empty((sc.shape[0], 8), np.int64)
    for j in range(8):
        if j < 4:
            scale[:, j] = sc[:, j] & 63
            mins[:, j] = sc[:, j + 4] & 63
        else:
            scale[:, j] = (sc[:, j + 4] & 0xF) | ((sc[:, j - 4] >> 6) << 4)
            mins[:, j] = (sc[:, j + 4] >> 4) | ((sc[:, j] >> 6) << 4)
    return scale, mins


def _deq_q4_k(b):
    # { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; } over 256 values in 8 sub-blocks of 32:
    # x = d * scale_j * q - dmin * min_j. Each 32 bytes of qs hold sub-block 2k in their low
    # nibbles and sub-block 2k + 1 in their high nibbles.
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    scale, mins = _k_scales(b[:, 4:16])
    qs = b[:, 16:144].astype(np.int64)
    out = np.empty((b.shape[0], 256))
    for k in range(4):
        chunk = qs[:, 32 * k:32 * k + 32]
        for half, q in ((0, chunk & 0xF), (1, chunk >> 4)):
            j = 2 * k + half
            out[:, 32 * j:32 * j + 32] = ((d * scale[:, j])[:, None] * q
                                          - (dmin * mins[:, j])[:, None])
    return out


def _deq_q6_k(b):
    # { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; } over 256 values in 16 sub-blocks of
    # 16: a 6-bit code q (low 4 bits from ql, high 2 from qh), x = d * scale * (q - 32). Each
    # half of 128 values uses 64 bytes of ql and 32 of qh: value l + 32 m (m = 0..3) takes
    # the low (m = 0, 1) or high (m = 2, 3) nibble of ql[l + 32 (m % 2)] and bits 2m..2m+1
    # of qh[l].
    ql = b[:, 0:128].astype(np.int64)
    qh = b[:, 128:192].astype(np.int64)
    sc = b[:, 192:208].view(np.int8).astype(np.float64)
    d = _f16(b[:, 208:210])
    out = np.empty((b.shape[0], 256))
    for h in range(2):
        lo, hi = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
        for m in range(4):
            nib = lo[:, 32 * (m % 2):32 * (m % 2) + 32]
            nib = nib & 0xF if m < 2 else nib >> 4
            q = (nib | (((hi >> (2 * m)) & 3) << 4)) - 32
            for l16 in range(2):
                v0 = 128 * h + 32 * m + 16 * l16
                s = sc[:, 8 * h + 2 * m + l16]
                out[:, v0:v0 + 16] = (d * s)[:, None] * q[:, 16 * l16:16 * l16 + 16]
    return out


_BLOCK_TYPES = {8: ("Q8_0", 32, 34, _deq_q8_0), 12: ("Q4_K", 256, 144, _deq_q4_k),
                14: ("Q6_K", 256, 210, _deq_q6_k)}


class GGUFError(Exception):
    pass


class Reader:
    """Cursor over a bytes-like object with bounds checks."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError("truncated file at offset %d (need %d bytes)" % (self.pos, n))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.scalar("<Q")
        return bytes(self.take(n)).decode("utf-8")

    def value(self, vtype, depth=0):
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY and depth == 0:
            etype = self.scalar("<I")
            count = self.scalar("<Q")
            if count > len(self.buf):
                raise GGUFError("array of %d elements exceeds the file" % count)
            return [self.value(etype, depth + 1) for _ in range(count)]
        raise GGUFError("bad value type %d" % vtype)


def read_gguf(path):
    """Return (metadata dict, {name: numpy array in PyTorch shape}, info list)."""
    f = open(path, "rb")
    buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = Reader(buf)
    if bytes(r.take(4)) != b"GGUF":
        raise GGUFError("bad magic")
    version = r.scalar("<I")
    if version not in (2, 3):
        raise GGUFError("unsupported GGUF version %d" % version)
    n_tensors = r.scalar("<Q")
    n_kv = r.scalar("<Q")
    meta = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.scalar("<I")
        meta[key] = r.value(vtype)
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.scalar("<I")
        if not 1 <= n_dims <= 4:
            raise GGUFError("tensor '%s' has %d dims" % (name, n_dims))
        ne = [r.scalar("<Q") for _ in range(n_dims)]
        ttype = r.scalar("<I")
        offset = r.scalar("<Q")
        infos.append((name, ne, ttype, offset))
    align = int(meta.get("general.alignment", 32))
    data_start = (r.pos + align - 1) // align * align
    tensors = {}
    for name, ne, ttype, offset in infos:
        if ttype not in _TENSOR_TYPES and ttype not in _BLOCK_TYPES:
            raise GGUFError("tensor '%s' has type %d; only F32, F16, Q8_0, Q4_K and Q6_K are "
                            "supported" % (name, ttype))
        if offset % align:
            raise GGUFError("tensor '%s' offset %d is not aligned" % (name, offset))
        count = int(np.prod(ne))
        start = data_start + offset
        if ttype in _TENSOR_TYPES:
            dtype = _TENSOR_TYPES[ttype][1]
            end = start + count * dtype.itemsize
            if end > len(buf):
                raise GGUFError("tensor '%s' runs past the end of the file" % name)
            arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start).astype(np.float32)
        else:
            tname, per, size, deq = _BLOCK_TYPES[ttype]
            if ne[0] % per:
                raise GGUFError("tensor '%s': rows of %d are not whole %s blocks"
                                % (name, ne[0], tname))
            nb = count // per
            if start + nb * size > len(buf):
                raise GGUFError("tensor '%s' runs past the end of the file" % name)
            raw = np.frombuffer(buf, dtype=np.uint8, count=nb * size, offset=start)
            arr = deq(raw.reshape(nb, size)).reshape(-1)
        # ne[0] is innermost, so the C-order shape is ne reversed.
        tensors[name] = arr.reshape(list(reversed(ne)))
    return meta, tensors, infos


# ------------------------------------------------------------------ model

def hparams(meta):
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise GGUFError("architecture '%s' is not llama" % arch)
    g = lambda k, d=None: meta.get("llama." + k, d)  # noqa: E731
    hp = {
        "dim": int(g("embedding_length")),
        "n_layers": int(g("block_count")),
        "ffn": int(g("feed_forward_length")),
        "n_heads": int(g("attention.head_count")),
        "n_ctx": int(g("context_length")),
        "eps": float(g("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_base": float(g("rope.freq_base", 10000.0)),
    }
    hp["n_kv_heads"] = int(g("attention.head_count_kv", hp["n_heads"]))
    hp["head_dim"] = hp["dim"] // hp["n_heads"]
    hp["n_rot"] = int(g("rope.dimension_count", hp["head_dim"]))
    return hp


class Reference:
    def __init__(self, meta, tensors):
        import torch
        self.torch = torch
        self.hp = hparams(meta)
        t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in tensors.items()}
        self.t = t
        self.tied = "output.weight" not in t
        self.out_w = t["token_embd.weight"] if self.tied else t["output.weight"]
        self.n_vocab = self.out_w.shape[0]

    def rms(self, x, w):
        return x / self.torch.sqrt((x * x).mean(-1, keepdim=True) + self.hp["eps"]) * w

    def rope(self, x):
        """x: (T, H, head_dim); rotate pairs (2i, 2i+1) of the first n_rot dims."""
        torch = self.torch
        T = x.shape[0]
        n_rot = self.hp["n_rot"]
        i = torch.arange(n_rot // 2, dtype=torch.float64)
        freq = self.hp["rope_base"] ** (-2.0 * i / n_rot)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        out = x.clone()
        a = x[:, :, 0:n_rot:2]
        b = x[:, :, 1:n_rot:2]
        out[:, :, 0:n_rot:2] = a * c - b * s
        out[:, :, 1:n_rot:2] = a * s + b * c
        return out

    def forward(self, ids):
        """ids: list of token ids -> logits (T, n_vocab) float64."""
        torch = self.torch
        hp, t = self.hp, self.t
        T, hd = len(ids), hp["head_dim"]
        group = hp["n_heads"] // hp["n_kv_heads"]
        x = t["token_embd.weight"][torch.tensor(ids)]
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        for L in range(hp["n_layers"]):
            p = "blk.%d." % L
            h = self.rms(x, t[p + "attn_norm.weight"])
            q = (h @ t[p + "attn_q.weight"].T).view(T, hp["n_heads"], hd)
            k = (h @ t[p + "attn_k.weight"].T).view(T, hp["n_kv_heads"], hd)
            v = (h @ t[p + "attn_v.weight"].T).view(T, hp["n_kv_heads"], hd)
            q, k = self.rope(q), self.rope(k)
            heads = []
            for j in range(hp["n_heads"]):
                kv = j // group
                sc = (q[:, j, :] @ k[:, kv, :].T) / np.sqrt(hd) + mask
                heads.append(torch.softmax(sc, dim=-1) @ v[:, kv, :])
            x = x + torch.cat(heads, dim=-1) @ t[p + "attn_output.weight"].T
            h = self.rms(x, t[p + "ffn_norm.weight"])
            gate = h @ t[p + "ffn_gate.weight"].T
            up = h @ t[p + "ffn_up.weight"].T
            x = x + (torch.nn.functional.silu(gate) * up) @ t[p + "ffn_down.weight"].T
        x = self.rms(x, t["output_norm.weight"])
        return x @ self.out_w.T


def vocab_from_meta(meta):
    import spm
    if meta.get("tokenizer.ggml.model") != "llama":
        raise GGUFError("tokenizer '%s' is not llama (SPM)" % meta.get("tokenizer.ggml.model"))
    return spm.Vocab(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.scores"],
                     meta["tokenizer.ggml.token_type"],
                     add_space_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)))


def sig7(x):
    return float("%.7g" % x)


def main():
    ap = argparse.ArgumentParser(description="PyTorch reference logits for a GGUF llama")
    ap.add_argument("model")
    ap.add_argument("--prompt", default="In the beginning")
    ap.add_argument("--n-greedy", type=int, default=32)
    ap.add_argument("--out", default="")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)

    meta, tensors, _ = read_gguf(a.model)
    ref = Reference(meta, tensors)
    vocab = vocab_from_meta(meta)
    if len(vocab) != ref.n_vocab:
        raise GGUFError("vocab has %d tokens, output has %d rows" % (len(vocab), ref.n_vocab))
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", True))
    ids = vocab.encode_exact(a.prompt, add_bos=add_bos)
    if add_bos and int(meta.get("tokenizer.ggml.bos_token_id", 1)) != ids[0]:
        raise GGUFError("bos_token_id does not match the encoder's BOS")
    if len(ids) + a.n_greedy > ref.hp["n_ctx"]:
        raise GGUFError("prompt plus continuation exceeds the context length")

    with torch.no_grad():
        logits = ref.forward(ids)
        seq = list(ids)
        greedy = []
        for _ in range(a.n_greedy):
            nxt = int(np.argmax(ref.forward(seq)[-1].numpy()))
            greedy.append(nxt)
            seq.append(nxt)
    text = vocab.decode(greedy, strip_space_prefix=False)
    out = {
        "model": os.path.basename(a.model),
        "prompt": a.prompt,
        "tokens": ids,
        "logits": [[sig7(v) for v in row] for row in logits.numpy().tolist()],
        "greedy": greedy,
        "greedy_text": text,
    }
    path = a.out or os.path.splitext(a.model)[0] + ".ref.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    tok = [vocab.tokens[i] for i in ids]
    print("%s: %d params, tokens %s %s" % (os.path.basename(a.model),
                                           sum(v.size for v in tensors.values()), ids, tok))
    print("greedy %s\ngreedy_text %r\nwrote %s" % (greedy, text, path))


if __name__ == "__main__":
    main()
