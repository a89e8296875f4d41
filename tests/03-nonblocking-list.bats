#!/usr/bin/env bats
# 03-nonblocking-list: twenty clients at once; -s trades CPU for latency.

load helpers

# median_ms OUTPUT: the median from the client's "N replies: median M ms, ..." line.
median_ms() {
    sed -n 's/^.* replies: median \([0-9.]*\) ms, .*$/\1/p' <<<"$1"
}

@test "03: a client that connects and thinks before it sends is still served" {
    # Until its line comes, every turn of the loop finds the socket empty (EAGAIN):
    # a server that takes that for an error drops the client before it says a word.
    start_server 03-nonblocking-list/server
    exec {client}<>"/dev/tcp/127.0.0.1/$PORT"
    wait_for_line '^connected '
    sleep 0.2           # the client's think time: thousands of turns of the loop
    printf 'hello\n' >&"$client"
    IFS= read -r -t 5 reply <&"$client" || reply="(no reply: the connection was closed, or 5 s passed)"
    exec {client}<&-
    echo "hello -> $reply"
    [ "$reply" = HELLO ]
}

@test "03: the notes' 20 clients are served, all connected at the same time" {
    start_server 03-nonblocking-list/server
    run "$LAB_BIN/03-nonblocking-list/client" -p "$PORT"
    diff -u "$EXPECTED/03-client.txt" <(echo "$output")
    [ "$status" -eq 0 ]
    # The client closes nothing until all twenty have their reply: the log must
    # show twenty connects before the first close.
    wait_for_count '^closed ' 20
    [ "$(sed -n '2,21p' "$SERVER_LOG" | grep -c '^connected ')" -eq 20 ]
}

@test "03: without -s the loop spins; -s 10000 sleeps: CPU down, latency up" {
    start_server 03-nonblocking-list/server -q
    spin_cpu=$(cpu_percent "$SERVER_PID" 1)
    run "$LAB_BIN/03-nonblocking-list/client" -p "$PORT" -n 5 -m 40 -t
    [ "$status" -eq 0 ]
    spin_ms=$(median_ms "$output")
    stop_pid "$SERVER_PID"

    start_server 03-nonblocking-list/server -q -s 10000
    sleep_cpu=$(cpu_percent "$SERVER_PID" 1)
    run "$LAB_BIN/03-nonblocking-list/client" -p "$PORT" -n 5 -m 40 -t
    [ "$status" -eq 0 ]
    sleep_ms=$(median_ms "$output")

    echo "spinning: CPU $spin_cpu %, median reply $spin_ms ms"
    echo "-s 10000: CPU $sleep_cpu %, median reply $sleep_ms ms"
    [ "$spin_cpu" -ge 30 ]     # sleeping servers show ~0: room for a busy CI
    [ "$sleep_cpu" -le 20 ]
    awk -v a="$spin_ms" -v b="$sleep_ms" 'BEGIN { exit !(b >= 4 && a < b / 2) }'
}

@test "03: -s takes a number of microseconds, anything else is a usage error" {
    run "$LAB_BIN/03-nonblocking-list/server" -s ten
    [ "$status" -eq 2 ]
    [[ "$output" == *usage:* ]]
}

@test "03 client: a reply longer than its line is an error that says so (no stale errno)" {
    start_server tests/long-reply      # 10,000 bytes before its newline
    run "$LAB_BIN/03-nonblocking-list/client" -p "$PORT" -n 1
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${lines[0]}" = "hello 1 -> Message too long" ]
}
