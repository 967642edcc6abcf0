Feature: Load
  The daemons keep serving under a flood of held connections (issue 15, docs/reliability.md).

  Scenario: Held slow connections do not starve streaming clients
    Given a mock-worker under a soft open-file limit of 1024
    When 1500 connections from 127.0.0.2 and up each hold a partial request
    And 10 clients stream 3 inferences each meanwhile
    Then every stream completes and the first-byte p99 is under 1 second
