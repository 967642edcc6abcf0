Feature: Package
  cmake --install and cpack -G DEB give an installation that works from any folder (issue 16,
  docs/hive.md "Installed layout").

  Scenario: The Debian package installs a working rbee
    Given the package built by cpack -G DEB from this build tree, extracted with dpkg-deb -x into a temporary root
    Then the root holds usr/bin/rbee, rbee-hive, llm-worker-rbee, usr/share/rbee/models/<the bundled model>, usr/share/doc/rbee/ and the rbee-hive.service unit, and no mock
    And the package depends on the runtime libraries, and the unit runs /usr/bin/rbee-hive with its token file and state folder
    When <root>/usr/bin/rbee infer runs from another folder with only RBEE_HOME and ports set
    Then it streams 8 tokens from the packaged model and exits 0

  Scenario: A build tree elsewhere finds its source tree's bundled model
    Given the build's rbee, rbee-hive and llm-worker-rbee copied to a folder outside the build and source trees
    When that rbee infer runs from another folder without RBEE_BUNDLED_MODEL
    Then its hive serves the source tree's models/kjv-5m-q8_0.gguf and 4 tokens stream, exit 0
