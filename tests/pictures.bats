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

@test "pictures: a client slow to read, drawn from 04 and from its blocking-send pitfall" {
    out="$BATS_TEST_TMPDIR/slow.svg" bad="$BATS_TEST_TMPDIR/slow-pitfall.svg"
    mkdir "$BATS_TEST_TMPDIR/ok" "$BATS_TEST_TMPDIR/bad"     # the plans, kept to read the times
    LAB_PICTURES_KEEP="$BATS_TEST_TMPDIR/ok" run "$LAB_ROOT/tests/pictures/draw" 04-select/server "$out" slow-reader
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    LAB_PICTURES_KEEP="$BATS_TEST_TMPDIR/bad" run "$LAB_ROOT/tests/pictures/draw" \
        -p 04-select/pitfalls/blocking-send.patch 04-select/server "$bad" slow-reader
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    for f in "$out" "$bad"; do
        [ "$(tail -n 1 "$f")" = "</svg>" ]
        run ! grep -v -E '^<(svg|/svg>|defs>)|/>$|</[a-z]+>$' "$f"
        for row in "client S" "client A" "client B" "owed to S"; do grep -q ">$row</text>" "$f"; done
        grep -q '>sends 16 MiB, reads nothing</text>' "$f"
        # every line of A and B was answered (a green tick per reply), and S's replies came
        [ "$(grep -c 'stroke="#1e7b34"' "$f")" -eq 6 ]
        run ! grep -q 'stroke="#d62728"' "$f"
    done
    # The longest wait of A or B for a reply, in ms, from the plan's send and reply ticks.
    slowest() {
        awk '$1 == "tick" && ($2 == "cA" || $2 == "cB") {
                 if ($4 == "send") sent[$2] = $3
                 else if ($4 == "reply" && $3 - sent[$2] > max) max = $3 - sent[$2]
             } END { printf "%d\n", max }' "$1/plan"
    }
    echo "slowest reply: $(slowest "$BATS_TEST_TMPDIR/ok") ms as it is, $(slowest "$BATS_TEST_TMPDIR/bad") ms with the pitfall"
    # As it is, S costs the others nothing; with the pitfall, a line sent at 600 ms waits
    # for S to read at 800 ms, while the one thread is blocked sending to S.
    [ "$(slowest "$BATS_TEST_TMPDIR/ok")" -lt 150 ]
    [ "$(slowest "$BATS_TEST_TMPDIR/bad")" -ge 150 ]
    run ! grep -q 'sendto S' "$out"
    if command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null; then
        grep -q '>sendto S</text>' "$bad"
    fi
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

# Run draw with its stderr apart: a normal draw prints nothing at all.
draw_quiet() {
    run --separate-stderr "$LAB_ROOT/tests/pictures/draw" "$@"
    [ "$status" -eq 0 ] || { echo "exit $status: $stderr"; false; }
    [ -z "$stderr" ] || { echo "draw said: $stderr"; false; }
}

@test "pictures: 02's timeline has every client's marks, and draw says nothing" {
    out="$BATS_TEST_TMPDIR/02.svg"
    mkdir "$BATS_TEST_TMPDIR/keep"
    LAB_PICTURES_KEEP="$BATS_TEST_TMPDIR/keep" draw_quiet 02-nonblocking/server "$out"
    plan="$BATS_TEST_TMPDIR/keep/plan"
    # A and B send three lines, C one; only each client's first is answered.
    count() { awk -v k="$1" -v c="$2" '$1 == "tick" && $2 == k && $4 == c { n++ } END { print n + 0 }' "$plan"; }
    for c in A B; do
        [ "$(count "c$c" send)" -eq 3 ] && [ "$(count "c$c" reply)" -eq 1 ] && [ "$(count "c$c" lost)" -eq 2 ] ||
            { echo "client $c:"; grep " c$c " "$plan"; false; }
    done
    [ "$(count cC send)" -eq 1 ] && [ "$(count cC reply)" -eq 1 ] && [ "$(count cC lost)" -eq 0 ]
    # each client was accepted: the server's log named its port
    for c in A B C; do grep -q "^span c$c [0-9.]* [0-9.]* served$" "$plan" || { grep " c$c " "$plan"; false; }; done
    # and the picture draws them: 7 lines sent, 3 replies, 4 losses
    [ "$(grep -c 'stroke="#1f5fbf"' "$out")" -eq 7 ]
    [ "$(grep -c 'stroke="#1e7b34"' "$out")" -eq 3 ]
    [ "$(grep -c 'stroke="#d62728"' "$out")" -eq 4 ]
}

@test "pictures: draw fails, and says why, when a step of its own fails" {
    # A readlink that fails: draw cannot tell which port is whose, inside a client
    # running in the background. That must fail the draw, not draw a picture without it.
    mkdir "$BATS_TEST_TMPDIR/bin"
    printf '#!/bin/sh\nexit 1\n' >"$BATS_TEST_TMPDIR/bin/readlink"
    chmod +x "$BATS_TEST_TMPDIR/bin/readlink"
    PATH="$BATS_TEST_TMPDIR/bin:$PATH" run --separate-stderr \
        "$LAB_ROOT/tests/pictures/draw" 04-select/server "$BATS_TEST_TMPDIR/t.svg"
    echo "exit $status: $stderr"
    [ "$status" -ne 0 ]
    [[ $stderr == *draw:* ]]
    [ ! -e "$BATS_TEST_TMPDIR/t.svg" ]
}
