"""Export a trained checkpoint to GGUF, and check a reference JSON against it.

    export.py CKPT OUT.gguf [--name NAME]          write the GGUF file
    export.py CKPT --check REF.json [--tol 0.05]    compare the reference
                                                    tool's logits with the
                                                    PyTorch model's own

DESIGN
Tensor names are llama.cpp's.  2-D weights go out as F16, 1-D norm weights as
F32.  With a tied head there is no output.weight; readers use token_embd.
Q and K are written unpermuted: the model was trained with interleaved RoPE,
which is the convention llama.cpp applies to attn_q / attn_k of a `llama` file.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gguf_writer as gw  # noqa: E402


def tensor_map(cfg):
    """[(gguf name, state_dict key, ggml type)] in file order."""
    out = [("token_embd.weight", "tok_embeddings.weight", gw.GGML_TYPE_F16)]
    for i in range(cfg["n_layers"]):
        p = "layers.%d." % i
        b = "blk.%d." % i
        out += [
            (b + "attn_norm.weight", p + "attn_norm.weight", gw.GGML_TYPE_F32),
            (b + "attn_q.weight", p + "attn.wq.weight", gw.GGML_TYPE_F16),
            (b + "attn_k.weight", p + "attn.wk.weight", gw.GGML_TYPE_F16),
            (b + "attn_v.weight", p + "attn.wv.weight", gw.GGML_TYPE_F16),
            (b + "attn_output.weight", p + "attn.wo.weight", gw.GGML_TYPE_F16),
            (b + "ffn_norm.weight", p + "ffn_norm.weight", gw.GGML_TYPE_F32),
            (b + "ffn_gate.weight", p + "ffn.w1.weight", gw.GGML_TYPE_F16),
            (b + "ffn_up.weight", p + "ffn.w3.weight", gw.GGML_TYPE_F16),
            (b + "ffn_down.weight", p + "ffn.w2.weight", gw.GGML_TYPE_F16),
        ]
    out.append(("output_norm.weight", "norm.weight", gw.GGML_TYPE_F32))
    if not cfg["tied_output"]:
        out.append(("output.weight", "output.weight", gw.GGML_TYPE_F16))
    return out


def write_gguf(path, name, cfg, state, vocab):
    """state: name -> numpy float32 array; vocab: spm.Vocab."""
    w = gw.GGUFWriter()
    gw.add_llama_metadata(w, name, cfg, vocab.tokens, vocab.scores, vocab.types)
    for gname, key, gtype in tensor_map(cfg):
        w.add_tensor(gname, state[key], gtype)
    w.write(path)


def load_checkpoint(path):
    import torch
    import spm
    from model import Config, Llama
    ck = torch.load(path, map_location="cpu")
    cfg = Config(**ck["config"])
    m = Llama(cfg)
    m.load_state_dict(ck["model"])
    m.eval()
    vocab = spm.Vocab(ck["vocab"]["tokens"], ck["vocab"]["scores"], ck["vocab"]["types"])
    return ck, m, vocab


def check(ckpt, ref_path, tol):
    """Compare a reference JSON (from the GGUF) with the checkpoint's logits."""
    import torch
    _ck, m, vocab = load_checkpoint(ckpt)
    with open(ref_path) as f:
        ref = json.load(f)
    ids = vocab.encode_exact(ref["prompt"])
    if ids != ref["tokens"]:
        print("token mismatch: checkpoint %s, reference %s" % (ids, ref["tokens"]))
        return 1
    with torch.no_grad():
        logits = m(torch.tensor([ids]))[0].numpy()
    diff = np.abs(logits - np.asarray(ref["logits"], dtype=np.float32))
    greedy = m.generate(ids, len(ref["greedy"]))
    print("max |logit diff| %.5f (mean %.6f) over %d x %d; greedy %s"
          % (diff.max(), diff.mean(), logits.shape[0], logits.shape[1],
             "matches" if greedy == ref["greedy"] else "differs"))
    if greedy != ref["greedy"]:
        print("checkpoint greedy: %s\nreference greedy:  %s" % (greedy, ref["greedy"]))
    return 0 if diff.max() <= tol else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--name", default=None)
    ap.add_argument("--check", metavar="REF_JSON")
    ap.add_argument("--tol", type=float, default=0.05)
    a = ap.parse_args()
    if a.check:
        sys.exit(check(a.ckpt, a.check, a.tol))
    if not a.out:
        ap.error("need OUT.gguf or --check")
    ck, m, vocab = load_checkpoint(a.ckpt)
    state = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    name = a.name or os.path.basename(a.out).rsplit("-f16", 1)[0].replace(".gguf", "")
    write_gguf(a.out, name, ck["config"], state, vocab)
    print("wrote %s (%d bytes)" % (a.out, os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
