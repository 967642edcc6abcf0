"""Float64 numpy reference for the engine's architectures: llama, qwen2, qwen3, phi3, gemma2,
gemma3.

    /usr/bin/python3 tools/reference/reference_arch.py MODEL.gguf [--tokens 1,300,...]
        [--n-greedy 16] [--out MODEL.ref.json]

Writes MODEL.ref.json in the format of reference.py (tokens, logits of every prompt position,
greedy ids), from token ids instead of a prompt so the random fixtures need no tokenizer.

DESIGN
Written from the published model definitions (Hugging Face transformers' modeling_llama,
modeling_qwen2, modeling_qwen3, modeling_phi3, modeling_gemma2, modeling_gemma3) in their own
terms, mapped to GGUF names the way llama.cpp's converter writes them, and shares nothing with
the C engine. Where the GGUF convention differs from the checkpoint's it is undone here, not
assumed: llama's q/k rows are permuted for interleaved rotation (so llama rotates pairs
(2i, 2i+1)), every other architecture rotates halves (rotate_half); gemma norms are stored as
1 + w, so w = stored - 1 and the norm multiplies by (1 + w) as Gemma's RMSNorm does. Every
tensor is read in float64 (only F32/F16 files). Unknown architectures and tensors are errors.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reference import read_gguf  # noqa: E402  (the numpy GGUF reader; torch is not needed)

ARCHS = ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3")


class RefError(Exception):
    pass


def config(meta):
    """The HF-style config from the GGUF metadata."""
    arch = meta.get("general.architecture")
    if arch not in ARCHS:
        raise RefError("architecture %r is not one of %s" % (arch, ", ".join(ARCHS)))

    def g(k, d=None):
        v = meta.get("%s.%s" % (arch, k), d)
        if v is None:
            raise RefError("missing %s.%s" % (arch, k))
        return v

    c = {
        "arch": arch,
        "hidden": int(g("embedding_length")),
        "layers": int(g("block_count")),
        "ff": int(g("feed_forward_length")),
        "heads": int(g("attention.head_count")),
        "ctx": int(g("context_length")),
        "eps": float(g("attention.layer_norm_rms_epsilon", 1e-5)),
        "theta": float(g("rope.freq_base", 10000.0)),
    }
    c["kv_heads"] = int(g("attention.head_count_kv", c["heads"]))
    c["head_dim"] = int(g("attention.key_length", c["hidden"] // c["heads"]))
    if int(g("attention.value_length", c["head_dim"])) != c["head_dim"]:
        raise RefError("key_length != value_length")
    c["rot"] = int(g("rope.dimension_count", c["head_dim"]))
    scaling = meta.get(arch + ".rope.scaling.type", "none")
    c["linear"] = float(g("rope.scaling.factor", 1.0)) if scaling == "linear" else 1.0
    if scaling not in ("none", "linear"):
        raise RefError("rope scaling %r" % scaling)
    if arch in ("gemma2", "gemma3"):
        c["window"] = int(g("attention.sliding_window"))
        # HF: gemma2 layer i slides when i % 2 == 0; gemma3 unless (i + 1) % 6 == 0
        c["sliding"] = [(i % 2 == 0) if arch == "gemma2" else ((i + 1) % 6 != 0)
                        for i in range(c["layers"])]
    else:
        c["window"], c["sliding"] = 0, [False] * c["layers"]
    c["theta_local"] = float(g("rope.freq_base_swa", 10000.0)) if arch == "gemma3" else c["theta"]
    # Gemma2/3Config.query_pre_attn_scalar is not in the GGUF: the head size, but
    # hidden / heads for the 27B models, 46 and 62 layers (llama.cpp tells them by depth)
    c["query_pre_attn_scalar"] = c["head_dim"]
    if (arch, c["layers"]) in (("gemma2", 46), ("gemma3", 62)):
        c["query_pre_attn_scalar"] = c["hidden"] // c["heads"]
    c["attn_cap"] = float(g("attn_logit_softcapping", 50.0)) if arch == "gemma2" else 0.0
    c["final_cap"] = float(g("final_logit_softcapping", 30.0)) if arch == "gemma2" else 0.0
    return c


class Model:
    def __init__(self, meta, tensors):
        self.c = c = config(meta)
        self.t = {k: v.astype(np.float64) for k, v in tensors.items()}
        self.used = set()
        self.gemma = c["arch"] in ("gemma2", "gemma3")
        self.embed = self.w("token_embd.weight")
        self.lm_head = self.w("output.weight") if "output.weight" in self.t else self.embed
        self.final_norm = self.norm_w("output_norm.weight")
        self.rope_div = None  # llama 3.1: rope_freqs divides the inverse frequencies
        if "rope_freqs.weight" in self.t:
            if c["arch"] != "llama":
                raise RefError("rope_freqs in a %s file" % c["arch"])
            self.rope_div = self.w("rope_freqs.weight")
        self.longrope = None  # Phi3 LongRoPE: (short factors, long factors, original ctx)
        if "rope_factors_short.weight" in self.t or "rope_factors_long.weight" in self.t:
            if c["arch"] != "phi3":
                raise RefError("rope factors in a %s file" % c["arch"])
            self.longrope = (self.w("rope_factors_short.weight"),
                             self.w("rope_factors_long.weight"),
                             int(meta["phi3.rope.scaling.original_context_length"]))
            self.rope_attn = float(meta.get("phi3.rope.scaling.attn_factor", 1.0))
        self.blocks = [self.block(i) for i in range(c["layers"])]
        extra = set(self.t) - self.used
        if extra:
            raise RefError("tensors not understood: %s" % sorted(extra))

    def w(self, name):
        if name not in self.t:
            raise RefError("missing tensor %s" % name)
        self.used.add(name)
        return self.t[name]

    def norm_w(self, name):
        """The multiplier of an RMSNorm: Gemma's (1 + w) from the stored 1 + w."""
        v = self.w(name)
        return 1.0 + (v - 1.0) if self.gemma else v

    def block(self, i):
        c, p = self.c, "blk.%d." % i
        q_dim, kv_dim = c["heads"] * c["head_dim"], c["kv_heads"] * c["head_dim"]
        b = {"input_layernorm": self.norm_w(p + "attn_norm.weight")}
        if c["arch"] == "phi3":  # Phi3Attention.qkv_proj, then Phi3MLP.gate_up_proj
            qkv = self.w(p + "attn_qkv.weight")  # Phi3Attention.qkv_proj
            b["q"], b["k"], b["v"] = qkv[:q_dim], qkv[q_dim:q_dim + kv_dim], qkv[q_dim + kv_dim:]
            gate_up = self.w(p + "ffn_up.weight")  # Phi3MLP.gate_up_proj: chunk(2) = gate, up
            b["gate"], b["up"] = gate_up[:c["ff"]], gate_up[c["ff"]:]
        else:
            b["q"], b["k"], b["v"] = (self.w(p + "attn_q.weight"), self.w(p + "attn_k.weight"),
                                      self.w(p + "attn_v.weight"))
            b["gate"], b["up"] = self.w(p + "ffn_gate.weight"), self.w(p + "ffn_up.weight")
        if c["arch"] == "qwen2":
            b["bq"], b["bk"], b["bv"] = (self.w(p + "attn_q.bias"), self.w(p + "attn_k.bias"),
                                         self.w(p + "attn_v.bias"))
        if c["arch"] in ("qwen3", "gemma3"):
            b["q_norm"] = self.norm_w(p + "attn_q_norm.weight")
            b["k_norm"] = self.norm_w(p + "attn_k_norm.weight")
        b["o"] = self.w(p + "attn_output.weight")
        if self.gemma:
            b["post_attention_layernorm"] = self.norm_w(p + "post_attention_norm.weight")
            b["pre_feedforward_layernorm"] = self.norm_w(p + "ffn_norm.weight")
            b["post_feedforward_layernorm"] = self.norm_w(p + "post_ffw_norm.weight")
        else:
            b["post_attention_layernorm"] = self.norm_w(p + "ffn_norm.weight")
        b["down"] = self.w(p + "ffn_down.weight")
        if p + "rope_freqs.weight" in self.t:
            self.used.add(p + "rope_freqs.weight")
        return b

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.c["eps"]) * w

    def rope(self, x, theta):
        """x: (T, H, head_dim) at positions 0..T-1."""
        c = self.c
        rot, T = c["rot"], x.shape[0]
        inv = 1.0 / theta ** (np.arange(0, rot, 2, dtype=np.float64) / rot)
        if self.rope_div is not None:
            inv = inv / self.rope_div
        mscale = 1.0
        if self.longrope is not None:
            # Phi3LongRoPEScaledRotaryEmbedding: long factors past the original context, and
            # the attention factor on cos and sin either way
            short, long_, orig = self.longrope
            inv = inv / (long_ if T > orig else short)
            mscale = self.rope_attn
        pos = np.arange(T, dtype=np.float64) / (c["linear"] if theta == c["theta"] else 1.0)
        ang = pos[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :] * mscale, np.sin(ang)[:, None, :] * mscale
        out = x.copy()
        if c["arch"] == "llama":  # interleaved pairs (Meta's layout, as the GGUF stores it)
            a, b = x[..., 0:rot:2], x[..., 1:rot:2]
            out[..., 0:rot:2] = a * cos - b * sin
            out[..., 1:rot:2] = a * sin + b * cos
        else:  # rotate_half: x * cos + rotate_half(x) * sin
            h = rot // 2
            a, b = x[..., :h], x[..., h:rot]
            out[..., :h] = a * cos - b * sin
            out[..., h:rot] = b * cos + a * sin
        return out

    def act(self, g):
        if self.gemma:  # gelu_pytorch_tanh
            return 0.5 * g * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
        return g / (1.0 + np.exp(-g))  # silu

    def forward(self, ids):
        c = self.c
        T, hd, H, KV = len(ids), c["head_dim"], c["heads"], c["kv_heads"]
        x = self.embed[np.array(ids)]
        if self.gemma:
            x = x * math.sqrt(c["hidden"])
        qi, ki = np.arange(T)[:, None], np.arange(T)[None, :]
        for i, b in enumerate(self.blocks):
            h = self.rms(x, b["input_layernorm"])
            q, k, v = h @ b["q"].T, h @ b["k"].T, h @ b["v"].T
            if "bq" in b:
                q, k, v = q + b["bq"], k + b["bk"], v + b["bv"]
            q, k, v = q.reshape(T, H, hd), k.reshape(T, KV, hd), v.reshape(T, KV, hd)
            if "q_norm" in b:
                q, k = self.rms(q, b["q_norm"]), self.rms(k, b["k_norm"])
            theta = c["theta_local"] if c["sliding"][i] else c["theta"]
            q, k = self.rope(q, theta), self.rope(k, theta)
            allowed = ki <= qi
            if c["sliding"][i]:
                allowed = allowed & (ki > qi - c["window"])
            heads = []
            for j in range(H):
                kv = j // (H // KV)
                s = (q[:, j] @ k[:, kv].T) / math.sqrt(c["query_pre_attn_scalar"])
                if c["attn_cap"]:
                    s = np.tanh(s / c["attn_cap"]) * c["attn_cap"]
                s = np.where(allowed, s, -np.inf)
                s = np.exp(s - s.max(-1, keepdims=True))
                heads.append((s / s.sum(-1, keepdims=True)) @ v[:, kv])
            a = np.concatenate(heads, -1) @ b["o"].T
            if self.gemma:
                x = x + self.rms(a, b["post_attention_layernorm"])
                h = self.rms(x, b["pre_feedforward_layernorm"])
                m = (self.act(h @ b["gate"].T) * (h @ b["up"].T)) @ b["down"].T
                x = x + self.rms(m, b["post_feedforward_layernorm"])
            else:
                x = x + a
                h = self.rms(x, b["post_attention_layernorm"])
                x = x + (self.act(h @ b["gate"].T) * (h @ b["up"].T)) @ b["down"].T
        logits = self.rms(x, self.final_norm) @ self.lm_head.T
        if c["final_cap"]:
            logits = np.tanh(logits / c["final_cap"]) * c["final_cap"]
        return logits


def sig7(x):
    return float("%.7g" % x)


def main():
    ap = argparse.ArgumentParser(description="float64 reference logits for a GGUF model")
    ap.add_argument("model")
    ap.add_argument("--tokens", default="1,300,301,302,303,304,305,306,307,308,309,310")
    ap.add_argument("--n-greedy", type=int, default=16)
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    meta, tensors, _ = read_gguf(a.model)
    m = Model(meta, tensors)
    ids = [int(t) for t in a.tokens.split(",")]
    if len(ids) + a.n_greedy > m.c["ctx"]:
        raise RefError("tokens plus continuation exceed the context length")
    logits = m.forward(ids)
    seq, greedy, gaps = list(ids), [], []
    for _ in range(a.n_greedy):
        last = m.forward(seq)[-1]
        nxt = int(np.argmax(last))
        srt = np.sort(last)
        gaps.append(float(srt[-1] - srt[-2]))
        greedy.append(nxt)
        seq.append(nxt)
    out = {
        "model": os.path.basename(a.model),
        "prompt": "",
        "tokens": ids,
        "logits": [[sig7(v) for v in row] for row in logits.tolist()],
        "greedy": greedy,
        "min_greedy_gap": sig7(min(gaps)),
        "greedy_gaps": [sig7(g) for g in gaps],
    }
    path = a.out or os.path.splitext(a.model)[0] + ".ref.json"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, path)
    print("%s (%s): logits range %.3f..%.3f, greedy %s, min gap %.4f, wrote %s"
          % (os.path.basename(a.model), m.c["arch"], logits.min(), logits.max(), greedy,
             min(gaps), path))


if __name__ == "__main__":
    main()
