# A fixture of tests/runner.bats: two tests that pass.
@test "passes" { true; }
@test "passes too" { true; }
