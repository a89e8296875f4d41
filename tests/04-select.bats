#!/usr/bin/env bats
# 04-select: readiness with select(), and its FD_SETSIZE cap.

load helpers

@test "04 to 07: net.c and net.h, the helpers since 01, are the same file in each stage" {
    # The same but for the stage's name in the first line: a fix made in one stage
    # and not the others would show up in every diff between neighbours.
    for f in net.c net.h; do
        for stage in 05-poll 06-epoll 07-selectors; do
            diff -u <(sed "s|04-select/|STAGE/|" "$LAB_ROOT/04-select/$f") \
                <(sed "s|$stage/|STAGE/|" "$LAB_ROOT/$stage/$f")
        done
    done
}

@test "04: the select client's replies match the golden file" {
    start_server 04-select/server
    run "$LAB_BIN/04-select/client" -p "$PORT" -n 5 -v
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
}

@test "04: 1,100 connections: those that fit FD_SETSIZE are served, the rest refused" {
    [ "$(ulimit -Hn)" -ge 2048 ] || skip "needs ulimit -n 2048, hard limit is $(ulimit -Hn)"
    SERVER_LOG="$BATS_TEST_TMPDIR/server.log"
    # -q: the refusals are warnings, shown even then
    (ulimit -n 2048 && exec "$LAB_BIN/04-select/server" -p 0 -q) >"$SERVER_LOG" 2>"$SERVER_LOG.err" &
    SERVER_PID=$!
    wait_for_line '^listening on '
    PORT=$(sed -n '1s/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG")
    ulimit -n 2048
    background hold "$PROBE" hold -p "$PORT" -n 1100 -r -t 60
    # Its line, or its error: a server that died refuses the rest at once.
    wait_for_line '^(holding [0-9]+, refused [0-9]+|probe hold: .*)$' 60 "$BATS_TEST_TMPDIR/hold.out"
    cat "$BATS_TEST_TMPDIR/hold.out"
    grep -Eq '^holding [0-9]+, refused [0-9]+$' "$BATS_TEST_TMPDIR/hold.out"
    read -r _ held _ refused < <(tr -d , <"$BATS_TEST_TMPDIR/hold.out")
    echo "held $held, refused $refused"
    # Descriptors 0-2 and the listener come first: about 1,020 fit below 1024.
    [ "$held" -ge 1000 ]
    [ "$held" -le 1020 ]
    [ $((held + refused)) -eq 1100 ]
    [ "$(grep -c '^refused .*: descriptor [0-9]* >= FD_SETSIZE (1024)$' "$SERVER_LOG")" -eq "$refused" ]
    # A new client while full is refused too, and served once the others go.
    run "$PROBE" line -p "$PORT" -s late
    echo "late client: $output"
    [ "$status" -eq 4 ]
    stop_pid "$LAST_PID"
    # -q logs no "closed": wait for the server's descriptors to go back to its own few.
    tries=1000
    while [ "$(open_fds "$SERVER_PID")" -gt 10 ] && [ $((tries -= 1)) -gt 0 ]; do
        sleep 0.02
    done
    run "$PROBE" line -p "$PORT" -s "after the crowd"
    [ "$status" -eq 0 ]
    [ "$output" = "AFTER THE CROWD" ]
}

@test "04: the select client refuses to go past FD_SETSIZE itself" {
    run "$LAB_BIN/04-select/client" -n 2000
    [ "$status" -eq 2 ]
    [[ "$output" == *"-n wants a number from 0 to 1008"* ]]
}
