#!/usr/bin/env bats
# 08-coroutines: the notes' coroutine demos (generators, greenlet, gevent,
# sync-async) against their golden files on both context switches, the timings
# that are their lesson, and switch-bench's output (its figures are for make bench).

load helpers

# both_builds PROGRAM: the program built with the hand-written switch, then with
# ucontext: LAB_BIN's ucontext build if there is one, else the ordinary one
# beside the sources (make builds it). make check's LAB_BIN=.san may hold only the
# hand-written switch: ASan warns at the first swapcontext(), and make check
# takes any sanitizer output for a failure. Then the completion hub's build
# (08-coroutines/uring/, hand-written switch), if this kernel lets it run: see
# skip_without_uring.
both_builds() {
    local uc="$LAB_BIN/08-coroutines/ucontext/$1"
    [ -x "$uc" ] || uc="$LAB_ROOT/08-coroutines/ucontext/$1"
    [ -x "$uc" ] || { echo "no ucontext build of $1: run make" >&2; return 1; }
    echo "$LAB_BIN/08-coroutines/$1"
    echo "$uc"
    [ -n "$(uring_unavailable)" ] || echo "$LAB_BIN/08-coroutines/uring/$1"
}

# uring_unavailable: nothing if the completion hub runs on this kernel; else the
# line its programs print and exit with ("io_uring unavailable: ..."). A LAB_BIN
# without a uring build (tests/cross-aarch64, where qemu-user has no io_uring and
# says so) leaves it out: "absent".
uring_unavailable() {
    local out
    [ -x "$LAB_BIN/08-coroutines/uring/generators" ] || { echo absent; return 0; }
    out=$("$LAB_BIN/08-coroutines/uring/generators" 2>&1) && return 0
    [[ "$out" != "io_uring unavailable: "* ]] || echo "$out"
}

# hub_builds: 08-coroutines, and 08-coroutines/uring if LAB_BIN has it (options and
# usage run before any hub: they need no io_uring).
hub_builds() {
    echo 08-coroutines
    [ ! -x "$LAB_BIN/08-coroutines/uring/generators" ] || echo 08-coroutines/uring
}

# skip_without_uring: at a test's end, once the epoll builds have passed: skip, with
# the kernel's refusal as the reason, if the uring build could not be run.
skip_without_uring() {
    local why
    why=$(uring_unavailable)
    [ -z "$why" ] || [ "$why" = absent ] || skip "$why"
}

# untimed: $output without its timing lines ("... took 0.201 s ..."), which
# change from run to run; the golden files hold everything else.
untimed() {
    grep -Ev 'took [0-9.]+ s' <<<"$output" || true
}

# seconds PREFIX: the number in $output's line "PREFIX took N s ...".
seconds() {
    sed -n "s/^$1took \([0-9.]*\) s.*/\1/p" <<<"$output"
}

# check BOOLEAN-AWK-EXPRESSION: fail unless it holds, e.g. check "0.25 < 0.29".
check() {
    awk "BEGIN { exit !($1) }" || { echo "does not hold: $1" >&2; return 1; }
}

@test "08 generators: 11 55 22 66 33 77, on both switches and both hubs" {
    bins=$(both_builds generators)
    for bin in $bins; do
        run "$bin"
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/08-generators.txt" <(echo "$output")
    done
    skip_without_uring
}

@test "08 greenlet: eat and play switch by hand, on both switches and both hubs" {
    bins=$(both_builds greenlet)
    for bin in $bins; do
        run "$bin"
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/08-greenlet.txt" <(echo "$output")
    done
    skip_without_uring
}

@test "08 gevent: play's shorter sleep ends first, then eat's, then main, on both switches and both hubs" {
    bins=$(both_builds gevent)
    for bin in $bins; do
        run "$bin" -u 10
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/08-gevent.txt" <(untimed)
    done
    skip_without_uring
}

@test "08 gevent -u 100: sleeps of 2 and 1 units take 2 units, not 3" {
    bins=$(both_builds gevent)
    for bin in $bins; do
        run "$bin" -u 100
        [ "$status" -eq 0 ]
        secs=$(seconds "")
        echo "$bin took $secs s"
        check "$secs >= 0.19 && $secs < 0.29"
    done
    skip_without_uring
}

@test "08 sync-async: ten tasks in order, twice, then DONE, on both switches and both hubs" {
    bins=$(both_builds sync-async)
    for bin in $bins; do
        run "$bin" -u 5
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/08-sync-async.txt" <(untimed)
    done
    skip_without_uring
}

@test "08 sync-async -u 20: one after the other takes 10 units, all at once under 5" {
    bins=$(both_builds sync-async)
    for bin in $bins; do
        run "$bin" -u 20
        [ "$status" -eq 0 ]
        sync=$(seconds synchronous\ )
        async=$(seconds asynchronous\ )
        echo "$bin: synchronous $sync s, asynchronous $async s"
        check "$sync >= 0.2 && $async >= 0.02 && $async < 0.1"
    done
    skip_without_uring
}

@test "08 switch-bench: a positive cost per switch for co_switch and swapcontext" {
    bins=$(both_builds switch-bench)
    for bin in $bins; do
        run "$bin" -n 100000
        echo "$output"
        [ "$status" -eq 0 ]
        [ "${#lines[@]}" -eq 3 ]
        [[ "${lines[0]}" == "sequential: 2 loops x 100000 iterations in "*" s" ]]
        ns=$(sed -n 's/^switching with co_switch (.*): 200000 switches in .*, \([0-9.-]*\) ns per switch$/\1/p' <<<"$output")
        check "$ns > 0"
        # The sanitizer build leaves swapcontext out (see switch-bench.c).
        if [ "${lines[2]}" != "switching with swapcontext (plain ucontext): skipped, AddressSanitizer build" ]; then
            ns=$(sed -n 's/^switching with swapcontext (plain ucontext, N\/10 iterations): 20000 switches in .*, \([0-9.-]*\) ns per switch, .*x co_switch.s$/\1/p' <<<"$output")
            check "$ns > 0"
        fi
    done
    skip_without_uring
}

@test "08 demos: a bad option or operand gives the usage and exit status 2" {
    for args in "generators -x" "generators extra" "greenlet -x" "gevent -u abc" "gevent -u 0" \
            "sync-async -u" "sync-async -z" "switch-bench -n 0" "switch-bench -n x" "switch-bench more"; do
        read -r -a words <<<"$args"
        for build in $(hub_builds); do
            run "$LAB_BIN/$build/${words[0]}" "${words[@]:1}"
            echo "$build/$args: status $status"
            [ "$status" -eq 2 ]
            [[ "$output" == *"usage: "* ]]
        done
    done
}

@test "08 demos: -h prints the usage and exits 0" {
    for prog in generators greenlet gevent sync-async switch-bench; do
        for build in $(hub_builds); do
            run "$LAB_BIN/$build/$prog" -h
            [ "$status" -eq 0 ]
            [[ "${lines[0]}" == "usage: "* ]]
        done
    done
}
