Feature: The hive as the node's OpenAI endpoint
  POST /v1/chat/completions and POST /v1/completions on the hive go to a worker serving the
  request's model, spawned on demand, and the worker's response is relayed byte for byte as it
  is generated; GET /v1/models serves both the hive's list and OpenAI's (docs/hive.md).

  Background:
    Given a fresh RBEE_HOME with a small GGUF file
    And rbee-hive runs in local mode, using mock-worker

  Scenario: A cold request spawns a worker, waits for it and relays its answer
    Given no worker runs
    When a client posts a chat completion for the file's model
    Then the hive spawns one worker for that model and answers with the worker's chat.completion

  Scenario: A warm request reuses the worker
    Given a worker for the model has answered a request
    When a second request for the same model arrives
    Then the same worker answers it and no other worker is spawned

  Scenario: Two concurrent requests share a worker with two slots
    Given workers get 2 slots
    When two streaming requests for the model run at the same time
    Then both complete, their streams overlap in time, and one worker served both

  Scenario: An unknown model gets 404 in OpenAI's error shape
    When a client asks for the model "gpt-4" or for a file that does not exist
    Then the answer is 404 with error.code "model_not_found", error.type, error.param "model" and error.message

  Scenario: A streamed answer arrives incrementally
    Given mock-worker produces a token every 100 ms
    When a client streams a chat completion of 6 tokens through the hive
    Then the chunks are OpenAI chat.completion.chunk events ending with [DONE]
    And their arrival times span most of the generation instead of coming in one burst

  Scenario: A client that gives up while the worker loads ends its wait
    Given mock-worker never becomes ready
    When a client sends a chat completion and hangs up after 300 ms
    Then the hive stops waiting for it at once and counts no request in flight
    And a request that stays gets 503 "timeout" once the load timeout passes

  Scenario: A client that disconnects mid-stream cancels the worker's job
    Given mock-worker produces a token every 100 ms
    When the client hangs up after 2 chunks
    Then the worker records that its client left before the end

  Scenario: A full worker with no queue gives 503 in OpenAI's error shape
    Given the hive runs with --queue 0 and workers with 1 slot
    And one streaming request holds the worker's slot
    When a second request for the model arrives
    Then it gets 503 with error.code "all_slots_busy" and Retry-After

  Scenario: A request beyond the slots waits in the queue
    Given workers with 1 slot and the default queue
    And one streaming request holds the worker's slot
    When a second request arrives
    Then it waits until the first one ends and then gets the worker's answer

  Scenario: GET /v1/models serves the hive's list and OpenAI's list together
    Given the bundled model is installed
    When a client sends GET /v1/models
    Then the body has the hive's "models" array and OpenAI's "object":"list" with "data" entries of id, object "model", created and owned_by
    And rbee models list still prints the catalog

  Scenario: The OpenAI routes need the bearer token in network mode
    Given the hive runs in network mode with a token
    Then a chat completion without the token gets 401 and one with it gets 200

  Scenario: A relayed request counts as activity for the idle timeout
    Given the hive runs with a 2 second idle timeout
    When requests are relayed to the worker for longer than the idle timeout
    Then the worker is not shut down while they run, and is shut down once idle long enough

  Scenario: The real worker answers through the hive, cold then warm
    Given rbee-hive with the real llm-worker-rbee and the bundled model, no worker running
    When a client posts a completion for "kjv" through the hive, then the same again
    Then the first spawns a worker and both get the same text_completion from that one worker
    And a streamed completion through the hive arrives as chunks spread over the generation
    And a greedy chat completion through the hive gets the same text as from the worker directly
