"""Train the bundled KJV model: corpus -> tokenizer -> Llama -> GGUF.

    /usr/bin/python3 tools/train/train.py --threads 1 --minutes 50

DESIGN
One run does everything, deterministically for a given seed, thread count and
step count:
  1. corpus.chapters() and the fixed validation split (every 40th chapter)
  2. spm.train() on the training chapters (4096 pieces)
  3. each chapter becomes <s> tokens </s>; chapters are concatenated into a
     train stream and a validation stream
  4. AdamW, linear warmup then cosine decay to lr_min, gradient clipping,
     random windows of seq+1 tokens from the train stream
  5. every --eval-every steps: mean training loss since the last row and the
     loss over the whole validation stream, appended to the CSV log
  6. checkpoint, GGUF export, sample generations, summary JSON

The step count comes from --steps, or when that is absent from the time budget:
after a few steps we time them and choose the number of steps that fits in
--minutes, leaving room for evaluation and export.  The chosen count is printed
and recorded; pass it back with --steps to reproduce a run exactly.  If the
budget ran out before the planned steps (the machine was busier than during
calibration), the summary says so, and --steps PLANNED --stop-step DONE replays
that run.
"""

import argparse
import csv
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def parse_args():
    ap = argparse.ArgumentParser(description="train the bundled KJV llama model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=50.0,
                    help="wall-clock budget for the whole run")
    ap.add_argument("--steps", type=int, default=0, help="fix the step count (0: from budget)")
    ap.add_argument("--stop-step", type=int, default=0,
                    help="stop after this step, keeping the --steps schedule (replays a run "
                         "the time budget cut short)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=688)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8, help="sequences per optimizer step")
    ap.add_argument("--micro-batch", type=int, default=4,
                    help="sequences per forward pass (gradient accumulation)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-min-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "models"))
    ap.add_argument("--work-dir", default=os.path.join(HERE, "work"))
    ap.add_argument("--name", default="", help="model name (default kjv-<N>m)")
    ap.add_argument("--log", default="", help="CSV log path (default models/kjv-train-log.csv)")
    return ap.parse_args()


def tune_malloc():
    """Keep freed memory in the heap instead of returning it to the kernel.

    glibc serves big blocks (the attention scores) with mmap and unmaps them
    on free, so every step pays for page faults again; that cost 40% of the
    wall time on one thread.  Raising the thresholds makes the heap reuse them.
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_top_pad, 256 * 1024 * 1024)


ARGS = parse_args()
# OpenBLAS and OpenMP read these when torch loads, so set them first.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
tune_malloc()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, HERE)
import corpus  # noqa: E402
import export  # noqa: E402
import spm  # noqa: E402
from model import Config, Llama  # noqa: E402

CALIBRATION_STEPS = 4
EVAL_RESERVE_S = 45.0    # final evaluation, export and samples take about 20 s


def build_stream(vocab, docs):
    ids = []
    for _name, text in docs:
        ids.append(spm.BOS_ID)
        ids.extend(vocab.encode(text, add_bos=False))
        ids.append(spm.EOS_ID)
    return torch.tensor(ids, dtype=torch.long)


def lr_at(step, total, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    frac = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
    lo = a.lr * a.lr_min_frac
    return lo + 0.5 * (a.lr - lo) * (1.0 + math.cos(math.pi * frac))


@torch.no_grad()
def evaluate(model, stream, seq):
    """Mean next-token loss over non-overlapping windows of the whole stream."""
    model.eval()
    total, count = 0.0, 0
    n_win = (len(stream) - 1) // seq
    windows = [stream[i * seq:i * seq + seq + 1] for i in range(n_win)]
    for i in range(0, n_win, 4):
        batch = torch.stack(windows[i:i + 4])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                               reduction="sum")
        total += float(loss)
        count += batch[:, 1:].numel()
    model.train()
    return total / count


def main():
    a = ARGS
    t0 = time.time()
    deadline = t0 + a.minutes * 60.0
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    os.makedirs(a.work_dir, exist_ok=True)
    os.makedirs(a.models_dir, exist_ok=True)

    docs = corpus.chapters()
    train_docs, val_docs = corpus.split(docs)
    print("corpus: %d chapters, %d train, %d validation"
          % (len(docs), len(train_docs), len(val_docs)), flush=True)
    vocab = spm.train([t for _, t in train_docs], a.vocab_size,
                      log=lambda s: print(s, flush=True))
    vocab.save(os.path.join(a.work_dir, "vocab.json"))
    train_ids = build_stream(vocab, train_docs)
    val_ids = build_stream(vocab, val_docs)
    print("tokens: train %d, validation %d (%.2f chars/token)"
          % (len(train_ids), len(val_ids),
             sum(len(t) for _, t in train_docs) / len(train_ids)), flush=True)

    cfg = Config(vocab_size=len(vocab), dim=a.dim, n_layers=a.layers, n_heads=a.heads,
                 n_kv_heads=a.kv_heads, ffn_dim=a.ffn, context_length=a.context)
    model = Llama(cfg)
    model.init_weights()
    n_params = model.n_params()
    name = a.name or "kjv-%dm" % round(n_params / 1e6)
    print("model %s: %d parameters, %s" % (name, n_params, cfg), flush=True)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed)
    seq = cfg.context_length

    log_path = a.log or os.path.join(a.models_dir, "kjv-train-log.csv")
    rows = []
    total = a.steps if a.steps > 0 else 10 ** 9
    step_times = []
    run_loss, run_n = 0.0, 0
    t_train = time.time()
    step = 0
    stopped_early = False
    while step < total:
        if a.stop_step and step >= a.stop_step:
            break
        if time.time() > deadline - EVAL_RESERVE_S:
            stopped_early = True
            print("time budget reached at step %d of %d" % (step, total), flush=True)
            break
        ts = time.time()
        lr = lr_at(step, total, a)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_ids) - seq - 1, (a.batch,), generator=gen)
        batch = torch.stack([train_ids[s:s + seq + 1] for s in starts.tolist()])
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for i in range(0, a.batch, a.micro_batch):
            mb = batch[i:i + a.micro_batch]
            logits = model(mb[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), mb[:, 1:].reshape(-1))
            loss = loss * (mb.shape[0] / a.batch)
            loss.backward()
            step_loss += float(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += step_loss
        run_n += 1
        step += 1
        step_times.append(time.time() - ts)

        if a.steps <= 0 and step == CALIBRATION_STEPS:
            per_step = sum(step_times[1:]) / (len(step_times) - 1)
            t_eval = time.time()
            evaluate(model, val_ids, seq)
            eval_s = time.time() - t_eval
            left = deadline - time.time() - EVAL_RESERVE_S
            # each remaining step costs per_step plus its share of evaluations
            total = step + int(left / (per_step + eval_s / a.eval_every))
            print("calibration: %.2f s/step, %.1f s/eval -> %d steps in total"
                  % (per_step, eval_s, total), flush=True)

        if step % a.eval_every == 0 or step == total:
            val = evaluate(model, val_ids, seq)
            row = {"step": step, "tokens": step * a.batch * seq,
                   "minutes": round((time.time() - t_train) / 60.0, 2),
                   "lr": round(lr, 6), "train_loss": round(run_loss / run_n, 4),
                   "val_loss": round(val, 4)}
            rows.append(row)
            run_loss, run_n = 0.0, 0
            print("step %5d/%d  tokens %8d  %6.2f min  lr %.2e  train %.4f  val %.4f"
                  % (step, total, row["tokens"], row["minutes"], lr, row["train_loss"], val),
                  flush=True)
            with open(log_path, "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(row))
                wr.writeheader()
                wr.writerows(rows)

    if rows and rows[-1]["step"] != step:
        val = evaluate(model, val_ids, seq)
        rows.append({"step": step, "tokens": step * a.batch * seq,
                     "minutes": round((time.time() - t_train) / 60.0, 2), "lr": round(lr, 6),
                     "train_loss": round(run_loss / max(1, run_n), 4), "val_loss": round(val, 4)})
        with open(log_path, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[-1]))
            wr.writeheader()
            wr.writerows(rows)
    train_minutes = (time.time() - t_train) / 60.0
    model.eval()

    cfg_dict = dict(cfg.__dict__)
    ckpt = os.path.join(a.work_dir, "%s.pt" % name)
    torch.save({"config": cfg_dict, "model": model.state_dict(),
                "vocab": {"tokens": vocab.tokens, "scores": vocab.scores, "types": vocab.types},
                "steps": step, "args": vars(a)}, ckpt)
    gguf_path = os.path.join(a.models_dir, "%s-f16.gguf" % name)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    export.write_gguf(gguf_path, name, cfg_dict, state, vocab)

    prompt = "In the beginning"
    ids = vocab.encode(prompt)
    greedy = model.generate(ids, 64)
    sgen = torch.Generator().manual_seed(a.seed)
    sampled = model.generate(ids, 64, temperature=0.8, generator=sgen)
    summary = {
        "name": name, "gguf": os.path.basename(gguf_path), "parameters": n_params,
        "config": cfg_dict, "steps": step, "planned_steps": total,
        "stopped_early": stopped_early, "batch": a.batch, "seq": seq,
        "tokens_seen": step * a.batch * seq, "train_tokens": len(train_ids),
        "val_tokens": len(val_ids), "threads": a.threads, "seed": a.seed,
        "train_minutes": round(train_minutes, 2),
        "total_minutes": round((time.time() - t0) / 60.0, 2),
        "final_train_loss": rows[-1]["train_loss"] if rows else None,
        "final_val_loss": rows[-1]["val_loss"] if rows else None,
        "prompt": prompt,
        "greedy_text": prompt + vocab.decode(greedy, strip_space_prefix=False),
        "sample_t0.8_text": prompt + vocab.decode(sampled, strip_space_prefix=False),
        "args": vars(a),
    }
    with open(os.path.join(a.work_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\nloss curve (%s):" % log_path)
    with open(log_path) as f:
        print(f.read())
    print(json.dumps({k: v for k, v in summary.items() if k != "args"}, indent=1))
    print("wrote %s (%d bytes), checkpoint %s" % (gguf_path, os.path.getsize(gguf_path), ckpt))


if __name__ == "__main__":
    main()
