#!/usr/bin/env bats
# 01-blocking: the iterative server makes a second client wait; threads do not.

load helpers

# first_reply_secs: the seconds figure from the client's "first reply after S s".
first_reply_secs() {
    sed -n 's/^first reply after \([0-9.]*\) s$/\1/p' <<<"$1"
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
    start_server 01-blocking/server
    background first "$LAB_BIN/01-blocking/client" -p "$PORT" -d 1000
    wait_for_line '^connected '
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -w
    [ "$status" -eq 0 ]
    secs=$(first_reply_secs "$output")
    echo "second client waited $secs s behind a first client that stayed 1 s"
    awk -v s="$secs" 'BEGIN { exit !(s >= 0.5 && s < 5) }'
}

@test "01 threads-server: a second client is served while the first is still connected" {
    start_server 01-blocking/threads-server
    background first "$LAB_BIN/01-blocking/client" -p "$PORT" -d 3000
    wait_for_line '^connected '
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -w
    [ "$status" -eq 0 ]
    secs=$(first_reply_secs "$output")
    echo "second client waited $secs s"
    awk -v s="$secs" 'BEGIN { exit !(s < 0.5) }'
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
    [ "$(wc -l <"$SERVER_LOG")" -eq 2 ]
    grep -q '^shutdown: served 1 connections, echoed 12 bytes$' "$SERVER_LOG"
}
