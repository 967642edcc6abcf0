"""KJV corpus: one document per chapter, built from Debian's bible-kjv.

DESIGN
The `bible` command (package bible-kjv, text from bible-kjv-text) prints one
verse per line with its reference glued to the front: `Ge1:1 In the beginning`.
We strip the reference, collapse runs of whitespace (the text has two stray
double spaces and one trailing space), group verses by (book, chapter) and join
the verses of a chapter with "\n".  That gives 1,189 documents.

The validation split is deterministic: every VAL_EVERY-th chapter in canonical
order (starting with the chapter at index VAL_OFFSET) is held out.  Nothing is
random here, so the split never changes between machines.
"""

import re
import shutil
import subprocess
import sys

BIBLE_RANGE = "Gen1:1-Rev22:21"
EXPECTED_VERSES = 31102
EXPECTED_CHAPTERS = 1189
VAL_EVERY = 40
VAL_OFFSET = 20

# Book abbreviation (may start with a digit, e.g. 1Sa), chapter, verse, text.
_VERSE_RE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def read_verses():
    """Return [(book, chapter, verse, text)] for the whole KJV, in order."""
    if shutil.which("bible") is None:
        raise RuntimeError("the 'bible' command is missing: install package bible-kjv")
    out = subprocess.run(["bible", "-f", BIBLE_RANGE], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, check=True).stdout.decode("utf-8")
    verses = []
    for line in out.split("\n"):
        if not line.strip():
            continue
        m = _VERSE_RE.match(line)
        if m is None:
            raise ValueError("unexpected line from bible: %r" % line[:80])
        text = " ".join(m.group(4).split())
        verses.append((m.group(1), int(m.group(2)), int(m.group(3)), text))
    if len(verses) != EXPECTED_VERSES:
        raise ValueError("expected %d verses from 'bible', got %d"
                         % (EXPECTED_VERSES, len(verses)))
    return verses


def chapters():
    """Return [(name, text)]: one document per chapter, verses joined by "\\n"."""
    docs = []
    key = None
    lines = []
    for book, chap, _verse, text in read_verses():
        if (book, chap) != key:
            if lines:
                docs.append(("%s%d" % key, "\n".join(lines)))
            key = (book, chap)
            lines = []
        lines.append(text)
    if lines:
        docs.append(("%s%d" % key, "\n".join(lines)))
    if len(docs) != EXPECTED_CHAPTERS:
        raise ValueError("expected %d chapters, got %d" % (EXPECTED_CHAPTERS, len(docs)))
    return docs


def split(docs):
    """Split documents into (train, val) deterministically."""
    train, val = [], []
    for i, d in enumerate(docs):
        (val if i % VAL_EVERY == VAL_OFFSET else train).append(d)
    return train, val


def main():
    docs = chapters()
    train, val = split(docs)
    n_chars = sum(len(t) for _, t in docs)
    print("chapters %d (train %d, val %d), characters %d"
          % (len(docs), len(train), len(val), n_chars))
    print("validation chapters:", " ".join(n for n, _ in val))
    if len(sys.argv) > 1:
        print(docs[int(sys.argv[1])][1])


if __name__ == "__main__":
    main()
