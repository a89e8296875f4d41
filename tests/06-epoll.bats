#!/usr/bin/env bats
# 06-epoll: 10,000 concurrent connections, level- and edge-triggered.

load helpers

@test "06: the epoll client's replies match the golden file" {
    start_server 06-epoll/server
    run "$LAB_BIN/06-epoll/client" -p "$PORT" -n 5 -v
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
}

# ten_thousand [SERVER ARGS...]: the C10K, each side its own process.
ten_thousand() {
    [ "$(ulimit -Hn)" -ge 10100 ] || skip "needs ulimit -n 10100, hard limit is $(ulimit -Hn)"
    ulimit -n "$(ulimit -Hn)"
    start_server 06-epoll/server -q "$@"
    run "$LAB_BIN/06-epoll/client" -p "$PORT" -n 10000
    echo "$output" | tail -n 3
    [ "$status" -eq 0 ]
    [ "$output" = "10000 of 10000 connections served" ]
    stop_pid "$SERVER_PID"
    SERVER_PID=
    grep -q '^shutdown: served 10000 connections, echoed 108894 bytes$' "$SERVER_LOG"
}

@test "06: 10,000 concurrent connections, level-triggered" {
    ten_thousand
}

@test "06 -e: 10,000 concurrent connections, edge-triggered" {
    ten_thousand -e
}
