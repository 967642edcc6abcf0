Feature: rbee chat
  An interactive multi-turn chat with a model through the hive's OpenAI route: the phases of
  rbee infer find or start the hive and the worker, then every turn sends the whole
  conversation and streams the reply (docs/keeper.md).

  Background:
    Given rbee-hive runs in local mode with mock-worker and a small GGUF file

  Scenario: Lines from a pipe are turns and the second turn carries the first
    When "first" and "second" are piped into rbee chat with a system prompt
    Then each reply is printed on its own line and rbee chat exits 0 at the end of input
    And the second request's messages are the system prompt, "first", the first reply and "second"
    And the phase lines were shown once

  Scenario: On a terminal the reply streams and Ctrl+C stops only the reply
    Given rbee chat runs on a pseudo-terminal and mock-worker produces a token every 100 ms
    When the user types a message at the "> " prompt
    Then the reply appears token by token
    When the user presses Ctrl+C in the middle of the reply
    Then the reply stops, the worker's stream is closed, and the prompt returns
    When the user types /bye
    Then rbee chat exits 0

  Scenario: A bad option is a one-line error
    When rbee chat is given an unknown option
    Then it prints one line naming the option and exits 1

  Scenario: rbee chat with the real worker on the bundled model
    Given no hive runs on this machine
    When two lines are piped into rbee chat
    Then an ephemeral hive starts the real worker, two replies are printed and rbee chat exits 0
    And nothing it started is left running
