Feature: Server-sent events: frame parsing, the event channel and real-time streaming
  Every stream in rbee (tokens, loading progress, download progress) is SSE. The parser must
  accept any slicing of the byte stream, and the server must hand each event to the client
  the moment the producer pushes it.

  Scenario: An event split across reads is delivered once, whole
    Given the stream "data: {\"a\":1}\n\n" arrives one byte per read
    When the parser is fed every read
    Then exactly 1 event is delivered with data "{\"a\":1}"

  Scenario: CRLF and CR line endings are accepted
    Given the stream "data: x\r\n\r\ndata: y\r\rdata: z\n\n"
    When the parser is fed the stream
    Then the events "x", "y" and "z" are delivered in order

  Scenario: Comments are counted and never delivered
    Given the stream ": keep-alive\n\ndata: a\n\n"
    When the parser is fed the stream
    Then 1 event "a" is delivered and 1 comment is counted

  Scenario: Multi-line data is joined with newlines
    Given the stream "data: one\ndata: two\nevent: note\n\n"
    When the parser is fed the stream
    Then 1 event named "note" is delivered with data "one\ntwo"

  Scenario: An oversize line is refused
    Given a parser with a 64-byte line limit
    When a 65-byte line is fed
    Then the parser fails with "too large" and delivers nothing

  Scenario: A formatted event survives a round trip
    Given the payload "line1\nline2"
    When it is formatted as SSE and parsed back
    Then the parsed data equals the payload

  Scenario: A full channel blocks the producer until the consumer pops
    Given a channel holding at most 2 events with 2 queued
    When the producer pushes a third event with a 100 ms timeout
    Then the push times out
    And after the consumer pops one event the push succeeds

  Scenario: A closed channel refuses the next push
    Given a channel whose consumer has closed it
    When the producer pushes an event
    Then the push fails with "closed"

  Scenario: A finished channel drains before it ends
    Given a channel with 3 queued events and the producer finished
    When the consumer pops 4 times
    Then it receives the 3 events and then the end

  Scenario: Events arrive at the client as they are pushed
    Given an SSE server on loopback and a client reading its stream
    When the producer pushes 20 events 50 ms apart
    Then each event arrives at the client within 20 ms of being pushed
    And the stream ends with [DONE]

  Scenario: The producer learns of a client disconnect within one push
    Given an SSE server on loopback and a client reading its stream
    When the client closes the connection after 3 events
    Then the producer's next push fails with "closed"

  Scenario: A silent server trips the client's idle timeout
    Given an SSE server whose producer pushes nothing
    When the client reads with a 300 ms idle timeout
    Then the client returns "timed out" within 1 second instead of hanging

  Scenario: A stream closed without [DONE] is a protocol error, not a timeout
    Given an SSE server whose producer finishes without pushing [DONE]
    When the client reads the stream
    Then the client reports "closed without [DONE]"

  Scenario: A silent stream gets keep-alive comments
    Given an SSE server with a 200 ms keep-alive and a producer that waits 700 ms
    When the client reads the stream
    Then the client counts at least 2 keep-alive comments before the first event

  Scenario: A stream that never ends stops at the client's deadline
    Given a producer that pushes an event every 100 ms for 2 seconds and never sends [DONE]
    When the client reads with a 5000 ms idle timeout and a 500 ms deadline
    Then it returns "deadline" between 490 and 1000 ms, after receiving the events pushed until then

  Scenario: A client that half-closes its side still gets the whole stream
    Given a client that sends its request and then shuts down its sending side (as nc -N does)
    When the producer pushes 20 events 10 ms apart and [DONE]
    Then the client reads all 20 events and [DONE] before the server closes

  Scenario: A client that closes while the stream is silent is noticed before the next event
    Given a client that reads the response headers and then closes its socket
    When the producer stays silent for 3 seconds
    Then the server forgets the stream within 1 second and the producer's next push fails
  Scenario: A raw stream relays bytes as they are pushed
    Given a server whose handler answers 201 text/x-test with a raw stream of a channel
    When the producer pushes 10 chunks 50 ms apart
    Then the client receives exactly the pushed bytes, with no framing, spread over the pushes
    And the status and content type are the handler's

  Scenario: A raw stream's producer learns of a client disconnect
    Given a client reading a raw stream that hangs up after the first chunk
    Then the producer's next push fails with "closed"

  Scenario: A waiting handler learns that its client hung up
    Given a handler that waits before replying until its client hangs up
    When the client gives up after 300 ms
    Then the handler sees the hang-up
