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

# tests/pitfalls (make pitfalls) on patches of its own: one that changes only a
# comment, which no test can catch; one that does not apply; one without a Shows:
# line; and one that its test catches, but whose Shows: the test's output lacks.
@test "pitfalls runner: a harmless patch is MISSED, a stale or headless one BROKEN, a catch without its symptom UNSEEN; each fails the run" {
    local root="$BATS_TEST_DIRNAME/.." src="$BATS_TEST_DIRNAME/../01-blocking/server.c"
    header() {      # header PITFALL [SHOWS]
        printf '%s\n' "Pitfall: $1" "Test: tests/01-blocking.bats: 01 server -q: logs only the start line" \
            "Build: plain 01-blocking/server 01-blocking/client"
        [ -z "${2:-}" ] || printf '%s\n' "Shows: $2"
        echo
    }
    # patch_of NAME SED: a patch of 01's server.c, edited by SED.
    patch_of() {
        diff -u --label a/01-blocking/server.c --label b/01-blocking/server.c \
            "$src" <(sed "$2" "$src") || true
    }
    { header "a comment changed" "anything"
      patch_of harmless '2s/.*/ * a comment, changed/'; } >"$BATS_TEST_TMPDIR/harmless.patch"
    { header "a patch of a file that is not there" "anything"
      printf '%s\n' "--- a/01-blocking/nothing.c" "+++ b/01-blocking/nothing.c" "@@ -1 +1 @@" "-a" "+b"
    } >"$BATS_TEST_TMPDIR/stale.patch"
    # -q no longer hides "connected": the test fails, but not with what Shows: wants.
    { header "connected logged under -q" "a symptom nobody prints"
      patch_of noisy '0,/verbosity >= 1/s//verbosity >= 0/'; } >"$BATS_TEST_TMPDIR/noisy.patch"
    { header "connected logged under -q, no Shows: line"
      patch_of noisy '0,/verbosity >= 1/s//verbosity >= 0/'; } >"$BATS_TEST_TMPDIR/headless.patch"
    run "$root/tests/pitfalls" "$BATS_TEST_TMPDIR/harmless.patch" "$BATS_TEST_TMPDIR/stale.patch" \
        "$BATS_TEST_TMPDIR/noisy.patch" "$BATS_TEST_TMPDIR/headless.patch"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "${lines[0]}" == "MISSED  "*"/harmless  (tests/01-blocking.bats: 01 server -q"*"passed)" ]]
    [[ "${lines[1]}" == "BROKEN  "*"/stale  (does not apply"* ]]
    [[ "$output" == *$'\n'"UNSEEN  "*"/noisy  (caught by tests/01-blocking.bats: 01 server -q"*"no line matching /a symptom nobody prints/)"* ]]
    [[ "${lines[-1]}" == "BROKEN  "*"/headless  (no Test:, Shows: or Build: line in its header)" ]]
}

@test "pitfalls runner: a live run (patches named) shows the symptom and the time; make pitfalls (none named) one line each" {
    local root="$BATS_TEST_DIRNAME/.." src="$BATS_TEST_DIRNAME/../01-blocking/server.c"
    { printf '%s\n' "Pitfall: the summary's count lost" "Seen: the summary says 0 connections" \
          "Shows: ^shutdown: served 0 connections" \
          "Test: tests/01-blocking.bats: 01 server -q: logs only the start line" \
          "Build: plain 01-blocking/server 01-blocking/client" ""
      diff -u --label a/01-blocking/server.c --label b/01-blocking/server.c \
          "$src" <(sed 's/^        served++;$/        served += 0;/' "$src") || true
    } >"$BATS_TEST_TMPDIR/uncounted.patch"
    grep -q '^+        served += 0;$' "$BATS_TEST_TMPDIR/uncounted.patch"
    # The test's grep for the summary fails silently: make it say what it saw.
    run "$root/tests/pitfalls" "$BATS_TEST_TMPDIR/uncounted.patch"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" =~ ^caught\ \ .*/uncounted\ \ by\ \ tests/01-blocking\.bats:\ .*\ \ \([0-9]+\.[0-9]\ s\)$ ]]
    [ "${lines[1]}" = "  Seen: the summary says 0 connections" ]
    [[ "$output" == *$'\n'"    | shutdown: served 0 connections, echoed 12 bytes"* ]]
    [ "${#lines[@]}" -le 18 ]
    PITFALLS_SHOW=0 run "$root/tests/pitfalls" "$BATS_TEST_TMPDIR/uncounted.patch"
    [ "${#lines[@]}" -eq 1 ]
}
