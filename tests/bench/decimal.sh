# tests/bench/decimal.sh, sourced by tests/bench/run: decimal arithmetic in bash
# itself. The report derives hundreds of figures (ratios, per-connection memory,
# bars); with an awk process for each, the report alone took 40 s on a busy
# 2-core VM, where a fork cost 20 ms. These work on fixed-point integers instead:
# "12.34" with 3 decimals is 12340. Each sets a global (FIXED, DEC, R) rather than
# printing, since $(...) would fork again. "-" stands for a figure not measured, and
# goes through every function as "-".
# shellcheck shell=bash

# to_fixed A D: the decimal A (12.345, -0.5, 7) times 10^D, truncated, in FIXED.
to_fixed() {
    if [[ ! "$1" =~ ^(-?)([0-9]*)(\.([0-9]*))?$ ]] || [ -z "${BASH_REMATCH[2]}${BASH_REMATCH[4]}" ]; then
        FIXED=-
        return
    fi
    local frac="${BASH_REMATCH[4]}000000000"
    FIXED=$(( 10#0${BASH_REMATCH[2]} * 10 ** $2 + 10#0${frac:0:$2} ))  # 10#: "08" is not octal
    [ -z "${BASH_REMATCH[1]}" ] || FIXED=$(( -FIXED ))
}

# from_fixed N D: the fixed-point N (D decimals) written out, in DEC.
from_fixed() {
    local n=$1 sign=
    if (( n < 0 )); then sign=-; n=$(( -n )); fi
    if (( $2 == 0 )); then
        DEC=$sign$n
    else
        printf -v DEC '%s%d.%0*d' "$sign" $(( n / 10 ** $2 )) "$2" $(( n % 10 ** $2 ))
    fi
}

# div_round N M: N / M rounded half away from zero, in R (M > 0).
div_round() {
    if (( $1 < 0 )); then R=$(( -((-2 * $1 + $2) / (2 * $2)) )); else R=$(( (2 * $1 + $2) / (2 * $2) )); fi
}

# ratio A B [D]: A as a multiple of B with D decimals (default 2), "1.23x", in R.
ratio() {
    local a b d=${3:-2}
    to_fixed "$1" 3; a=$FIXED
    to_fixed "$2" 3; b=$FIXED
    if [ "$a" = - ] || [ "$b" = - ] || (( b <= 0 )); then R=-; return; fi
    div_round $(( a * 10 ** d )) "$b"
    from_fixed "$R" "$d"
    R=${DEC}x
}

# sum A B D: A + B with D decimals, in R.
sum() {
    local a
    to_fixed "$1" 4; a=$FIXED
    to_fixed "$2" 4
    if [ "$a" = - ] || [ "$FIXED" = - ]; then R=-; return; fi
    div_round $(( a + FIXED )) $(( 10 ** (4 - $3) ))
    from_fixed "$R" "$3"
    R=$DEC
}

# scale A NUM DEN D: A * NUM / DEN with D decimals (NUM, DEN decimals too), in R.
scale() {
    local a n
    to_fixed "$1" 4; a=$FIXED
    to_fixed "$2" 4; n=$FIXED
    to_fixed "$3" 4
    if [ "$a" = - ] || [ "$n" = - ] || [ "$FIXED" = - ] || (( FIXED <= 0 )); then R=-; return; fi
    # shellcheck disable=SC2017   # a * n first: both carry 4 decimals; * 10 ** D first could overflow
    div_round $(( a * n / 10000 * 10 ** $4 )) "$FIXED"
    from_fixed "$R" "$4"
    R=$DEC
}

# at_most A LIMIT: yes if A (a ratio's "x" allowed) is at most LIMIT, no if not, "-", in R.
at_most() {
    local a
    to_fixed "${1%x}" 4; a=$FIXED
    to_fixed "$2" 4
    if [ "$a" = - ] || [ "$FIXED" = - ]; then R=-; elif (( a <= FIXED )); then R=yes; else R=no; fi
}

# at_least A LIMIT: yes if A (a ratio's "x" allowed) is at least LIMIT, no if not, "-", in R.
at_least() {
    local a
    to_fixed "${1%x}" 4; a=$FIXED
    to_fixed "$2" 4
    if [ "$a" = - ] || [ "$FIXED" = - ]; then R=-; elif (( a >= FIXED )); then R=yes; else R=no; fi
}

# max_of A...: the largest of the figures given ("-" skipped), in R; "-" if none.
max_of() {
    local v best=- best_f=0
    for v in "$@"; do
        to_fixed "$v" 4
        [ "$FIXED" != - ] || continue
        if [ "$best" = - ] || (( FIXED > best_f )); then best=$v; best_f=$FIXED; fi
    done
    R=$best
}

# width V MAX PIXELS: V's share of PIXELS, at least 1 (0 or below: 1), in R.
width() {
    local v
    to_fixed "$1" 4; v=$FIXED
    to_fixed "$2" 4
    if [ "$v" = - ] || [ "$FIXED" = - ] || (( FIXED <= 0 || v <= 0 )); then R=1; return; fi
    R=$(( v * $3 / FIXED + 1 ))
}

# bar V MAX WIDTH: a bar of Unicode blocks, WIDTH for MAX, eighths included, in R.
bar() {
    local eighths=(▏ ▎ ▍ ▌ ▋ ▊ ▉) v n full
    R=
    to_fixed "$1" 4; v=$FIXED
    to_fixed "$2" 4
    if [ "$v" = - ] || [ "$FIXED" = - ] || (( FIXED <= 0 || v <= 0 )); then return; fi
    n=$(( v * $3 * 8 / FIXED ))
    for ((full = n / 8; full > 0; full--)); do R+=█; done
    (( n % 8 == 0 )) || R+=${eighths[n % 8 - 1]}
}
