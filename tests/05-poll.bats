#!/usr/bin/env bats
# 05-poll: no FD_SETSIZE cap.

load helpers

@test "05: the poll client's replies match the golden file" {
    start_server 05-poll/server
    run "$LAB_BIN/05-poll/client" -p "$PORT" -n 5 -v
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
}

@test "05: 2,000 concurrent connections, more than select can watch, all answered" {
    [ "$(ulimit -Hn)" -ge 4096 ] || skip "needs ulimit -n 4096, hard limit is $(ulimit -Hn)"
    ulimit -n 4096      # for the server and the client, each its own process
    start_server 05-poll/server -q
    run "$LAB_BIN/05-poll/client" -p "$PORT" -n 2000
    [ "$status" -eq 0 ]
    [ "$output" = "2000 of 2000 connections served" ]
}
