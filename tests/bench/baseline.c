/*
 * tests/bench/baseline.c: the cheapest loop that can serve the benchmark, as a
 * yardstick for the stages' servers (not a stage: it cuts every corner they
 * must not).
 *
 * One epoll_wait, then for each ready connection one recv() and one send():
 * the least a server can do per request, so its CPU per request is what the
 * kernel costs. What it leaves out is what the stages pay for: no queue (a
 * reply that does not fit in the socket at once closes the connection: the
 * load generator, which sends one 64-byte line and waits, never causes that),
 * no EMFILE handling, no log but the first line and the summary.
 *
 * Usage: baseline [-a ADDR] [-p PORT] [-q]   (-q is accepted and changes nothing:
 * the benchmark passes it to every server). -a as the stages take it (default
 * 127.0.0.1), but only a name's first address is tried.
 */
#define _GNU_SOURCE             /* accept4 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

static volatile sig_atomic_t stop;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, c, one = 1, err;
    unsigned long served = 0;
    unsigned long long echoed = 0;
    while ((c = getopt(argc, argv, "a:p:q")) != -1) {
        char *end;
        long n = c == 'p' ? strtol(optarg, &end, 10) : 0;
        if (c == 'p' && (*optarg == '\0' || *end != '\0' || n < 0 || n > 65535))
            c = '?';                    /* not a port: the usage below */
        if (c == 'p')
            port = (int)n;
        else if (c == 'a')
            addr = optarg;
        else if (c != 'q') {
            fprintf(stderr, "usage: %s [-a ADDR] [-p PORT] [-q]\n", argv[0]);
            return 2;
        }
    }
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0)
        die("setvbuf");
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1)
        die("sigaction");
    sa.sa_handler = SIG_IGN;            /* a send to a closed peer: EPIPE, not death */
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        die("sigaction");

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char service[8], host[INET6_ADDRSTRLEN];
    snprintf(service, sizeof service, "%d", port);
    if ((err = getaddrinfo(addr, service, &hints, &res)) != 0) {
        fprintf(stderr, "%s: -a '%s': %s\n", argv[0], addr,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
        return 2;
    }
    int lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd == -1)
        die("socket");
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1)
        die("setsockopt");
    if (bind(lfd, res->ai_addr, res->ai_addrlen) == -1 || listen(lfd, SOMAXCONN) == -1
            || getsockname(lfd, (struct sockaddr *)&ss, &len) == -1)
        die("bind");
    freeaddrinfo(res);
    if ((err = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, service, sizeof service,
                           NI_NUMERICHOST | NI_NUMERICSERV)) != 0) {
        fprintf(stderr, "getnameinfo: %s\n", gai_strerror(err));
        return 1;
    }
    int v6 = ss.ss_family == AF_INET6;  /* "[::1]:PORT", as the stages print it */
    printf("listening on %s%s%s:%s\n", v6 ? "[" : "", host, v6 ? "]" : "", service);

    int epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, events[MAX_EVENTS];
    if (epfd == -1 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == -1)
        die("epoll");
    while (!stop) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n == -1) {
            if (errno == EINTR)
                continue;               /* a signal: the loop checks stop */
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int conn = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (conn == -1)
                    continue;           /* EAGAIN (taken already), EMFILE...: not our case */
                served++;
                ev.data.fd = conn;
                if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &ev) == -1)
                    die("epoll_ctl");
                continue;
            }
            char buf[4096];
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got == -1 && (errno == EAGAIN || errno == EINTR))
                continue;               /* nothing after all: wait again */
            if (got > 0) {
                for (ssize_t k = 0; k < got; k++)
                    if (buf[k] >= 'a' && buf[k] <= 'z')
                        buf[k] = (char)(buf[k] - 'a' + 'A');
                if (send(fd, buf, (size_t)got, 0) == got) {
                    echoed += (unsigned long long)got;
                    continue;
                }
            }
            /* EOF, an error, or a reply that did not fit: this loop has no queue. */
            if (close(fd) == -1)
                perror("close");
        }
    }
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
