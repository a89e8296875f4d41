/*
 * 04-select/net.h: what every server and client of the lab has had since 01, moved
 * out of server.c and client.c from 04 on, where the servers grow: an option's
 * number, a peer's name, the listening socket, the protocol, the signals that stop
 * a server (from 04 on with a self-pipe, which 04's README explains). Not this
 * stage's idea: in 01 to 03 they are inline, and 01 is where to read them. The same two files in
 * 04, 05, 06 and 07 (tests/04-select.bats checks it), so that a diff between two
 * stages still shows only the new idea.
 *
 * A program that links net.c defines prog and usage(): number() and listen_on() use
 * them to say what was wrong, then exit 2.
 */
#ifndef NET_H
#define NET_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#define PEER_MAX 64             /* "[" INET6_ADDRSTRLEN "]:port" fits */

extern const char *prog;        /* argv[0], for messages: the program's own */
void usage(FILE *to);           /* the program's own: its options */

/* perror(what), exit 1: a call that cannot fail in a working program did. */
void die(const char *what);

/* A whole number from 0 to max, or usage and exit 2: "-p 70000" and "-p abc" are errors. */
long number(int opt, const char *arg, long max);

void set_nonblocking(int fd);

/* SIGINT and SIGTERM set *stop and write a byte into a pipe whose read end this
 * returns (the self-pipe trick): a loop that watches that descriptor wakes at once,
 * busy or idle, and sees *stop. SIGPIPE is ignored. A process forked after it calls
 * it again, for a pipe of its own: nobody empties the pipe, and a shared one, woken
 * by a signal to one process, would leave the others' waits returning at once. */
int catch_signals(volatile sig_atomic_t *stop);

/* An address as log lines and messages show it: "host:port", IPv6 "[host]:port". */
void peer_name(const struct sockaddr *sa, socklen_t len, char *out, size_t size);

/* Bind and listen on address:port_number (IPv4, IPv6 or a host name; port 0: the
 * kernel picks) and print the first line, "listening on ADDR:PORT", with the real
 * port. A bad address: usage, exit 2; no address that binds: exit 1. */
int listen_on(const char *address, int port_number);

/* The protocol: ASCII a-z become A-Z, every other byte passes unchanged. */
void upper(char *buf, size_t len);

#endif
