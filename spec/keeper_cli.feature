Feature: rbee infer as a user types it
  The options a llama.cpp or ollama user reaches for: the sampling knobs and stop strings are
  forwarded to the worker's job, the prompt may be a plain argument or come from stdin, and a
  bare path names a model file (docs/keeper.md).

  Background:
    Given rbee-hive runs in local mode with mock-worker and a small GGUF file

  Scenario: Sampling options and stop strings reach the worker
    When the user runs rbee infer "In the beginning" with --stop twice, --top-k, --top-p, --min-p and --repetition-penalty
    Then it exits 0 and the worker's job has the prompt, both stop strings and the four values

  Scenario: The prompt is read from stdin
    When a prompt is piped into rbee infer without a prompt, then with --prompt -
    Then each job's prompt is the piped text without its trailing newline

  Scenario: A bare path is a file model
    When the user runs rbee infer --model with the model's absolute path, without file:
    Then the hive is asked for file:<that path> and the run exits 0
