/*
 * 08-coroutines/client.c: many clients, one coroutine each, in one thread.
 *
 * Teaches: the notes' 500-thread client (003), with coroutines for threads.
 * Each client is straight blocking-style code: connect, send a line, read the
 * reply, again. Compare 06-epoll/client.c, which does the same with a state
 * machine per connection and one epoll loop: here the hub (co.c) runs that
 * loop, and each client's state is simply where its coroutine stands.
 *
 * Build and run:  make, then ./client -p 8080 -n 500 -m 3
 *
 * Look at: talk(), and main(), which spawns one coroutine per client and joins
 * them all. Pitfall: each connection is a descriptor: raise ulimit -n first.
 * Exit status: 0 when every client got every reply, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "co.h"

#define LINE_BYTES 32           /* "hello 1000000\n" and its reply fit */
#define MAX_IN_FLIGHT 256       /* clients connecting at once: more overflow the server's
                                 * accept queue and cost a 1 s retry */

struct client {                 /* one client's outcome, printed in order at the end */
    long k;                     /* 1, 2, ...: its line is "hello k" */
    int fd;                     /* kept open until every client is done: N at once */
    char out[LINE_BYTES], in[LINE_BYTES];
    int failed;                 /* 0 if served */
    int err;                    /* why it failed: an errno value, or 0 and why says */
    const char *why;
};

static const char *prog;                /* argv[0], for messages */
static const char *server_addr = "127.0.0.1";
static int server_port = 8080;
static long nclients = 500;             /* -n: the notes' 500 threads */
static long nmessages = 1;              /* -m: lines each client sends */
static int verbose;                     /* -v: print every reply */
static struct sockaddr_storage server;  /* -a and -p, resolved once */
static socklen_t server_len;
static int connecting;                  /* clients spawned whose connect has not ended */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-n CLIENTS] [-m MESSAGES] [-v] [-h]\n"
                "  runs CLIENTS coroutines at once; each sends MESSAGES lines, one at a time\n"
                "  -a ADDR   server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   server port (default 8080)\n"
                "  -n N      clients (default 500; raise ulimit -n to match)\n"
                "  -m M      lines each client sends, waiting for each reply (default 1)\n"
                "  -v        print every client's last reply, in order\n"
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

/* Resolve -a once, before the first coroutine starts: getaddrinfo() may block on DNS,
 * and a call that blocks inside a coroutine stalls every coroutine of the thread
 * (gevent hands it to a thread pool for that reason). As in 04-07's clients, every
 * client uses the first address, the one getaddrinfo ranks best. */
static void resolve_server(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res;
    char port[8];
    int err;

    snprintf(port, sizeof port, "%d", server_port);
    if ((err = getaddrinfo(server_addr, port, &hints, &res)) != 0) {
        fprintf(stderr, "%s: -a '%s': %s\n", prog, server_addr,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
        usage(stderr);
        exit(2);
    }
    memcpy(&server, res->ai_addr, res->ai_addrlen);
    server_len = res->ai_addrlen;
    freeaddrinfo(res);
}

static void parse_options(int argc, char **argv)
{
    int c;
    prog = argv[0];
    while ((c = getopt(argc, argv, "a:p:n:m:vh")) != -1) {
        switch (c) {
        case 'a': server_addr = optarg; break;
        case 'p': server_port = (int)number(c, optarg, 65535); break;
        case 'n': nclients = number(c, optarg, 1000000); break;
        case 'm': nmessages = number(c, optarg, 1000000); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || nclients == 0 || nmessages == 0) {
        usage(stderr);
        exit(2);
    }
    resolve_server();
}

/* The protocol: ASCII a-z become A-Z, every other byte passes unchanged. */
static void upper(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
}

/* co_send() may take only part of the buffer (a short write): loop until all is sent. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = co_send(fd, buf, len, 0);
        if (n == -1)
            return -1;      /* EPIPE or ECONNRESET: the server is gone */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Record why a client failed; returns -1. The errno value is kept, not
 * strerror()'s string: its buffer may be reused, and reasons are printed at the end. */
static int fail(struct client *c, int err, const char *why)
{
    c->failed = 1;
    c->err = err;
    c->why = why;
    return -1;
}

/* Read one reply line into c->in; the server may send it in pieces. Returns 0, or
 * -1 when the client failed. */
static int read_line(struct client *c)
{
    size_t got = 0;
    while (got == 0 || c->in[got - 1] != '\n') {
        if (got == LINE_BYTES - 1)
            return fail(c, 0, "reply too long");
        ssize_t n = co_recv(c->fd, c->in + got, LINE_BYTES - 1 - got, 0);
        if (n == 0)
            return fail(c, 0, "closed by the server");
        if (n == -1)
            return fail(c, errno, NULL);    /* ECONNRESET and the like */
        got += (size_t)n;
    }
    c->in[got] = '\0';
    return 0;
}

/* One client, as the notes' thread: connect, then send and read, nmessages times. */
static void *talk(void *arg)
{
    struct client *c = arg;
    char want[LINE_BYTES];

    if ((c->fd = socket(server.ss_family, SOCK_STREAM, 0)) == -1) {
        connecting--;
        fail(c, errno, NULL);           /* EMFILE: raise ulimit -n */
        return NULL;
    }
    int connected = co_connect(c->fd, (struct sockaddr *)&server, server_len);
    connecting--;
    if (connected == -1) {
        fail(c, errno, NULL);           /* ECONNREFUSED... */
        return NULL;
    }
    snprintf(c->out, sizeof c->out, "hello %ld\n", c->k);
    for (long m = 0; m < nmessages && !c->failed; m++) {
        if (send_all(c->fd, c->out, strlen(c->out)) == -1) {
            fail(c, errno, NULL);
        } else if (read_line(c) == 0) {
            strcpy(want, c->out);
            upper(want, strlen(want));
            if (strcmp(c->in, want) != 0)
                fail(c, 0, "wrong reply");
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    struct client *clients = calloc((size_t)nclients, sizeof *clients);
    struct co **cos = calloc((size_t)nclients, sizeof *cos);
    if (clients == NULL || cos == NULL)
        die("calloc");
    for (long i = 0; i < nclients; i++) {
        clients[i].k = i + 1;
        clients[i].fd = -1;
        /* At most MAX_IN_FLIGHT connecting: wait for a turn. The clients run
         * while we sleep, and a millisecond is about what a connect takes. */
        while (connecting >= MAX_IN_FLIGHT)
            if (co_sleep_ms(1) == -1)
                die("co_sleep_ms");
        if ((cos[i] = co_spawn(talk, &clients[i])) == NULL)
            die("co_spawn");
        connecting++;
    }
    /* The clients run while we wait here: joinall returns when the last is done. */
    if (co_joinall(cos, (size_t)nclients, NULL) == -1)
        die("co_joinall");

    long served = 0;
    for (long i = 0; i < nclients; i++) {
        struct client *c = &clients[i];
        if (c->failed)
            printf("hello %ld -> %s\n", c->k, c->err ? strerror(c->err) : c->why);
        else if (verbose)
            printf("%.*s -> %.*s\n", (int)strlen(c->out) - 1, c->out, (int)strlen(c->in) - 1, c->in);
        served += !c->failed;
        /* Every connection stayed open until all were done: N at once. */
        if (c->fd != -1 && co_close(c->fd) == -1)
            die("close");
    }
    printf("%ld of %ld connections served\n", served, nclients);
    free(cos);
    free(clients);
    return served == nclients ? 0 : 1;
}
