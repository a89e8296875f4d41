#!/usr/bin/env bats
# 01-blocking: the iterative server makes a second client wait; threads do not.

load helpers

# second_client_wait SERVER HOLD_MS: start SERVER, connect a first client that
# stays HOLD_MS after its replies, then time a second one; sets SECS to how long
# the second waited for its first reply.
second_client_wait() {
    start_server "$1"
    background first "$LAB_BIN/01-blocking/client" -p "$PORT" -d "$2"
    wait_for_line '^connected '
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -w
    [ "$status" -eq 0 ]
    SECS=$(sed -n 's/^first reply after \([0-9.]*\) s$/\1/p' <<<"$output")
    echo "second client waited $SECS s behind a first client that stayed $2 ms"
}

@test "01 client against the iterative server: replies match the golden file" {
    start_server 01-blocking/server
    run "$LAB_BIN/01-blocking/client" -p "$PORT"
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/01-client.txt" <(echo "$output")
}

@test "01 client against the threads-server: replies match the golden file" {
    start_server 01-blocking/threads-server
    run "$LAB_BIN/01-blocking/client" -p "$PORT"
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/01-client.txt" <(echo "$output")
}

@test "01 iterative server: a second client waits in the backlog until the first closes" {
    second_client_wait 01-blocking/server 1000
    awk -v s="$SECS" 'BEGIN { exit !(s >= 0.5 && s < 5) }'
}

@test "01 threads-server: a second client is served while the first is still connected" {
    second_client_wait 01-blocking/threads-server 3000
    awk -v s="$SECS" 'BEGIN { exit !(s < 0.5) }'
    # and the first one was still connected: both connects come before any close
    [ "$(sed -n '2,3p' "$SERVER_LOG" | grep -c '^connected ')" -eq 2 ]
}

@test "01 client: exits 1 when a reply does not come (02's server answers only one line)" {
    start_server 02-nonblocking/server
    run "$LAB_BIN/01-blocking/client" -p "$PORT" hello world
    [ "$status" -eq 1 ]
    [[ "$output" == *"hello -> HELLO"* ]]
    [[ "$output" == *"world: server closed"* || "$output" == *"world: Connection reset by peer"* ]]
}

@test "01 server -v: logs each read and write" {
    start_server 01-blocking/server -v
    run "$LAB_BIN/01-blocking/client" -p "$PORT" abc
    [ "$status" -eq 0 ]
    wait_for_line '^closed '
    grep -Eq '^read 127\.0\.0\.1:[0-9]+ 4 bytes$' "$SERVER_LOG"
    grep -Eq '^wrote 127\.0\.0\.1:[0-9]+ 4 bytes$' "$SERVER_LOG"
}

@test "01 server -q: logs only the start line and the summary" {
    start_server 01-blocking/server -q
    run "$LAB_BIN/01-blocking/client" -p "$PORT"
    [ "$status" -eq 0 ]
    stop_pid "$SERVER_PID" TERM
    SERVER_PID=
    cat "$SERVER_LOG"
    [ "$(wc -l <"$SERVER_LOG")" -eq 2 ]
    grep -q '^shutdown: served 1 connections, echoed 12 bytes$' "$SERVER_LOG"
}

@test "01 client: a reply longer than its line is an error that says so (no stale errno)" {
    start_server tests/long-reply      # 10,000 bytes before its newline
    run "$LAB_BIN/01-blocking/client" -p "$PORT" hello
    echo "$output"
    [ "$status" -eq 1 ]
    [ "$output" = "hello: Message too long" ]
}

@test "01 client -N: one recv() taken as one reply gets merged replies and split ones; framed reading is right" {
    start_server 01-blocking/threads-server -q
    # Three small replies wait together in the socket: one recv() returns them all.
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -N hello world again
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "recv 1: 18 bytes, 3 whole lines: replies merged" ]
    [ "${lines[1]}" = "recv 2: nothing within 1 s" ]
    [ "${lines[3]}" = "naive: 0 of 3 replies read right, one recv() each" ]
    # A reply longer than the recv(): the next message's recv() gets its rest.
    big=$(printf '%3000s' '' | tr ' ' x)
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -N "$big" hello
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "recv 1: 1024 bytes, 0 whole lines: part of a reply" ]
    [ "${lines[1]}" = "recv 2: 1024 bytes, 0 whole lines: part of a reply" ]
    # The framed client (read until the newline) gets every reply right.
    run "$LAB_BIN/01-blocking/client" -p "$PORT" "$big" hello
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "hello -> HELLO" ]
}

@test "01 client -f against a plain server: fails, and says what header came back" {
    start_server 01-blocking/threads-server -q
    # 97 bytes: the length's low byte is 97, 'a', which the plain server upper-cases.
    msg=$(printf '%97s' '' | tr ' ' m)
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -f "$msg"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "$output" = "$msg: the reply's header says 65 bytes (00 00 00 41), not 97: is this a framed server?" ]
}
