Feature: Worker HTTP API and request validation
  Every field of the inference request is validated and applied (docs/architecture.md §4.2); bad
  requests get the error envelope and leave the worker serving.

  Scenario: Health answers while loading and when ready
    Given a worker that is loading its model
    Then GET /health and GET /v1/health answer 200 {"status":"healthy","state":"loading"}
    And once loaded they answer "state":"idle"

  Scenario: Requests during loading get 503 LOADING
    Given a worker that is loading its model
    When a client posts a valid inference request
    Then the status is 503 with code "LOADING"

  Scenario: Loading progress is streamed
    Given a worker that is loading a model of 6 layers
    When a client reads GET /v1/loading/progress
    Then it sees {"stage":"loading","layers_loaded":n,"layers_total":6} with n rising, then {"stage":"ready"} and [DONE]

  Scenario Outline: Bad inference requests get 400 with the field named
    When a client posts <body> to /v1/inference
    Then the status is <status> with code <code> naming the field <field>
    And the worker still serves the next valid request

    Examples:
      | body                                         | status | code            | field              |
      | {"prompt":                                   | 400    | INVALID_JSON    | -                  |
      | []                                           | 400    | INVALID_REQUEST | -                  |
      | {}                                           | 400    | INVALID_REQUEST | prompt             |
      | {"prompt":""}                                | 400    | INVALID_REQUEST | prompt             |
      | {"prompt":7}                                 | 400    | INVALID_REQUEST | prompt             |
      | {"prompt":"x","max_tokens":0}                | 400    | INVALID_REQUEST | max_tokens         |
      | {"prompt":"x","max_tokens":2049}             | 400    | INVALID_REQUEST | max_tokens         |
      | {"prompt":"x","max_tokens":"5"}              | 400    | INVALID_REQUEST | max_tokens         |
      | {"prompt":"x","temperature":2.5}             | 400    | INVALID_REQUEST | temperature        |
      | {"prompt":"x","top_p":1.5}                   | 400    | INVALID_REQUEST | top_p              |
      | {"prompt":"x","top_k":-1}                    | 400    | INVALID_REQUEST | top_k              |
      | {"prompt":"x","min_p":-0.1}                  | 400    | INVALID_REQUEST | min_p              |
      | {"prompt":"x","repetition_penalty":3}        | 400    | INVALID_REQUEST | repetition_penalty |
      | {"prompt":"x","repetition_penalty":1e-300}   | 400    | INVALID_REQUEST | repetition_penalty |
      | {"prompt":"x","temperature":1e-300}          | 400    | INVALID_REQUEST | temperature        |
      | {"prompt":"x","stop":["a","b","c","d","e"]}  | 400    | INVALID_REQUEST | stop               |
      | {"prompt":"x","stop":[""]}                   | 400    | INVALID_REQUEST | stop               |
      | {"prompt":"x","seed":-1}                     | 400    | INVALID_REQUEST | seed               |
      | {"prompt":"x","job_id":""}                   | 400    | INVALID_REQUEST | job_id             |
      | {"prompt":"x","job_id":"a/b"}                | 400    | INVALID_REQUEST | job_id             |
      | a 40000-byte prompt                          | 400    | INVALID_REQUEST | prompt             |
      | a 2 MiB body                                 | 413    | PAYLOAD_TOO_LARGE | -                |

  Scenario: POST /v1/jobs answers 202 with the stream url
    When a client posts {"prompt":"In the beginning","job_id":"j-1"} to /v1/jobs
    Then the status is 202 with {"job_id":"j-1","sse_url":"/v1/jobs/j-1/stream"}
    And GET /v1/jobs/j-1/stream streams the tokens

  Scenario: Unknown job ids get 404 JOB_NOT_FOUND
    When a client sends GET /v1/jobs/nope/stream and DELETE /v1/jobs/nope
    Then both answer 404 with code "JOB_NOT_FOUND"

  Scenario: A duplicate job id is refused
    Given a job "j-dup" is queued or running
    When a client posts another job with job_id "j-dup"
    Then the status is 409 with code "JOB_EXISTS"

  Scenario: The same seed gives the same tokens
    When a client streams twice with {"prompt":"In the beginning","temperature":0.8,"seed":42,"max_tokens":24}
    Then both streams carry the same token texts

  Scenario: Metrics are exposed in Prometheus text
    Given a worker that has served 2 requests
    When a client sends GET /metrics
    Then the body has rbee_worker_requests_total{outcome="completed"} 2
    And it has rbee_worker_tokens_generated_total, rbee_worker_queue_depth, rbee_worker_slots_busy and time-to-first-token and decode-rate summaries
    And rbee_worker_resident_memory_bytes is at least the model file's size and below 256 MiB, within a factor of 2 of the worker's /proc/<pid>/statm

  Scenario: The KV cache type and the context are worker options
    When a worker starts with --kv-type q8_0 --ctx 100000 on the bundled model (trained on 512 tokens)
    Then its log warns "--ctx 100000 is more than the model's training context of 512 tokens; using 512"
    And its log shows the memory estimate with the q8_0 KV cache, and it serves a request
    And a worker started with --kv-type q4_0 exits 1 naming --kv-type

  Scenario: Shutdown by HTTP ends the worker
    When a client posts /v1/admin/shutdown (and, to a second worker, its alias /v1/shutdown)
    Then the reply is 200 {"status":"shutting_down"} and the worker exits 0 within 5 seconds

  Scenario: Every state change reaches the hive at once
    Given a worker with a heartbeat interval of one hour, reporting to mock-hive
    When 20 requests of 1 token each run one after another
    Then after each one mock-hive's latest heartbeat says state "idle" within 2 seconds

  Scenario: A job waiting for its stream holds the slot and the worker says busy
    Given a worker with --slots 1 --queue 0 reporting to mock-hive
    When a client posts a job to /v1/jobs and does not open its stream
    Then within 2 seconds /health and mock-hive's latest heartbeat say state "busy", and another job gets 503 ALL_SLOTS_BUSY
    When the client deletes the job with DELETE /v1/inference/{id}
    Then within 2 seconds both say "idle" again, and a second DELETE is 404

  Scenario: Heartbeats survive a hive that is down
    Given mock-hive answers heartbeats with 500 and then stops
    When the worker serves a request
    Then the request streams to completion without delay
    And heartbeats resume when mock-hive comes back
