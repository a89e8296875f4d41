#!/usr/bin/env bats
# The framed servers (note 002's cure, /work/shared/LAB.md "Framed messages"): a
# 4-byte length in network byte order (0 to 1 MiB), then that many bytes; the reply
# is the same header, then the body upper-cased. Written once, run by tests/run
# against every framed server, as tests/fault.bats is against every plain one:
#   LAB_SERVER       the server program (default 01-blocking/framed-server)
#   LAB_SERVER_ARGS  options it runs with (words without spaces)
#   SELECTOR         07's backend, passed on in the environment

load helpers

LAB_SERVER=${LAB_SERVER:-01-blocking/framed-server}
# as the test names show it
SERVER="$LAB_SERVER${LAB_SERVER_ARGS:+ $LAB_SERVER_ARGS}${SELECTOR:+ (SELECTOR=$SELECTOR)}"

# start [ARGS...]: the server under test, with ARGS added (e.g. -q).
start() {
    # shellcheck disable=SC2086   # the options are words, split on purpose
    start_server "$LAB_SERVER" $LAB_SERVER_ARGS "$@"
}

# still_serving: a new framed client is answered.
still_serving() {
    run "$PROBE" frames -p "$PORT" -m big -n 5
    [ "$status" -eq 0 ]
    [ "$output" = "frames: 1 messages, 5 bytes, ok" ]
}

# PEER: a peer address as the log lines write it
PEER='127\.0\.0\.1:[0-9]+'

@test "$SERVER: first line names the real port; a bad option prints usage and exits 2" {
    start
    [[ "$(head -n 1 "$SERVER_LOG")" =~ ^listening\ on\ 127\.0\.0\.1:[0-9]+$ ]]
    run "$LAB_BIN/$LAB_SERVER" -x
    [ "$status" -eq 2 ]
    [[ "$output" == *usage:* ]]
}

@test "$SERVER: the corpus, each frame split at every byte boundary, byte by byte, all in one send" {
    start
    run "$PROBE" frames -p "$PORT" -t 60
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "frames: 609 messages, 161182 bytes, ok" ]
}

@test "$SERVER: a zero-length message, and a length whose low byte is 'a' (97) comes back unchanged" {
    start
    run "$PROBE" frames -p "$PORT" -m big -n 0
    [ "$status" -eq 0 ]
    [ "$output" = "frames: 1 messages, 0 bytes, ok" ]
    run "$PROBE" frames -p "$PORT" -m big -n 97
    [ "$status" -eq 0 ]
    [ "$output" = "frames: 1 messages, 97 bytes, ok" ]
}

@test "$SERVER: a 1 MiB message (the limit) both ways at once" {
    start
    run "$PROBE" frames -p "$PORT" -m big -n 1048576 -t 60
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "frames: 1 messages, 1048576 bytes, ok" ]
}

@test "$SERVER: a length over the limit: logged, that client closed unanswered, another served meanwhile and after" {
    start
    # A client in the middle of a message: its header and 2 of its 5 bytes are in.
    exec {held}<>"/dev/tcp/127.0.0.1/$PORT"
    printf '\0\0\0\5he' >&"$held"
    wait_for_line '^connected '
    run "$PROBE" frames -p "$PORT" -m over -n 1048577
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "frames: closed, no reply" ]
    wait_for_line "^refused $PEER: length 1048577 over the limit \\(1048576\\)\$"
    # The client in the middle goes on: the rest of its message, and its whole reply.
    printf 'llo' >&"$held"
    reply=$(timeout 10 head -c 9 <&"$held" | od -An -c | tr -s ' ')
    exec {held}>&-
    echo "reply: $reply"
    [ "$reply" = " \\0 \\0 \\0 005 H E L L O" ]
    still_serving
    run "$PROBE" frames -p "$PORT" -m over -n 4294967295
    [ "$output" = "frames: closed, no reply" ]
    wait_for_line "^refused $PEER: length 4294967295 over the limit \\(1048576\\)\$"
    still_serving
}

@test "$SERVER: an EOF inside a header: logged, closed, the server goes on" {
    start
    run "$PROBE" frames -p "$PORT" -m trunc -n 2
    [ "$status" -eq 0 ]
    [ "$output" = "frames: closed after 0 reply bytes" ]
    wait_for_line "^truncated $PEER: EOF after 2 of 4 header bytes\$"
    still_serving
}

@test "$SERVER: an EOF inside a body: logged, closed after the part of the reply it could stream, the server goes on" {
    start
    run "$PROBE" frames -p "$PORT" -m trunc -n 54
    [ "$status" -eq 0 ]
    # the header and the 50 body bytes that came: streamed, then the close
    [ "$output" = "frames: closed after 54 reply bytes" ]
    wait_for_line "^truncated $PEER: EOF after 50 of 100 body bytes\$"
    still_serving
}

@test "$SERVER: a slow reader (1 MiB sent, nothing read yet) holds up nobody, and gets its whole reply" {
    start
    exec {slow}<>"/dev/tcp/127.0.0.1/$PORT"
    # The writer blocks once the buffers fill: the server cannot send, so stops reading.
    background slowwriter bash -c 'exec >&"$1"; printf "\0\20\0\0"; head -c 1048576 /dev/zero | tr "\0" a' \
        bash "$slow"
    # Slow indeed: replies wait unread in its socket (/proc/net/tcp: the connection
    # to the server's port, rx_queue above 0).
    port=$(printf ':%04X' "$PORT")
    for i in $(seq 500); do
        awk -v port="$port" '$3 ~ port "$" && $4 == "01" { split($5, q, ":"); if (q[2] != "00000000") found = 1 }
            END { exit !found }' /proc/net/tcp && break
        sleep 0.02
    done
    [ "$i" -lt 500 ]
    run "$PROBE" frames -p "$PORT" -m big -n 64 -t 2
    echo "another client while the slow reader reads nothing: $output"
    [ "$status" -eq 0 ]
    timeout 30 head -c 1048580 <&"$slow" >"$BATS_TEST_TMPDIR/reply"
    exec {slow}>&-
    [ "$(wc -c <"$BATS_TEST_TMPDIR/reply")" -eq 1048580 ]
    [ "$(head -c 4 "$BATS_TEST_TMPDIR/reply" | od -An -tx1 | tr -d ' ')" = 00100000 ]
    [ "$(tail -c +5 "$BATS_TEST_TMPDIR/reply" | tr -d A | wc -c)" -eq 0 ]
}

@test "$SERVER: a client that floods frames and never reads: 10 others served promptly, memory bounded" {
    start -q
    rss_before=$(rss_kib "$SERVER_PID")
    background flood "$PROBE" frames -p "$PORT" -m flood -d 60
    wait_for_line '^flood: blocked after ' 10 "$BATS_TEST_TMPDIR/flood.out"
    # Ten clients at once, each with a 2 s deadline: a server stuck on the flooder
    # would miss it by far.
    pids=()
    for i in $(seq 10); do
        "$PROBE" frames -p "$PORT" -m big -n 1000 -t 2 >"$BATS_TEST_TMPDIR/other$i.out" 2>&1 &
        pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    cat "$BATS_TEST_TMPDIR"/other*.out
    [ "$failed" -eq 0 ]
    grown=$(( $(rss_kib "$SERVER_PID") - rss_before ))
    echo "RSS grew by $grown KiB while flooded"
    [ "$grown" -lt 8192 ]
}

@test "$SERVER: a round trip does not wait for a delayed ACK (TCP_NODELAY): median under 20 ms" {
    # One client, one small message at a time. A server that sends the reply's header
    # and body apart, with Nagle's algorithm on, holds the body until the header is
    # ACKed, and the client, waiting for the whole reply, delays its ACK: 40 ms a
    # message on Linux. Unloaded, a round trip here takes tens of microseconds.
    start -q
    run "$LAB_BIN/tests/bench/loadgen" -p "$PORT" -F -c 1 -d 0.5 -q
    echo "$output"
    [ "$status" -eq 0 ]
    p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$output")
    [ -n "$p50" ]
    [ "$p50" -lt 20000 ]
}

@test "$SERVER: 1,000 concurrent framed connections, each answered" {
    [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 4096 ] \
        || skip "needs ulimit -n 4096, hard limit is $(ulimit -Hn)"
    ulimit -n 4096      # for the server and the load generator, each its own process
    start -q
    run "$LAB_BIN/tests/bench/loadgen" -p "$PORT" -F -c 1000 -d 1 -q
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" errors=0 held=1000 "* ]]
}

@test "$SERVER: -q hides connected and closed, not the warnings" {
    start -q
    run "$PROBE" frames -p "$PORT" -m big -n 10
    [ "$status" -eq 0 ]
    run "$PROBE" frames -p "$PORT" -m over
    [ "$status" -eq 0 ]
    run "$PROBE" frames -p "$PORT" -m trunc -n 3
    [ "$status" -eq 0 ]
    run "$PROBE" frames -p "$PORT" -m trunc -n 10
    [ "$status" -eq 0 ]
    wait_for_count '^truncated ' 2
    stop_pid "$SERVER_PID" TERM
    SERVER_PID=
    cat "$SERVER_LOG"
    ! grep -Eq '^(connected|closed) ' "$SERVER_LOG"
    [ "$(wc -l <"$SERVER_LOG")" -eq 5 ]
    grep -Eq "^refused $PEER: length 1048577 over the limit \\(1048576\\)\$" "$SERVER_LOG"
    grep -Eq "^truncated $PEER: EOF after 3 of 4 header bytes\$" "$SERVER_LOG"
    grep -Eq "^truncated $PEER: EOF after 6 of 100 body bytes\$" "$SERVER_LOG"
    [[ "$(tail -n 1 "$SERVER_LOG")" =~ ^shutdown:\ served\ 4\ connections,\ echoed\ [0-9]+\ bytes$ ]]
}

@test "$SERVER: -v logs each message's length, each read and write" {
    start -v
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -f abc
    [ "$status" -eq 0 ]
    wait_for_line '^closed '
    grep -Eq "^message $PEER 3 bytes\$" "$SERVER_LOG"
    grep -Eq "^read $PEER [0-9]+ bytes\$" "$SERVER_LOG"
    grep -Eq "^wrote $PEER [0-9]+ bytes\$" "$SERVER_LOG"
}

@test "$SERVER: SIGINT closes every connection, prints the summary (headers counted), exits 0" {
    start
    exec {client}<>"/dev/tcp/127.0.0.1/$PORT"
    printf '\0\0\0\5hello' >&"$client"
    [ "$(timeout 10 head -c 9 <&"$client" | tail -c 5)" = HELLO ]
    status=0
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    [ "$status" -eq 0 ]
    [ "$(tail -n 1 "$SERVER_LOG")" = "shutdown: served 1 connections, echoed 9 bytes" ]
    [ ! -s "$SERVER_LOG.err" ]
    # The client sees its connection closed (EOF), not a hang.
    timeout 5 cat <&"$client"
    exec {client}<&-
}

@test "$SERVER: 01 client -f: replies match the golden file" {
    start
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -f
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/01-client.txt" <(echo "$output")
}

@test "$SERVER: 01 client -N -f: the length prefix is there, but one recv() taken as one reply merges them" {
    start -q
    run "$LAB_BIN/01-blocking/client" -p "$PORT" -N -f hello world again
    [ "$status" -eq 1 ]
    diff -u "$EXPECTED/01-client-naive-framed.txt" <(echo "$output")
}
