Feature: Help and version on every command
  Every binary and every subcommand answers -h/--help with its usage, listing every option of
  its table, on stdout with exit 0; every binary answers --version. The help is built by rb_args
  from the same tables the parser uses, and names no file outside an installation.

  Scenario: Every command prints its help and every binary its version
    When each binary and each of its subcommands runs with --help, then with -h
    Then it exits 0 within the deadline, stdout starts with "usage: <the command>" and names every option of its table
    And every subcommand a group's help lists is walked too
    And each binary's --version prints "<binary> <version>" and exits 0

  Scenario: A bad option is one line on stderr
    When each command runs with an option it does not know
    Then stderr is one line naming the command and the option, stdout is empty, and the exit code is the documented one
