#!/usr/bin/env bats
# 08-coroutines: the coroutine server and client, 10,000 connections, and 01's
# threads-server patched with --wrap into one OS thread. (The demos and the
# runtime's own tests are in 08-demos.bats and 08-runtime.bats; the fault suite
# runs against both servers from tests/run.)

load helpers

# uring_or_skip: skip the test, with the kernel's refusal as the reason, if the
# completion hub's programs (08-coroutines/uring/) cannot run here: where io_uring
# is refused they print one line "io_uring unavailable: ..." and exit 1.
uring_or_skip() {
    local why
    why=$(uring_or_skip_reason)
    [ -z "$why" ] || skip "$why"
}

# uring_or_skip_reason: that line, or nothing if the completion hub runs here.
uring_or_skip_reason() {
    local out
    out=$("$LAB_BIN/08-coroutines/uring/generators" 2>&1) && return 0
    [[ "$out" != "io_uring unavailable: "* ]] || echo "$out"
}

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
    why=$(uring_or_skip_reason)
    [ -z "$why" ] || skip "$why"
}

@test "08: the completion hub's client replies match the golden file (io_uring)" {
    uring_or_skip
    start_server 08-coroutines/uring/server
    run "$LAB_BIN/08-coroutines/uring/client" -p "$PORT" -n 5 -v
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
}

# clients_500 BUILD: BUILD's client, 500 clients of 3 lines each, against BUILD's server.
clients_500() {
    start_server "$1/server" -q
    run "$LAB_BIN/$1/client" -p "$PORT" -n 500 -m 3
    [ "$status" -eq 0 ]
    [ "$output" = "500 of 500 connections served" ]
}

@test "08 client: 500 clients, 3 lines each, in one thread" {
    clients_500 08-coroutines
}

@test "08 client: 500 clients, 3 lines each, in one thread, completion hub (io_uring)" {
    uring_or_skip
    clients_500 08-coroutines/uring
}

# refused BUILD: BUILD's client against a port nobody listens on any more.
refused() {
    start_server "$1/server" -q
    port=$PORT
    stop_pid "$SERVER_PID"
    run "$LAB_BIN/$1/client" -p "$port" -n 3
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "hello 1 -> Connection refused" ]
    [ "${lines[3]}" = "0 of 3 connections served" ]
}

@test "08 client: a server that is not there: every client says why, exit 1" {
    refused 08-coroutines
}

@test "08 client: a server that is not there: every client says why, exit 1, completion hub (io_uring)" {
    uring_or_skip
    refused 08-coroutines/uring
}

# c10k BUILD: BUILD's server holds 10,000 connections of BUILD's client at once, in one thread.
c10k() {
    [ "$(ulimit -Hn)" -ge 10100 ] || skip "needs ulimit -n 10100, hard limit is $(ulimit -Hn)"
    ulimit -n "$(ulimit -Hn)"
    start_server "$1/server" -q
    # The client holds every connection until all are answered: 10,000 at once.
    run "$LAB_BIN/$1/client" -p "$PORT" -n 10000
    echo "$output" | tail -n 3
    [ "$status" -eq 0 ]
    [ "$output" = "10000 of 10000 connections served" ]
    [ "$(find "/proc/$SERVER_PID/task" -mindepth 1 -maxdepth 1 | wc -l)" -eq 1 ]
    stop_pid "$SERVER_PID"
    SERVER_PID=
    grep -q '^shutdown: served 10000 connections, echoed 108894 bytes$' "$SERVER_LOG"
}

@test "08: 10,000 concurrent connections, one coroutine each, one OS thread" {
    c10k 08-coroutines
}

@test "08: 10,000 concurrent connections, one OS thread, completion hub (io_uring)" {
    uring_or_skip
    c10k 08-coroutines/uring
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

@test "08 threads-server (--wrap): 50 clients connected, one OS thread, completion hub (io_uring)" {
    uring_or_skip
    threads_with_50 08-coroutines/uring/threads-server
    [ "$THREADS" -eq 1 ]
    run "$PROBE" line -p "$PORT" -s "the 51st"
    [ "$status" -eq 0 ]
    [ "$output" = "THE 51ST" ]
}

# wrapped_500 BUILD: BUILD's threads-server, 500 clients of BUILD's client at once.
wrapped_500() {
    start_server "$1/threads-server" -q
    run "$LAB_BIN/$1/client" -p "$PORT" -n 500 -m 3
    [ "$status" -eq 0 ]
    [ "$output" = "500 of 500 connections served" ]
}

@test "08 threads-server (--wrap): 500 clients at once, served in one thread" {
    wrapped_500 08-coroutines
}

@test "08 threads-server (--wrap): 500 clients at once, served in one thread, completion hub (io_uring)" {
    uring_or_skip
    wrapped_500 08-coroutines/uring
}

# logs_verbose BUILD: BUILD's server -v logs what it read and wrote.
logs_verbose() {
    start_server "$1/server" -v
    run "$PROBE" line -p "$PORT" -s hello
    [ "$status" -eq 0 ]
    wait_for_line '^closed '
    grep -Eq '^read 127\.0\.0\.1:[0-9]+ 6 bytes$' "$SERVER_LOG"
    grep -Eq '^wrote 127\.0\.0\.1:[0-9]+ 6 bytes$' "$SERVER_LOG"
}

@test "08 server -v: logs each read and write" {
    logs_verbose 08-coroutines
}

@test "08 server -v: logs each read and write, completion hub (io_uring)" {
    uring_or_skip
    logs_verbose 08-coroutines/uring
}

@test "08: urgent data (MSG_OOB) mid-line is answered ABCDEF, by every 08 server" {
    # recv() stops at TCP's urgent mark: the server reads "abc" with "def\n" queued
    # behind it. A runtime that takes that short read for "the socket is drained"
    # waits for an edge that never comes. It shows only when all of it is there at
    # the server's read (about one try in three here), hence twenty tries each.
    local triples=("$LAB_BIN|08-coroutines|server" "$LAB_ROOT|08-coroutines/ucontext|server"
        "$LAB_BIN|08-coroutines|threads-server")
    [ -n "$(uring_or_skip_reason)" ] || triples+=("$LAB_BIN|08-coroutines/uring|server"
        "$LAB_BIN|08-coroutines/uring|threads-server")
    for triple in "${triples[@]}"; do
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
    why=$(uring_or_skip_reason)
    [ -z "$why" ] || skip "$why"
}

# injected PROGRAM SPEC [ARGS...]: start $LAB_BIN/PROGRAM on port 0 under strace, whose
# fault injection SPEC (-e inject=SPEC) makes a system call fail; as start_server
# otherwise (PORT, SERVER_LOG, SERVER_LOG.err). TRACER is strace's PID: strace exits
# with the program's status.
injected() {
    local program=$1 spec=$2
    shift 2
    SERVER_LOG=$BATS_TEST_TMPDIR/server.log
    : >"$SERVER_LOG"
    # LeakSanitizer cannot work under ptrace (make check): it would fail at exit.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        strace -o /dev/null -e inject="$spec" "$LAB_BIN/$program" -p 0 "$@" \
        >"$SERVER_LOG" 2>"$SERVER_LOG.err" &
    TRACER=$!
    BACKGROUND_PIDS+=("$TRACER")
    wait_for_line '^listening on '
    PORT=$(sed -n '1s/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG")
    # strace's child, not ours. Teardown stops it too: one that outlived a killed
    # strace would hold bats' output open, and the run would never end.
    SERVER_PID=$(pgrep -P "$TRACER")
}

# stops_in_one_line PROGRAM SPEC LINE: PROGRAM's hub wait fails for good (SPEC, from a
# call after the listener's), and a client connects: the program stops by itself
# (within stop_pid's 5 s), LINE its only word on stderr, exit status 1. (Whether the
# client's hello was answered depends on where the failure falls: not checked.)
stops_in_one_line() {
    local status_was=0
    injected "$1" "$2" -q
    run "$PROBE" line -p "$PORT" -s hello -t 5
    echo "$1 under $2: the client: status $status, output: $output"
    stop_pid "$TRACER" 0 || status_was=$?   # no signal: it must end by itself
    echo "$1: exit status $status_was, stderr:"
    cat "$SERVER_LOG.err"
    [ "$status_was" -eq 1 ]
    [ "$(cat "$SERVER_LOG.err")" = "$3" ]
    SERVER_PID=
}

@test "08: a hub whose wait fails for good stops the server: one line, exit 1, both hubs (strace fault injection)" {
    command -v strace >/dev/null || skip "needs strace"
    # The readiness hub hands epoll_wait's error to main's parked co_accept.
    stops_in_one_line 08-coroutines/server epoll_wait:error=EBADF:when=2+ \
        "accept: Bad file descriptor"
    uring_or_skip
    # The completion hub cannot return a call whose operation the kernel holds: it
    # says why and exits (hub-uring.c, ring_broken()).
    stops_in_one_line 08-coroutines/uring/server io_uring_enter:error=EBADF:when=3+ \
        "io_uring_enter: Bad file descriptor"
}

@test "08: a completion the kernel could not keep (EBADR) stops the server: one line, exit 1, completion hub (strace fault injection)" {
    command -v strace >/dev/null || skip "needs strace"
    uring_or_skip
    stops_in_one_line 08-coroutines/uring/server io_uring_enter:error=EBADR:when=3+ \
        "io_uring_enter: a completion was lost (EBADR: the kernel had no memory to keep it)"
}

@test "08: io_uring_enter's passing errors (EBUSY, EAGAIN, EINTR, ETIME) are survived, completion hub (strace fault injection)" {
    command -v strace >/dev/null || skip "needs strace"
    uring_or_skip
    local err status_was
    for err in EBUSY EAGAIN EINTR ETIME; do
        injected 08-coroutines/uring/server "io_uring_enter:error=$err:when=3" -q
        run "$PROBE" line -p "$PORT" -s hello -t 5
        echo "$err: the client: status $status, output: $output"
        [ "$status" -eq 0 ]
        [ "$output" = "HELLO" ]
        kill -TERM "$SERVER_PID"
        status_was=0
        stop_pid "$TRACER" 0 || status_was=$?
        echo "$err: exit status $status_was, stderr:"
        cat "$SERVER_LOG.err"
        [ "$status_was" -eq 0 ]
        [ ! -s "$SERVER_LOG.err" ]
        SERVER_PID=
    done
}

@test "08: with nothing in the ring, a broken ring is an error for the program to report, completion hub (strace fault injection)" {
    command -v strace >/dev/null || skip "needs strace"
    uring_or_skip
    # gevent's main waits in co_joinall for two sleepers: no operation in the kernel's
    # hands, so the hub can give the error back, and the program's die() says it.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        run strace -o /dev/null -e inject=io_uring_enter:error=EBADF:when=1+ \
        "$LAB_BIN/08-coroutines/uring/gevent" -u 10
    echo "status $status, output: $output"
    [ "$status" -eq 1 ]
    # stderr's line comes first or last: stdout is a pipe here, flushed at exit.
    printf '%s\n' "${lines[@]}" | grep -qx "co_joinall: Bad file descriptor"
}

# ---- -w N: processes x coroutines (note 003's last step; issue 23) ----

@test "08 -w: workers.c and workers.h are 07's, the same file (07 -> 08 shows coroutines, not a second pool)" {
    for f in workers.c workers.h; do
        diff -u <(sed "s|07-selectors/|STAGE/|" "$LAB_ROOT/07-selectors/$f") \
            <(sed "s|08-coroutines/|STAGE/|" "$LAB_ROOT/08-coroutines/$f")
    done
}

@test "08 -w 4, readiness hub: ACCEPT=shared wakes the herd (2 or more wake-ups a connection more than exclusive and reuseport); reuseport spreads clients with no EAGAIN; every mode serves all, totals add up" {
    herd_targets 08-coroutines/server
}

@test "08 -w 4, completion hub (io_uring): the same targets; shared's herd comes from plain polls, exclusive is io_uring's own accept" {
    uring_or_skip
    herd_targets 08-coroutines/uring/server
    # The one-shot polls of shared show the herd in user space too: EAGAINs.
    herd 08-coroutines/uring/server shared
    echo "shared: $HERD_EAGAIN accept() EAGAIN"
    [ "$HERD_EAGAIN" -ge 200 ]
}

@test "08 -w 2: workers killed are replaced; SIGINT stops all with one summary that counts their work, each worker its own hub" {
    for build in 08-coroutines 08-coroutines/uring; do
        [ "$build" = 08-coroutines ] || uring_or_skip
        workers_replaced "$build/server" 'anon_inode:\[(eventpoll|io_uring)\]'
    done
}

@test "08 -w 2: a parent killed outright (SIGKILL) takes its workers with it, and the port is free" {
    parent_killed 08-coroutines/server
}
