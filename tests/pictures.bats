#!/usr/bin/env bats
# make pictures keeps working: one timeline drawn from a real run of 04-select, and
# the five-models figure, each a well-formed SVG with the rows it must have.

load helpers
bats_require_minimum_version 1.5.0     # for "run !"

@test "pictures: 04-select's timeline has a row per client and the server's thread" {
    out="$BATS_TEST_TMPDIR/timeline.svg"
    run "$LAB_ROOT/tests/pictures/draw" 04-select/server "$out"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [ "$(head -c 4 "$out")" = "<svg" ]
    [ "$(tail -n 1 "$out")" = "</svg>" ]
    # every element opened is closed (each is one line: <x .../> or <x ...>...</x>)
    run ! grep -v -E '^<(svg|/svg>|defs>)|/>$|</[a-z]+>$' "$out"
    for row in "client A" "client B" "client C"; do grep -q ">$row</text>" "$out"; done
    # each client's reply was read (a green tick per reply) and nothing was lost
    [ "$(grep -c 'stroke="#1e7b34"' "$out")" -ge 5 ]
    run ! grep -q 'stroke="#d62728"' "$out"
    if command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null; then
        grep -q '>the one thread (' "$out"
        grep -q '>fds per call: handed / ready</text>' "$out"
    fi
    [ "$(wc -c <"$out")" -lt 40000 ]
}

@test "pictures: a client slow to read, drawn from 04 and from its blocking-send pitfall" {
    out="$BATS_TEST_TMPDIR/slow.svg" bad="$BATS_TEST_TMPDIR/slow-pitfall.svg"
    mkdir "$BATS_TEST_TMPDIR/ok" "$BATS_TEST_TMPDIR/bad"     # the plans, kept to read the times
    LAB_PICTURES_KEEP="$BATS_TEST_TMPDIR/ok" run "$LAB_ROOT/tests/pictures/draw" 04-select/server "$out" slow-reader
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    LAB_PICTURES_KEEP="$BATS_TEST_TMPDIR/bad" run "$LAB_ROOT/tests/pictures/draw" \
        -p 04-select/pitfalls/blocking-send.patch 04-select/server "$bad" slow-reader
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    for f in "$out" "$bad"; do
        [ "$(tail -n 1 "$f")" = "</svg>" ]
        run ! grep -v -E '^<(svg|/svg>|defs>)|/>$|</[a-z]+>$' "$f"
        for row in "client S" "client A" "client B" "owed to S"; do grep -q ">$row</text>" "$f"; done
        grep -q '>sends 16 MiB, reads nothing</text>' "$f"
        # every line of A and B was answered (a green tick per reply), and S's replies came
        [ "$(grep -c 'stroke="#1e7b34"' "$f")" -eq 6 ]
        run ! grep -q 'stroke="#d62728"' "$f"
    done
    # The longest wait of A or B for a reply, in ms, from the plan's send and reply ticks.
    slowest() {
        awk '$1 == "tick" && ($2 == "cA" || $2 == "cB") {
                 if ($4 == "send") sent[$2] = $3
                 else if ($4 == "reply" && $3 - sent[$2] > max) max = $3 - sent[$2]
             } END { printf "%d\n", max }' "$1/plan"
    }
    echo "slowest reply: $(slowest "$BATS_TEST_TMPDIR/ok") ms as it is, $(slowest "$BATS_TEST_TMPDIR/bad") ms with the pitfall"
    # As it is, S costs the others nothing; with the pitfall, a line sent at 600 ms waits
    # for S to read at 800 ms, while the one thread is blocked sending to S.
    [ "$(slowest "$BATS_TEST_TMPDIR/ok")" -lt 150 ]
    [ "$(slowest "$BATS_TEST_TMPDIR/bad")" -ge 150 ]
    run ! grep -q 'sendto S' "$out"
    if command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null; then
        grep -q '>sendto S</text>' "$bad"
    fi
}

@test "pictures: the five-models figure has its five columns" {
    out="$BATS_TEST_TMPDIR/five.svg"
    "$LAB_ROOT/tests/pictures/five-models" "$out"
    [ "$(head -c 4 "$out")" = "<svg" ]
    [ "$(tail -n 1 "$out")" = "</svg>" ]
    run ! grep -v -E '^<(svg|/svg>)|/>$|</[a-z]+>$' "$out"
    for model in "1 blocking" "2 non-blocking" "3 multiplexing" "4 signal-driven" "5 asynchronous"; do
        grep -q ">$model</text>" "$out"
    done
    # The white boxes (F_SETSIG, submit the read) have their legend entry.
    grep -q '>a call that returns at once</text>' "$out"
    # Models 4 and 5 leave the process free to run, and the lab's servers, with nothing
    # else to do, wait in sigtimedwait() and io_uring_enter(): "runs on" is model 2's alone.
    grep -q '>sigtimedwait()</text>' "$out"
    grep -q '>io_uring_enter()</text>' "$out"
    [ "$(grep -c '>runs on</text>' "$out")" -eq 3 ]
}

# Run draw with its stderr apart: a normal draw prints nothing at all.
draw_quiet() {
    run --separate-stderr "$LAB_ROOT/tests/pictures/draw" "$@"
    [ "$status" -eq 0 ] || { echo "exit $status: $stderr"; false; }
    [ -z "$stderr" ] || { echo "draw said: $stderr"; false; }
}

@test "pictures: 02's timeline has every client's marks, and draw says nothing" {
    out="$BATS_TEST_TMPDIR/02.svg"
    mkdir "$BATS_TEST_TMPDIR/keep"
    LAB_PICTURES_KEEP="$BATS_TEST_TMPDIR/keep" draw_quiet 02-nonblocking/server "$out"
    plan="$BATS_TEST_TMPDIR/keep/plan"
    # A and B send three lines, C one; only each client's first is answered.
    count() { awk -v k="$1" -v c="$2" '$1 == "tick" && $2 == k && $4 == c { n++ } END { print n + 0 }' "$plan"; }
    for c in A B; do
        [ "$(count "c$c" send)" -eq 3 ] && [ "$(count "c$c" reply)" -eq 1 ] && [ "$(count "c$c" lost)" -eq 2 ] ||
            { echo "client $c:"; grep " c$c " "$plan"; false; }
    done
    [ "$(count cC send)" -eq 1 ] && [ "$(count cC reply)" -eq 1 ] && [ "$(count cC lost)" -eq 0 ]
    # each client was accepted: the server's log named its port
    for c in A B C; do grep -q "^span c$c [0-9.]* [0-9.]* served$" "$plan" || { grep " c$c " "$plan"; false; }; done
    # and the picture draws them: 7 lines sent, 3 replies, 4 losses
    [ "$(grep -c 'stroke="#1f5fbf"' "$out")" -eq 7 ]
    [ "$(grep -c 'stroke="#1e7b34"' "$out")" -eq 3 ]
    [ "$(grep -c 'stroke="#d62728"' "$out")" -eq 4 ]
}

@test "pictures: draw fails, and says why, when a step of its own fails" {
    # A readlink that fails: draw cannot tell which port is whose, inside a client
    # running in the background. That must fail the draw, not draw a picture without it.
    mkdir "$BATS_TEST_TMPDIR/bin"
    printf '#!/bin/sh\nexit 1\n' >"$BATS_TEST_TMPDIR/bin/readlink"
    chmod +x "$BATS_TEST_TMPDIR/bin/readlink"
    PATH="$BATS_TEST_TMPDIR/bin:$PATH" run --separate-stderr \
        "$LAB_ROOT/tests/pictures/draw" 04-select/server "$BATS_TEST_TMPDIR/t.svg"
    echo "exit $status: $stderr"
    [ "$status" -ne 0 ]
    [[ $stderr == *draw:* ]]
    [ ! -e "$BATS_TEST_TMPDIR/t.svg" ]
}

# draw_record ROWS: draw $BATS_TEST_TMPDIR/events (a record written by hand, as draw
# records a run: 1000 ms from t0) with plan.awk and svg.awk into $BATS_TEST_TMPDIR/r.svg.
draw_record() {
    awk -v t0=1000000000 -v end=1001000000 -v rows="$1" -v title=T -v note=N -v clients=A -v fds=25 \
        -f "$LAB_ROOT/tests/pictures/plan.awk" "$BATS_TEST_TMPDIR/events" >"$BATS_TEST_TMPDIR/plan"
    awk -f "$LAB_ROOT/tests/pictures/svg.awk" "$BATS_TEST_TMPDIR/plan" >"$BATS_TEST_TMPDIR/r.svg"
}

# overlaps SVG: each text in the plot (x >= 215) that a tick (a vertical line, not the
# time grid) crosses, or that runs past the right edge. Text is taken as 0.56 em a
# character (a little more than the sans-serif fonts take), tags left out.
overlaps() {
    awk '
    function attr(s, name) { return match(s, " " name "=\"[^\"]*\"") ? substr(s, RSTART + length(name) + 3, RLENGTH - length(name) - 4) : "" }
    /^<line / && attr($0, "x1") == attr($0, "x2") && attr($0, "stroke") != "#eeeeee" {
        n++; lx[n] = attr($0, "x1") + 0; ly1[n] = attr($0, "y1") + 0; ly2[n] = attr($0, "y2") + 0
    }
    /^<text / {
        s = $0; sub(/^<text[^>]*>/, "", s); sub(/<\/text>$/, "", s); gsub(/<[^>]*>/, "", s)
        gsub(/…|×|→/, ".", s)         # one character each, whatever the locale
        m++; tx[m] = attr($0, "x") + 0; ty[m] = attr($0, "y") + 0; tsz[m] = attr($0, "font-size") + 0
        tw[m] = 0.56 * tsz[m] * length(s); tanchor[m] = attr($0, "text-anchor"); ts[m] = s
    }
    END {
        for (j = 1; j <= m; j++) {
            x0 = tx[j] - (tanchor[j] == "end" ? tw[j] : tanchor[j] == "middle" ? tw[j] / 2 : 0)
            if (x0 + tw[j] > 900) print "past the edge: " ts[j]
            if (tx[j] < 215) continue
            for (i = 1; i <= n; i++)
                if (lx[i] > x0 && lx[i] < x0 + tw[j] && ly2[i] > ty[j] - tsz[j] && ly1[i] < ty[j])
                    print "a tick at x=" lx[i] " crosses \"" ts[j] "\""
        }
    }' "$1"
}

@test "pictures: from a record, a spinning server's calls cross no label and a reply hides no line sent" {
    cat >"$BATS_TEST_TMPDIR/events" <<'REC'
C 1000000000 A connect 50000
C 1000100000 A send hello
C 1000100800 A reply HELLO
C 1000300000 A send again
C 1000300900 A reply AGAIN
C 1000900000 A close
S 1000000500 7 accept(3, {sa_family=AF_INET, sin_port=htons(50000), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 4 <0.000020>
S 1000100300 7 recvfrom(4, "hello\n", 65536, 0, NULL, NULL) = 6 <0.000012>
S 1000100400 7 sendto(4, "HELLO\n", 6, 0, NULL, 0) = 6 <0.000029>
S 1000300300 7 recvfrom(4, "again\n", 65536, 0, NULL, NULL) = 6 <0.000012>
S 1000300400 7 sendto(4, "AGAIN\n", 6, 0, NULL, 0) = 6 <0.000029>
S 1000950000 7 close(4) = 0 <0.000012>
REC
    draw_record spin
    run overlaps "$BATS_TEST_TMPDIR/r.svg"
    [ -z "$output" ] || { echo "$output"; false; }
    # each line sent (blue) and its reply (green), less than a pixel apart: both seen
    awk '/^<line / && /stroke="#1f5fbf"/ { split($0, a, "\""); sy1[a[2]] = a[4]; sy2[a[2]] = a[8]; ns++ }
         /^<line / && /stroke="#1e7b34"/ { split($0, a, "\""); rx[++nr] = a[2]; ry1[nr] = a[4]; ry2[nr] = a[8] }
         END { if (ns != 2 || nr != 2) { print ns " sent, " nr " replies"; exit 1 }
               for (x in sy1) for (i = 1; i <= nr; i++)
                   if ((rx[i] - x)^2 < 9 && ry1[i] + 0 < sy2[x] + 0 && ry2[i] + 0 > sy1[x] + 0) { print "a reply covers the line sent at x=" x; exit 1 } }' \
        "$BATS_TEST_TMPDIR/r.svg"
}

@test "pictures: from a record, every wait is named and every readiness call carries its numbers" {
    cat >"$BATS_TEST_TMPDIR/events" <<'REC'
C 1000000000 A connect 50000
C 1000100000 A send hello
C 1000101000 A reply HELLO
C 1000900000 A close
S 1000000500 7 accept(3, {sa_family=AF_INET, sin_port=htons(50000), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 4 <0.000020>
S 1000001000 7 rt_sigtimedwait([IO RT_2], {si_signo=SIGRT_2, si_code=0x1, si_int=4, si_ptr=0x4}, NULL, 8) = 34 (SIGRT_2) <0.099000>
S 1000100200 7 poll([{fd=4, events=POLLIN}], 1, 0) = 1 ([{fd=4, revents=POLLIN}]) <0.000011>
S 1000100300 7 recvfrom(4, "hello\n", 65536, 0, NULL, NULL) = 6 <0.000012>
S 1000100400 7 sendto(4, "HELLO\n", 6, 0, NULL, 0) = 6 <0.000029>
S 1000100500 7 rt_sigtimedwait([IO RT_2], {si_signo=SIGRT_2, si_code=0x1, si_int=4, si_ptr=0x4}, NULL, 8) = 34 (SIGRT_2) <0.120000>
S 1000220600 7 poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}], 24, -1) = 1 ([{fd=4, revents=POLLIN}]) <0.000011>
S 1000220700 7 rt_sigtimedwait([IO RT_2], {si_signo=SIGRT_2, si_code=0x1, si_int=4, si_ptr=0x4}, NULL, 8) = 34 (SIGRT_2) <0.600000>
S 1000990000 7 poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}], 25, -1) = 25 ([{fd=4, revents=POLLIN}]) <0.000011>
S 1000995000 7 poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}], 25, -1) = -1 EINTR (Interrupted system call) <0.000011>
REC
    draw_record scan
    run overlaps "$BATS_TEST_TMPDIR/r.svg"
    [ -z "$output" ] || { echo "$output"; false; }
    # the three waits, 66, 80 and 400 px wide, are each named (in full or cut short)
    [ "$(grep -c '>rt_sig[a-z_]*…*</text>' "$BATS_TEST_TMPDIR/r.svg")" -eq 3 ] || { grep '<text' "$BATS_TEST_TMPDIR/r.svg"; false; }
    # each call's numbers beside it, the one at the right edge too, and the scale's top
    for n in "1 / " "24 / " "25 / "; do grep -q ">$n<tspan[^>]*>[0-9]*</tspan></text>" "$BATS_TEST_TMPDIR/r.svg"; done
    grep -q 'text-anchor="end">25</text>' "$BATS_TEST_TMPDIR/r.svg"
    # a call that failed (EINTR, at the end of a run) returned no descriptor: no bar
    run ! grep -q -- '-1</tspan>' "$BATS_TEST_TMPDIR/r.svg"
    [ "$(grep -c '^bar ' "$BATS_TEST_TMPDIR/plan")" -eq 3 ]
}

@test "pictures: 07 -w 4 and one client, by ACCEPT: every worker wakes in shared, one in reuseport" {
    command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null \
        || skip "strace is needed: the workers' rows come from it"
    for mode in shared reuseport; do
        out="$BATS_TEST_TMPDIR/herd-$mode.svg"
        run "$LAB_ROOT/tests/pictures/draw" 07-selectors/server "$out" "herd-$mode"
        [ "$status" -eq 0 ] || { echo "$output"; false; }
        [ "$(tail -n 1 "$out")" = "</svg>" ]
        run ! grep -v -E '^<(svg|/svg>|defs>)|/>$|</[a-z]+>$' "$out"
        for w in 1 2 3 4; do grep -q ">worker $w \(of A \)\?([0-9]*)</text>" "$out"; done
        # Every worker's first epoll_wait ends: woken. In shared each loser's accept()
        # finds nobody (an EAGAIN mark); in reuseport only one wakes, and none does.
        eagains=$(grep -c 'stroke="#e6750a"' "$out" || true)
        echo "ACCEPT=$mode: $eagains accept() EAGAIN marks"
        if [ "$mode" = shared ]; then [ "$eagains" -ge 1 ]; else [ "$eagains" -eq 0 ]; fi
    done
}
