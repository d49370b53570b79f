/*
 * loadgen: a single-threaded epoll WebSocket echo load generator (libc only).
 *
 *   cc -O2 -o loadgen loadgen.c
 *   ./loadgen HOST PORT PATH CONNECTIONS MSG_BYTES IN_FLIGHT DURATION_S WARMUP_S [SERVER_PID]
 *
 * Opens CONNECTIONS WebSocket connections to ws://HOST:PORT/PATH (HOST must be
 * 127.0.0.1: this tool refuses any other target), offering no extensions. Each
 * connection keeps IN_FLIGHT masked text messages of MSG_BYTES ASCII bytes in
 * flight: every echoed message received is answered with a new one. Sending
 * and the warmup start once every connection is open (at most 64 handshakes
 * are pending at a time); the measured window is the DURATION_S seconds after
 * the warmup. Echoes are checked (opcode, length, bytes).
 *
 * With SERVER_PID, the server's CPU time (utime + stime of the whole process
 * from /proc/PID/stat) is sampled at the two edges of the measured window.
 *
 * Prints one line, e.g.
 *   msgs=812345 secs=5.000 msgs_per_sec=162469 client_cpu_pct=41.2
 *   server_cpu_secs=8.12 server_cpu_pct=162.4 server_cpu_us_per_msg=10.00
 *   server_user_pct=70.1 conns=100 setup_secs=0.04 errors=0 mismatches=0
 * and exits 0, or prints "error=..." on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

struct conn {
    int fd;
    enum state st;
    unsigned char *rbuf;   /* unparsed inbound bytes */
    size_t rlen, rcap;
    unsigned char *wbuf;   /* outbound bytes not yet written */
    size_t woff, wlen, wcap;
    int want_out;          /* EPOLLOUT registered */
    /* reassembly of fragmented messages (counted at FIN) */
    int in_msg;            /* inside a fragmented data message */
    size_t msg_len;
};

static const char *KEY = "dGhlIHNhbXBsZSBub25jZQ==";            /* RFC 6455 sample */
static const char *ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";     /* its accept value */
static const unsigned char MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

static struct conn *conns;
static int nconns, epfd;
static size_t msg_size;
static unsigned char *payload;     /* the plain payload, for checking echoes */
static unsigned char *frame;       /* one complete masked client frame */
static size_t frame_len;
static char req[1024];
static size_t req_len;
static long long counted, errors, mismatches;
static int counting;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime (all threads) of a process, in seconds; -1 if unreadable.
   *user gets utime alone. */
static double proc_cpu(int pid, double *user) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* now at field 3 (state) */
    unsigned long long ut = 0, stt = 0;
    for (int field = 3; field <= 15 && *p; field++) {
        if (field == 14) ut = strtoull(p, NULL, 10);
        if (field == 15) stt = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
        if (!p) break;
        p++;
    }
    double tck = (double)sysconf(_SC_CLK_TCK);
    *user = (double)ut / tck;
    return (double)(ut + stt) / tck;
}

static void die(const char *msg) {
    fprintf(stderr, "error=%s errno=%s\n", msg, strerror(errno));
    exit(1);
}

static void ensure(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    unsigned char *nb = realloc(*buf, c);
    if (!nb) die("out of memory");
    *buf = nb;
    *cap = c;
}

static void set_events(struct conn *c, int out) {
    if (c->want_out == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
    c->want_out = out;
}

static void kill_conn(struct conn *c, const char *why) {
    if (c->st == ST_DEAD) return;
    fprintf(stderr, "conn %d closed: %s\n", (int)(c - conns), why);
    errors++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->st = ST_DEAD;
}

static void queue(struct conn *c, const void *data, size_t len) {
    if (c->woff > 0 && c->woff == c->wlen) c->woff = c->wlen = 0;
    ensure(&c->wbuf, &c->wcap, c->wlen + len);
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
}

/* Write as much as the socket takes; register EPOLLOUT for the rest. */
static void flush(struct conn *c) {
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) { c->woff += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { set_events(c, 1); return; }
        kill_conn(c, "write failed");
        return;
    }
    c->woff = c->wlen = 0;
    set_events(c, 0);
}

/* A masked control frame from the client (pong or close), payload <= 125. */
static void queue_control(struct conn *c, int opcode, const unsigned char *data, size_t len) {
    unsigned char f[2 + 4 + 125];
    if (len > 125) len = 125;
    f[0] = 0x80 | (unsigned char)opcode;
    f[1] = 0x80 | (unsigned char)len;
    memcpy(f + 2, MASK, 4);
    for (size_t i = 0; i < len; i++) f[6 + i] = data[i] ^ MASK[i & 3];
    queue(c, f, 6 + len);
}

/* Parse complete server frames from rbuf. Returns 0, or -1 if the conn died. */
static int parse_frames(struct conn *c) {
    size_t off = 0;
    while (c->rlen - off >= 2) {
        unsigned char *p = c->rbuf + off;
        size_t avail = c->rlen - off;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0f;
        if (p[0] & 0x70) { kill_conn(c, "reserved bits set (compression?)"); return -1; }
        if (p[1] & 0x80) { kill_conn(c, "masked server frame"); return -1; }
        uint64_t len = p[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = ((uint64_t)p[2] << 8) | p[3];
            hdr = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
            hdr = 10;
        }
        if (len > (1u << 26)) { kill_conn(c, "frame too large"); return -1; }
        if (avail < hdr + len) {
            ensure(&c->rbuf, &c->rcap, hdr + (size_t)len + 65536);
            break;
        }
        unsigned char *data = p + hdr;
        off += hdr + (size_t)len;
        switch (opcode) {
        case 0x1: case 0x2: case 0x0:
            if (opcode == 0x0 && !c->in_msg) { kill_conn(c, "unexpected continuation"); return -1; }
            if (opcode != 0x0 && c->in_msg) { kill_conn(c, "new message inside fragmented one"); return -1; }
            if (opcode == 0x2) mismatches++; /* we only send text */
            if (!fin) { c->in_msg = 1; c->msg_len += (size_t)len; break; }
            if (c->in_msg) {
                c->msg_len += (size_t)len;
                if (c->msg_len != msg_size) mismatches++;
            } else if (len != msg_size || memcmp(data, payload, msg_size) != 0) {
                mismatches++;
            }
            c->in_msg = 0;
            c->msg_len = 0;
            if (counting) counted++;
            queue(c, frame, frame_len);
            break;
        case 0x9: /* ping -> pong */
            queue_control(c, 0xA, data, (size_t)len);
            break;
        case 0xA: break;
        case 0x8:
            kill_conn(c, "server sent close");
            return -1;
        default:
            kill_conn(c, "unknown opcode");
            return -1;
        }
    }
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 0;
}

static int nopen;

static int in_flight;

static void on_open(struct conn *c) {
    c->st = ST_OPEN;
    nopen++;
}

static void handle_handshake(struct conn *c) {
    c->rbuf[c->rlen] = 0;
    char *end = strstr((char *)c->rbuf, "\r\n\r\n");
    if (!end) {
        if (c->rlen > 8192) kill_conn(c, "handshake response too long");
        return;
    }
    size_t hlen = (size_t)(end - (char *)c->rbuf) + 4;
    if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "handshake response: %.*s\n", (int)hlen, c->rbuf);
        kill_conn(c, "upgrade refused");
        return;
    }
    if (!memmem(c->rbuf, hlen, ACCEPT, strlen(ACCEPT))) { kill_conn(c, "bad Sec-WebSocket-Accept"); return; }
    if (memmem(c->rbuf, hlen, "deflate", 7)) { kill_conn(c, "server negotiated compression"); return; }
    memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
    c->rlen -= hlen;
    on_open(c);
    /* Messages start only once every connection is open (see main). */
    if (c->rlen > 0) parse_frames(c);
}

static void on_readable(struct conn *c) {
    for (;;) {
        ensure(&c->rbuf, &c->rcap, c->rlen + 16384 + 1);
        size_t space = c->rcap - c->rlen - 1; /* keep one byte for the handshake's NUL */
        ssize_t n = read(c->fd, c->rbuf + c->rlen, space);
        if (n > 0) {
            c->rlen += (size_t)n;
            if ((size_t)n < space) break; /* short read: socket drained */
            continue;
        }
        if (n == 0) { kill_conn(c, "server closed the connection"); return; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        kill_conn(c, "read failed");
        return;
    }
    if (c->st == ST_HANDSHAKE) { handle_handshake(c); return; }
    if (parse_frames(c) == 0) flush(c);
}

static int next_to_connect;
static struct sockaddr_in addr;
static int connecting; /* connections in ST_CONNECTING or ST_HANDSHAKE */
#define MAX_CONNECTING 64

static void start_connect(int i) {
    struct conn *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket (raise ulimit -n?)");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) die("connect");
    c->st = ST_CONNECTING;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
    connecting++;
}

int main(int argc, char **argv) {
    if (argc < 9 || argc > 10) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNECTIONS MSG_BYTES IN_FLIGHT DURATION_S WARMUP_S [SERVER_PID]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    if (strcmp(host, "127.0.0.1") != 0) {
        fprintf(stderr, "error=refusing host %s: only 127.0.0.1 is allowed\n", host);
        return 2;
    }
    int port = atoi(argv[2]);
    const char *path = argv[3];
    nconns = atoi(argv[4]);
    msg_size = (size_t)atol(argv[5]);
    in_flight = atoi(argv[6]);
    double duration = atof(argv[7]), warmup = atof(argv[8]);
    int server_pid = argc == 10 ? atoi(argv[9]) : 0;
    if (port <= 0 || port > 65535 || nconns <= 0 || in_flight <= 0 || duration <= 0 || warmup < 0 ||
        msg_size > (1u << 24) || path[0] != '/') {
        fprintf(stderr, "error=bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    payload = malloc(msg_size + 1);
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
    for (size_t i = 0; i < msg_size; i++) payload[i] = (unsigned char)alphabet[i % (sizeof alphabet - 1)];
    frame = malloc(msg_size + 14);
    size_t h = 0;
    frame[h++] = 0x81; /* FIN + text */
    if (msg_size < 126) {
        frame[h++] = 0x80 | (unsigned char)msg_size;
    } else if (msg_size < 65536) {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(msg_size >> 8);
        frame[h++] = (unsigned char)msg_size;
    } else {
        frame[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) frame[h++] = (unsigned char)((uint64_t)msg_size >> (8 * i));
    }
    memcpy(frame + h, MASK, 4);
    h += 4;
    for (size_t i = 0; i < msg_size; i++) frame[h + i] = payload[i] ^ MASK[i & 3];
    frame_len = h + msg_size;

    req_len = (size_t)snprintf(req, sizeof req,
                               "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                               path, port, KEY);
    if (req_len >= sizeof req) { fprintf(stderr, "error=path too long\n"); return 2; }

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");

    struct epoll_event *evs = calloc(1024, sizeof *evs);
    double t_start = now(), t_all_open = 0, t_measure = 0, t_end = 0;
    double cpu0 = 0, srv0 = 0, srvu0 = 0, srvu1 = 0;
    int phase = 0; /* 0 connecting, 1 warmup, 2 measuring */

    for (;;) {
        while (next_to_connect < nconns && connecting < MAX_CONNECTING) start_connect(next_to_connect++);
        int n = epoll_wait(epfd, evs, 1024, 5);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            if (c->st == ST_DEAD) continue;
            uint32_t e = evs[k].events;
            if (c->st == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) { errno = err; kill_conn(c, "connect failed"); connecting--; continue; }
                if (!(e & (EPOLLOUT | EPOLLIN))) continue;
                c->st = ST_HANDSHAKE;
                queue(c, req, req_len);
                flush(c);
                continue;
            }
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int was_handshake = c->st == ST_HANDSHAKE;
                on_readable(c);
                if (was_handshake && c->st != ST_HANDSHAKE) connecting--;
            }
            if (c->st != ST_DEAD && (e & EPOLLOUT) && c->st != ST_CONNECTING) flush(c);
        }
        double t = now();
        if (phase == 0) {
            if (errors > 0) { fprintf(stderr, "error=connections failed during setup (%lld)\n", errors); return 1; }
            if (nopen == nconns) {
                phase = 1;
                t_all_open = t;
                for (int i = 0; i < nconns; i++) {
                    for (int j = 0; j < in_flight; j++) queue(&conns[i], frame, frame_len);
                    flush(&conns[i]);
                }
                t_measure = t + warmup;
                t_end = t_measure + duration;
            } else if (t - t_start > 60) {
                fprintf(stderr, "error=only %d of %d connections open after 60 s\n", nopen, nconns);
                return 1;
            }
        }
        if (phase == 1 && t >= t_measure) {
            phase = 2;
            counting = 1;
            counted = 0;
            cpu0 = self_cpu();
            if (server_pid) srv0 = proc_cpu(server_pid, &srvu0);
            t_measure = now();
        }
        if (phase == 2 && t >= t_end) {
            double t1 = now();
            double cpu1 = self_cpu();
            double srv1 = server_pid ? proc_cpu(server_pid, &srvu1) : 0;
            double secs = t1 - t_measure;
            printf("msgs=%lld secs=%.3f msgs_per_sec=%.0f client_cpu_pct=%.1f", counted, secs, counted / secs,
                   100.0 * (cpu1 - cpu0) / secs);
            if (server_pid) {
                double scpu = srv1 - srv0;
                printf(" server_cpu_secs=%.2f server_cpu_pct=%.1f server_cpu_us_per_msg=%.2f server_user_pct=%.1f", scpu,
                       100.0 * scpu / secs, counted ? 1e6 * scpu / counted : 0.0, 100.0 * (srvu1 - srvu0) / secs);
            }
            printf(" conns=%d setup_secs=%.2f errors=%lld mismatches=%lld\n", nconns, t_all_open - t_start, errors,
                   mismatches);
            fflush(stdout);
            return (errors || mismatches) ? 1 : 0;
        }
    }
}
