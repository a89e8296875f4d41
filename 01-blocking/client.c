/*
 * 01-blocking/client.c: a blocking client, one line at a time.
 *
 * Teaches: the client half of the socket API (socket, connect, send, recv) and
 * the notes' sticky-packet lesson: TCP is a byte stream, so the client reads
 * until the newline that ends its reply, never assuming one recv() is one
 * message. Notes 004 (the client), 003 (one request after another).
 *
 * Build and run:  cc -std=c11 -o client client.c
 *                 ./client -p 8080 hello world      prints  hello -> HELLO ...
 *                 ./client -p 8080 -f hello world   the same, framed (./framed-server)
 *                 ./client -p 8080 -d 1000 &  ./client -p 8080 -w
 *                     (the second client's first reply waits for the first client)
 *
 * Look at: read_line(), which loops on recv() until it has a whole line; and
 * naive() (-N), which takes one recv() for one reply, as the notes' first
 * version does, and shows what that gets wrong: replies merged, a reply split.
 * -f speaks framed-server.c's protocol, the notes' other cure: each message
 * behind a 4-byte length (network byte order), each reply read with
 * read_exact(): the 4 bytes of its header, then exactly that many.
 * -N -f: the length prefix is there, but one recv() is still taken as one
 * reply: a prefix helps only the reader that uses it.
 * Exit status: 0 when every reply matched, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define NAIVE_RECV 1024         /* -N reads as the notes do: conn.recv(1024) */
#define NAIVE_PAUSE_MS 200      /* -N: busy elsewhere this long before reading */
#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */
#define HEADER 4                /* -f: a message's length, 4 bytes, network byte order */

static const char *prog;                /* argv[0], for messages */
static const char *server_addr = "127.0.0.1";
static int server_port = 8080;
static long hold_ms;                    /* -d: stay connected this long at the end */
static int show_wait;                   /* -w: print how long the first reply took */
static int naive_mode;                  /* -N: one recv() taken as one reply */
static int framed;                      /* -f: length-prefixed messages, not lines */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-d MILLIS] [-w] [-N] [-f] [-h] [MESSAGE...]\n"
                "  sends each MESSAGE (default: hello world) as a line, prints each reply\n"
                "  -a ADDR   server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   server port (default 8080)\n"
                "  -d MILLIS stay connected this long after the last reply\n"
                "  -w        print how long the first reply took, connect included\n"
                "  -N        naive: send every message, then take one recv() as one reply\n"
                "  -f        framed: each message behind its 4-byte length, for framed-server\n"
                "  -h        this help\n", prog);
}

/* A whole number from 0 to max, or usage and exit 2: "-p 70000" and "-p abc" are errors. */
static long number(int opt, const char *arg, long max)
{
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || n < 0 || n > max) {
        fprintf(stderr, "%s: -%c wants a number from 0 to %ld, not '%s'\n", prog, opt, max, arg);
        usage(stderr);
        exit(2);
    }
    return n;
}

static void parse_options(int argc, char **argv)
{
    int c;
    prog = argv[0];
    while ((c = getopt(argc, argv, "a:p:d:wNfh")) != -1) {
        switch (c) {
        case 'a': server_addr = optarg; break;
        case 'p': server_port = (int)number(c, optarg, 65535); break;
        case 'd': hold_ms = number(c, optarg, 3600000); break;
        case 'w': show_wait = 1; break;
        case 'N': naive_mode = 1; break;
        case 'f': framed = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
}

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die("clock_gettime");
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;           /* a signal cut the pause short: sleep the rest */
}

/* An address as log lines and messages show it: "host:port", IPv6 "[host]:port" (a URL's form). */
static void peer_name(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN], port[8];   /* a longer name fails: "?" */
    if (getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, size, "?");
    else if (sa->sa_family == AF_INET6)
        snprintf(out, size, "[%s]:%s", host, port);
    else
        snprintf(out, size, "%s:%s", host, port);
}

/* Connect to server_addr:server_port. A name may stand for several addresses
 * (localhost: ::1 and 127.0.0.1): try each in turn, as UNP's tcp_connect does. */
static int connect_to(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    char port[8], name[PEER_MAX];
    const char *what = "connect";   /* the call that failed, for the message */
    int fd = -1, err;

    snprintf(port, sizeof port, "%d", server_port);
    if ((err = getaddrinfo(server_addr, port, &hints, &res)) != 0) {
        fprintf(stderr, "%s: -a '%s': %s\n", prog, server_addr,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
        exit(2);
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        what = "socket";        /* fails with EAFNOSUPPORT for IPv6 on a kernel without it */
        if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) != -1) {
            what = "connect";
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
        }
        err = errno;    /* why this address failed: the message if none works */
        peer_name(ai->ai_addr, ai->ai_addrlen, name, sizeof name);
        if (fd != -1 && close(fd) == -1)
            die("close");
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd == -1) {
        fprintf(stderr, "%s %s: %s\n", what, name, strerror(err));
        exit(1);
    }
    return fd;
}

/* The protocol: ASCII a-z become A-Z, every other byte passes unchanged. */
static void upper(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
}

/* send() may take only part of the buffer (a short write): loop until all is sent. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n == -1) {
            if (errno == EINTR)
                continue;   /* interrupted by a signal: try again */
            return -1;      /* EPIPE or ECONNRESET: the server is gone */
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read one line, newline included, into line. A reply may arrive in several
 * pieces (TCP is a stream), so recv() until the newline. Returns its length,
 * 0 if the server closed first, -1 with errno set on error. We send one line and
 * wait for its reply, so nothing of a next line can arrive behind the newline. */
static ssize_t read_line(int fd, char *line, size_t size)
{
    size_t got = 0;
    while (got == 0 || line[got - 1] != '\n') {
        if (got == size - 1) {
            errno = EMSGSIZE;   /* longer than we sent: not our reply. Say so: the */
            return -1;          /* caller prints strerror(errno), stale otherwise */
        }
        ssize_t n = recv(fd, line + got, size - 1 - got, 0);
        if (n == 0)
            return 0;       /* EOF before the whole line */
        if (n == -1) {
            if (errno == EINTR)
                continue;   /* interrupted by a signal: read again */
            return -1;      /* ECONNRESET and friends */
        }
        got += (size_t)n;
    }
    line[got] = '\0';
    return (ssize_t)got;
}

/* -f: exactly len bytes. The length said how many, but they too may arrive in
 * pieces, so recv() until all are in. Returns how many came before an EOF (len
 * if none), -1 with errno set on error. */
static ssize_t read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n == 0)
            break;          /* EOF before all of it */
        if (n == -1) {
            if (errno == EINTR)
                continue;   /* interrupted by a signal: read again */
            return -1;      /* ECONNRESET and friends */
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* -f: one reply, the answer to msg: its 4-byte header, then exactly as many bytes
 * as that says, into line (room for HEADER + strlen(msg)). Returns the length of
 * both. A reply that is not msg's framed answer is an error that says what came. */
static ssize_t read_frame(int fd, const char *msg, char *line)
{
    size_t len = strlen(msg);
    uint32_t be;
    ssize_t n = read_exact(fd, line, HEADER);
    if (n == HEADER) {
        memcpy(&be, line, HEADER);
        if (ntohl(be) != len) {
            /* A plain server upper-cases the stream: a length byte from 97 ('a') to 122
             * ('z') comes back 32 less. */
            fprintf(stderr, "%s: the reply's header says %lu bytes (%02x %02x %02x %02x), not %zu:"
                    " is this a framed server?\n", msg, (unsigned long)ntohl(be),
                    (unsigned char)line[0], (unsigned char)line[1], (unsigned char)line[2],
                    (unsigned char)line[3], len);
            exit(1);
        }
        n = read_exact(fd, line + HEADER, len);
        if (n == (ssize_t)len)
            return HEADER + n;
        if (n != -1)
            fprintf(stderr, "%s: server closed after %zd of %zu body bytes\n", msg, n, len);
    } else if (n != -1) {
        fprintf(stderr, "%s: server closed after %zd of %d header bytes\n", msg, n, HEADER);
    }
    if (n == -1)
        fprintf(stderr, "%s: %s\n", msg, strerror(errno));
    exit(1);
}

/* What goes out for msg, into out: the line and its newline, or (-f) the 4-byte
 * length and the bytes. With reply set, what must come back: the same, a-z upper-cased
 * (not the header: a length byte of 97 is not an 'a'). Returns its length. */
static size_t wire_form(const char *msg, char *out, int reply)
{
    size_t len = strlen(msg), head = framed ? HEADER : 0;
    uint32_t be = htonl((uint32_t)len);     /* network byte order: big-endian */
    if (framed)
        memcpy(out, &be, HEADER);
    else
        out[len] = '\n';
    memcpy(out + head, msg, len);
    if (reply)
        upper(out + head, len);
    return head + len + !framed;
}

/* -N: how many whole replies the bytes of one recv() hold: lines, or (-f) frames
 * whose header and body are both there. */
static int whole_replies(const char *got, size_t n)
{
    int count = 0;
    for (size_t at = 0; at < n; at++) {
        if (!framed) {
            count += got[at] == '\n';
            continue;
        }
        uint32_t be;
        if (n - at < HEADER)
            break;
        memcpy(&be, got + at, HEADER);
        if (ntohl(be) > n - at - HEADER)
            break;
        count++;
        at += HEADER + ntohl(be) - 1;       /* the loop's at++ steps past it */
    }
    return count;
}

/* -N, the sticky-packet lesson (note 002): the messages go out back to back, each
 * in its own send(); then, for each, ONE recv() is taken as its reply. TCP keeps
 * no message boundaries: replies that wait together come out of one recv()
 * merged, the next recv() then finds nothing (SO_RCVTIMEO ends its wait), and a
 * reply longer than the recv() comes out in pieces. Returns how many recv()s
 * held exactly their message's reply. */
static int naive(int fd, char **msgs, int nmsgs)
{
    char got[NAIVE_RECV + 1], want[HEADER + LINE_MAX_BYTES];
    const char *unit = framed ? "whole message" : "whole line";
    int right = 0;
    for (int i = 0; i < nmsgs; i++) {
        if (send_all(fd, want, wire_form(msgs[i], want, 0)) == -1) {
            fprintf(stderr, "send: %s\n", strerror(errno));
            exit(1);
        }
    }
    /* Busy elsewhere for a moment, as a real program would be: by the time we
     * read, every reply is waiting in our socket, and nothing marks where one
     * ends and the next begins. */
    sleep_ms(NAIVE_PAUSE_MS);
    struct timeval limit = { .tv_sec = 1 };     /* a recv() that finds nothing */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == -1)
        die("setsockopt");
    for (int i = 0; i < nmsgs; i++) {
        ssize_t n;
        while ((n = recv(fd, got, NAIVE_RECV, 0)) == -1 && errno == EINTR)
            ;           /* interrupted by a signal: read again */
        if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
            die("recv");        /* ECONNRESET and friends */
        if (n <= 0) {
            printf("recv %d: %s\n", i + 1, n == 0 ? "the server closed" : "nothing within 1 s");
            continue;
        }
        got[n] = '\0';
        int lines = whole_replies(got, (size_t)n);
        size_t len = wire_form(msgs[i], want, 1);
        int ok = (size_t)n == len && memcmp(got, want, len) == 0;
        right += ok;
        printf("recv %d: %zd bytes, %d %s%s%s\n", i + 1, n, lines, unit, lines == 1 ? "" : "s",
               ok ? ": its reply" : lines > 1 ? ": replies merged"
                                  : lines == 0 ? ": part of a reply" : ": not its reply");
    }
    printf("naive: %d of %d replies read right, one recv() each\n", right, nmsgs);
    return right;
}

int main(int argc, char **argv)
{
    static char *defaults[] = { "hello", "world" };
    char line[HEADER + LINE_MAX_BYTES], want[HEADER + LINE_MAX_BYTES];
    int failed = 0;

    parse_options(argc, argv);
    char **msgs = optind < argc ? argv + optind : defaults;
    int nmsgs = optind < argc ? argc - optind : 2;
    /* A send() to a server that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal");

    for (int i = 0; i < nmsgs; i++) {
        if (strlen(msgs[i]) + 2 > LINE_MAX_BYTES || strchr(msgs[i], '\n') != NULL) {
            fprintf(stderr, "%s: a message is one line of at most %d bytes\n",
                    prog, LINE_MAX_BYTES - 2);
            exit(2);
        }
    }

    double start = now();
    int fd = connect_to();
    if (naive_mode) {
        failed = naive(fd, msgs, nmsgs) != nmsgs;
        nmsgs = 0;              /* the framed loop below has nothing left to do */
    }
    for (int i = 0; i < nmsgs; i++) {
        if (send_all(fd, want, wire_form(msgs[i], want, 0)) == -1) {
            fprintf(stderr, "send: %s\n", strerror(errno));
            exit(1);
        }
        ssize_t n = framed ? read_frame(fd, msgs[i], line) : read_line(fd, line, LINE_MAX_BYTES);
        if (n <= 0) {
            fprintf(stderr, "%s: %s\n", msgs[i], n == 0 ? "server closed" : strerror(errno));
            exit(1);
        }
        if (i == 0 && show_wait)
            printf("first reply after %.2f s\n", now() - start);
        size_t wlen = wire_form(msgs[i], want, 1);     /* what the reply must be */
        int ok = (size_t)n == wlen && memcmp(line, want, wlen) == 0;
        line[framed ? n : n - 1] = '\0';               /* drop the newline to print it */
        printf("%s -> %s%s\n", msgs[i], line + (framed ? HEADER : 0), ok ? "" : "  (mismatch)");
        failed |= !ok;
    }
    if (hold_ms > 0)
        sleep_ms(hold_ms);
    if (close(fd) == -1)
        die("close");
    return failed;
}
