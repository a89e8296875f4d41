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
