Feature: Keeper commands besides infer
  Nodes, hives, workers and models are managed from the keeper (docs/architecture.md §1;
  docs/keeper.md).

  Background:
    Given a fresh RBEE_HOME

  Scenario: Adding a node tests SSH first
    Given RBEE_SSH points at a script that fails for host "down.example"
    When the user runs rbee setup add-node --name down --ssh-host down.example
    Then it fails with a message naming the host and nothing is saved in nodes.db
    And ssh was run with BatchMode=yes and ConnectTimeout=10

  Scenario: Nodes are added, listed and removed
    Given RBEE_SSH points at a script that succeeds
    When the user adds node "gpu1" with ssh host "10.0.0.5", user "rbee" and hive port 9090, lists and removes it
    Then list-nodes shows "gpu1 10.0.0.5 9090 rbee@10.0.0.5:22" and after removal it is gone
    And adding the same name twice or removing an unknown node fails

  Scenario: Hive start, status and stop on a node over ssh
    Given a node "local2" whose RBEE_SSH runs commands locally
    When the user runs rbee hive start, status and stop --node local2
    Then status reports the hive alive with its version, and after stop nothing listens
    And the token reached the node on ssh's standard input, not on its command line

  Scenario: Workers are listed, health-checked and shut down
    Given a persistent hive with one idle worker
    When the user runs rbee workers list, rbee workers health and rbee workers shutdown --id <id>
    Then the list shows the worker with its resident memory in MB, health shows "healthy" and the worker is gone afterwards

  Scenario: Models are listed and downloaded
    Given a local file server as HF_ENDPOINT
    When the user runs rbee models download hf:test/kjv/model.gguf and rbee models list
    Then the download shows at least 3 progress lines and the list has the model with its size in MB

  Scenario: A repository and a --file hint name the model
    Given a local file server as HF_ENDPOINT
    When the user runs rbee models download hf:test/kjv --file model.gguf
    Then it downloads hf:test/kjv/model.gguf and exits 0
    And --file with a reference that already names a file, or a name that is not a .gguf file, exits 1 with one line

  Scenario: Persistent mode keeps the hive and worker alive after the keeper exits
    Given the operator started rbee-hive daemon
    When rbee infer finishes
    Then the hive and the worker are still alive

  Scenario: A hive that cannot take its port says why
    Given another program answers HTTP on the hive's port
    When the user runs rbee hive status
    Then it says the program on the port is not a hive (404 Not Found) and suggests freeing the port
    When the user runs rbee hive start
    Then within seconds it says the hive exited, with the hive's own line "Address already in use"

  Scenario: Two nodes over real ssh
    Given two network namespaces "a" and "b", each joined by a veth pair on private addresses
    And in each the real sshd with its own host key, port and authorized_keys for a generated key
    When the user runs rbee setup add-node for both and rbee hive start --node over the real ssh client
    Then rbee infer --node a and --node b at the same time stream from the worker on each node
    And with node b's link down rbee infer --node b fails with EC1 "Cannot connect to b" after 3 attempts
    And with a wrong token rbee infer --node a fails with EC9 "Authentication failed", printing no token
    And rbee hive stop for both leaves nothing but sshd running in either namespace
    And without network namespaces or sshd the suite prints why and ctest reports it skipped

  Scenario: A port left in TIME_WAIT by a stopped hive counts as free
    Given a server on a loopback port that closed a connection first and then stopped listening
    Then the keeper's port check calls the port free, as the hive's own bind would succeed
    And a port with a listener is still taken
