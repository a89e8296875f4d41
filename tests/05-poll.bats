#!/usr/bin/env bats
# 05-poll: no FD_SETSIZE cap.

load helpers

@test "05: the poll client's replies match the golden file" {
    start_server 05-poll/server
    run "$LAB_BIN/05-poll/client" -p "$PORT" -n 5 -v
    [ "$status" -eq 0 ]
    diff -u "$EXPECTED/multiplex-client.txt" <(echo "$output")
}

@test "05: 2,000 concurrent connections, more than select can watch, all answered" {
    [ "$(ulimit -Hn)" -ge 4096 ] || skip "needs ulimit -n 4096, hard limit is $(ulimit -Hn)"
    ulimit -n 4096      # for the server and the client, each its own process
    start_server 05-poll/server -q
    run "$LAB_BIN/05-poll/client" -p "$PORT" -n 2000
    [ "$status" -eq 0 ]
    [ "$output" = "2000 of 2000 connections served" ]
}

# Every connection stays open until all are answered, so -n N needs N descriptors.
# poll() refuses an array longer than RLIMIT_NOFILE with EINVAL, entries set to -1
# included: the client must say that the limit is the cause, and how to raise it.
@test "05: a descriptor limit too low for -n: poll()'s EINVAL explained, with the ulimit -n to use" {
    start_server 05-poll/server -q
    # 256 connections open at once (the client's in-flight cap) fit under 300: the
    # first poll() over 400 entries is what fails.
    run bash -c 'ulimit -S -n 300 && exec "$0" -p "$1" -n 400' "$LAB_BIN/05-poll/client" "$PORT"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"poll: "*"400 connections need more descriptors than ulimit -n allows (300): raise it first, e.g. ulimit -n 416"* ]]
}

@test "05: a descriptor limit too low for -n: socket()'s EMFILE explained the same way" {
    start_server 05-poll/server -q
    # LeakSanitizer (make check) reads /proc/self/task at exit, and this client has no
    # descriptor left to open it with: it would fail, and hang trying to report it.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        run bash -c 'ulimit -S -n 64 && exec "$0" -p "$1" -n 100' "$LAB_BIN/05-poll/client" "$PORT"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"socket: Too many open files: 100 connections need more descriptors than ulimit -n allows (64): raise it first, e.g. ulimit -n 116"* ]]
}
