Feature: rbee infer, the 8-phase flow and its edge cases
  The keeper finds or starts a worker for (node, model) and streams the tokens to stdout as they
  arrive; [Phase N] lines and messages go to stderr (docs/architecture.md §5.1, §8).

  Background:
    Given a fresh RBEE_HOME

  Scenario: Cold start runs all 8 phases and streams tokens
    Given no hive is running
    When the user runs rbee infer --prompt "In the beginning" --max-tokens 200 --temperature 0
    Then stderr shows [Phase 1] to [Phase 8] in order and says an ephemeral hive was started
    And stdout receives the tokens one by one as the worker sends them (it grows in 3 or more steps while rbee runs)
    And a summary line "[Summary] 200 tokens in ... (... tokens/s)" ends stderr
    And the exit code is 0 and no hive or worker process is left (ephemeral mode)

  Scenario: Warm start reuses the idle worker
    Given a persistent hive with an idle worker for the bundled model in the worker cache
    When the user runs rbee infer twice
    Then the second run skips phases 2 to 7 and says "warm start"
    And the hive has spawned exactly 1 worker
    And a third run with --max-tokens 600 warns before the summary that the context leaves fewer, and stops with CONTEXT_FULL

  Scenario: A catalog hit skips the download
    Given the model hf:test/kjv/model.gguf is in the hive's catalog
    When the user runs rbee infer --model hf:test/kjv/model.gguf
    Then phase 3 says the model is already available and the file server gets no request

  Scenario: A download shows progress
    Given HF_ENDPOINT points at a local file server with the bundled model as hf:test/kjv/model.gguf
    When the user runs rbee infer --model hf:test/kjv/model.gguf
    Then phase 3 prints at least 3 download progress lines (percent, MB, MB/s) and the tokens stream afterwards

  Scenario: EC1 the hive is unreachable
    When the user runs rbee infer --hive http://127.0.0.1:<closed port>
    Then it retries after 1 and 2 seconds, each time with a message
    And after 3 attempts stderr says "Cannot connect to" the node "after 3 attempts" with a suggestion
    And the exit code is 1

  Scenario: EC2 the download fails
    Given the file server answers 500 for every request
    When the user runs rbee infer --model hf:test/broken/model.gguf
    Then stderr names DOWNLOAD_FAILED and the last error (HTTP 500) and the exit code is 1

  Scenario: EC3 not enough RAM
    Given the hive's RAM limit is overridden to 1 MB for the test
    When the user runs rbee infer
    Then stderr shows the required and available MB and suggests a smaller quantization, exit 1
    And it shows the estimate's parts: the weights, the KV cache with its context and type, and the buffers

  Scenario: EC4 the worker dies mid-stream
    When the worker is killed with SIGKILL after 5 tokens of a 2000-token request
    Then stderr says "SSE stream closed unexpectedly" and "Tokens generated: n / 2000"
    And the partial output is saved to a file under RBEE_HOME whose path is printed
    And the exit code is 1 and the hive removes the worker

  Scenario: EC5 Ctrl+C cancels the job
    When the user sends SIGINT to rbee infer after 5 tokens of a 2000-token request
    Then the keeper sends DELETE for the job and the worker logs its cancel request
    And the keeper prints "Canceled." and exits 130 within 5 seconds

  Scenario: EC6 the worker stays busy
    Given a cached worker that its hive lists as idle, but whose only slot another client takes first (mock-worker answering 503 ALL_SLOTS_BUSY)
    When the user runs rbee infer (a warm start on that worker)
    Then the keeper retries after 1, 2 and 4 seconds with a message each time
    And gives up with a suggestion and exit code 1

  Scenario: EC7 the worker never becomes ready
    Given the hive spawns a mock-worker that never becomes ready
    When the user runs rbee infer --ready-timeout 3
    Then stderr says "Model loading timeout" with the last known progress (4/4 layers) and a suggestion, exit 1
    And the keeper gives up between 3 and 9 seconds after it started

  Scenario: EC8 the hive reports another version
    Given a hive that reports version "9.9.9"
    When the user runs rbee infer
    Then stderr shows both versions ("0.1.0" and "9.9.9") and how to upgrade, exit 1

  Scenario: EC9 a wrong API key
    Given a hive in network mode with token "right"
    When the user runs rbee infer with RBEE_API_TOKEN "wrong"
    Then stderr says "Authentication failed" and where the token is configured, exit 1
    And the token itself is not printed

  Scenario: EC10 an idle worker is shut down and the next run is a cold start
    Given a persistent hive with a 2 second idle timeout
    When the user runs rbee infer, waits until the worker is gone and runs it again
    Then the second run says the cached worker is gone and performs a cold start

  Scenario: EC11 the backend is not on the node
    When the user runs rbee infer --backend cuda
    Then stderr says "Backend unavailable" with requested "cuda" and available "cpu", exit 1

  Scenario: JSON output prints one object per event
    When the user runs rbee infer --json --max-tokens 8
    Then stdout has one JSON object per line: phase events, token events and a final summary
    And stderr is empty

  Scenario: Bad arguments give a one-line error
    When the user runs rbee infer --max-tokens zero
    Then stderr has one line naming --max-tokens and the exit code is 1
    And without --prompt stderr has one line saying --prompt is required

  Scenario: A file model in any folder runs through an ephemeral hive
    Given a copy of the bundled model in a folder of its own
    When rbee infer runs with --model file:<that copy> and no hive running
    Then the ephemeral hive is allowed that folder (--models-dir) and the tokens stream
