/*
 * tests/bench/loadgen.c: the benchmark's load generator, over epoll: a closed
 * loop, or with -r an open one.
 *
 * BUSY connections each send a 64-byte request (63 letters and digits, then
 * '\n') and wait for the whole upper-cased reply before sending the next; every
 * reply byte is checked. IDLE connections do one round trip, so the server has
 * surely accepted them, then stay open and silent: the idle crowd of the C10K
 * picture. Every connection is set up and has done a round trip before the
 * clock starts, so connecting never counts as latency. Latencies go into a
 * log-linear histogram, not a sorted array. -P reads the server's CPU, RSS
 * and threads. -F speaks the framed servers' protocol (note 002's cure): each
 * request is a 4-byte length in network byte order (64) before the same 64
 * bytes, and the reply must be that header, then the body upper-cased.
 *
 * Closed loop (the default): each busy connection sends its next request as
 * soon as the last reply is in, for SECONDS, and on (5x at most) until every
 * busy connection has had a reply while measuring. It understates the tail: a server that stalls
 * also stalls its clients, which then send nothing, so the stall delays a few
 * measured requests instead of every request that should have been sent during
 * it (coordinated omission). Open loop (-r RATE): the requests have a schedule,
 * RATE a second in all, request j meant to go at start + j / RATE on busy
 * connection j % BUSY (so each connection's own schedule is BUSY / RATE apart),
 * and a request's latency runs from when it was meant to go, not from when it
 * went. A request that comes due while its connection still waits for the
 * previous reply is overdue: it is sent as soon as that reply is in, and its
 * latency still counts from its intended time, so a stall is charged to every
 * request it delayed. Many connections (100, say) keep one slow reply from
 * delaying the requests behind it on the same connection. The schedule ends
 * after SECONDS; the requests it holds are then awaited for at most GRACE_S
 * more, and any still unanswered count with the latency reached by then.
 *
 * Build and run:  cc -std=c11 -O2 -o loadgen loadgen.c
 *                 ulimit -n 12000; 06-epoll/server -p 0 -q &    (prints its port)
 *                 ./loadgen -p PORT -c 1000 -i 5000 -d 3 -P $!
 *                 ./loadgen -p PORT -c 100 -r 20000 -d 3          (open loop)
 *                 ./loadgen -p PORT -F -c 1000 -d 1     (against a framed-server)
 *
 * Output: one line on stdout (server_* are '-' without -P, percentiles without
 * requests, offered_rps in the closed loop):
 *   requests=N rps=N p50_us=F p99_us=F p999_us=F errors=N held=N server_user_us=F
 *   server_sys_us=F server_rss_kb=N server_threads=N offered_rps=F unanswered=N
 * (all on one line). rps: replies a second, achieved; held: connections open and
 * working at the end (busy ones: answered while measuring); unanswered: open
 * loop, requests of the schedule with no reply when the generator gave up.
 * stderr: progress (none with -q) and the reasons of the first few errors.
 * Exit: 0 no error, 1 a connection failed (or a system call did), 2 usage,
 * 3 the connect phase did not finish within 60 s (then no line is printed).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { RC_OK, RC_ERRORS, RC_USAGE, RC_DEADLINE };
#define REQ_BYTES 64            /* one request, and its reply */
#define FRAME_HEADER 4          /* -F: the length before each request and reply */
#define MAX_IN_FLIGHT 256       /* connections between connect and first reply at once: more
                                 * overflow the server's accept queue and cost a 1 s SYN retry */
#define CONNECT_DEADLINE_S 60
#define MAX_EVENTS 256          /* events taken per epoll_wait() */
#define SPARE_FDS 16            /* stdio, epoll, /proc files */
#define MAX_REPORTED 5          /* errors whose reason is printed; the rest are only counted */
#define NS_PER_S 1000000000ull
#define HIST_MAX_SHIFT 32       /* the histogram holds up to 32 << 32 ns (137 s) */
#define HIST_BUCKETS ((HIST_MAX_SHIFT + 2) * 16)
#define MAX_STRETCH 5           /* closed loop: measure up to 5x -d until every busy one is answered */
#define GRACE_S 10              /* open loop: how long the schedule's last requests are awaited */
#define TIMER_TAG UINT64_MAX    /* the open loop's timer in epoll's data.u64; connections: their index */

static const char usage_text[] =
    "usage: loadgen -p PORT [-a ADDR] [-c BUSY] [-i IDLE] [-d SECONDS] [-r RATE] [-P SERVER_PID] [-F] [-q]\n"
    "  -a ADDR     server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
    "  -c BUSY     connections in a closed loop of 64-byte requests (default 100)\n"
    "  -i IDLE     connections that do one round trip, then stay silent (default 0)\n"
    "  -d SECONDS  length of the measuring phase, fractions allowed (default 3); the\n"
    "              closed loop goes on (5x at most) until each busy one had a reply\n"
    "  -r RATE     open loop: RATE requests a second in all, on a schedule; latency\n"
    "              from each one's intended send time (default: a closed loop)\n"
    "  -P PID      also report that server's CPU per request and its RSS\n"
    "  -F          framed: each request and reply behind a 4-byte length (64), for\n"
    "              the framed servers\n"
    "  -q          no progress lines on stderr\n";

/* 0: not started. QUIET: no request outstanding (idle, or, in the open loop, a busy
 * connection whose next request is not due yet). */
enum state { CONNECTING = 1, SENDING, READING, QUIET, DEAD };

struct conn {
    int fd;
    enum state state;
    int warm;                   /* has done its first round trip: the connect phase's goal */
    uint32_t events;            /* what epoll watches it for; 0: not registered yet */
    unsigned long seq;          /* requests made on it, so that each one differs */
    unsigned long done;         /* replies completed while measuring */
    size_t sent, got;           /* bytes of the request sent, of its reply checked */
    uint64_t t_from;            /* CLOCK_MONOTONIC ns its latency counts from: when the
                                 * request was first sent, or (open loop) meant to be */
    uint64_t slot;              /* open loop: its next request in the schedule */
    int finished;               /* open loop: the schedule holds no more requests for it */
    char out[FRAME_HEADER + REQ_BYTES];     /* -F: the header, then the request */
};

static const char *opt_addr = "127.0.0.1";
static int opt_port, opt_q, parsing = 1;   /* parsing: usage errors also print the usage */
static int opt_F;                       /* -F: framed requests and replies */
static size_t head_len, req_len = REQ_BYTES;    /* -F: FRAME_HEADER, and the header more */
static long opt_busy = 100, opt_idle, opt_pid;
static double opt_d = 3, opt_rate;     /* opt_rate 0: the closed loop */

static struct sockaddr_storage peer;   /* -a and -p, resolved once: resolve_peer() */
static socklen_t peer_len;
static struct conn *conns;              /* busy ones first, then idle ones */
static long nconns;
static int epfd = -1;
static long pending;                    /* started, neither warm nor dead */
static long settled;                    /* warm or dead: the connect phase waits for all */
static long live_busy;                  /* warm busy connections not dead */
static long busy_answered;              /* of those, the ones answered while measuring */
static unsigned long long requests, errors;
static unsigned long long hist[HIST_BUCKETS], hist_count;
/* The open loop: the schedule's start and end, its next request not yet due, the
 * live busy connections with nothing left to send, and the timer that wakes us
 * when the next request is due (ns precise: epoll_wait's timeout is in ms). */
static uint64_t t_start, t_end, next_slot, timer_at;
static long busy_finished;
static unsigned long long unanswered;
static int tfd = -1;

static void note(const char *fmt, va_list ap)
{
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static _Noreturn void die(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note(fmt, ap);
    va_end(ap);
    if (rc == RC_USAGE && parsing)
        fputs(usage_text, stderr);
    exit(rc);
}

static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!opt_q)
        note(fmt, ap);
    va_end(ap);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die(RC_ERRORS, "clock_gettime: %s", strerror(errno));
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Milliseconds for epoll_wait() until `until`, rounded up so that we never
 * wake just before it and spin with timeout 0. */
static int ms_until(uint64_t until)
{
    uint64_t t = now_ns();
    uint64_t ms = t >= until ? 0 : (until - t + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The histogram: for each power of two of nanoseconds, 16 linear sub-buckets,
 * so a bucket is at most 1/16 of its values wide. The bucket of ns is
 * shift * 16 + (ns >> shift), with the smallest shift that leaves ns below 32. */
static unsigned bucket_of(uint64_t ns)
{
    unsigned shift = 0;
    if (ns >= (uint64_t)32 << HIST_MAX_SHIFT)
        ns = ((uint64_t)32 << HIST_MAX_SHIFT) - 1;     /* the top bucket takes anything slower */
    while (ns >> shift >= 32)
        shift++;
    return shift * 16 + (unsigned)(ns >> shift);
}

/* The first value above bucket i. */
static uint64_t bucket_top(unsigned i)
{
    unsigned shift = i < 32 ? 0 : i / 16 - 1;
    return ((uint64_t)(i - shift * 16) + 1) << shift;
}

static void record(uint64_t ns)
{
    hist[bucket_of(ns)]++;
    hist_count++;
}

/* The latency (us) within which permille/1000 of the requests finished, reported
 * as the upper bound of the bucket that holds it: never low, at most 1/16 high. */
static double percentile_us(unsigned permille)
{
    unsigned long long rank = (hist_count * permille + 999) / 1000, seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        if ((seen += hist[i]) >= rank)
            return (double)bucket_top(i) / 1e3;
    return 0;                           /* not reached while hist_count > 0 */
}

static char upper(char ch)
{
    return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* 63 letters and digits that change from request to request and from
 * connection to connection, so a server that replays old bytes is caught.
 * -F: behind the header that says 64, most significant byte first. */
static void make_request(struct conn *c)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t x = (((uint64_t)(c - conns) << 32) ^ c->seq) * 0x9E3779B97F4A7C15ull | 1;
    char *body = c->out + head_len;
    for (size_t i = 0; i < head_len; i++)
        c->out[i] = (char)(REQ_BYTES >> (8 * (head_len - 1 - i)) & 0xff);
    for (int i = 0; i < REQ_BYTES - 1; i++) {
        x ^= x << 13;                   /* xorshift64: cheap, and never stuck, as x is odd to start */
        x ^= x >> 7;
        x ^= x << 17;
        body[i] = alphabet[x % (sizeof alphabet - 1)];
    }
    body[REQ_BYTES - 1] = '\n';
    c->seq++;
}

/* close() is not retried on EINTR: on Linux the descriptor is gone anyway. */
static void xclose(int fd)
{
    if (close(fd) == -1 && errno != EINTR)
        die(RC_ERRORS, "close: %s", strerror(errno));
}

/* One connection failed: count it, say why (the first few), close it, carry
 * on with the others. err is an errno value to add to the reason, or 0. */
static void fail(struct conn *c, int err, const char *fmt, ...)
{
    long i = c - conns;
    if (++errors <= MAX_REPORTED) {
        char why[128];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        fprintf(stderr, "loadgen: %s connection %ld: %s%s%s\n", i < opt_busy ? "busy" : "idle",
                i, why, err ? ": " : "", err ? strerror(err) : "");
    }
    if (!c->warm) {
        pending--;
        settled++;
    } else if (i < opt_busy) {
        live_busy--;
        busy_answered -= c->done > 0;
        busy_finished -= c->finished;
    }
    if (c->fd != -1)
        xclose(c->fd);                  /* which also takes it out of epoll */
    c->fd = -1;
    c->state = DEAD;
}

/* Watch for what the connection waits for; epoll_ctl only on a change. data.u64
 * carries its index, so an event leads straight to it. */
static void watch(struct conn *c, uint32_t want)
{
    struct epoll_event ev = { .events = want, .data.u64 = (uint64_t)(c - conns) };
    if (c->events == want)
        return;
    if (epoll_ctl(epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == -1)
        die(RC_ERRORS, "epoll_ctl: %s", strerror(errno));
    c->events = want;
}

/* Send what is left of the request, then wait for its reply. */
static void send_request(struct conn *c)
{
    c->state = SENDING;
    while (c->sent < req_len) {
        ssize_t n = send(c->fd, c->out + c->sent, req_len - c->sent, 0);
        if (n == -1 && errno == EINTR)
            continue;                   /* a signal came first: nothing was sent, retry */
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(c, EPOLLOUT);         /* buffer full: epoll says when there is room */
            return;
        }
        if (n == -1) {
            fail(c, errno, "send");
            return;
        }
        c->sent += (size_t)n;
    }
    c->state = READING;
    watch(c, EPOLLIN);
}

/* A new request; its latency counts from `from`: now, before the first byte goes
 * to the kernel, or (open loop) when it was meant to go. */
static void next_request(struct conn *c, uint64_t from)
{
    make_request(c);
    c->sent = c->got = 0;
    c->t_from = from;
    send_request(c);
}

/* Resolve -a once, before any connection: a name's first address (the one
 * getaddrinfo ranks best) serves every connection, as in the lab's multiplexing
 * clients, whose connects are all in flight at once. */
static void resolve_peer(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res;
    char port[8];
    int err;

    snprintf(port, sizeof port, "%d", opt_port);
    if ((err = getaddrinfo(opt_addr, port, &hints, &res)) != 0)
        die(RC_USAGE, "-a '%s': %s", opt_addr,
            err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
    memcpy(&peer, res->ai_addr, res->ai_addrlen);
    peer_len = res->ai_addrlen;
    freeaddrinfo(res);
}

/* A non-blocking connect returns at once, usually with EINPROGRESS; the socket
 * becomes writable when the handshake is done (or has failed). */
static void start_connect(struct conn *c)
{
    pending++;
    c->state = CONNECTING;
    if ((c->fd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
        fail(c, errno, "socket");
    else if (connect(c->fd, (const struct sockaddr *)&peer, peer_len) == 0)
        next_request(c, now_ns());      /* on loopback it may finish at once */
    else if (errno == EINPROGRESS || errno == EINTR)
        watch(c, EPOLLOUT);             /* EINTR: the handshake goes on in the background */
    else
        fail(c, errno, "connect");
}

static void connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        die(RC_ERRORS, "getsockopt: %s", strerror(errno));
    if (err != 0)
        fail(c, err, "connect");        /* writable, but because the connect failed */
    else
        next_request(c, now_ns());
}

/* ---- the open loop's schedule ---- */

/* When request j of the whole schedule is meant to go. */
static uint64_t slot_time(uint64_t j)
{
    return t_start + (uint64_t)((double)j * 1e9 / opt_rate);
}

/* A busy connection has no request outstanding: its next one in the schedule
 * goes now if it is due (or overdue: its latency still counts from its intended
 * time); if not yet, the connection waits and release_due() sends it then. */
static void next_in_schedule(struct conn *c, uint64_t now)
{
    uint64_t due = slot_time(c->slot);
    c->state = QUIET;
    if (due >= t_end) {
        c->finished = 1;                /* its part of the schedule is done */
        busy_finished++;
    } else if (due <= now) {
        c->slot += (uint64_t)opt_busy;
        next_request(c, due);
    }
}

/* The requests of the schedule due by now whose connection is waiting for them;
 * one whose connection still waits for a reply goes when that reply is in. A
 * waiting connection's next request is never behind next_slot: it would have
 * gone at once. */
static void release_due(uint64_t now)
{
    for (uint64_t due; (due = slot_time(next_slot)) <= now && due < t_end; next_slot++) {
        struct conn *c = &conns[next_slot % (uint64_t)opt_busy];
        if (c->state == QUIET && !c->finished && c->slot == next_slot)
            next_in_schedule(c, now);
    }
}

/* Wake at `at` (CLOCK_MONOTONIC ns), or never (0). Setting the timer also clears
 * an expiry not yet read (timerfd_create(2): read counts the expirations "since
 * its settings were last modified"), so it is never read: every wake re-sets it. */
static void arm_timer(uint64_t at)
{
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)(at / NS_PER_S),
                                            .tv_nsec = (long)(at % NS_PER_S) } };
    if (at == timer_at)
        return;
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
        die(RC_ERRORS, "timerfd_settime: %s", strerror(errno));
    timer_at = at;
}

/* A whole reply has arrived, and it was right. */
static void reply_done(struct conn *c)
{
    uint64_t t = now_ns();
    if (!c->warm) {                     /* connect phase: this one is ready; park it */
        c->warm = 1;
        pending--;
        settled++;
        live_busy += c - conns < opt_busy;
        c->state = QUIET;               /* still watched for reading: EOF or stray bytes are errors */
        return;
    }
    record(t - c->t_from);
    requests++;
    busy_answered += c->done++ == 0;
    if (opt_rate > 0)
        next_in_schedule(c, t);
    else
        next_request(c, now_ns());      /* closed loop: the next request goes at once */
}

/* Read no further than the reply's end, and check every byte as it comes. */
static void receive(struct conn *c)
{
    char buf[FRAME_HEADER + REQ_BYTES];
    ssize_t n;
    do
        n = recv(c->fd, buf, c->state == READING ? req_len - c->got : req_len, 0);
    while (n == -1 && errno == EINTR);  /* a signal came first: nothing was read, retry */
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;                         /* woken by an error bit, say, with nothing to read */
    if (n == -1)
        fail(c, errno, "recv");
    else if (n == 0 && c->state == QUIET)
        fail(c, 0, "server closed the connection while it was quiet");
    else if (n == 0)
        fail(c, 0, "server closed the connection after %zu of %zu reply bytes", c->got, req_len);
    else if (c->state == QUIET)
        fail(c, 0, "%zd bytes nobody asked for", n);
    for (ssize_t i = 0; i < n && c->state == READING; i++, c->got++) {
        /* -F: the header comes back as it went (its bytes are no letters anyway) */
        char want = c->got < head_len ? c->out[c->got] : upper(c->out[c->got]);
        if (buf[i] != want)
            fail(c, 0, "reply byte %zu is 0x%02x, not 0x%02x", c->got,
                 (unsigned)(unsigned char)buf[i], (unsigned)(unsigned char)want);
    }
    if (c->state == READING && c->got == req_len)
        reply_done(c);
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (ev & (EPOLLERR | EPOLLHUP))
        ev |= EPOLLIN | EPOLLOUT;       /* wake both directions: the next call says what went wrong */
    if (c->state == CONNECTING && (ev & EPOLLOUT))
        connected(c);
    else if (c->state == SENDING && (ev & EPOLLOUT))
        send_request(c);
    if ((c->state == READING || c->state == QUIET) && (ev & EPOLLIN))
        receive(c);
}

/* One epoll_wait() and the events it brings. */
static void wait_and_dispatch(int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout_ms);
    if (n == -1 && errno != EINTR)      /* EINTR: a signal; the caller's loop waits again */
        die(RC_ERRORS, "epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++)
        if (evs[k].data.u64 != TIMER_TAG)   /* the timer only wakes us: the caller looks at the time */
            on_event(&conns[evs[k].data.u64], evs[k].events);
}

/* Open every connection, at most MAX_IN_FLIGHT at a time, until each has done
 * one round trip or failed. 0 when that is so, -1 if the deadline came first. */
static int connect_phase(void)
{
    uint64_t deadline = now_ns() + CONNECT_DEADLINE_S * NS_PER_S;
    long next = 0;
    for (;;) {
        while (next < nconns && pending < MAX_IN_FLIGHT)
            start_connect(&conns[next++]);
        if (settled == nconns)
            return 0;
        if (now_ns() >= deadline)
            return -1;
        wait_and_dispatch(ms_until(deadline));
    }
}

/* Every warm busy connection sends its first request now; run the closed loop
 * for opt_d seconds, and on until every busy connection has had a reply (10,000
 * of them can take longer than a second on a slow machine), but never beyond
 * MAX_STRETCH times opt_d: a connection still unanswered then is not held.
 * Returns the seconds it really took. */
static double measure_phase(void)
{
    uint64_t start = now_ns(), end = start + (uint64_t)(opt_d * 1e9);
    uint64_t last = start + (uint64_t)(opt_d * MAX_STRETCH * 1e9), t;
    for (long i = 0; i < opt_busy; i++)
        if (conns[i].state == QUIET)
            next_request(&conns[i], now_ns());
    while (live_busy > 0 && ((t = now_ns()) < end || (busy_answered < live_busy && t < last)))
        wait_and_dispatch(ms_until(t < end ? end : last));
    return (double)(now_ns() - start) / 1e9;
}

/* The generator gives up: every request of the schedule still unanswered counts,
 * with the latency it has reached by now (a lower bound). Leaving them out
 * would hide the very tail the open loop is for. */
static void give_up(uint64_t now)
{
    for (long i = 0; i < opt_busy; i++) {
        struct conn *c = &conns[i];
        if (c->state == DEAD || c->finished || !c->warm)
            continue;
        if (c->state != QUIET) {        /* sent, or being sent: no whole reply */
            record(now - c->t_from);
            unanswered++;
        }
        for (uint64_t j = c->slot; slot_time(j) < t_end; j += (uint64_t)opt_busy) {
            record(now - slot_time(j));
            unanswered++;
        }
    }
}

/* The open loop: opt_rate requests a second, on the schedule, for opt_d seconds,
 * then what is owed, for at most GRACE_S. Returns the seconds it really took. */
static double open_phase(void)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TIMER_TAG };
    if ((tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) == -1)
        die(RC_ERRORS, "timerfd_create: %s", strerror(errno));
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev) == -1)
        die(RC_ERRORS, "epoll_ctl: %s", strerror(errno));
    t_start = now_ns();
    t_end = t_start + (uint64_t)(opt_d * 1e9);
    uint64_t give_up_at = t_end + GRACE_S * NS_PER_S, t;
    for (long i = 0; i < opt_busy; i++)
        conns[i].slot = (uint64_t)i;    /* connection i's first request: j = i */
    for (;;) {
        release_due(t = now_ns());
        if (busy_finished >= live_busy || t >= give_up_at)
            break;
        arm_timer(slot_time(next_slot) < t_end ? slot_time(next_slot) : 0);
        wait_and_dispatch(ms_until(give_up_at));
    }
    give_up(t);
    arm_timer(0);
    xclose(tfd);
    return (double)(t - t_start) / 1e9;
}

/* The server's user and system CPU so far, in clock ticks: fields 14 and 15 of
 * /proc/PID/stat. Field 2, the command name, is in parentheses and may hold
 * spaces or ')', so fields are counted from the last ')'. 0 if unreadable. */
static int server_cpu(unsigned long long *user, unsigned long long *sys)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", opt_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char *ok = fgets(line, sizeof line, f);
    if (fclose(f) == EOF)
        return 0;
    char *p = ok ? strrchr(line, ')') : NULL;   /* the 11 %*s: fields 3 to 13 */
    return p != NULL && sscanf(p + 1, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu",
                               user, sys) == 2;
}

/* The server's resident set in kB and its number of threads: the VmRSS and
 * Threads lines of /proc/PID/status (RSS leaves out a thread's kernel stack). */
static int server_rss(unsigned long long *kb, unsigned long long *threads)
{
    char path[64], line[256];
    int found = 0;
    snprintf(path, sizeof path, "/proc/%ld/status", opt_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (found < 2 && fgets(line, sizeof line, f) != NULL)
        found += sscanf(line, "VmRSS: %llu", kb) == 1 || sscanf(line, "Threads: %llu", threads) == 1;
    return fclose(f) != EOF && found == 2;
}

/* Each connection is a descriptor: make room for all of them, or say why not. */
static void raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        die(RC_ERRORS, "getrlimit: %s", strerror(errno));
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        die(RC_USAGE, "%ld connections need %llu descriptors, but the hard limit is %llu: "
            "raise it (ulimit -Hn, as root) or use fewer", nconns,
            (unsigned long long)need, (unsigned long long)rl.rlim_max);
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        die(RC_USAGE, "setrlimit: %s", strerror(errno));
}

static long whole(int opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die(RC_USAGE, "-%c wants a whole number from %ld to %ld, not '%s'", opt, lo, hi, s);
    return v;
}

static double seconds(int opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0 && v <= 1e6))     /* also rejects NaN */
        die(RC_USAGE, "-%c wants seconds above 0, at most 1e6, not '%s'", opt, s);
    return v;
}

static double rate(int opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0 && v <= 1e8))     /* also rejects NaN */
        die(RC_USAGE, "-%c wants requests a second above 0, at most 1e8, not '%s'", opt, s);
    return v;
}

static void parse_options(int argc, char **argv)
{
    int o;
    opterr = 0;                         /* we say what is wrong ourselves */
    while ((o = getopt(argc, argv, ":p:a:c:i:d:r:P:Fqh")) != -1) {
        switch (o) {
        case 'p': opt_port = (int)whole(o, optarg, 1, 65535); break;
        case 'a': opt_addr = optarg; break;
        case 'c': opt_busy = whole(o, optarg, 1, 1000000); break;
        case 'i': opt_idle = whole(o, optarg, 0, 1000000); break;
        case 'd': opt_d = seconds(o, optarg); break;
        case 'r': opt_rate = rate(o, optarg); break;
        case 'P': opt_pid = whole(o, optarg, 1, INT_MAX); break;
        case 'F': opt_F = 1; break;
        case 'q': opt_q = 1; break;
        case 'h': fputs(usage_text, stdout); exit(RC_OK);
        case ':': die(RC_USAGE, "-%c needs a value", optopt);
        default: die(RC_USAGE, "unknown option -%c", optopt);
        }
    }
    if (optind != argc)
        die(RC_USAGE, "unexpected argument '%s'", argv[optind]);
    if (opt_port == 0)
        die(RC_USAGE, "-p PORT is required");
    head_len = opt_F ? FRAME_HEADER : 0;
    req_len = head_len + REQ_BYTES;
    resolve_peer();
    parsing = 0;
}

/* A number with the given decimals, or "-" when it is not known. */
static const char *field(char *buf, int known, double value, int decimals)
{
    if (!known)
        return "-";
    snprintf(buf, 32, "%.*f", decimals, value);
    return buf;
}

/* The one stdout line. user and sys: the server's CPU ticks while measuring. */
static void report(double elapsed, int cpu_ok, unsigned long long user, unsigned long long sys)
{
    unsigned long long rss = 0, threads = 0;
    int rss_ok = opt_pid && server_rss(&rss, &threads);
    long held = 0, starved = 0, tck = sysconf(_SC_CLK_TCK);    /* ticks a second, usually 100 */
    char b[8][32];

    if (tck <= 0)
        die(RC_ERRORS, "sysconf(_SC_CLK_TCK): %s", strerror(errno));
    if (opt_pid && !(cpu_ok && rss_ok))
        fprintf(stderr, "loadgen: server %ld: /proc unreadable at the end: has it gone?\n", opt_pid);
    for (long i = 0; i < nconns; i++) {
        int alive = conns[i].state != DEAD;
        held += alive && (i >= opt_busy || conns[i].done > 0);
        starved += alive && i < opt_busy && conns[i].done == 0;
    }
    if (errors > MAX_REPORTED)
        fprintf(stderr, "loadgen: ... and %llu more errors\n", errors - MAX_REPORTED);
    if (starved > 0)
        fprintf(stderr, "loadgen: %ld busy connections open but unanswered while measuring: "
                "not held\n", starved);
    cpu_ok = cpu_ok && requests > 0;    /* per request: nothing to divide by without */
    double us_per_tick_req = cpu_ok ? 1e6 / (double)tck / (double)requests : 0;
    if (printf("requests=%llu rps=%.0f p50_us=%s p99_us=%s p999_us=%s errors=%llu held=%ld "
               "server_user_us=%s server_sys_us=%s server_rss_kb=%s server_threads=%s "
               "offered_rps=%s unanswered=%llu\n",
               requests, elapsed > 0 ? (double)requests / elapsed : 0,
               field(b[0], hist_count > 0, percentile_us(500), 1),
               field(b[1], hist_count > 0, percentile_us(990), 1),
               field(b[2], hist_count > 0, percentile_us(999), 1), errors, held,
               field(b[3], cpu_ok, (double)user * us_per_tick_req, 3),
               field(b[4], cpu_ok, (double)sys * us_per_tick_req, 3),
               field(b[5], rss_ok, (double)rss, 0), field(b[6], rss_ok, (double)threads, 0),
               field(b[7], opt_rate > 0, opt_rate, 0), unanswered) < 0 || fflush(stdout) == EOF)
        die(RC_ERRORS, "writing stdout: %s", strerror(errno));
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    unsigned long long u0 = 0, s0 = 0, u1 = 0, s1 = 0;
    int rc = RC_DEADLINE;

    parse_options(argc, argv);
    nconns = opt_busy + opt_idle;
    raise_nofile((rlim_t)nconns + SPARE_FDS);
    if (opt_pid && !server_cpu(&u0, &s0))       /* say so now, not after the connect phase */
        die(RC_USAGE, "-P %ld: cannot read /proc/%ld/stat: no such process?", opt_pid, opt_pid);
    /* A send() to a server that has gone must fail with EPIPE, not kill us. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    if (sigemptyset(&sa.sa_mask) == -1 || sigaction(SIGPIPE, &sa, NULL) == -1)
        die(RC_ERRORS, "sigaction: %s", strerror(errno));
    if ((conns = calloc((size_t)nconns, sizeof *conns)) == NULL)
        die(RC_ERRORS, "out of memory for %ld connections", nconns);
    for (long i = 0; i < nconns; i++)
        conns[i].fd = -1;
    if ((epfd = epoll_create1(0)) == -1)
        die(RC_ERRORS, "epoll_create1: %s", strerror(errno));

    progress("connecting %ld busy and %ld idle to %s:%d", opt_busy, opt_idle, opt_addr, opt_port);
    uint64_t t0 = now_ns();
    if (connect_phase() == -1) {
        fprintf(stderr, "loadgen: connect phase: after %d s only %ld of %ld connections had "
                "done a round trip or failed\n", CONNECT_DEADLINE_S, settled, nconns);
    } else {
        progress("connect phase done in %.2f s, %llu errors; measuring for %g s",
                 (double)(now_ns() - t0) / 1e9, errors, opt_d);
        int cpu_ok = !opt_pid || server_cpu(&u0, &s0);
        double elapsed = opt_rate > 0 ? open_phase() : measure_phase();
        cpu_ok = opt_pid && cpu_ok && server_cpu(&u1, &s1);
        report(elapsed, cpu_ok, u1 - u0, s1 - s0);
        rc = errors ? RC_ERRORS : RC_OK;
    }
    for (long i = 0; i < nconns; i++)   /* only now: every connection was held until here */
        if (conns[i].fd != -1)
            xclose(conns[i].fd);
    free(conns);
    xclose(epfd);
    return rc;
}
