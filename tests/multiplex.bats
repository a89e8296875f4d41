#!/usr/bin/env bats
# What every multiplexing server (04, 05, 06 and 06 -e) must also show, run by
# tests/run once per server like the fault suite:
#   LAB_SERVER, LAB_SERVER_ARGS  as in tests/fault.bats
#   LAB_HUB=1                    a coroutine server: its waiting is in the runtime's hub

load helpers

# as the test names show it
SERVER="$LAB_SERVER${LAB_SERVER_ARGS:+ $LAB_SERVER_ARGS}${SELECTOR:+ (SELECTOR=$SELECTOR)}${URING:+ (URING=$URING)}"

# start: the server under test, with ARGS... added (e.g. -v).
start() {
    # shellcheck disable=SC2086   # the options are words, split on purpose
    start_server "$LAB_SERVER" $LAB_SERVER_ARGS "$@"
}

@test "$SERVER: a flooding client that never reads: 10 others served promptly, memory bounded, then no CPU" {
    start -q
    rss_before=$(rss_kib "$SERVER_PID")
    background flood "$PROBE" flood -p "$PORT" -d 60
    # Blocked: the server stopped reading it, its queue full. A server that drops what
    # send() did not take reads on, and the flooder may never block.
    wait_for_line '^flood: blocked after ' 10 "$BATS_TEST_TMPDIR/flood.out" \
        || { echo "the flooder was never blocked: the server read all it sent for 10 s"; false; }
    # Ten clients at once, each with a 2 s deadline: a server stuck on the
    # flooder would miss it by far.
    run "$PROBE" churn -p "$PORT" -n 10 -c 10 -t 2
    echo "ten other clients while flooded (2 s deadline): exit status $status ${output:-(no output)}"
    [ "$status" -eq 0 ]
    run "$PROBE" line -p "$PORT" -s other -T -t 2
    [ "$status" -eq 0 ]
    echo "while flooded: ${lines[1]}"
    # The bound: the flooder's queue is capped at 64 KiB, so the server grows by far
    # less than 4 MiB however long the flood lasts.
    grown=$(( $(rss_kib "$SERVER_PID") - rss_before ))
    echo "RSS grew by $grown KiB while flooded"
    [ "$grown" -lt 4096 ]
    # And it has stopped reading the flooder, whose replies cannot go: a server that
    # drops what send() did not take reads on and on, and burns a core doing it.
    cpu=$(cpu_percent "$SERVER_PID" 1)
    echo "server CPU while flooded, the others gone: $cpu %"
    [ "$cpu" -le 10 ]
}

# start_limited FDS ARGS...: the server under test with ulimit -n FDS.
start_limited() {
    local fds=$1
    shift
    SERVER_LOG="$BATS_TEST_TMPDIR/server.log"
    # shellcheck disable=SC2086
    (ulimit -n "$fds" && exec "$LAB_BIN/$LAB_SERVER" -p 0 $LAB_SERVER_ARGS "$@") \
        >"$SERVER_LOG" 2>"$SERVER_LOG.err" &
    SERVER_PID=$!
    wait_for_line '^listening on '
    PORT=$(sed -n '1s/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG")
}

# fds_below LIMIT PID: how many of the process's descriptors are numbered below
# LIMIT. ulimit -n caps the numbers, not the count: a descriptor inherited at 255
# takes no slot a new connection could have.
fds_below() {
    find "/proc/$2/fd" -mindepth 1 -maxdepth 1 -printf '%f\n' | awk -v limit="$1" '$1 < limit' | wc -l
}

@test "$SERVER: out of descriptors (EMFILE): no spinning, others served, and it recovers" {
    start_limited 64 -q     # -q hides routine lines, never these warnings
    exec {early}<>"/dev/tcp/127.0.0.1/$PORT"    # a client connected before it runs out
    # 80 connections against 64 descriptors: the server runs out part-way, and
    # the rest wait in its backlog.
    background hog "$PROBE" hold -p "$PORT" -n 80 -t 60
    hog=$LAST_PID
    wait_for_line '^accept: Too many open files: pausing'
    cpu=$(cpu_percent "$SERVER_PID" 1)
    echo "server CPU while out of descriptors: $cpu %"
    [ "$cpu" -le 10 ]
    [ "$(grep -c '^accept: ' "$SERVER_LOG")" -eq 1 ]    # logged once, not per retry
    # While it waits for a descriptor, the clients it has are served as ever.
    start=${EPOCHREALTIME/./}
    printf 'still served\n' >&"$early"
    IFS= read -r -t 5 reply <&"$early" || reply="(none in 5 s)"
    ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))
    exec {early}<&-
    echo "a connected client's round trip while out of descriptors: $ms ms, '$reply'"
    [ "$reply" = "STILL SERVED" ]
    [ "$ms" -lt 500 ]
    stop_pid "$hog" KILL || true                         # its connections close
    wait_for_line '^accepting again$'
    run "$PROBE" line -p "$PORT" -s "served again"
    [ "$status" -eq 0 ]
    [ "$output" = "SERVED AGAIN" ]
}

@test "$SERVER: out of descriptors: clients left in the backlog are served once one closes" {
    # The server's accept() fails with a client still waiting, and a connection
    # closes in the same turn: it is stopped while both happen, so that they come to
    # it together. Edge-triggered, the listener's edge is used up by then: unless
    # the listener is re-armed, that client waits for a next one to connect.
    start_limited 32 -q
    background one "$PROBE" hold -p "$PORT" -n 1
    one=$LAST_PID
    wait_for_line '^holding 1$' 10 "$BATS_TEST_TMPDIR/one.out"
    # Every descriptor the server has left but one is taken.
    rest=$((32 - $(fds_below 32 "$SERVER_PID") - 1))
    background rest "$PROBE" hold -p "$PORT" -n "$rest"
    wait_for_line "^holding $rest\$" 10 "$BATS_TEST_TMPDIR/rest.out"
    kill -STOP "$SERVER_PID"
    background first "$PROBE" line -p "$PORT" -s first -t 5
    first=$LAST_PID
    background second "$PROBE" line -p "$PORT" -s second -t 5
    second=$LAST_PID
    wait_for_backlog "$PORT" 2        # both connected, neither accepted
    stop_pid "$one"                   # and then a held connection closes
    kill -CONT "$SERVER_PID"
    status_first=0 status_second=0
    wait "$first" || status_first=$?
    wait "$second" || status_second=$?
    echo "first: $status_first $(cat "$BATS_TEST_TMPDIR/first.out")"
    echo "second: $status_second $(cat "$BATS_TEST_TMPDIR/second.out")"
    [ "$status_first" -eq 0 ]
    [ "$status_second" -eq 0 ]
    # It did run out, as planned, and -q shows it.
    grep -q '^accept: Too many open files: pausing' "$SERVER_LOG"
}

@test "$SERVER: ten idle connections cost no CPU" {
    start -q
    background idle "$PROBE" hold -p "$PORT" -n 10
    wait_for_line '^holding 10$' 10 "$BATS_TEST_TMPDIR/idle.out"
    cpu=$(cpu_percent "$SERVER_PID" 2)
    echo "server CPU with 10 idle connections: $cpu %"
    [ "$cpu" -le 2 ]
}

@test "$SERVER: -v logs what each readiness call returned, and each read" {
    start -v
    run "$PROBE" line -p "$PORT" -s hello
    [ "$status" -eq 0 ]
    wait_for_line '^closed '
    # 08's server makes no readiness call of its own: the runtime's hub does (co.c).
    if [ "${LAB_HUB:-0}" -eq 0 ]; then
        grep -Eq '^(select|poll|epoll_wait|sel_select\([a-z]+\)): [0-9]+ (ready|events)' "$SERVER_LOG"
    fi
    grep -Eq '^read 127\.0\.0\.1:[0-9]+ 6 bytes$' "$SERVER_LOG"
}

# stop_busy SIGNAL: the server under test, flooded and starved, must stop at SIGNAL
# within a second (tests/helpers.bash: stop_flooded says how, and why it is hard).
stop_busy() {
    start
    stop_flooded "$1"
}

@test "$SERVER: SIGINT stops it within a second, however busy (eight flooding clients, the server starved)" {
    stop_busy INT
}

@test "$SERVER: SIGTERM stops it within a second, however busy" {
    stop_busy TERM
}
