#!/usr/bin/env bats
# What a connection costs a multiplexing server (03-07), and a coroutine (08):
# LAB.md's "an idle connection costs a server a few hundred bytes, not a buffer". A reply the kernel takes at once
# is never copied into memory of the connection's own; only what it does not take is
# queued, and that queue is capped (64 KiB) by backpressure.

load helpers

# idle_cost PROGRAM [ARGS...]: 1,000 connections, each after one round trip, held
# idle. The server's resident memory may grow by less than IDLE_MAX bytes per
# connection, 2 KiB unless set: its struct, its slot in the tables and the
# allocator's overhead, no buffer. (With a 64 KiB queue in every connection it grew
# by ~46 KiB each.)
idle_cost() {
    local max=${IDLE_MAX:-2048}
    [ "$(ulimit -Hn)" -ge 2048 ] || skip "needs ulimit -n 2048, hard limit is $(ulimit -Hn)"
    ulimit -n 2048              # the server's and the probe's: 1,000 each and some
    start_server "$@" -q
    before=$(rss_kib "$SERVER_PID")
    : >"$BATS_TEST_TMPDIR/idle.out"     # an earlier run's line must not match
    background idle "$PROBE" hold -p "$PORT" -n 1000 -t 60
    wait_for_line '^holding 1000$' 60 "$BATS_TEST_TMPDIR/idle.out"
    after=$(rss_kib "$SERVER_PID")
    per_conn=$(( (after - before) * 1024 / 1000 ))
    echo "RSS $before KiB, with 1,000 idle connections $after KiB: $per_conn bytes each"
    [ "$per_conn" -lt "$max" ]
}

# framed_idle_cost PROGRAM [ARGS...]: idle_cost for a framed server, whose clients
# probe hold cannot play (it speaks lines): the load generator opens the 1,000
# connections, each after one round trip of a framed message (-F), and holds them
# idle beside one busy one. The same bound applies: a header's 4 bytes aside, a
# framed connection costs what a plain one does.
framed_idle_cost() {
    local max=${IDLE_MAX:-2048} line after
    [ "$(ulimit -Hn)" -ge 2048 ] || skip "needs ulimit -n 2048, hard limit is $(ulimit -Hn)"
    ulimit -n 2048
    start_server "$@" -q
    before=$(rss_kib "$SERVER_PID")
    line=$("$LAB_BIN/tests/bench/loadgen" -p "$PORT" -F -c 1 -i 1000 -d 0.3 -P "$SERVER_PID")
    [[ "$line" == *" errors=0 held=1001 "* ]] || { echo "loadgen: $line"; return 1; }
    after=$(sed -n 's/.* server_rss_kb=\([0-9]*\) .*/\1/p' <<<"$line")
    per_conn=$(( (after - before) * 1024 / 1000 ))
    echo "RSS $before KiB, with 1,000 idle framed connections $after KiB: $per_conn bytes each"
    [ "$per_conn" -lt "$max" ]
}

# flood_cost PROGRAM [ARGS...]: 100 clients that send and never read. Each one's
# queue fills to its cap and the server stops reading it: together they hold at most
# 100 x 64 KiB (6,400 KiB) of its memory, with a quarter more for the allocator,
# and the server still answers someone else.
flood_cost() {
    start_server "$@" -q
    before=$(rss_kib "$SERVER_PID")
    for i in $(seq 100); do
        : >"$BATS_TEST_TMPDIR/flood$i.out"
        background "flood$i" "$PROBE" flood -p "$PORT" -d 60
    done
    for i in $(seq 100); do
        wait_for_line '^flood: blocked after ' 30 "$BATS_TEST_TMPDIR/flood$i.out"
    done
    run "$PROBE" line -p "$PORT" -s other -t 10
    [ "$status" -eq 0 ]
    [ "$output" = "OTHER" ]
    grown=$(( $(rss_kib "$SERVER_PID") - before ))
    echo "RSS grew by $grown KiB with 100 flooders"
    # Built with ASan (make check), every block has redzones and a freed one waits in
    # the quarantine (a queue's smaller sizes, as it doubled): 10-17 MiB measured.
    if [ "$LAB_BIN" = "$LAB_ROOT" ]; then
        [ "$grown" -le 8000 ]
    else
        [ "$grown" -le 24576 ]
    fi
}

# queues PORT: the send and receive queues (tx:rx, in hex) of both ends of every
# established connection to PORT, from /proc/net/tcp, one line each, sorted.
queues() {
    awk -v p="$(printf ':%04X' "$1")" '
        $4 == "01" && (substr($2, length($2) - 4) == p || substr($3, length($3) - 4) == p) {
            print $2, $3, $5
        }' /proc/net/tcp | sort
}

# slow_reader PROGRAM [ARGS...]: a client sends 33 MB and reads nothing until the
# server has stopped reading it (backpressure), then reads it all. So the server
# reads while replies are queued: the new ones must go out behind those, every byte
# in order.
slow_reader() {
    start_server "$@" -q
    local in=$BATS_TEST_TMPDIR/in want=$BATS_TEST_TMPDIR/want tries=1500 seen=0
    local sock now last=
    seq -f 'line %.0f, for a client slow to read' 1000000 >"$in"
    tr a-z A-Z <"$in" >"$want"
    exec {sock}<>"/dev/tcp/127.0.0.1/$PORT"
    cat "$in" >&"$sock" &
    BACKGROUND_PIDS+=("$!")
    # Stopped: bytes wait in the kernel's queues and not one has moved at five looks
    # in a row (100 ms), where a server that reads moves some in far less. (How many
    # wait varies: under memory pressure the kernel shrinks its windows. And a look
    # may miss a socket, the table changing while it is read: that only makes the
    # wait longer.)
    while [ "$seen" -lt 5 ]; do
        now=$(queues "$PORT")
        if [ -n "$now" ] && [ "$now" = "$last" ] && grep -qv ' 00000000:00000000$' <<<"$now"; then
            seen=$((seen + 1))
        else
            seen=0
        fi
        last=$now
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "the server did not stop reading within 30 s: $now"; return 1; }
        sleep 0.02
    done
    timeout 60 head -c "$(wc -c <"$in")" <&"$sock" | cmp - "$want"
    exec {sock}<&-
}

# each_backend FUNCTION: FUNCTION 07-selectors/server with SELECTOR=select, poll, epoll, sigio.
each_backend() {
    for backend in select poll epoll sigio; do
        echo "SELECTOR=$backend:"
        SELECTOR=$backend "$1" 07-selectors/server
        for pid in "${BACKGROUND_PIDS[@]}"; do
            stop_pid "$pid" || true
        done
        BACKGROUND_PIDS=()
        stop_pid "$SERVER_PID" || true
    done
}

@test "03: 1,000 idle connections cost a few hundred bytes each, not a buffer" {
    idle_cost 03-nonblocking-list/server
}

@test "04: 1,000 idle connections cost a few hundred bytes each, not a buffer" {
    idle_cost 04-select/server
}

@test "05: 1,000 idle connections cost a few hundred bytes each, not a buffer" {
    idle_cost 05-poll/server
}

@test "06: 1,000 idle connections cost a few hundred bytes each, not a buffer" {
    idle_cost 06-epoll/server
}

@test "06 -e: 1,000 idle connections cost a few hundred bytes each, not a buffer" {
    idle_cost 06-epoll/server -e
}

@test "07: 1,000 idle connections cost a few hundred bytes each, on every backend" {
    each_backend idle_cost
}

@test "08: 1,000 idle connections cost one stack page each, not two" {
    # A parked talk() touches the top page of its stack; its read buffer, half a page,
    # fits there beside the frames. (With a 4 KiB buffer it touched two: 8.3 KiB each.)
    # ASan's redzones and fake frames cost more: there the bound is only "no buffer".
    if [ "$LAB_BIN" = "$LAB_ROOT" ]; then
        IDLE_MAX=6144 idle_cost 08-coroutines/server
    else
        IDLE_MAX=65536 idle_cost 08-coroutines/server
    fi
}

@test "08 framed: 1,000 idle connections cost what the plain server's do: one stack page each" {
    # The body's buffer is the plain server's, on the stack of the same depth; the
    # header's 4 bytes and how much body is owed are local variables in the page
    # a parked coroutine touches anyway.
    if [ "$LAB_BIN" = "$LAB_ROOT" ]; then
        IDLE_MAX=6144 framed_idle_cost 08-coroutines/framed-server
    else
        IDLE_MAX=65536 framed_idle_cost 08-coroutines/framed-server
    fi
}

@test "08 framed: 1,000 idle connections cost what the plain server's do, completion hub (io_uring)" {
    if [ "$LAB_BIN" = "$LAB_ROOT" ]; then
        IDLE_MAX=6144 framed_idle_cost 08-coroutines/uring/framed-server
    else
        IDLE_MAX=65536 framed_idle_cost 08-coroutines/uring/framed-server
    fi
}

@test "03: 100 clients that flood and never read hold at most their queues' caps" {
    flood_cost 03-nonblocking-list/server
}

@test "04: 100 clients that flood and never read hold at most their queues' caps" {
    flood_cost 04-select/server
}

@test "05: 100 clients that flood and never read hold at most their queues' caps" {
    flood_cost 05-poll/server
}

@test "06: 100 clients that flood and never read hold at most their queues' caps" {
    flood_cost 06-epoll/server
}

@test "06 -e: 100 clients that flood and never read hold at most their queues' caps" {
    flood_cost 06-epoll/server -e
}

@test "07: 100 clients that flood and never read hold at most their queues' caps, on every backend" {
    each_backend flood_cost
}

@test "03: a client slow to read gets every reply byte, in order" {
    slow_reader 03-nonblocking-list/server
}

@test "04: a client slow to read gets every reply byte, in order" {
    slow_reader 04-select/server
}

@test "05: a client slow to read gets every reply byte, in order" {
    slow_reader 05-poll/server
}

@test "06: a client slow to read gets every reply byte, in order" {
    slow_reader 06-epoll/server
}

@test "06 -e: a client slow to read gets every reply byte, in order" {
    slow_reader 06-epoll/server -e
}

@test "07: a client slow to read gets every reply byte, in order, on every backend" {
    each_backend slow_reader
}

# idle_10k PROGRAM [-F]: the server's resident memory per connection, in bytes, with
# 10,000 idle connections held by the load generator (each after one round trip,
# framed with -F), as "PER_CONN" on stdout. The server is stopped after.
idle_10k() {
    local program=$1 before line after
    shift
    start_server "$program" -q
    before=$(rss_kib "$SERVER_PID")
    line=$("$LAB_BIN/tests/bench/loadgen" -p "$PORT" "$@" -c 1 -i 10000 -d 0.3 -P "$SERVER_PID" 2>/dev/null)
    [[ "$line" == *" errors=0 held=10001 "* ]] || { echo "loadgen: $line" >&2; return 1; }
    after=$(sed -n 's/.* server_rss_kb=\([0-9]*\) .*/\1/p' <<<"$line")
    stop_pid "$SERVER_PID"
    SERVER_PID=
    echo $(( (after - before) * 1024 / 10000 ))
}

@test "07 framed: 10,000 idle connections cost what the plain server's do, a header's bytes aside" {
    local backend plain framed slack=128
    [ "$(ulimit -Hn)" -ge 12000 ] || skip "needs ulimit -n 12000, hard limit is $(ulimit -Hn)"
    ulimit -n 12000             # the server's and the load generator's: 10,000 each and some
    # ASan's redzones grow with the struct in steps: there only "no buffer" holds.
    [ "$LAB_BIN" = "$LAB_ROOT" ] || slack=1024
    # select cannot hold 10,000 (FD_SETSIZE); the other three can.
    for backend in epoll poll sigio; do
        plain=$(SELECTOR=$backend idle_10k 07-selectors/server)
        framed=$(SELECTOR=$backend idle_10k 07-selectors/framed-server -F)
        echo "SELECTOR=$backend, 10,000 idle connections: plain $plain bytes each, framed $framed"
        [ "$framed" -le $((plain + slack)) ]
    done
}
