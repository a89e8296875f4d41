#!/usr/bin/env bats
# The fault suite: written once, run by tests/run against every server but 02's.
#   LAB_SERVER     the server program, e.g. 03-nonblocking-list/server
#   LAB_SERVER_ARGS  options it runs with, e.g. -e (words without spaces)
#   LAB_ITERATIVE  1 for 01's iterative server: it serves one client at a time, so
#                  where the others must serve a second client while a first one
#                  floods, it must be seen not to (its README explains why).

load helpers

# as the test names show it
SERVER="$LAB_SERVER${LAB_SERVER_ARGS:+ $LAB_SERVER_ARGS}${SELECTOR:+ (SELECTOR=$SELECTOR)}${URING:+ (URING=$URING)}"

setup() {
    # shellcheck disable=SC2086   # the options are words, split on purpose
    start_server "$LAB_SERVER" $LAB_SERVER_ARGS
}

# still_serving: after a rude client has gone, a new client is answered.
still_serving() {
    wait_for_count '^closed ' 1
    run "$PROBE" line -p "$PORT" -s "still here"
    [ "$status" -eq 0 ]
    [ "$output" = "STILL HERE" ]
}

@test "$SERVER: first line names the real port" {
    run head -n 1 "$SERVER_LOG"
    [[ "$output" =~ ^listening\ on\ 127\.0\.0\.1:[0-9]+$ ]]
    [ "$PORT" -gt 0 ]
}

@test "$SERVER: a bad option or port prints usage and exits 2" {
    # .invalid never resolves (RFC 6761), wherever the tests run; without a resolver
    # getaddrinfo() fails as well, after at most RES_OPTIONS' short timeout.
    for args in "-p 70000" "-p abc" "-p -1" "-x" "-a no-such-host.invalid" "extra"; do
        RES_OPTIONS="timeout:1 attempts:1" \
        run "$LAB_BIN/$LAB_SERVER" $args
        [ "$status" -eq 2 ] || { echo "args '$args' exited $status"; false; }
        [[ "$output" == *usage:* ]]
    done
}

@test "$SERVER: a port in use gives 'bind ADDR:PORT: reason' and exits 1" {
    run "$LAB_BIN/$LAB_SERVER" -p "$PORT"
    [ "$status" -eq 1 ]
    [ "$output" = "bind 127.0.0.1:$PORT: Address already in use" ]
}

@test "$SERVER: logs connect and close with the peer's address" {
    run "$PROBE" line -p "$PORT" -s hello
    [ "$status" -eq 0 ]
    [ "$output" = "HELLO" ]
    wait_for_line '^closed 127\.0\.0\.1:[0-9]+$'
    grep -Eq '^connected 127\.0\.0\.1:[0-9]+$' "$SERVER_LOG"
}

@test "$SERVER: half-close: replies owed after the client's EOF still arrive" {
    run "$PROBE" echo -p "$PORT" -n 100000
    echo "100,000 bytes sent, then the EOF: exit status $status, $output"
    [ "$status" -eq 0 ]
    [ "$output" = "echo: sent 100000, received 100000, ok" ]
    run "$PROBE" echo -p "$PORT" -n 0
    [ "$status" -eq 0 ]
}

@test "$SERVER: a line and the EOF behind it, both there before the server looks: the reply, then the close" {
    # The server is stopped while the client connects, sends 10 bytes and half-closes,
    # so the server finds the data and the EOF together (the socket in CLOSE-WAIT)
    # and reads them with one readiness: a recv() that returns the 10 bytes leaves
    # the EOF in the socket. Edge-triggered, it is not reported again: only a server
    # that reads on until EOF or EAGAIN closes the connection.
    kill -STOP "$SERVER_PID"
    background late "$PROBE" echo -p "$PORT" -n 10 -t 5
    late=$LAST_PID
    wait_for_tcp_state "$PORT" 08           # CLOSE-WAIT: the data and the FIN are in
    kill -CONT "$SERVER_PID"
    status=0
    wait "$late" || status=$?
    echo "10 bytes and the EOF at once: exit status $status, $(cat "$BATS_TEST_TMPDIR/late.out")"
    [ "$status" -eq 0 ]
}

@test "$SERVER: 1 MiB in both directions at once" {
    run "$PROBE" echo -p "$PORT" -n 1048576 -t 30
    [ "$status" -eq 0 ]
    [ "$output" = "echo: sent 1048576, received 1048576, ok" ]
}

@test "$SERVER: every byte value 0-255 passes, only a-z change" {
    run "$PROBE" echo -p "$PORT" -b -n 65536
    [ "$status" -eq 0 ]
    [ "$output" = "echo: sent 65536, received 65536, ok" ]
}

# on_ipv6: replace the server setup started by the same server on ::1.
on_ipv6() {
    stop_pid "$SERVER_PID" || true
    SERVER_PID=
    # shellcheck disable=SC2086   # the options are words, split on purpose
    start_server "$LAB_SERVER" $LAB_SERVER_ARGS -a ::1
    run head -n 1 "$SERVER_LOG"
    [[ "$output" =~ ^listening\ on\ \[::1\]:[0-9]+$ ]]
}

@test "$SERVER: on ::1: echoes, and logs the peer as [::1]:PORT" {
    on_ipv6
    run "$PROBE" line -a ::1 -p "$PORT" -s hello
    [ "$status" -eq 0 ]
    [ "$output" = "HELLO" ]
    wait_for_line '^closed \[::1\]:[0-9]+$'
    grep -Eq '^connected \[::1\]:[0-9]+$' "$SERVER_LOG"
}

@test "$SERVER: on ::1: every byte value 0-255 passes, only a-z change" {
    on_ipv6
    run "$PROBE" echo -a ::1 -p "$PORT" -b -n 65536
    [ "$status" -eq 0 ]
    [ "$output" = "echo: sent 65536, received 65536, ok" ]
}

@test "$SERVER: on ::1: half-close: replies owed after the client's EOF still arrive" {
    on_ipv6
    run "$PROBE" echo -a ::1 -p "$PORT" -n 100000
    [ "$status" -eq 0 ]
    [ "$output" = "echo: sent 100000, received 100000, ok" ]
}

@test "$SERVER: on ::1: 1 MiB in both directions at once" {
    on_ipv6
    run "$PROBE" echo -a ::1 -p "$PORT" -n 1048576 -t 30
    [ "$status" -eq 0 ]
    [ "$output" = "echo: sent 1048576, received 1048576, ok" ]
}

@test "$SERVER: a reset mid-stream costs only that connection" {
    run "$PROBE" reset -p "$PORT" -n 300000
    [ "$status" -eq 0 ]
    still_serving
}

@test "$SERVER: a client that closes with replies pending costs only itself" {
    run "$PROBE" drop -p "$PORT" -n 1000000
    [ "$status" -eq 0 ]
    still_serving
}

@test "$SERVER: a client that leaves before its replies arrive costs only itself" {
    # The server is stopped while the client connects, sends 20,000 bytes and closes:
    # with nothing unread, the close sends a FIN, not a RST. Once resumed, the server's
    # first reply draws a RST from the closed socket, and its next send() fails with
    # EPIPE: a server that does not ignore SIGPIPE dies of it there.
    kill -STOP "$SERVER_PID"
    exec {client}<>"/dev/tcp/127.0.0.1/$PORT"
    head -c 20000 /dev/zero | tr '\0' a >&"$client"
    exec {client}>&-
    kill -CONT "$SERVER_PID"
    still_serving
}

@test "$SERVER: a client that floods and never reads does not hold up another" {
    background flood "$PROBE" flood -p "$PORT" -d 60
    flooder=$LAST_PID
    # The flooder blocks only once the server stops taking its bytes: proof that
    # the server does not buffer without bound for a client that never reads.
    wait_for_line '^flood: blocked after ' 10 "$BATS_TEST_TMPDIR/flood.out"
    if [ "${LAB_ITERATIVE:-0}" = 1 ]; then
        # One client at a time: the second waits in the backlog behind the flooder.
        run "$PROBE" line -p "$PORT" -s other -t 1
        [ "$status" -eq 3 ]
        stop_pid "$flooder" || true
        run "$PROBE" line -p "$PORT" -s other -t 10
        [ "$status" -eq 0 ]
    else
        rss_before=$(rss_kib "$SERVER_PID")
        run "$PROBE" line -p "$PORT" -s other -t 10 -T
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = "OTHER" ]
        secs=${lines[1]#reply after }
        secs=${secs% s}
        echo "reply after $secs s while flooded"
        awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }'
        # Still flooding: the server's memory has not grown with it (8 MiB is generous).
        [ $(( $(rss_kib "$SERVER_PID") - rss_before )) -lt 8192 ]
    fi
}

@test "$SERVER: 500 connections come and go without leaking a descriptor" {
    before=$(open_fds "$SERVER_PID")
    run "$PROBE" churn -p "$PORT" -n 500 -c 10 -t 60
    [ "$status" -eq 0 ]
    [ "$output" = "churn: 500 ok" ]
    wait_for_count '^closed ' 500 20
    after=$(open_fds "$SERVER_PID")
    echo "descriptors before $before, after $after"
    [ "$after" -eq "$before" ]
}

@test "$SERVER: SIGINT closes every connection, prints the summary, exits 0" {
    exec {client}<>"/dev/tcp/127.0.0.1/$PORT"  # a client that is connected and silent
    wait_for_line '^connected '
    status=0
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    [ "$status" -eq 0 ]
    last=$(tail -n 1 "$SERVER_LOG")
    [[ "$last" =~ ^shutdown:\ served\ 1\ connections,\ echoed\ 0\ bytes$ ]]
    [ ! -s "$SERVER_LOG.err" ]
    # The silent client sees its connection closed (EOF), not a hang.
    timeout 5 cat <&"$client"
    exec {client}<&-
}
