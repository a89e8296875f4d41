# tests/bench/report.sh, sourced by tests/bench/run once every figure is in: prints the
# tables and bar charts, and writes the same as tests/bench/out/bench.md and bench.svg.
# Reads: servers, counts, idle_counts, cell, split_cell, placements, split_missing,
# c10k, open_cell, open_labels, open_rate, open_share, open_conns, syscall_labels,
# syscall_conns, calls, model_pairs, uring_variants, abl_cell, abl_calls, idle_cpu, switch_ns, cpu_targets, mem_targets,
# syscall_ns, roundtrip_us, kstack_kib, repeats, secs, c10k_secs, open_secs, idle_secs,
# hz, quick, timings, tmp, out; run's is_target; and tests/bench/decimal.sh's
# functions (which set R: no $(...) per figure, each would fork).
# shellcheck shell=bash disable=SC2154

machine="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores, Linux $(uname -r)"
when=$(date -u '+%Y-%m-%d %H:%M UTC')
chart_at=100                            # the bar chart compares servers at this many connections

labels=()
declare -A most                         # label -> the most connections it can hold
for e in "${servers[@]}"; do
    IFS='|' read -r l _ _ m _ <<<"$e"
    labels+=("$l")
    most["$l"]=$m
done
# cpu_of LABEL N [PLACEMENT]: its CPU µs per request with N busy connections, on one
# CPU (the default) or with the load on another (split: the target cells only), in R.
cpu_of() {
    local c
    if [ "${3:-one}" = one ]; then
        read -r _ _ _ c _ <<<"${cell["$1|$2"]:--}"
    else
        read -r _ _ _ c _ <<<"${split_cell["$1|$2"]:--}"
    fi
    R=${c:--}
}
# calls_of LABEL: its system calls per request in all (strace's total), "-" if not counted, in R.
calls_of() {
    R=-
    if [[ " ${calls["$1"]:-} " =~ \ total=([0-9.]+)\  ]]; then R=${BASH_REMATCH[1]}; fi
}
# c10k_of LABEL K FIELD: of the cell with K idle: 1 CPU µs/request, 2 RSS KiB, 3 threads, in R.
c10k_of() {
    local f=(- - - -)
    read -ra f <<<"${c10k["$1|$2"]:--}"
    R=${f[$3 - 1]:--}
}
# per_conn LABEL K: KiB per idle connection, (RSS with K idle - RSS with none) / K, plus
# a kernel stack for each thread the K connections added (01: one each; RSS leaves it out).
per_conn() {
    local r1 r0 t1 t0 ks=$kstack_kib
    c10k_of "$1" "$2" 2; r1=$R
    c10k_of "$1" 0 2; r0=$R
    c10k_of "$1" "$2" 3; t1=$R
    c10k_of "$1" 0 3; t0=$R
    if [ "$2" -le 0 ] || [ "$r1" = - ] || [ "$r0" = - ]; then R=-; return; fi
    if [ "$ks" = - ] || [ "$t1" = - ] || [ "$t0" = - ]; then ks=0; fi
    div_round $(( ((r1 - r0) + (t1 - t0) * ks) * 10 )) "$2"
    from_fixed "$R" 1
    R=$DEC
}
# top_k LABEL: the largest K of this run it can hold (0 if none), in R.
top_k() {
    local k
    R=0
    for k in "${idle_counts[@]}"; do [ "$k" -gt "${most["$1"]}" ] || R=$k; done
}
# fmt_k N: 10000 as 10,000, in R.
fmt_k() {
    local s=$1 t=
    while [ "${#s}" -gt 3 ]; do t=",${s: -3}$t"; s=${s:0:${#s}-3}; done
    R=$s$t
}
# The natural logarithms the log-scale bars need, all from one awk: log_of["V"].
declare -A log_of
while read -r v l; do log_of["$v"]=$l; done < <(
    {
        for v in "${c10k[@]}"; do echo "${v%% *}"; done
        for v in "${open_cell[@]}"; do read -r _ _ a b c _ <<<"$v"; echo "$a"; echo "$b"; echo "$c"; done
    } | awk '$1 != "-" { printf "%s %.4f\n", $1, ($1 > 1 ? log($1) : 0) }')
# lg V: log_of[V], "-" if none, in R.
lg() { R=${log_of["$1"]:--}; }

# row TARGET MEASURED MET: one row of the targets table for a target measured on one
# CPU only ("-" measured: not in this run).
row() {
    if [ "$2" = - ]; then
        echo "| $1 | not measured in this run | | - |"
    else
        echo "| $1 | $2 | one CPU only | $3 |"
    fi
}
# cpu_row TARGET ONE MET_ONE SPLIT MET_SPLIT: a CPU target's row, measured in both
# placements; met only if met in both (on one CPU alone where split could not run).
cpu_row() {
    if [ "$2" = - ]; then
        echo "| $1 | not measured in this run | | - |"
    elif [ -n "$split_missing" ]; then
        echo "| $1 | $2, $3 | not run | $3 (one CPU only) |"
    else
        local met=no
        if [ "$3" = yes ] && [ "$5" = yes ]; then met=yes; fi
        echo "| $1 | $2, $3 | $4, $5 | $met |"
    fi
}
# targets: the issue's targets as table rows, computed from this run's figures.
targets() {
    local t label ref limit tcounts n k k0 held errs worst unit v a b r m one split
    for t in "${cpu_targets[@]}"; do
        IFS='|' read -r label ref limit tcounts <<<"$t"
        for n in $tcounts; do
            cpu_of "$label" "$n"; a=$R
            cpu_of "$ref" "$n"; b=$R
            ratio "$a" "$b"; r=$R
            at_most "$r" "$limit"; m=$R
            one="$a against $b µs: $r"
            [ "$r" != - ] || one=-
            cpu_of "$label" "$n" split; a=$R
            cpu_of "$ref" "$n" split; b=$R
            ratio "$a" "$b"; r=$R
            split="$a against $b µs: $r"
            fmt_k "$n"; k=$R
            at_most "$r" "$limit"
            cpu_row "$label CPU/request at most ${limit}x $ref's, $k connections" "$one" "$m" "$split" "$R"
        done
    done
    for t in "${mem_targets[@]}"; do
        IFS='|' read -r label k limit unit <<<"$t"
        fmt_k "$k"; n=$R
        if [ "$unit" = MiB ]; then
            c10k_of "$label" "$k" 2
            scale "$R" 1 1024 1; v=$R
            at_most "$v" "$limit"
            [ "$v" = - ] || v="$v MiB"
            row "$label RSS with $n idle connections at most $limit MiB" "$v" "$R"
        else
            per_conn "$label" "$k"; v=$R
            at_most "$v" "$limit"
            [ "$v" = - ] || v="$v KiB"
            row "$label at most $limit KiB per idle connection, K = $n" "$v" "$R"
        fi
    done
    for label in "04 select" "05 poll" "06 epoll"; do
        c10k_of "$label" 0 1; k0=$R
        top_k "$label"; k=$R
        c10k_of "$label" "$k" 1
        ratio "$R" "$k0"; r=$R
        fmt_k "$k"; n=$R
        if [ "$label" = "06 epoll" ]; then
            at_least "$r" 1.5           # flat: below 1.5x
            case $R in yes) R=no ;; no) R=yes ;; esac
            row "$label flat as idle K grows" "K = $n against K = 0: $r" "$R"
        else
            at_least "$r" 2
            row "$label grows with idle K" "K = $n against K = 0: $r" "$R"
        fi
    done
    fmt_k "${counts[-1]}"; n=$R
    for label in "06 epoll" "06 epoll -e" "07 epoll" "08 coroutines" "08 uring"; do
        read -r _ _ _ _ _ errs held _ <<<"${cell["$label|${counts[-1]}"]}"
        echo "| $label holds $n connections, no errors | held $held, errors $errs | one CPU only | $([ "$held" = "${counts[-1]}" ] && [ "$errs" = 0 ] && echo yes || echo no) |"
    done
    worst=0
    for label in "${labels[@]}"; do
        [[ "$label" == 0[4-8]* ]] && [ -n "${idle_cpu["$label"]+set}" ] || continue
        if [ "${idle_cpu["$label"]}" -gt "$worst" ]; then worst=${idle_cpu["$label"]}; fi
    done
    echo "| idle CPU ≈ 0 for 04-08 | at most $worst % | one CPU only | $([ "$worst" -le 1 ] && echo yes || echo no) |"
}

# placement_section: the target cells in both placements, side by side.
placement_section() {
    local label n a b x r1 r2
    echo "## Two placements: one CPU, and separate CPUs"
    echo
    echo "The cells the CPU targets compare (and the cost model's) ran in two placements, in the same"
    echo "rounds: server and load generator both on CPU 0 (one CPU, as every other section:"
    echo "repeatable), and the server on CPU 0 with the load generator on CPU 1 (separate CPUs, as a"
    echo "server is deployed: a request's wake-up crosses CPUs, which one CPU hides)."
    if [ -n "$split_missing" ]; then
        echo "Separate CPUs: not run, $split_missing."
    fi
    echo
    echo "| server | connections | requests/s, one CPU | separate CPUs | CPU µs/request, one CPU | separate CPUs | separate / one |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for label in "${labels[@]}"; do
        for n in "${counts[@]}"; do
            if ! is_target "$label" "$n" || [ "$n" -gt "${most["$label"]}" ]; then continue; fi
            read -r r1 _ <<<"${cell["$label|$n"]:--}"
            read -r r2 _ <<<"${split_cell["$label|$n"]:--}"
            cpu_of "$label" "$n"; a=$R
            cpu_of "$label" "$n" split; b=$R
            ratio "$b" "$a"; x=$R
            echo "| $label | $n | $r1 | $r2 | $a | $b | $x |"
        done
    done
}

# uring_ablation: 08's completion hub from its first form, one feature added per row,
# beside the readiness hub (run's uring_ablation_run: uring_variants, abl_cell, abl_calls).
uring_ablation() {
    local entry variant n p cpu rss ecpu row
    echo "## Completion hub ablation: the first form, then one feature at a time"
    echo
    echo "08's completion hub (hub-uring.c), from its first form (one SQE per call, URING=first)"
    echo "to its default, each row adding one feature (URING_OFF switches the others off), beside"
    echo "the readiness hub (08 coroutines, epoll). Per cell: CPU µs per request and, in brackets,"
    echo "x the readiness hub's in the same placement; system calls per request (strace -c, one"
    echo "CPU, a run of its own); the server's RSS at the end, KiB. One run per cell, not rounds:"
    echo "read the columns' trend, not their last digit."
    echo
    for n in "${counts[@]}"; do
        echo "**$n connections**"
        echo
        echo "| hub | CPU µs/req, one CPU | separate CPUs | calls/req | RSS KiB |"
        echo "|---|---:|---:|---:|---:|"
        for entry in "${uring_variants[@]}"; do
            variant=${entry%%|*}
            row="| $variant"
            for p in "${placements[@]}"; do
                p=${p%%|*}
                read -r cpu rss <<<"${abl_cell["$variant|$n|$p"]:-- -}"
                read -r ecpu _ <<<"${abl_cell["epoll hub|$n|$p"]:-- -}"
                ratio "$cpu" "$ecpu"
                row+=" | $cpu ($R)"
            done
            [ "${#placements[@]}" -gt 1 ] || row+=" | not run"
            read -r _ rss <<<"${abl_cell["$variant|$n|one"]:-- -}"
            echo "$row | ${abl_calls["$variant|$n"]:--} | $rss |"
        done
        echo
    done
}

# cost_model: each server's system calls times the floor's call cost against its CPU per
# request; and, for each of model_pairs, the calls saved times a call's cost (the saving
# predicted) against the CPU per request saved (measured) in each placement.
cost_model() {
    local label ref n=$syscall_conns c pred cpu share saved pair p a b diff x rps tick
    echo "## Cost model: system calls x what one costs on this machine, $syscall_conns connections"
    echo
    echo "Each server's system calls per request (above, strace's total) times the floor's system"
    echo "call ($syscall_ns ns, getppid: entering and leaving the kernel, no work inside) is what the"
    echo "crossings into the kernel cost it per request, beside its CPU per request (one CPU,"
    echo "$syscall_conns connections). The rest is work no count of calls shows: TCP, copies and wake-ups"
    echo "in the kernel, the server's own code. Saving a call saves its crossing, not that work."
    echo
    echo "| server | system calls per request | x ${syscall_ns} ns = µs per request | CPU µs/request, one CPU | share of the CPU |"
    echo "|---|---:|---:|---:|---:|"
    for label in "${syscall_labels[@]}"; do
        calls_of "$label"; c=$R
        scale "$c" "$syscall_ns" 1000 2; pred=$R
        cpu_of "$label" "$n"; cpu=$R
        scale "$pred" 100 "$cpu" 0; share=$R
        [ "$share" = - ] || share="$share %"
        echo "| $label | $c | $pred | $cpu | $share |"
    done
    echo
    echo "What a server saves in calls, times a call's cost, is the saving the model predicts; the"
    echo "difference in CPU per request is the saving measured, in each placement. Measured over"
    echo "predicted near 1: the calls are the story. Above 1: it saves work besides the crossings."
    echo "Below 1, or negative: it pays for something the calls do not show (its own work per"
    echo "operation, wake-ups across CPUs), and where calls are cheap that can outweigh the saving."
    echo "CPU is counted in clock ticks ($((1000 / hz)) ms): the tick column is one tick spread over the"
    echo "cell's requests, the finest difference the cell can show."
    echo
    echo "| server against reference | calls saved per request | predicted saving µs | placement | CPU µs/request, reference / server | measured saving µs | measured / predicted | tick µs |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|"
    for pair in "${model_pairs[@]}"; do
        label=${pair%%|*}; ref=${pair#*|}
        calls_of "$ref"; a=$R
        calls_of "$label"; b=$R
        sum "$a" "-$b" 2; saved=$R
        scale "$saved" "$syscall_ns" 1000 2; pred=$R
        for p in one split; do
            if [ "$p" = split ] && [ -n "$split_missing" ]; then
                echo "| $label against $ref | $saved | $pred | separate CPUs | not run | | | |"
                continue
            fi
            cpu_of "$ref" "$n" "$p"; a=$R
            cpu_of "$label" "$n" "$p"; b=$R
            sum "$a" "-$b" 1; diff=$R
            ratio "$diff" "$pred"; x=$R
            if [ "$p" = one ]; then read -r rps _ <<<"${cell["$label|$n"]:--}"; else read -r rps _ <<<"${split_cell["$label|$n"]:--}"; fi
            scale "$rps" "$secs" 1 0
            scale $((1000000 / hz)) 1 "$R" 2; tick=$R
            echo "| $label against $ref | $saved | $pred | $([ "$p" = one ] && echo one CPU || echo separate CPUs) | $a / $b | $diff | $x | $tick |"
        done
    done
}


# The thundering herd (tests/bench/run's herd_bench), a section of its own.
herd_section() {
    local mode w e top each
    echo "## The thundering herd: 07 -w 4, one worker process per loop, by ACCEPT"
    echo
    echo "Clients one at a time (a line, its reply, close). Per accepted connection, summed"
    echo "over the four workers: wake-ups (voluntary context switches, ru_nvcsw) and"
    echo "accept() EAGAINs (a worker woken for a client another took)."
    echo
    echo "| ACCEPT | wake-ups per connection | accept() EAGAIN per connection | busiest worker's share | accepted by each worker |"
    echo "|---|---:|---:|---:|---|"
    for mode in shared exclusive reuseport; do
        read -r w e top each <<<"${herd_cell["$mode"]:-- - -}"
        echo "| $mode | $w | $e | $top % | $each |"
    done
    echo
    echo "Throughput, 100 busy connections, the server's workers on CPU 0, the load on CPU ${placements[-1]#*|}:"
    echo "-w 1 ${herd_rps[w1]:--} requests/s, -w 2 ${herd_rps[w2]:--} requests/s (one CPU for the"
    echo "server: two processes cannot go faster than one there; more cores would be needed to show scaling)."
    echo
}

{
    echo "# make bench: every stage side by side"
    echo
    echo "Measured on $machine, $when$([ "$quick" = 1 ] && echo ' (QUICK=1: a smoke test, not figures to quote)')."
    echo "The run took $SECONDS s ($timings)."
    echo "Closed loop: each connection sends a 64-byte line and waits for its reply before the next;"
    echo "${secs} s per cell after every connection was opened and answered once. CPU is the server's"
    echo "own (user + system, from /proc/PID/stat) per request; RSS its VmRSS at the end."
    echo "Server and load generator share one CPU (taskset -c 0), which makes the figures repeat;"
    echo "every section but one runs so. The cells the CPU targets compare (and the cost model's)"
    echo "also ran with the load generator on CPU 1, the server still on CPU 0, where this machine"
    echo "has a CPU 1: see \"Two placements\"."
    if [ "$repeats" -gt 1 ]; then
        echo "Those cells ran $repeats times each in each placement, in rounds (each round runs every"
        echo "one of them once in each placement, so that the machine's drift falls on all alike); the"
        echo "run with the median CPU per request is shown, per placement."
    fi
    echo
    echo "## The machine's floor"
    echo
    echo "Measured first, in this run (tests/bench/floor, medians of 11 batches), and the baseline:"
    echo "the cheapest loop that can serve the benchmark (one epoll_wait, one recv, one send)."
    echo
    echo "| what | this machine |"
    echo "|---|---:|"
    echo "| one system call (getppid) | $syscall_ns ns |"
    echo "| one loopback TCP round trip: 1 byte, blocking send/recv, both ends on one CPU | $roundtrip_us µs |"
    echo "| a thread's kernel stack, which no RSS shows | $kstack_kib KiB |"
    read -r _ p50 _ <<<"${cell["baseline|1"]}"
    ratio "$p50" "$roundtrip_us" 1
    echo "| baseline, 1 connection: p50 latency | $p50 µs = $R the round trip |"
    for n in "${counts[@]}"; do
        cpu_of baseline "$n"; cpu=$R
        fmt_k "$n"; k="$R connections"
        [ "$n" != 1 ] || k="1 connection"
        scale "$cpu" 1000 "$syscall_ns" 0
        echo "| baseline, $k: CPU per request | $cpu µs = $R system calls |"
    done
    echo
    echo "Below, \"x baseline\" is a server's CPU per request against the baseline's at the same"
    echo "number of connections, and \"syscalls\" the same CPU counted in system calls of the floor's."
    echo
    echo "## Closed loop: throughput, latency, server CPU per request"
    echo
    echo "| server | connections | requests/s | p50 µs | p99 µs | CPU µs/request | x baseline | syscalls | RSS KiB | KiB per idle conn | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for label in "${labels[@]}"; do
        for n in "${counts[@]}"; do
            read -r rps p50 p99 cpu rss errors _held why <<<"${cell["$label|$n"]}"
            if [ "$rps" = - ]; then
                echo "| $label | $n | | | | | | | | | ${why} |"
                continue
            fi
            mem=
            if [ "$n" -gt 1 ]; then per_conn "$label" "$n"; [ "$R" = - ] || mem=$R; fi
            cpu_of baseline "$n"; ratio "$cpu" "$R"; x=$R
            scale "$cpu" 1000 "$syscall_ns" 0
            echo "| $label | $n | $rps | $p50 | $p99 | $cpu | $x | $R | $rss | $mem | $errors |"
        done
    done
    echo
    echo "KiB per idle conn: from the C10K cells below, with as many idle connections as this row has busy ones."
    echo
    placement_section
    echo
    echo "## Open loop: $open_rate requests/s offered, $open_conns connections, $open_secs s"
    echo
    scale "$open_share" 100 1 0
    echo "The rate is $R % of what the baseline served in the closed loop at 100 connections. Each"
    echo "request has an intended send time on a fixed schedule, and its latency runs from that"
    echo "time: a request that comes due while its connection still waits for a reply goes as soon"
    echo "as the reply is in, its latency counted from when it should have gone, so a server that"
    echo "stalls is charged for every request it delayed (a closed loop would not even send them:"
    echo "coordinated omission). Unanswered: requests with no reply 10 s after the schedule ended."
    echo
    echo "| server | offered/s | achieved/s | p50 µs | p99 µs | p99.9 µs | CPU µs/request | x baseline | errors | unanswered |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    read -r _ _ _ _ _ bcpu _ <<<"${open_cell[baseline]:-- - - - - -}"
    for label in "${open_labels[@]}"; do
        read -r offered rps p50 p99 p999 cpu errors unans <<<"${open_cell["$label"]}"
        ratio "$cpu" "$bcpu"
        echo "| $label | $offered | $rps | $p50 | $p99 | $p999 | $cpu | $R | $errors | $unans |"
    done
    echo
    echo "## System calls per request, $syscall_conns connections"
    echo
    echo "Counted by \`strace -c -f\` over a run of $secs s (which it slows: no CPU figures here),"
    echo "divided by the requests served; calls made less than once in 20 requests are left out"
    echo "(but not the total, which counts them all)."
    echo "The counts include each connection's setup (its accept, first round trip and close),"
    echo "spread over the requests: a few hundredths of a call each."
    echo
    echo "| server | system calls per request |"
    echo "|---|---|"
    for label in "${syscall_labels[@]}"; do
        echo "| $label | ${calls["$label"]:-not measured: strace is not installed} |"
    done
    echo
    cost_model
    echo
    uring_ablation
    echo "## C10K: one busy connection among K idle ones"
    echo
    echo "Server CPU µs per request as K grows (select and poll pay for every watched descriptor on"
    echo "every call, epoll for the ready ones), and KiB per idle connection: (RSS with K idle"
    echo "connections that each did one round trip - RSS with none) / K. A server that starts a"
    echo "thread per connection (01) also pays that thread's kernel stack ($kstack_kib KiB, the floor),"
    echo "which RSS leaves out: it is added. 08's coroutine stacks (256 KiB reserved each) count by"
    echo "the pages a connection touched, as RSS counts them: the reservation is address space."
    echo
    printf '| mechanism |'
    for k in "${idle_counts[@]}"; do fmt_k "$k"; printf ' CPU µs, K = %s |' "$R"; done
    for k in "${idle_counts[@]}"; do [ "$k" = 0 ] || { fmt_k "$k"; printf ' KiB/conn, K = %s |' "$R"; }; done
    echo ' RSS KiB, largest K |'
    printf '|---|'
    for k in "${idle_counts[@]}"; do printf -- '---:|'; [ "$k" = 0 ] || printf -- '---:|'; done
    printf -- '---:|\n'
    for label in "${labels[@]}"; do
        [ "${most["$label"]}" -gt 0 ] || continue
        printf '| %s |' "$label"
        for k in "${idle_counts[@]}"; do
            c10k_of "$label" "$k" 1; [ "$k" -le "${most["$label"]}" ] || R="(cap)"; printf ' %s |' "$R"
        done
        for k in "${idle_counts[@]}"; do
            [ "$k" != 0 ] || continue
            per_conn "$label" "$k"; [ "$k" -le "${most["$label"]}" ] || R="(cap)"; printf ' %s |' "$R"
        done
        top_k "$label"; c10k_of "$label" "$R" 2
        echo " $R |"
    done
    echo
    echo "## Idle CPU: 10 connections that send nothing, ${idle_secs} s"
    echo
    echo "| server | CPU % |"
    echo "|---|---:|"
    for label in "${labels[@]}"; do
        [ -z "${idle_cpu["$label"]+set}" ] || echo "| $label | ${idle_cpu["$label"]} |"   # not the framed servers
    done
    echo
    echo "## Coroutine switch cost (08's switch-bench)"
    echo
    echo "| switch | ns per switch | against the hand-written one | against a system call |"
    echo "|---|---:|---:|---:|"
    hand=-
    for what in "${!switch_ns[@]}"; do
        if [[ "$what" == *hand-written* ]]; then hand=${switch_ns["$what"]}; fi
    done
    for what in "${!switch_ns[@]}"; do
        ratio "${switch_ns["$what"]}" "$hand" 0; a=$R
        ratio "${switch_ns["$what"]}" "$syscall_ns" 2
        echo "| $what | ${switch_ns["$what"]} | $a | $R |"
    done | sort
    echo
    herd_section
    echo "## The targets"
    echo
    echo "The CPU targets are checked in both placements (one CPU; server on CPU 0, load on CPU 1),"
    echo "and are met only if met in both; the others were measured on one CPU only."
    [ -z "$split_missing" ] || echo "Separate CPUs: not run, $split_missing: the targets are checked on one CPU only."
    echo
    echo "| target | measured, one CPU | measured, separate CPUs | met |"
    echo "|---|---|---|---|"
    targets
} >"$out/bench.md"

# The terminal: the tables, with bars.
sed -n '1,/^## Open loop/p' "$out/bench.md" | grep -v '^## Open loop'
echo "Server CPU µs per request at $chart_at connections (x baseline):"
vals=(); for label in "${labels[@]}"; do cpu_of "$label" "$chart_at"; vals+=("$R"); done
max_of "${vals[@]}"; max=$R
cpu_of baseline "$chart_at"; base=$R
for label in "${labels[@]}"; do
    cpu_of "$label" "$chart_at"; cpu=$R
    ratio "$cpu" "$base"; x=$R
    bar "$cpu" "$max" 40
    printf '  %-14s %8s %6s  %s\n' "$label" "$cpu" "$x" "$R"
done
echo
sed -n '/^## Open loop/,/^## System calls/p' "$out/bench.md" | grep -v '^## System calls'
echo "Latency µs (bars on a log scale from 1 µs):"
vals=(); for v in "${open_cell[@]}"; do read -r _ _ _ _ c _ <<<"$v"; lg "$c"; vals+=("$R"); done
max_of "${vals[@]}"; max=$R
for label in "${open_labels[@]}"; do
    read -r _ _ p50 p99 p999 _ <<<"${open_cell["$label"]}"
    for q in "p50 $p50" "p99 $p99" "p99.9 $p999"; do
        lg "${q#* }"; bar "$R" "$max" 40
        printf '  %-14s %-5s %10s  %s\n' "$label" "${q% *}" "${q#* }" "$R"
    done
done
echo
sed -n '/^## System calls/,/^## C10K/p' "$out/bench.md" | grep -v '^## C10K'
sed -n '/^## C10K/,/^## Idle/p' "$out/bench.md" | grep -v '^## Idle'
echo "CPU µs per request, 1 busy among K idle (log scale from 1 µs):"
vals=(); for v in "${c10k[@]}"; do lg "${v%% *}"; vals+=("$R"); done
max_of "${vals[@]}"; max=$R
for label in "${labels[@]}"; do
    for k in "${idle_counts[@]}"; do
        if [ "$k" -gt "${most["$label"]}" ] || [ "${most["$label"]}" = 0 ]; then continue; fi
        c10k_of "$label" "$k" 1; v=$R
        lg "$v"; bar "$R" "$max" 40
        printf '  %-14s K=%-6s %8s  %s\n' "$label" "$k" "$v" "$R"
    done
done
echo "KiB per idle connection at the largest K each holds:"
declare -A mem_top                      # label -> "K KiB"
vals=()
for label in "${labels[@]}"; do
    top_k "$label"; k=$R
    [ "$k" -gt 0 ] || continue
    per_conn "$label" "$k"
    mem_top["$label"]="$k $R"
    vals+=("$R")
done
max_of "${vals[@]}"; max=$R
for label in "${labels[@]}"; do
    [ -n "${mem_top["$label"]:-}" ] || continue
    read -r k v <<<"${mem_top["$label"]}"
    bar "$v" "$max" 40
    printf '  %-14s K=%-6s %8s  %s\n' "$label" "$k" "$v" "$R"
done
echo
echo "## Idle CPU (%), 10 silent connections"
for label in "${labels[@]}"; do
    [ -n "${idle_cpu["$label"]+set}" ] || continue      # not measured: the framed servers
    bar "${idle_cpu["$label"]}" 100 40
    printf '  %-14s %4s  %s\n' "$label" "${idle_cpu["$label"]}" "$R"
done
echo
sed -n '/^## Coroutine switch/,$p' "$out/bench.md"
echo "Written: $out/bench.md, $out/bench.svg"

# The bars start right of the longest label, so that no label runs into its bar: 7 px a
# character at font-size 12, a little more than sans-serif fonts take.
bar_labels=("${labels[@]}")
for label in "${labels[@]}"; do for k in "${idle_counts[@]}"; do bar_labels+=("$label, K=$k"); done; done
for label in "${open_labels[@]}"; do bar_labels+=("$label, p99.9"); done
for what in "${!switch_ns[@]}"; do bar_labels+=("${what%% *}"); done
bx=150
for label in "${bar_labels[@]}"; do [ $((10 + 7 * ${#label} + 12)) -le "$bx" ] || bx=$((10 + 7 * ${#label} + 12)); done
# svg_bar Y HEIGHT LABEL SHOWN WIDTH COLOUR: one labelled bar, or (WIDTH "-") a grey note.
svg_bar() {
    echo "<text x='10' y='$(($1 + $2 - 3))'>$3</text>"
    if [ "$5" = - ]; then
        echo "<text x='$bx' y='$(($1 + $2 - 3))' fill='#888'>$4</text>"
    else
        echo "<rect x='$bx' y='$1' width='$5' height='$2' fill='$6'/>"
        echo "<text x='$((bx + 6 + $5))' y='$(($1 + $2 - 3))'>$4</text>"
    fi
}
svg_title() { echo "<text x='10' y='$1' font-size='14' font-weight='bold'>$2</text>"; }

# The SVG: panels of horizontal bars, drawn by hand (no plotting dependency). The
# body goes to a file first: the height is known at its end.
y=30
{
    svg_title "$y" "Server CPU µs per request, $chart_at connections (closed loop)"
    y=$((y + 15))
    vals=(); for label in "${labels[@]}"; do cpu_of "$label" "$chart_at"; vals+=("$R"); done
    max_of "${vals[@]}"; max=$R
    for label in "${labels[@]}"; do
        read -r _ _ _ cpu _ _ _ why <<<"${cell["$label|$chart_at"]}"
        if [ "$cpu" = - ]; then
            svg_bar "$y" 16 "$label" "${why:-not measured}" - ""
        else
            ratio "$cpu" "$base"; x=$R
            width "$cpu" "$max" 450
            svg_bar "$y" 16 "$label" "$cpu ($x baseline)" "$R" '#4a7bb7'
        fi
        y=$((y + 22))
    done

    y=$((y + 30))
    svg_title "$y" "Open loop, $open_rate requests/s offered: latency µs, p50 / p99 / p99.9 (log scale)"
    y=$((y + 15))
    vals=(); for v in "${open_cell[@]}"; do read -r _ _ _ _ c _ <<<"$v"; lg "$c"; vals+=("$R"); done
    max_of "${vals[@]}"; max=$R
    for label in "${open_labels[@]}"; do
        read -r _ _ p50 p99 p999 _ <<<"${open_cell["$label"]}"
        for q in "p50 $p50 #9bc3e6" "p99 $p99 #4a7bb7" "p99.9 $p999 #1f3f66"; do
            read -r name v colour <<<"$q"
            lg "$v"
            if [ "$R" = - ]; then
                svg_bar "$y" 12 "$label, $name" "not measured" - ""
            else
                width "$R" "$max" 450
                svg_bar "$y" 12 "$label, $name" "$v" "$R" "$colour"
            fi
            y=$((y + 16))
        done
        y=$((y + 8))
    done

    y=$((y + 30))
    svg_title "$y" "C10K: 1 busy connection among K idle, server CPU µs per request (log scale)"
    y=$((y + 15))
    vals=(); for v in "${c10k[@]}"; do lg "${v%% *}"; vals+=("$R"); done
    max_of "${vals[@]}"; max=$R
    for label in "${labels[@]}"; do
        [ "${most["$label"]}" -gt 0 ] || continue
        for k in "${idle_counts[@]}"; do
            c10k_of "$label" "$k" 1; v=$R
            lg "$v"
            if [ "$k" -gt "${most["$label"]}" ]; then
                svg_bar "$y" 10 "$label, K=$k" "cannot hold K" - ""
            elif [ "$R" = - ]; then
                svg_bar "$y" 10 "$label, K=$k" "not measured" - ""
            else
                width "$R" "$max" 450
                svg_bar "$y" 10 "$label, K=$k" "$v" "$R" '#c0504d'
            fi
            y=$((y + 13))
        done
        y=$((y + 8))
    done

    y=$((y + 30))
    svg_title "$y" "KiB per idle connection, at the largest K each holds"
    y=$((y + 15))
    vals=(); for v in "${mem_top[@]}"; do vals+=("${v#* }"); done
    max_of "${vals[@]}"; max=$R
    for label in "${labels[@]}"; do
        [ -n "${mem_top["$label"]:-}" ] || continue
        read -r k v <<<"${mem_top["$label"]}"
        if [ "$v" = - ]; then
            svg_bar "$y" 16 "$label" "not measured" - ""
        else
            width "$v" "$max" 450
            svg_bar "$y" 16 "$label" "$v KiB (K=$k)" "$R" '#8064a2'
        fi
        y=$((y + 22))
    done

    y=$((y + 30))
    svg_title "$y" "Coroutine switch, ns per switch (08's switch-bench); a system call: $syscall_ns ns"
    y=$((y + 15))
    max_of "${switch_ns[@]}"; max=$R
    while IFS='|' read -r what ns; do
        width "$ns" "$max" 400
        svg_bar "$y" 16 "${what%% *}" "$ns ns: ${what#* }" "$R" '#9bbb59'
        y=$((y + 22))
    done < <(for what in "${!switch_ns[@]}"; do echo "$what|${switch_ns["$what"]}"; done | sort)
    footer="$machine, $when; a system call $syscall_ns ns, a loopback round trip $roundtrip_us µs"
    echo "<text x='10' y='$((y + 20))' fill='#555'>$footer</text>"
} >"$tmp/svg_body"
# Wide enough for the longest bar and its figure, and for the footer line.
svg_w=$((bx + 450 + 6 + 170))
[ $((10 + 7 * ${#footer} + 10)) -le "$svg_w" ] || svg_w=$((10 + 7 * ${#footer} + 10))
{
    echo "<svg xmlns='http://www.w3.org/2000/svg' width='$svg_w' height='$((y + 40))' font-family='sans-serif' font-size='12'>"
    echo "<rect width='100%' height='100%' fill='white'/>"
    cat "$tmp/svg_body"
    echo "</svg>"
} >"$out/bench.svg"
