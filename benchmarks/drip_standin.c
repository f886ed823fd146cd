/* The dripping stand-in as one small epoll loop: what drip_standin.py runs by default.
 *
 * The same wire as drip_standin.js (nginx + njs), for a fraction of its CPU and memory per stream: njs
 * runs a script per token and keeps every buffer it sent in the request's pool until the stream ends,
 * which at thousands of open streams made the stand-in a bottleneck of its own (see open_streams.py).
 *
 *   drip_standin PORT TOKENS INTERVAL_MS MODEL PROMPT_TOKENS COMPLETION_JSON_FILE MODELS_JSON_FILE
 *
 *   GET  /v1/models, /sse/v1/models   the models file
 *   POST /v1/chat/completions         the completion file, or the dripped stream when Accept names
 *                                     text/event-stream
 *   POST /sse/v1/chat/completions     the dripped stream
 *
 * A stream: the role chunk at once, then one content chunk ("word<i> ", one token) every INTERVAL_MS,
 * TOKENS of them or the request's max_tokens if fewer (finish_reason "length" then), then the finish
 * chunk, the usage chunk and [DONE] in one write. HTTP/1.1 keep-alive, chunked streams.
 *
 * Timers: one timerfd ticking every millisecond and a wheel of INTERVAL_MS slots; a stream sits in the
 * slot of the millisecond it started and is served each time the wheel comes round, so a token costs one
 * write(2) and nothing else. A late tick (the machine was busy) serves every slot it passed, late.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define IN_SIZE 16384

struct conn {
    int fd;
    size_t in_len;
    char *out; /* bytes the socket would not take yet */
    size_t out_len, out_cap;
    int streaming, sent, tokens, length_cut, close_after;
    int slot;
    struct conn *prev, *next; /* in the wheel slot */
    char in[IN_SIZE];
};

static int tokens_default, interval, prompt_tokens, epfd;
static char *completion_body, *models_body, head[512];
static size_t completion_len, models_len;
static struct conn **wheel;
static uint64_t tick;
static int listen_marker, timer_marker;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    if (fread(data, 1, (size_t)n, f) != (size_t)n) die(path);
    fclose(f);
    data[n] = 0;
    *len = (size_t)n;
    return data;
}

static void unslot(struct conn *c) {
    if (c->slot < 0) return;
    if (c->prev) c->prev->next = c->next;
    else wheel[c->slot] = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->slot = -1;
}

static void enslot(struct conn *c) {
    c->slot = (int)(tick % (uint64_t)interval);
    c->prev = NULL;
    c->next = wheel[c->slot];
    if (c->next) c->next->prev = c;
    wheel[c->slot] = c;
}

/* Closed at once, freed after this batch of events: a later event of the batch may still name it. */
static struct conn *graveyard;

static void drop(struct conn *c) {
    if (c->fd < 0) return;
    unslot(c);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->next = graveyard;
    graveyard = c;
}

static void bury(void) {
    while (graveyard) {
        struct conn *c = graveyard;
        graveyard = c->next;
        free(c->out);
        free(c);
    }
}

static void want_out(struct conn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write now what the socket takes; keep the rest for EPOLLOUT. Returns -1 when the peer is gone. */
static int emit(struct conn *c, const char *data, size_t len) {
    if (c->out_len == 0) {
        ssize_t n = write(c->fd, data, len);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            n = 0;
        }
        data += n;
        len -= (size_t)n;
        if (len == 0) return 0;
        want_out(c, 1);
    }
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static int flush_out(struct conn *c) {
    while (c->out_len) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    want_out(c, 0);
    return 0;
}

/* One chunk of the chunked body. */
static int emit_chunk(struct conn *c, const char *data, size_t len) {
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%zx\r\n%.*s\r\n", len, (int)len, data);
    return emit(c, buf, (size_t)n);
}

static int respond(struct conn *c, const char *type, const char *body, size_t len, int status) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                     status, status == 200 ? "OK" : "Not Found", type, len,
                     c->close_after ? "Connection: close\r\n" : "");
    if (emit(c, buf, (size_t)n) < 0 || emit(c, body, len) < 0) return -1;
    return 0;
}

static int start_stream(struct conn *c, const char *body, size_t body_len) {
    c->tokens = tokens_default;
    c->length_cut = 0;
    const char *key = memmem(body, body_len, "\"max_tokens\"", 12);
    if (key) {
        const char *p = key + 12, *end = body + body_len;
        while (p < end && (*p == ' ' || *p == ':')) p++;
        if (p < end && *p >= '0' && *p <= '9') {
            long asked = strtol(p, NULL, 10);
            if (asked < c->tokens) {
                c->tokens = (int)asked;
                c->length_cut = 1;
            }
        }
    }
    static const char start[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    char event[1024];
    int n = snprintf(event, sizeof event, "data: %s\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
                     head);
    if (emit(c, start, sizeof start - 1) < 0 || emit_chunk(c, event, (size_t)n) < 0) return -1;
    c->streaming = 1;
    c->sent = 0;
    enslot(c);
    return 0;
}

static int serve_requests(struct conn *c);

/* A wheel turn came to this stream: its next token, or its end. */
static int drip(struct conn *c) {
    char event[2048];
    int n;
    if (c->sent < c->tokens) {
        n = snprintf(event, sizeof event,
                     "data: %s\"content\":\"word%d \"},\"finish_reason\":null}]}\n\n", head, c->sent);
        c->sent++;
        return emit_chunk(c, event, (size_t)n);
    }
    /* The usage chunk has no `choices` entry: the head up to `"choices"`, then its own. */
    const char *choices = strstr(head, "\"choices\"");
    n = snprintf(event, sizeof event,
                 "data: %s},\"finish_reason\":\"%s\"}]}\n\n"
                 "data: %.*s\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                 "\"total_tokens\":%d}}\n\n"
                 "data: [DONE]\n\n",
                 head, c->length_cut ? "length" : "stop", (int)(choices - head), head, prompt_tokens, c->tokens,
                 prompt_tokens + c->tokens);
    unslot(c);
    c->streaming = 0;
    if (emit_chunk(c, event, (size_t)n) < 0 || emit(c, "0\r\n\r\n", 5) < 0) return -1;
    if (c->close_after) return -1;
    return serve_requests(c); /* a request that came early (pipelined) */
}

static int header_has(const char *headers, size_t len, const char *name, const char *needle) {
    size_t name_len = strlen(name);
    for (const char *line = headers; line < headers + len;) {
        const char *eol = memmem(line, (size_t)(headers + len - line), "\r\n", 2);
        if (!eol) eol = headers + len;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            if (!needle) return 1;
            for (const char *p = line + name_len + 1; p + strlen(needle) <= eol; p++)
                if (strncasecmp(p, needle, strlen(needle)) == 0) return 1;
        }
        line = eol + 2;
    }
    return 0;
}

static long content_length(const char *headers, size_t len) {
    for (const char *line = headers; line < headers + len;) {
        const char *eol = memmem(line, (size_t)(headers + len - line), "\r\n", 2);
        if (!eol) eol = headers + len;
        if (eol - line > 15 && strncasecmp(line, "content-length:", 15) == 0) return strtol(line + 15, NULL, 10);
        line = eol + 2;
    }
    return 0;
}

/* Answer every complete request in the buffer, until one starts a stream. -1: close the connection. */
static int serve_requests(struct conn *c) {
    while (!c->streaming && c->in_len) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) return c->in_len == IN_SIZE ? -1 : 0;
        size_t head_len = (size_t)(end - c->in) + 4;
        long body_len = content_length(c->in, head_len);
        if (body_len < 0 || head_len + (size_t)body_len > IN_SIZE) return -1;
        if (c->in_len < head_len + (size_t)body_len) return 0;
        char *body = c->in + head_len;
        char *path = memchr(c->in, ' ', head_len);
        if (!path) return -1;
        path++;
        char *path_end = memchr(path, ' ', head_len - (size_t)(path - c->in));
        if (!path_end) return -1;
        size_t path_len = (size_t)(path_end - path);
        c->close_after = header_has(c->in, head_len, "connection", "close");
        int failed;
#define PATH_IS(literal) (path_len == sizeof(literal) - 1 && memcmp(path, literal, path_len) == 0)
        if (PATH_IS("/v1/models") || PATH_IS("/sse/v1/models")) {
            failed = respond(c, "application/json", models_body, models_len, 200);
        } else if (PATH_IS("/sse/v1/chat/completions") ||
                   (PATH_IS("/v1/chat/completions") && header_has(c->in, head_len, "accept", "event-stream"))) {
            failed = start_stream(c, body, (size_t)body_len);
        } else if (PATH_IS("/v1/chat/completions")) {
            failed = respond(c, "application/json", completion_body, completion_len, 200);
        } else {
            failed = respond(c, "text/plain", "not found\n", 10, 404);
        }
        size_t used = head_len + (size_t)body_len;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (failed) return -1;
        if (!c->streaming && c->close_after) return -1;
    }
    return 0;
}

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->in_len == IN_SIZE) { /* a request larger than the buffer */
            drop(c);
            return;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, IN_SIZE - c->in_len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            drop(c);
            return;
        }
        if (n < 0) break;
        c->in_len += (size_t)n;
    }
    if (serve_requests(c) < 0) drop(c);
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or out of descriptors: the rest wait in the backlog */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        memset(c, 0, offsetof(struct conn, in)); /* the input buffer's pages stay untouched until used */
        c->fd = fd;
        c->slot = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void on_tick(int timer) {
    uint64_t expirations;
    if (read(timer, &expirations, sizeof expirations) != sizeof expirations) return;
    while (expirations--) {
        tick++;
        struct conn *c = wheel[tick % (uint64_t)interval];
        while (c) {
            struct conn *next = c->next; /* `drip` may take `c` out of the slot, or close it */
            if (drip(c) < 0) drop(c);
            c = next;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s PORT TOKENS INTERVAL_MS MODEL PROMPT_TOKENS COMPLETION_FILE MODELS_FILE\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    tokens_default = atoi(argv[2]);
    interval = atoi(argv[3]) > 0 ? atoi(argv[3]) : 1;
    snprintf(head, sizeof head,
             "{\"id\":\"chatcmpl-drip\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"%s\","
             "\"choices\":[{\"index\":0,\"delta\":{",
             argv[4]);
    prompt_tokens = atoi(argv[5]);
    completion_body = slurp(argv[6], &completion_len);
    models_body = slurp(argv[7], &models_len);
    wheel = calloc((size_t)interval, sizeof *wheel);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 65535) < 0) die("listen");

    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec every_ms = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
    timerfd_settime(timer, 0, &every_ms, NULL);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_marker};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    ev.data.ptr = &timer_marker;
    epoll_ctl(epfd, EPOLL_CTL_ADD, timer, &ev);

    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(epfd, events, 512, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &listen_marker) accept_all(listener);
            else if (p == &timer_marker) on_tick(timer);
            else {
                struct conn *c = p;
                if (c->fd < 0) continue;
                if (events[i].events & EPOLLOUT) {
                    if (flush_out(c) < 0) {
                        drop(c);
                        continue;
                    }
                }
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            }
        }
        bury();
    }
}
