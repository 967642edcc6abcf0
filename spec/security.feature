Feature: Authentication, local mode and hostile input
  Daemons in network mode demand a bearer token; local mode binds loopback only; no input
  crashes a daemon or leaks a secret (docs/architecture.md §3, §4).

  Scenario: A worker in network mode refuses to start without a token
    When llm-worker-rbee starts without --local-mode and without RBEE_API_TOKEN
    Then it exits 1 with a message naming --local-mode and RBEE_API_TOKEN

  Scenario: Local mode binds loopback only
    Given a worker started with --local-mode
    Then its listening socket is bound to 127.0.0.1

  Scenario: Protected worker routes demand the token in network mode
    Given a worker in network mode with RBEE_API_TOKEN "s3cret"
    Then POST /v1/inference without a token answers 401 MISSING_API_KEY
    And with "Bearer wrong" answers 401 INVALID_API_KEY
    And GET /health and GET /metrics answer 200 without a token

  Scenario: The token never appears in logs
    Given a worker in network mode with RBEE_API_TOKEN "s3cret-value"
    When it starts and serves a request with a wrong token
    Then its log shows the fingerprint of the token and never "s3cret-value"

  Scenario: Garbage on the socket does not hurt the daemon
    Given a running worker
    When a client sends 64 KiB of random bytes, a request line of 100 KiB and a half-closed request
    Then the worker stays up and answers the next /health with 200

  Scenario: Prompts are never echoed in errors
    When a client posts a prompt with an invalid max_tokens
    Then the error body does not contain the prompt text
