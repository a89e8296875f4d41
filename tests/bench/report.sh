# tests/bench/report.sh, sourced by tests/bench/run once every figure is in: prints the
# table and bar charts, and writes the same as tests/bench/out/bench.md and bench.svg.
# Reads: servers, counts, idle_counts, cell, c10k, idle_cpu, secs, idle_secs, quick, out.
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
maxof() { sort -g | tail -n 1; }

{
    echo "# make bench: every stage side by side"
    echo
    echo "Measured on $machine, $when$([ "$quick" = 1 ] && echo ' (QUICK=1: a smoke test, not figures to quote)')."
    echo "Closed loop: each connection sends a 64-byte line and waits for its reply before the next;"
    echo "${secs} s per cell after every connection was opened and answered once. CPU is the server's"
    echo "own (user + system, from /proc/PID/stat) per request; RSS its VmRSS at the end."
    echo "Server and load generator share one CPU (taskset -c 0), which makes the figures repeat."
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
    echo "## Coroutine switch cost"
    echo
    echo "Not measured: 08-coroutines is not built yet."
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
echo "Coroutine switch cost: not measured, 08-coroutines is not built yet."
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
    height=$((h1 + h2 + 60))
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
    echo "<text x='10' y='$((y + 20))' fill='#555'>$machine, $when</text>"
    echo "</svg>"
} >"$out/bench.svg"
