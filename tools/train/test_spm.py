"""Checks for the SPM tokenizer against the corpus and hand-made cases.

    /usr/bin/python3 tools/train/test_spm.py [VOCAB.json | MODEL.gguf]

Without an argument the vocabulary is trained afresh on the training split.
Checks: decode(encode(x)) == x for every chapter (train and validation);
encode() == encode_exact() on the validation chapters and on seeded random
strings; and a few fixed behaviours the C tokenizer must share.
"""

import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus  # noqa: E402
import spm  # noqa: E402


def load_vocab(arg, train_docs):
    if not arg:
        return spm.train([t for _, t in train_docs], 4096, log=None)
    if arg.endswith(".gguf"):
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
        from reference import read_gguf, vocab_from_meta
        return vocab_from_meta(read_gguf(arg)[0])
    return spm.Vocab.load(arg)


def main():
    docs = corpus.chapters()
    train_docs, val_docs = corpus.split(docs)
    v = load_vocab(sys.argv[1] if len(sys.argv) > 1 else "", train_docs)
    failures = 0

    def check(cond, what):
        nonlocal failures
        if not cond:
            failures += 1
            print("FAIL:", what)

    n_tok = 0
    for name, text in docs:
        ids = v.encode(text, add_bos=False)
        n_tok += len(ids)
        check(v.decode(ids) == text, "round trip of %s" % name)
    for name, text in val_docs:
        check(v.encode_exact(text) == v.encode(text), "exact == fast on %s" % name)

    rnd = random.Random(7)
    alphabet = list("abcdefgh ,.\n") + ["the", "and", " ", "  ", "\u2581", "\u00e9", "\u20ac",
                                         "\U0001F600", "<s>", "\t", "LORD"]
    for i in range(3000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 24)))
        a, b = v.encode_exact(s), v.encode(s)
        check(a == b, "exact == fast on %r: %s vs %s" % (s, a, b))
        if "\u2581" not in s:
            check(v.decode(a) == s, "round trip of %r" % s)

    # Fixed behaviours.
    t = v.tokens
    check(v.encode("") == [spm.BOS_ID], "empty prompt is just BOS")
    check(v.encode("", add_bos=False) == [], "empty text gives no tokens")
    two = "\u2581\u2581"
    want = [t.index(two)] if two in t else [t.index("\u2581")] * 2
    check(v.encode(" ", add_bos=False) == want, "one space is the prefix plus a space")
    nl = v.encode("a\nb", add_bos=False)
    check(t.index("<0x0A>") in nl, "newline is <0x0A>")
    euro = v.encode("\u20ac", add_bos=False)
    check([t[i] for i in euro] == ["\u2581", "<0xE2>", "<0x82>", "<0xAC>"],
          "unknown character falls back to bytes: %s" % [t[i] for i in euro])
    check([t[i] for i in v.encode("<s>", add_bos=False)][-1] != "<s>",
          "text '<s>' is not parsed as a control token")
    ids = v.encode("In the beginning")
    print("'In the beginning' ->", ids, [t[i] for i in ids])
    print("corpus: %d chapters, %d tokens, %.3f chars/token"
          % (len(docs), n_tok, sum(len(x) for _, x in docs) / n_tok))
    if failures:
        print("%d checks failed" % failures)
        sys.exit(1)
    print("tokenizer checks passed")


if __name__ == "__main__":
    main()
