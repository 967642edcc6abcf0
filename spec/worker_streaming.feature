Feature: Worker token streaming in real time
  llm-worker-rbee answers an inference request at once with an SSE stream and sends every
  token the moment its generation thread samples it (docs/architecture.md §4.3, §5.3).

  Background:
    Given mock-hive listens on a free port
    And llm-worker-rbee runs the bundled model in local mode reporting to mock-hive

  Scenario: The worker reports to its hive and becomes ready
    When the worker starts
    Then mock-hive receives a heartbeat within 2 seconds
    And mock-hive receives the ready callback with the worker's url and model_ref
    And GET /v1/ready answers {"ready":true,"state":"idle","model_loaded":true}

  Scenario: Response headers arrive before generation starts
    When a client posts {"prompt":"In the beginning","max_tokens":64} to /v1/inference
    Then the response headers arrive in under 100 ms
    And the content type is text/event-stream

  Scenario: The first token arrives within 2 seconds
    When a client posts {"prompt":"In the beginning","max_tokens":64,"temperature":0}
    Then a "started" event comes first
    And the first "token" event arrives within 2 seconds of the request

  Scenario: A queued request gets its headers before its generation starts
    Given a worker with one slot busy generating a long reply
    When a second client posts a request, which waits in the queue
    Then its response headers arrive while the first reply is still being generated
    And its "started" event and its first token come only after the first reply ended

  Scenario: Tokens arrive spread over the generation
    When a client streams 200 tokens with temperature 0
    Then every "token" event carries sampled_us, the generation thread's clock when it was sampled
    And the client, reading the same monotonic clock, receives at least 90% of the tokens before the last one is sampled
    And each token reaches the client within a quarter of the generation time of it being sampled
    And the "i" fields count 0, 1, 2, ... without gaps

  Scenario: The stream ends with end and DONE
    When a client streams with max_tokens 16
    Then the last event before [DONE] is "end" with tokens_out 16 and stop_reason "MAX_TOKENS"
    And "end" carries prompt_tokens, decode_time_ms, ttft_ms and tokens_per_sec

  Scenario: Closing the socket mid-stream cancels generation
    When a client reads 5 tokens of a 2000-token request and closes the socket
    Then the worker's metrics show the job cancelled within a few tokens
    And the next request streams to completion

  Scenario: Four concurrent requests with two slots all complete
    Given the worker runs with --slots 2
    When 4 clients stream 32 tokens each at the same time
    Then all 4 streams end with "end" and [DONE]
    And each stream's "i" sequence is 0..31

  Scenario: A full queue answers 503 ALL_SLOTS_BUSY
    Given the worker runs with --slots 1 --queue 1
    And one long request is running and another waits in the queue
    When a third request arrives
    Then it is answered 503 with code "ALL_SLOTS_BUSY", slots_total 1 and slots_busy 1
    And cancelling the two long jobs ends both streams with stop_reason "CANCELLED"

  Scenario: A job whose stream is never opened is cancelled
    Given the worker runs with a 1 second stream-open timeout
    When a client posts to /v1/jobs and never opens the sse_url
    Then the job is cancelled within 3 seconds and the slot serves the next request

  Scenario: DELETE cancels a running job
    When a client streams a 2000-token job and sends DELETE /v1/jobs/{id}
    Then the stream ends with "end" stop_reason "CANCELLED" and [DONE]

  Scenario: Stop strings end the stream without being emitted
    When a client streams with stop ["LORD"] and temperature 0
    Then the stream ends with stop_reason "STOP_SEQUENCE"
    And no token text contains "LORD"

  Scenario: A multi-byte character split over tokens is sent whole
    When the model emits the bytes of "é" as two byte tokens
    Then one token event carries "é" and no event carries a partial UTF-8 sequence

  Scenario: SIGTERM ends the worker cleanly
    Given a stream is in progress
    When the worker receives SIGTERM
    Then the stream ends with "end" or "error" and [DONE]
    And the worker exits 0 within 5 seconds leaving its port free
