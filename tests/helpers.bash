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

# wait_for_tcp_state PORT STATE: wait until a connection to local PORT is in STATE,
# as /proc/net/tcp writes it (hex: 01 ESTABLISHED, 08 CLOSE-WAIT...), accepted or not.
wait_for_tcp_state() {
    local port tries=500
    port=$(printf ':%04X' "$1")
    until awk -v port="$port" -v state="$2" '$2 ~ port "$" && $4 == state { found = 1 } END { exit !found }' /proc/net/tcp; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "timed out waiting for a connection to :$1 in state $2" >&2; return 1; }
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

# report_server: after a failed test, what became of the server, a student's first
# question: still running, or gone and how (a signal by name: SIGPIPE, SIGABRT...),
# and the last lines of its stderr (a message, a sanitizer report's first lines).
report_server() {
    local status=0 sig
    if [ "$(awk '{print $3}' "/proc/$SERVER_PID/stat" 2>/dev/null)" = Z ] ||
            ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null || status=$?
        SERVER_PID=
        if [ "$status" -gt 128 ] && sig=$(kill -l "$((status - 128))" 2>/dev/null); then
            echo "the server is gone: exit status $status, killed by SIG$sig"
        else
            echo "the server is gone: exit status $status"
        fi
    else
        echo "the server is still running"
    fi
    if [ -s "$SERVER_LOG.err" ]; then
        echo "its stderr, first lines:"
        head -n 12 "$SERVER_LOG.err"
    fi
}

teardown() {
    local pid
    # BATS_TEST_COMPLETED is set once the test's body has passed.
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -n "$SERVER_PID" ]; then
        report_server
    fi
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

# stop_flooded SIGNAL: the server started (SERVER_PID, without -q), flooded and
# starved, gets SIGNAL; it must exit 0 with its summary within a second (3 s for a
# sanitizer build: LeakSanitizer's exit scan). The server and its workers, if any,
# run on CPU 0 at nice 19, and eight clients on the same CPU send and read as fast
# as they can: whenever the server gets the CPU, every connection has data waiting,
# so each wait returns at once. That is where pselect(), ppoll() and epoll_pwait()
# with the signal blocked outside them fail: Linux delivers a pending signal only
# from a wait that would have slept, and a busy server never sleeps (04, 05 and 06
# that way took 2 to more than 10 s).
stop_flooded() {
    local sig=$1 limit=1000 t0 ms status=0 pid before i
    [[ "$LAB_BIN" != */.san ]] || limit=3000
    for pid in "$SERVER_PID" $(pgrep -P "$SERVER_PID"); do
        taskset -pc 0 "$pid" >/dev/null
        renice -n 19 -p "$pid" >/dev/null
    done
    for i in $(seq 8); do
        background "flood$i" taskset -c 0 "$PROBE" echo -p "$PORT" -n 100000000000 -t 60
    done
    wait_for_count '^connected ' 8
    # The flood is under way once the server has spent a tenth of a second on it.
    before=$(cpu_ticks "$SERVER_PID" tree)
    while [ $(( $(cpu_ticks "$SERVER_PID" tree) - before )) -lt $(( $(getconf CLK_TCK) / 10 )) ]; do
        sleep 0.02
    done
    t0=$(date +%s%N)
    kill -s "$sig" "$SERVER_PID"
    # wait returns the moment the server exits (a child of this shell); one that does
    # not is killed after 5 s and fails with 137.
    background watchdog sh -c "sleep 5; kill -KILL $SERVER_PID"
    wait "$SERVER_PID" || status=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    SERVER_PID=
    echo "SIG$sig under a flood, server starved on one CPU: exit status $status, $ms ms"
    [ "$status" -eq 0 ]
    [ "$ms" -lt "$limit" ]
    [[ "$(tail -n 1 "$SERVER_LOG")" =~ ^shutdown:\ served\ 8\ connections,\ echoed\ [0-9]+\ bytes$ ]]
}

# wait_asleep PID: wait until the process sleeps (state S): a server (07's worker) waiting in its
# selector, its work done and its tally published.
wait_asleep() {
    local tries=500
    until [ "$(awk '{print $3}' "/proc/$1/stat")" = S ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "process $1 never went to sleep" >&2; return 1; }
        sleep 0.02
    done
}

# cpu_ticks PID [tree]: user + system CPU time the process has used, in clock ticks;
# with tree, its children's too (07 -w's workers).
cpu_ticks() {
    local pids=("$1") child
    if [ "${2:-}" = tree ]; then
        for child in $(pgrep -P "$1"); do pids+=("$child"); done
    fi
    # fields 14 and 15 of /proc/PID/stat; field 2 (the name) has no spaces here
    (cd /proc && awk '{ n += $14 + $15 } END { print n }' "${pids[@]/%//stat}")
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

# herd PROGRAM MODE: the thundering herd, counted (issue 23). PROGRAM with -w 4 and
# ACCEPT=MODE; 200 connections made one at a time (each a line, its reply, close);
# SIGINT; then the summary read into HERD_SERVED (the shutdown line), HERD_ACCEPTED,
# HERD_EAGAIN and HERD_WAKEUPS (the sums of the worker lines) and HERD_EACH (each
# worker's accepted count, in order). Fails unless all 200 were served, the server
# exited 0 with one line per worker, and the shutdown line's total is their sum.
herd() {
    local program=$1 mode=$2 status=0
    ACCEPT=$mode start_server "$program" -q -w 4
    run "$PROBE" churn -p "$PORT" -n 200 -c 1
    echo "ACCEPT=$mode: $output"
    [ "$status" -eq 0 ]
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    grep -E '^(worker|shutdown)' "$SERVER_LOG" | sed "s/^/  $mode: /"
    [ "$status" -eq 0 ]
    [ "$(grep -Ec '^worker [1-4] \(pid [0-9]+\): [0-9]+ accepted, [0-9]+ accept\(\) EAGAIN, [0-9]+ wakeups$' "$SERVER_LOG")" -eq 4 ]
    read -r HERD_ACCEPTED HERD_EAGAIN HERD_WAKEUPS < <(awk '/^worker [0-9]+ \(pid/ {
        a += $5; e += $7; w += $10 } END { print a, e, w }' "$SERVER_LOG")
    mapfile -t HERD_EACH < <(awk '/^worker [0-9]+ \(pid/ { print $5 }' "$SERVER_LOG")
    HERD_SERVED=$(sed -n 's/^shutdown: served \([0-9]*\) connections, .*/\1/p' "$SERVER_LOG")
    [ "$HERD_SERVED" -eq 200 ]
    [ "$HERD_ACCEPTED" -eq "$HERD_SERVED" ]
}

# herd_targets PROGRAM [SWAP]: the issue's targets, on one server: every mode serves
# all 200; shared's wake-ups per connection, summed over the workers, at least 2
# more than exclusive's and reuseport's; reuseport: no accept() EAGAIN, and every
# worker accepted some. shared and exclusive get up to two more rounds if the first falls
# short: the machine's other work can hide a herd's wake-ups (a worker not yet back
# asleep when the next client comes wakes once for both), not make them. SWAP=1 runs
# exclusive where shared should be and back: then the check must fail.
herd_targets() {
    local program=$1 first=shared second=exclusive round shared exclusive reuseport
    [ "${2:-0}" = 1 ] && first=exclusive second=shared
    herd "$program" reuseport
    reuseport=$HERD_WAKEUPS
    echo "reuseport: ${HERD_EACH[*]} accepted, $HERD_EAGAIN accept() EAGAIN"
    [ "$HERD_EAGAIN" -eq 0 ]
    for n in "${HERD_EACH[@]}"; do
        [ "$n" -gt 0 ]
    done
    for round in 1 2 3; do
        herd "$program" "$first"
        shared=$HERD_WAKEUPS
        herd "$program" "$second"
        exclusive=$HERD_WAKEUPS
        echo "round $round, wake-ups for 200 connections: shared $shared, exclusive $exclusive, reuseport $reuseport"
        # 2 more per connection, 200 connections: 400 more in all.
        [ $((shared - exclusive)) -lt 400 ] || [ $((shared - reuseport)) -lt 400 ] || return 0
    done
    false
}

# gone PID: the process has ended: no such pid, or a zombie not yet reaped (its new
# parent, init or a subreaper, may be slow to reap, and a zombie holds no port).
gone() {
    ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# parent_killed PROGRAM: PROGRAM -w 2 serves; its parent is killed outright (SIGKILL),
# and each worker must stop too (the kernel tells it: PR_SET_PDEATHSIG), so that
# nobody holds the port: a new connection is refused.
parent_killed() {
    local tries=500 pid workers=()
    start_server "$1" -q -w 2
    # The first line comes before the fork: wait for both workers to exist.
    until mapfile -t workers < <(pgrep -P "$SERVER_PID"); [ "${#workers[@]}" -eq 2 ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "workers: ${workers[*]}"; return 1; }
        sleep 0.02
    done
    BACKGROUND_PIDS+=("${workers[@]}")     # should they outlive the test, teardown stops them
    run "$PROBE" line -p "$PORT" -s "before the kill" -t 5
    [ "$status" -eq 0 ] || return 1
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
    for pid in "${workers[@]}"; do
        tries=250       # 5 s: generous, the signal is sent as the parent dies
        until gone "$pid"; do
            tries=$((tries - 1))
            [ "$tries" -gt 0 ] || { echo "worker $pid still runs:"; ps -o pid,ppid,stat,args -p "$pid"; return 1; }
            sleep 0.02
        done
    done
    run "$PROBE" line -p "$PORT" -s "after the kill" -t 5
    echo "$output"
    [ "$status" -eq 4 ] && [[ "$output" == *"Connection refused"* ]]
}

# workers_replaced PROGRAM [FD_PATTERN]: PROGRAM -w 2 serves 20 connections; both
# workers, asleep, are killed outright (SIGKILL), and each must be replaced, with a
# line that -q does not hide; then SIGINT: one summary, with a line per worker, that
# counts the dead workers' work and the new ones'. FD_PATTERN, if given, is what
# each worker's descriptors must show (08: a hub of its own, made after the fork).
workers_replaced() {
    local tries=500 pid old=() new=()
    start_server "$1" -q -w 2
    until mapfile -t old < <(pgrep -P "$SERVER_PID"); [ "${#old[@]}" -eq 2 ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "workers: ${old[*]}"; return 1; }
        sleep 0.02
    done
    run "$PROBE" churn -p "$PORT" -n 20 -c 4           # 20 connections, 171 bytes
    [ "$status" -eq 0 ]
    for pid in "${old[@]}"; do
        wait_asleep "$pid"
        [ -z "${2:-}" ] || ls -l "/proc/$pid/fd" | grep -Eq "$2"
    done
    kill -KILL "${old[@]}"
    wait_for_count '^worker [12] \(pid [0-9]+\) killed by signal 9: replaced by pid [0-9]+$' 2
    mapfile -t new < <(pgrep -P "$SERVER_PID")
    echo "workers before: ${old[*]}, after: ${new[*]}"
    [ "${#new[@]}" -eq 2 ]
    for pid in "${new[@]}"; do
        [ "$pid" != "${old[0]}" ] && [ "$pid" != "${old[1]}" ]
    done
    run "$PROBE" line -p "$PORT" -s "after the kill" -t 5     # 15 bytes
    [ "$status" -eq 0 ]
    status=0
    stop_pid "$SERVER_PID" INT || status=$?
    SERVER_PID=
    [ "$status" -eq 0 ]
    cat "$SERVER_LOG"
    [ "$(grep -c '^shutdown: ' "$SERVER_LOG")" -eq 1 ]
    grep -q '^shutdown: served 21 connections, echoed 186 bytes$' "$SERVER_LOG"
    [ "$(grep -Ec '^worker [12] \(pid [0-9]+\): [0-9]+ accepted' "$SERVER_LOG")" -eq 2 ]
    for pid in "${new[@]}"; do
        gone "$pid" || { echo "worker $pid still runs"; return 1; }
    done
}
