# A fixture of tests/runner.bats: this file does not parse, on purpose.
@test "never runs" {
    if true; then
}
