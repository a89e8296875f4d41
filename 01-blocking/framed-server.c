/*
 * 01-blocking/framed-server.c: one thread per client, framed messages.
 *
 * Teaches: note 002's cure for sticky packets, the length prefix. A message
 * is a 4-byte unsigned length N in network byte order (0 to FRAME_MAX), then
 * N bytes; the reply is the same header, then the N bytes upper-cased. TCP
 * keeps no boundaries, so the server recv()s until it has the whole header,
 * then until it has the whole body: one recv() is never one message. With a
 * thread per client, "how far into this message am I" is just where serve()
 * is in its loops (07's callbacks must keep it in a struct instead).
 *
 * Build and run:  cc -std=c11 -pthread -o framed-server framed-server.c
 *                 ./framed-server -p 8080, then `./client -p 8080 -f hello world`
 *
 * Look at: serve() and recv_some(): the header read in a loop until complete,
 * the limit checked, then the body streamed in chunks as it comes (no message
 * buffer: a 1 MiB message needs no 1 MiB). The rest is threads-server.c's,
 * unchanged: `diff -u threads-server.c framed-server.c`.
 * Pitfall: trusting the length. A client can say 4 GiB; a server that
 * allocates what the header says, or waits for it, is at the client's mercy.
 * Lengths over FRAME_MAX are refused with a log line and the connection closed.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSIZE 4096
#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */
#define HEADER 4                /* a message's length: 4 bytes, network byte order */
#define FRAME_MAX 1048576u      /* the longest message: 1 MiB */

static const char *prog;                /* argv[0], for messages */
static const char *bind_addr = "127.0.0.1";
static int bind_port = 8080;
static int verbosity = 1;               /* 0 with -q, 2 with -v */
static volatile sig_atomic_t stop;      /* set by SIGINT or SIGTERM */
static volatile sig_atomic_t listen_fd = -1;    /* the handler shuts it down: see on_signal() */
static unsigned long served;            /* connections accepted */
static unsigned long long echoed;       /* bytes sent back, by every thread */
static pthread_mutex_t echoed_lock = PTHREAD_MUTEX_INITIALIZER;

struct conn {           /* what a new thread needs to know, owned by that thread */
    int fd;
    char peer[PEER_MAX];
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* pthread functions return an error number instead of setting errno. */
static void die_with(const char *what, int err)
{
    errno = err;
    die(what);
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

/*
 * Setting stop is not enough. The main loop checks stop, then blocks in accept():
 * a signal that lands between the check and the call sets stop too late for the
 * check, and interrupts nothing, since the call has not begun. The server would
 * sleep in it until the next client. So the handler also shuts the listener
 * down (shutdown() is safe in a handler), which makes accept() fail at once
 * (EINVAL, on Linux), whether it is under way or still to come; the loop then
 * finds stop set. Workers need no such wake-up: they end with the process.
 * main() sets listen_fd before it checks stop, and clears it before close().
 * The handler runs only in the main thread (spawn() keeps the signals from the
 * workers), interrupting main() itself: it finds the listener open, or -1, never
 * a number that close() has freed for another thread's socket to reuse.
 */
static void on_signal(int sig)
{
    int saved = errno;      /* the code we interrupted may be about to read errno */
    (void)sig;
    stop = 1;
    /* Its result does not matter: a second signal finds it shut down already. */
    if (listen_fd != -1)
        (void)shutdown(listen_fd, SHUT_RDWR);
    errno = saved;
}

static void install_signals(void)
{
    /* No SA_RESTART: a call the signal interrupts returns EINTR at once. That alone
     * would lose a signal that comes just before the call: see on_signal(). */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1)
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

/* send() may take only part of the buffer (a short write): loop until all is sent. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n == -1) {
            if (errno == EINTR && !stop)
                continue;   /* interrupted by a signal that is not a stop: try again */
            return -1;      /* EPIPE or ECONNRESET: the peer is gone; or we are stopping */
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Send and count: every byte sent back, headers included, is in the summary. */
static int send_counted(int fd, const char *buf, size_t len, const char *peer)
{
    if (send_all(fd, buf, len) == -1)
        return -1;
    /* Other threads add to it too. (A default mutex cannot fail to lock or
     * unlock when used as here, so these two are not checked.) */
    pthread_mutex_lock(&echoed_lock);
    echoed += len;
    pthread_mutex_unlock(&echoed_lock);
    if (verbosity >= 2)
        printf("wrote %s %zu bytes\n", peer, len);
    return 0;
}

/* One recv() of at most len bytes: how many came, 0 at EOF, -1 when the client is
 * gone or we are stopping. It may return fewer than asked: the caller loops. */
static ssize_t recv_some(int fd, char *buf, size_t len, const char *peer)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n > 0 && verbosity >= 2)
            printf("read %s %zd bytes\n", peer, n);
        if (n >= 0)
            return n;
        if (errno == EINTR && !stop)
            continue;       /* a signal that is not a stop: read again */
        if (errno != EINTR && verbosity >= 2)
            printf("recv %s: %s\n", peer, strerror(errno));   /* e.g. ECONNRESET */
        return -1;
    }
}

/* Serve messages until the client's EOF between two of them, or bad input. Each
 * header is read in a loop until its 4 bytes are in (they may come one at a time),
 * sent back, and the body streamed: read a chunk, upper-case it, send it, until the
 * length is done. Other clients have threads of their own. */
static void serve(int fd, const char *peer)
{
    char buf[BUFSIZE];
    unsigned char head[HEADER];
    int one = 1;
    /* A reply goes out in pieces: the header, then the body as it comes. With Nagle's
     * algorithm on, a piece waits for the ACK of the one before, and a client waiting
     * for the whole reply sends none for 40 ms (delayed ACK): off, as in most framed
     * protocols. If it fails, replies are only slower. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
        perror("setsockopt TCP_NODELAY");
    for (;;) {
        size_t got = 0;
        while (got < HEADER) {
            ssize_t n = recv_some(fd, (char *)head + got, HEADER - got, peer);
            if (n == -1)
                return;
            if (n == 0) {       /* EOF: normal between messages, bad input inside one */
                if (got > 0)
                    printf("truncated %s: EOF after %zu of %d header bytes\n", peer, got, HEADER);
                return;
            }
            got += (size_t)n;
        }
        uint32_t len;
        memcpy(&len, head, HEADER);
        len = ntohl(len);       /* network byte order: big-endian on every machine */
        if (len > FRAME_MAX) {
            /* Shown even with -q: a warning. Closing is the only answer: what follows
             * the header cannot be told apart from the next message's. */
            printf("refused %s: length %lu over the limit (%u)\n", peer, (unsigned long)len,
                   FRAME_MAX);
            return;
        }
        if (verbosity >= 2)
            printf("message %s %lu bytes\n", peer, (unsigned long)len);
        if (send_counted(fd, (const char *)head, HEADER, peer) == -1)
            return;
        for (uint32_t left = len; left > 0;) {
            ssize_t n = recv_some(fd, buf, left < sizeof buf ? left : sizeof buf, peer);
            if (n == -1)
                return;
            if (n == 0) {       /* what was streamed stays sent; the rest never comes */
                printf("truncated %s: EOF after %lu of %lu body bytes\n", peer,
                       (unsigned long)(len - left), (unsigned long)len);
                return;
            }
            upper(buf, (size_t)n);
            if (send_counted(fd, buf, (size_t)n, peer) == -1)
                return;
            left -= (uint32_t)n;
        }
    }
}

static void *serve_thread(void *arg)
{
    struct conn *c = arg;
    serve(c->fd, c->peer);
    if (close(c->fd) == -1)
        perror("close");
    if (verbosity >= 1)
        printf("closed %s\n", c->peer);
    free(c);
    return NULL;
}

/* Start a thread for the connection; if none can be had, close it and go on. */
static void spawn(struct conn *c)
{
    sigset_t stops, old;
    pthread_t tid;
    int err, err2;

    /* A new thread inherits our signal mask: with SIGINT and SIGTERM blocked around
     * its creation, only the main thread takes them (on_signal() relies on it). */
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    if ((err = pthread_sigmask(SIG_BLOCK, &stops, &old)) != 0)
        die_with("pthread_sigmask", err);
    err = pthread_create(&tid, NULL, serve_thread, c);
    if ((err2 = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
        die_with("pthread_sigmask", err2);
    if (err != 0) {
        /* EAGAIN: out of threads or memory. That costs this client, not the server. */
        fprintf(stderr, "pthread_create: %s\n", strerror(err));
        if (close(c->fd) == -1)
            perror("close");
        if (verbosity >= 1)
            printf("closed %s\n", c->peer);
        free(c);
    } else if ((err = pthread_detach(tid)) != 0) {  /* nobody joins: let it clean up */
        die_with("pthread_detach", err);
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
    listen_fd = lfd;        /* before the first check of stop: see on_signal() */

    while (!stop) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        struct conn *c;
        int fd = accept(lfd, (struct sockaddr *)&addr, &len);
        if (fd == -1) {
            if (stop)
                break;      /* the handler shut the listener down (EINVAL), or EINTR */
            if (errno == EINTR || errno == ECONNABORTED)
                continue;   /* a signal that is not a stop, or the client left first */
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the connection waits in the backlog; retrying at
                 * once would spin, so pause until a descriptor may have been freed. */
                perror("accept");
                /* EINTR cuts the pause short, which is what a stop wants. */
                nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
                continue;
            }
            die("accept");
        }
        served++;
        if ((c = malloc(sizeof *c)) == NULL)
            die("malloc");
        c->fd = fd;
        peer_name((struct sockaddr *)&addr, len, c->peer, sizeof c->peer);
        if (verbosity >= 1)
            printf("connected %s\n", c->peer);
        spawn(c);
    }
    listen_fd = -1;
    if (close(lfd) == -1)
        perror("close");
    /* Returning from main ends every thread; the kernel closes their connections. */
    pthread_mutex_lock(&echoed_lock);
    unsigned long long total = echoed;
    pthread_mutex_unlock(&echoed_lock);
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, total);
    return 0;
}
