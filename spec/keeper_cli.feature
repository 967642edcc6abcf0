Feature: rbee as a user types it
  The options a llama.cpp or ollama user reaches for: the sampling knobs and stop strings are
  forwarded to the worker's job, the prompt may be a plain argument or come from stdin, and a
  bare path names a model file. Lists and status come as JSON documents for scripts, a worker
  id may be shortened to a unique beginning, and the worker cache never forgets a worker its
  hive did not say is gone (docs/keeper.md).

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

  Scenario: Lists and status are JSON documents with --json
    When the user runs rbee workers list, rbee models list and rbee hive status with --json
    Then each prints one JSON document on stdout with the facts of its text output and exits 0

  Scenario: A unique beginning of a worker id selects the worker
    Given the hive runs two workers
    When the user runs rbee workers health and shutdown with --id and a part of an id
    Then a unique beginning selects its worker, a shared one is a one-line error naming both ids and exits 1, and an unknown one is the not-found error

  Scenario: A cached worker stays cached until its own hive says it is gone
    Given rbee infer registered a worker of a hive in network mode
    When the next runs meet a wrong token, another program on the hive's URL and nobody there
    Then each says why the cached worker is not reused, the entry stays, and a run with the right token through http://LOCALHOST:PORT/ is a warm start

  Scenario: rbee models rm removes a downloaded model
    Given a hive whose hub serves hf:org/repo/model.gguf, downloaded with rbee models download
    When the user runs rbee models rm --hive <url> hf:org/repo/model.gguf
    Then it prints "Removed hf:org/repo/model.gguf from <url> (3.1 MB freed: <path>)", exits 0 and the file is gone
    And a second rm exits 1 with the hive's MODEL_NOT_FOUND reason and a Suggestion naming rbee models list

  Scenario: Download retries are shown as they happen and a failure that is not retried says so
    Given a hive whose hub answers the model's first two requests with 503
    When the user runs rbee models download for it
    Then stderr shows "Download attempt 1/6 failed: ...; retrying in ..." and attempt 2/6 before the download completes
    When the hub answers 404 instead
    Then the download fails at once: no "retrying" line, and "This failure is not retried"

  Scenario: An ambiguous repository lists its GGUF files
    Given a hub whose org/repo holds a.gguf and b.gguf and no Q4_K_M file
    When the user runs rbee models download hf:org/repo
    Then it exits 1 and stderr lists hf:org/repo/a.gguf and hf:org/repo/b.gguf, with a Suggestion naming --file a.gguf

  Scenario: A file that is not GGUF is refused at phase 3 with what is wrong with it
    Given a file bad.gguf holding text in the hive's models folder
    When the user runs rbee infer --model file:<that path>
    Then it exits 1 at phase 3: no worker is started, and the error is the hive's NOT_GGUF naming what is wrong with the file
