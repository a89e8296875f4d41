/*
 * 04-select/server.c: readiness with select(), replies queued per connection.
 *
 * Teaches: IO multiplexing (notes 001, and 000 step 13). Instead of asking every
 * socket in turn (03), hand the kernel three sets (read, write, exception) and
 * sleep in select() until one of them is ready. Replies wait in each connection's
 * queue (the notes' message_queues) and go out when select says writable, so a
 * slow reader never blocks the others; a full queue is not read (backpressure).
 *
 * Build and run:  cc -std=c11 -o server server.c net.c && ./server -p 8080
 *                 ./client -p 8080 -n 100 -v   (100 connections, one select loop)
 *
 * Look at: main()'s loop: the sets are rebuilt every turn because select()
 * overwrites them with its answer, and one of them is waker, the self-pipe that a
 * signal makes readable (net.c's catch_signals() says why not pselect()).
 * accept_all() refuses a descriptor >= FD_SETSIZE: FD_SET() on it would write
 * past the end of the fd_set (a bug many tutorials have).
 * Pitfall: EMFILE leaves the listening socket readable forever; we stop watching it
 * until a descriptor frees up, or select() would return at once, again and again.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

#define QUEUE_MAX 65536         /* reply bytes a connection may have waiting */
#define QUEUE_MIN 1024          /* a queue's first allocation; it doubles from there */
#define PAUSE_S 1               /* while out of descriptors, retry accept this often */

struct conn {
    int fd;
    int eof;                    /* the client shut its side: flush, then close */
    char *queue;                /* replies the kernel has not taken: queue[head..tail), */
    size_t head, tail, cap;     /* in cap bytes taken when needed; NULL when none wait */
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
static int accepting = 1;               /* 0 while out of descriptors (EMFILE) */

void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-q | -v] [-h]\n"
                "  -a ADDR   address to bind: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   port (default 8080; 0 picks a free port)\n"
                "  -q        quiet: log only the start line, warnings and the shutdown summary\n"
                "  -v        verbose: also log what each select() returned, each read and write\n"
                "  -h        this help\n", prog);
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

/* Read only while the queue has room: a full queue stops us reading, the client's
 * sends stall, and it cannot make us buffer more (backpressure). */
static int wants_read(const struct conn *c)
{
    return !c->eof && c->tail - c->head < QUEUE_MAX;
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
                 * readable: stop watching it until a connection closes. */
                if (!out_of_fds)    /* a warning: shown even with -q */
                    printf("accept: %s: pausing until a descriptor frees up\n", strerror(errno));
                out_of_fds = 1;
                accepting = 0;
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
        if (fd >= FD_SETSIZE) {     /* select() cannot watch it: FD_SET would overflow */
            /* A warning, shown even with -q: a client is turned away. */
            printf("refused %s: descriptor %d >= FD_SETSIZE (%d)\n", peer, fd, FD_SETSIZE);
            if (close(fd) == -1)
                perror("close");
            continue;
        }
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
        memcpy(c->peer, peer, sizeof peer);
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
        data = c->queue + c->head;
        len = c->tail - c->head;
    }
    ssize_t n = send(c->fd, data, len, 0);
    if (n == -1) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;      /* EPIPE or ECONNRESET: the client is gone */
        n = 0;              /* EAGAIN: the client's window is full; all of it waits */
    } else if (verbosity >= 2) {
        printf("wrote %s %zd bytes\n", c->peer, n);
    }
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

/* One connection is ready: read if told so and the queue has room, into the loop's
 * buffer, and send the reply at once (usually all of it, so no waiting for
 * writability is needed); with nothing read, send what is queued.
 * Returns -1 when the connection is finished, else how many bytes moved. */
static ssize_t service(struct conn *c, int readable)
{
    static char buf[QUEUE_MAX];     /* the loop's one read buffer, for every connection */
    ssize_t n;
    size_t got = 0;
    if (readable && wants_read(c)) {
        /* No more than the queue has room for: should the kernel take none of the
         * reply, it must still fit under the cap. */
        n = recv(c->fd, buf, QUEUE_MAX - (c->tail - c->head), 0);
        if (n > 0) {
            if (verbosity >= 2)
                printf("read %s %zd bytes\n", c->peer, n);
            got = (size_t)n;
            upper(buf, got);
        } else if (n == 0) {
            c->eof = 1;     /* EOF: send what we still owe, then close */
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;      /* ECONNRESET: the client is gone */
        }                   /* EAGAIN: a false alarm; wait for the next readiness */
    }
    n = 0;
    if ((got > 0 || c->head < c->tail) && (n = send_reply(c, buf, got)) == -1)
        return -1;
    return c->eof && c->head == c->tail ? -1 : (ssize_t)got + n;
}

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

    while (!stop) {
        fd_set rd, wr, ex;      /* the notes' inputs, outputs and exceptional lists */
        int maxfd = accepting && lfd > waker ? lfd : waker;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_ZERO(&ex);
        FD_SET(waker, &rd);     /* a signal ends the wait, however busy we are */
        if (accepting)
            FD_SET(lfd, &rd);
        for (int fd = 0; fd < maxconns; fd++) {     /* every fd here is < FD_SETSIZE */
            struct conn *c = conns[fd];
            if (c == NULL)
                continue;
            if (wants_read(c))
                FD_SET(fd, &rd);
            if (c->head < c->tail)  /* write interest only while replies wait */
                FD_SET(fd, &wr);
            FD_SET(fd, &ex);
            if (fd > maxfd)
                maxfd = fd;
        }
        /* Out of descriptors we wait at most PAUSE_S, then try accept() again. */
        struct timeval pause = { .tv_sec = PAUSE_S };
        int ready = select(maxfd + 1, &rd, &wr, &ex, accepting ? NULL : &pause);
        if (ready == -1) {
            if (errno == EINTR)
                continue;   /* a signal: the loop checks stop */
            die("select");
        }
        if (verbosity >= 2)
            printf("select: %d ready\n", ready);
        /* The listener first: a connection closed below frees its descriptor, and an
         * accept after that could reuse it while its old bits are still in the sets. */
        if (!accepting || FD_ISSET(lfd, &rd))
            accept_all(lfd);
        for (int fd = 0; fd < maxconns; fd++) {
            struct conn *c = conns[fd];
            if (c == NULL)
                continue;
            if (FD_ISSET(fd, &ex)) {
                /* On TCP this is urgent (out-of-band) data, which our protocol does
                 * not use: like the notes, treat it as an error and close. */
                close_conn(c);
            } else if ((FD_ISSET(fd, &rd) || FD_ISSET(fd, &wr)) &&
                       service(c, FD_ISSET(fd, &rd)) == -1) {
                close_conn(c);
            }
        }
    }
    for (int fd = 0; fd < maxconns; fd++)
        if (conns[fd] != NULL)
            close_conn(conns[fd]);
    free(conns);
    if (close(lfd) == -1)
        perror("close");
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
