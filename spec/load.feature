Feature: Load
  The daemons keep serving under a flood of held connections (issue 15, docs/reliability.md).

  Scenario: Held slow connections do not starve streaming clients
    Given a mock-worker under a soft open-file limit of 1024
    When 2000 connections from 127.0.0.2 and up each hold a partial request
    And 50 clients stream 3 inferences each meanwhile
    Then every stream completes and the first-byte p99 is under 200 ms

  Scenario: Concurrent streams against a small queue complete or get 503
    Given the real worker on the bundled model with --slots 2 --queue 16
    When 200 clients each open an inference stream at once
    Then every request either streams to an end event and [DONE] or gets 503 ALL_SLOTS_BUSY
    And no request is reset, answered empty or left hanging

  Scenario: Requests in waves leave descriptors and memory flat
    Given the real worker on the bundled model with --slots 2 --queue 16
    When 2000 requests arrive in waves of 20 (streams, abandoned streams, health checks, bad requests)
    Then every request gets its expected answer
    And the worker's open descriptors after the last wave are those after the first within 2
    And its RSS grew by less than 8 MiB from the first wave to the last

  Scenario: A stalled reader does not stop another client's stream
    Given the real worker on the bundled model with --slots 2 --queue 16
    When a client with a 1 KiB receive buffer opens a long stream and reads nothing
    Then another client's stream completes meanwhile
    And the stalled client, once it reads, gets its whole stream

  Scenario: A half-closed request still gets its whole stream
    Given the real worker on the bundled model
    When 20 clients each send a request and shut down their writing side
    Then every one of them gets the whole stream with an end event and [DONE]

  Scenario: A worker killed mid-stream ends the client's stream at once
    Given a client reading an inference stream from the real worker
    When the worker is killed with SIGKILL after the first token
    Then the client's connection ends within 5 seconds, without [DONE]

  Scenario: Held slow connections do not starve the real worker's clients
    Given the real worker under a soft open-file limit of 1024
    When 2000 connections from 127.0.0.2 and up each hold a partial request
    And 10 clients stream 3 rounds of inferences meanwhile
    Then every stream completes

  Scenario: Held slow connections do not take the hive down, and its monitor keeps its worker
    Given a hive with a 1 s heartbeat interval and one worker of 64 slots spawned on it
    When 2000 connections from 127.0.0.2 and up each hold a partial request to the hive
    And 20 clients stream 3 chat completions each through the hive meanwhile
    Then every stream completes with a first-byte p99 under 200 ms
    And while five more heartbeats come through the flood the worker stays listed with the same pid, and afterwards it is alive and the hive log has no "killing it"

  Scenario: SIGTERM with workers stops every worker and the hive exits 0
    Given a hive with two workers and a client streaming 200 tokens through it
    When the hive gets SIGTERM
    Then it exits 0, both worker processes are gone and nothing answers on their ports or the hive's
    And the client's stream ends within 5 s of the hive's exit, not a hang
