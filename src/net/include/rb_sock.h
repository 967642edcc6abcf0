/*
 * rb_sock.h - socket probes shared by the hive (choosing a worker's port), the keeper
 * (choosing an ephemeral hive's port) and the tests.
 *
 *     int port = rb_port_probe("127.0.0.1", 0, 0);   // a free loopback port, or -1
 *     if (rb_port_probe("0.0.0.0", 8081, 1) == 8081) // 8081 binds as a server would bind it
 */
#ifndef RB_SOCK_H
#define RB_SOCK_H

/* Binds a TCP socket to addr:port (an IPv4 address; anything else means every interface;
 * port 0: the kernel's choice) and closes it again. With reuse, SO_REUSEADDR is set first,
 * as the HTTP server does, so a port held only by connections in TIME_WAIT counts as free.
 * Returns the port that was bound, -1 when the bind failed. */
int rb_port_probe(const char *addr, int port, int reuse);

#endif
