/*
 * 02-nonblocking/server.c: the notes' first non-blocking server, flaws kept.
 *
 * Teaches: what setblocking(False) does and why it is not enough on its own
 * (notes 000, steps 5-7). The listening socket is non-blocking, so accept()
 * returns EAGAIN at once when nobody is connecting, and the loop simply asks
 * again: it spins at 100% CPU. Each accepted connection is read once, answered
 * and forgotten, so only a client's first message is ever answered.
 *
 * Build and run:  cc -std=c11 -o server server.c && ./server -p 8080
 *                 ./client -p 8080   (sends hello, python, hfhhf a second apart)
 *                 top -p $(pgrep -n server)   (watch the CPU)
 *
 * Look at: set_nonblocking() on the listening socket, the EAGAIN branch in
 * main() that loops straight back to accept(), and serve_once(), a single recv.
 * Pitfall: this stage is wrong on purpose. 03-nonblocking-list fixes the lost
 * messages; 04-select fixes the spinning.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSIZE 4096
#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */

static const char *prog;                /* argv[0], for messages */
static const char *bind_addr = "127.0.0.1";
static int bind_port = 8080;
static int verbosity = 1;               /* 0 with -q, 2 with -v */
static volatile sig_atomic_t stop;      /* set by SIGINT or SIGTERM */
/* The sockets the handler may shut down, or -1: see on_signal(). */
static volatile sig_atomic_t listen_fd = -1, conn_fd = -1;
static unsigned long served;            /* connections accepted */
static unsigned long long echoed;       /* bytes sent back */

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

/*
 * Setting stop is not enough. The loops check stop, then block in accept() or
 * recv(): a signal that lands between the check and the call sets stop too late
 * for the check, and interrupts nothing, since the call has not begun. The
 * server would sleep in it until the next client or byte. So the handler also
 * wakes the call, whether it is under way or still to come: shutdown() (safe in a
 * handler) makes accept() on the listener fail at once (EINVAL, on Linux) and
 * recv() on the connection return 0. The loops then find stop set.
 * main() sets listen_fd and conn_fd before it checks stop, and clears them before
 * close(): the handler interrupts main() itself, so it finds an open socket or
 * -1, never a number that close() has freed for the next socket to reuse.
 * (Here only recv() blocks, the listener being non-blocking; the handler is 01's.)
 */
static void on_signal(int sig)
{
    int saved = errno;      /* the code we interrupted may be about to read errno */
    (void)sig;
    stop = 1;
    /* Their results do not matter: a second signal finds them shut down already. */
    if (listen_fd != -1)
        (void)shutdown(listen_fd, SHUT_RDWR);
    if (conn_fd != -1)
        (void)shutdown(conn_fd, SHUT_RDWR);
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

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl");
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

/* The notes' conn.recv(1024): one read, one reply. Later messages are never read. */
static void serve_once(int fd, const char *peer)
{
    char buf[BUFSIZE];
    ssize_t n;
    /* On Linux the accepted socket does not inherit O_NONBLOCK, so this blocks until
     * the client's first bytes arrive, as conn.recv(1024) does in the notes. */
    while ((n = recv(fd, buf, sizeof buf, 0)) == -1 && errno == EINTR && !stop)
        ;               /* a signal that is not a stop: read again */
    if (n <= 0) {       /* EOF before any data, ECONNRESET, or we are stopping */
        if (n == -1 && errno != EINTR && verbosity >= 2)
            printf("recv %s: %s\n", peer, strerror(errno));
        return;
    }
    if (verbosity >= 2)
        printf("read %s %zd bytes\n", peer, n);
    upper(buf, (size_t)n);
    if (send_all(fd, buf, (size_t)n) == -1)
        return;
    echoed += (unsigned long long)n;
    if (verbosity >= 2)
        printf("wrote %s %zd bytes\n", peer, n);
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    /* Line-buffered even into a pipe or file: tests wait for each log line. */
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0)
        die("setvbuf");
    install_signals();
    int lfd = listen_on();
    set_nonblocking(lfd);   /* the notes' sk.setblocking(False) */
    listen_fd = lfd;        /* before the first check of stop: see on_signal() */

    while (!stop) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        char peer[PEER_MAX];
        int fd = accept(lfd, (struct sockaddr *)&addr, &len);
        if (fd == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                continue;   /* nobody is connecting: ask again at once. This is the spin. */
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
        peer_name((struct sockaddr *)&addr, len, peer, sizeof peer);
        if (verbosity >= 1)
            printf("connected %s\n", peer);
        conn_fd = fd;       /* set, then check stop: see on_signal() */
        if (!stop)
            serve_once(fd, peer);
        conn_fd = -1;       /* before close() frees the number */
        /* We will never read this connection again. The notes' Python closes it when
         * `conn` is rebound; in C we must close it ourselves or leak the descriptor. */
        if (close(fd) == -1)
            perror("close");
        if (verbosity >= 1)
            printf("closed %s\n", peer);
    }
    listen_fd = -1;
    if (close(lfd) == -1)
        perror("close");
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
