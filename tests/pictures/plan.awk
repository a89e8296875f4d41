# tests/pictures/plan.awk: turns what tests/pictures/draw recorded into a plan of
# rows, spans and ticks that svg.awk draws. Input, in time order (US: microseconds
# since the epoch):
#   C US NAME connect PORT | send TEXT | reply TEXT | lost TEXT | close | refused
#             | flood BYTES | drain | drained   (a client slow to read; "flooded",
#             when its writer finished, is kept for LAB_PICTURES_KEEP and not drawn)
#   L US LOG-LINE           the server's stdout (its -v log), as it arrived (untraced)
#   S US TID STRACE-LINE    one system call of thread TID (strace -ttt -T, time removed);
#                           traced, the log lines come from its write(1, "...")
# Variables: t0 and end (US), rows (threads, spin, scan, coroutines or workers), title, note,
# clients (their names, in row order), fds (how many descriptors the server holds).
# Output lines (times in ms since t0):
#   title TEXT | note TEXT | tmax MS | group TEXT | row KEY LABEL
#   span KEY FROM TO CLASS [TEXT] | tick KEY AT CLASS | bar KEY AT HANDED READY | scanmax N
#   legend CLASS TEXT
# The server's log names a client by its address and port, strace by its descriptor:
# accept()'s decoded address gives the port of each descriptor, and the client's
# own "connect PORT" line gives the port's name.

function ms(us) { return us < t0 ? 0 : (us - t0) / 1000 }     # before the start: at 0
function rest(from,    s, i) {         # fields from..NF, as one string
    s = $from
    for (i = from + 1; i <= NF; i++) s = s " " $i
    return s
}
function port_of(addr) { sub(/.*:/, "", addr); return addr }

BEGIN { nclients = split(clients, cname, " ") }

$1 == "C" {
    name = $3; ev = $4
    if (ev == "connect") { connect[name] = $2; portname[$5] = name }
    else if (ev == "send") { sent[name] = $2; nt++; tk[nt] = "c" name; tat[nt] = $2; tcl[nt] = "send" }
    else if (ev == "reply") { if (!(name in replied)) replied[name] = $2; nt++; tk[nt] = "c" name; tat[nt] = $2; tcl[nt] = "reply" }
    else if (ev == "lost") { nt++; tk[nt] = "c" name; tat[nt] = sent[name]; tcl[nt] = "lost" }
    else if (ev == "close" || ev == "refused") closed[name] = $2
    else if (ev == "flood") { flood[name] = $2; sent[name] = $2; floodsize[name] = $5 }
    else if (ev == "drain") drain[name] = $2
    else if (ev == "drained") drained[name] = $2
    next
}

# One line of the server's log, at US.
function logline(us, text,    w, port) {
    sub(/\\n$/, "", text)
    split(text, w, " ")
    port = port_of(w[2])
    if (w[1] == "connected") accepted[port] = us
    else if (w[1] == "closed") sclosed[port] = us
    else if (w[1] == "read" || w[1] == "wrote") {
        nl++; lport[nl] = port; lat[nl] = us
        # Bytes read and not yet written back, per connection: a span while any are owed.
        was = owed[port] + 0
        owed[port] = was + (w[1] == "read" ? w[3] : -w[3])
        if (was == 0 && owed[port] > 0) owedfrom[port] = us
        if (was > 0 && owed[port] <= 0) { no++; oport[no] = port; ofrom[no] = owedfrom[port]; oto[no] = us }
    }
}

$1 == "L" { logline($2, rest(3)); next }

$1 == "S" {
    t = $2; tid = $3
    line = rest(4)
    if (!(tid in tidseen)) { tidseen[tid] = 1; ntid++; tids[ntid] = tid }
    if (!match(line, /^[a-z_0-9]+\(/)) next          # signals, exits
    call = substr(line, 1, RLENGTH - 1)
    dur = 0
    if (match(line, /<[0-9.]+>$/)) dur = substr(line, RSTART + 1, RLENGTH - 2) * 1000000
    # the result: what follows the last " = "
    res = ""
    s = line
    while ((i = index(s, ") = ")) > 0) { s = substr(s, i + 4); res = s }
    split(res, r, " ")
    res = r[1]
    fd = ""
    if (match(line, /^[a-z_0-9]+\([0-9]+/)) fd = substr(line, length(call) + 2, RLENGTH - length(call) - 1) + 0

    # Traced, the log lines are taken from the server's write(1, ...): exact times.
    if (call == "write" && fd == 1 && match(line, /"[^"]*"/)) logline(t, substr(line, RSTART + 1, RLENGTH - 2))
    if ((call == "accept" || call == "accept4") && res ~ /^[0-9]+$/ && match(line, /htons\([0-9]+\)/))
        fdport[res] = substr(line, RSTART + 6, RLENGTH - 7)
    who = (fd != "" && fd in fdport) ? fdport[fd] : ""
    if (call == "close" && fd in fdport) delete fdport[fd]
    if (who != "" && !(tid in tidport)) tidport[tid] = who

    # Blocked: a call that took a millisecond or more (not in a spinning server, where
    # only the successful calls are traced and a slow one is strace's own delay).
    if (dur >= 1000 && rows != "spin") {
        ns++; sk[ns] = tid; sfrom[ns] = t; sto[ns] = t + dur; sport[ns] = who
        stext[ns] = call; scl[ns] = "blocked"
        if (call ~ /sleep/) scl[ns] = "sleep"
    } else if (who != "" && call !~ /^close$/ && res !~ /^-1/ || call ~ /^accept/ && res ~ /^[0-9]+$/) {
        nst++; stk[nst] = tid; stat[nst] = t
    }
    # An accept() that found nobody although woken for it: a worker woken for a client
    # another took (-w). Not the EAGAIN that ends a batch of accepts that took some.
    if (call ~ /^(epoll_p?wait|poll|ppoll|select|pselect6)$/) took[tid] = 0
    if (call ~ /^accept/ && res ~ /^[0-9]+$/) took[tid] = 1
    if (call ~ /^accept/ && res == "-1" && line ~ / EAGAIN / && !took[tid]) { nea++; eak[nea] = tid; eat[nea] = t }
    if (res ~ /^-/) {
        # a readiness call that failed (EINTR: the SIGTERM that ends the run) has no bar
    } else if (call == "poll" || call == "ppoll") {
        if (match(line, /\], [0-9]+, /)) { nb++; bat[nb] = t; bhand[nb] = substr(line, RSTART + 3, RLENGTH - 5) + 0; bready[nb] = res + 0 }
    } else if (call == "select" || call == "pselect6") {
        nb++; bat[nb] = t; bhand[nb] = fd + 0; bready[nb] = res + 0
    } else if (call ~ /^epoll_p?wait/) {
        nb++; bat[nb] = t; bhand[nb] = 0; bready[nb] = res + 0
    }
    if (t > slast) slast = t
    if (!sfirst || t < sfirst) sfirst = t
}

END {
    print "title " title
    print "note " note
    printf "tmax %.1f\n", ms(end)
    print "group clients (what each one saw; the server's log says when it was accepted)"
    for (i = 1; i <= nclients; i++) {
        n = cname[i]
        if (!(n in connect)) continue
        print "row c" n " client " n
        port = ""; a = 0
        for (p in portname) if (portname[p] == n) port = p
        c = connect[n]; x = (n in closed) ? closed[n] : end
        printf "span c%s %.1f %.1f open\n", n, ms(c), ms(x)
        if (port in accepted) {
            a = accepted[port]
            # Untraced, the log's times are when this script read them off a pipe, a
            # little late: a reply proves the server had accepted by then.
            if ((n in replied) && replied[n] < a) a = replied[n]
            if (a - c > 20000) printf "span c%s %.1f %.1f backlog\n", n, ms(c), ms(a)
            z = (port in sclosed) ? sclosed[port] : x
            if (z > x) z = x
            printf "span c%s %.1f %.1f served\n", n, ms(a), ms(z)
        }
        used["open"] = 1; used["served"] = 1
        if (a - c > 20000) used["backlog"] = 1
    }
    for (n in flood) {
        z = (n in drain) ? drain[n] : end
        printf "span c%s %.1f %.1f stall sends %d MiB, reads nothing\n", n, ms(flood[n]), ms(z), floodsize[n] / 1048576
        used["stall"] = 1
        if (n in drain) {
            printf "span c%s %.1f %.1f drain reads\n", n, ms(drain[n]), ms((n in drained) ? drained[n] : end)
            used["drain"] = 1
        }
    }
    for (i = 1; i <= nt; i++) { printf "tick %s %.1f %s\n", tk[i], ms(tat[i]), tcl[i]; used[tcl[i]] = 1 }

    if (ntid == 0) {
        print "group server: not traced"
    } else {
        print (rows == "workers") ? "group server (strace -f: one row per process)" : "group server (strace -f: one row per thread)"
        for (i = 1; i <= ntid; i++) {
            tid = tids[i]
            label = (ntid == 1) ? "the one thread" : (i == 1) ? "main thread" : "thread"
            if (rows == "workers") label = (i == 1) ? "parent process" : "worker " (i - 1)
            if (i > 1 && (tid in tidport) && (tidport[tid] in portname)) label = label " of " portname[tidport[tid]]
            print "row s" tid " " label " (" tid ")"
            if (rows == "spin") {
                printf "span s%s %.1f %.1f spin\n", tid, ms(sfirst), ms(slast)
                used["spin"] = 1
            }
        }
        for (i = 1; i <= ns; i++) {
            text = stext[i]
            if (sport[i] in portname) text = text " " portname[sport[i]]
            printf "span s%s %.1f %.1f %s %s\n", sk[i], ms(sfrom[i]), ms(sto[i]), scl[i], text
            used[scl[i]] = 1
        }
        for (i = 1; i <= nst; i++) { printf "tick s%s %.1f call\n", stk[i], ms(stat[i]); used["call"] = 1 }
        for (i = 1; i <= nea; i++) { printf "tick s%s %.1f eagain\n", eak[i], ms(eat[i]); used["eagain"] = 1 }
        if (rows == "scan" && nb > 0) {
            print "row scan fds per call: handed / ready"
            print "scanmax " fds       # the same scale for poll and epoll: every descriptor open
            for (i = 1; i <= nb; i++) if (bat[i] >= t0) printf "bar scan %.1f %d %d\n", ms(bat[i]), bhand[i], bready[i]
            used["handed"] = 1; used["ready"] = 1
        }
    }
    # A client slow to read: what the server owes it (read, not yet written back), from the log.
    for (n in flood) {
        print "group what the server owes " n " (its -v log: bytes read, not yet written back)"
        print "row o" n " owed to " n
        for (p in portname) if (portname[p] == n) {
            if (owed[p] > 0) { no++; oport[no] = p; ofrom[no] = owedfrom[p]; oto[no] = end }
            for (i = 1; i <= no; i++) if (oport[i] == p && oto[i] - ofrom[i] >= 1000) {
                printf "span o%s %.1f %.1f owed\n", n, ms(ofrom[i]), ms(oto[i]); used["owed"] = 1
            }
        }
    }
    if (rows == "coroutines") {
        print "group coroutines (from the server's -v log: when each one read or wrote)"
        for (i = 1; i <= nclients; i++) {
            n = cname[i]
            for (p in portname) if (portname[p] == n && p in accepted) {
                print "row k" n " coroutine of " n
                z = (p in sclosed) ? sclosed[p] : end
                printf "span k%s %.1f %.1f parked\n", n, ms(accepted[p]), ms(z)
                used["parked"] = 1
            }
        }
        for (i = 1; i <= nl; i++) if (lport[i] in portname) {
            printf "tick k%s %.1f run\n", portname[lport[i]], ms(lat[i]); used["run"] = 1
        }
    }

    legend["open"] = "client connected"
    legend["backlog"] = "in the backlog: connected, not yet accepted"
    legend["served"] = "accepted, until the server closed it"
    legend["send"] = "line sent"
    legend["reply"] = "reply read"
    legend["lost"] = "line never answered"
    legend["blocked"] = "blocked in the call named"
    legend["sleep"] = "sleeping"
    legend["spin"] = "busy: never blocks (only its calls that succeeded are drawn)"
    legend["call"] = "a call that returned at once"
    legend["handed"] = "descriptors handed to the call (the first number)"
    legend["ready"] = "descriptors it returned ready (the second)"
    legend["eagain"] = "accept() EAGAIN: woken for a client another worker took"
    legend["parked"] = "coroutine alive, parked"
    legend["run"] = "coroutine running: a read or write"
    legend["stall"] = "sending, reading nothing"
    legend["drain"] = "reading its replies"
    legend["owed"] = "replies read but not yet sent back"
    split("open backlog served stall drain send reply lost blocked sleep spin call eagain handed ready parked run owed", order, " ")
    for (i = 1; i in order; i++) if (order[i] in used) print "legend " order[i] " " legend[order[i]]
}
