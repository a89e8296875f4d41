# A fixture of tests/runner.bats: one test passes, one fails.
@test "passes" { true; }
@test "fails" { false; }
