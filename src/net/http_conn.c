/*
 * http_conn.c - the HTTP server's connection accounting: every open connection with its
 * client address and request deadline, the total and per-address limits applied at accept,
 * the sweep that answers 408 to a request not complete in time, and the open-file limit the
 * connection limit needs. Called by http.c (libmicrohttpd's callbacks) and by the watcher
 * thread (http_sse.c); the server lock guards every list and count.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "http_internal.h"
#include "rb_log.h"
#include "rb_util.h"

#define FD_RESERVE 128 /* descriptors kept for everything but connections */

struct conn_info {
    struct MHD_Connection *conn;
    int fd;
    unsigned char addr[16]; /* the client address, IPv4 as v4-mapped IPv6 */
    int64_t deadline_ms;    /* 0: no request is being received */
    int timed_out;
    conn_info *prev, *next;
};

struct ip_count {
    unsigned char addr[16];
    int n;
    ip_count *next;
};

static conn_info *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Arms (on) or disarms the connection's request deadline. */
void rb_http_request_deadline(rb_http_server *srv, struct MHD_Connection *conn, int on)
{
    conn_info *c = conn_of(conn);
    int wake = 0;

    if (!c)
        return;
    pthread_mutex_lock(&srv->mu);
    c->deadline_ms = on ? rb_now_ms() + srv->cfg.request_timeout_ms : 0;
    if (on && c->deadline_ms < srv->conn_next_due_ms) {
        wake = srv->conn_next_due_ms == INT64_MAX;
        srv->conn_next_due_ms = c->deadline_ms;
    }
    pthread_mutex_unlock(&srv->mu);
    if (wake)
        rb_http_watcher_wake(srv);
}

/* The client address as 16 bytes (IPv4 v4-mapped); 0 for another family. */
static int addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 1;
    }
    return 0;
}

static ip_count **ip_slot(rb_http_server *srv, const unsigned char key[16])
{
    uint32_t h = 2166136261u;
    ip_count **p;

    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    for (p = &srv->ips[h % RB_HTTP_IP_BUCKETS]; *p; p = &(*p)->next)
        if (memcmp((*p)->addr, key, 16) == 0)
            break;
    return p;
}

/* Accept policy: refuses when a limit is reached (libmicrohttpd then closes the socket). */
enum MHD_Result rb_http_on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    rb_http_server *srv = cls;
    unsigned char key[16];
    ip_count **slot;
    int full;

    (void)addrlen;
    addr_key(addr, key);
    pthread_mutex_lock(&srv->mu);
    slot = ip_slot(srv, key);
    full = srv->stopping || srv->nconns >= srv->cfg.max_connections ||
           (*slot && (*slot)->n >= srv->cfg.max_connections_per_ip);
    if (full) {
        srv->refused++;
        srv->last_refused_ms = rb_now_ms();
    }
    pthread_mutex_unlock(&srv->mu);
    if (full)
        rb_log(RB_LOG_DEBUG, srv->component, "connection refused: limit reached");
    return full ? MHD_NO : MHD_YES;
}

void rb_http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    rb_http_server *srv = cls;
    conn_info *c = *socket_context;
    ip_count **slot;
    int wake = 0;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!(c = calloc(1, sizeof(*c))))
            return;
        c->conn = conn;
        c->fd = fd ? fd->connect_fd : -1;
        addr_key(ad ? ad->client_addr : NULL, c->addr);
        pthread_mutex_lock(&srv->mu);
        slot = ip_slot(srv, c->addr);
        if (!*slot && (*slot = calloc(1, sizeof(**slot))))
            memcpy((*slot)->addr, c->addr, 16);
        if (*slot)
            (*slot)->n++;
        c->deadline_ms = rb_now_ms() + srv->cfg.request_timeout_ms;
        if (c->deadline_ms < srv->conn_next_due_ms) {
            wake = srv->conn_next_due_ms == INT64_MAX;
            srv->conn_next_due_ms = c->deadline_ms;
        }
        c->next = srv->conns;
        if (c->next)
            c->next->prev = c;
        srv->conns = c;
        srv->nconns++;
        pthread_mutex_unlock(&srv->mu);
        *socket_context = c;
        if (wake)
            rb_http_watcher_wake(srv);
        return;
    }
    if (!c)
        return;
    pthread_mutex_lock(&srv->mu);
    slot = ip_slot(srv, c->addr);
    if (*slot && --(*slot)->n == 0) {
        ip_count *dead = *slot;
        *slot = dead->next;
        free(dead);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    pthread_mutex_unlock(&srv->mu);
    free(c);
    *socket_context = NULL;
}

int64_t rb_http_sweep_deadlines(rb_http_server *srv, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    char msg[320];
    int len;

    for (conn_info *c = srv->conns; c; c = c->next) {
        if (!c->deadline_ms || c->timed_out)
            continue;
        if (c->deadline_ms > now_ms) {
            if (c->deadline_ms < next)
                next = c->deadline_ms;
            continue;
        }
        c->timed_out = 1;
        srv->timed_out++;
        if (c->fd >= 0) {
            char body[160];
            int blen = snprintf(body, sizeof body,
                                "{\"error\":{\"code\":\"REQUEST_TIMEOUT\",\"message\":"
                                "\"request not complete within %d ms\"}}",
                                srv->cfg.request_timeout_ms);
            len = snprintf(msg, sizeof msg,
                           "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                           "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                           blen, body);
            /* Best effort: a client that reads nothing may not take it. */
            ssize_t w = send(c->fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    return next;
}

void rb_http_server_stats(rb_http_server *srv, rb_http_stats *out)
{
    pthread_mutex_lock(&srv->mu);
    out->connections = srv->nconns;
    out->max_connections = srv->cfg.max_connections;
    out->refused = srv->refused;
    out->timed_out = srv->timed_out;
    out->last_refused_ms = srv->last_refused_ms;
    pthread_mutex_unlock(&srv->mu);
}

/* Makes room for max_connections descriptors: raises the soft limit towards the hard one, and
 * lowers the connection limit when even that is too low. */
void rb_http_fit_fd_limit(rb_http_server *srv)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)srv->cfg.max_connections + FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        int fit = rl.rlim_cur > FD_RESERVE + RB_HTTP_MIN_CONNECTIONS
                      ? (int)(rl.rlim_cur - FD_RESERVE)
                      : RB_HTTP_MIN_CONNECTIONS;
        rb_log(RB_LOG_WARN, srv->component,
               "open-file limit %lu allows %d connections, not the %d asked for",
               (unsigned long)rl.rlim_cur, fit, srv->cfg.max_connections);
        srv->cfg.max_connections = fit;
    }
}

void rb_http_conns_release(rb_http_server *srv)
{
    for (int i = 0; i < RB_HTTP_IP_BUCKETS; i++)
        while (srv->ips[i]) {
            ip_count *next = srv->ips[i]->next;
            free(srv->ips[i]);
            srv->ips[i] = next;
        }
}
