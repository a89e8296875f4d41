# A fixture of tests/runner.bats: one test passes, two skip.
@test "passes" { true; }
@test "skips" { skip "cannot run here"; }
@test "skips without a reason" { skip; }
