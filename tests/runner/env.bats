# A fixture of tests/runner.bats: passes only when its run sets LAB_FIXTURE=given.
@test "sees the variable its run was given" { [ "${LAB_FIXTURE:-}" = given ]; }
