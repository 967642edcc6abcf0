Feature: The worker's job queue
  Jobs wait in a bounded FIFO in front of the generation threads; cancel and shutdown never
  lose a job's stream (docs/architecture.md §5.3).

  Scenario: The queue admits slots plus queue capacity jobs
    Given a queue with 1 slot and a queue capacity of 2
    When 4 jobs are submitted
    Then 3 are admitted and the 4th is refused as busy

  Scenario: With queue capacity 0 a job is admitted only when a slot is free
    Given a queue with 1 slot and a queue capacity of 0
    When a job is popped by a generation thread and another job is submitted
    Then the second job is refused as busy until the first is done

  Scenario: Jobs are served in order
    Given jobs "a", "b" and "c" submitted in that order
    When a generation thread pops three times
    Then it receives "a", "b", "c"

  Scenario: A duplicate job id is refused
    Given a queued job "j-dup"
    When another job "j-dup" is submitted
    Then it is refused as already existing

  Scenario: Cancelling a queued job removes it and hands it back
    Given queued jobs "a" and "b"
    When "a" is cancelled
    Then "a" is returned with its cancel flag set and the next pop yields "b"

  Scenario: Cancelling a running job sets its flag
    Given a job "r" that a generation thread is running
    When "r" is cancelled
    Then its cancel flag is set and it stays registered until the thread is done

  Scenario: Shutdown wakes every waiting thread and returns the queued jobs
    Given 2 generation threads blocked in pop and then 2 queued jobs after one is running
    When the queue shuts down
    Then both threads return with no job, the 2 queued jobs are returned cancelled and later submits are refused

  Scenario: A job's stream can be opened once
    Given a job created by POST /v1/jobs
    When its stream is opened twice
    Then the first open succeeds and the second is refused, and a waiting generation thread wakes at the first
