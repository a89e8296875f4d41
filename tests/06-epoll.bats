#!/usr/bin/env bats
# 06-epoll: 10,000 concurrent connections, level- and edge-triggered.

load helpers

@test "06: the epoll client's replies match the golden file" {
    start_server 06-epoll/server
    run "$LAB_BIN/06-epoll/client" -p "$PORT" -n 5 -v
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
}

@test "06: the client's finished connections cost no CPU once the server closes them" {
    # 02's server answers one line per connection and closes it, one client at a
    # time, with a blocking recv(): a silent client holds it up.
    start_server 02-nonblocking/server
    exec {silent}<>"/dev/tcp/127.0.0.1/$PORT"
    wait_for_line '^connected '
    # The client starts 256 connections at once and the 257th when one is done
    # (MAX_IN_FLIGHT): the 257th comes in behind a second silent client.
    background client "$LAB_BIN/06-epoll/client" -p "$PORT" -n 257 {silent}>&-
    client=$LAST_PID
    wait_for_backlog "$PORT" 256
    exec {late}<>"/dev/tcp/127.0.0.1/$PORT"
    exec {silent}>&-
    wait_for_count '^closed ' 257         # the first silent one, then the 256
    wait_for_count '^connected ' 258      # and 02 waits on the second silent one
    cpu=$(cpu_percent "$client" 1)
    echo "client CPU with 256 connections done and closed, one waiting: $cpu %"
    exec {late}>&-
    status=0
    wait "$client" || status=$?
    tail -n 1 "$BATS_TEST_TMPDIR/client.out"
    [ "$cpu" -le 10 ]
    [ "$status" -eq 0 ]
    [ "$(tail -n 1 "$BATS_TEST_TMPDIR/client.out")" = "257 of 257 connections served" ]
}

@test "06: a descriptor limit too low for -n: socket()'s EMFILE explained, as in 05" {
    start_server 06-epoll/server -q
    # LeakSanitizer (make check) reads /proc/self/task at exit, and this client has no
    # descriptor left to open it with: it would fail, and hang trying to report it.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        run bash -c 'ulimit -S -n 64 && exec "$0" -p "$1" -n 100' "$LAB_BIN/06-epoll/client" "$PORT"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"socket: Too many open files: 100 connections need more descriptors than ulimit -n allows (64): raise it first, e.g. ulimit -n 116"* ]]
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

# calls_per_request [-e]: 06's server under strace -c, and one client that sends 200
# lines, one at a time, each when the last reply has come and a moment has passed (so
# that the server finds its socket empty, as a real client's server mostly does). Sets
# recvs and sends (calls per request) and ctls (epoll_ctl calls in all).
calls_per_request() {
    local out=$BATS_TEST_TMPDIR/strace$1.txt tracer sock reply
    SERVER_LOG=$BATS_TEST_TMPDIR/server$1.log
    : >"$SERVER_LOG"
    # LeakSanitizer cannot work under ptrace (make check): it would fail at exit.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        strace -f -c -o "$out" "$LAB_BIN/06-epoll/server" -p 0 "$@" >"$SERVER_LOG" 2>"$SERVER_LOG.err" &
    tracer=$!
    BACKGROUND_PIDS+=("$tracer")
    wait_for_line '^listening on '
    PORT=$(sed -n '1s/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG")
    SERVER_PID=$(pgrep -P "$tracer")
    exec {sock}<>"/dev/tcp/127.0.0.1/$PORT"
    for i in $(seq 200); do
        printf 'request %d\n' "$i" >&"$sock"
        IFS= read -r reply <&"$sock"
        [ "$reply" = "REQUEST $i" ]
        sleep 0.002             # the client's think time, not a synchronisation
    done
    exec {sock}<&-
    wait_for_line '^closed '
    kill -TERM "$SERVER_PID"    # strace's child, not ours: stop_pid cannot wait for it
    SERVER_PID=
    stop_pid "$tracer" 0        # no signal: strace exits with it, having written its table
    # strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall
    calls() { awk -v name="$1" '$NF == name { n = $4 } END { print n + 0 }' "$out"; }
    recvs=$(awk -v n="$(calls recvfrom)" 'BEGIN { printf "%.2f", n / 200 }')
    sends=$(awk -v n="$(calls sendto)" 'BEGIN { printf "%.2f", n / 200 }')
    ctls=$(calls epoll_ctl)
    echo "06 ${1:-(level-triggered)}: per request $recvs recv and $sends send; epoll_ctl $ctls in all"
}

@test "06 and 06 -e: one recv and one send per request, and epoll_ctl only to register" {
    command -v strace >/dev/null || skip "needs strace"
    for mode in "" -e; do
        # shellcheck disable=SC2086   # no mode: no argument
        calls_per_request $mode
        # 201 recvs: the 200 lines and the EOF.
        awk -v r="$recvs" -v s="$sends" 'BEGIN { exit !(r < 1.1 && s < 1.1) }'
        [ "$ctls" -eq 3 ]       # EPOLL_CTL_ADD: the listener, the self-pipe and the connection
    done
}

@test "06 and 06 -e: urgent data mid-line, where recv stops short: the whole line is answered" {
    run "$PROBE" oob -p 1
    [[ "$output" != *"unknown command"* ]] || skip "needs tests/probe's oob command"
    for mode in "" -e; do
        # shellcheck disable=SC2086   # no mode: no argument
        start_server 06-epoll/server -q $mode
        # Whether "def" is there before the server's first recv is a matter of
        # timing: twenty tries see both cases.
        for try in $(seq 20); do
            run "$PROBE" oob -p "$PORT" -t 2
            [ "$status" -eq 0 ] && [ "$output" = ABCDEF ] ||
                { echo "06 $mode, try $try: status $status, output: $output"; false; }
        done
        stop_pid "$SERVER_PID"
    done
}

@test "06 and 06 -e: a line and the EOF right behind it: the reply, then the close" {
    for mode in "" -e; do
        # shellcheck disable=SC2086   # no mode: no argument
        start_server 06-epoll/server -q $mode
        # The probe half-closes as soon as its 10 bytes are sent: often both are
        # there before the server's first recv, which then returns less than it
        # asked for without the socket being empty: the EOF is still to be read.
        for try in $(seq 20); do
            run "$PROBE" echo -p "$PORT" -n 10 -t 2
            [ "$status" -eq 0 ] ||
                { echo "06 $mode, try $try: status $status, output: $output"; false; }
        done
        stop_pid "$SERVER_PID"
    done
}
