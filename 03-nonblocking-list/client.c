/*
 * 03-nonblocking-list/client.c: the notes' 20 clients at once.
 *
 * Teaches: how to show that a server serves clients concurrently (notes 000,
 * step 10: twenty threads, each sends hello and prints the reply). Each thread
 * connects, sends its line and reads the reply; then all wait for each other
 * before closing, so all twenty are connected and served at the same time. An
 * iterative server cannot pass: it would serve the first and starve the rest.
 *
 * Build and run:  cc -std=c11 -pthread -o client client.c
 *                 ./client -p 8080           prints  hello 1 -> HELLO 1 ...
 *                 ./client -p 8080 -m 50 -t  50 lines each, then reply times
 *
 * Look at: worker() and the barrier. Replies are printed in client order, not
 * arrival order, so the output is the same on every run.
 * Exit status: 0 when every reply matched, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
#define REPLY_WAIT_S 10         /* a reply slower than this is a failure, not a hang */

struct client {                 /* one thread's results, printed by main in order */
    int id;
    int ok;                     /* every reply matched */
    char first[LINE_MAX_BYTES]; /* the first reply, or what went wrong */
    double *rtt;                /* seconds from send to full reply, per message */
};

static const char *prog;                /* argv[0], for messages */
static const char *server_addr = "127.0.0.1";
static int server_port = 8080;
static long nclients = 20;              /* -n: the notes' range(20) */
static long nmessages = 1;              /* -m: lines each client sends */
static int show_times;                  /* -t: print reply-time figures */
static pthread_barrier_t all_served;    /* every client got its first reply */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-n CLIENTS] [-m MESSAGES] [-t] [-h]\n"
                "  CLIENTS threads connect at once; each sends MESSAGES lines, one at a time\n"
                "  -a ADDR   server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   server port (default 8080)\n"
                "  -n N      clients (default 20)\n"
                "  -m N      lines per client (default 1)\n"
                "  -t        print the median and slowest reply time\n"
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
    while ((c = getopt(argc, argv, "a:p:n:m:th")) != -1) {
        switch (c) {
        case 'a': server_addr = optarg; break;
        case 'p': server_port = (int)number(c, optarg, 65535); break;
        case 'n': nclients = number(c, optarg, 1000); break;
        case 'm': nmessages = number(c, optarg, 1000000); break;
        case 't': show_times = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || nclients == 0 || nmessages == 0) {
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

/* Connect to server_addr:server_port, or -1 with errno set. A name may stand for
 * several addresses (localhost: ::1 and 127.0.0.1): try each in turn, as UNP's
 * tcp_connect does. */
static int connect_to(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    char port[8];
    int fd = -1, err;

    snprintf(port, sizeof port, "%d", server_port);
    if ((err = getaddrinfo(server_addr, port, &hints, &res)) != 0) {
        fprintf(stderr, "%s: -a '%s': %s\n", prog, server_addr,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
        exit(2);
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) != -1
                && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;        /* close() must not clobber this address's reason */
        if (fd != -1 && close(fd) == -1)
            perror("close");
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd == -1) {
        errno = err;        /* the last address's reason, for the caller's message */
        return -1;
    }
    /* A reply that never comes (an iterative server busy with another client)
     * makes recv() fail with EAGAIN after this long instead of hanging. */
    struct timeval tv = { .tv_sec = REPLY_WAIT_S };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1)
        die("setsockopt");
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
 * 0 if the server closed first, -1 on error. We send one line and wait for its
 * reply, so nothing of a next line can arrive behind the newline. */
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
            return -1;      /* ECONNRESET, or EAGAIN when SO_RCVTIMEO ran out */
        }
        got += (size_t)n;
    }
    line[got] = '\0';
    return (ssize_t)got;
}

/* Send one line, read its reply; 0 if it matched, else -1 with c->first set. */
static int round_trip(struct client *c, int fd, long k)
{
    char line[LINE_MAX_BYTES], want[LINE_MAX_BYTES];
    int len = nmessages == 1 ? snprintf(want, sizeof want, "hello %d\n", c->id)
                             : snprintf(want, sizeof want, "hello %d.%ld\n", c->id, k + 1);
    double sent = now();
    if (send_all(fd, want, (size_t)len) == -1) {
        snprintf(c->first, sizeof c->first, "send: %s", strerror(errno));
        return -1;
    }
    ssize_t n = read_line(fd, line, sizeof line);
    if (n <= 0) {
        snprintf(c->first, sizeof c->first, "%s",
                 n == 0 ? "server closed" : errno == EAGAIN ? "no reply in time" : strerror(errno));
        return -1;
    }
    c->rtt[k] = now() - sent;
    upper(want, (size_t)len);
    if (k == 0 || strcmp(line, want) != 0)
        snprintf(c->first, sizeof c->first, "%.*s", (int)n - 1, line);
    return strcmp(line, want) == 0 ? 0 : -1;
}

static void *worker(void *arg)
{
    struct client *c = arg;
    long k = 0;
    int fd = connect_to();
    if (fd == -1)
        snprintf(c->first, sizeof c->first, "connect: %s", strerror(errno));
    else if (round_trip(c, fd, k++) == 0)
        c->ok = 1;
    /* Everyone waits here, served or failed, so nobody closes before all are served. */
    int err = pthread_barrier_wait(&all_served);
    if (err != 0 && err != PTHREAD_BARRIER_SERIAL_THREAD) {
        fprintf(stderr, "pthread_barrier_wait: %s\n", strerror(err));
        exit(1);
    }
    while (c->ok && k < nmessages)
        if (round_trip(c, fd, k++) == -1)
            c->ok = 0;
    if (fd != -1 && close(fd) == -1)
        die("close");
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and slowest round trip over every reply of every client, in ms. */
static void print_times(struct client *cs)
{
    size_t n = 0;
    double *all = malloc((size_t)(nclients * nmessages) * sizeof *all);
    if (all == NULL)
        die("malloc");
    for (long i = 0; i < nclients; i++)
        for (long k = 0; k < nmessages && cs[i].ok; k++)
            all[n++] = cs[i].rtt[k];
    if (n > 0) {
        qsort(all, n, sizeof *all, by_value);
        printf("%zu replies: median %.3f ms, slowest %.3f ms\n",
               n, all[n / 2] * 1000, all[n - 1] * 1000);
    }
    free(all);
}

int main(int argc, char **argv)
{
    long ok = 0;
    int err;

    parse_options(argc, argv);
    /* A send() to a server that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal");
    struct client *cs = calloc((size_t)nclients, sizeof *cs);
    pthread_t *tids = calloc((size_t)nclients, sizeof *tids);
    if (cs == NULL || tids == NULL)
        die("calloc");
    if ((err = pthread_barrier_init(&all_served, NULL, (unsigned)nclients)) != 0) {
        fprintf(stderr, "pthread_barrier_init: %s\n", strerror(err));
        return 1;
    }
    for (long i = 0; i < nclients; i++) {
        cs[i].id = (int)i + 1;
        if ((cs[i].rtt = calloc((size_t)nmessages, sizeof *cs[i].rtt)) == NULL)
            die("calloc");
        if ((err = pthread_create(&tids[i], NULL, worker, &cs[i])) != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            return 1;   /* the barrier would wait for the missing thread forever */
        }
    }
    for (long i = 0; i < nclients; i++) {
        if ((err = pthread_join(tids[i], NULL)) != 0) {
            fprintf(stderr, "pthread_join: %s\n", strerror(err));
            return 1;
        }
        if (nmessages == 1)
            printf("hello %d -> %s\n", cs[i].id, cs[i].first);
        else
            printf("client %d: %s\n", cs[i].id, cs[i].ok ? "all replies matched" : cs[i].first);
        ok += cs[i].ok;
    }
    printf("%ld of %ld clients served\n", ok, nclients);
    if (show_times)
        print_times(cs);
    for (long i = 0; i < nclients; i++)
        free(cs[i].rtt);
    free(cs);
    free(tids);
    if ((err = pthread_barrier_destroy(&all_served)) != 0)
        fprintf(stderr, "pthread_barrier_destroy: %s\n", strerror(err));
    return ok == nclients ? 0 : 1;
}
