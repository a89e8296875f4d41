#!/usr/bin/env bats
# tests/run itself: its closing line "N passed, N failed, N skipped" counts each bats
# file's TAP on its own, and its exit status says whether anything failed. It runs
# here on the fixture files in tests/runner/ (not written by this file: bats would
# take their @test lines for its own). tests/run runs this file after the stages'
# (its name has no stage number, so the stages' glob does not pick it up twice).

RUN="$BATS_TEST_DIRNAME/run"
F="$BATS_TEST_DIRNAME/runner"        # the fixtures: small bats files, one case each

setup() {
    unset LAB_NO_SKIP       # .ci/run sets it for the whole suite; the tests here choose
}

# last_line: the closing line of what `run` captured.
last_line() {
    echo "${lines[${#lines[@]}-1]}"
}

@test "runner: passes, skips and failures counted apart, and a failure fails the run" {
    run "$RUN" "$F/pass.bats" "$F/skip.bats" "$F/fail.bats" "$F/syntax.bats"
    echo "$output"
    [ "$(last_line)" = "4 passed, 2 failed, 2 skipped" ]
    [ "$status" -ne 0 ]
}

@test "runner: passes and skips only: the run succeeds" {
    run "$RUN" "$F/pass.bats" "$F/skip.bats"
    echo "$output"
    [ "$(last_line)" = "3 passed, 0 failed, 2 skipped" ]
    [ "$status" -eq 0 ]
}

@test "runner: LAB_NO_SKIP=1 (CI) makes a skip fail the run, and says so" {
    LAB_NO_SKIP=1 run "$RUN" "$F/pass.bats" "$F/skip.bats"
    echo "$output"
    [ "$(last_line)" = "3 passed, 0 failed, 2 skipped" ]
    [ "$status" -ne 0 ]
    [[ "$output" == *"LAB_NO_SKIP=1: 2 skipped"* ]]
    LAB_NO_SKIP=1 run "$RUN" "$F/pass.bats"
    [ "$status" -eq 0 ]
}

@test "runner: a file that fails with no 'not ok' of its own is a failure, even after a file that had one" {
    # bats prints no TAP at all for a file that does not exist, and exits 1.
    run "$RUN" "$F/fail.bats" "$F/missing.bats" "$F/pass.bats"
    echo "$output"
    [ "$(last_line)" = "3 passed, 2 failed, 0 skipped" ]
    [ "$status" -ne 0 ]
    run "$RUN" "$F/missing.bats"
    echo "$output"
    [ "$(last_line)" = "0 passed, 1 failed, 0 skipped" ]
    [ "$status" -ne 0 ]
}

@test "runner: a failing setup_file fails the run" {
    run "$RUN" "$F/setup-file.bats"
    echo "$output"
    [ "$(last_line)" = "0 passed, 1 failed, 0 skipped" ]
    [ "$status" -ne 0 ]
}

@test "runner: a run's variables reach its bats file" {
    run "$RUN" "LAB_FIXTURE=given $F/env.bats" "$F/env.bats"
    echo "$output"
    [ "$(last_line)" = "1 passed, 1 failed, 0 skipped" ]
}
