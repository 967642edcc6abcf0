Feature: rbee-hive worker lifecycle
  The hive spawns workers, tracks them, removes the dead, stops the idle and leaves nothing
  behind when it stops (docs/architecture.md §3, §4.1, §5.2).

  Background:
    Given a fresh RBEE_HOME
    And rbee-hive runs in local mode with a 1 second monitor interval, using mock-worker

  Scenario: The hive answers health and capabilities
    When a client sends GET /v1/health and GET /v1/capabilities
    Then health is {"status":"alive","version":"0.1.0","api_version":"v1"}
    And capabilities list the backend "cpu" with ram_total_mb and ram_available_mb

  Scenario: Spawn, ready and list
    When a client posts {"model_ref":"file:<a GGUF model file>","backend":"cpu","device":0} to /v1/workers/spawn
    Then the reply has a worker_id "worker-<uuid>", a url on a port >= 8081 and state "loading"
    And within 5 seconds /v1/workers/list shows the worker "idle" with its pid

  Scenario: A worker killed with SIGKILL disappears within one monitor interval
    Given an idle worker
    When its process is killed with SIGKILL
    Then within 2 seconds /v1/workers/list no longer shows it and the hive log names it

  Scenario: A worker that exits at once is reported with its log tail
    When the hive spawns a worker that exits within 100 ms printing "bad model"
    Then the spawn answer is 500 with code "WORKER_START_FAILED" and a message containing "bad model"

  Scenario: A worker that never becomes ready is removed
    Given a load limit of 3 seconds
    When the hive spawns a mock-worker scripted never to become ready
    Then within 5 seconds the worker is killed and removed

  Scenario: A worker whose heartbeats stop is removed
    Given a heartbeat interval of 1 second
    When a mock-worker stops sending heartbeats
    Then within 4 seconds of its last heartbeat (two intervals, then the next tick) the worker is killed and removed

  Scenario: A worker that fails three health checks is removed
    Given a mock-worker whose /v1/health answers 500
    When the monitor has checked it three times
    Then the worker is killed and removed within 5 seconds and the hive log says "health checks failed"

  Scenario: A worker that is full is not taken for dead
    Given a mock-worker that allows 3 connections from one address
    When the test holds 3 partial requests to it, so the hive's health checks are closed at once
    Then after 4 health checks the worker is still listed and alive, and the hive log says it is full
    And a mock-worker whose /v1/health answers 503 is likewise kept after 4 checks

  Scenario: Idle workers are shut down after the idle timeout
    Given an idle timeout of 2 seconds
    When a worker stays idle
    Then within 4 seconds it is sent POST /v1/admin/shutdown and is gone from the list

  Scenario: Health checks do not count as activity
    Given an idle timeout of 2 seconds
    When the hive's monitor health-checks the idle worker every second
    Then the worker is still shut down between 2 and 4 seconds after it became idle

  Scenario: Shutting a worker down by request
    Given an idle worker
    When a client posts {"worker_id":"<id>"} to /v1/workers/shutdown
    Then the worker process exits and the list is empty

  Scenario: A worker that ignores the shutdown request and SIGTERM is killed
    Given an idle mock-worker scripted to ignore POST /v1/admin/shutdown and SIGTERM
    When a client posts {"worker_id":"<id>"} to /v1/workers/shutdown
    Then the hive sends SIGTERM after 8 seconds and SIGKILL 8 seconds later, logging both
    And the worker process is gone within 20 seconds and the list is empty

  Scenario: Worker options set on the hive reach every worker
    Given rbee-hive daemon --worker-slots 2 --worker-threads 1 --worker-ctx 64 --worker-kv-type q8_0
    When a worker is spawned
    Then it was started with --slots 2 --threads 1 --ctx 64 --kv-type q8_0 and the list shows slots_total 2
    And the list shows the worker's resident memory in rss_mb (at least 1 MB)
    And rbee-hive daemon --worker-slots 0 exits 2 naming the option, and so does --worker-kv-type q4_0

  Scenario: Unknown workers get 404
    When a client posts a heartbeat, a ready callback or a shutdown for "worker-unknown"
    Then the status is 404 with code "WORKER_NOT_FOUND"

  Scenario: Not enough RAM gives 507 with the numbers
    Given the hive believes only 1 MB of RAM is available (RBEE_HIVE_RAM_LIMIT_MB=1)
    When a client asks to spawn a worker for the bundled model
    Then the status is 507 with code "INSUFFICIENT_MEMORY" and details required_mb and available_mb

  Scenario: The memory check counts the KV cache at the workers' context and cache type
    Given a GGUF header shaped like Llama-3.1-8B (32 layers, 8 KV heads of 128, trained on 131072 tokens, no weights) and RAM limited to 2048 MB
    When a worker is spawned with the hive's default worker options
    Then it starts: the F16 cache of 4096 tokens (512 MB) fits
    When the hive runs with --worker-ctx 0 --worker-kv-type f32 and a worker is spawned
    Then the status is 507 with kv_cache_mb 32768, context 131072, kv_type "f32", required_mb above 32768, and a message that names the KV cache

  Scenario: An absent backend gives 503 with the available list
    Given the hive finds a GPU (a stand-in nvidia-smi on its PATH), which the CPU-only worker cannot use
    When a client asks to spawn a worker with backend "cuda"
    Then the status is 503 with code "BACKEND_UNAVAILABLE" and details.available ["cpu"]
    And rbee-hive detect --json lists the GPU under found_not_served, not under backends

  Scenario: SIGTERM stops every worker and leaves nothing behind
    Given two idle workers
    When the hive receives SIGTERM
    Then the hive exits 0 within 30 seconds
    And no worker pid is alive, no zombie remains and no worker port is bound
    And models.db is kept

  Scenario: A hive killed with SIGKILL leaves no worker behind
    Given an idle worker
    When the hive is killed with SIGKILL
    Then the worker receives SIGTERM from the kernel (parent-death signal) and exits within 5 seconds

  Scenario: The same lifecycle with the real worker and the bundled model
    Given rbee-hive uses the real llm-worker-rbee
    When a worker is spawned for the bundled model, streams one inference and the hive stops
    Then every step succeeds and no process is left

  Scenario: Network mode requires a token
    When rbee-hive daemon starts without --local-mode and without RBEE_API_TOKEN
    Then it exits 1 with a message naming --local-mode

  Scenario: Local mode refuses a non-loopback address
    When rbee-hive daemon starts with --local-mode --addr 0.0.0.0:<port>
    Then it exits 1 with a message saying local mode serves only on loopback, and nothing listens on the port

  Scenario: Network mode protects every route but health and metrics
    Given rbee-hive runs in network mode with RBEE_API_TOKEN "s3cret-token"
    When a client calls the routes of §4.1 without a token
    Then /v1/health and /metrics answer 200 and every other route answers 401
    And with the token a worker is spawned, reports ready with the token and is listed idle
    And the hive log shows the token's fingerprint, never the token

  Scenario: detect prints backends and devices
    When the user runs rbee-hive detect
    Then it prints "cpu" with the core count and, with --json, {"backends":["cpu"],"devices":{"cpu":1}}

  Scenario: Worker logs are rotated
    Given 25 old worker logs in $RBEE_HOME/logs and a log that is not a worker's
    When a worker is spawned
    Then the 20 newest worker logs are kept, the new worker's among them, the oldest are gone
    And the other log is untouched
