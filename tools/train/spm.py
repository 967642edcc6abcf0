"""SentencePiece-style BPE vocabulary: trainer, llama.cpp-exact encoder, decoder.

DESIGN
The vocabulary is what a GGUF file with tokenizer.ggml.model = "llama" carries:
a list of piece strings, one float score per piece and one token type per piece.

    id 0          <unk>           type 2 (unknown)  score 0
    id 1          <s>             type 3 (control)  score 0
    id 2          </s>            type 3 (control)  score 0
    id 3..258     <0x00>..<0xFF>  type 6 (byte)     score 0
    then          single chars    type 1 (normal)   score -(1000000 + i)
    then          merged pieces   type 1 (normal)   score -(rank + 1)

Spaces are written as U+2581 ("▁").  "\\n" is deliberately not a piece, so a
newline always encodes as <0x0A>, as in Llama 2.

Encoding follows llama.cpp's SPM tokenizer (llm_tokenizer_spm) step for step,
because the C engine implements the same algorithm and must produce the same ids:

 0. empty text gives no tokens at all (only BOS if asked)
 1. if add_space_prefix: text = " " + text
 2. replace every " " with "▁"
 3. split into UTF-8 characters; each is one symbol
 4. for every adjacent pair whose concatenation is the text of some token
    (any token: lookup is by exact text over the whole vocabulary), queue a
    candidate (score of that token, index of the left symbol)
 5. pop the candidate with the highest score, ties to the smallest left index;
    skip it if either symbol was consumed or has grown since it was queued;
    otherwise merge right into left and queue the new pairs (prev, left) and
    (left, next)
 6. emit the symbols left to right: a symbol whose text is a token emits that
    id, any other symbol emits one <0xNN> token per UTF-8 byte
 7. BOS (id 1) is prepended when asked; EOS is never appended (add_eos false).

Step 6 is llama.cpp's resegment(); its rev_merge branch only fires for a merged
symbol whose text is not a token, which cannot happen since step 4 only merges
into existing tokens, so the byte fallback is all that remains.

Training is ordinary BPE over words counted once ("count words first"): a word
is "▁" plus the following non-space run, or a run at the start of a line.  Each
merge creates the piece left+right; its score is -(rank+1), so earlier merges
win in step 5.  Pieces never contain "▁" except as their first character and
never contain "\\n", so no merge can cross a word boundary.  encode() uses that
property to cache words; encode_exact() runs the algorithm on the whole string
and is what the reference tool uses.
"""

import heapq
import json

SPACE = "\u2581"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
N_BYTES = 256
FIRST_BYTE_ID = 3

TYPE_NORMAL = 1
TYPE_UNKNOWN = 2
TYPE_CONTROL = 3
TYPE_BYTE = 6

CHAR_SCORE_BASE = -1000000.0


class Vocab:
    """A llama (SPM) vocabulary: tokens, scores, token types, plus lookups."""

    def __init__(self, tokens, scores, types, add_space_prefix=True):
        if not (len(tokens) == len(scores) == len(types)):
            raise ValueError("tokens, scores and types differ in length")
        self.tokens = list(tokens)
        self.scores = [float(s) for s in scores]
        self.types = [int(t) for t in types]
        self.add_space_prefix = add_space_prefix
        self.token_to_id = {}
        for i, t in enumerate(self.tokens):
            # llama.cpp keeps the last id for a duplicated text; so do we.
            self.token_to_id[t] = i
        self.byte_to_id = {}
        for i, (t, ty) in enumerate(zip(self.tokens, self.types)):
            if ty == TYPE_BYTE:
                self.byte_to_id[int(t[3:5], 16)] = i
        missing = [b for b in range(N_BYTES) if b not in self.byte_to_id]
        if missing:
            raise ValueError("vocabulary lacks byte tokens, e.g. <0x%02X>" % missing[0])
        # Word caching is only exact if no token can glue two words together.
        self._word_local = all(SPACE not in t[1:] for t in self.tokens)
        self._cache = {}

    def __len__(self):
        return len(self.tokens)

    # ---------------------------------------------------------------- encode

    def _spm_symbols(self, s):
        """Steps 3-5 on an already escaped string; returns the final symbols."""
        n = len(s)
        text = list(s)          # symbol text; "" once merged away
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        if n:
            nxt[n - 1] = -1
        heap = []

        def try_add(left, right):
            if left == -1 or right == -1:
                return
            cat = text[left] + text[right]
            tid = self.token_to_id.get(cat)
            if tid is None:
                return
            heapq.heappush(heap, (-self.scores[tid], left, right, len(cat)))

        for i in range(1, n):
            try_add(i - 1, i)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            lt, rt = text[left], text[right]
            if not lt or not rt or len(lt) + len(rt) != size:
                continue
            text[left] = lt + rt
            text[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] != -1:
                prev[nxt[right]] = left
            try_add(prev[left], left)
            try_add(left, nxt[left])
        out = []
        i = 0 if n else -1
        while i != -1:
            out.append(text[i])
            i = nxt[i]
        return out

    def _emit(self, symbols, out):
        """Step 6: symbols to ids, with byte fallback."""
        for sym in symbols:
            tid = self.token_to_id.get(sym)
            if tid is not None:
                out.append(tid)
            else:
                out.extend(self.byte_to_id[b] for b in sym.encode("utf-8"))

    def escape(self, text):
        """Steps 1-2: optional space prefix, spaces to U+2581."""
        if self.add_space_prefix:
            text = " " + text
        return text.replace(" ", SPACE)

    def encode_exact(self, text, add_bos=True):
        """Encode exactly as llama.cpp does, over the whole string at once."""
        out = [BOS_ID] if add_bos else []
        if not text:
            return out      # llama.cpp: empty text adds no fragment, so no prefix
        self._emit(self._spm_symbols(self.escape(text)), out)
        return out

    def encode(self, text, add_bos=True):
        """Same ids as encode_exact(), faster on long text (caches words)."""
        if not self._word_local or not text:
            return self.encode_exact(text, add_bos)
        out = [BOS_ID] if add_bos else []
        for word in split_words(self.escape(text)):
            ids = self._cache.get(word)
            if ids is None:
                ids = []
                self._emit(self._spm_symbols(word), ids)
                if len(self._cache) < 1000000:
                    self._cache[word] = ids
            out.extend(ids)
        return out

    # ---------------------------------------------------------------- decode

    def piece_bytes(self, tid):
        """The bytes one token stands for (control and unknown give b"")."""
        ty = self.types[tid]
        if ty == TYPE_BYTE:
            return bytes([int(self.tokens[tid][3:5], 16)])
        if ty in (TYPE_CONTROL, TYPE_UNKNOWN):
            return b""
        return self.tokens[tid].replace(SPACE, " ").encode("utf-8")

    def decode(self, ids, strip_space_prefix=True):
        """Token ids back to text; drops the space the encoder prepended."""
        data = b"".join(self.piece_bytes(t) for t in ids)
        text = data.decode("utf-8", errors="replace")
        if strip_space_prefix and self.add_space_prefix and text.startswith(" "):
            text = text[1:]
        return text

    # ---------------------------------------------------------------- files

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tokens": self.tokens, "scores": self.scores, "types": self.types},
                      f, ensure_ascii=False)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls(d["tokens"], d["scores"], d["types"])


def split_words(escaped):
    """Split an escaped string before every U+2581 and around every newline.

    Concatenating the parts gives the input back.  With a word-local vocabulary
    the SPM algorithm never merges across these cuts.
    """
    words = []
    start = 0
    for i, ch in enumerate(escaped):
        if ch == SPACE and i > start:
            words.append(escaped[start:i])
            start = i
        elif ch == "\n":
            if i > start:
                words.append(escaped[start:i])
            words.append("\n")
            start = i + 1
    if start < len(escaped):
        words.append(escaped[start:])
    return words


# -------------------------------------------------------------------- training

def count_words(texts, add_space_prefix=True):
    """Word frequencies over documents, using the encoder's escaping rules."""
    counts = {}
    for text in texts:
        if add_space_prefix:
            text = " " + text
        for w in split_words(text.replace(" ", SPACE)):
            if w != "\n":
                counts[w] = counts.get(w, 0) + 1
    return counts


def train(texts, vocab_size=4096, log=print):
    """Train a BPE vocabulary of exactly vocab_size pieces on texts."""
    counts = count_words(texts)
    # Deterministic order: by frequency, then text.
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [list(w) for w, _ in items]
    freq = [c for _, c in items]

    char_count = {}
    for w, c in zip(words, freq):
        for ch in w:
            char_count[ch] = char_count.get(ch, 0) + c
    chars = sorted(char_count, key=lambda ch: (-char_count[ch], ch))

    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(N_BYTES)]
    types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL] + [TYPE_BYTE] * N_BYTES
    scores = [0.0] * len(tokens)
    for i, ch in enumerate(chars):
        tokens.append(ch)
        types.append(TYPE_NORMAL)
        scores.append(CHAR_SCORE_BASE - i)
    if len(tokens) > vocab_size:
        raise ValueError("vocab_size %d is below the %d base pieces" % (vocab_size, len(tokens)))
    known = set(tokens)

    pair_count = {}
    pair_where = {}
    for wi, (w, c) in enumerate(zip(words, freq)):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] = pair_count.get((a, b), 0) + c
            pair_where.setdefault((a, b), set()).add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    def bump(pair, delta, wi):
        c = pair_count.get(pair, 0) + delta
        pair_count[pair] = c
        if delta > 0:
            pair_where.setdefault(pair, set()).add(wi)
        if c > 0:
            heapq.heappush(heap, (-c, pair))

    rank = 0
    while len(tokens) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc or negc == 0:
            continue  # stale entry
        a, b = pair
        merged = a + b
        for wi in sorted(pair_where.pop(pair, ())):
            w, c = words[wi], freq[wi]
            i = 0
            new = []
            changed = False
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    new.append(merged)
                    i += 2
                    changed = True
                else:
                    new.append(w[i])
                    i += 1
            if not changed:
                continue
            for p in zip(w, w[1:]):
                bump(p, -c, wi)
            for p in zip(new, new[1:]):
                bump(p, c, wi)
            words[wi] = new
        pair_count.pop(pair, None)
        rank += 1
        if merged not in known:
            known.add(merged)
            tokens.append(merged)
            types.append(TYPE_NORMAL)
            scores.append(-float(rank))
        if log and rank % 500 == 0:
            log("bpe: %d merges, %d pieces, last %r (count %d)"
                % (rank, len(tokens), merged, -negc))
    if len(tokens) != vocab_size:
        raise ValueError("corpus too small for %d pieces" % vocab_size)
    return Vocab(tokens, scores, types)
