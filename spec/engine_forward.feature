Feature: The forward pass and the session API
  The engine computes the same logits as independent PyTorch and float64 numpy implementations
  and generates the same greedy tokens, for every supported architecture (docs/architecture.md
  §6, docs/models.md).

  Scenario: Logits match the PyTorch reference for the bundled model
    Given models/ holds the bundled F16 model and its reference JSON
    When the engine runs the reference prompt
    Then the prompt tokens equal the reference tokens
    And the max absolute logit error is below 0.02 and the top-1 token agrees at every position

  Scenario: Logits match the reference for a random GQA model with an untied head
    Given models/test-gqa-random-f16.gguf (2 KV heads for 4 heads, rope.freq_base 500000, output.weight present) and its reference JSON
    When the engine runs the reference tokens
    Then the max absolute logit error is below 0.01 and the top-1 token agrees at every position
    And greedy generation from its prompt gives the reference's greedy tokens

  Scenario: rope.dimension_count below the head size is honoured
    Given models/test-gqa-rope8-f16.gguf: the random GQA network with RoPE on 8 of each head's 16 dimensions, and its reference JSON
    When the engine runs the reference tokens
    Then the max absolute logit error is below 0.01 and the top-1 token agrees at every position
    And the logits differ from those of the fully rotated model by more than 0.01 (the setting is not ignored)

  Scenario: Greedy generation matches PyTorch on the bundled model
    When the engine generates 32 tokens greedily from "In the beginning"
    Then the tokens equal the reference "greedy" list

  Scenario: Batched prompt processing equals token-by-token processing
    When the same prompt is prefilled at once and one token at a time
    Then the final logits agree within 1e-3

  Scenario: Prompts on the portable kernels go through OpenBLAS sgemm
    Given the kernels forced to the portable (scalar) set, which has no batch kernel for F16
    When the bundled F16 model prefills a prompt of 33 tokens at once
    Then OpenBLAS sgemm runs at least once for each of the pass's matrices, as the engine counts
    And every logit at every position agrees within 1e-3 with the scalar kernels run token by token (no sgemm)
    And with the detected kernel set's batched run, after which that set is in use again

  Scenario: Quantized variants stay close to the reference
    Given the bundled model quantized to Q8_0, Q4_0 and Q4_K_M
    When the engine runs the reference prompt
    Then Q8_0 agrees on top-1 at every position with a mean KL below 0.001
    And Q4_0 and Q4_K_M agree on more than half the positions with a mean KL below 0.05, all printed

  Scenario: The context limit is enforced
    Given a session with n_ctx 16
    When a prompt of 20 tokens is prefilled
    Then prefill fails with "too large" naming the context size

  Scenario: A cancel flag stops generation between tokens
    Given a session generating
    When the cancel flag is set
    Then the next step returns "canceled"

  Scenario: Loading reports layer progress
    When the bundled model is opened with a progress callback
    Then the callback sees layers_loaded rise from 0 to layers_total

  Scenario: Weights read into memory give the same logits as mapped weights
    Given the random GQA model opened twice, once mapped and once with copy_weights
    When the reference prompt is prefilled in both
    Then every logit is bit-identical and the copy's progress still rises per layer
    And a copy of the file without blk.1.ffn_down.weight is refused with copy_weights, naming the tensor, without a crash

  Scenario: A model opened from memory gives the same logits as one opened from its file
    Given the random GQA model's bytes read into a buffer
    When it is opened with eng_model_open_mem and the reference prompt is prefilled
    Then every logit is bit-identical to the file-opened model's
    And a truncated buffer is refused with an error naming the given name, without a crash

  Scenario: rbee-gguf generate streams the continuation
    When the user runs rbee-gguf generate models/<bundled> --prompt "In the beginning" -n 16 --temp 0
    Then stdout is the greedy continuation only and the exit code is 0

  Scenario: rbee-gguf quantize and random make loadable files
    When the user quantizes the bundled model to q8_0 and makes a random tinyllama-shaped q4_0 model
    Then rbee-gguf info lists the expected types and the engine loads both

  Scenario: The Q4_K_M mix follows llama.cpp's rules
    When the bundled model (6 layers, tied output head) is quantized to q4_k_m
    Then token_embd.weight (the head) and attn_v/ffn_down of layers 2 and 5 are Q6_K, every other matrix Q4_K, the norms F32
    And a matrix whose rows are not a multiple of 256 is Q8_0 (or F16 when 32 does not divide them either)

  Scenario: rbee-gguf random takes only the tokenizer of a vocabulary file
    Given the phi-3 vocabulary from ../shared/data/tokenizer (the suite is reported skipped when absent)
    When the user runs rbee-gguf random OUT --like tiny --type q8_0 --vocab it
    Then OUT has the vocabulary's 32064 tokens and no phi3.* key, and the engine loads it

  Scenario: rbee-bench engine and memory report medians
    When the user runs rbee-bench engine -m models/<bundled q8_0> -p 16 -n 8 -t 1 -r 3 --json, with and without --no-mmap
    Then the last line is one JSON object with pp_tokens_per_s and tg_tokens_per_s above 0 and the exit code is 0
    When the user runs rbee-bench memory -m models/<bundled q8_0> -t 2 -r 3
    Then it prints a GB/s median for 1 and 2 threads and exits 0
    When rbee-bench is given a missing file or an unknown option
    Then it prints one line naming the problem and exits 1

  # Architectures (docs/models.md). Each fixture models/test-<arch>-tiny-f16.gguf is written by
  # rbee-gguf random --like <arch>-tiny; its reference JSON by tools/reference/reference_arch.py,
  # a float64 numpy model written from the published model definitions.

  Scenario: A llama model with rope_freqs and a key_length of its own matches its reference
    Given models/test-llama-tiny-f16.gguf: rope_freqs.weight with llama 3.1 divisors, attention.key_length 24 for a 64-wide stream of 4 heads
    When the engine runs the reference tokens in F16, and in Q8_0 and Q4_0 made from it
    Then F16 logits are within 1e-3 of the float64 reference with top-1 agreeing at every position and all 16 greedy tokens equal
    And Q8_0 is within 0.25 and Q4_0 within 1.5, with the same top-1 wherever the reference's best two logits are more than twice the error apart
    And their greedy paths leave the reference's only at a step where its gap is below twice the tolerance

  Scenario: A qwen2 model matches its reference
    Given models/test-qwen2-tiny-f16.gguf: biases on q, k and v, NEOX rope
    When the engine runs the reference tokens in F16, Q8_0 and Q4_0
    Then the logits and greedy tokens agree as for llama

  Scenario: A qwen3 model matches its reference
    Given models/test-qwen3-tiny-f16.gguf: per-head RMS norms on q and k before RoPE, key_length 32, NEOX rope
    When the engine runs the reference tokens in F16, Q8_0 and Q4_0
    Then the logits and greedy tokens agree as for llama

  Scenario: A gemma2 model matches its reference
    Given models/test-gemma2-tiny-f16.gguf: embeddings times sqrt(n_embd), gelu-tanh gating, post-attention and post-FFN norms, attention and final soft-capping, a 5-token window on even layers
    When the engine runs the reference tokens in F16, Q8_0 and Q4_0
    Then the logits and greedy tokens agree as for llama

  Scenario: A gemma3 model matches its reference
    Given models/test-gemma3-tiny-f16.gguf: 6 layers, 5 sliding (window 5, rope base 10000) per global one (rope base 1000000, linear rope scaling 8), q/k norms, no soft-capping
    When the engine runs the reference tokens in F16, Q8_0 and Q4_0
    Then the logits and greedy tokens agree as for llama

  Scenario: A phi3 model matches its reference
    Given models/test-phi3-tiny-f16.gguf: fused attn_qkv, ffn_up holding the gate and up halves, NEOX rope
    When the engine runs the reference tokens in F16, Q8_0 and Q4_0
    Then the logits and greedy tokens agree as for llama

  Scenario: A phi3 model with longrope factors matches its reference
    Given models/test-phi3-longrope-tiny-f16.gguf: the phi3 fixture's weights with rope_factors_short/long, rope.scaling.original_context_length 128 and rope.scaling.attn_factor
    When the engine runs the reference tokens in a session of 128 tokens, in F16, Q8_0 and Q4_0
    Then the logits and greedy tokens agree as for llama (short factors, cos and sin times the attention factor)
    And the logits differ by more than 0.05 from the reference of the same weights without the factors

  Scenario: Every architecture in Q4_K_M matches the reference of its own weights
    Given models/test-<arch>-wide-q4_k_m.gguf for llama, qwen2, qwen3, phi3, gemma2 and gemma3: rbee-gguf random --like <arch>-wide (256-wide rows) quantized to q4_k_m, every matrix Q4_K or Q6_K
    And its reference JSON from the float64 reference reading the Q4_K and Q6_K blocks itself
    When the engine runs the reference tokens on the file
    Then the logits are within 0.1 of the reference
    And top-1 agrees at every position where the reference's best two logits are more than twice the error apart
    And the greedy path leaves the reference's only at a step where the reference's gap is below 0.2

  Scenario: What the engine does not understand is refused by name
    When a fixture's general.architecture is "mamba", a required tensor is missing, an extra tensor is present, or rope.scaling.type is "yarn"
    Then loading fails with an error naming the architecture and the supported list, the missing tensor, the extra tensor, or the scaling type and the supported ones
