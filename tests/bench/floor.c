/*
 * tests/bench/floor.c: the machine's floor, measured first by the benchmark so
 * that every other figure can be read as a multiple of what this machine can
 * do (a system call costs 5x more on one of the lab's machines than on another).
 *
 *   syscall_ns    one system call that does nothing: getppid() through
 *                 syscall(), which no library can cache or skip; in CPU time
 *                 (this thread's), as the benchmark's CPU per request is, so
 *                 that other processes on a busy machine do not inflate it
 *   roundtrip_us  one byte there and back over loopback TCP between two
 *                 processes, blocking send() and recv(): the least one request
 *                 of the benchmark can cost. Run under `taskset -c 0`, as the
 *                 benchmark runs everything, both ends share one CPU. In wall
 *                 time, as the benchmark's latencies are.
 *   kstack_kib    the kernel stack each thread costs, which no process's RSS
 *                 shows: /proc/meminfo's KernelStack before and after threads
 *                 start ('-' where the kernel does not say). The benchmark adds
 *                 it to 01's memory per connection, a thread each.
 * Each figure is the median of BATCHES batches, so a neighbour's burst on a
 * shared machine moves one batch, not the figure.
 *
 * Build and run:  cc -std=c11 -O2 -pthread -o floor floor.c
 *                 taskset -c 0 ./floor [-n SYSCALLS] [-r ROUNDTRIPS]
 * Output: one line on stdout,  syscall_ns=F roundtrip_us=F kstack_kib=N
 * Exit: 0, 1 a system call failed, 2 usage.
 */
#define _GNU_SOURCE             /* syscall() */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCHES 11              /* odd: the median is one of them */
#define THREADS 256             /* started at once, to see the kernel stacks grow */
#define THREAD_STACK (64 * 1024)    /* their user stacks: small, they only wait */

static long opt_n = 1000000, opt_r = 20000;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Seconds on a clock: CLOCK_MONOTONIC (wall time) or CLOCK_THREAD_CPUTIME_ID. */
static double now_s(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) == -1)
        die("clock_gettime");
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

/* ---- one system call ---- */

static double syscall_ns(void)
{
    double batch[BATCHES];
    long per = opt_n / BATCHES + 1;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < per; i++)
            if (syscall(SYS_getppid) == -1)
                die("getppid");
        batch[b] = (now_s(CLOCK_THREAD_CPUTIME_ID) - t0) / (double)per * 1e9;
    }
    return median(batch, BATCHES);
}

/* ---- one loopback round trip ---- */

/* Blocking, one byte each way: a short count cannot happen, EINTR can (a
 * signal: nothing was moved, do it again). 0 on EOF. */
static void send_byte(int fd, char ch)
{
    ssize_t n;
    while ((n = send(fd, &ch, 1, 0)) == -1 && errno == EINTR)
        ;
    if (n == -1)
        die("send");
}

static int recv_byte(int fd, char *ch)
{
    ssize_t n;
    while ((n = recv(fd, ch, 1, 0)) == -1 && errno == EINTR)
        ;
    if (n == -1)
        die("recv");
    return (int)n;
}

/* A connected pair of loopback TCP sockets: *a the connecting end, *b the
 * accepted one. Nagle would not delay a ping-pong anyway (nothing is unacknowledged
 * when a byte is sent); TCP_NODELAY makes that certain. */
static void tcp_pair(int *a, int *b)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd == -1)
        die("socket");
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) == -1)     /* port 0: any free one */
        die("bind 127.0.0.1:0");
    if (listen(lfd, 1) == -1 || getsockname(lfd, (struct sockaddr *)&sin, &len) == -1)
        die("listen");
    if ((*a = socket(AF_INET, SOCK_STREAM, 0)) == -1)
        die("socket");
    if (connect(*a, (struct sockaddr *)&sin, sizeof sin) == -1)   /* the backlog takes it */
        die("connect");
    while ((*b = accept(lfd, NULL, NULL)) == -1 && errno == EINTR)
        ;                               /* a signal: the connection still waits */
    if (*b == -1)
        die("accept");
    if (setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1
            || setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
        die("setsockopt TCP_NODELAY");
    if (close(lfd) == -1)
        die("close");
}

/* The child: send back every byte until EOF. */
static _Noreturn void echo_child(int fd)
{
    char ch;
    while (recv_byte(fd, &ch) == 1)
        send_byte(fd, ch);
    _exit(0);
}

static double roundtrip_us(void)
{
    double batch[BATCHES];
    long per = opt_r / BATCHES + 1;
    int near, far, status;
    char ch = 'x';
    tcp_pair(&near, &far);
    pid_t pid = fork();                 /* two processes, as a server and its client are */
    if (pid == -1)
        die("fork");
    if (pid == 0) {
        if (close(near) == -1)
            die("close");
        echo_child(far);
    }
    if (close(far) == -1)
        die("close");
    for (int b = -1; b < BATCHES; b++) {        /* batch -1 warms up, uncounted */
        double t0 = now_s(CLOCK_MONOTONIC);
        for (long i = 0; i < per; i++) {
            send_byte(near, ch);
            if (recv_byte(near, &ch) != 1) {
                errno = ECONNRESET;
                die("the echo child closed early");
            }
        }
        if (b >= 0)
            batch[b] = (now_s(CLOCK_MONOTONIC) - t0) / (double)per * 1e6;
    }
    if (close(near) == -1)              /* the child reads EOF and exits */
        die("close");
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)             /* a signal: the child is still ours to reap */
            die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor: the echo child failed\n");
        exit(1);
    }
    return median(batch, BATCHES);
}

/* ---- the kernel stack of a thread ---- */

/* KernelStack of /proc/meminfo, in KiB; -1 if it is not there. */
static long kernel_stack_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return -1;
    while (kib == -1 && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "KernelStack: %ld", &kib) != 1)
            kib = -1;
    if (fclose(f) == EOF)
        return -1;
    return kib;
}

/* A thread that waits for EOF on the pipe, then ends. */
static void *waiter(void *arg)
{
    char ch;
    int fd = *(int *)arg;
    while (read(fd, &ch, 1) == -1 && errno == EINTR)
        ;                               /* a signal: wait again; EOF or error: done */
    return NULL;
}

/* The system-wide figure moves as other processes start and end, so: THREADS at
 * once, many times, the median. Each thread has its kernel stack from the moment
 * pthread_create returns (clone made it). */
static double kstack_kib(void)
{
    double batch[BATCHES];
    pthread_t tid[THREADS];
    pthread_attr_t attr;
    int p[2], err;
    if (kernel_stack_kib() < 0)
        return -1;
    if ((err = pthread_attr_init(&attr)) != 0 || (err = pthread_attr_setstacksize(&attr, THREAD_STACK)) != 0) {
        errno = err;
        die("pthread_attr");
    }
    for (int b = 0; b < BATCHES; b++) {
        if (pipe(p) == -1)
            die("pipe");
        long before = kernel_stack_kib();
        for (int i = 0; i < THREADS; i++)
            if ((err = pthread_create(&tid[i], &attr, waiter, &p[0])) != 0) {
                errno = err;
                die("pthread_create");
            }
        long after = kernel_stack_kib();
        if (close(p[1]) == -1)          /* EOF: every thread returns */
            die("close");
        for (int i = 0; i < THREADS; i++)
            if ((err = pthread_join(tid[i], NULL)) != 0) {
                errno = err;
                die("pthread_join");
            }
        if (close(p[0]) == -1)
            die("close");
        batch[b] = (double)(after - before) / THREADS;
    }
    if ((err = pthread_attr_destroy(&attr)) != 0) {
        errno = err;
        die("pthread_attr_destroy");
    }
    return median(batch, BATCHES);
}

static long count(int opt, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < BATCHES || v > 1000000000) {
        fprintf(stderr, "floor: -%c wants a whole number from %d to 1000000000, not '%s'\n"
                "usage: floor [-n SYSCALLS] [-r ROUNDTRIPS]\n", opt, BATCHES, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    int o;
    struct sigaction sa = { .sa_handler = SIG_IGN };
    while ((o = getopt(argc, argv, "n:r:")) != -1) {
        if (o == 'n')
            opt_n = count(o, optarg);
        else if (o == 'r')
            opt_r = count(o, optarg);
        else {
            fputs("usage: floor [-n SYSCALLS] [-r ROUNDTRIPS]\n", stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs("usage: floor [-n SYSCALLS] [-r ROUNDTRIPS]\n", stderr);
        return 2;
    }
    /* The child may be gone when we send: EPIPE, said, not a silent death. */
    if (sigemptyset(&sa.sa_mask) == -1 || sigaction(SIGPIPE, &sa, NULL) == -1)
        die("sigaction");
    double sys_ns = syscall_ns(), rt_us = roundtrip_us(), ks = kstack_kib();
    char ks_text[32] = "-";
    if (ks >= 0)
        snprintf(ks_text, sizeof ks_text, "%.0f", ks);
    if (printf("syscall_ns=%.1f roundtrip_us=%.2f kstack_kib=%s\n", sys_ns, rt_us, ks_text) < 0
            || fflush(stdout) == EOF)
        die("writing stdout");
    return 0;
}
