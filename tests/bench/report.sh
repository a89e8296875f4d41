# tests/bench/report.sh, sourced by tests/bench/run once every figure is in: prints the
# table and bar charts, and writes the same as tests/bench/out/bench.md and bench.svg.
# Reads: servers, counts, idle_counts, cell, c10k, idle_cpu, switch_ns, repeats, secs,
# idle_secs, quick, out.
# shellcheck shell=bash disable=SC2154

machine="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores, Linux $(uname -r)"
when=$(date -u '+%Y-%m-%d %H:%M UTC')
chart_at=100                            # the bar chart compares servers at this many connections

# bar VALUE MAX WIDTH: a bar of Unicode blocks, eighths included.
bar() {
    awk -v v="$1" -v m="$2" -v w="$3" 'BEGIN {
        if (v == "-" || m <= 0) { exit }
        n = v / m * w * 8; full = int(n / 8); part = int(n % 8)
        split("▏ ▎ ▍ ▌ ▋ ▊ ▉", p, " ")
        for (i = 0; i < full; i++) printf "█"
        if (part > 0) printf "%s", p[part]
    }'
}
labels() { for e in "${servers[@]}"; do echo "${e%%|*}"; done; }
cpu_of() { local c; read -r _ _ _ c _ <<<"${cell["$1|$2"]:--}"; echo "${c:--}"; }
# within A B LIMIT: "+12 %" (A against B) and yes/no for A at most LIMIT % above B
# (cheaper than B meets it: the targets bound what a design costs).
within() {
    awk -v a="$1" -v b="$2" -v l="$3" 'BEGIN {
        if (a == "-" || b == "-" || b <= 0) { print "not measured in this run|-"; exit }
        d = (a / b - 1) * 100; printf "%+.0f %%|%s\n", d, (d <= l) ? "yes" : "no"
    }'
}
# targets: the issue's targets as table rows, computed from this run's figures.
targets() {
    local n m ref limit r k0 kmax held errs worst
    for n in 100 1000; do
        for m in "06 epoll|baseline|15" "07 epoll|06 epoll|25" "08 coroutines|06 epoll|25"; do
            IFS='|' read -r label ref limit <<<"$m"
            r=$(within "$(cpu_of "$label" "$n")" "$(cpu_of "$ref" "$n")" "$limit")
            echo "| $label CPU/request at most ~$limit % above $ref, $n connections | $(cpu_of "$label" "$n") against $(cpu_of "$ref" "$n") µs: ${r%|*} | ${r#*|} |"
        done
    done
    kmax=${idle_counts[-1]}
    for m in "04 select" "05 poll" "06 epoll"; do
        k0=${c10k["$m|0"]}
        # select's last measurable K is below its cap
        k=$kmax; [ "${c10k["$m|$k"]}" = - ] && k=${idle_counts[-2]}
        r=$(awk -v a="${c10k["$m|$k"]}" -v b="$k0" 'BEGIN { printf "%.1fx", a / b }')
        if [ "$m" = "06 epoll" ]; then
            echo "| $m flat as idle K grows | K = $k against K = 0: $r | $(awk -v a="${r%x}" 'BEGIN { print (a < 1.5) ? "yes" : "no" }') |"
        else
            echo "| $m grows with idle K | K = $k against K = 0: $r | $(awk -v a="${r%x}" 'BEGIN { print (a >= 2) ? "yes" : "no" }') |"
        fi
    done
    for label in "06 epoll" "06 epoll -e" "07 epoll" "08 coroutines"; do
        read -r _ _ _ _ _ errs held _ <<<"${cell["$label|${counts[-1]}"]}"
        echo "| $label holds ${counts[-1]} connections, no errors | held $held, errors $errs | $([ "$held" = "${counts[-1]}" ] && [ "$errs" = 0 ] && echo yes || echo no) |"
    done
    worst=0
    for label in "04 select" "05 poll" "06 epoll" "06 epoll -e" "07 select" "07 poll" "07 epoll" "08 coroutines" "08 --wrap"; do
        if [ "${idle_cpu["$label"]}" -gt "$worst" ]; then worst=${idle_cpu["$label"]}; fi
    done
    echo "| idle CPU ≈ 0 for 04-08 | at most $worst % | $([ "$worst" -le 1 ] && echo yes || echo no) |"
}
maxof() { sort -g | tail -n 1; }

{
    echo "# make bench: every stage side by side"
    echo
    echo "Measured on $machine, $when$([ "$quick" = 1 ] && echo ' (QUICK=1: a smoke test, not figures to quote)')."
    echo "Closed loop: each connection sends a 64-byte line and waits for its reply before the next;"
    echo "${secs} s per cell after every connection was opened and answered once. CPU is the server's"
    echo "own (user + system, from /proc/PID/stat) per request; RSS its VmRSS at the end."
    echo "Server and load generator share one CPU (taskset -c 0), which makes the figures repeat."
    if [ "$repeats" -gt 1 ]; then
        echo "The cells the targets compare (100 and 1,000 connections of baseline, 06, 07 epoll and 08)"
        echo "ran $repeats times each, in rounds (each round runs every one of them once, so that the"
        echo "machine's drift falls on all alike); the run with the median CPU per request is shown."
    fi
    echo
    echo "## Throughput, latency, server CPU per request"
    echo
    echo "| server | connections | requests/s | p50 µs | p99 µs | CPU µs/request | RSS KiB | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    while read -r label; do
        for n in "${counts[@]}"; do
            read -r rps p50 p99 cpu rss errors _held why <<<"${cell["$label|$n"]}"
            if [ "$rps" = - ]; then
                echo "| $label | $n | | | | | | ${why} |"
            else
                echo "| $label | $n | $rps | $p50 | $p99 | $cpu | $rss | $errors |"
            fi
        done
    done < <(labels)
    echo
    echo "## C10K: one busy connection among K idle ones, server CPU µs per request"
    echo
    printf '| mechanism |'; for k in "${idle_counts[@]}"; do printf ' K = %s |' "$k"; done; echo
    printf '|---|'; for _ in "${idle_counts[@]}"; do printf -- '---:|'; done; echo
    for m in "04 select" "05 poll" "06 epoll"; do
        printf '| %s |' "$m"
        for k in "${idle_counts[@]}"; do
            v=${c10k["$m|$k"]}; [ "$v" = - ] && v="(1024 cap)"; printf ' %s |' "$v"
        done
        echo
    done
    echo
    echo "## Idle CPU: 10 connections that send nothing, ${idle_secs} s"
    echo
    echo "| server | CPU % |"
    echo "|---|---:|"
    while read -r label; do echo "| $label | ${idle_cpu["$label"]} |"; done < <(labels)
    echo
    echo "## Coroutine switch cost (08's switch-bench)"
    echo
    echo "| switch | ns per switch | against the hand-written one |"
    echo "|---|---:|---:|"
    hand=0
    for what in "${!switch_ns[@]}"; do
        if [[ "$what" == *hand-written* ]]; then hand=${switch_ns["$what"]}; fi
    done
    for what in "${!switch_ns[@]}"; do
        echo "| $what | ${switch_ns["$what"]} | $(awk -v v="${switch_ns["$what"]}" -v h="$hand" 'BEGIN { if (h > 0) printf "%.0fx", v / h }') |"
    done | sort
    echo
    echo "## The targets"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"
    targets
} >"$out/bench.md"

# The terminal: the tables, with bars.
sed -n '1,/^## C10K/p' "$out/bench.md" | grep -v '^## C10K'
echo "Server CPU µs per request at $chart_at connections:"
max=$(for l in $(labels | tr ' ' '_'); do read -r _ _ _ c _ <<<"${cell["${l//_/ }|$chart_at"]}"; echo "$c"; done | grep -v -- - | maxof)
while read -r label; do
    read -r _ _ _ cpu _ <<<"${cell["$label|$chart_at"]}"
    printf '  %-14s %8s  %s\n' "$label" "$cpu" "$(bar "$cpu" "$max" 40)"
done < <(labels)
echo
sed -n '/^## C10K/,/^## Idle/p' "$out/bench.md" | grep -v '^## Idle'
echo "(bars on a log scale from 1 µs: select's and poll's growth spans decades)"
lg() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.3f\n", (v > 1 ? log(v) : 0) }'; }
max=$(for v in "${c10k[@]}"; do lg "$v"; done | grep -v -- - | maxof)
for m in "04 select" "05 poll" "06 epoll"; do
    for k in "${idle_counts[@]}"; do
        v=${c10k["$m|$k"]}
        printf '  %-10s K=%-6s %8s  %s\n' "$m" "$k" "$v" "$(bar "$(lg "$v")" "$max" 40)"
    done
done
echo
echo "## Idle CPU (%), 10 silent connections"
while read -r label; do
    printf '  %-14s %4s  %s\n' "$label" "${idle_cpu["$label"]}" "$(bar "${idle_cpu["$label"]}" 100 40)"
done < <(labels)
echo
sed -n '/^## Coroutine switch/,$p' "$out/bench.md"
echo "Written: $out/bench.md, $out/bench.svg"

# svg_bar Y HEIGHT LABEL SHOWN WIDTH COLOUR: one labelled bar, or (WIDTH "-") a grey note.
svg_bar() {
    echo "<text x='10' y='$(($1 + $2 - 3))'>$3</text>"
    if [ "$5" = - ]; then
        echo "<text x='150' y='$(($1 + $2 - 3))' fill='#888'>$4</text>"
    else
        echo "<rect x='150' y='$1' width='$5' height='$2' fill='$6'/>"
        echo "<text x='$((156 + $5))' y='$(($1 + $2 - 3))'>$4</text>"
    fi
}

# The SVG: two panels of horizontal bars, drawn by hand (no plotting dependency).
{
    rows=$(labels | wc -l)
    h1=$((40 + rows * 22)); h2=$((40 + 3 * ${#idle_counts[@]} * 16 + 3 * 10))
    h3=$((50 + ${#switch_ns[@]} * 22))
    height=$((h1 + h2 + h3 + 60))
    echo "<svg xmlns='http://www.w3.org/2000/svg' width='760' height='$height' font-family='sans-serif' font-size='12'>"
    echo "<rect width='100%' height='100%' fill='white'/>"
    echo "<text x='10' y='20' font-size='14' font-weight='bold'>Server CPU µs per request, $chart_at connections</text>"
    max=$(for l in $(labels | tr ' ' '_'); do read -r _ _ _ c _ <<<"${cell["${l//_/ }|$chart_at"]}"; echo "$c"; done | grep -v -- - | maxof)
    y=40
    while read -r label; do
        read -r _ _ _ cpu _ _ _ why <<<"${cell["$label|$chart_at"]}"
        if [ "$cpu" = - ]; then
            svg_bar "$y" 16 "$label" "${why:-not measured}" - ""
        else
            svg_bar "$y" 16 "$label" "$cpu" "$(awk -v v="$cpu" -v m="$max" 'BEGIN { printf "%d", v / m * 500 }')" '#4a7bb7'
        fi
        y=$((y + 22))
    done < <(labels)
    y=$((y + 30))
    echo "<text x='10' y='$y' font-size='14' font-weight='bold'>C10K: 1 busy connection among K idle, server CPU µs per request (log scale)</text>"
    y=$((y + 20))
    max=$(for v in "${c10k[@]}"; do echo "$v"; done | grep -v -- - | maxof)
    for m in "04 select" "05 poll" "06 epoll"; do
        for k in "${idle_counts[@]}"; do
            v=${c10k["$m|$k"]}
            if [ "$v" = - ]; then
                svg_bar "$y" 12 "$m, K=$k" "1024 cap" - ""
            else
                # log scale from 1 µs: select's and poll's growth spans three decades
                svg_bar "$y" 12 "$m, K=$k" "$v" \
                    "$(awk -v v="$v" -v m="$max" 'BEGIN { printf "%d", (v > 1 ? log(v) : 0) / log(m > 1 ? m : 2) * 500 }')" '#c0504d'
            fi
            y=$((y + 16))
        done
        y=$((y + 10))
    done
    y=$((y + 30))
    echo "<text x='10' y='$y' font-size='14' font-weight='bold'>Coroutine switch, ns per switch (08's switch-bench)</text>"
    y=$((y + 20))
    max=$(for v in "${switch_ns[@]}"; do echo "$v"; done | maxof)
    while IFS='|' read -r what ns; do
        svg_bar "$y" 16 "${what%% *}" "$ns ns: ${what#* }" \
            "$(awk -v v="$ns" -v m="$max" 'BEGIN { printf "%d", v / m * 400 + 1 }')" '#9bbb59'
        y=$((y + 22))
    done < <(for what in "${!switch_ns[@]}"; do echo "$what|${switch_ns["$what"]}"; done | sort)
    echo "<text x='10' y='$((y + 20))' fill='#555'>$machine, $when</text>"
    echo "</svg>"
} >"$out/bench.svg"
