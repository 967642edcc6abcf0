/*
 * eng_gguf.h - GGUF files: a checked, mmapped reader and a writer.
 *
 *     eng_gguf *g;
 *     char err[256];
 *     if (eng_gguf_open("model.gguf", &g, err, sizeof err)) { puts(err); return 1; }
 *     int64_t k = eng_gguf_find_key(g, "llama.block_count");
 *     uint32_t nl; eng_gguf_get_u32(g, k, &nl);
 *     const eng_gguf_tensor *t = eng_gguf_tensor_at(g, eng_gguf_find_tensor(g, "output.weight"));
 *     use(t->data, t->size);        // borrowed: valid until eng_gguf_close(g)
 *     eng_gguf_close(g);
 *
 * File layout, all integers little-endian; the reader (gguf.c) takes exactly this and the
 * writer (gguf_write.c) produces it, as version 3:
 *
 *     header        char[4]   magic "GGUF"
 *                   u32       version (2 and 3 are read; the layout is the same)
 *                   u64       tensor count
 *                   u64       key-value count
 *     each kv       str       key (a str is a u64 byte length, then the bytes, no NUL end)
 *                   u32       value type (eng_gguf_vtype)
 *                   ...       the value: u8/i8/bool 1 byte, u16/i16 2, u32/i32/f32 4,
 *                             u64/i64/f64 8, a str, or an array:
 *                               u32 element type, u64 count, then count elements packed
 *                               (strs for a string array; arrays again for an array of
 *                               arrays)
 *     each tensor   str       name (at most ENG_GGUF_MAX_NAME bytes, none of them NUL)
 *                   u32       n_dims (at most ENG_GGUF_MAX_DIMS)
 *                   u64       ne[n_dims], ne[0] the contiguous dimension
 *                   u32       type (eng_type, numbered as in ggml)
 *                   u64       offset of its data from the start of the data section, a
 *                             multiple of the alignment
 *     padding                 to the next multiple of the alignment: general.alignment (a u32
 *                             power of two) when the key is set, else 32; written as zeros,
 *                             and only when there are tensors
 *     data section            the tensors' data at their offsets; a tensor is
 *                             eng_type_row_bytes(type, ne[0]) * ne[1] * ... bytes, and the
 *                             writer pads each one with zeros to the alignment
 *
 * Versions 2 and 3 are read. Every count, string length, array length, offset, alignment,
 * dimension product and type is checked against the file size and for overflow before use;
 * errors name the key or tensor and the value, e.g.
 * "tensor 'blk.3.attn_q.weight' extends past end of file (offset 1234, size 5678, file 4000)"
 * (offsets in messages are from the start of the file).
 *
 * Error codes of eng_gguf_open and eng_gguf_open_mem:
 *   RB_EFORMAT       malformed or truncated file: bad magic, counts or lengths past the end,
 *                    bad alignment, duplicate keys or tensors, bad dimensions, tensor data
 *                    outside the file, misaligned tensor offsets
 *   RB_EUNSUPPORTED  well-formed but not readable here: version other than 2 or 3, a tensor
 *                    type this engine does not read (unknown numbers included)
 *   RB_ENOTFOUND     no such file;  RB_EIO  other open/stat/mmap failures;  RB_ENOMEM
 * Metadata arrays may nest (arrays of arrays, up to ENG_GGUF_MAX_NESTING levels); nested
 * arrays are validated but only their type and length are exposed.
 */
#ifndef ENG_GGUF_H
#define ENG_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "eng_types.h"
#include "rb_err.h"

#define ENG_GGUF_MAX_DIMS 4
#define ENG_GGUF_MAX_NAME 127  /* longest tensor name in bytes */
#define ENG_GGUF_MAX_NESTING 8 /* deepest array-of-array nesting accepted */
#define ENG_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types, numbered as in the GGUF specification. */
typedef enum eng_gguf_vtype {
    ENG_GGUF_U8 = 0,
    ENG_GGUF_I8 = 1,
    ENG_GGUF_U16 = 2,
    ENG_GGUF_I16 = 3,
    ENG_GGUF_U32 = 4,
    ENG_GGUF_I32 = 5,
    ENG_GGUF_F32 = 6,
    ENG_GGUF_BOOL = 7,
    ENG_GGUF_STRING = 8,
    ENG_GGUF_ARRAY = 9,
    ENG_GGUF_U64 = 10,
    ENG_GGUF_I64 = 11,
    ENG_GGUF_F64 = 12,
    ENG_GGUF_VTYPE_COUNT
} eng_gguf_vtype;

typedef struct eng_gguf_str {
    const char *p; /* NOT NUL-terminated; borrowed from the mapping */
    uint64_t len;
} eng_gguf_str;

typedef struct eng_gguf_tensor {
    char name[128]; /* NUL-terminated copy */
    eng_type type;
    uint32_t ndim;                 /* 0..4; 0 is a single element */
    int64_t ne[ENG_GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; unused dims are 1 */
    uint64_t offset;               /* from the start of the data section */
    uint64_t size;                 /* bytes */
    const void *data;              /* borrowed from the mapping */
} eng_gguf_tensor;

typedef struct eng_gguf eng_gguf;

/* Opens and validates path (mmapped read-only). Caller closes with eng_gguf_close(). */
rb_err eng_gguf_open(const char *path, eng_gguf **out, char *err, size_t errlen);
/* Same over memory the caller keeps alive until close (used by the unit tests, which feed it
 * malformed files; ci/test runs them under AddressSanitizer too). */
rb_err eng_gguf_open_mem(const void *data, size_t size, eng_gguf **out, char *err, size_t errlen);
void eng_gguf_close(eng_gguf *g); /* NULL-safe */

uint32_t eng_gguf_version(const eng_gguf *g);
uint64_t eng_gguf_file_size(const eng_gguf *g);
/* 1 when fd is the file g was opened from (same device, inode and size). */
int eng_gguf_same_file(const eng_gguf *g, int fd);
uint32_t eng_gguf_alignment(const eng_gguf *g);
/* File offset where the tensor data section starts (tensor offsets are relative to it). */
uint64_t eng_gguf_data_offset(const eng_gguf *g);

/* Metadata. Keys are indexed 0..n-1; find returns -1 when absent. */
int64_t eng_gguf_n_keys(const eng_gguf *g);
int64_t eng_gguf_find_key(const eng_gguf *g, const char *key);
eng_gguf_str eng_gguf_key_name(const eng_gguf *g, int64_t i);
eng_gguf_vtype eng_gguf_key_type(const eng_gguf *g, int64_t i);

/* Scalar getters: RB_EINVAL when i is out of range or the value's type does not fit
 * (integers convert between widths when the value is representable; get_f32 accepts F32/F64). */
rb_err eng_gguf_get_u32(const eng_gguf *g, int64_t i, uint32_t *out);
rb_err eng_gguf_get_i64(const eng_gguf *g, int64_t i, int64_t *out);
rb_err eng_gguf_get_f32(const eng_gguf *g, int64_t i, float *out);
rb_err eng_gguf_get_bool(const eng_gguf *g, int64_t i, int *out);
rb_err eng_gguf_get_str(const eng_gguf *g, int64_t i, eng_gguf_str *out);

/* Arrays: element type, length, and element access. Strings in arrays via arr_str;
 * numeric elements via arr_data (borrowed, packed little-endian, element size by type). */
rb_err eng_gguf_get_arr(const eng_gguf *g, int64_t i, eng_gguf_vtype *etype, uint64_t *n);
rb_err eng_gguf_arr_str(const eng_gguf *g, int64_t i, uint64_t j, eng_gguf_str *out);
/* NULL unless key i is an array of a fixed-size type. The data may be unaligned: copy
 * elements out with memcpy rather than casting to a typed pointer. */
const void *eng_gguf_arr_data(const eng_gguf *g, int64_t i);
/* The value of key i exactly as encoded in the file (the bytes after its type field), for
 * copying and dumping; borrowed. RB_EINVAL when i is out of range. */
rb_err eng_gguf_key_raw(const eng_gguf *g, int64_t i, const void **data, uint64_t *len);
/* "u8", "str", "arr", ...; "?" for numbers outside the enum. */
const char *eng_gguf_vtype_name(eng_gguf_vtype t);
/* Bytes of one element of a fixed-size type; 0 for STRING, ARRAY and unknown types. */
size_t eng_gguf_vtype_size(eng_gguf_vtype t);

/* Convenience: a string value copied into out (NUL-terminated); RB_ENOTFOUND if absent,
 * RB_EINVAL if not a string, RB_ETOOBIG if it does not fit (out then holds a prefix). */
rb_err eng_gguf_find_str(const eng_gguf *g, const char *key, char *out, size_t outlen);
/* Convenience: numeric value by key with a default when absent; RB_EINVAL on a wrong type. */
rb_err eng_gguf_find_u32(const eng_gguf *g, const char *key, uint32_t def, uint32_t *out);
rb_err eng_gguf_find_f32(const eng_gguf *g, const char *key, float def, float *out);

/* Tensors, indexed 0..n-1; find returns -1 when absent. */
int64_t eng_gguf_n_tensors(const eng_gguf *g);
int64_t eng_gguf_find_tensor(const eng_gguf *g, const char *name);
/* Tensor i (borrowed, valid until eng_gguf_close), or NULL when i is out of range. Named
 * _at because C cannot have a function and the type eng_gguf_tensor under one name. */
const eng_gguf_tensor *eng_gguf_tensor_at(const eng_gguf *g, int64_t i);

/* Writer: collects metadata and tensors, then writes a version 3 file atomically
 * (temporary name in the same folder, fsync, rename). Tensor data is copied at add time.
 * Tensor data is aligned to general.alignment when that key is set (a power of two), else 32.
 * Setters return RB_EINVAL for bad arguments, RB_ENOMEM. */
typedef struct eng_gguf_writer eng_gguf_writer;

eng_gguf_writer *eng_gguf_writer_new(void);
void eng_gguf_writer_free(eng_gguf_writer *w); /* NULL-safe */
/* Setting a key again replaces its value. */
rb_err eng_gguf_writer_set_u32(eng_gguf_writer *w, const char *key, uint32_t v);
rb_err eng_gguf_writer_set_i32(eng_gguf_writer *w, const char *key, int32_t v);
rb_err eng_gguf_writer_set_f32(eng_gguf_writer *w, const char *key, float v);
rb_err eng_gguf_writer_set_bool(eng_gguf_writer *w, const char *key, int v);
rb_err eng_gguf_writer_set_str(eng_gguf_writer *w, const char *key, const char *v);
/* Any fixed-size scalar type (U8..F64 and BOOL); v points at one value of that type. */
rb_err eng_gguf_writer_set_scalar(eng_gguf_writer *w, const char *key, eng_gguf_vtype type,
                                  const void *v);
/* Array of n elements of a fixed-size etype (U8..F64 and BOOL; not STRING or ARRAY), data
 * packed as in the file. */
rb_err eng_gguf_writer_set_arr(eng_gguf_writer *w, const char *key, eng_gguf_vtype etype,
                               const void *data, uint64_t n);
rb_err eng_gguf_writer_set_arr_str(eng_gguf_writer *w, const char *key, const char *const *strs,
                                   uint64_t n);
/* Copies every key of g (for quantize and random). */
rb_err eng_gguf_writer_copy_kv(eng_gguf_writer *w, const eng_gguf *g);
/* Only the keys of g whose names start with prefix. */
rb_err eng_gguf_writer_copy_kv_prefix(eng_gguf_writer *w, const eng_gguf *g, const char *prefix);
/* Adds a tensor: ne[0..ndim) with ne[0] contiguous; size must equal eng_type_row_bytes(type,
 * ne[0]) * (product of the other dims). */
rb_err eng_gguf_writer_add_tensor(eng_gguf_writer *w, const char *name, eng_type type,
                                  uint32_t ndim, const int64_t *ne, const void *data,
                                  uint64_t size);
/* Number of tensors added so far. */
int64_t eng_gguf_writer_n_tensors(const eng_gguf_writer *w);
rb_err eng_gguf_writer_write(eng_gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
