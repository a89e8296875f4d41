#!/usr/bin/env bats
# 08's framed server (08-coroutines/framed-server.c), driven from bash alone: the
# framed protocol (a 4-byte length in network byte order, 0 to 1 MiB, then the body;
# the reply is the same header and the body upper-cased) over bash's /dev/tcp.
# tests/run runs it once per build (LAB_SERVER): the epoll hub, the ucontext switch,
# the completion hub. tests/framed.bats, with the probe's `frames`, checks every
# framed server against the same text; this file checks what the coroutine adds:
# each piece of a message read by the server before the next is sent, a reader
# that never reads, 1,000 connections in one thread.

load helpers

LAB_SERVER=${LAB_SERVER:-08-coroutines/framed-server}
SERVER=$LAB_SERVER
export LC_ALL=C         # tr and wc on bytes, not characters

# header N: the 4 bytes of the length N in network byte order, as printf escapes.
header() {
    printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
        $(($1 >> 8 & 255)) $(($1 & 255))
}

# frame FILE: FILE's bytes as one message; reply FILE: what the server must send back.
frame() {
    # shellcheck disable=SC2059     # the format is the header's escapes, on purpose
    printf "$(header "$(wc -c <"$1")")"
    cat "$1"
}
reply() {
    # shellcheck disable=SC2059
    printf "$(header "$(wc -c <"$1")")"
    tr a-z A-Z <"$1"
}

# reads: how many recv()s the -v server has logged so far.
reads() {
    grep -c '^read ' "$SERVER_LOG" || true
}

# connect: open a connection to the server on descriptor $conn.
connect() {
    exec {conn}<>"/dev/tcp/127.0.0.1/$PORT"
}

@test "$SERVER: a message split at every byte boundary, header included, each part read before the next is sent" {
    start_server "$LAB_SERVER" -v
    local msg=$BATS_TEST_TMPDIR/msg whole=$BATS_TEST_TMPDIR/whole want=$BATS_TEST_TMPDIR/want
    printf 'Hello, framed 08!' >"$msg"          # 17 bytes: 21 with the header
    frame "$msg" >"$whole"
    reply "$msg" >"$want"
    connect
    for k in $(seq 1 20); do
        before=$(reads)
        head -c "$k" "$whole" >&"$conn"
        # The server has taken the first part (the header, or what there is of it,
        # then what body came with it) before the rest is sent: it must keep its
        # place between the two. Its -v lines say so; no sleep needed.
        wait_for_count '^read ' $((before + (k > 4 ? 2 : 1)))
        tail -c +$((k + 1)) "$whole" >&"$conn"
        timeout 5 head -c 21 <&"$conn" | cmp - "$want" || { echo "split at $k"; false; }
    done
    exec {conn}>&-
    wait_for_line '^closed '
    ! grep -E '^(truncated|refused) ' "$SERVER_LOG"
}

@test "$SERVER: a message one byte at a time, each byte read alone" {
    start_server "$LAB_SERVER" -v
    local msg=$BATS_TEST_TMPDIR/msg whole=$BATS_TEST_TMPDIR/whole want=$BATS_TEST_TMPDIR/want
    printf 'one byte: ok' >"$msg"
    frame "$msg" >"$whole"
    reply "$msg" >"$want"
    size=$(wc -c <"$whole")
    connect
    for k in $(seq 1 "$size"); do
        before=$(reads)
        tail -c +"$k" "$whole" | head -c 1 >&"$conn"
        wait_for_count '^read ' $((before + 1))
    done
    timeout 5 head -c "$size" <&"$conn" | cmp - "$want"
    exec {conn}>&-
}

@test "$SERVER: several messages in one write (empty, every byte value, 300 bytes): every reply, in order" {
    start_server "$LAB_SERVER"
    local in=$BATS_TEST_TMPDIR/in want=$BATS_TEST_TMPDIR/want m=$BATS_TEST_TMPDIR/m
    : >"$in"
    : >"$want"
    for i in 0 1 5 17 300 bytes; do
        if [ "$i" = bytes ]; then
            for b in $(seq 0 255); do printf "\\x$(printf %02x "$b")"; done >"$m"
        else
            # letters of both cases beside other bytes, cut to i bytes
            for _ in $(seq 22); do printf 'Mixed Case 0-9\n'; done | head -c "$i" >"$m"
        fi
        frame "$m" >>"$in"
        reply "$m" >>"$want"
    done
    connect
    cat "$in" >&"$conn"                         # one write: every message at once
    timeout 5 head -c "$(wc -c <"$want")" <&"$conn" | cmp - "$want"
    exec {conn}>&-
    wait_for_line '^closed '
    ! grep -E '^(truncated|refused) ' "$SERVER_LOG"
}

@test "$SERVER: a zero-length message: its header comes back; then EOF is the normal end" {
    start_server "$LAB_SERVER"
    connect
    printf '\0\0\0\0' >&"$conn"
    [ "$(timeout 5 head -c 4 <&"$conn" | od -An -tx1 | tr -d ' \n')" = 00000000 ]
    exec {conn}>&-
    wait_for_line '^closed '
    [ "$(grep -c -E '^(truncated|refused) ' "$SERVER_LOG")" -eq 0 ]
}

@test "$SERVER: 1 MiB (the limit) in both directions at once" {
    start_server "$LAB_SERVER" -q
    local m=$BATS_TEST_TMPDIR/m want=$BATS_TEST_TMPDIR/want
    head -c 1048576 /dev/urandom >"$m"
    reply "$m" >"$want"
    connect
    frame "$m" >&"$conn" &          # sent while the reply is read: neither side waits
    BACKGROUND_PIDS+=("$!")
    timeout 30 head -c 1048580 <&"$conn" | cmp - "$want"
    exec {conn}>&-
}

@test "$SERVER: a length over the limit: one line, closed with no reply byte, the others served" {
    start_server "$LAB_SERVER" -q           # -q: the line is a warning, shown anyway
    connect
    printf '\x00\x10\x00\x01' >&"$conn"     # 1,048,577
    [ "$(timeout 5 cat <&"$conn" | wc -c)" -eq 0 ]
    exec {conn}>&-
    wait_for_line '^refused 127\.0\.0\.1:[0-9]+: length 1048577 over the limit \(1048576\)$'
    connect
    printf '\0\0\0\2ok' >&"$conn"
    [ "$(timeout 5 head -c 6 <&"$conn" | tail -c 2)" = OK ]
    exec {conn}>&-
}

@test "$SERVER: EOF inside a header or a body: one line each, that connection closed, the others served" {
    start_server "$LAB_SERVER" -q
    for k in 1 2 3; do
        connect
        printf '\0\0\0\144' | head -c "$k" >&"$conn"
        exec {conn}>&-              # nothing unread here: a FIN, the server reads EOF
        wait_for_line "^truncated 127\\.0\\.0\\.1:[0-9]+: EOF after $k of 4 header bytes\$"
    done
    connect
    printf '\0\0\0\144abcdefghij' >&"$conn"       # 10 of 100 body bytes
    # What it could stream comes back: read it, so that our close is a FIN, not a RST.
    [ "$(timeout 5 head -c 14 <&"$conn" | tail -c 10)" = ABCDEFGHIJ ]
    exec {conn}>&-
    wait_for_line '^truncated 127\.0\.0\.1:[0-9]+: EOF after 10 of 100 body bytes$'
    connect
    printf '\0\0\0\2ok' >&"$conn"
    [ "$(timeout 5 head -c 6 <&"$conn" | tail -c 2)" = OK ]
    exec {conn}>&-
}

# stalled PORT: wait until a connection to PORT has bytes waiting in both directions
# that have not moved at five looks in a row (100 ms): the client does not read its
# replies, and the server has stopped reading it (its send parked), where a server
# that reads moves some in far less.
stalled() {
    local p tries=1500 seen=0 now last=
    p=$(printf ':%04X' "$1")
    while [ "$seen" -lt 5 ]; do
        now=$(awk -v p="$p" '$4 == "01" && (substr($2, length($2) - 4) == p ||
                substr($3, length($3) - 4) == p) { print $2, $3, $5 }' /proc/net/tcp | sort)
        if [ -n "$now" ] && [ "$now" = "$last" ] && grep -qv ' 00000000:00000000$' <<<"$now"; then
            seen=$((seen + 1))
        else
            seen=0
        fi
        last=$now
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "the flood did not stall within 30 s: $now"; return 1; }
        sleep 0.02
    done
}

@test "$SERVER: a client that sends messages and never reads its replies: ten others served, memory bounded" {
    start_server "$LAB_SERVER" -q
    local m=$BATS_TEST_TMPDIR/m frames=$BATS_TEST_TMPDIR/frames
    head -c 65536 /dev/zero | tr '\0' f >"$m"
    for i in $(seq 16); do frame "$m"; done >"$frames"
    rss_before=$(rss_kib "$SERVER_PID")
    connect
    # Valid messages as fast as the server takes them, never a reply read.
    (while cat "$frames"; do :; done) >&"$conn" 2>/dev/null &
    BACKGROUND_PIDS+=("$!")
    stalled "$PORT"
    t0=$(date +%s%N)
    local others=()
    for i in $(seq 10); do
        background "other$i" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "\0\0\0\5other" >&3 &&
            timeout 10 head -c 9 <&3 | tail -c 5' _ "$PORT"
        others+=("$LAST_PID")
    done
    for i in $(seq 10); do
        wait "${others[i - 1]}"
        [ "$(cat "$BATS_TEST_TMPDIR/other$i.out")" = OTHER ]
    done
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    grown=$(( $(rss_kib "$SERVER_PID") - rss_before ))
    echo "ten others served in $ms ms beside the flood; server RSS grew by $grown KiB"
    [ "$ms" -lt 5000 ]          # a noisy, shared machine: promptly, not a figure
    [ "$grown" -lt 8192 ]       # no message buffer grew with the flood
    exec {conn}>&-
}

@test "$SERVER: 1,000 concurrent connections, a message pending on each, one OS thread" {
    [ "$(ulimit -Hn)" -ge 2048 ] || skip "needs ulimit -n 2048, hard limit is $(ulimit -Hn)"
    ulimit -n 2048
    start_server "$LAB_SERVER" -q
    local conns=() c i
    for i in $(seq 1000); do
        exec {c}<>"/dev/tcp/127.0.0.1/$PORT"
        conns+=("$c")
        printf '\0\0\0\7conn ok' >&"$c"     # every message sent before any reply is read
    done
    [ "$(find "/proc/$SERVER_PID/task" -mindepth 1 -maxdepth 1 | wc -l)" -eq 1 ]
    for c in "${conns[@]}"; do
        [ "$(timeout 5 head -c 11 <&"$c" | tail -c 7)" = "CONN OK" ] || { echo "fd $c"; false; }
    done
    for c in "${conns[@]}"; do exec {c}>&-; done
    stop_pid "$SERVER_PID" INT
    SERVER_PID=
    # Each connection: 7 body bytes and the 4 of the reply's header.
    [ "$(tail -n 1 "$SERVER_LOG")" = "shutdown: served 1000 connections, echoed 11000 bytes" ]
}

@test "$SERVER: -v logs each message's length; SIGINT: the summary counts headers too, exit 0" {
    start_server "$LAB_SERVER" -v
    connect
    printf '\0\0\0\3abc' >&"$conn"
    [ "$(timeout 5 head -c 7 <&"$conn" | tail -c 3)" = ABC ]
    grep -Eq '^message 127\.0\.0\.1:[0-9]+ 3 bytes$' "$SERVER_LOG"
    grep -Eq '^wrote 127\.0\.0\.1:[0-9]+ 4 bytes$' "$SERVER_LOG"
    status=0
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    [ "$status" -eq 0 ]
    [ "$(tail -n 1 "$SERVER_LOG")" = "shutdown: served 1 connections, echoed 7 bytes" ]
    [ ! -s "$SERVER_LOG.err" ]
    exec {conn}<&-
}
