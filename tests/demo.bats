#!/usr/bin/env bats
# tests/demo (make demo) prints a step's conclusion only from what it measured: a
# client that fails stops the demo at that step, which it names, with a non-zero exit.
# The demo runs here in a copy of the tree made of symlinks, where one client is a
# stub that prints nothing and exits 1. It runs the plain binaries, as make demo does.
# Then: PAUSE=1 pauses before each step, and waits; 04-06 print the numbers their
# questions ask for (1,024 minus the descriptors already open; one busy client's CPU
# per request beside 0, 1,000 and 10,000 idle connections; edge against level), in
# their shape, with timing bounds only where the gap is tens of times the bound.
# tests/run runs this file after the stages' (its name has no stage number).

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# with_failing PROGRAM: a symlink copy of the tree in $BATS_TEST_TMPDIR/tree, in which
# PROGRAM (e.g. 04-select/client) is the stub. The demo's own directory (tests) and
# PROGRAM's are real directories, so that the demo finds the copy as its tree.
with_failing() {
    local tree=$BATS_TEST_TMPDIR/tree dir entry
    mkdir "$tree"
    for entry in "$ROOT"/*; do ln -s "$entry" "$tree/"; done
    for dir in tests "${1%/*}"; do
        rm "$tree/$dir"
        mkdir "$tree/$dir"
        for entry in "$ROOT/$dir"/*; do ln -s "$entry" "$tree/$dir/"; done
    done
    rm "$tree/$1"
    printf '#!/bin/sh\nexit 1\n' >"$tree/$1"
    chmod +x "$tree/$1"
}

# no_conclusion_after HEADING: no "->" line follows the step's heading in $output.
no_conclusion_after() {
    if sed -n "/^== $1/,\$p" <<<"$output" | grep -q -- '->'; then
        echo "a conclusion was printed after '== $1'" >&2
        return 1
    fi
}

@test "demo: a client that fails stops the demo at its step, with no conclusion (02: lost messages)" {
    # 02's client exits 1 when replies are lost, so its status alone proves nothing:
    # the demo must find no count of answered messages in its output.
    with_failing 02-nonblocking/client
    run "$BATS_TEST_TMPDIR/tree/tests/demo"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"demo: step 02-nonblocking failed"* ]]
    no_conclusion_after 02-nonblocking
}

@test "demo: a client that fails stops the demo at its step, with no conclusion (04: a client piped into formatting)" {
    [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 10100 ] \
        || skip "the demo runs 04 only with ulimit -n 10100, hard limit is $(ulimit -Hn)"
    with_failing 04-select/client
    run "$BATS_TEST_TMPDIR/tree/tests/demo"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"demo: step 04-select failed"* ]]
    no_conclusion_after 04-select
}

@test "demo STAGE=02: that stage's step only" {
    run env STAGE=02 "$ROOT/tests/demo"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"== 02-nonblocking: "* ]]
    [[ "$output" != *"== 01-blocking"* ]]
    [[ "$output" != *"== 03-nonblocking-list"* ]]
}

@test "demo PAUSE=1: says what to look at and what to ask, waits for Enter, then runs the step" {
    run bash -c "printf '\n' | PAUSE=1 STAGE=02 '$ROOT/tests/demo'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "-- next: stage 02, step 1 of 1" ]
    [[ "${lines[1]}" == "   look at: "?* ]]
    [[ "${lines[2]}" == "   ask the class first: "?* ]]
    [[ "$output" == *"== 02-nonblocking: "*"-> "* ]]
}

# Every "== " heading must come right after its own pause: "-- next: stage NN, step I
# of M", what to look at, what to ask (neither empty), "(Enter to run it)".
each_step_paused() {
    local i n=0 steps=$1
    for i in "${!lines[@]}"; do
        [[ ${lines[i]} == "== "* ]] || continue
        n=$((n + 1))
        [ "$i" -ge 4 ] || { echo "heading $i has no pause before it" >&2; return 1; }
        [[ ${lines[i - 4]} == "-- next: stage "*", step $n of $steps" ]] \
            || { echo "before '${lines[i]}': '${lines[i - 4]}'" >&2; return 1; }
        [[ ${lines[i - 3]} == "   look at: "?* ]] && [[ ${lines[i - 2]} == "   ask the class first: "?* ]] \
            && [ "${lines[i - 1]}" = "   (Enter to run it)" ] || { echo "pause before '${lines[i]}' incomplete" >&2; return 1; }
    done
    [ "$n" -eq "$steps" ] || { echo "$n headings, $steps steps" >&2; return 1; }
    [ "$(grep -c '^-- next: ' <<<"$output")" -eq "$steps" ]
}

@test "demo STAGE=01: note 002's step shows client -N against threads-server, client -f against framed-server" {
    run env STAGE=01 "$ROOT/tests/demo"
    echo "$output"
    [ "$status" -eq 0 ]
    step=$(sed -n '/^== 01-blocking: TCP is a stream/,$p' <<<"$output")
    [[ "$step" == *"  client -N, against threads-server:"$'\n'"    recv 1: 18 bytes, 3 whole lines: replies merged"$'\n'* ]]
    [[ "$step" == *"  client -f, against framed-server:"$'\n'"    hello -> HELLO"$'\n'"    world -> WORLD"$'\n'"    again -> AGAIN"$'\n'"  -> one recv() per reply: 0 of 3 right; a length before each message: 3 of 3"$'\n'* ]]
    [[ "$step" == *"    recv 1: 1024 bytes, 0 whole lines: part of a reply"$'\n'* ]]
    [[ "$step" == *"    hello -> HELLO"$'\n'"  -> one recv() per reply: 0 of 2 right; a length before each message: 2 of 2"$'\n'* ]]
}

@test "demo PAUSE=1: a pause before each step, not each stage (01: two steps, two pauses)" {
    run bash -c "printf '\n\n' | PAUSE=1 STAGE=01 '$ROOT/tests/demo'"
    echo "$output"
    [ "$status" -eq 0 ]
    each_step_paused 2
    [[ "${lines[4]}" == "== 01-blocking: the iterative server"* ]]
    [[ "$output" == *"   ask the class first: three replies are waiting: how many does one recv() return?"$'\n'"   (Enter to run it)"$'\n'"== 01-blocking: TCP is a stream (note 002)"* ]]
}

# wait_out FILE REGEX [N]: until N lines of FILE (default 1) match (at most 30 s).
wait_out() {
    local i
    for i in $(seq 1500); do
        [ "$(grep -c -- "$2" "$1")" -lt "${3:-1}" ] || return 0
        sleep 0.02
    done
    echo "not ${3:-1} '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

@test "demo PAUSE=1: each pause waits for Enter before its step runs" {
    local out=$BATS_TEST_TMPDIR/out fifo=$BATS_TEST_TMPDIR/enter pid enter
    mkfifo "$fifo"
    PAUSE=1 STAGE=01 "$ROOT/tests/demo" <"$fifo" >"$out" 2>&1 &
    pid=$!
    exec {enter}>"$fifo"
    wait_out "$out" '^   (Enter to run it)$'
    ! grep -q '^== ' "$out"                 # nothing runs before Enter
    echo >&"$enter"
    wait_out "$out" '^   (Enter to run it)$' 2
    grep -q '^-- next: stage 01, step 2 of 2$' "$out"
    [ "$(grep -c '^== ' "$out")" -eq 1 ]    # the first step ran, the second waits
    echo >&"$enter"
    exec {enter}>&-
    wait "$pid"
    cat "$out"
    grep -q '^== 01-blocking: TCP is a stream' "$out"
}

@test "demo STAGE=09: an unknown stage is an error that lists the stages, exit 2" {
    run env STAGE=09 "$ROOT/tests/demo"
    echo "$output"
    [ "$status" -eq 2 ]
    [ "$output" = "demo: STAGE is one of 01 02 03 04 05 06 07 08, not '09'" ]
}

# needs_fds: the demo runs 04-08 only where ulimit -n can be raised to 10,100.
needs_fds() {
    [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 10100 ] \
        || skip "the demo runs 04 only with ulimit -n 10100, hard limit is $(ulimit -Hn)"
}

# idle_costs: from $output, the costs on the line after "-> one busy client among K
# idle connections", into costs (K -> µs, commas dropped); also every K measured, in
# order, into ks. Fails unless every entry is "K=N: N µs".
idle_costs() {
    local line entry re='^K=([0-9,]+): ([0-9,]+(\.[0-9])?) µs$'
    line=$(grep -A1 -- '^  -> one busy client among K idle connections: ' <<<"$output" | sed -n '2s/^     //p')
    [ -n "$line" ] || { echo "no line of costs" >&2; return 1; }
    declare -gA costs=()
    ks=()
    local IFS=,
    while read -r -d '|' entry; do
        entry=${entry# }
        [[ $entry =~ $re ]] || { echo "not 'K=N: N µs': '$entry'" >&2; return 1; }
        ks+=("${BASH_REMATCH[1]//,/}")
        costs[${BASH_REMATCH[1]//,/}]=${BASH_REMATCH[2]//,/}
    done <<<"${line//, K=/|K=}|"
}

# more A B: A > B, as decimals.
more() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

@test "demo STAGE=04 PAUSE=1: served and refused next to 1,024 minus the descriptors the server had; CPU per request at K=0 and 1,000 idle" {
    needs_fds
    # Three more descriptors inherited: they must show up in N, and in what is served.
    run bash -c "exec 7</dev/null 8</dev/null 9</dev/null; printf '\n\n' | PAUSE=1 STAGE=04 '$ROOT/tests/demo'"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" != *"No such file"* ]]     # wait_for looked before probe's output existed
    each_step_paused 2
    local re='^  -> of 1,100 connections at once, ([0-9],[0-9]{3}) were served and ([0-9]+) refused:$'
    local re2='^     1,024 - ([0-9]+) = ([0-9],[0-9]{3}): the server had ([0-9]+) descriptors open before any client$'
    local line served= refused= n= m=
    for line in "${lines[@]}"; do
        if [[ $line =~ $re ]]; then served=${BASH_REMATCH[1]/,/}; refused=${BASH_REMATCH[2]}; fi
        if [[ $line =~ $re2 ]]; then n=${BASH_REMATCH[1]}; m=${BASH_REMATCH[2]/,/}; [ "${BASH_REMATCH[3]}" = "$n" ]; fi
    done
    [ -n "$served" ] && [ -n "$n" ]
    [ "$((served + refused))" -eq 1100 ]
    [ "$m" -eq "$((1024 - n))" ]
    [ "$served" -eq "$m" ]          # what select() served is what the arithmetic says
    [ "$n" -ge 9 ]                  # 0-2, the listener, the self-pipe's two ends, and 7-9
    idle_costs
    [ "${ks[*]}" = "0 1000" ]
    more "${costs[1000]}" "${costs[0]}"     # select's scan: generous, it is ~10x here
    [[ "$output" == *"x from K=0 to K=1,000: "*"(K=10,000 is past select's cap)"* ]]
}

@test "demo STAGE=05 PAUSE=1: one busy client's CPU per request beside 0, 1,000 and 10,000 idle: it grows" {
    needs_fds
    run bash -c "printf '\n' | PAUSE=1 STAGE=05 '$ROOT/tests/demo'"
    echo "$output"
    [ "$status" -eq 0 ]
    each_step_paused 1
    [[ "$output" == *"2000 of 2000 connections served"* ]]
    idle_costs
    [ "${ks[*]}" = "0 1000 10000" ]
    more "${costs[10000]}" "${costs[0]}"    # poll's scan: generous, it is ~100x here
    [[ "$output" =~ $'\n     '[0-9.]+'x from K=0 to K=10,000: ' ]]
}

@test "demo STAGE=06 PAUSE=1: the same busy client stays cheap beside 10,000 idle; edge is reported once, and reads on" {
    needs_fds
    run bash -c "printf '\n\n' | PAUSE=1 STAGE=06 '$ROOT/tests/demo'"
    echo "$output"
    [ "$status" -eq 0 ]
    each_step_paused 2
    idle_costs
    [ "${ks[*]}" = "0 1000 10000" ]
    # Flat, with a generous bound: poll's grows ~100x over the same K.
    ! more "${costs[10000]}" "$(awk -v c="${costs[0]}" 'BEGIN { print c * 10 }')"
    # The table: reports, recv() calls and bytes back, for level, edge, edge without the loop.
    local re='^     (level-triggered|edge-triggered|edge, one recv\(\) a report): +([0-9]+) reports? +from epoll_wait\(\), ([0-9]+) recv\(\), +([0-9,]+) bytes back'
    local line mode
    local -A reports=() reads=() back=()
    for line in "${lines[@]}"; do
        [[ $line =~ $re ]] || continue
        case ${BASH_REMATCH[1]} in
        level-*) mode=level ;;
        edge-*) mode=edge ;;
        *) mode=nodrain ;;
        esac
        reports[$mode]=${BASH_REMATCH[2]} reads[$mode]=${BASH_REMATCH[3]} back[$mode]=${BASH_REMATCH[4]//,/}
    done
    echo "reports: ${reports[*]@K}; reads: ${reads[*]@K}; back: ${back[*]@K}"
    [ "${#reports[@]}" -eq 3 ]
    [ "${back[level]}" -eq 100000 ] && [ "${back[edge]}" -eq 100000 ]
    [ "${reports[edge]}" -lt "${reports[level]}" ]     # told once
    [ "${reads[edge]}" -ge 2 ]                          # and reads on
    local left
    left=$(sed -n 's/^ *\([0-9,]*\) bytes left unread in its socket (06-epoll\/pitfalls\/edge-no-drain.patch)$/\1/p' <<<"$output")
    left=${left//,/}
    [ "${back[nodrain]}" -lt 100000 ]                   # without the loop: stuck
    [ "$((back[nodrain] + left))" -eq 100000 ]          # the rest still in the socket
    [[ "$output" == *"edge is told once, so it reads on to a short read"* ]]
}

@test "demo: with the hard ulimit -n at 4,096, one line says so, and 05 measures the K that fit" {
    run bash -c "ulimit -Sn 1024 && ulimit -Hn 4096 && STAGE=05 '$ROOT/tests/demo'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "(ulimit -n is capped at 4096 here: 04-08 want 10,100; the steps with 10,000 connections show what fits)" ]
    [[ "$output" == *"  (ulimit -n is capped at 4096 here: K=10,000 needs 10,100 descriptors; not measured)"* ]]
    idle_costs
    [ "${ks[*]}" = "0 1000" ]
}

@test "demo: a load generator that fails stops 05's step with no cost printed" {
    needs_fds
    with_failing tests/bench/loadgen
    run env STAGE=05 "$BATS_TEST_TMPDIR/tree/tests/demo"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"demo: step 05-poll failed"* ]]
    [[ "$output" != *"one busy client among K idle"* ]]
}

@test "demo: ended while 06's server is stopped (SIGSTOP), it leaves no server behind" {
    needs_fds
    # tr that never ends keeps the bytes from coming, and the server stopped for 3 s.
    mkdir "$BATS_TEST_TMPDIR/bin"
    printf '#!/bin/sh\nexec sleep 60\n' >"$BATS_TEST_TMPDIR/bin/tr"
    chmod +x "$BATS_TEST_TMPDIR/bin/tr"
    PATH=$BATS_TEST_TMPDIR/bin:$PATH STAGE=06 "$ROOT/tests/demo" >"$BATS_TEST_TMPDIR/out" 2>&1 &
    local demo=$! server= i
    for i in $(seq 3000); do       # 06's first step comes first: at most 60 s
        server=$(pgrep -P "$demo" -x server || true)
        [ -n "$server" ] && [ "$(awk '{ print $3 }' "/proc/$server/stat" 2>/dev/null)" = T ] && break
        server=
        sleep 0.02
    done
    [ -n "$server" ]
    kill -TERM "$demo"
    wait "$demo" || true
    cat "$BATS_TEST_TMPDIR/out"
    for i in $(seq 100); do         # gone within 2 s
        [ -e "/proc/$server" ] || break
        sleep 0.02
    done
    ! [ -e "/proc/$server" ] || { kill -KILL "$server"; false; }
}
