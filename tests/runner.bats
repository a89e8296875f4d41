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

# tests/pitfalls (make pitfalls) on two patches of its own: one that changes only a
# comment, which no test can catch, and one that does not apply.
@test "pitfalls runner: a harmless patch is MISSED, one that does not apply is BROKEN, and both fail the run" {
    local root="$BATS_TEST_DIRNAME/.." src="$BATS_TEST_DIRNAME/../01-blocking/server.c"
    header() {
        printf '%s\n' "Pitfall: $1" "Test: tests/01-blocking.bats: 01 server -q: logs only the start line" \
            "Build: plain 01-blocking/server 01-blocking/client" ""
    }
    { header "a comment changed"
      diff -u --label a/01-blocking/server.c --label b/01-blocking/server.c \
          "$src" <(sed '2s/.*/ * a comment, changed/' "$src") || true; } >"$BATS_TEST_TMPDIR/harmless.patch"
    { header "a patch of a file that is not there"
      printf '%s\n' "--- a/01-blocking/nothing.c" "+++ b/01-blocking/nothing.c" "@@ -1 +1 @@" "-a" "+b"
    } >"$BATS_TEST_TMPDIR/stale.patch"
    run "$root/tests/pitfalls" "$BATS_TEST_TMPDIR/harmless.patch" "$BATS_TEST_TMPDIR/stale.patch"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "${lines[0]}" == "MISSED  "*"/harmless  (tests/01-blocking.bats: 01 server -q"*"passed)" ]]
    [[ "${lines[1]}" == "BROKEN  "*"/stale  (does not apply"* ]]
}
