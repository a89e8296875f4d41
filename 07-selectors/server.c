/*
 * 07-selectors/server.c: the notes' callback server, on a selectors library.
 *
 * Teaches: the event loop as Python's selectors module shapes it (notes 000 step
 * 15, 001). Each descriptor is registered with the events it waits for and a data
 * pointer; here the data holds its callbacks, so the loop is the notes'
 *     for key, mask in sel.select(): callback = key.data; callback(key.fileobj, mask)
 * and knows nothing about accepting or echoing. The library (selectors.c) picks
 * epoll, poll or select as Python's DefaultSelector does; SELECTOR=select|poll|epoll
 * forces one, and SELECTOR=sigio runs it on signals, the notes' IO model 4. -w N
 * runs N worker processes on one port (workers.c; ACCEPT says how): the notes'
 * multi-process dilemma, without toggling sockets between blocking and not.
 *
 * Build and run:  cc -std=c11 -o server server.c net.c workers.c selectors.c sel-*.c
 *                 ./server -p 8080 [-w 2];  ./client -p 8080
 *
 * Look at: main()'s loop and the callbacks on_accept() and on_conn(); the
 * self-pipe, waker, as in 04 to 06: sel_select() retries EINTR, as Python's does,
 * so a signal wakes the loop by making a registered descriptor readable. A worker
 * makes a pipe of its own.
 * Pitfall: a callback may close a connection whose event is later in the same batch;
 * the library zeroes that event's mask, and the loop skips it.
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
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "selectors.h"
#include "workers.h"

#define QUEUE_MAX 65536         /* reply bytes a connection may have waiting */
#define QUEUE_MIN 1024          /* a queue's first allocation; it doubles from there */
#define PAUSE_S 1               /* while out of descriptors, retry accept this often */
#define ACCEPT_BATCH 16         /* accepts per turn: with -w, the other workers get a share */

struct handler {                /* what a key's data points to: the notes' callback */
    void (*callback)(struct sel_key *key, int mask);
};

struct conn {
    struct handler h;           /* first, so a key's data is the connection too */
    int fd;
    int eof;                    /* the client shut its side: flush, then close */
    char *queue;                /* replies the kernel has not taken: queue[head..tail), */
    size_t head, tail, cap;     /* in cap bytes taken when needed; NULL when none wait */
    int events;                 /* what it is registered for: SEL_READ, SEL_WRITE */
    char peer[PEER_MAX + TAG_MAX];
};

const char *prog;                       /* argv[0], for messages (net.h) */
static const char *bind_addr = "127.0.0.1";
static int bind_port = 8080;
static int verbosity = 1;               /* 0 with -q, 2 with -v */
static volatile sig_atomic_t stop;      /* set by SIGINT or SIGTERM */
static unsigned long served;            /* connections accepted */
static unsigned long long echoed;       /* bytes sent back */
static struct selector *sel;            /* the notes' sel = DefaultSelector() */
static int accepting = 1;               /* 0 while out of descriptors (EMFILE) */
static int listening;                   /* the listener is registered in the selector */
static long nworkers;                   /* -w: worker processes (0: serve here) */
static const char *tag = "";            /* " (worker N)" after each peer and warning, with -w */
static int top_fd;                      /* the highest descriptor accept() gave us */

void usage(FILE *to)
{
    fprintf(to, "usage: %s [-a ADDR] [-p PORT] [-w N] [-q | -v] [-h]\n"
                "  -a ADDR   address to bind: IPv4, IPv6 or a host name (default 127.0.0.1)\n"
                "  -p PORT   port (default 8080; 0 picks a free port)\n"
                "  -w N      N worker processes over the same listening socket\n"
                "  -q        quiet: log only the start line, warnings and the shutdown summary\n"
                "  -v        verbose: also log what each sel_select() returned, each read and write\n"
                "  -h        this help\n", prog);
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
    workers_check(prog, nworkers, getenv("SELECTOR"));  /* -w: ACCEPT, and what the backend allows */
}

/* Read only while the queue has room: a full queue stops us reading, the client's
 * sends stall, and it cannot make us buffer more (backpressure). */
static int wants_read(const struct conn *c)
{
    return !c->eof && c->tail - c->head < QUEUE_MAX;
}

/* What a connection waits for now: never nothing (a full queue has replies to send). */
static int interest(const struct conn *c)
{
    return (wants_read(c) ? SEL_READ : 0) | (c->head < c->tail ? SEL_WRITE : 0);
}

/* The callbacks, defined below beside the loop that calls them; the listener's
 * key data names on_accept, each connection's names on_conn. */
static void on_accept(struct sel_key *key, int mask);
static void on_conn(struct sel_key *key, int mask);

static struct handler listener = { on_accept };

/* Watch the listening socket, or stop: out of descriptors it stays readable, and
 * sel_select() would return at once, again and again. */
static void watch_listener(int lfd, int on)
{
    int events = SEL_READ | (workers_exclusive() ? SEL_EXCLUSIVE : 0);     /* -w: ACCEPT */
    if (on && sel_register(sel, lfd, events, &listener) == NULL)
        die("sel_register");
    if (!on && sel_unregister(sel, lfd) == -1)
        die("sel_unregister");
    listening = on;
}

/* Accept a batch of those waiting, non-blocking, into the selector. */
static void accept_all(int lfd)
{
    static int out_of_fds;      /* log EMFILE once per episode */
    for (int i = 0; i < ACCEPT_BATCH; i++) {
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
                 * readable: stop watching it until a connection closes. A warning:
                 * shown even with -q. */
                if (!out_of_fds)
                    printf("accept: %s: pausing until a descriptor frees up%s\n", strerror(errno), tag);
                out_of_fds = 1;
                accepting = 0;
                if (listening)
                    watch_listener(lfd, 0);
                return;
            }
            die("accept");
        }
        if (out_of_fds)
            printf("accepting again%s\n", tag);
        out_of_fds = 0;
        accepting = 1;
        char peer[PEER_MAX + TAG_MAX];      /* with -w, the worker's tag too */
        peer_name((struct sockaddr *)&addr, len, peer, PEER_MAX);
        strcat(peer, tag);
        set_nonblocking(fd);
        if ((c = calloc(1, sizeof *c)) == NULL)
            die("calloc");
        c->h.callback = on_conn;
        c->fd = fd;
        memcpy(c->peer, peer, sizeof peer);
        c->events = interest(c);
        if (sel_register(sel, fd, c->events, c) == NULL) {
            if (errno != ERANGE)
                die("sel_register");
            /* The select backend cannot watch it: refuse this client, serve the rest.
             * A warning, shown even with -q. */
            printf("refused %s: descriptor %d >= FD_SETSIZE (%d)\n", peer, fd, FD_SETSIZE);
            if (close(fd) == -1)
                perror("close");
            free(c);
            continue;
        }
        served++;
        if (fd > top_fd)
            top_fd = fd;
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
        n = 0;              /* all of it waits */
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
 * Returns -1 when the connection is finished, else how many bytes moved. */
static ssize_t service(struct conn *c, int readable)
{
    static char buf[QUEUE_MAX];     /* the loop's one read buffer, for every connection */
    ssize_t n;
    size_t got = 0;
    if (readable && wants_read(c)) {
        /* No more than the queue has room for: should the kernel take none of the
         * reply, it must still fit under the cap. */
        size_t room = QUEUE_MAX - (c->tail - c->head);
        n = recv(c->fd, buf, room, 0);
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

/* Unregister before close, as Python requires: the selector must forget the
 * descriptor before its number can come back from accept(). */
static void close_conn(struct conn *c)
{
    if (sel_unregister(sel, c->fd) == -1)
        die("sel_unregister");
    if (close(c->fd) == -1)
        perror("close");
    if (verbosity >= 1)
        printf("closed %s\n", c->peer);
    free(c->queue);
    free(c);
    accepting = 1;              /* a descriptor is free: try the backlog again */
}

/* The notes' accept(sock, mask) callback. */
static void on_accept(struct sel_key *key, int mask)
{
    unsigned long before = served;
    (void)mask;
    accept_all(key->fd);
    workers_missed(served == before);   /* -w: woken, and another worker took the client */
}

/* The notes' read(conn, mask) callback, which here also sends queued replies: then
 * close, or tell the selector if what the connection waits for changed. */
static void on_conn(struct sel_key *key, int mask)
{
    struct conn *c = key->data;
    if (service(c, mask & SEL_READ) == -1)
        close_conn(c);
    else if (interest(c) != c->events) {
        c->events = interest(c);
        if (sel_modify(sel, c->fd, c->events, c) == NULL)
            die("sel_modify");
    }
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    /* Line-buffered even into a pipe or file: tests wait for each log line. */
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0)
        die("setvbuf");
    int waker = catch_signals(&stop);   /* readable once SIGINT or SIGTERM came */
    int lfd = listen_on(bind_addr, bind_port);
    set_nonblocking(lfd);       /* accept_all() takes a batch, then EAGAIN */
    if (nworkers > 0) {         /* -w: the parent stays in run_workers() (workers.c) */
        tag = run_workers(nworkers, &lfd, &stop);
        waker = catch_signals(&stop);   /* a pipe of the worker's own */
    }
    if ((sel = sel_open(NULL)) == NULL)
        die("sel_open");
    if (sel_register(sel, waker, SEL_READ, NULL) == NULL)  /* a signal ends the wait */
        die("sel_register");
    watch_listener(lfd, 1);
    if (verbosity >= 2)
        printf("selector: %s%s\n", sel_backend(sel), tag);

    while (!stop) {
        struct sel_event *events;
        if (accepting && !listening)    /* a descriptor freed up: watch the listener again */
            watch_listener(lfd, 1);
        workers_publish(served, echoed);    /* -w: what we did, where the parent reads it */
        /* Out of descriptors we wait at most PAUSE_S, then try accept() again. */
        int ready = sel_select(sel, accepting ? -1 : PAUSE_S * 1000, &events);
        if (ready == -1)
            die("sel_select");
        if (verbosity >= 2)
            printf("sel_select(%s): %d ready%s\n", sel_backend(sel), ready, tag);
        if (!accepting)
            accept_all(lfd);
        for (int i = 0; i < ready; i++) {
            struct sel_event *e = &events[i];
            if (e->mask == 0 || e->key->data == NULL)
                continue;   /* a key an earlier callback unregistered, or the self-pipe */
            /* The notes' callback = key.data; callback(key.fileobj, mask) */
            struct handler *h = e->key->data;
            h->callback(e->key, e->mask);
        }
    }
    for (int fd = 0; fd <= top_fd; fd++)    /* the keys with a connection: all but two */
        if (fd != lfd && fd != waker && sel_get_key(sel, fd) != NULL)
            close_conn(sel_get_key(sel, fd)->data);
    sel_close(sel);
    if (close(lfd) == -1)
        perror("close");
    if (workers_publish(served, echoed))    /* a worker: the parent prints the summary */
        return 0;
    printf("shutdown: served %lu connections, echoed %llu bytes\n", served, echoed);
    return 0;
}
