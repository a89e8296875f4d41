#!/usr/bin/env bats
# Protocol-independent addresses (issue 11): every server and client takes -a as an
# IPv4 or IPv6 address or a host name, through getaddrinfo(); IPv6 addresses print
# as in a URL, "[::1]:PORT". The fault suite runs its echo cases on ::1 per server.

load helpers

SERVERS=(01-blocking/server 01-blocking/threads-server 02-nonblocking/server
    03-nonblocking-list/server 04-select/server 05-poll/server 06-epoll/server
    07-selectors/server 08-coroutines/server 08-coroutines/threads-server)
CLIENTS=(01-blocking/client 02-nonblocking/client 03-nonblocking-list/client
    04-select/client 05-poll/client 06-epoll/client 07-selectors/client
    08-coroutines/client)
# Each stage's client against its server, as the stage's own test runs it:
# stage|client options|golden file|client's exit status
PAIRS=("01-blocking||01-client.txt|0"
    "02-nonblocking|-g 100|02-client-lost.txt|1"
    "03-nonblocking-list||03-client.txt|0"
    "04-select|-n 5 -v|multiplex-client.txt|0"
    "05-poll|-n 5 -v|multiplex-client.txt|0"
    "06-epoll|-n 5 -v|multiplex-client.txt|0"
    "07-selectors|-n 5 -v|07-client.txt|0"
    "08-coroutines|-n 5 -v|multiplex-client.txt|0")
# .invalid never resolves (RFC 6761), wherever the tests run. Where no resolver answers,
# getaddrinfo() fails too (EAI_AGAIN), after a timeout: keep that short (glibc reads
# RES_OPTIONS), so that a machine without DNS fails these tests in seconds, not minutes.
UNKNOWN=no-such-host.invalid
export RES_OPTIONS="timeout:1 attempts:1"

# restart: stop the server of this test, so that the next start_server is the only one.
restart() {
    stop_pid "$SERVER_PID" || true
    SERVER_PID=
}

# clients_match ADDR: every stage's server on -a ADDR, and its client on -a ADDR,
# give the stage test's golden output.
clients_match() {
    local entry stage opts golden want
    for entry in "${PAIRS[@]}"; do
        IFS='|' read -r stage opts golden want <<<"$entry"
        start_server "$stage/server" -a "$1"
        # shellcheck disable=SC2086   # the options are words, split on purpose
        run "$LAB_BIN/$stage/client" -a "$1" -p "$PORT" $opts
        echo "$stage client -a $1: exit $status"
        [ "$status" -eq "$want" ]
        diff -u "$EXPECTED/$golden" <(echo "$output")
        restart
    done
}

@test "ipv6: every server's first line on ::1 is exactly 'listening on [::1]:PORT'" {
    for server in "${SERVERS[@]}"; do
        start_server "$server" -a ::1
        run head -n 1 "$SERVER_LOG"
        echo "$server: $output"
        [ "$output" = "listening on [::1]:$PORT" ]
        [ "$PORT" -gt 0 ]
        restart
    done
}

@test "ipv6: every server logs a peer on ::1 as [::1]:PORT" {
    for server in "${SERVERS[@]}"; do
        start_server "$server" -a ::1
        run "$PROBE" line -a ::1 -p "$PORT" -s hello
        echo "$server: $output"
        [ "$status" -eq 0 ]
        [ "$output" = "HELLO" ]
        wait_for_line '^closed \[::1\]:[0-9]+$'
        grep -Eq '^connected \[::1\]:[0-9]+$' "$SERVER_LOG"
        restart
    done
}

@test "ipv6: each stage's client with -a ::1 against its server on ::1 matches its golden file" {
    clients_match ::1
}

@test "ipv6: -a localhost: every server binds it, and each stage's client reaches its server" {
    for server in "${SERVERS[@]}"; do
        start_server "$server" -a localhost
        # localhost is 127.0.0.1, or ::1 first where /etc/hosts names both
        run head -n 1 "$SERVER_LOG"
        echo "$server: $output"
        [[ "$output" =~ ^listening\ on\ (127\.0\.0\.1|\[::1\]):$PORT$ ]]
        run "$PROBE" line -a localhost -p "$PORT" -s hello
        [ "$output" = "HELLO" ]
        restart
    done
    clients_match localhost
}

@test "ipv6: -a :: also takes IPv4 clients (Linux leaves IPV6_V6ONLY off), logged as v4-mapped" {
    [ "$(cat /proc/sys/net/ipv6/bindv6only 2>/dev/null)" != 1 ] ||
        skip "net.ipv6.bindv6only is 1 here: a socket on :: takes IPv6 only"
    start_server 06-epoll/server -a ::
    [ "$(head -n 1 "$SERVER_LOG")" = "listening on [::]:$PORT" ]
    run "$PROBE" line -a 127.0.0.1 -p "$PORT" -s four
    [ "$output" = "FOUR" ]
    run "$PROBE" line -a ::1 -p "$PORT" -s six
    [ "$output" = "SIX" ]
    wait_for_count '^closed ' 2
    grep -Eq '^connected \[::ffff:127\.0\.0\.1\]:[0-9]+$' "$SERVER_LOG"
    grep -Eq '^connected \[::1\]:[0-9]+$' "$SERVER_LOG"
}

@test "ipv6: an unknown host name: every server, client and test tool exits 2 and says why" {
    for program in "${SERVERS[@]}" "${CLIENTS[@]}" tests/bench/baseline; do
        run "$LAB_BIN/$program" -a "$UNKNOWN" -p 1
        echo "$program: exit $status: ${lines[0]}"
        [ "$status" -eq 2 ]
        [[ "${lines[0]}" == *"-a '$UNKNOWN': "?* ]]
    done
    for program in "$PROBE line -s x" "$LAB_BIN/tests/bench/loadgen -q"; do
        run $program -a "$UNKNOWN" -p 1
        echo "$program: exit $status: ${lines[0]}"
        [ "$status" -eq 2 ]
        [[ "${lines[0]}" == *"-a '$UNKNOWN': "?* ]]
    done
}

@test "ipv6: a port in use on ::1: every server says 'bind [::1]:PORT: reason' and exits 1" {
    start_server 06-epoll/server -a ::1
    for server in "${SERVERS[@]}"; do
        run "$LAB_BIN/$server" -a ::1 -p "$PORT"
        echo "$server: exit $status: $output"
        [ "$status" -eq 1 ]
        [ "$output" = "bind [::1]:$PORT: Address already in use" ]
    done
}

@test "ipv6: 01's and 02's clients name the address they could not reach, in brackets" {
    start_server 01-blocking/server -a ::1
    restart     # its port is free now: a connect to it is refused
    for client in 01-blocking/client 02-nonblocking/client; do
        run "$LAB_BIN/$client" -a ::1 -p "$PORT"
        echo "$client: exit $status: $output"
        [ "$status" -eq 1 ]
        [ "$output" = "connect [::1]:$PORT: Connection refused" ]
    done
}

@test "ipv6: the benchmark's baseline and load generator work on ::1" {
    start_server tests/bench/baseline -a ::1
    [ "$(head -n 1 "$SERVER_LOG")" = "listening on [::1]:$PORT" ]
    run "$LAB_BIN/tests/bench/loadgen" -a ::1 -p "$PORT" -c 2 -d 0.2 -q
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" errors=0 "* ]]
}
