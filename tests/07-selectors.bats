#!/usr/bin/env bats
# 07-selectors: the library's contract on every backend, the Nb client, -w workers,
# and the signal-driven backend's own: the queue's overflow, -w refused.

load helpers

@test "07: the selectors library keeps its contract on select, poll, epoll and sigio" {
    run "$LAB_BIN/07-selectors/selectors-test"
    echo "$output" | grep -v '^ok' || true     # shows only what failed
    [ "$status" -eq 0 ]
    [[ "${lines[-1]}" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]
}

@test "07: the Nb client's replies match the golden file, on every backend" {
    for backend in select poll epoll sigio; do
        SELECTOR=$backend start_server 07-selectors/server -v
        grep -q "^selector: $backend$" "$SERVER_LOG"
        SELECTOR=$backend run "$LAB_BIN/07-selectors/client" -p "$PORT" -n 5 -v
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/07-client.txt" <(echo "$output")
        stop_pid "$SERVER_PID"
    done
}

@test "07: 1,000 requests at once on every backend (a burst of accepts in one batch)" {
    ulimit -n 4096
    for backend in select poll epoll sigio; do
        SELECTOR=$backend start_server 07-selectors/server -q
        SELECTOR=$backend run "$LAB_BIN/07-selectors/client" -p "$PORT" -n 1000
        [ "$status" -eq 0 ]
        [ "$output" = "1000 of 1000 requests served" ]
        stop_pid "$SERVER_PID"
    done
}

@test "07: an unknown SELECTOR is an error, not a silent default" {
    SELECTOR=kqueue run "$LAB_BIN/07-selectors/server" -p 0
    [ "$status" -eq 1 ]
    [[ "$output" == *"sel_open: Invalid argument"* ]]
}

@test "07 -w 2: two workers serve; SIGINT stops both and prints one summary" {
    start_server 07-selectors/server -w 2
    run "$PROBE" churn -p "$PORT" -n 300 -c 20
    [ "$status" -eq 0 ]
    wait_for_count '^closed ' 300
    workers=$(sed -n 's/^connected .* (worker \([0-9]*\))$/\1/p' "$SERVER_LOG" | sort -u | wc -l)
    echo "workers that served: $workers"
    [ "$workers" -eq 2 ]
    mapfile -t worker_pids < <(pgrep -P "$SERVER_PID")
    [ "${#worker_pids[@]}" -eq 2 ]
    status=0
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    [ "$status" -eq 0 ]
    [ "$(grep -c '^shutdown: ' "$SERVER_LOG")" -eq 1 ]
    grep -q '^shutdown: served 300 connections, echoed 2892 bytes$' "$SERVER_LOG"
    # Every worker is gone too: not orphaned, still holding the port.
    for pid in "${worker_pids[@]}"; do
        ! kill -0 "$pid" 2>/dev/null || { echo "worker $pid still runs"; false; }
    done
}

@test "07 -w 2: workers killed are noticed, logged even under -q, and replaced; the summary counts their work" {
    workers_replaced 07-selectors/server
}

@test "07 -w 2: a parent killed outright (SIGKILL) takes its workers with it, and the port is free" {
    parent_killed 07-selectors/server
}

@test "07 -w 2: a worker that fails stops the server: exit 1, no worker left behind" {
    # Every worker fails at its start (sel_open): replacing them would never end.
    SELECTOR=kqueue run timeout 10 "$LAB_BIN/07-selectors/server" -p 0 -w 2
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"sel_open: Invalid argument"* ]]
    [[ "$output" =~ worker\ [12]\ \(pid\ [0-9]+\)\ exited\ with\ status\ 1:\ stopping ]]
    [ -z "$(pgrep -f "^$LAB_BIN/07-selectors/server -p 0 -w 2\$")" ]
}

@test "07 SELECTOR=select: descriptors past FD_SETSIZE are refused, the rest served" {
    [ "$(ulimit -Hn)" -ge 2048 ] || skip "needs ulimit -n 2048, hard limit is $(ulimit -Hn)"
    ulimit -n 2048
    SELECTOR=select start_server 07-selectors/server -q     # the refusals are warnings: shown
    background hold "$PROBE" hold -p "$PORT" -n 1100 -r -t 60
    wait_for_line '^holding [0-9]+, refused [0-9]+$' 60 "$BATS_TEST_TMPDIR/hold.out"
    read -r _ held _ refused < <(tr -d , <"$BATS_TEST_TMPDIR/hold.out")
    echo "held $held, refused $refused"
    [ "$refused" -ge 1 ]
    [ $((held + refused)) -eq 1100 ]
    [ "$(grep -c '^refused .*: descriptor [0-9]* >= FD_SETSIZE (1024)$' "$SERVER_LOG")" -eq "$refused" ]
}

# sigio_flood: start the sigio server with ulimit -i 8, and send it 1,000 requests at
# once. Past 8 pending signals the kernel sends it a plain SIGIO, naming no
# descriptor. The limit is the server's only: what it is checked against is the
# user's count, every process's queued signals and POSIX timers together, so that
# under it any other process may find it full. One run on a busy machine failed so:
# timeout(1)'s timer_create() got EAGAIN, and its warning came out with the client's.
sigio_flood() {
    local soft
    ulimit -n 4096
    soft=$(ulimit -S -i)
    ulimit -S -i 8
    SELECTOR=sigio start_server 07-selectors/server -q
    ulimit -S -i "$soft"
    [ "$(awk '/^Max pending signals/ {print $4}' "/proc/$SERVER_PID/limits")" -eq 8 ]
    run timeout 60 "$LAB_BIN/07-selectors/client" -p "$PORT" -n 1000
    echo "client's status: $status"
    diff -u <(echo "1000 of 1000 requests served") <(echo "$output")
    [ "$status" -eq 0 ]
}

@test "07 SELECTOR=sigio: with ulimit -i 8 the signal queue overflows, and 1,000 requests at once are still served" {
    sigio_flood
}

@test "07 SELECTOR=sigio: with ulimit -i 8 and the user's count filled by other processes, every readiness comes as a plain SIGIO, and 1,000 requests are still served" {
    # Eight POSIX timers of this user, one per timeout(1) process, each holding a
    # queued signal's place: the server can queue no signal at all, and the client's
    # own timeout must not care.
    local pids=() tries
    for i in 1 2 3 4 5 6 7 8; do
        background "timer$i" timeout 60 sleep 60
        pids+=("$LAST_PID")
    done
    for pid in "${pids[@]}"; do
        tries=250
        until grep -q '^ID:' "/proc/$pid/timers" 2>/dev/null; do
            tries=$((tries - 1))
            [ "$tries" -gt 0 ] || { echo "timeout $pid has no timer"; false; }
            sleep 0.02
        done
    done
    sigio_flood
}

@test "07 SELECTOR=sigio with -w: refused, exit 2, with the reason" {
    SELECTOR=sigio run timeout 10 "$LAB_BIN/07-selectors/server" -p 0 -w 2
    [ "$status" -eq 2 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"-w does not work with SELECTOR=sigio: the listening socket signals one owner process"* ]]
}

@test "07 -w 4 (epoll): ACCEPT=shared wakes the herd (2 or more wake-ups a connection more than exclusive and reuseport); reuseport spreads clients with no EAGAIN; every mode serves all, totals add up" {
    SELECTOR=epoll herd_targets 07-selectors/server
}

@test "07 -w: ACCEPT unknown, or exclusive off epoll, is refused with one line, exit 2" {
    ACCEPT=herd run timeout 10 "$LAB_BIN/07-selectors/server" -p 0 -w 2
    echo "$output"
    [ "$status" -eq 2 ]
    [ "$output" = "$LAB_BIN/07-selectors/server: ACCEPT=herd: not shared, exclusive or reuseport" ]
    for backend in select poll; do
        ACCEPT=exclusive SELECTOR=$backend run timeout 10 "$LAB_BIN/07-selectors/server" -p 0 -w 2
        echo "$output"
        [ "$status" -eq 2 ]
        [ "$output" = "$LAB_BIN/07-selectors/server: ACCEPT=exclusive needs epoll's EPOLLEXCLUSIVE, not SELECTOR=$backend" ]
    done
    # shared and reuseport need nothing of the backend; without -w, ACCEPT is not read.
    ACCEPT=shared SELECTOR=poll start_server 07-selectors/server -q -w 2
    run "$PROBE" line -p "$PORT" -s "poll, shared"
    [ "$output" = "POLL, SHARED" ]
    stop_pid "$SERVER_PID" INT
    ACCEPT=herd start_server 07-selectors/server -q
}
