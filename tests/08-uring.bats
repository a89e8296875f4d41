#!/usr/bin/env bats
# 08-coroutines' completion hub in its modern form (hub-uring.c): each of its
# paths forced with the knobs the hub reads from the environment, so that what
# is rare under a real load happens on every run:
#   URING_BUFS=8   a ring of 8 buffers: most multishot recvs end with -ENOBUFS,
#                  and must be armed again without losing anyone's bytes;
#   URING_CQ=16    a 16-entry CQ: completions overflow, a multishot ends without
#                  IORING_CQE_F_MORE, and must be armed again;
#   a flooder that never reads beside ten talkers, on that small ring: its bytes
#                  are copied out of the ring at once and capped per connection,
#                  so it can neither empty the ring nor grow the server.
# The first form (URING=first) passes the fault and multiplex suites in tests/run.

load helpers

SERVER=08-coroutines/uring/server
CLIENT=08-coroutines/uring/client

# The replies checked line by line by the client: another's bytes (a buffer
# given back twice) or a client never answered (a multishot not armed again)
# fail it.
@test "08 uring: a ring of 8 buffers under 100 clients, 20 lines each: every reply right (ENOBUFS survived)" {
    URING_BUFS=8 start_server "$SERVER" -q
    run timeout 30 "$LAB_BIN/$CLIENT" -p "$PORT" -n 100 -m 20
    echo "$output" | tail -n 5
    [ "$status" -ne 124 ] || echo "the client was still waiting after 30 s: some clients never answered"
    [ "$status" -eq 0 ]
    [ "$output" = "100 of 100 connections served" ]
}

@test "08 uring: a 16-entry completion queue under 5,000 clients: every client served (multishots armed again without F_MORE)" {
    [ "$(ulimit -Hn)" -ge 5200 ] || skip "needs ulimit -n 5200, hard limit is $(ulimit -Hn)"
    ulimit -n 5200
    URING_CQ=16 start_server "$SERVER" -q
    run timeout 30 "$LAB_BIN/$CLIENT" -p "$PORT" -n 5000 -m 2
    echo "$output" | tail -n 5
    [ "$status" -ne 124 ] || echo "the client was still waiting after 30 s: some clients never answered"
    [ "$status" -eq 0 ]
    [ "$output" = "5000 of 5000 connections served" ]
}

@test "08 uring: a flooder that never reads beside ten talkers, on a ring of 8 buffers: the ten served, memory bounded" {
    URING_BUFS=8 start_server "$SERVER" -q
    rss_before=$(rss_kib "$SERVER_PID")
    background flood "$PROBE" flood -p "$PORT" -d 60
    wait_for_line '^flood: blocked after ' 10 "$BATS_TEST_TMPDIR/flood.out" \
        || { echo "the flooder was never blocked: the server read all it sent for 10 s"; false; }
    # Each of the ten sends 10 lines and checks each reply, with a 5 s deadline.
    run "$PROBE" churn -p "$PORT" -n 10 -c 10 -t 5
    echo "ten talkers beside the flooder: exit status $status ${output:-(no output)}"
    [ "$status" -eq 0 ]
    run timeout 30 "$LAB_BIN/$CLIENT" -p "$PORT" -n 10 -m 10
    echo "$output"
    [ "$output" = "10 of 10 connections served" ]
    grown=$(( $(rss_kib "$SERVER_PID") - rss_before ))
    echo "RSS grew by $grown KiB while flooded"
    [ "$grown" -lt 4096 ]
}

@test "08 uring: a feature switched off, or a knob out of range, is said in one line and served all the same" {
    URING_BUFS=7 URING_OFF=accept,ringfd start_server "$SERVER" -q
    cat "$SERVER_LOG.err"
    [ "$(cat "$SERVER_LOG.err")" = "io_uring: URING_BUFS=7 is not a power of two from 1 to 32768: 512 instead" ]
    run timeout 30 "$LAB_BIN/$CLIENT" -p "$PORT" -n 20 -m 3
    [ "$output" = "20 of 20 connections served" ]
}
