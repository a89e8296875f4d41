#!/usr/bin/env bats
# 08-coroutines: the coroutine server and client, 10,000 connections, and 01's
# threads-server patched with --wrap into one OS thread. (The demos and the
# runtime's own tests are in 08-demos.bats and 08-runtime.bats; the fault suite
# runs against both servers from tests/run.)

load helpers

@test "08: the coroutine client's replies match the golden file, both switches" {
    # The ucontext build is always the plain one beside the sources: make check builds
    # only the hand-written switch with sanitizers (see san-stage08 in the Makefile).
    for pair in "$LAB_BIN|08-coroutines" "$LAB_ROOT|08-coroutines/ucontext"; do
        IFS='|' read -r bin build <<<"$pair"
        LAB_BIN=$bin start_server "$build/server"
        run "$bin/$build/client" -p "$PORT" -n 5 -v
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
        stop_pid "$SERVER_PID"
    done
}

@test "08 client: 500 clients, 3 lines each, in one thread" {
    start_server 08-coroutines/server -q
    run "$LAB_BIN/08-coroutines/client" -p "$PORT" -n 500 -m 3
    [ "$status" -eq 0 ]
    [ "$output" = "500 of 500 connections served" ]
}

@test "08 client: a server that is not there: every client says why, exit 1" {
    start_server 08-coroutines/server -q
    port=$PORT
    stop_pid "$SERVER_PID"
    run "$LAB_BIN/08-coroutines/client" -p "$port" -n 3
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "hello 1 -> Connection refused" ]
    [ "${lines[3]}" = "0 of 3 connections served" ]
}

@test "08: 10,000 concurrent connections, one coroutine each, one OS thread" {
    [ "$(ulimit -Hn)" -ge 10100 ] || skip "needs ulimit -n 10100, hard limit is $(ulimit -Hn)"
    ulimit -n "$(ulimit -Hn)"
    start_server 08-coroutines/server -q
    # The client holds every connection until all are answered: 10,000 at once.
    run "$LAB_BIN/08-coroutines/client" -p "$PORT" -n 10000
    echo "$output" | tail -n 3
    [ "$status" -eq 0 ]
    [ "$output" = "10000 of 10000 connections served" ]
    [ "$(find "/proc/$SERVER_PID/task" -mindepth 1 -maxdepth 1 | wc -l)" -eq 1 ]
    stop_pid "$SERVER_PID"
    SERVER_PID=
    grep -q '^shutdown: served 10000 connections, echoed 108894 bytes$' "$SERVER_LOG"
}

@test "08: threads-server.c is 01's, byte for byte" {
    cmp "$LAB_ROOT/01-blocking/threads-server.c" "$LAB_ROOT/08-coroutines/threads-server.c"
}

# threads_with_50 PROGRAM: start PROGRAM, connect 50 clients that stay, and set
# THREADS to how many OS threads it then has. (Not called as $(...): a subshell
# would lose the PIDs that teardown must stop.)
threads_with_50() {
    start_server "$1"
    background hold "$PROBE" hold -p "$PORT" -n 50
    wait_for_line '^holding 50$' 10 "$BATS_TEST_TMPDIR/hold.out"
    wait_for_count '^connected ' 50
    THREADS=$(find "/proc/$SERVER_PID/task" -mindepth 1 -maxdepth 1 | wc -l)
}

@test "08 threads-server (--wrap): 50 clients connected, one OS thread" {
    # The same source unpatched: a thread per client, 51 in all. This is the
    # count the patch must bring down; it also shows the test can fail.
    threads_with_50 01-blocking/threads-server
    [ "$THREADS" -eq 51 ]
    stop_pid "$LAST_PID"
    stop_pid "$SERVER_PID"
    threads_with_50 08-coroutines/threads-server
    [ "$THREADS" -eq 1 ]
    run "$PROBE" line -p "$PORT" -s "the 51st"
    [ "$status" -eq 0 ]
    [ "$output" = "THE 51ST" ]
}

@test "08 threads-server (--wrap): 500 clients at once, served in one thread" {
    start_server 08-coroutines/threads-server -q
    run "$LAB_BIN/08-coroutines/client" -p "$PORT" -n 500 -m 3
    [ "$status" -eq 0 ]
    [ "$output" = "500 of 500 connections served" ]
}

@test "08 server -v: logs each read and write" {
    start_server 08-coroutines/server -v
    run "$PROBE" line -p "$PORT" -s hello
    [ "$status" -eq 0 ]
    wait_for_line '^closed '
    grep -Eq '^read 127\.0\.0\.1:[0-9]+ 6 bytes$' "$SERVER_LOG"
    grep -Eq '^wrote 127\.0\.0\.1:[0-9]+ 6 bytes$' "$SERVER_LOG"
}

@test "08: urgent data (MSG_OOB) mid-line is answered ABCDEF, by every 08 server" {
    # recv() stops at TCP's urgent mark: the server reads "abc" with "def\n" queued
    # behind it. A runtime that takes that short read for "the socket is drained"
    # waits for an edge that never comes. It shows only when all of it is there at
    # the server's read (about one try in three here), hence twenty tries each.
    for triple in "$LAB_BIN|08-coroutines|server" "$LAB_ROOT|08-coroutines/ucontext|server" \
            "$LAB_BIN|08-coroutines|threads-server"; do
        IFS='|' read -r bin build program <<<"$triple"
        LAB_BIN=$bin start_server "$build/$program" -q
        for try in $(seq 20); do
            run "$PROBE" oob -p "$PORT" -t 2
            echo "$build/$program, try $try: status $status, output: $output"
            [ "$status" -eq 0 ]
            [ "$output" = "ABCDEF" ]
        done
        stop_pid "$SERVER_PID"
    done
}
