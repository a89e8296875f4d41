/*
 * tests/long-reply.c: a server that breaks the protocol on purpose, for the clients'
 * tests: no server of the lab's sends a reply longer than the line it was sent, so
 * this one sends 10,000 bytes and a newline to the one client it accepts, whatever
 * it sent, then waits for that client's EOF. Its first line is the servers' own:
 * "listening on 127.0.0.1:PORT".
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    char buf[10001];
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fd;
    if (lfd == -1 || bind(lfd, (struct sockaddr *)&sin, len) == -1 || listen(lfd, 1) == -1
            || getsockname(lfd, (struct sockaddr *)&sin, &len) == -1)
        return perror("listen"), 1;
    printf("listening on 127.0.0.1:%u\n", ntohs(sin.sin_port));
    fflush(stdout);
    if ((fd = accept(lfd, NULL, NULL)) == -1)
        return perror("accept"), 1;
    memset(buf, 'X', sizeof buf - 1);
    buf[sizeof buf - 1] = '\n';
    if (send(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf)
        return perror("send"), 1;
    while (recv(fd, buf, sizeof buf, 0) > 0)
        ;
    return 0;
}
