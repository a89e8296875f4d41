# tests/pictures/svg.awk: draws the plan that plan.awk wrote as an SVG timeline:
# a heading, one row per line of the plan's rows (groups as small headings), time
# in ms on the x axis, a legend of the classes used. Plain SVG 1.1, light background,
# so that it reads the same on GitHub in light and dark mode.

function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
function x(t) { return px0 + t * scale }
function rest(from,    s, i) { s = $from; for (i = from + 1; i <= NF; i++) s = s " " $i; return s }
# fit(S, W): S if it fits in W pixels at font-size 10, else as much of it as fits and
# "…" (three characters at least), else nothing. 5.6 px a character: wide enough for
# the sans-serif fonts of GitHub and of rsvg.
function fit(s, w,    n) {
    if (w >= 5.6 * length(s) + 6) return s
    n = int((w - 6) / 5.6) - 1
    return n >= 3 ? substr(s, 1, n) "…" : ""
}

BEGIN {
    W = 900; lx = 205; px0 = 215; px1 = 880
    fill["open"] = "#e4e4e4"; fill["backlog"] = "#f6c343"; fill["served"] = "#8fd18f"
    fill["send"] = "#1f5fbf"; fill["reply"] = "#1e7b34"; fill["lost"] = "#d62728"
    fill["blocked"] = "#a9cbee"; fill["sleep"] = "#d5d5f2"; fill["spin"] = "#f4a3a3"
    fill["eagain"] = "#e6750a"
    fill["call"] = "#333333"; fill["handed"] = "#b5b5b5"; fill["ready"] = "#2ca02c"
    fill["parked"] = "#ece3f5"; fill["run"] = "#7b4fb0"
    fill["stall"] = "#f4c7a1"; fill["drain"] = "#c9a0dc"; fill["owed"] = "#e08a3c"
}

$1 == "title" { title = rest(2); next }
$1 == "note" { note = rest(2); next }
$1 == "tmax" { tmax = $2 + 0; next }
$1 == "group" { n++; kind[n] = "group"; text[n] = rest(2); next }
$1 == "row" { n++; kind[n] = ($2 == "scan") ? "scan" : "row"; key[n] = $2; text[n] = rest(3); rowof[$2] = n; next }
$1 == "span" || $1 == "tick" || $1 == "bar" { m++; item[m] = $0; next }
$1 == "scanmax" { barmax = $2 + 0; next }
$1 == "legend" { nl++; lcl[nl] = $2; ltext[nl] = rest(3); next }

END {
    if (tmax <= 0) tmax = 1
    scale = (px1 - px0) / tmax
    # where each row goes
    y = 62
    for (i = 1; i <= n; i++) {
        top[i] = y
        y += (kind[i] == "group") ? 24 : (kind[i] == "scan") ? 60 : 26
    }
    axis = y + 6
    # the legend, laid out in lines before the height is known
    lxp = 20; ly = axis + 52
    for (i = 1; i <= nl; i++) {
        w = 26 + 6.3 * length(ltext[i]) + 18
        if (lxp + w > W - 10) { lxp = 20; ly += 20 }
        legx[i] = lxp; legy[i] = ly; lxp += w
    }
    H = ly + 18

    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, H, W, H
    printf "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H
    printf "<text x=\"20\" y=\"24\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">%s</text>\n", esc(title)
    printf "<text x=\"20\" y=\"44\" font-size=\"12\" fill=\"#444\">%s</text>\n", esc(note)

    # the time grid and axis
    split("10 20 50 100 200 250 500 1000 2000 5000", steps, " ")
    for (i = 1; i in steps; i++) { step = steps[i] + 0; if (tmax / step <= 12) break }
    for (t = 0; t <= tmax; t += step) {
        printf "<line x1=\"%.1f\" y1=\"58\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eeeeee\"/>\n", x(t), x(t), axis
        printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#444\" text-anchor=\"middle\">%d</text>\n", x(t), axis + 14, t
    }
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#666\"/>\n", px0, axis, px1, axis
    printf "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#444\" text-anchor=\"middle\">time since the scenario started (ms)</text>\n", (px0 + px1) / 2, axis + 30

    for (i = 1; i <= n; i++) {
        if (kind[i] == "group") {
            printf "<text x=\"20\" y=\"%d\" font-size=\"11\" font-style=\"italic\" fill=\"#555\">%s</text>\n", top[i] + 17, esc(text[i])
            continue
        }
        h = (kind[i] == "scan") ? 60 : 26
        printf "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#222\" text-anchor=\"end\">%s</text>\n", lx, top[i] + h / 2 + 4, esc(text[i])
        printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#f2f2f2\"/>\n", px0, top[i] + h, px1, top[i] + h
    }

    # scan rows: the tallest bar, or every descriptor the server holds, sets the scale,
    # drawn at the row's left: a dotted line at that height, its number, and 0
    for (j = 1; j <= m; j++) {
        split(item[j], f, " ")
        if (f[1] == "bar" && f[4] + 0 > barmax) barmax = f[4] + 0
        if (f[1] == "bar" && f[5] + 0 > barmax) barmax = f[5] + 0
    }
    if (barmax > 0 && ("scan" in rowof)) {
        yy = top[rowof["scan"]]
        printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#c8c8c8\" stroke-dasharray=\"2,3\"/>\n", px0, yy + 18, px1, yy + 18
        printf "<text x=\"%d\" y=\"%d\" font-size=\"9\" fill=\"#444\" text-anchor=\"end\">%d</text>\n", px0 - 3, yy + 21, barmax
        printf "<text x=\"%d\" y=\"%d\" font-size=\"9\" fill=\"#444\" text-anchor=\"end\">0</text>\n", px0 - 3, yy + 56
        labelend = 0        # where the last "handed / ready" label ends
    }
    for (j = 1; j <= m; j++) {
        nf = split(item[j], f, " ")
        r = rowof[f[2]]
        if (!r) continue
        t = f[3] + 0; yy = top[r]
        if (f[1] == "span") {
            w = x(f[4] + 0) - x(t); if (w < 1) w = 1
            cl = f[5]
            printf "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"14\" fill=\"%s\"%s/>\n", x(t), yy + 6, w, fill[cl], \
                (cl == "blocked") ? " stroke=\"#5b8fc7\" stroke-width=\"0.5\"" : ""
            s = ""
            for (k = 6; k <= nf; k++) s = s (k > 6 ? " " : "") f[k]
            if (s != "") s = fit(s, w)
            if (s != "")
                printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" fill=\"#123\">%s</text>\n", x(t) + 3, yy + 17, esc(s)
        } else if (f[1] == "tick") {
            cl = f[4]
            if (cl == "call" && ((f[2], int(x(t))) in inked)) continue     # a pixel drawn already
            if (cl == "call") inked[f[2], int(x(t))] = 1
            if (cl == "call") {
                printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", x(t), yy + 8, x(t), yy + 18, fill[cl]
            } else if (cl == "send") {    # the upper half: a reply a pixel later cannot hide it
                printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", x(t), yy + 2, x(t), yy + 13, fill[cl]
            } else {                    # reply, lost, run: the lower half
                printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", x(t), cl == "run" ? yy + 3 : yy + 13, x(t), yy + 24, fill[cl]
                if (cl == "lost" || cl == "eagain")
                    printf "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" font-weight=\"bold\" fill=\"%s\" text-anchor=\"middle\">×</text>\n", x(t) + 7, yy + 24, fill[cl]
            }
        } else if (f[1] == "bar" && barmax > 0) {
            # side by side: handed (grey) left of the call's time, ready (green) right
            if ((int(x(t)), f[4], f[5]) in inked) continue     # the same bar on the same pixel
            inked[int(x(t)), f[4], f[5]] = 1
            base = yy + 56
            hh = (f[4] + 0) * 38 / barmax
            if (hh > 0 && hh < 2) hh = 2
            if (hh > 0) printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"2.5\" height=\"%.1f\" fill=\"%s\"/>\n", x(t) - 2.5, base - hh, hh, fill["handed"]
            hh = (f[5] + 0) * 38 / barmax
            if (hh > 0 && hh < 2) hh = 2
            if (hh > 0) printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"2.5\" height=\"%.1f\" fill=\"%s\"/>\n", x(t), base - hh, hh, fill["ready"]
            # the numbers above the call, where the last label leaves room
            lw = 5 * length(f[4] " / " f[5]) + 2
            lx0 = x(t) - lw / 2
            if (lx0 < px0) lx0 = px0
            if (lx0 + lw > W - 4) lx0 = W - 4 - lw
            if (lx0 >= labelend + 4) {
                printf "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" fill=\"#555\">%d / <tspan fill=\"#1a7f1a\" font-weight=\"bold\">%d</tspan></text>\n", lx0, yy + 11, f[4], f[5]
                labelend = lx0 + lw
            }
        }
    }

    for (i = 1; i <= nl; i++) {
        cl = lcl[i]
        if (cl == "send")
            printf "<rect x=\"%d\" y=\"%d\" width=\"3\" height=\"8\" fill=\"%s\"/>\n", legx[i] + 8, legy[i] - 12, fill[cl]
        else if (cl == "reply" || cl == "lost")
            printf "<rect x=\"%d\" y=\"%d\" width=\"3\" height=\"8\" fill=\"%s\"/>\n", legx[i] + 8, legy[i] - 4, fill[cl]
        else if (cl == "call" || cl == "run" || cl == "eagain")
            printf "<rect x=\"%d\" y=\"%d\" width=\"3\" height=\"14\" fill=\"%s\"/>\n", legx[i] + 8, legy[i] - 11, fill[cl]
        else
            printf "<rect x=\"%d\" y=\"%d\" width=\"18\" height=\"12\" fill=\"%s\"%s/>\n", legx[i], legy[i] - 10, fill[cl], \
                (cl == "blocked") ? " stroke=\"#5b8fc7\" stroke-width=\"0.5\"" : ""
        printf "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#333\">%s</text>\n", legx[i] + 24, legy[i], esc(ltext[i])
    }
    print "</svg>"
}
