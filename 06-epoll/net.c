/*
 * 06-epoll/net.c: what every server and client of the lab has had since 01, out of
 * server.c and client.c from 04 on, where the servers grow (net.h says more). The
 * same file in 04, 05, 06 and 07.
 */
#define _POSIX_C_SOURCE 200809L
#include "net.h"
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void die(const char *what)
{
    perror(what);
    exit(1);
}

/* A whole number from 0 to max, or usage and exit 2: "-p 70000" and "-p abc" are errors. */
long number(int opt, const char *arg, long max)
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

void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl");
}

/* What the handler uses, volatile sig_atomic_t since it may run between any two
 * instructions of the code that sets them. */
static volatile sig_atomic_t *stop_flag;
static volatile sig_atomic_t wake_fd = -1;     /* the self-pipe's write end */
static int wake_read = -1;                      /* and its read end, the caller's */

/* Why not pselect(), ppoll() or epoll_pwait() with the signals blocked outside
 * the wait? Linux delivers a signal that is pending on entry only if the call
 * would sleep; when descriptors are ready it returns them and puts the mask back,
 * the signal still pending. A busy server never sleeps, and Ctrl-C waited seconds.
 * Here the signals are never blocked: the handler runs at once, sets the flag,
 * and its byte makes a watched descriptor readable, so the wait ends even if the
 * signal came just before it. write() is async-signal-safe; errno is saved
 * because the code we interrupted may be about to read it. */
static void on_signal(int sig)
{
    int saved = errno;
    (void)sig;
    *stop_flag = 1;
    if (write(wake_fd, "", 1) == -1) {
        /* EAGAIN: the pipe is full, so a wake-up is pending already */
    }
    errno = saved;
}

int catch_signals(volatile sig_atomic_t *stop)
{
    int fds[2];
    if (pipe(fds) == -1)
        die("pipe");
    set_nonblocking(fds[0]);    /* nobody reads it: the flag says it all */
    set_nonblocking(fds[1]);    /* a full pipe must not block the handler */
    int old[2] = { wake_read, wake_fd };
    stop_flag = stop;
    wake_fd = fds[1];           /* from here on, a signal wakes this pipe */
    wake_read = fds[0];
    if (old[0] != -1 && (close(old[0]) == -1 || close(old[1]) == -1))
        die("close");           /* a worker: its parent's pipe, which it must not watch */
    /* SA_RESTART: the pipe wakes the wait (which never restarts), and a printf()
     * into a full pipe should go on, not fail with EINTR. */
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1)
        die("sigaction");
    /* A send() to a peer that has gone would raise SIGPIPE and kill us; we want EPIPE. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        die("sigaction");
    return fds[0];
}

/* An address as log lines and messages show it: "host:port", IPv6 "[host]:port" (a URL's form). */
void peer_name(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
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

/* Bind and listen on address:port_number; print the first line with the real port. */
int listen_on(const char *address, int port_number)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char port[8], name[PEER_MAX];
    const char *what = "bind";   /* the call that failed, for the message */
    int fd = -1, one = 1, err;

    snprintf(port, sizeof port, "%d", port_number);
    if ((err = getaddrinfo(address, port, &hints, &res)) != 0) {
        fprintf(stderr, "%s: -a '%s': %s\n", prog, address,
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
void upper(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
}
