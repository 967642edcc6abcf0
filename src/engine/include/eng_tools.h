/*
 * eng_tools.h - whole-file operations on models: quantization and random models of a real
 * model's shape (for benchmarks). Used by rbee-gguf and the tests.
 *
 *     if (eng_quantize_file("kjv-f16.gguf", "kjv-q8_0.gguf", "q8_0", 2, err, sizeof err)) ...
 *     if (eng_random_model("tl.gguf", "tinyllama-1.1b", "q4_0", NULL, 1, 2, err, sizeof err)) ...
 */
#ifndef ENG_TOOLS_H
#define ENG_TOOLS_H

#include <stddef.h>
#include <stdint.h>

#include "rb_err.h"

/* File types accepted by the tools: "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k" and
 * the mixes of llama.cpp's llama_tensor_get_type (llama architecture, no experts, no
 * importance matrix), each with Q6_K for output.weight (token_embd.weight when tied):
 *   "q4_k_m"  Q4_K; Q6_K for attn_v/ffn_down in the layers use_more_bits picks;
 *   "q3_k_m"  Q3_K; attn_v Q5_K in layers 0-1, else Q4_K; ffn_down Q5_K in the first
 *             n_layers / 16 layers, else Q4_K; attn_output Q4_K;
 *   "q3_k_s"  Q3_K;
 *   "q2_k"    Q2_K; attn_v Q4_K with 4 or more heads per KV head, else Q3_K; ffn_down and
 *             attn_output Q3_K;
 *   "iq4_nl", "iq4_xs"  IQ4_NL / IQ4_XS; attn_v Q5_K with 4 or more heads per KV head;
 *             ffn_down Q5_K in the first n_layers / 8 layers.
 * 1 if name is one of them. */
int eng_ftype_known(const char *name);

/* Writes a copy of in with every 2-D weight converted to ftype (1-D tensors stay F32). A
 * weight whose row length is not a multiple of the target block falls back to Q8_0, or F16
 * when even that does not divide it. general.file_type is updated. The output is written to a
 * temporary name and renamed. */
rb_err eng_quantize_file(const char *in, const char *out, const char *ftype, int n_threads,
                         char *err, size_t errlen);

/* Writes a model with random weights (approximately normal, std 0.02; norms 1) shaped like a
 * known model, with its architecture's tensors and metadata (docs/models.md lists them):
 * "tinyllama-1.1b", "llama-3.2-1b", "llama-3.1-8b" (both with rope_freqs), "mistral-7b",
 * "qwen2.5-0.5b", "qwen3-0.6b", "phi-3-mini", "gemma-2-2b", "gemma-3-1b", "llama-3-4layer"
 * (4 of llama-3.1-8b's 32 layers with its 131072-token context and 32000 pieces: for memory
 * measurements), "tiny" (64 dim, 2 layers), or a test-fixture shape "<arch>-tiny" for llama,
 * qwen2, qwen3, phi3, gemma2 and gemma3 (64 dim, larger weights, jittered norms). The
 * tokenizer is the tokenizer.* keys copied from vocab_path (a GGUF such as a vocab-only file)
 * or, when NULL, a synthetic SentencePiece vocabulary with byte fallback of the real model's
 * size (512 for the small shapes). */
rb_err eng_random_model(const char *out, const char *like, const char *ftype,
                        const char *vocab_path, uint64_t seed, int n_threads, char *err,
                        size_t errlen);

#endif
