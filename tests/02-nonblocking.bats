#!/usr/bin/env bats
# 02-nonblocking: the notes' flawed first attempt. Its flaws are the assertions.

load helpers

@test "02: only the first of the notes' three messages is answered" {
    start_server 02-nonblocking/server
    run "$LAB_BIN/02-nonblocking/client" -p "$PORT" -g 100
    [ "$status" -eq 1 ]
    diff -u "$EXPECTED/02-client-lost.txt" <(echo "$output")
}

@test "02 client against 03's list server: all three are answered" {
    start_server 03-nonblocking-list/server
    run "$LAB_BIN/02-nonblocking/client" -p "$PORT" -g 100
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/02-client-all.txt" <(echo "$output")
}

@test "02: the accept loop spins, burning a core with no client at all" {
    start_server 02-nonblocking/server
    cpu=$(cpu_percent "$SERVER_PID" 1)
    echo "idle server CPU: $cpu %"
    [ "$cpu" -ge 30 ]   # a sleeping server shows ~0; 30 leaves room for a busy CI
}

@test "02: resets and churn leak no descriptor and do not crash it" {
    start_server 02-nonblocking/server
    before=$(open_fds "$SERVER_PID")
    run "$PROBE" reset -p "$PORT" -n 1000
    [ "$status" -eq 0 ]
    run "$PROBE" churn -p "$PORT" -n 200 -c 5
    [ "$status" -eq 0 ]
    wait_for_count '^closed ' 201
    [ "$(open_fds "$SERVER_PID")" -eq "$before" ]
    kill -0 "$SERVER_PID"
}

@test "02: SIGINT prints the summary and exits 0" {
    start_server 02-nonblocking/server
    "$LAB_BIN/02-nonblocking/client" -p "$PORT" -g 0 || true
    status=0
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    [ "$status" -eq 0 ]
    [ "$(tail -n 1 "$SERVER_LOG")" = "shutdown: served 1 connections, echoed 6 bytes" ]
}
