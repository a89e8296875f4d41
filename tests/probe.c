/*
 * tests/probe.c: the client the tests use to poke the lab's echo servers.
 *
 * Every server sends back each byte it receives with a-z made A-Z and all
 * other bytes unchanged; after the client's EOF it sends what it still owes
 * and closes. probe checks that, and also plays the rude clients a server
 * must survive. It reports by lines on stdout (flushed at once, since tests
 * wait for them), one line on stderr for any failure, and its exit status.
 *
 * Subcommands (one function cmd_NAME each):
 *   echo  -n BYTES [-b]    send BYTES of a pattern (-b: bytes 0..255) while
 *                          reading, half-close, check the whole reply
 *   reset -n BYTES         send, wait for the reply to start, close with RST
 *   drop  -n BYTES         send, never read, close normally
 *   flood -d SECONDS       send as fast as possible for SECONDS, never read
 *   churn -n COUNT [-c C]  COUNT short connections, at most C open at once
 *   hold  -n COUNT [-r] [-d SECONDS]  open COUNT connections and keep them
 *                          open until SIGTERM/SIGINT (or SECONDS passed); -r: a
 *                          connection the server closes unanswered is counted
 *                          as refused (select's FD_SETSIZE cap), not an error
 *   line  -s STRING [-T]   one round trip of STRING\n; -T prints the time
 *   oob                    send "abc", "!" as urgent data (MSG_OOB), "def\n";
 *                          the reply must be "ABCDEF\n" (see cmd_oob)
 *   frames [-m MODE] [-n BYTES] [-d SECONDS]   the framed protocol (note 002's
 *                          cure: a 4-byte length in network byte order, then
 *                          that many bytes; the reply: the same header, the
 *                          body upper-cased) of the framed servers:
 *       -m corpus (default) messages of 0, 1, 5, 17, 300 bytes and every byte
 *                          value, sent split at every byte boundary, one byte
 *                          per send(), all in one send(); every reply checked
 *       -m big -n BYTES    one message of BYTES (1 MiB), sent while reading
 *       -m over -n LENGTH  a header saying LENGTH: the server must close, no reply
 *       -m trunc -n K      the first K bytes of a frame with a 100-byte body, then
 *                          EOF: the server must close, having sent at most the
 *                          reply to what it got
 *       -m flood -d SECONDS  valid frames as fast as possible, never reading
 * Common: -a ADDR (IPv4, IPv6 or a host name; 127.0.0.1), -p PORT (required),
 * -t SECONDS deadline (10; for flood it bounds only the connect, for hold only
 * the setup).
 * hold ignores stdin on purpose: a background job's stdin may be /dev/null.
 * Exit: 0 ok, 1 wrong reply, 2 usage, 3 deadline passed, 4 connection error
 * (or any other failing system call).
 *
 * Build: cc -std=c11 -Wall -Wextra -O2 -o probe probe.c
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { RC_OK, RC_WRONG, RC_USAGE, RC_DEADLINE, RC_CONN };
#define BUFSZ 65536
#define FRAME_HEADER 4          /* frames: the length, 4 bytes in network byte order */
#define FRAME_MAX 1048576       /* frames: the longest message a framed server takes */
#define FLOOD_BODY 1020         /* frames -m flood: 1 KiB frames, header included */
#define TRUNC_BODY 100          /* frames -m trunc: the frame whose first K bytes go */

static const char usage_text[] =
    "usage: probe COMMAND [-a ADDR] -p PORT [-t SECONDS] [options]\n"
    "  echo -n BYTES [-b] | reset -n BYTES | drop -n BYTES | flood -d SECONDS\n"
    "  churn -n COUNT [-c CONCURRENCY] | hold -n COUNT [-r] [-d SECONDS]\n"
    "  line -s STRING [-T] | oob\n"
    "  frames [-m corpus | -m big [-n BYTES] | -m over [-n LENGTH] | -m trunc -n K\n"
    "          | -m flood -d SECONDS]\n";
static const char pattern[] = "abcdefghijklmnopqrstuvwxyz0123456789\n";

static const char *cmd = "";            /* the subcommand, for messages */
static const char *opt_addr = "127.0.0.1", *opt_s, *opt_m = "corpus";
static int opt_port, opt_b, opt_T, opt_r;
static long long opt_n, opt_c = 1;
static double opt_t = 10, opt_d;

static struct sockaddr_storage peer;   /* -a and -p, resolved once: resolve_peer() */
static socklen_t peer_len;
static double deadline;                 /* CLOCK_MONOTONIC seconds */
static volatile sig_atomic_t stop;      /* SIGTERM or SIGINT came (flood, hold) */
static int sig_fd[2] = {-1, -1};        /* self-pipe: the handler wakes poll() */

/* Heap blocks hang off globals so that an exit through die() leaves nothing
 * that LeakSanitizer would call lost; normal paths free them. */
static unsigned char *sbuf, *rbuf;
static char *line_want, *line_got;
static int *held;
static struct slot *slots;
static struct pollfd *pfds;

/* The one stderr line of a failure (plus the usage text for RC_USAGE), then exit. */
static _Noreturn void die(int rc, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, *cmd ? "probe %s: " : "probe: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", rc == RC_USAGE ? usage_text : "");
    exit(rc);
}

/* One line on stdout, flushed now because a test may be waiting for it. A
 * reader that went away is not the server's fault, so that only warns. */
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (fflush(stdout) == EOF)
        fprintf(stderr, "probe %s: writing stdout: %s\n", cmd, strerror(errno));
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        die(RC_CONN, "out of memory for %zu bytes", size);
    return p;
}

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die(RC_CONN, "clock_gettime: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds for poll() until `until`, rounded up so we never wake just
 * before the deadline and spin with timeout 0. */
static int ms_left(double until)
{
    double left = until - now();
    if (left <= 0)
        return 0;
    if (left >= INT_MAX / 1000)
        return INT_MAX;
    return (int)(left * 1000.0) + 1;
}

static unsigned char upper(unsigned char c)
{
    return c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

/* Byte number i of what we send; computed from i so any chunk can start anywhere. */
static unsigned char pattern_at(unsigned long long i)
{
    return opt_b ? (unsigned char)(i % 256) : (unsigned char)pattern[i % (sizeof pattern - 1)];
}

static unsigned char pattern_reply_at(unsigned long long i)
{
    return upper(pattern_at(i));
}

/* What echo, drop, reset and flood send, and what echo wants back: the pattern,
 * or (frames) a stream of frames. */
static unsigned char (*stream_at)(unsigned long long) = pattern_at;
static unsigned char (*reply_at)(unsigned long long) = pattern_reply_at;

/* frames: a stream of frames, each a header saying frame_len, then frame_len
 * bytes of the pattern; byte i of it, and of its reply (the header unchanged:
 * a length byte of 97 is not an 'a' to upper-case). */
static unsigned long long frame_len;

static unsigned char frame_at(unsigned long long i)
{
    unsigned long long pos = i % (FRAME_HEADER + frame_len);
    if (pos < FRAME_HEADER)     /* most significant byte first: network byte order */
        return (unsigned char)(frame_len >> (8 * (FRAME_HEADER - 1 - pos)) & 0xff);
    return pattern_at(pos - FRAME_HEADER);
}

static unsigned char frame_reply_at(unsigned long long i)
{
    unsigned char c = frame_at(i);
    return i % (FRAME_HEADER + frame_len) < FRAME_HEADER ? c : upper(c);
}

static void fill(unsigned char *buf, size_t len, unsigned long long from)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = stream_at(from + i);
}

static int would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

static void set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        die(RC_CONN, "fcntl: %s", strerror(errno));
}

/* close() is not retried on EINTR: on Linux the descriptor is gone anyway and
 * a second close could hit a descriptor another part of us just opened. */
static void xclose(int fd)
{
    if (close(fd) != 0 && errno != EINTR)
        die(RC_CONN, "close: %s", strerror(errno));
}

static _Noreturn void conn_fail(const char *what, int err)
{
    die(RC_CONN, "%s %s port %d: %s%s", what, opt_addr, opt_port, strerror(err),
        err == EMFILE || err == ENFILE ? " (too many open files: raise ulimit -n)" : "");
}

static _Noreturn void io_fail(const char *what, unsigned long long bytes)
{
    die(RC_CONN, "%s failed after %llu bytes: %s", what, bytes, strerror(errno));
}

/* send() and recv() with EINTR retried. send_some returns 0 when the socket
 * buffer is full; recv_some returns -1 with errno EAGAIN when nothing is there. */
static ssize_t send_some(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t r = send(fd, buf, len, 0);
        if (r >= 0)
            return r;
        if (would_block())
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static ssize_t recv_some(int fd, void *buf, size_t len)
{
    ssize_t r;
    do
        r = recv(fd, buf, len, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Wait until fd has one of events (or an error), `until` passes (until < 0:
 * never), or a stop signal comes. Returns fd's revents, 0 for the other two. */
static int wait_fd(int fd, short events, double until)
{
    struct pollfd p[2] = {{fd, events, 0}, {sig_fd[0], POLLIN, 0}}; /* -1: ignored */
    for (;;) {
        int r = poll(p, 2, until < 0 ? -1 : ms_left(until));
        if (r < 0 && errno != EINTR)
            die(RC_CONN, "poll: %s", strerror(errno));
        if (stop)
            return 0;
        if (r > 0 && p[0].revents)
            return p[0].revents;
        if (r == 0 && until >= 0 && now() >= until)
            return 0;
    }
}

static void on_stop(int sig)
{
    int saved = errno;
    (void)sig;
    stop = 1;
    /* Fails only if the pipe is full, and then a wake-up is pending anyway. */
    ssize_t r = write(sig_fd[1], "", 1);
    (void)r;
    errno = saved;
}

/* SIGTERM/SIGINT set `stop` and write to a pipe that wait_fd() polls, so a
 * signal arriving just before poll() is not missed (poll is then woken). */
static void catch_stop(void)
{
    struct sigaction sa;
    if (pipe(sig_fd) != 0)
        die(RC_CONN, "pipe: %s", strerror(errno));
    set_nonblock(sig_fd[0]);
    set_nonblock(sig_fd[1]);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        die(RC_CONN, "sigaction: %s", strerror(errno));
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

/* A non-blocking socket with its connect() started. Returns 1 if it is
 * already connected, 0 if in progress (wait for POLLOUT, then check_connected). */
static int start_connect(int *fdp)
{
    int fd = socket(peer.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        conn_fail("socket for", errno);
    set_nonblock(fd);
    *fdp = fd;
    if (connect(fd, (struct sockaddr *)&peer, peer_len) == 0)
        return 1;
    if (errno == EINPROGRESS || errno == EINTR)   /* EINTR: it goes on anyway */
        return 0;
    conn_fail("connect to", errno);
}

static void check_connected(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        conn_fail("getsockopt for", errno);
    if (err)
        conn_fail("connect to", err);
}

/* A connected non-blocking socket, within the deadline. */
static int connect_to(void)
{
    int fd;
    if (!start_connect(&fd)) {
        if (!wait_fd(fd, POLLOUT, deadline))
            die(RC_DEADLINE, "deadline (%g s) passed while connecting", opt_t);
        check_connected(fd);
    }
    return fd;
}

/* Send len bytes, waiting when the socket buffer is full; before counts the
 * bytes sent before these, for messages. */
static void send_all(int fd, const void *buf, size_t len, unsigned long long before)
{
    for (size_t sent = 0; sent < len;) {
        ssize_t r = send_some(fd, (const char *)buf + sent, len - sent);
        if (r < 0)
            io_fail("send", before + sent);
        if (r == 0 && !wait_fd(fd, POLLOUT, deadline))
            die(RC_DEADLINE, "deadline (%g s) passed after sending %llu bytes "
                "(is the server stuck writing replies we do not read?)", opt_t, before + sent);
        sent += (size_t)r;
    }
}

/* Read one reply line into buf, at most cap bytes so that nothing beyond the
 * expected line is consumed. Returns its length with the '\n' (or cap). With
 * refusable set, a close or reset before any byte returns 0 instead of failing. */
static size_t read_line(int fd, char *buf, size_t cap, int refusable)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = recv_some(fd, buf + got, cap - got);
        if (r > 0) {
            char *nl = memchr(buf + got, '\n', (size_t)r);
            got += (size_t)r;
            if (nl)
                return (size_t)(nl - buf) + 1;
        } else if ((r == 0 || errno == ECONNRESET) && refusable && got == 0) {
            return 0;
        } else if (r == 0) {
            die(RC_CONN, "connection closed after %zu reply bytes, before the full line", got);
        } else if (!would_block()) {
            io_fail("recv", got);
        } else if (!wait_fd(fd, POLLIN, deadline)) {
            die(RC_DEADLINE, "deadline (%g s) passed with %zu reply bytes", opt_t, got);
        }
    }
    return got;
}

/* got[0..n) must equal want[0..n); base is got's offset in the reply. A
 * line that ends early is caught too: its '\n' differs from the wanted byte. */
static void check_bytes(const char *got, const char *want, size_t n, size_t base)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            die(RC_WRONG, "reply differs at byte %zu: got 0x%02x want 0x%02x",
                base + i, (unsigned char)got[i], (unsigned char)want[i]);
}

/* Send n bytes of the pattern without reading, for reset and drop. */
static void send_pattern(int fd, unsigned long long n)
{
    sbuf = xmalloc(BUFSZ);
    for (unsigned long long sent = 0; sent < n; sent += BUFSZ) {
        size_t len = n - sent < BUFSZ ? (size_t)(n - sent) : BUFSZ;
        fill(sbuf, len, sent);
        send_all(fd, sbuf, len, sent);
    }
    free(sbuf);
    sbuf = NULL;
}

/* Send and receive at once: a server that echoes as it reads fills our
 * receive buffer while we send, so a client that only sent would deadlock.
 * n bytes of stream_at go, then our EOF; the reply must be n bytes of reply_at. */
static void exchange(unsigned long long n)
{
    unsigned long long sent = 0, got = 0;
    size_t off = 0, len = 0;            /* sbuf[off..len) is not sent yet */
    int fd = connect_to();

    sbuf = xmalloc(BUFSZ);
    rbuf = xmalloc(BUFSZ);
    if (n == 0 && shutdown(fd, SHUT_WR) != 0)
        io_fail("shutdown", 0);
    for (;;) {
        int ev = wait_fd(fd, (short)(sent < n ? POLLIN | POLLOUT : POLLIN), deadline);
        if (!ev)
            die(RC_DEADLINE, "deadline (%g s) passed after sending %llu of %llu bytes "
                "and receiving %llu", opt_t, sent, n, got);
        if (sent < n && (ev & (POLLOUT | POLLERR | POLLHUP))) {
            if (off == len) {
                len = n - sent < BUFSZ ? (size_t)(n - sent) : BUFSZ;
                fill(sbuf, len, sent);
                off = 0;
            }
            ssize_t r = send_some(fd, sbuf + off, len - off);
            if (r < 0)
                io_fail("send", sent);
            off += (size_t)r;
            sent += (unsigned long long)r;
            if (sent == n && shutdown(fd, SHUT_WR) != 0)  /* half-close: our EOF */
                io_fail("shutdown", sent);
        }
        if (ev & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t r = recv_some(fd, rbuf, BUFSZ);
            if (r == 0)
                break;
            if (r < 0 && !would_block())
                io_fail("recv", got);
            for (ssize_t i = 0; i < r; i++, got++) {
                unsigned char want = reply_at(got);
                if (got >= n)
                    die(RC_WRONG, "reply too long: more than the %llu bytes sent", n);
                if (rbuf[i] != want)
                    die(RC_WRONG, "reply differs at byte %llu: got 0x%02x want 0x%02x",
                        got, rbuf[i], want);
            }
        }
    }
    if (got < n)
        die(RC_WRONG, "reply too short: EOF after %llu of %llu bytes (sent %llu)", got, n, sent);
    xclose(fd);
    free(sbuf);
    free(rbuf);
    sbuf = rbuf = NULL;
}

static void cmd_echo(void)
{
    exchange((unsigned long long)opt_n);
    say("echo: sent %lld, received %lld, ok", opt_n, opt_n);
}

/* Close while the server is mid-reply: linger 0 makes close() send a RST, so
 * the server's next send or recv fails with ECONNRESET or EPIPE. */
static void cmd_reset(void)
{
    int fd = connect_to();
    struct linger lg = {1, 0};

    send_pattern(fd, (unsigned long long)opt_n);
    if (!wait_fd(fd, POLLIN, deadline))
        die(RC_DEADLINE, "deadline (%g s) passed with no reply byte", opt_t);
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
        die(RC_CONN, "setsockopt SO_LINGER: %s", strerror(errno));
    xclose(fd);
    say("reset: sent %lld", opt_n);
}

static void cmd_drop(void)
{
    int fd = connect_to();
    send_pattern(fd, (unsigned long long)opt_n);
    xclose(fd);
    say("drop: sent %lld", opt_n);
}

/* Never read: the server's replies fill our receive buffer, then its send
 * buffer, then (for a server that stops reading while it cannot write) ours. */
static void cmd_flood(void)
{
    unsigned long long sent = 0;
    int fd = connect_to(), blocked = 0, reset = 0;
    double end = now() + opt_d;

    catch_stop();
    sbuf = xmalloc(BUFSZ);
    while (!stop && !reset && now() < end) {
        fill(sbuf, BUFSZ, sent);
        ssize_t r = send_some(fd, sbuf, BUFSZ);
        if (r < 0 && errno != ECONNRESET && errno != EPIPE)
            io_fail("send", sent);
        reset = r < 0;                  /* for a flooder a legitimate end */
        if (r == 0) {
            if (!blocked)
                say("flood: blocked after %llu bytes", sent);
            blocked = 1;
            wait_fd(fd, POLLOUT, end);  /* 0 on time up or signal: the loop checks */
        }
        if (r > 0)
            sent += (unsigned long long)r;
    }
    say(reset ? "flood: reset after %llu bytes" : "flood: sent %llu bytes", sent);
    xclose(fd);
    free(sbuf);
    sbuf = NULL;
}

struct slot {                   /* one churn connection; fd -1 when free */
    int fd, connecting;
    long long k;
    char out[32], want[32];
    size_t outlen, sent, wantlen, got;
};

static void churn_open(struct slot *s, long long k)
{
    s->k = k;
    s->outlen = (size_t)snprintf(s->out, sizeof s->out, "churn %lld\n", k);
    s->wantlen = (size_t)snprintf(s->want, sizeof s->want, "CHURN %lld\n", k);
    s->sent = s->got = 0;
    s->connecting = !start_connect(&s->fd);
}

/* Move a connection on as far as it goes without blocking; 1 when done. */
static int churn_step(struct slot *s)
{
    char buf[32];
    if (s->connecting) {
        check_connected(s->fd);
        s->connecting = 0;
    }
    while (s->sent < s->outlen) {
        ssize_t r = send_some(s->fd, s->out + s->sent, s->outlen - s->sent);
        if (r < 0)
            die(RC_CONN, "connection %lld: send: %s", s->k, strerror(errno));
        if (r == 0)
            return 0;
        s->sent += (size_t)r;
    }
    for (;;) {
        ssize_t r = recv_some(s->fd, buf, s->wantlen - s->got);
        if (r < 0 && would_block())
            return 0;
        if (r < 0)
            die(RC_CONN, "connection %lld: recv: %s", s->k, strerror(errno));
        if (r == 0)
            die(RC_CONN, "connection %lld: closed after %zu reply bytes", s->k, s->got);
        check_bytes(buf, s->want + s->got, (size_t)r, s->got);
        s->got += (size_t)r;
        if (s->got == s->wantlen) {
            xclose(s->fd);
            s->fd = -1;
            return 1;
        }
    }
}

/* One code path for any concurrency: C slots, each a non-blocking
 * connection driven by poll(); a slot that finishes takes the next number. */
static void cmd_churn(void)
{
    size_t c = (size_t)opt_c;
    long long next = 1, done = 0;

    slots = xmalloc(c * sizeof *slots);
    pfds = xmalloc(c * sizeof *pfds);
    for (size_t i = 0; i < c; i++)
        slots[i].fd = -1;
    while (done < opt_n) {
        for (size_t i = 0; i < c; i++) {
            struct slot *s = &slots[i];
            if (s->fd < 0 && next <= opt_n)
                churn_open(s, next++);
            pfds[i].fd = s->fd;         /* -1: poll ignores it */
            pfds[i].events = s->connecting || s->sent < s->outlen ? POLLOUT : POLLIN;
            pfds[i].revents = 0;
        }
        int r = poll(pfds, (nfds_t)c, ms_left(deadline));
        if (r < 0 && errno != EINTR)
            die(RC_CONN, "poll: %s", strerror(errno));
        if (r == 0 && now() >= deadline)
            die(RC_DEADLINE, "deadline (%g s) passed with %lld of %lld connections done",
                opt_t, done, opt_n);
        for (size_t i = 0; i < c; i++)
            if (pfds[i].revents && slots[i].fd >= 0 && churn_step(&slots[i]))
                done++;
    }
    free(slots);
    free(pfds);
    slots = NULL;
    pfds = NULL;
    say("churn: %lld ok", done);
}

/* A round trip on each connection proves the server accepted it (a listen
 * backlog would accept the TCP handshake without the server doing anything). */
static void cmd_hold(void)
{
    char out[32], want[32], got[32];
    struct rlimit rl;

    /* Say so up front rather than fail at connection 1021 (and leave the
     * process without a descriptor to spare, even for LeakSanitizer). */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die(RC_CONN, "getrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)opt_n + 8 > rl.rlim_cur)
        die(RC_CONN, "%lld connections need more descriptors than ulimit -n %llu: raise ulimit -n",
            opt_n, (unsigned long long)rl.rlim_cur);
    long long nheld = 0, refused = 0;
    held = xmalloc((size_t)opt_n * sizeof *held);
    for (long long k = 1; k <= opt_n; k++) {
        int fd = connect_to();
        size_t outlen = (size_t)snprintf(out, sizeof out, "hold %lld\n", k);
        size_t wantlen = (size_t)snprintf(want, sizeof want, "HOLD %lld\n", k);
        send_all(fd, out, outlen, 0);
        size_t n = read_line(fd, got, wantlen, opt_r);
        if (n == 0) {                   /* -r: the server closed it unanswered */
            refused++;
            xclose(fd);
            continue;
        }
        check_bytes(got, want, n, 0);
        held[nheld++] = fd;
    }
    catch_stop();                       /* before "holding": tests signal after it */
    if (opt_r)
        say("holding %lld, refused %lld", nheld, refused);
    else
        say("holding %lld", nheld);
    /* Until a stop signal, or -d SECONDS (-t covers only the setup). fd -1 is
     * ignored by poll(), so this waits on the signal pipe alone. */
    wait_fd(-1, POLLIN, opt_d > 0 ? now() + opt_d : -1);
    for (long long k = 0; k < nheld; k++)
        xclose(held[k]);
    free(held);
    held = NULL;
    say("released %lld", nheld);
}

static void cmd_line(void)
{
    size_t len = strlen(opt_s), n;
    double t0 = now();
    int fd = connect_to();

    line_want = xmalloc(len + 1);      /* upper(STRING) "\n", what we also send */
    line_got = xmalloc(len + 1);
    memcpy(line_want, opt_s, len);
    line_want[len] = '\n';
    send_all(fd, line_want, len + 1, 0);
    for (size_t i = 0; i < len; i++)
        line_want[i] = (char)upper((unsigned char)line_want[i]);
    n = read_line(fd, line_got, len + 1, 0);
    double elapsed = now() - t0;
    size_t shown = line_got[n - 1] == '\n' ? n - 1 : n;   /* the line without '\n' */
    if (fwrite(line_got, 1, shown, stdout) != shown)
        fprintf(stderr, "probe line: writing stdout: %s\n", strerror(errno));
    say("");
    if (opt_T)
        say("reply after %.3f s", elapsed);
    check_bytes(line_got, line_want, n, 0);
    xclose(fd);
    free(line_want);
    free(line_got);
    line_want = line_got = NULL;
}

/* TCP's urgent data: send(MSG_OOB) marks the last byte it sends. Without
 * SO_OOBINLINE that byte is taken out of the stream (recv with MSG_OOB reads
 * it), so the server's recv() never sees "!" and must answer "ABCDEF\n". But
 * recv() stops at the mark: the server gets "abc", then "def\n" on its next
 * call. A server that takes a short read for "the socket is drained" and waits
 * for a new readiness edge never makes that call: all was there already. */
static void cmd_oob(void)
{
    static const char want[] = "ABCDEF\n";
    char got[sizeof want - 1];
    int fd = connect_to();

    send_all(fd, "abc", 3, 0);
    for (;;) {
        ssize_t r = send(fd, "!", 1, MSG_OOB);
        if (r == 1)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && !would_block())
            io_fail("send MSG_OOB", 3);
        if (!wait_fd(fd, POLLOUT, deadline))        /* full (or r == 0): wait for room */
            die(RC_DEADLINE, "deadline (%g s) passed before the urgent byte went", opt_t);
    }
    send_all(fd, "def\n", 4, 4);
    size_t n = read_line(fd, got, sizeof got, 0);
    size_t shown = got[n - 1] == '\n' ? n - 1 : n;  /* the line without '\n' */
    if (fwrite(got, 1, shown, stdout) != shown)
        fprintf(stderr, "probe oob: writing stdout: %s\n", strerror(errno));
    say("");
    check_bytes(got, want, n, 0);       /* a line that ends early differs at its '\n' */
    xclose(fd);
}

/* frames: the 4-byte header for a body of len bytes, most significant byte first. */
static void put_header(unsigned char *p, unsigned long long len)
{
    for (int i = 0; i < FRAME_HEADER; i++)
        p[i] = (unsigned char)(len >> (8 * (FRAME_HEADER - 1 - i)) & 0xff);
}

static void pause_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };
    while (nanosleep(&ts, &ts) != 0)
        if (errno != EINTR)             /* EINTR: a signal cut it short; sleep the rest */
            die(RC_CONN, "nanosleep: %s", strerror(errno));
}

/* Exactly len reply bytes into buf: a reply may come in pieces (TCP is a stream). */
static void read_exact(int fd, unsigned char *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t r = recv_some(fd, buf + got, len - got);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            die(RC_CONN, "connection closed after %zu of %zu reply bytes", got, len);
        else if (!would_block())
            io_fail("recv", got);
        else if (!wait_fd(fd, POLLIN, deadline))
            die(RC_DEADLINE, "deadline (%g s) passed with %zu of %zu reply bytes", opt_t, got, len);
    }
}

/* Read until the server closes (EOF, or a reset: it closed with our bytes unread),
 * each byte checked against frame_reply_at; more than `most` bytes is wrong. */
static unsigned long long read_to_close(int fd, unsigned long long most)
{
    unsigned char buf[512];
    unsigned long long got = 0;
    for (;;) {
        ssize_t r = recv_some(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return got;
        if (r < 0 && !would_block())
            io_fail("recv", got);
        if (r < 0 && !wait_fd(fd, POLLIN, deadline))
            die(RC_DEADLINE, "deadline (%g s) passed and the server has not closed "
                "(%llu reply bytes)", opt_t, got);
        for (ssize_t i = 0; i < r; i++, got++) {
            if (got >= most)
                die(RC_WRONG, "reply byte %llu came: at most %llu were owed", got + 1, most);
            if (buf[i] != frame_reply_at(got))
                die(RC_WRONG, "reply differs at byte %llu: got 0x%02x want 0x%02x",
                    got, buf[i], frame_reply_at(got));
        }
    }
}

/* frames -m corpus: each message framed, on one connection, three ways. A server
 * that takes one recv() for a header, or for a body, fails the first way; one that
 * assumes a recv() holds no more than one message fails the third. */
static void frames_corpus(void)
{
    static const size_t sizes[] = {0, 1, 5, 17, 300, 256};  /* the last: bytes 0..255 */
    enum { NMSG = sizeof sizes / sizeof sizes[0] };
    unsigned char out[NMSG * FRAME_HEADER + 0 + 1 + 5 + 17 + 300 + 256];
    unsigned char want[sizeof out], got[sizeof out];
    size_t start[NMSG + 1], len = 0, bytes = 0;
    int one = 1, msgs = 0, fd = connect_to();

    for (size_t m = 0; m < NMSG; m++) {
        start[m] = len;
        put_header(out + len, sizes[m]);
        memcpy(want + len, out + len, FRAME_HEADER);
        len += FRAME_HEADER;
        for (size_t i = 0; i < sizes[m]; i++, len++) {    /* letters and digits, or 0..255 */
            out[len] = m == NMSG - 1 ? (unsigned char)i : (unsigned char)pattern[i % (sizeof pattern - 2)];
            want[len] = upper(out[len]);
        }
    }
    start[NMSG] = len;
    /* Without it, Nagle's algorithm would hold a frame's second part until the
     * first is acknowledged, and the parts could still travel together. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die(RC_CONN, "setsockopt TCP_NODELAY: %s", strerror(errno));
    /* 1: each frame in two parts, a millisecond apart, split at every byte boundary. */
    for (size_t m = 0; m < NMSG; m++) {
        size_t flen = start[m + 1] - start[m];
        for (size_t cut = 1; cut < flen; cut++) {
            send_all(fd, out + start[m], cut, bytes);
            pause_ms(1);
            send_all(fd, out + start[m] + cut, flen - cut, bytes + cut);
            read_exact(fd, got, flen);
            check_bytes((char *)got, (char *)want + start[m], flen, bytes);
            msgs++;
            bytes += flen;
        }
    }
    /* 2: the whole stream, one byte per send(). */
    for (size_t i = 0; i < len; i++)
        send_all(fd, out + i, 1, bytes + i);
    read_exact(fd, got, len);
    check_bytes((char *)got, (char *)want, len, bytes);
    msgs += NMSG;
    bytes += len;
    /* 3: the whole stream in one send(): six messages in one segment. */
    send_all(fd, out, len, bytes);
    read_exact(fd, got, len);
    check_bytes((char *)got, (char *)want, len, bytes);
    msgs += NMSG;
    bytes += len;
    /* Our EOF between messages is the normal end: the server closes, adding nothing. */
    if (shutdown(fd, SHUT_WR) != 0)
        io_fail("shutdown", bytes);
    read_to_close(fd, 0);
    xclose(fd);
    say("frames: %d messages, %zu bytes, ok", msgs, bytes);
}

/* The framed protocol (note 002's cure) by -m mode; main() has checked -n and -d.
 * stream_at and reply_at become frame_at and frame_reply_at, so that exchange()
 * and cmd_flood() send frames. */
static void cmd_frames(void)
{
    stream_at = frame_at;
    reply_at = frame_reply_at;
    if (strcmp(opt_m, "corpus") == 0) {
        frames_corpus();
    } else if (strcmp(opt_m, "big") == 0) {     /* sent while the reply is read */
        frame_len = (unsigned long long)opt_n;
        exchange(FRAME_HEADER + frame_len);
        say("frames: 1 messages, %llu bytes, ok", frame_len);
    } else if (strcmp(opt_m, "over") == 0) {    /* no half-close: the server must close */
        unsigned char head[FRAME_HEADER];
        int fd = connect_to();
        frame_len = (unsigned long long)opt_n;
        put_header(head, frame_len);
        send_all(fd, head, sizeof head, 0);
        read_to_close(fd, 0);
        xclose(fd);
        say("frames: closed, no reply");
    } else if (strcmp(opt_m, "trunc") == 0) {   /* K bytes of a frame, then our EOF */
        unsigned char part[FRAME_HEADER + TRUNC_BODY];
        size_t k = (size_t)opt_n;
        int fd = connect_to();
        frame_len = TRUNC_BODY;
        fill(part, k, 0);
        send_all(fd, part, k, 0);
        if (shutdown(fd, SHUT_WR) != 0)
            io_fail("shutdown", k);
        /* A streaming server may have sent the header and the body bytes it got. */
        unsigned long long got = read_to_close(fd, k < FRAME_HEADER ? 0 : k);
        xclose(fd);
        say("frames: closed after %llu reply bytes", got);
    } else {                                    /* flood: 1 KiB frames, never read */
        frame_len = FLOOD_BODY;
        cmd_flood();
    }
}

static const struct command {
    const char *name;
    void (*run)(void);
    const char *opts;           /* options it takes besides -a -p -t */
    int need;                   /* the one it cannot do without */
} commands[] = {
    {"echo", cmd_echo, "nb", 'n'},   {"reset", cmd_reset, "n", 'n'},
    {"drop", cmd_drop, "n", 'n'},    {"flood", cmd_flood, "d", 'd'},
    {"churn", cmd_churn, "nc", 'n'}, {"hold", cmd_hold, "nrd", 'n'},
    {"line", cmd_line, "sT", 's'},   {"oob", cmd_oob, "", 'p'},
    {"frames", cmd_frames, "mnd", 'p'},
};

static long long whole(const char *s, int opt, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die(RC_USAGE, "-%c wants a whole number from %lld to %lld, not '%s'", opt, lo, hi, s);
    return v;
}

static double seconds(const char *s, int opt, double lo)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= 1e6))   /* also rejects NaN */
        die(RC_USAGE, "-%c wants seconds from %g to 1e6, not '%s'", opt, lo, s);
    return v;
}

int main(int argc, char **argv)
{
    const struct command *c = NULL;
    struct sigaction sa;
    unsigned char seen[UCHAR_MAX + 1] = {0};
    int o;

    /* Keep fds 0-2 taken: were stdin closed, hold's first socket would be fd 0. */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            die(RC_CONN, "open /dev/null: %s", strerror(errno));
    /* A send to a peer that is gone must return EPIPE, not kill us. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        die(RC_CONN, "sigaction: %s", strerror(errno));

    if (argc < 2)
        die(RC_USAGE, "no command given");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            c = &commands[i];
    if (!c)
        die(RC_USAGE, "unknown command '%s'", argv[1]);
    cmd = c->name;
    opterr = 0;                         /* we say what is wrong ourselves */
    while ((o = getopt(argc - 1, argv + 1, ":a:p:n:c:t:d:bs:Trm:")) != -1) {
        if (o == '?')
            die(RC_USAGE, "unknown option -%c", optopt);
        if (o == ':')
            die(RC_USAGE, "-%c needs a value", optopt);
        if (!strchr("apt", o) && !strchr(c->opts, o))
            die(RC_USAGE, "-%c does not apply to %s", o, cmd);
        seen[(unsigned char)o] = 1;
        switch (o) {
        case 'a': opt_addr = optarg; break;
        case 'p': opt_port = (int)whole(optarg, o, 1, 65535); break;
        case 'n': opt_n = whole(optarg, o, 0, LLONG_MAX); break;
        case 'c': opt_c = whole(optarg, o, 1, 10000); break;
        case 't': opt_t = seconds(optarg, o, 0.001); break;
        case 'd': opt_d = seconds(optarg, o, 0); break;
        case 'b': opt_b = 1; break;
        case 's': opt_s = optarg; break;
        case 'T': opt_T = 1; break;
        case 'r': opt_r = 1; break;
        case 'm': opt_m = optarg; break;
        }
    }
    if (optind != argc - 1)
        die(RC_USAGE, "unexpected argument '%s'", argv[optind + 1]);
    if (!seen['p'])
        die(RC_USAGE, "-p PORT is required");
    if (!seen[c->need])
        die(RC_USAGE, "%s needs -%c", cmd, c->need);
    if (c->run == cmd_reset && opt_n == 0)
        die(RC_USAGE, "reset needs -n 1 or more: it waits for a reply byte");
    if (c->run == cmd_hold && opt_n > 1000000)
        die(RC_USAGE, "hold -n is at most 1000000");
    if (opt_s && strchr(opt_s, '\n'))
        die(RC_USAGE, "-s STRING must not hold a newline: the reply is read up to one");
    if (c->run == cmd_frames) {
        int corpus = !strcmp(opt_m, "corpus"), big = !strcmp(opt_m, "big");
        int over = !strcmp(opt_m, "over"), trunc = !strcmp(opt_m, "trunc");
        int flood = !strcmp(opt_m, "flood");
        if (!(corpus || big || over || trunc || flood))
            die(RC_USAGE, "-m is corpus, big, over, trunc or flood, not '%s'", opt_m);
        if (seen['n'] && (corpus || flood))
            die(RC_USAGE, "-n does not apply to -m %s", opt_m);
        if (seen['d'] != flood)
            die(RC_USAGE, flood ? "-m flood needs -d SECONDS" : "-d applies only to -m flood");
        if (trunc && !seen['n'])
            die(RC_USAGE, "-m trunc needs -n K");
        if (!seen['n'])
            opt_n = over ? FRAME_MAX + 1 : FRAME_MAX;
        if (opt_n > 0xffffffffLL)
            die(RC_USAGE, "-n: a length must fit the 4-byte header, at most 4294967295");
        if (trunc && (opt_n < 1 || opt_n >= FRAME_HEADER + TRUNC_BODY))
            die(RC_USAGE, "-m trunc -n K: K from 1 to %d, the bytes of a frame of %d",
                FRAME_HEADER + TRUNC_BODY - 1, FRAME_HEADER + TRUNC_BODY);
    }

    resolve_peer();

    deadline = now() + opt_t;
    c->run();
    return RC_OK;
}
