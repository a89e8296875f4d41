#!/usr/bin/env bats
# What every multiplexing server (04, 05, 06 and 06 -e) must also show, run by
# tests/run once per server like the fault suite:
#   LAB_SERVER, LAB_SERVER_ARGS  as in tests/fault.bats
#   LAB_HUB=1                    a coroutine server: its waiting is in the runtime's hub

load helpers

# as the test names show it
SERVER="$LAB_SERVER${LAB_SERVER_ARGS:+ $LAB_SERVER_ARGS}${SELECTOR:+ (SELECTOR=$SELECTOR)}"

# start: the server under test, with ARGS... added (e.g. -v).
start() {
    # shellcheck disable=SC2086   # the options are words, split on purpose
    start_server "$LAB_SERVER" $LAB_SERVER_ARGS "$@"
}

@test "$SERVER: a flooding client that never reads: 10 others served promptly, memory bounded, then no CPU" {
    start -q
    rss_before=$(rss_kib "$SERVER_PID")
    background flood "$PROBE" flood -p "$PORT" -d 60
    wait_for_line '^flood: blocked after ' 10 "$BATS_TEST_TMPDIR/flood.out"
    # Ten clients at once, each with a 2 s deadline: a server stuck on the
    # flooder would miss it by far.
    run "$PROBE" churn -p "$PORT" -n 10 -c 10 -t 2
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

# stop_busy SIGNAL: the server under test, starved and flooded, gets SIGNAL; it must
# exit 0 with its summary within LIMIT_MS. The server runs on CPU 0 at nice 19, and
# eight clients on the same CPU send and read as fast as they can: whenever the server
# gets the CPU, every connection has data waiting, so each wait returns at once. That
# is where pselect(), ppoll() and epoll_pwait() with the signal blocked outside them
# fail: Linux delivers a pending signal only from a wait that would have slept, and a
# busy server never sleeps (04, 05 and 06 once took 2 to more than 10 s).
stop_busy() {
    local sig=$1 limit=1000 t0 ms status=0
    [[ "$LAB_BIN" != */.san ]] || limit=3000    # sanitizers: LeakSanitizer's exit scan
    start
    taskset -pc 0 "$SERVER_PID" >/dev/null
    renice -n 19 -p "$SERVER_PID" >/dev/null
    for i in $(seq 8); do
        background "flood$i" taskset -c 0 "$PROBE" echo -p "$PORT" -n 100000000000 -t 60
    done
    wait_for_count '^connected ' 8
    # The flood is under way once the server has spent a tenth of a second on it.
    local before
    before=$(cpu_ticks "$SERVER_PID")
    while [ $(( $(cpu_ticks "$SERVER_PID") - before )) -lt $(( $(getconf CLK_TCK) / 10 )) ]; do
        sleep 0.02
    done
    t0=$(date +%s%N)
    kill -s "$sig" "$SERVER_PID"
    # wait returns the moment the server exits (a child of this shell); one that does
    # not is killed after 5 s and fails with 137.
    background watchdog sh -c "sleep 5; kill -KILL $SERVER_PID"
    wait "$SERVER_PID" || status=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    SERVER_PID=
    echo "SIG$sig under a flood, server starved on one CPU: exit status $status, $ms ms"
    [ "$status" -eq 0 ]
    [ "$ms" -lt "$limit" ]
    [[ "$(tail -n 1 "$SERVER_LOG")" =~ ^shutdown:\ served\ 8\ connections,\ echoed\ [0-9]+\ bytes$ ]]
}

@test "$SERVER: SIGINT stops it within a second, however busy (eight flooding clients, the server starved)" {
    stop_busy INT
}

@test "$SERVER: SIGTERM stops it within a second, however busy" {
    stop_busy TERM
}
