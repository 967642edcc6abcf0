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

  Scenario: Connections beyond the total or per-address limit are refused at once
    Given a server allowing 6 connections in all and 3 from one address
    When 3 connections from 127.0.0.1 hold partial requests
    Then a 4th from 127.0.0.1 is closed within 1 second without a reply
    And a request from 127.0.0.2 is served
    When 3 more connections from 127.0.0.2 hold partial requests
    Then a connection from 127.0.0.3 is closed within 1 second without a reply
    And once the held connections close, 127.0.0.1 is served again

  Scenario: A request not complete within the request deadline is answered 408 and closed
    Given a server with a 600 ms request deadline
    When a client sends a request's header lines one byte every 50 ms
    Then the server answers 408 REQUEST_TIMEOUT and closes the connection between 500 and 2000 ms after it connected

  Scenario: A stream that lasts longer than the request deadline is not cut
    Given a server with a 600 ms request deadline
    When a route streams 5 events 300 ms apart
    Then the client receives all 5 and the end of the stream

  Scenario: A route table answers a call made in-process without a socket
    When rb_http_call runs POST /v1/echo with a JSON body on the test's route table
    Then it gets status 200 and the body back, and a {id} parameter reaches its handler
    And an unknown path gets 404, a known path with another method 405, a handler that sets no reply 500
    And a stream reply's channel is closed at once, so its producer stops
