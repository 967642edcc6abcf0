Feature: The llama forward pass and the session API
  The engine computes the same logits as an independent PyTorch implementation and generates
  the same greedy tokens (ARCHITECTURE §6).

  Scenario: Logits match the PyTorch reference for the bundled model
    Given models/ holds the bundled F16 model and its reference JSON
    When the engine runs the reference prompt
    Then the prompt tokens equal the reference tokens
    And the max absolute logit error is below 0.02 and the top-1 token agrees at every position

  Scenario: Logits match the reference for a random GQA model with an untied head
    Given models/test-gqa-random-f16.gguf (2 KV heads for 4 heads, rope.freq_base 500000, output.weight present) and its reference JSON
    When the engine runs the reference tokens
    Then the max absolute logit error is below 0.01 and the top-1 token agrees at every position

  Scenario: Greedy generation matches PyTorch on the bundled model
    When the engine generates 32 tokens greedily from "In the beginning"
    Then the tokens equal the reference "greedy" list

  Scenario: Batched prompt processing equals token-by-token processing
    When the same prompt is prefilled at once and one token at a time
    Then the final logits agree within 1e-3

  Scenario: Quantized variants stay close to the reference
    Given the bundled model quantized to Q8_0 and Q4_0
    When the engine runs the reference prompt
    Then Q8_0 agrees on top-1 at every position and Q4_0 on most, with the KL divergence printed

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

  Scenario: rbee-gguf generate streams the continuation
    When the user runs rbee-gguf generate models/<bundled> --prompt "In the beginning" -n 16 --temp 0
    Then stdout is the greedy continuation only and the exit code is 0

  Scenario: rbee-gguf quantize and random make loadable files
    When the user quantizes the bundled model to q8_0 and makes a random tinyllama-shaped q4_0 model
    Then rbee-gguf info lists the expected types and the engine loads both
