/*
 * 08-coroutines/server.c: one coroutine per client (gevent's spawn(talk, conn)).
 *
 * Teaches: coroutines (notes 003). Read it beside 01-blocking/threads-server.c:
 * the same straight code, a thread per client became a coroutine per client,
 * and accept/recv/send became co_accept/co_recv/co_send. Those look blocking,
 * but when the kernel says EAGAIN they park this coroutine and the hub (co.c)
 * runs another; one thread serves everyone, over epoll, like 06-epoll. The
 * code reads like threads and costs like an event loop: a few KiB of stack per
 * client, no lock (nothing runs at the same time), a switch of a few ns.
 * One thread is one core: -w N forks N workers, each with its own hub and
 * coroutines (workers.c, 07's file; ACCEPT says how they share the port), the
 * notes' "several processes, coroutines in each".
 *
 * Build and run:  make (the runtime is co.c and ctx.c), then ./server -p 8080 [-w 2]
 *                 ulimit -n 12000; ./client -p 8080 -n 10000
 *
 * Look at: spawn() and serve(). Backpressure costs no code: a client that never
 * reads fills its socket, our co_send() parks, and a parked coroutine does not
 * read; the others go on. Pitfall: a coroutine that never parks (a long loop
 * without IO) stops everyone: there is no preemption. The runtime also yields
 * after 16 IO calls in a row that did not have to wait, for the same reason.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "co.h"
#include "workers.h"

/* Half a page, on talk()'s stack: with the frames above it and below it (the runtime's,
 * while parked), a connection touches one 4 KiB stack page, not two (README). */
#define BUFSIZE 2048
#define PAUSE_MS 1000           /* while out of descriptors, retry accept this often */
#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */

static const char *prog;                /* argv[0], for messages */
static const char *bind_addr = "127.0.0.1";
static int bind_port = 8080;
static int verbosity = 1;               /* 0 with -q, 2 with -v */
static volatile sig_atomic_t stop;      /* set by SIGINT or SIGTERM */
static unsigned long served;            /* connections accepted */
static unsigned long long echoed;       /* bytes sent back, by every coroutine: no lock */
static long nworkers;                   /* -w: worker processes (0: serve here) */

struct conn {           /* what a new coroutine needs to know, owned by it */
    int fd;
    char peer[PEER_MAX];
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-w N] [-q | -v] [-h]\n"
                "  -a ADDR   address to bind: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   port (default 8080; 0 picks a free port)\n"
                "  -w N      N worker processes, each with its hub, sharing the port as ACCEPT says\n"
                "  -q        quiet: log only the start line, warnings and the shutdown summary\n"
                "  -v        verbose: also log each read and write\n"
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
    while ((c = getopt(argc, argv, "a:p:w:qvh")) != -1) {
        switch (c) {
        case 'a': bind_addr = optarg; break;
        case 'p': bind_port = (int)number(c, optarg, 65535); break;
        case 'w': nworkers = number(c, optarg, MAX_WORKERS); break;
        case 'q': verbosity = 0; break;
        case 'v': verbosity = 2; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    workers_check(prog, nworkers, NULL);    /* -w: ACCEPT (both hubs allow all three) */
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* act: co_sigaction, or sigaction in a -w parent, which starts no hub (see main). */
static void install_signals(int (*act)(int, const struct sigaction *, struct sigaction *))
{
    /* No SA_RESTART: the main coroutine's co_accept() must return EINTR so we see
     * stop. co_sigaction, not sigaction: the handler may run while another
     * coroutine does, and the hub must then wake the parked co_accept(). */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    if (act(SIGINT, &sa, NULL) == -1 || act(SIGTERM, &sa, NULL) == -1)
        die("sigaction");
    /* A send() to a peer that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        die("sigaction");
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

/* Bind and listen on bind_addr:bind_port; print the first line with the real port. */
static int listen_on(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char port[8], name[PEER_MAX];
    const char *what = "bind";   /* the call that failed, for the message */
    int fd = -1, one = 1, err;

    snprintf(port, sizeof port, "%d", bind_port);
    if ((err = getaddrinfo(bind_addr, port, &hints, &res)) != 0) {
        fprintf(stderr, "%s: -a '%s': %s\n", prog, bind_addr,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
        usage(stderr);
        exit(2);
    }
    /* A name may stand for several addresses (localhost: ::1 and 127.0.0.1): bind the
     * first that works, as UNP's tcp_listen does. On Linux an IPv6 socket bound to ::
     * also takes IPv4 clients (IPV6_V6ONLY is off by default); we keep that default. */
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        what = "socket";        /* fails with EAFNOSUPPORT for IPv6 on a kernel without it */
        if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) != -1) {
            /* Lets a restarted server bind while old connections sit in TIME_WAIT. */
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1)
                die("setsockopt");
            what = "bind";
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
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
    if (listen(fd, SOMAXCONN) == -1)
        die("listen");
    if (getsockname(fd, (struct sockaddr *)&addr, &len) == -1)
        die("getsockname");
    peer_name((struct sockaddr *)&addr, len, name, sizeof name);
    printf("listening on %s\n", name);
    return fd;
}

/* The protocol: ASCII a-z become A-Z, every other byte passes unchanged. */
static void upper(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
}

/* send() may take only part of the buffer (a short write): loop until all is sent.
 * While the client does not read, co_send() parks us: we stop reading it too. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = co_send(fd, buf, len, 0);
        if (n == -1)
            return -1;      /* EPIPE or ECONNRESET: the peer is gone */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Echo upper-cased until the client's EOF. Other clients have coroutines of their own. */
static void serve(int fd, const char *peer)
{
    char buf[BUFSIZE];
    for (;;) {
        ssize_t n = co_recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            break;          /* EOF: the client shut its sending side; we owe nothing more */
        if (n == -1) {
            if (verbosity >= 2)
                printf("recv %s: %s\n", peer, strerror(errno));   /* e.g. ECONNRESET */
            break;
        }
        if (verbosity >= 2)
            printf("read %s %zd bytes\n", peer, n);
        upper(buf, (size_t)n);
        if (send_all(fd, buf, (size_t)n) == -1)
            break;
        echoed += (unsigned long long)n;    /* no lock: nobody runs while we do */
        workers_publish(served, echoed);    /* -w: at once, for a worker killed asleep */
        if (verbosity >= 2)
            printf("wrote %s %zd bytes\n", peer, n);
    }
}

static void *talk(void *arg)
{
    struct conn *c = arg;
    serve(c->fd, c->peer);
    if (co_close(c->fd) == -1)
        perror("close");
    if (verbosity >= 1)
        printf("closed %s\n", c->peer);
    free(c);
    return NULL;
}

/* Start a coroutine for the connection; if none can be had, close it and go on. */
static void spawn(struct conn *c)
{
    struct co *co = co_spawn(talk, c);
    if (co == NULL) {
        /* ENOMEM: no memory for its stack. That costs this client, not the server. */
        perror("co_spawn");
        if (co_close(c->fd) == -1)
            perror("close");
        if (verbosity >= 1)
            printf("closed %s\n", c->peer);
        free(c);
    } else if (co_detach(co) == -1) {   /* nobody joins: it frees itself at the end */
        die("co_detach");
    }
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    /* Line-buffered even into a pipe or file: tests wait for each log line. */
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0)
        die("setvbuf");
    install_signals(nworkers > 0 ? sigaction : co_sigaction);
    int lfd = listen_on();
    /* -w: fork before the runtime starts (co_sigaction starts it), so that each
     * worker makes its own hub; the parent stays in run_workers() (workers.c). */
    if (nworkers > 0) {
        (void)run_workers(nworkers, &lfd, &stop);
        install_signals(co_sigaction);
        if (workers_exclusive() && co_exclusive(lfd) == -1)
            die("co_exclusive");
    }

    int out_of_fds = 0;         /* log EMFILE once per episode */
    while (!stop) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        struct conn *c;
        workers_publish(served, echoed);        /* -w: what we did, where the parent reads it */
        workers_missed(co_accept_misses());     /* -w: woken for a client another worker took */
        int fd = co_accept(lfd, (struct sockaddr *)&addr, &len);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;   /* a signal (the loop checks stop), or the client left first */
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the connection waits in the backlog; retrying at
                 * once would spin. The others go on while we sleep; a signal
                 * (EINTR) cuts the sleep short, which is what a stop wants. */
                if (!out_of_fds)    /* a warning: shown even with -q */
                    printf("accept: %s: pausing until a descriptor frees up\n", strerror(errno));
                out_of_fds = 1;
                if (co_sleep_ms(PAUSE_MS) == -1 && errno != EINTR)
                    die("co_sleep_ms");
                continue;
            }
            die("accept");
        }
        if (out_of_fds)
            printf("accepting again\n");
        out_of_fds = 0;
        served++;
        if ((c = malloc(sizeof *c)) == NULL)
            die("malloc");
        c->fd = fd;
        peer_name((struct sockaddr *)&addr, len, c->peer, sizeof c->peer);
        if (verbosity >= 1)
            printf("connected %s\n", c->peer);
        spawn(c);
    }
    if (co_close(lfd) == -1)
        perror("close");
    /* Returning from main ends every coroutine; the kernel closes their connections. */
    workers_missed(co_accept_misses());
    if (workers_publish(served, echoed))    /* a worker: the parent prints the summary */
        return 0;
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
