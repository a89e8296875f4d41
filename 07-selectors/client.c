/*
 * 07-selectors/client.c: the notes' Nb class: add requests, each with a callback,
 * then run the loop.
 *
 * Teaches: callback-driven IO (notes 003: Nb.add(url, func) and Nb.run(), the
 * small ancestor of Twisted). nb_add() starts a non-blocking connect and registers
 * the socket for writability; nb_run() is the loop: writable means connected, so
 * send; then wait for readable, collect the reply, and call the request's
 * callback. The selectors library picks the backend (SELECTOR= forces one).
 *
 * Build and run:  cc -std=c11 -o client client.c net.c selectors.c sel-*.c
 *                 ./client -p 8080 -n 100 -v
 *
 * Look at: nb_add(), nb_run() and on_reply(), the callback. Replies arrive in any
 * order; the callback records each, and main() prints them in request order.
 * Exit status: 0 when every request got its reply, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "selectors.h"

#define LINE_BYTES 32           /* "hello 1000000\n" and its reply fit */
#define DEADLINE_S 60           /* the whole run; a slower server is a failure */

struct req {                    /* the notes' Req: a socket and its callback */
    int fd;
    void (*callback)(struct req *r);    /* called once, with the reply or the error */
    size_t sent, got;
    char out[LINE_BYTES], in[LINE_BYTES];
    int err;                    /* why it failed: an errno value, or 0 and why says */
    const char *why;            /* NULL and err 0: it did not fail */
    int ok;                     /* set by the callback */
};

const char *prog;                       /* argv[0], for messages (net.h) */
static const char *server_addr = "127.0.0.1";
static int server_port = 8080;
static struct sockaddr_storage server;  /* -a and -p, resolved once */
static socklen_t server_len;
static long nconns = 100;               /* -n: requests, each on its own connection */
static int verbose;                     /* -v: print every reply */
static struct selector *sel;            /* the loop's selector */
static long pending;                    /* requests whose callback has not run yet */

void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-n REQUESTS] [-v] [-h]\n"
                "  adds REQUESTS (a line each, on its own connection), then runs the loop\n"
                "  -a ADDR   server address: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   server port (default 8080)\n"
                "  -n N      requests (default 100; at most 1000, for the select backend)\n"
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
        case 'n': nconns = number(c, optarg, 1000); break;
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

/* Finish a request: forget its socket and run its callback, the notes' func(body).
 * Keep errno's value, not strerror()'s string: its buffer may be reused by the next
 * call, and the reason is printed only at the end. */
static void finish(struct req *r, int err, const char *why)
{
    r->err = err;
    r->why = why;
    if (sel_unregister(sel, r->fd) == -1)
        die("sel_unregister");
    if (close(r->fd) == -1)
        die("close");
    r->fd = -1;             /* done: main() closes only what is still pending */
    pending--;
    r->callback(r);
}

/* The notes' Nb.add(): a non-blocking connect, registered for writability, which
 * comes when the handshake is done (or has failed). */
static void nb_add(struct req *r, long k, void (*callback)(struct req *r))
{
    snprintf(r->out, sizeof r->out, "hello %ld\n", k + 1);
    r->callback = callback;
    if ((r->fd = socket(server.ss_family, SOCK_STREAM, 0)) == -1)
        die("socket");      /* EMFILE: raise ulimit -n */
    set_nonblocking(r->fd);
    if (connect(r->fd, (struct sockaddr *)&server, server_len) == -1 && errno != EINPROGRESS)
        die("connect");
    if (sel_register(sel, r->fd, SEL_WRITE, r) == NULL)
        die("sel_register");    /* ERANGE: the select backend cannot watch this fd */
    pending++;
}

/* Writable: connected (or failed), then send; once all is sent, wait for the reply. */
static void on_writable(struct req *r)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (r->sent == 0) {
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            die("getsockopt");
        if (err != 0) {     /* writable, but because the connect failed */
            finish(r, err, NULL);
            return;
        }
    }
    /* EAGAIN (the buffer filled since) or EINTR: not an error, try next turn. */
    ssize_t n = send(r->fd, r->out + r->sent, strlen(r->out) - r->sent, 0);
    if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        finish(r, errno, NULL);
    else if (n > 0 && (r->sent += (size_t)n) == strlen(r->out) &&
             sel_modify(sel, r->fd, SEL_READ, r) == NULL)
        die("sel_modify");  /* a short write leaves the rest for the next turn */
}

/* Readable: collect the reply, which may come in pieces, up to its length.
 * EAGAIN (a false alarm) or EINTR: not an error, wait for the next readiness. */
static void on_readable(struct req *r)
{
    ssize_t n = recv(r->fd, r->in + r->got, strlen(r->out) - r->got, 0);
    if (n == 0)
        finish(r, 0, "server closed");
    else if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        finish(r, errno, NULL);
    else if (n > 0 && (r->got += (size_t)n) == strlen(r->out))
        finish(r, 0, NULL);
}

/* The notes' Nb.run(): wait, and hand each ready socket to its request. */
static void nb_run(void)
{
    double deadline = now() + DEADLINE_S;
    while (pending > 0) {
        struct sel_event *events;
        int left = (int)((deadline - now()) * 1000);
        if (left <= 0)
            return;         /* the requests still pending report "no reply in time" */
        int ready = sel_select(sel, left, &events);
        if (ready == -1)
            die("sel_select");
        for (int i = 0; i < ready; i++) {
            struct req *r = events[i].key->data;
            if (events[i].mask & SEL_WRITE)
                on_writable(r);
            else if (events[i].mask & SEL_READ)
                on_readable(r);
        }
    }
}

/* The callback of every request here: was the reply the line upper-cased? */
static void on_reply(struct req *r)
{
    char want[LINE_BYTES];
    memcpy(want, r->out, sizeof want);
    upper(want, strlen(want));
    int failed = r->err != 0 || r->why != NULL;
    r->ok = !failed && memcmp(r->in, want, r->got) == 0;
    if (!failed && !r->ok)
        r->why = "wrong reply";
}

int main(int argc, char **argv)
{
    long served = 0;

    parse_options(argc, argv);
    /* A send() to a server that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal");
    struct req *reqs = calloc((size_t)nconns, sizeof *reqs);
    if (reqs == NULL)
        die("calloc");
    if ((sel = sel_open(NULL)) == NULL)
        die("sel_open");
    for (long i = 0; i < nconns; i++)
        nb_add(&reqs[i], i, on_reply);
    nb_run();
    for (long i = 0; i < nconns; i++) {
        struct req *r = &reqs[i];
        if (r->ok && verbose)
            printf("%.*s -> %.*s\n", (int)strlen(r->out) - 1, r->out, (int)r->got - 1, r->in);
        else if (!r->ok)
            printf("%.*s -> %s\n", (int)strlen(r->out) - 1, r->out,
                   r->fd != -1 ? "no reply in time" : r->err ? strerror(r->err) : r->why);
        if (r->fd != -1 && close(r->fd) == -1)
            die("close");
        served += r->ok;
    }
    printf("%ld of %ld requests served\n", served, nconns);
    sel_close(sel);
    free(reqs);
    return served == nconns ? 0 : 1;
}
