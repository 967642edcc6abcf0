/*
 * hive_gguf.h - the numbers of a GGUF model the memory estimate needs, read from the file's
 * header without loading it (the hive does not link the engine: docs/architecture.md §2).
 *
 *     rb_mem_shape sh;
 *     if (hive_gguf_shape("/models/x.gguf", &sh, err, sizeof err) == RB_OK)
 *         ... rb_mem_estimate_compute(&sh, &run, &est) ...
 */
#ifndef HIVE_GGUF_H
#define HIVE_GGUF_H

#include <stddef.h>

#include "rb_err.h"
#include "rb_mem.h"

/* Reads the metadata of the GGUF file at path (versions 2 and 3) into out: weight_bytes is
 * the file size; <arch>.block_count, .embedding_length and .attention.head_count are required,
 * the others default as the engine defaults them (context_length 2048, head_count_kv =
 * head_count, rope.dimension_count = key_length = value_length = embedding_length /
 * head_count, n_vocab = the length of tokenizer.ggml.tokens or <arch>.vocab_size). Every
 * count and length is checked against the file size. RB_EIO when the file cannot be read,
 * RB_EFORMAT (with the key in err) when the header is malformed or lacks a number. */
rb_err hive_gguf_shape(const char *path, rb_mem_shape *out, char *err, size_t errlen);

#endif
