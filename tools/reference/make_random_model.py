"""Write models/test-gqa-random-f16.gguf: a tiny seeded random llama for engine tests.

    /usr/bin/python3 tools/reference/make_random_model.py \
        [--tokenizer-from models/kjv-5m-f16.gguf] [--out models/test-gqa-random-f16.gguf]
        [--rope-dim N]

With --rope-dim 8 --out models/test-gqa-rope8-f16.gguf it writes the same
network with RoPE applied to the first 8 of each head's 16 dimensions only
(llama.rope.dimension_count = 8), for the test that the engine honours it.

DESIGN
The bundled model ties its output head and uses freq_base 10000 with 8/4
heads; this file covers what it does not: an untied output.weight, a different
rope.freq_base (500000), a 2:1 GQA ratio on a narrow model (dim 64, head_dim
16), a short context (128), and norm weights that are not all ones (a forward
pass that ignores or misplaces them fails).  The tokenizer metadata is copied
from the bundled model so prompts tokenize the same way.

Weights are seeded normals with per-tensor scales chosen so the logits spread
over several units and attention is far from uniform, which makes the RoPE
convention and the KV-head mapping visible in the logits.
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))

import gguf_writer as gw  # noqa: E402
from reference import read_gguf  # noqa: E402

SEED = 20240601
CFG = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 128,
       "context_length": 128, "rope_base": 500000.0, "rope_dim": 0, "norm_eps": 1e-5}

# standard deviation per weight (1-D norm weights: 1 + NORM_JITTER * normal)
STD = {"token_embd": 0.5, "attn_q": 0.15, "attn_k": 0.15, "attn_v": 0.15,
       "attn_output": 0.1, "ffn_gate": 0.15, "ffn_up": 0.15, "ffn_down": 0.1,
       "output": 0.25}
NORM_JITTER = 0.1


def main():
    ap = argparse.ArgumentParser(description="write the seeded random GQA test model")
    ap.add_argument("--tokenizer-from", default=os.path.join(ROOT, "models", "kjv-5m-f16.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "test-gqa-random-f16.gguf"))
    ap.add_argument("--rope-dim", type=int, default=0,
                    help="rotated dimensions per head (default: all of them)")
    a = ap.parse_args()
    CFG["rope_dim"] = a.rope_dim
    name = os.path.basename(a.out).replace("-f16.gguf", "").replace(".gguf", "")

    meta, _tensors, _ = read_gguf(a.tokenizer_from)
    tokens = meta["tokenizer.ggml.tokens"]
    scores = meta["tokenizer.ggml.scores"]
    types = meta["tokenizer.ggml.token_type"]
    n_vocab = len(tokens)

    rng = np.random.default_rng(SEED)
    d, f = CFG["dim"], CFG["ffn_dim"]
    hd = d // CFG["n_heads"]
    kvd = CFG["n_kv_heads"] * hd

    def mat(kind, rows, cols):
        return (rng.standard_normal((rows, cols)) * STD[kind]).astype(np.float32)

    def norm():
        return (1.0 + NORM_JITTER * rng.standard_normal(d)).astype(np.float32)

    w = gw.GGUFWriter()
    gw.add_llama_metadata(w, name, CFG, tokens, scores, types)
    w.add_tensor("token_embd.weight", mat("token_embd", n_vocab, d), gw.GGML_TYPE_F16)
    for i in range(CFG["n_layers"]):
        b = "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", norm(), gw.GGML_TYPE_F32)
        w.add_tensor(b + "attn_q.weight", mat("attn_q", d, d), gw.GGML_TYPE_F16)
        w.add_tensor(b + "attn_k.weight", mat("attn_k", kvd, d), gw.GGML_TYPE_F16)
        w.add_tensor(b + "attn_v.weight", mat("attn_v", kvd, d), gw.GGML_TYPE_F16)
        w.add_tensor(b + "attn_output.weight", mat("attn_output", d, d), gw.GGML_TYPE_F16)
        w.add_tensor(b + "ffn_norm.weight", norm(), gw.GGML_TYPE_F32)
        w.add_tensor(b + "ffn_gate.weight", mat("ffn_gate", f, d), gw.GGML_TYPE_F16)
        w.add_tensor(b + "ffn_up.weight", mat("ffn_up", f, d), gw.GGML_TYPE_F16)
        w.add_tensor(b + "ffn_down.weight", mat("ffn_down", d, f), gw.GGML_TYPE_F16)
    w.add_tensor("output_norm.weight", norm(), gw.GGML_TYPE_F32)
    w.add_tensor("output.weight", mat("output", n_vocab, d), gw.GGML_TYPE_F16)
    w.write(a.out)
    print("wrote %s (%d bytes)" % (a.out, os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
