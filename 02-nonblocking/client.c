/*
 * 02-nonblocking/client.c: the notes' client, three messages a second apart.
 *
 * Teaches: how to see the 02 server's flaw from outside (notes 000, step 9).
 * The client connects once and sends hello, python and hfhhf on the same
 * connection, pausing between them, and waits for each reply with a deadline.
 * Against 02's server only the first is answered; against 03's all three.
 *
 * Build and run:  cc -std=c11 -o client client.c
 *                 ./client -p 8080            prints  hello -> HELLO
 *                                                     python -> no reply ...
 *                 ./client -p 8080 -g 100     the same with 0.1 s pauses
 *
 * Look at: read_line(), which waits in poll() with a deadline before each
 * recv(), so a reply that never comes costs a second, not forever.
 * Exit status: 0 when every message was answered, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
#define REPLY_WAIT_MS 1000      /* how long a reply may take before it counts as lost */
#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */

static const char *prog;                /* argv[0], for messages */
static const char *server_addr = "127.0.0.1";
static int server_port = 8080;
static long gap_ms = 1000;              /* -g: pause between messages, as the notes' sleep(1) */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-g MILLIS] [-h]\n"
                "  sends hello, python and hfhhf on one connection, reports each reply\n"
                "  -a ADDR   server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   server port (default 8080)\n"
                "  -g MILLIS pause between messages (default 1000)\n"
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
    while ((c = getopt(argc, argv, "a:p:g:h")) != -1) {
        switch (c) {
        case 'a': server_addr = optarg; break;
        case 'p': server_port = (int)number(c, optarg, 65535); break;
        case 'g': gap_ms = number(c, optarg, 60000); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
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

/* Read one line, newline included, into line, waiting at most REPLY_WAIT_MS.
 * A reply may arrive in pieces (TCP is a stream), so recv() until the newline.
 * Returns its length, 0 if the server closed or did not answer in time, -1 on
 * error (ECONNRESET: the 02 server closed with our next message unread). */
static ssize_t read_line(int fd, char *line, size_t size)
{
    double deadline = now() + REPLY_WAIT_MS / 1000.0;
    size_t got = 0;
    while (got == 0 || line[got - 1] != '\n') {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)((deadline - now()) * 1000);
        if (got == size - 1)
            return -1;      /* longer than we sent: not our reply */
        if (left <= 0)
            return 0;       /* no reply in time: lost */
        int ready = poll(&pfd, 1, left);
        if (ready == -1 && errno != EINTR)
            die("poll");
        if (ready <= 0)
            continue;       /* timeout or EINTR: the loop checks the deadline */
        ssize_t n = recv(fd, line + got, size - 1 - got, 0);
        if (n == 0)
            return 0;       /* EOF: the server closed, nothing more will come */
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    line[got] = '\0';
    return (ssize_t)got;
}

int main(int argc, char **argv)
{
    static const char *msgs[] = { "hello", "python", "hfhhf" };   /* the notes' three */
    char line[LINE_MAX_BYTES], want[LINE_MAX_BYTES];
    int answered = 0, alive = 1;

    parse_options(argc, argv);
    /* A send() to a server that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal");

    int fd = connect_to();
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(msgs[i]);
        ssize_t n = 0;
        if (i > 0)
            sleep_ms(gap_ms);
        snprintf(want, sizeof want, "%s\n", msgs[i]);
        /* After EOF or a reset the connection is dead: what we did not send is lost too. */
        if (alive && send_all(fd, want, len + 1) == 0)
            n = read_line(fd, line, sizeof line);
        want[len] = '\0';
        upper(want, len);
        if (n > 0) {
            line[n - 1] = '\0';
            int ok = strcmp(line, want) == 0;
            printf("%s -> %s%s\n", msgs[i], line, ok ? "" : "  (mismatch)");
            answered += ok;
        } else {
            printf("%s -> no reply\n", msgs[i]);
            alive = 0;
        }
    }
    printf("%d of 3 answered\n", answered);
    if (close(fd) == -1)
        die("close");
    return answered == 3 ? 0 : 1;
}
