/*
 * 06-epoll/client.c: ten thousand connections, one epoll loop.
 *
 * Teaches: epoll on the client side (notes 001 and 003). Each connection is
 * registered once, for writability while it connects and sends, then for
 * readability, and taken out when it is done; epoll_wait() returns only those that
 * are ready, however many are open. Same steps as 04's and 05's clients; only the
 * waiting changed.
 *
 * Build and run:  cc -std=c11 -o client client.c net.c
 *                 ulimit -n 12000; ./client -p 8080 -n 10000
 *
 * Look at: main()'s loop, and watch(), the one epoll_ctl per state change.
 * Pitfall: each connection is a descriptor here too: raise ulimit -n first.
 * Exit status: 0 when every connection got its reply, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define LINE_BYTES 32           /* "hello 1000000\n" and its reply fit */
#define DEADLINE_S 60           /* the whole run; a slower server is a failure */
#define MAX_IN_FLIGHT 256       /* connections between connect and reply at once: more
                                 * overflow the server's accept queue and cost a 1 s retry */
#define MAX_EVENTS 256          /* events taken per epoll_wait() */

enum state { IDLE, CONNECTING, SENDING, READING, DONE, FAILED };

struct req {                    /* one connection's progress, printed in order at the end */
    int fd;
    enum state state;
    size_t sent, got;
    char out[LINE_BYTES], in[LINE_BYTES];
    int err;                    /* why it FAILED: an errno value, or 0 and why says */
    const char *why;
    uint32_t events;            /* what it is registered for in epoll; 0: not yet */
};

const char *prog;                       /* argv[0], for messages (net.h) */
static const char *server_addr = "127.0.0.1";
static int server_port = 8080;
static struct sockaddr_storage server;  /* -a and -p, resolved once */
static socklen_t server_len;
static long nconns = 10000;             /* -n: connections: the C10K */
static int epfd;                        /* the epoll instance */
static int verbose;                     /* -v: print every reply */

void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-n CONNECTIONS] [-v] [-h]\n"
                "  opens CONNECTIONS at once, sends a line on each, waits for every reply\n"
                "  -a ADDR   server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   server port (default 8080)\n"
                "  -n N      connections (default 10000; raise ulimit -n to match)\n"
                "  -v        print every reply, in connection order\n"
                "  -h        this help\n", prog);
}

/* Resolve -a once, before the first connection. The blocking clients (01-03) try a
 * name's addresses in turn; here the connections open side by side without waiting,
 * and falling back to a next address would be one more state for each of them, so
 * every connection uses the first address, the one getaddrinfo ranks best. */
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
    while ((c = getopt(argc, argv, "a:p:n:vh")) != -1) {
        switch (c) {
        case 'a': server_addr = optarg; break;
        case 'p': server_port = (int)number(c, optarg, 65535); break;
        case 'n': nconns = number(c, optarg, 1000000); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || nconns == 0) {
        usage(stderr);
        exit(2);
    }
    resolve_server();
}

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        die("clock_gettime");
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keep errno's value, not strerror()'s string: its buffer may be reused by the
 * next call, and the reason is printed only at the end. */
static void fail(struct req *r, int err, const char *why)
{
    r->state = FAILED;
    r->err = err;
    r->why = why;
}

/* What failed for want of descriptors: say so, and what limit -n needs. Every
 * connection stays open until all are answered, so -n N takes N descriptors, plus
 * stdin, stdout and stderr. */
static void out_of_fds(const char *what)
{
    int err = errno;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == -1)
        die("getrlimit");
    fprintf(stderr, "%s: %s: %s: %ld connections need more descriptors than ulimit -n "
                    "allows (%llu): raise it first, e.g. ulimit -n %ld%s\n",
            prog, what, strerror(err), nconns, (unsigned long long)lim.rlim_cur, nconns + 16,
            lim.rlim_max != RLIM_INFINITY && lim.rlim_max < (rlim_t)nconns + 16
                ? " (past the hard limit, ulimit -Hn, which only root can raise)" : "");
    exit(1);
}

/* Start a non-blocking connect: it returns at once, usually with EINPROGRESS,
 * and the socket becomes writable when the handshake is done (notes 003). */
static void start_connect(struct req *r, long k)
{
    snprintf(r->out, sizeof r->out, "hello %ld\n", k + 1);
    if ((r->fd = socket(server.ss_family, SOCK_STREAM, 0)) == -1) {
        if (errno == EMFILE)
            out_of_fds("socket");
        die("socket");
    }
    set_nonblocking(r->fd);
    r->state = CONNECTING;
    if (connect(r->fd, (struct sockaddr *)&server, server_len) == 0)
        r->state = SENDING; /* on loopback it may finish at once */
    else if (errno != EINPROGRESS)
        fail(r, errno, NULL);
}

/* Move one connection on as far as it goes without blocking. */
static void step(struct req *r, int readable, int writable)
{
    if (r->state == CONNECTING && writable) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            die("getsockopt");
        if (err != 0) {     /* writable, but because the connect failed */
            fail(r, err, NULL);
            return;
        }
        r->state = SENDING;
    }
    if (r->state == SENDING && writable) {
        /* EAGAIN (the buffer filled since) or EINTR: not an error, try next time. */
        ssize_t n = send(r->fd, r->out + r->sent, strlen(r->out) - r->sent, 0);
        if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail(r, errno, NULL);
        else if (n > 0 && (r->sent += (size_t)n) == strlen(r->out))
            r->state = READING;     /* a short write leaves the rest for next time */
    }
    if (r->state == READING && readable) {
        /* Read no further than the reply's length: TCP may hand it over in pieces.
         * EAGAIN (a false alarm) or EINTR: not an error, wait for the next readiness. */
        ssize_t n = recv(r->fd, r->in + r->got, strlen(r->out) - r->got, 0);
        if (n == 0)
            fail(r, 0, "server closed");
        else if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail(r, errno, NULL);
        else if (n > 0 && (r->got += (size_t)n) == strlen(r->out)) {
            char want[LINE_BYTES];
            memcpy(want, r->out, sizeof want);
            upper(want, strlen(want));
            if (memcmp(r->in, want, r->got) == 0)
                r->state = DONE;
            else
                fail(r, 0, "wrong reply");
        }
    }
}

/* Register for what the connection's state waits for; epoll_ctl only on a change.
 * data.u64 carries its index, so an event leads straight to its request. */
static void watch(struct req *r, long i)
{
    uint32_t want = r->state == CONNECTING || r->state == SENDING ? EPOLLOUT
                  : r->state == READING ? EPOLLIN : 0;
    if (want == r->events)
        return;
    if (want == 0) {
        /* DONE or FAILED: the connection stays open, but out of epoll. Registered,
         * it would be reported for ever once the server closes it (EOF is readable,
         * and an error comes even with no events asked), and the loop would spin. */
        if (epoll_ctl(epfd, EPOLL_CTL_DEL, r->fd, NULL) == -1)
            die("epoll_ctl");
        r->events = 0;
        return;
    }
    struct epoll_event ev = { .events = want, .data.u64 = (uint64_t)i };
    if (epoll_ctl(epfd, r->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, r->fd, &ev) == -1)
        die("epoll_ctl");
    r->events = want;
}

int main(int argc, char **argv)
{
    long started = 0, finished = 0, served = 0;

    parse_options(argc, argv);
    /* A send() to a server that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal");
    struct req *reqs = calloc((size_t)nconns, sizeof *reqs);
    if (reqs == NULL)
        die("calloc");
    if ((epfd = epoll_create1(0)) == -1)
        die("epoll_create1");
    double deadline = now() + DEADLINE_S;

    while (finished < nconns) {
        struct epoll_event events[MAX_EVENTS];
        /* Start connects while few are in flight; count the finished ones. */
        int in_flight = 0;
        finished = 0;
        for (long i = 0; i < started; i++) {
            enum state st = reqs[i].state;
            in_flight += st == CONNECTING || st == SENDING || st == READING;
            finished += st == DONE || st == FAILED;
        }
        while (started < nconns && in_flight < MAX_IN_FLIGHT) {
            start_connect(&reqs[started], started);
            watch(&reqs[started], started);
            in_flight += reqs[started].state != FAILED;
            started++;
        }
        if (finished == nconns)
            break;
        double left = deadline - now();
        if (left <= 0)
            break;
        int ready = epoll_wait(epfd, events, MAX_EVENTS, (int)(left * 1000) + 1);
        if (ready == -1 && errno != EINTR)
            die("epoll_wait");  /* EINTR: the next turn works out the time left */
        for (int k = 0; k < ready; k++) {
            long i = (long)events[k].data.u64;
            uint32_t ev = events[k].events;
            /* An error or hang-up wakes both directions: the next call reports it. */
            if (ev & (EPOLLERR | EPOLLHUP))
                ev |= EPOLLIN | EPOLLOUT;
            step(&reqs[i], (ev & EPOLLIN) != 0, (ev & EPOLLOUT) != 0);
            watch(&reqs[i], i);
        }
    }
    /* Every connection stayed open until all were answered: N at once. */
    for (long i = 0; i < nconns; i++) {
        struct req *r = &reqs[i];
        if (verbose && r->state == DONE)
            printf("%.*s -> %.*s\n", (int)strlen(r->out) - 1, r->out, (int)r->got - 1, r->in);
        else if (r->state != DONE)
            printf("%.*s -> %s\n", (int)strlen(r->out) - 1, r->out,
                   r->state == FAILED ? (r->err ? strerror(r->err) : r->why)
                   : r->state == IDLE ? "never started" : "no reply in time");
        served += r->state == DONE;
        if (r->state != IDLE && close(r->fd) == -1)
            die("close");
    }
    printf("%ld of %ld connections served\n", served, nconns);
    free(reqs);
    if (close(epfd) == -1)
        die("close");
    return served == nconns ? 0 : 1;
}
