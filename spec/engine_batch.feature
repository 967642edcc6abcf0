Feature: Batches: many sequences in one forward pass, and the prompt cache
  The sessions of a batch share one thread pool and the pass buffers; one pass runs tokens of
  several of them, each at its own position against its own KV cache, so a worker serving
  several streams reads the weights once per step for all (docs/architecture.md §5). A
  session's cache keeps its tokens across a reset, and a prompt that starts with them skips
  their positions.

  Scenario: Batched logits equal one-at-a-time logits
    Given the bundled F16 model and the gemma3 fixture (sliding-window layers, two RoPE bases)
    When 4 prompts of 3, 9, 17 and 30 tokens run as one pass of a batch, then 24 greedy steps each fed back in one pass
    And the same prompts run in sessions of their own
    Then every sequence's logits after every pass are within 1e-3 of its own session's
    And every sequence's greedy tokens equal its own session's

  Scenario: A sequence joins a batch in the middle of the others' generation
    When 2 sequences generate 10 tokens in a batch and a third prompt then joins their passes in chunks of 5 tokens
    Then the third sequence's greedy tokens equal its own session's, and the first two sequences' too

  Scenario: A prompt that starts with the cached tokens prefills only the rest
    When a session generates from a prompt and is reset, and a second prompt repeats the first prompt and the generated tokens and adds 6 more
    Then the cached prefix covers the first prompt and the tokens generated before the reset
    And prefilling the rest alone gives the logits of a fresh session prefilled with the whole second prompt, within 1e-3
    And a prompt equal to the cached tokens keeps all but its last token

  Scenario: A pass refuses what it cannot run
    Then a pass refuses a session of another batch, a session given twice, a session with no sampled token to feed, a token out of range, more tokens than a pass takes and more than a context has left, each with a message
