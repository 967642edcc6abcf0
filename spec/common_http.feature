Feature: The HTTP layer shared by hive and worker
  Routing, the error envelope, limits, correlation ids and bearer authentication behave the
  same in every daemon.

  Scenario: Unknown routes get 404 in the error envelope
    Given a server with the route GET /v1/health
    When a client sends GET /v1/nope
    Then the status is 404 and the body is {"error":{"code":"NOT_FOUND",...}}

  Scenario: A known path with another method gets 405
    Given a server with the route GET /v1/health
    When a client sends DELETE /v1/health
    Then the status is 405 with code "METHOD_NOT_ALLOWED"

  Scenario: Path parameters are passed to the handler
    Given a server with the route GET /v1/jobs/{id}/stream
    When a client sends GET /v1/jobs/job-42/stream
    Then the handler sees the parameter "job-42"

  Scenario: A body over the limit gets 413
    Given a server with a 1024-byte body limit
    When a client posts 4096 bytes of JSON
    Then the status is 413 with code "PAYLOAD_TOO_LARGE"
    And the server still answers the next request

  Scenario: A body that is not JSON by content type gets 415
    Given a server with the route POST /v1/echo
    When a client posts "a=b" as application/x-www-form-urlencoded
    Then the status is 415 with code "UNSUPPORTED_MEDIA_TYPE"

  Scenario: The correlation id is echoed or generated
    Given a server with the route GET /v1/health
    When a client sends X-Correlation-ID "abc-123"
    Then the reply carries X-Correlation-ID "abc-123"
    And a request without one gets a generated id of 36 characters

  Scenario Outline: Bearer authentication in network mode
    Given a server with the token "s3cret" and a protected route
    When a client sends the Authorization header <header>
    Then the status is <status> with code <code>

    Examples:
      | header            | status | code              |
      | (none)            | 401    | MISSING_API_KEY   |
      | Bearer wrong      | 401    | INVALID_API_KEY   |
      | Basic czNjcmV0    | 401    | INVALID_API_KEY   |
      | Bearer s3cret     | 200    | -                 |

  Scenario: Public routes need no token
    Given a server with the token "s3cret" and the public route GET /v1/health
    When a client sends GET /v1/health without a token
    Then the status is 200

  Scenario: Authorization headers are parsed strictly
    Given the header values "Bearer abc", "bearer  abc ", "Bearer", "Bearer a b", "Token abc"
    When each is parsed
    Then the tokens are "abc", "abc", malformed, malformed, malformed

  Scenario: Tokens are compared in constant time and fingerprinted for logs
    Given the token "s3cret"
    Then it equals "s3cret" and differs from "s3creT", "s3cre" and ""
    And its log fingerprint is the first 6 hex characters of its SHA-256

  Scenario: Field validation collects every error
    Given the body {"prompt": 5, "max_tokens": 99999, "temperature": "hot"}
    When the fields are extracted with their constraints
    Then 3 field errors are reported with constraints "type", "range" and "type"
    And the envelope code is "INVALID_REQUEST" and no value is echoed

  Scenario: The buffer refuses to grow past its maximum
    Given a buffer with a 16-byte maximum holding 10 bytes
    When 7 more bytes are appended
    Then the append fails with "too large" and the buffer still holds the 10 bytes

  Scenario: The JSON client retries a refused connection with backoff
    Given no server listens on a port
    When a client requests it with 3 attempts and a 50 ms backoff
    Then it fails with "cannot connect" after at least 150 ms

  Scenario: The JSON client gives up on a slow server at its total timeout and retries
    Given a route that answers only when the test lets it
    When the JSON client asks it with a 300 ms total timeout and 2 attempts 50 ms apart
    Then it returns "timed out" after about 650 ms, and the server saw 2 requests

  Scenario: Requests with ambiguous framing get 400
    When a request carries two Content-Length headers, equal or not, or one that is not a number
    Or an HTTP/1.1 request has no Host header
    Then the server answers 400 BAD_REQUEST in the error envelope before routing or authentication
    And an HTTP/1.0 request without Host is still served
