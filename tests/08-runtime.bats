#!/usr/bin/env bats
# 08-coroutines: the runtime's contract (runtime-test.c checks co.h's promises) on
# both context switches, and the guard page under every coroutine's stack.
#
# The hand-written build is $LAB_BIN's (make check: the sanitizer build in .san/);
# the ucontext build is always the plain one beside the sources.

load helpers

UCONTEXT_TEST="$LAB_ROOT/08-coroutines/ucontext/runtime-test"

# contract BINARY: run runtime-test; it prints a line per failed check and ends with
# its summary. Not with bats' `run`: its stderr goes to a file in $BATS_TEST_TMPDIR,
# where teardown looks for sanitizer reports (UBSan under gcc writes to stderr even
# when make check gives it a log_path).
contract() {
    local out="$BATS_TEST_TMPDIR/runtime-test.out" err="$BATS_TEST_TMPDIR/runtime-test.err"
    local status=0
    "$1" >"$out" 2>"$err" || status=$?
    cat "$out" "$err"           # bats shows this only if the test fails
    echo "exit status: $status"
    [ "$status" -eq 0 ]
    [[ "$(tail -n 1 "$out")" =~ ^runtime-test:\ [0-9]+\ checks,\ 0\ failed$ ]]
}

# The hand-written switch on both hubs: the same checks on the completion hub
# (io_uring): co_close's EBADF under a parked operation, the timeouts, EINTR for a
# signal; in both of its forms, the modern (the default) and URING=first. Where the kernel refuses io_uring its programs say so in one line and exit 1:
# that line is the skip's reason, once the epoll hub has passed. A LAB_BIN without a
# uring build (tests/cross-aarch64, where qemu-user has no io_uring and says so) runs
# the epoll hub alone.
@test "08 runtime: co.h's contract holds, hand-written switch, both hubs" {
    local out
    contract "$LAB_BIN/08-coroutines/runtime-test"
    [ -x "$LAB_BIN/08-coroutines/uring/runtime-test" ] || return 0
    if ! out=$("$LAB_BIN/08-coroutines/uring/generators" 2>&1) \
            && [[ "$out" == "io_uring unavailable: "* ]]; then
        skip "$out"
    fi
    contract "$LAB_BIN/08-coroutines/uring/runtime-test"
    # and the completion hub's first form (one SQE per call: hub-uring.c)
    URING=first contract "$LAB_BIN/08-coroutines/uring/runtime-test"
}

@test "08 runtime: co.h's contract holds, ucontext switch" {
    contract "$UCONTEXT_TEST"
}

@test "08 runtime: a coroutine that overflows its stack dies on the guard page (SIGSEGV), both switches" {
    ulimit -c 0                 # the crash is expected: no core file
    for bin in "$LAB_BIN/08-coroutines/runtime-test" "$UCONTEXT_TEST"; do
        # Under make check, ASan would catch the SEGV itself, print a stack-overflow
        # report (a report file: make check fails) and exit 1. handle_segv=0 leaves
        # the signal to the kernel, so the process dies of it as the plain build
        # does, and nothing is reported. What the program prints goes into $output,
        # not a file in $BATS_TEST_TMPDIR, so teardown's scan does not see it either.
        run env ASAN_OPTIONS="${ASAN_OPTIONS:-}:handle_segv=0" "$bin" overflow
        echo "$bin overflow: status $status, output: $output"
        [ "$status" -eq 139 ]   # 128 + SIGSEGV
    done
}

@test "08 runtime: SIGPIPE at its default kills a program whose co_send meets a closed peer, as send() would, both hubs" {
    # runtime-test's contract checks the handler's side (once per send, none with
    # MSG_NOSIGNAL); the default's side needs a process of its own to die.
    local bin
    for bin in "$LAB_BIN/08-coroutines/runtime-test" "$LAB_BIN/08-coroutines/uring/runtime-test"; do
        [ -x "$bin" ] || continue       # tests/cross-aarch64: no uring build
        run "$bin" sigpipe
        echo "$bin sigpipe: status $status, output: $output"
        if [ "$status" -eq 1 ] && [[ "$output" == "io_uring unavailable: "* ]]; then
            continue                    # the kernel refuses io_uring: the first test skips
        fi
        [ "$status" -eq 141 ]   # 128 + SIGPIPE
    done
}

# build NAME FILES...: compile 08's FILES into $BATS_TEST_TMPDIR/NAME with $CC (cc),
# with run, so that the test sees the status and the compiler's messages.
build() {
    local name=$1
    shift
    run "${CC:-cc}" -o "$BATS_TEST_TMPDIR/$name" "$@"
    echo "$name: status $status"
    echo "$output"
}

@test "08 runtime: co.c and a context switch built for different ones do not link, and say why" {
    cd "$LAB_ROOT/08-coroutines"
    # ctx.h sizes struct ctx for one switch; co.c built for the hand-written one
    # and linked with ctx-ucontext.c would have it write a ucontext_t over the heap.
    build mixed-1 generators.c co.c hub-epoll.c ctx-ucontext.c
    [ "$status" -ne 0 ]
    [[ "$output" == *undefined*ctx_make_for_ctx_c__link_ctx_c_or_compile_all_with_DCTX_UCONTEXT* ]]
    build mixed-2 -DCTX_UCONTEXT generators.c co.c hub-epoll.c ctx.c
    [ "$status" -ne 0 ]
    [[ "$output" == *"ctx.c is the hand-written switch: compile it without -DCTX_UCONTEXT, or use ctx-ucontext.c"* ]]
    # Objects compiled apart, then linked: co.o for ucontext, ctx.o hand-written.
    run "${CC:-cc}" -DCTX_UCONTEXT -c -o "$BATS_TEST_TMPDIR/co.o" co.c
    [ "$status" -eq 0 ]
    run "${CC:-cc}" -c -o "$BATS_TEST_TMPDIR/ctx.o" ctx.c
    [ "$status" -eq 0 ]
    build mixed-3 generators.c hub-epoll.c "$BATS_TEST_TMPDIR/co.o" "$BATS_TEST_TMPDIR/ctx.o"
    [ "$status" -ne 0 ]
    [[ "$output" == *undefined*ctx_make_for_ctx_ucontext_c__link_ctx_ucontext_c_or_compile_all_without_DCTX_UCONTEXT* ]]
    # The matched pairs build, and run.
    build matched-asm generators.c co.c hub-epoll.c ctx.c
    [ "$status" -eq 0 ]
    build matched-ucontext -DCTX_UCONTEXT generators.c co.c hub-epoll.c ctx-ucontext.c
    [ "$status" -eq 0 ]
    for name in matched-asm matched-ucontext; do
        run "$BATS_TEST_TMPDIR/$name"
        [ "$status" -eq 0 ]
        diff -u "$EXPECTED/08-generators.txt" <(echo "$output")
    done
}

@test "08 runtime: built with -fcf-protection, the hand-written switch does not claim CET (x86-64)" {
    local cc=${CC:-cc}
    [[ "$("$cc" -dumpmachine)" == x86_64* ]] || skip "CET is x86-64's; $cc builds for $("$cc" -dumpmachine)"
    command -v readelf >/dev/null || skip "no readelf (binutils) to read the object's notes"
    cd "$LAB_ROOT/08-coroutines"
    # The switch jumps where the shadow stack wants a ret and IBT an endbr64, so an
    # object that says IBT or SHSTK would let the kernel turn on what crashes it.
    # Asked for them, ctx.c refuses to compile (ctx.c's comment says so)...
    run "$cc" -fcf-protection -c -o "$BATS_TEST_TMPDIR/ctx.o" ctx.c
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"the hand-written switch breaks x86 CET (-fcf-protection): build it with -fcf-protection=none, or use ctx-ucontext.c"* ]]
    # ... and the Makefile builds it with -fcf-protection=none after the CFLAGS (a
    # distribution's flags may ask for CET), so the object claims nothing.
    run make -C "$LAB_ROOT/08-coroutines" CFLAGS="-O2 -fcf-protection" OUT="$BATS_TEST_TMPDIR/build" \
        "$BATS_TEST_TMPDIR/build/generators"
    echo "$output"
    [ "$status" -eq 0 ]
    run "$cc" -fcf-protection -fcf-protection=none -c -o "$BATS_TEST_TMPDIR/ctx.o" ctx.c
    [ "$status" -eq 0 ]
    run readelf -n "$BATS_TEST_TMPDIR/ctx.o"
    echo "$output"
    [[ "$output" != *IBT* && "$output" != *SHSTK* ]]
    # The compiler does mark what it compiles with -fcf-protection: the check can fail.
    run "$cc" -fcf-protection -c -o "$BATS_TEST_TMPDIR/co.o" co.c
    run readelf -n "$BATS_TEST_TMPDIR/co.o"
    [[ "$output" == *"x86 feature: IBT, SHSTK"* ]]
}
