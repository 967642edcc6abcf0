Feature: One scheduler serves every slot in one batched pass
  The worker runs --slots sequences as one engine batch: each step samples a token for every
  decoding sequence and sends it at once, then one pass feeds them all back with a chunk of a
  waiting prompt; a new prompt that repeats a cached one prefills only the rest; a cancel
  reaches the engine within one chunk (docs/worker.md#scheduler).

  Scenario: Concurrent streams get the tokens each gets alone
    Given a worker with 4 slots on the bundled model
    When 4 different prompts are streamed greedily one after another, then all 4 at once
    Then each prompt's text at once equals its text alone, and the 4 streams overlapped in time

  Scenario: A second turn that repeats the first reuses its cache
    Given a worker with 2 slots on the bundled model
    When a prompt is streamed, then a longer prompt that starts with the first prompt's text
    Then the first end event reports 0 prompt tokens cached and the second at least the first prompt's tokens but one
    And a prompt that shares nothing reports 0 again

  Scenario: A cancel during a 2,000-token prefill ends the stream within a chunk or two
    Given a worker with 2 slots and --batch 64 on a 4096-context model
    When a 2,000-token prompt is prefilled once to measure it, and then again with a DELETE sent as soon as its stream starts
    Then the second stream ends with stop_reason CANCELLED and no tokens
    And the end arrives within a quarter of the prefill's time after the DELETE

  Scenario: A long prefill delays the running streams by about one chunk
    Given a worker with 2 slots and --batch 32 on a 4096-context model
    When one stream generates while a 2,000-token prompt is prefilled beside it
    Then the running stream's largest gap between two tokens during the prefill is under a fifth of the prefill's time

  Scenario: A sequence that fills the context ends with CONTEXT_FULL
    Given a worker with a 64-token context on the bundled model
    When a prompt asks for 200 tokens
    Then the started event says the effective max_tokens with a warning naming the 200 asked for
    And the end event says stop_reason CONTEXT_FULL and tokens_out is what the context left

  Scenario: Shutdown with a client that stopped reading ends in time
    Given a worker with 2 slots on a 4096-context model
    When a stream of 2,000 tokens is opened by a client that reads nothing and the worker gets SIGTERM
    Then the worker exits with 0 within 10 seconds
