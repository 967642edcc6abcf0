"""Minimal GGUF v3 writer (little-endian), F32 and F16 tensors only.

DESIGN
File layout, as the GGUF spec describes it:

    u32 magic "GGUF" (bytes 47 47 55 46), u32 version 3,
    u64 tensor_count, u64 kv_count,
    kv_count x  { string key, u32 value_type, value }
    tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
    padding to `alignment`
    data section: each tensor at `offset` (relative to the section start),
    every offset a multiple of `alignment`, zero padding between tensors.

A string is u64 byte length + UTF-8 bytes (no terminator).  An array is
u32 element type + u64 count + the elements.  ne[0] is the innermost
(contiguous) dimension, so a C-order numpy array of shape (rows, cols) is
written with ne = [cols, rows]: a PyTorch Linear weight (out, in) becomes
[in, out], as ggml expects.

Only what the bundled models need is supported; anything else raises.
"""

import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# gguf value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, \
    T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)

_SCALAR_FMT = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h",
    T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?",
    T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}

# ggml tensor types
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
_NP_DTYPE = {GGML_TYPE_F32: np.dtype("<f4"), GGML_TYPE_F16: np.dtype("<f2")}


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(vtype, value):
    if vtype == T_STRING:
        return _string(value)
    if vtype in _SCALAR_FMT:
        return struct.pack(_SCALAR_FMT[vtype], value)
    raise ValueError("unsupported gguf value type %d" % vtype)


def _pad(n, align):
    return (align - n % align) % align


class GGUFWriter:
    """Collect metadata and tensors, then write() them in one go."""

    def __init__(self, alignment=DEFAULT_ALIGNMENT):
        self.alignment = alignment
        self.kv = []         # (key, encoded type+value bytes)
        self.tensors = []    # (name, ne list, ggml type, raw bytes)
        self._keys = set()
        self.add_uint32("general.alignment", alignment)

    def _add(self, key, blob):
        if key in self._keys:
            raise ValueError("duplicate key '%s'" % key)
        self._keys.add(key)
        self.kv.append((key, blob))

    def add_scalar(self, key, vtype, value):
        self._add(key, struct.pack("<I", vtype) + _value(vtype, value))

    def add_string(self, key, value):
        self.add_scalar(key, T_STRING, value)

    def add_uint32(self, key, value):
        self.add_scalar(key, T_UINT32, int(value))

    def add_int32(self, key, value):
        self.add_scalar(key, T_INT32, int(value))

    def add_float32(self, key, value):
        self.add_scalar(key, T_FLOAT32, float(value))

    def add_bool(self, key, value):
        self.add_scalar(key, T_BOOL, bool(value))

    def add_array(self, key, elem_type, values):
        parts = [struct.pack("<IIQ", T_ARRAY, elem_type, len(values))]
        if elem_type == T_STRING:
            parts.extend(_string(v) for v in values)
        elif elem_type in (T_FLOAT32, T_INT32, T_UINT32):
            dt = {T_FLOAT32: "<f4", T_INT32: "<i4", T_UINT32: "<u4"}[elem_type]
            parts.append(np.asarray(values, dtype=dt).tobytes())
        else:
            parts.extend(_value(elem_type, v) for v in values)
        self._add(key, b"".join(parts))

    def add_tensor(self, name, array, ggml_type):
        """Add a numpy array (C order, shape as in PyTorch) as ggml_type."""
        if ggml_type not in _NP_DTYPE:
            raise ValueError("unsupported ggml type %d for '%s'" % (ggml_type, name))
        if any(t[0] == name for t in self.tensors):
            raise ValueError("duplicate tensor '%s'" % name)
        arr = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        if arr.ndim < 1 or arr.ndim > 4:
            raise ValueError("tensor '%s' has %d dims" % (name, arr.ndim))
        raw = arr.astype(_NP_DTYPE[ggml_type]).tobytes()
        ne = list(reversed(arr.shape))
        self.tensors.append((name, ne, ggml_type, raw))

    def write(self, path):
        head = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for key, blob in self.kv:
            head.append(_string(key))
            head.append(blob)
        offset = 0
        for name, ne, gtype, raw in self.tensors:
            head.append(_string(name))
            head.append(struct.pack("<I", len(ne)))
            head.append(struct.pack("<%dQ" % len(ne), *ne))
            head.append(struct.pack("<IQ", gtype, offset))
            offset += len(raw) + _pad(len(raw), self.alignment)
        head = b"".join(head)
        with open(path, "wb") as f:
            f.write(head)
            f.write(b"\0" * _pad(len(head), self.alignment))
            for _name, _ne, _gtype, raw in self.tensors:
                f.write(raw)
                f.write(b"\0" * _pad(len(raw), self.alignment))


def add_llama_metadata(w, name, cfg, vocab_tokens, vocab_scores, vocab_types,
                       file_type=1, bos_id=1, eos_id=2, unk_id=0):
    """Standard general.*, llama.* and tokenizer.ggml.* keys for an SPM llama."""
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", file_type)
    w.add_uint32("llama.context_length", cfg["context_length"])
    w.add_uint32("llama.embedding_length", cfg["dim"])
    w.add_uint32("llama.block_count", cfg["n_layers"])
    w.add_uint32("llama.feed_forward_length", cfg["ffn_dim"])
    w.add_uint32("llama.attention.head_count", cfg["n_heads"])
    w.add_uint32("llama.attention.head_count_kv", cfg["n_kv_heads"])
    w.add_uint32("llama.rope.dimension_count", cfg["rope_dim"] or cfg["dim"] // cfg["n_heads"])
    w.add_float32("llama.rope.freq_base", cfg["rope_base"])
    w.add_float32("llama.attention.layer_norm_rms_epsilon", cfg["norm_eps"])
    w.add_uint32("llama.vocab_size", len(vocab_tokens))
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", T_STRING, vocab_tokens)
    w.add_array("tokenizer.ggml.scores", T_FLOAT32, vocab_scores)
    w.add_array("tokenizer.ggml.token_type", T_INT32, vocab_types)
    w.add_uint32("tokenizer.ggml.bos_token_id", bos_id)
    w.add_uint32("tokenizer.ggml.eos_token_id", eos_id)
    w.add_uint32("tokenizer.ggml.unknown_token_id", unk_id)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_bool("tokenizer.ggml.add_space_prefix", True)
