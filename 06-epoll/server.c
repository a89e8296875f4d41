/*
 * 06-epoll/server.c: the same server over epoll, level- or edge-triggered.
 *
 * Teaches: epoll (notes 001 and 003). The interest list lives in the kernel: a
 * connection is registered once (epoll_ctl) and epoll_wait() returns only the
 * ready ones, so a turn costs what is ready, not what is watched. Level-triggered
 * (the default) reports a descriptor as long as it is ready, like poll(); -e
 * switches to edge-triggered, which reports a change once: then we must read
 * until the socket is empty and write until it is full, or data already there
 * would never be reported again. EAGAIN says so, and so does a short read or write.
 *
 * Build and run:  cc -std=c11 -o server server.c net.c && ./server -p 8080 [-e]
 *                 ulimit -n 12000; ./client -p 8080 -n 10000
 *
 * Look at: interest() and the epoll_ctl(MOD) after service(): with level
 * triggering a request costs one recv and one send, and epoll_ctl runs only when
 * a connection's write interest changes. And the edge-triggered loop in main(),
 * with service()'s can_read and can_write: as cheap as level-triggered.
 * Pitfall: EMFILE leaves the listening socket readable forever; we stop watching it
 * until a descriptor frees up, or epoll_wait() would return at once, again and again.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define QUEUE_MAX 65536         /* reply bytes a connection may have waiting */
#define QUEUE_MIN 1024          /* a queue's first allocation; it doubles from there */
#define PAUSE_S 1               /* while out of descriptors, retry accept this often */
#define MAX_EVENTS 256          /* events taken per epoll_wait() */
#define MAX_ROUNDS 16           /* edge-triggered: work per connection per turn */

struct conn {
    int fd;
    int eof;                    /* the client shut its side: flush, then close */
    char *queue;                /* replies the kernel has not taken: queue[head..tail), */
    size_t head, tail, cap;     /* in cap bytes taken when needed; NULL when none wait */
    uint32_t events;            /* what it is registered for in epoll */
    int can_read, can_write;    /* not known to be empty, not known to be full */
    int wary;                   /* urgent data or the EOF seen: see service() */
    char peer[PEER_MAX];
};

const char *prog;                       /* argv[0], for messages (net.h) */
static const char *bind_addr = "127.0.0.1";
static int bind_port = 8080;
static int verbosity = 1;               /* 0 with -q, 2 with -v */
static volatile sig_atomic_t stop;      /* set by SIGINT or SIGTERM */
static unsigned long served;            /* connections accepted */
static unsigned long long echoed;       /* bytes sent back */
static struct conn **conns;             /* indexed by descriptor; NULL if none */
static int maxconns;                    /* how many slots conns has */
static int epfd;                        /* the epoll instance */
static int edge;                        /* -e: edge-triggered */
static int accepting = 1;               /* 0 while out of descriptors (EMFILE) */
static int listening = 1;               /* what the listener is registered for: EPOLLIN, or nothing */

void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-e] [-q | -v] [-h]\n"
                "  -a ADDR   address to bind: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   port (default 8080; 0 picks a free port)\n"
                "  -e        edge-triggered (default: level-triggered)\n"
                "  -q        quiet: log only the start line, warnings and the shutdown summary\n"
                "  -v        verbose: also log what each epoll_wait() returned, each read and write\n"
                "  -h        this help\n", prog);
}

static void parse_options(int argc, char **argv)
{
    int c;
    prog = argv[0];
    while ((c = getopt(argc, argv, "a:p:eqvh")) != -1) {
        switch (c) {
        case 'a': bind_addr = optarg; break;
        case 'p': bind_port = (int)number(c, optarg, 65535); break;
        case 'e': edge = 1; break;
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

/* Read only while the queue has room: a full queue stops us reading, the client's
 * sends stall, and it cannot make us buffer more (backpressure). */
static int wants_read(const struct conn *c)
{
    return !c->eof && c->tail - c->head < QUEUE_MAX;
}

/* Edge-triggered: is there work left that epoll will not report again? */
static int more(const struct conn *c)
{
    return (c->can_read && wants_read(c)) || (c->can_write && c->head < c->tail);
}

/* What a connection waits for. Edge-triggered: both directions, from the start,
 * and the peer's half-close and urgent data (see service()); epoll tells us of
 * changes and we keep track of what is left ourselves. Level-triggered: only what
 * it needs now, or EPOLLOUT would wake us for every idle connection. */
static uint32_t interest(const struct conn *c)
{
    if (edge)
        return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    return (wants_read(c) ? EPOLLIN : 0) | (c->head < c->tail ? EPOLLOUT : 0);
}

/* Watch the listening socket, or stop: out of descriptors it stays readable, and
 * epoll_wait() would return at once, again and again. MOD back to EPOLLIN reports
 * the clients still waiting, even edge-triggered: the kernel looks at the socket. */
static void watch_listener(int lfd, int on)
{
    struct epoll_event ev = { .events = on ? EPOLLIN | (edge ? EPOLLET : 0) : 0, .data.fd = lfd };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, lfd, &ev) == -1)
        die("epoll_ctl");
    listening = on;
}

/* Accept everyone waiting, non-blocking, into the table. */
static void accept_all(int lfd)
{
    static int out_of_fds;      /* log EMFILE once per episode */
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        struct conn *c;
        int fd = accept(lfd, (struct sockaddr *)&addr, &len);
        if (fd == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;     /* nobody else waiting, or a signal: back to the loop */
            if (errno == ECONNABORTED)
                continue;   /* the client left before we took it */
            if (errno == EMFILE || errno == ENFILE) {
                /* The client stays in the backlog, and the listening socket stays
                 * readable: stop watching it until a connection closes. Now, not at
                 * the loop's top: a close later in this batch must find it unwatched
                 * and re-arm it, or edge-triggered, its edge used up, the clients
                 * waiting would never be reported. A warning: shown even with -q. */
                if (!out_of_fds)
                    printf("accept: %s: pausing until a descriptor frees up\n", strerror(errno));
                out_of_fds = 1;
                accepting = 0;
                if (listening)
                    watch_listener(lfd, 0);
                return;
            }
            die("accept");
        }
        if (out_of_fds)
            printf("accepting again\n");
        out_of_fds = 0;
        accepting = 1;
        char peer[PEER_MAX];
        peer_name((struct sockaddr *)&addr, len, peer, sizeof peer);
        set_nonblocking(fd);
        if (fd >= maxconns) {       /* grow the table: no fixed limit of our own */
            int n = maxconns ? 2 * maxconns : 64;
            while (n <= fd)
                n *= 2;
            struct conn **grown = realloc(conns, (size_t)n * sizeof *grown);
            if (grown == NULL)
                die("realloc");
            memset(grown + maxconns, 0, (size_t)(n - maxconns) * sizeof *grown);
            conns = grown;
            maxconns = n;
        }
        if ((c = calloc(1, sizeof *c)) == NULL)
            die("calloc");
        c->fd = fd;
        c->can_write = 1;           /* a new socket has room; a read waits for epoll */
        memcpy(c->peer, peer, sizeof peer);
        c->events = interest(c);    /* registered once, for the connection's life */
        struct epoll_event ev = { .events = c->events, .data.fd = fd };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
            die("epoll_ctl");
        conns[fd] = c;
        served++;
        if (verbosity >= 1)
            printf("connected %s\n", c->peer);
    }
}

/* Keep the len reply bytes the kernel did not take, behind those already waiting.
 * The memory is taken now, not at accept, and doubles as the queue grows; reads are
 * sized so that it never needs more than QUEUE_MAX. Out of memory: -1, and only this
 * connection is lost. */
static int enqueue(struct conn *c, const char *data, size_t len)
{
    if (c->tail + len > c->cap && c->head > 0) {    /* first slide what waits to the front */
        memmove(c->queue, c->queue + c->head, c->tail - c->head);
        c->tail -= c->head;
        c->head = 0;
    }
    if (c->tail + len > c->cap) {
        size_t cap = c->cap > 0 ? c->cap : QUEUE_MIN;
        while (cap < c->tail + len)
            cap *= 2;
        char *grown = realloc(c->queue, cap);
        if (grown == NULL) {
            perror("realloc");
            return -1;
        }
        c->queue = grown;
        c->cap = cap;
    }
    memcpy(c->queue + c->tail, data, len);
    c->tail += len;
    return 0;
}

/* Send the reply data[0..len) (len may be 0) behind the replies still queued: one
 * send() at most, and what the kernel does not take is queued, so the client gets
 * every byte in order. Returns how many bytes went, or -1 when the connection is
 * finished (the client is gone, or no memory). */
static ssize_t send_reply(struct conn *c, const char *data, size_t len)
{
    int queued = c->head < c->tail;
    if (queued) {           /* older replies go first, the new ones behind them */
        if (enqueue(c, data, len) == -1)
            return -1;
        if (!c->can_write)
            return 0;       /* full at the last try: wait for EPOLLOUT */
        data = c->queue + c->head;
        len = c->tail - c->head;
    }
    ssize_t n = send(c->fd, data, len, 0);
    if (n == -1) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;      /* EPIPE or ECONNRESET: the client is gone */
        if (errno != EINTR)
            c->can_write = 0;   /* EAGAIN: the client's window is full */
        n = 0;              /* all of it waits */
    } else if ((size_t)n < len) {
        c->can_write = 0;   /* a short write: full now (epoll(7)) */
    }
    if (n > 0 && verbosity >= 2)
        printf("wrote %s %zd bytes\n", c->peer, n);
    echoed += (unsigned long long)n;
    if (queued) {
        c->head += (size_t)n;
        if (c->head == c->tail) {   /* drained: the memory goes back until next time */
            free(c->queue);
            c->queue = NULL;
            c->head = c->tail = c->cap = 0;
        }
    } else if ((size_t)n < len) {   /* a short write: the rest waits in the queue */
        if (enqueue(c, data + n, len - (size_t)n) == -1)
            return -1;
    }
    return n;
}

/* One connection is ready: read if it may have data and the queue has room, into
 * the loop's buffer, and send the reply at once (usually all of it, so no waiting
 * for writability is needed); with nothing read, send what is queued.
 * epoll(7): on a stream socket, a read that returns less than it asked for has
 * emptied the socket, and a write that took less than offered has filled it. So
 * can_read and can_write, set by epoll's events, are cleared by a short read or
 * write, or by EAGAIN, and edge-triggered needs no call that only says EAGAIN: one
 * recv and one send a request, as level-triggered. Two short reads prove nothing:
 * recv stops at TCP's urgent mark with data behind it (EPOLLPRI), and an EOF that
 * came with the data (EPOLLRDHUP) is not reported again. After either, wary stays
 * set, and only EAGAIN or the EOF itself says empty.
 * Returns -1 when the connection is finished, else how many bytes moved. */
static ssize_t service(struct conn *c)
{
    static char buf[QUEUE_MAX];     /* the loop's one read buffer, for every connection */
    ssize_t n;
    size_t got = 0;
    if (c->can_read && wants_read(c)) {
        /* No more than the queue has room for: should the kernel take none of the
         * reply, it must still fit under the cap. */
        size_t room = QUEUE_MAX - (c->tail - c->head);
        n = recv(c->fd, buf, room, 0);
        if (n > 0) {
            if (verbosity >= 2)
                printf("read %s %zd bytes\n", c->peer, n);
            got = (size_t)n;
            upper(buf, got);
            if (got < room && !c->wary)
                c->can_read = 0;    /* a short read: empty now (epoll(7)) */
        } else if (n == 0) {
            c->eof = 1;     /* EOF: send what we still owe, then close */
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;      /* ECONNRESET: the client is gone */
        } else if (errno != EINTR) {
            c->can_read = 0;    /* EAGAIN: wait for the next readiness */
        }
    }
    n = 0;
    if ((got > 0 || c->head < c->tail) && (n = send_reply(c, buf, got)) == -1)
        return -1;
    return c->eof && c->head == c->tail ? -1 : (ssize_t)got + n;
}

/* close() takes it out of epoll too, as the file's last descriptor (epoll(7), Q6):
 * a dup() or a fork() would keep it registered; nothing here makes either. */
static void close_conn(struct conn *c)
{
    conns[c->fd] = NULL;
    if (close(c->fd) == -1)
        perror("close");
    if (verbosity >= 1)
        printf("closed %s\n", c->peer);
    free(c->queue);
    free(c);
    accepting = 1;              /* a descriptor is free: try the backlog again */
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    /* Line-buffered even into a pipe or file: tests wait for each log line. */
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0)
        die("setvbuf");
    int waker = catch_signals(&stop);   /* readable once SIGINT or SIGTERM came */
    int lfd = listen_on(bind_addr, bind_port);
    set_nonblocking(lfd);       /* accept_all() takes everyone waiting, then EAGAIN */
    if ((epfd = epoll_create1(0)) == -1)
        die("epoll_create1");
    /* Edge-triggered, accept_all() takes everyone waiting, which it does anyway. */
    struct epoll_event lev = { .events = EPOLLIN | (edge ? EPOLLET : 0), .data.fd = lfd };
    struct epoll_event wev = { .events = EPOLLIN, .data.fd = waker };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) == -1 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, waker, &wev) == -1)  /* a signal ends the wait */
        die("epoll_ctl");

    while (!stop) {
        struct epoll_event events[MAX_EVENTS];
        if (accepting && !listening)    /* a descriptor freed up: watch the listener again */
            watch_listener(lfd, 1);
        /* Out of descriptors we wait at most PAUSE_S, then try accept() again. */
        int ready = epoll_wait(epfd, events, MAX_EVENTS, accepting ? -1 : PAUSE_S * 1000);
        if (ready == -1) {
            if (errno == EINTR)
                continue;   /* a signal: the loop checks stop */
            die("epoll_wait");
        }
        if (verbosity >= 2)
            printf("epoll_wait: %d events\n", ready);
        if (!accepting)
            accept_all(lfd);
        /* A descriptor appears once per batch, and one closed below is only reused by
         * an accept whose connection cannot be in this batch: the walk is safe. */
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                accept_all(lfd);
                continue;
            }
            if (fd == waker)
                continue;   /* stop is set: the loop ends after this batch */
            struct conn *c = conns[fd];
            uint32_t mask = events[i].events;
            /* What epoll says, kept until a read or write proves otherwise (service()).
             * EPOLLERR and EPOLLHUP come unasked; reading or writing reports them. */
            if (mask & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
                c->can_read = 1;
            if (mask & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                c->can_write = 1;
            if (mask & (EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
                c->wary = 1;
            ssize_t moved = service(c);
            /* Edge-triggered: the bytes already there will not be reported again, so
             * go on while there may be more (not yet a short read or write, nor EAGAIN)
             * and the queue has room. */
            for (int round = 1; edge && moved != -1 && more(c) && round < MAX_ROUNDS; round++)
                moved = service(c);
            if (moved == -1) {
                close_conn(c);
                continue;
            }
            /* Level-triggered: tell epoll only when the interest changes, i.e. a short
             * write needs EPOLLOUT, a drained queue drops it, or backpressure drops
             * EPOLLIN. Edge-triggered, a connection still busy after MAX_ROUNDS is
             * re-armed: MOD reports it again next turn, behind the others. */
            if (interest(c) != c->events || (edge && more(c))) {
                c->events = interest(c);
                struct epoll_event ev = { .events = c->events, .data.fd = fd };
                if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == -1)
                    die("epoll_ctl");
            }
        }
    }
    for (int fd = 0; fd < maxconns; fd++)
        if (conns[fd] != NULL)
            close_conn(conns[fd]);
    free(conns);
    if (close(epfd) == -1)
        perror("close");
    if (close(lfd) == -1)
        perror("close");
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
