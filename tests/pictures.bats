#!/usr/bin/env bats
# make pictures keeps working: one timeline drawn from a real run of 04-select, and
# the five-models figure, each a well-formed SVG with the rows it must have.

load helpers
bats_require_minimum_version 1.5.0     # for "run !"

@test "pictures: 04-select's timeline has a row per client and the server's thread" {
    out="$BATS_TEST_TMPDIR/timeline.svg"
    run "$LAB_ROOT/tests/pictures/draw" 04-select/server "$out"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [ "$(head -c 4 "$out")" = "<svg" ]
    [ "$(tail -n 1 "$out")" = "</svg>" ]
    # every element opened is closed (each is one line: <x .../> or <x ...>...</x>)
    run ! grep -v -E '^<(svg|/svg>|defs>)|/>$|</[a-z]+>$' "$out"
    for row in "client A" "client B" "client C"; do grep -q ">$row</text>" "$out"; done
    # each client's reply was read (a green tick per reply) and nothing was lost
    [ "$(grep -c 'stroke="#1e7b34"' "$out")" -ge 5 ]
    run ! grep -q 'stroke="#d62728"' "$out"
    if command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null; then
        grep -q '>the one thread (' "$out"
        grep -q '>fds per call: handed / ready</text>' "$out"
    fi
    [ "$(wc -c <"$out")" -lt 40000 ]
}

@test "pictures: the five-models figure has its five columns" {
    out="$BATS_TEST_TMPDIR/five.svg"
    "$LAB_ROOT/tests/pictures/five-models" "$out"
    [ "$(head -c 4 "$out")" = "<svg" ]
    [ "$(tail -n 1 "$out")" = "</svg>" ]
    run ! grep -v -E '^<(svg|/svg>)|/>$|</[a-z]+>$' "$out"
    for model in "1 blocking" "2 non-blocking" "3 multiplexing" "4 signal-driven" "5 asynchronous"; do
        grep -q ">$model</text>" "$out"
    done
}
