Feature: The KV cache and the memory a session needs
  The KV cache is F16 by default (Q8_0 and F32 on request), the context is 4096 tokens by
  default capped at the model's training context, and the memory a worker needs is estimated
  from the model's numbers (docs/architecture.md §6).

  Scenario: Every cache type stays close to the F32 cache
    Given the bundled Q8_0 and F16 models, the random GQA fixture and the gemma3 (sliding-window layers) and qwen3 fixtures
    When a 160-token (bundled) or 100-token (fixtures) sequence is run with an F16, Q8_0 and F32 cache, on every instruction set the CPU has
    Then every logit of every position of the F16 cache is within 0.01 of the F32 cache's (0.2 on the Q8_0 model)
    And every logit of the Q8_0 cache is within 0.25 of the F32 cache's (not on the GQA fixture, whose heads have 16 dimensions)

  Scenario: Greedy generation with the F16 cache equals the F32 cache
    When the bundled model generates 96 tokens greedily from "In the beginning" with each cache
    Then the F16 cache's tokens equal the F32 cache's token for token

  Scenario: A Q8_0 cache needs a head dimension that is a multiple of 32
    When a session with a Q8_0 cache is opened on the GQA fixture (head dimension 16)
    Then it is refused with an error that names q8_0, 32 and the head dimension

  Scenario: The KV cache kernels agree with their scalar twins
    Given random queries, F16 keys of 1 to 200 positions and Q8_0 values
    When the scores and the weighted values are computed on each instruction set
    Then they equal the scalar twin within 1e-4 relative and a float64 reference within 1e-3

  Scenario: The default context is 4096 tokens capped at the training context
    Then a default session request is 4096 tokens, 0 asks for the training context, and a request above the training context is capped at it
    And a session of the bundled model (trained on 512) gets 512 tokens by default and 100 when asked for 100

  Scenario: The memory estimate counts the weights, the KV cache and the scratch
    When the estimate is computed for the bundled model with 2 slots of 512 tokens, 2 threads and an F16 cache
    Then it is 6837056 bytes of weights, 3145728 of KV cache, 2122752 of scratch (the pass buffers once, logits per slot) and 62437184 in all
    And the KV part equals what the sessions allocate, for each cache type
    And a Llama-3.1-8B shape needs 512 MiB of F16 cache at the default context and 32 GiB of F32 cache at 131072 tokens
