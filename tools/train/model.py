"""A plain Llama in PyTorch, laid out so its weights map 1:1 onto GGUF.

DESIGN
Same blocks as Llama 2: token embedding, per layer RMSNorm -> grouped-query
attention with RoPE -> residual, RMSNorm -> SwiGLU FFN -> residual, then a
final RMSNorm and an output head.  The head may be tied to the embedding.

RoPE uses the interleaved pair convention of Meta's original llama and of
llama.cpp's LLAMA_ROPE_TYPE_NORM: inside each head, elements (2i, 2i+1) form a
pair rotated by pos * freq_base^(-2i / rope_dim).  Because we train in that
convention, attn_q / attn_k go to GGUF as they are, with no row permutation
(the permutation convert_hf_to_gguf.py applies exists only to undo the
half-split "rotate_half" layout of Hugging Face checkpoints).

GQA follows ggml's broadcast: query head h reads key/value head
h // (n_heads / n_kv_heads), i.e. consecutive query heads share a KV head.

Shapes use PyTorch's (out_features, in_features) for Linear weights; the GGUF
writer reverses them into ggml's ne[] order.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 4096
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 8
    n_kv_heads: int = 4
    ffn_dim: int = 688
    context_length: int = 512
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    rope_dim: int = 0           # 0 means head_dim
    tied_output: bool = True

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    @property
    def rope_dims(self):
        return self.rope_dim or self.head_dim


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, n_pos, dtype=torch.float32):
    """cos/sin of shape (n_pos, rope_dims/2) for the interleaved convention."""
    half = cfg.rope_dims // 2
    inv = cfg.rope_base ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / cfg.rope_dims)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x, cos, sin, rope_dims):
    """Rotate pairs (2i, 2i+1) of the first rope_dims features of each head.

    x: (B, T, H, head_dim); cos, sin: (T, rope_dims/2).
    """
    xr = x[..., :rope_dims]
    x0 = xr[..., 0::2]
    x1 = xr[..., 1::2]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    y = torch.stack((y0, y1), dim=-1).flatten(-2)
    if rope_dims == x.shape[-1]:
        return y
    return torch.cat((y, x[..., rope_dims:]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        B, T, _ = x.shape
        hd = cfg.head_dim
        q = self.wq(x).view(B, T, cfg.n_heads, hd)
        k = self.wk(x).view(B, T, cfg.n_kv_heads, hd)
        v = self.wv(x).view(B, T, cfg.n_kv_heads, hd)
        q = apply_rope(q, cos, sin, cfg.rope_dims)
        k = apply_rope(k, cos, sin, cfg.rope_dims)
        rep = cfg.n_heads // cfg.n_kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=2)
            v = v.repeat_interleave(rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))      # (B, H, T, hd)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, cfg.n_heads * hd)
        return self.wo(y)


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)   # ffn_gate
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)   # ffn_up
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)   # ffn_down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.ffn(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.n_heads % cfg.n_kv_heads:
            raise ValueError("n_heads must be a multiple of n_kv_heads")
        if cfg.rope_dims % 2 or cfg.rope_dims > cfg.head_dim:
            raise ValueError("rope_dim must be even and at most head_dim")
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = None if cfg.tied_output else nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg, cfg.context_length)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        mask = torch.ones(cfg.context_length, cfg.context_length, dtype=torch.bool).triu(1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def init_weights(self, std=0.02):
        """GPT-2 style init; residual projections scaled by 1/sqrt(2*n_layers)."""
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith("wo.weight") or name.endswith("w2.weight"):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.cfg.n_layers))
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens):
        """tokens (B, T) int64 -> logits (B, T, vocab)."""
        T = tokens.shape[1]
        if T > self.cfg.context_length:
            raise ValueError("sequence of %d exceeds context %d" % (T, self.cfg.context_length))
        x = self.tok_embeddings(tokens)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        for layer in self.layers:
            x = layer(x, cos, sin, self.causal_mask)
        x = self.norm(x)
        if self.output is None:
            return x @ self.tok_embeddings.weight.t()
        return self.output(x)

    def n_params(self):
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(self, ids, n_new, temperature=0.0, generator=None):
        """Continue ids (list) by n_new tokens; greedy when temperature is 0."""
        out = list(ids)
        for _ in range(n_new):
            ctx = out[-self.cfg.context_length:]
            logits = self(torch.tensor([ctx]))[0, -1].double()
            if temperature <= 0:
                nxt = int(torch.argmax(logits))
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                nxt = int(torch.multinomial(probs, 1, generator=generator))
            out.append(nxt)
        return out[len(ids):]
