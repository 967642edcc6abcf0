Feature: Samplers
  Greedy, temperature, top-k, top-p, min-p, repetition penalty and seeded randomness behave
  as a llama.cpp user expects.

  Scenario: Temperature 0 is greedy
    Given logits [1.0, 3.0, 2.0]
    When sampling with temperature 0
    Then token 1 is chosen every time

  Scenario: Top-k keeps the k most likely tokens
    Given logits [4, 3, 2, 1] and top_k 2 with temperature 1
    When sampling 10000 times with seed 7
    Then only tokens 0 and 1 appear

  Scenario: Top-p keeps the smallest set reaching p
    Given probabilities [0.5, 0.3, 0.15, 0.05] and top_p 0.8
    When sampling 10000 times
    Then only tokens 0 and 1 appear

  Scenario: Min-p drops tokens below a fraction of the best
    Given probabilities [0.6, 0.3, 0.06, 0.04] and min_p 0.2
    When sampling 10000 times
    Then only tokens 0 and 1 appear

  Scenario: Repetition penalty lowers recently seen tokens
    Given logits [2.0, 1.9] and token 0 in the last 64 tokens with penalty 1.5
    When sampling greedily
    Then token 1 is chosen

  Scenario: Frequency and presence penalties subtract per occurrence and once
    Given logits [2.0, -1.0, 0.5, 1.0] and the window [0, 0, 1]
    When frequency penalty 0.5 and presence penalty 0.25 apply (after a repetition penalty 2)
    Then token 0 has 2.0 - 2 * 0.5 - 0.25 (2.0 / 2 - 1.25), token 1 -1.0 - 0.75 (-1.0 * 2 - 0.75)
    And unseen tokens keep their logits

  Scenario: Log-probabilities are the log-softmax of the model's logits
    Given logits [1, 2, 3, 2]
    When asking for the log-probability of token 0 and the top 3
    Then they equal logit - log(sum(exp(logits))), most likely first, ties by lower id

  Scenario: The same seed gives the same tokens
    Given temperature 0.8 and seed 42
    When sampling 100 tokens twice from fresh samplers
    Then both sequences are equal, and a different seed gives a different sequence

  Scenario: Sampled frequencies follow the softmax
    Given logits [0, ln 2, ln 3] at temperature 1
    When sampling 60000 times
    Then the frequencies are 1/6, 2/6 and 3/6 within 0.01

  Scenario: Stop strings are not emitted, even across tokens
    Given the stop string "LORD" and generated pieces "the L", "OR", "D said"
    When the text is streamed through the stop filter
    Then the emitted text is "the " and the stop reason is STOP_SEQUENCE
