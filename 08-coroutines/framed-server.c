/*
 * 08-coroutines/framed-server.c: one coroutine per client, framed messages.
 *
 * Teaches: why coroutines (notes 003, 002). A message is a 4-byte length in
 * network byte order (0 to 1 MiB), then that many bytes; the reply is the same
 * header and the body upper-cased. A message may arrive in pieces: a callback
 * server (07's framed-server.c) must keep "how far into this message am I" in
 * a struct between events (stack ripping); a coroutine just calls co_recv()
 * again, and its place is in its local variables, as in a thread (01's
 * framed-server.c). Read it beside server.c: `diff -u server.c framed-server.c`
 * shows the framing and little else.
 *
 * Build and run:  make, then ./framed-server -p 8080
 *                 printf '\0\0\0\5hello' | nc -N 127.0.0.1 8080 | od -c
 *
 * Look at: serve(), recv_all() and echo_body(). The reply streams: its header
 * goes out once the request's is in, then each piece of the body as it comes,
 * so no connection holds a message buffer, and a client that never reads parks
 * only its own coroutine in co_send(). Pitfall: treating one recv() as one
 * message (or one header): TCP is a stream, a header may come a byte at a time.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "co.h"

/* Half a page, on talk()'s stack: with the frames above it and below it (the runtime's,
 * while parked), a connection touches one 4 KiB stack page, not two (README). */
#define BUFSIZE 2048
#define HEADER 4                /* a message's length: 4 bytes, network byte order */
#define FRAME_MAX (1024 * 1024) /* the longest body a client may send */
#define PAUSE_MS 1000           /* while out of descriptors, retry accept this often */
#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */

static const char *prog;                /* argv[0], for messages */
static const char *bind_addr = "127.0.0.1";
static int bind_port = 8080;
static int verbosity = 1;               /* 0 with -q, 2 with -v */
static volatile sig_atomic_t stop;      /* set by SIGINT or SIGTERM */
static unsigned long served;            /* connections accepted */
static unsigned long long echoed;       /* bytes sent back, headers too: no lock */

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
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-q | -v] [-h]\n"
                "  -a ADDR   address to bind: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   port (default 8080; 0 picks a free port)\n"
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
    while ((c = getopt(argc, argv, "a:p:qvh")) != -1) {
        switch (c) {
        case 'a': bind_addr = optarg; break;
        case 'p': bind_port = (int)number(c, optarg, 65535); break;
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
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void install_signals(void)
{
    /* No SA_RESTART: the main coroutine's co_accept() must return EINTR so we see
     * stop. co_sigaction, not sigaction: the handler may run while another
     * coroutine does, and the hub must then wake the parked co_accept(). */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    if (co_sigaction(SIGINT, &sa, NULL) == -1 || co_sigaction(SIGTERM, &sa, NULL) == -1)
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

/* Receive len bytes, whatever pieces they come in: a recv() returns what is there,
 * not a message. Returns len, or fewer if the client's EOF came first, or -1. */
static ssize_t recv_all(int fd, void *buf, size_t len, const char *peer)
{
    size_t got = 0;             /* how far we are: a local, kept while we park */
    while (got < len) {
        ssize_t n = co_recv(fd, (char *)buf + got, len - got, 0);
        if (n == 0)
            break;          /* EOF: the caller knows whether it came between messages */
        if (n == -1) {      /* no EINTR (that is the main coroutine's) nor EAGAIN (we park) */
            if (verbosity >= 2)
                printf("recv %s: %s\n", peer, strerror(errno));   /* e.g. ECONNRESET */
            return -1;
        }
        if (verbosity >= 2)
            printf("read %s %zd bytes\n", peer, n);
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Stream a body of len bytes back upper-cased: each piece as it comes, never asking
 * for more than is owed (what follows is the next header). 0 when done, -1 to close. */
static int echo_body(int fd, const char *peer, uint32_t len)
{
    char buf[BUFSIZE];
    uint32_t owed = len;        /* how far into this message: a local, kept while we park */
    while (owed > 0) {
        ssize_t n = co_recv(fd, buf, owed < sizeof buf ? owed : sizeof buf, 0);
        if (n == 0) {       /* EOF inside a body: a warning, shown even with -q */
            printf("truncated %s: EOF after %lu of %lu body bytes\n", peer,
                   (unsigned long)(len - owed), (unsigned long)len);
            return -1;
        }
        if (n == -1) {
            if (verbosity >= 2)
                printf("recv %s: %s\n", peer, strerror(errno));   /* e.g. ECONNRESET */
            return -1;
        }
        if (verbosity >= 2)
            printf("read %s %zd bytes\n", peer, n);
        upper(buf, (size_t)n);
        if (send_all(fd, buf, (size_t)n) == -1)
            return -1;
        echoed += (unsigned long long)n;    /* no lock: nobody runs while we do */
        if (verbosity >= 2)
            printf("wrote %s %zd bytes\n", peer, n);
        owed -= (uint32_t)n;
    }
    return 0;
}

/* Message after message until the client's EOF between two of them. Other clients
 * have coroutines of their own. */
static void serve(int fd, const char *peer)
{
    unsigned char head[HEADER];
    int one = 1;
    /* A reply goes out in pieces: the header, then the body as it comes. With Nagle's
     * algorithm on, a piece waits for the ACK of the one before, and a client waiting
     * for the whole reply sends none for 40 ms (delayed ACK): off, as in most framed
     * protocols (01's framed-server does the same). If it fails, replies are only slower. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
        perror("setsockopt TCP_NODELAY");
    for (;;) {
        ssize_t n = recv_all(fd, head, sizeof head, peer);
        if (n == 0 || n == -1)
            break;          /* EOF between messages: the normal end; or the client is gone */
        if (n < HEADER) {   /* a warning: shown even with -q */
            printf("truncated %s: EOF after %zd of %d header bytes\n", peer, n, HEADER);
            break;
        }
        uint32_t len;
        memcpy(&len, head, sizeof len);     /* head may not be aligned for a uint32_t */
        len = ntohl(len);
        if (len > FRAME_MAX) {
            printf("refused %s: length %lu over the limit (%d)\n", peer,
                   (unsigned long)len, FRAME_MAX);
            break;
        }
        if (verbosity >= 2)
            printf("message %s %lu bytes\n", peer, (unsigned long)len);
        /* The reply's header at once: the body follows as it arrives. */
        if (send_all(fd, (const char *)head, sizeof head) == -1)
            break;
        echoed += sizeof head;
        if (verbosity >= 2)
            printf("wrote %s %zu bytes\n", peer, sizeof head);
        if (echo_body(fd, peer, len) == -1)
            break;
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
    install_signals();
    int lfd = listen_on();

    int out_of_fds = 0;         /* log EMFILE once per episode */
    while (!stop) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        struct conn *c;
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
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
