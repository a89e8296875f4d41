#!/usr/bin/env bats
# 08's framed server (08-coroutines/framed-server.c), driven from bash alone: the
# framed protocol (a 4-byte length in network byte order, 0 to 1 MiB, then the body;
# the reply is the same header and the body upper-cased) over bash's /dev/tcp.
# tests/run runs it once per build (LAB_SERVER): the epoll hub, the ucontext switch,
# the completion hub. tests/framed.bats checks every framed server, these among them;
# this file adds what a coroutine must prove: that it keeps its place in a message
# (each piece is sent only once the -v server has logged reading the one before,
# where the probe's pause of a millisecond only makes that likely), and 1,000
# connections with a message pending on each, served in one OS thread.

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
