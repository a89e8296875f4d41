# Shared by every bats file: start a server on a free port, wait for its log
# lines instead of sleeping, run helpers in the background, stop it all in teardown.

LAB_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
LAB_BIN=${LAB_BIN:-$LAB_ROOT}           # make check sets it to the sanitizer builds
# PROBE and EXPECTED are for the bats files that load this one.
# shellcheck disable=SC2034
PROBE="$LAB_BIN/tests/probe"
# shellcheck disable=SC2034
EXPECTED="$LAB_ROOT/tests/expected"
SERVER_PID=
BACKGROUND_PIDS=()

# start_server PROGRAM [ARGS...]: run $LAB_BIN/PROGRAM on port 0 and read the real
# port from its first line, "listening on ADDR:PORT" ("[ADDR]:PORT" for IPv6: the
# last colon is the port's). Sets SERVER_PID, PORT and SERVER_LOG (stdout; stderr
# goes to SERVER_LOG.err).
start_server() {
    local program=$1
    shift
    SERVER_LOG="$BATS_TEST_TMPDIR/server.log"
    # Empty it here: the redirection below truncates only after the fork, and a
    # second server in one test must not be found by the first one's line.
    : >"$SERVER_LOG"
    "$LAB_BIN/$program" -p 0 "$@" >"$SERVER_LOG" 2>"$SERVER_LOG.err" &
    SERVER_PID=$!
    if ! wait_for_line '^listening on '; then
        # 08's completion hub where the kernel refuses io_uring: a skip, with its line
        # (tests/run fails on any skip in CI, whose kernel has io_uring).
        local refused
        refused=$(grep -h -m1 '^io_uring unavailable: ' "$SERVER_LOG" "$SERVER_LOG.err" || true)
        [ -z "$refused" ] || skip "$refused"
        cat "$SERVER_LOG.err" >&2
        return 1
    fi
    PORT=$(sed -n '1s/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG")
    [ -n "$PORT" ] || { echo "first line is not 'listening on ADDR:PORT'" >&2; return 1; }
}

# wait_for_line REGEX [SECONDS] [FILE]: wait until a line of FILE (default: the
# server's log) matches, polling every 20 ms; fail after SECONDS (default 10).
wait_for_line() {
    wait_for_count "$1" 1 "${2:-10}" "${3:-$SERVER_LOG}"
}

# wait_for_count REGEX N (an extended regex, as grep -E) [SECONDS] [FILE]: wait until N lines match.
wait_for_count() {
    local pattern=$1 want=$2 limit=${3:-10} file=${4:-$SERVER_LOG}
    local tries=$((limit * 50)) count
    # grep -c prints nothing for a file that does not exist yet: count it as 0
    while count=$(grep -Ec -- "$pattern" "$file" 2>/dev/null || true); [ "${count:-0}" -lt "$want" ]; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            echo "timed out after ${limit}s waiting for $want lines matching '$pattern' in $file:" >&2
            tail -n 5 "$file" >&2
            return 1
        fi
        sleep 0.02
    done
}

# wait_for_backlog PORT N: wait until N connections wait in the listener's accept
# queue, handshake done, not yet accepted. For a listening socket, /proc/net/tcp's
# rx_queue is that count (hex, like the port).
wait_for_backlog() {
    local port tries=500 queued
    port=$(printf ':%04X' "$1")
    while queued=$(awk -v port="$port" '$2 ~ port "$" && $4 == "0A" { split($5, q, ":"); print q[2] }' /proc/net/tcp)
            [ "$((16#${queued:-0}))" -lt "$2" ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "timed out waiting for $2 connections in the backlog of :$1" >&2; return 1; }
        sleep 0.02
    done
}

# background NAME COMMAND...: run COMMAND with stdout in $BATS_TEST_TMPDIR/NAME.out;
# teardown stops it. Its PID is in LAST_PID.
background() {
    local name=$1
    shift
    "$@" >"$BATS_TEST_TMPDIR/$name.out" 2>&1 &
    LAST_PID=$!
    BACKGROUND_PIDS+=("$LAST_PID")
}

# stop_pid PID [SIGNAL]: signal it, wait up to 5 s for it to exit, then KILL it.
# Returns its exit status (or 137 if it had to be killed).
stop_pid() {
    local pid=$1 sig=${2:-TERM} tries=250
    kill -s "$sig" "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -gt 0 ]; do
        # a zombie still answers kill -0: stop polling once it has exited
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
        tries=$((tries - 1))
        sleep 0.02
    done
    kill -0 "$pid" 2>/dev/null && [ "$tries" -eq 0 ] && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

teardown() {
    local pid
    for pid in "${BACKGROUND_PIDS[@]}"; do
        stop_pid "$pid" || true
    done
    if [ -n "$SERVER_PID" ]; then
        stop_pid "$SERVER_PID" || true
    fi
    no_sanitizer_reports
}

# no_sanitizer_reports: fail if any output this test captured (servers' stderr,
# background programs) holds a sanitizer report. make check also sends ASan's
# reports to files, but gcc's UBSan ignores log_path when ASan is linked in.
no_sanitizer_reports() {
    if grep -l -E 'runtime error:|ERROR: (Address|Leak)Sanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer' \
            "$BATS_TEST_TMPDIR"/* 2>/dev/null; then
        echo "sanitizer report(s) above, in the files named" >&2
        cat "$BATS_TEST_TMPDIR"/* >&2
        return 1
    fi
}

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() {
    # fields 14 and 15 of /proc/PID/stat; field 2 (the name) has no spaces here
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# cpu_percent PID SECONDS: the share of one core the process used over SECONDS.
cpu_percent() {
    local pid=$1 secs=$2 hz before after
    hz=$(getconf CLK_TCK)
    before=$(cpu_ticks "$pid")
    sleep "$secs"       # a measuring interval, not a synchronisation
    after=$(cpu_ticks "$pid")
    echo $(( (after - before) * 100 / (hz * secs) ))
}

# open_fds PID: how many descriptors the process holds.
open_fds() {
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l
}

# rss_kib PID: resident memory in KiB.
rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
