#include "tests/support/httpload.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define MAX_THREADS 32
#define MAX_WHO 256
#define MAX_FAILURES 20
#define BODY_CAP 4096

struct who {
    char *name;
    int64_t first_us, last_us, count;
};

struct failure {
    int64_t at_us;
    char *why;
};

struct httpload {
    struct httpload_opts o;
    char *url, *host_header;
    pthread_t threads[MAX_THREADS];
    int n_threads;
    atomic_int stop;
    atomic_llong started, ok, failed;
    int64_t t0_ms, t_end_ms; /* t_end_ms: 0 while running */
    pthread_mutex_t mu;      /* guards who[], failures[] and t_end_ms */
    struct who who[MAX_WHO];
    int n_who;
    struct failure failures[MAX_FAILURES];
    int n_failures;
    int stopped;
};

struct body {
    char data[BODY_CAP];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t len = size * n, room = BODY_CAP - 1 - b->len;

    memcpy(b->data + b->len, p, len < room ? len : room);
    b->len += len < room ? len : room;
    return len;
}

static void record_ok(struct httpload *l, const char *body)
{
    size_t n = strcspn(body, "\r\n");
    int64_t now = time_now_us();
    int i;

    pthread_mutex_lock(&l->mu);
    for (i = 0; i < l->n_who; i++)
        if (strlen(l->who[i].name) == n && !strncmp(l->who[i].name, body, n))
            break;
    if (i == l->n_who && i < MAX_WHO) {
        l->who[i].name = xasprintf("%.*s", (int)n, body);
        l->who[i].first_us = now;
        l->who[i].count = 0;
        l->n_who++;
    }
    if (i < l->n_who) {
        l->who[i].last_us = now;
        l->who[i].count++;
    }
    pthread_mutex_unlock(&l->mu);
}

static void record_failure(struct httpload *l, char *why)
{
    pthread_mutex_lock(&l->mu);
    if (l->n_failures < MAX_FAILURES) {
        l->failures[l->n_failures].at_us = time_now_us();
        l->failures[l->n_failures].why = why;
        l->n_failures++;
        why = NULL;
    }
    pthread_mutex_unlock(&l->mu);
    free(why);
}

struct worker {
    struct httpload *l;
    int index;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct httpload *l = w->l;
    int index = w->index, keepalive = index % 2 == 0;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    int64_t k = 0, start = time_mono_ms();

    free(w);
    if (!h) {
        record_failure(l, xstrdup("curl_easy_init failed"));
        atomic_fetch_add(&l->failed, 1);
        return NULL;
    }
    if (l->host_header)
        hdr = curl_slist_append(NULL, l->host_header);
    curl_easy_setopt(h, CURLOPT_URL, l->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)l->o.timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    if (!keepalive) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    }
    while (!atomic_load(&l->stop)) {
        struct body b;
        char ebuf[CURL_ERROR_SIZE];
        CURLcode rc;
        long status = 0;

        if (time_mono_ms() - l->t0_ms >= l->o.max_ms ||
            atomic_fetch_add(&l->started, 1) >= l->o.max_requests)
            break;
        b.len = 0;
        ebuf[0] = '\0';
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
        rc = curl_easy_perform(h);
        b.data[b.len] = '\0';
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK && status == 200) {
            atomic_fetch_add(&l->ok, 1);
            record_ok(l, b.data);
        } else {
            atomic_fetch_add(&l->failed, 1);
            if (rc != CURLE_OK)
                record_failure(l, xasprintf("thread %d (%s): %s", index,
                                            keepalive ? "keep-alive" : "new connection",
                                            ebuf[0] ? ebuf : curl_easy_strerror(rc)));
            else
                record_failure(l, xasprintf("thread %d (%s): HTTP %ld: %.200s", index,
                                            keepalive ? "keep-alive" : "new connection", status,
                                            b.data));
        }
        k++;
        if (l->o.rate > 0) {
            int64_t next = start + k * 1000 / l->o.rate, now = time_mono_ms();
            if (next > now)
                time_sleep_ms(next - now);
        }
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    return NULL;
}

struct httpload *httpload_start(const struct httpload_opts *o)
{
    struct httpload *l;

    if (!o->url || o->threads < 0 || o->threads > MAX_THREADS || o->rate < 0) {
        fprintf(stderr, "httpload: bad options (url %s, %d threads, rate %d)\n",
                o->url ? o->url : "(none)", o->threads, o->rate);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: not thread-safe */
    l = xmalloc(sizeof(*l));
    memset(l, 0, sizeof(*l));
    l->o = *o;
    if (!l->o.threads)
        l->o.threads = 2;
    if (!l->o.max_requests)
        l->o.max_requests = 1000000;
    if (!l->o.max_ms)
        l->o.max_ms = 300000;
    if (!l->o.timeout_ms)
        l->o.timeout_ms = 5000;
    l->url = xstrdup(o->url);
    l->host_header = o->host ? xasprintf("Host: %s", o->host) : NULL;
    pthread_mutex_init(&l->mu, NULL);
    l->t0_ms = time_mono_ms();
    for (int i = 0; i < l->o.threads; i++) {
        struct worker *w = xmalloc(sizeof(*w));
        w->l = l;
        w->index = i;
        if (pthread_create(&l->threads[i], NULL, worker_main, w) != 0) {
            fprintf(stderr, "httpload: cannot start thread %d\n", i);
            free(w);
            httpload_destroy(l);
            return NULL;
        }
        l->n_threads++;
    }
    return l;
}

void httpload_stop(struct httpload *l)
{
    if (!l || l->stopped)
        return;
    atomic_store(&l->stop, 1);
    for (int i = 0; i < l->n_threads; i++)
        pthread_join(l->threads[i], NULL);
    l->stopped = 1;
    pthread_mutex_lock(&l->mu);
    l->t_end_ms = time_mono_ms();
    pthread_mutex_unlock(&l->mu);
}

void httpload_destroy(struct httpload *l)
{
    if (!l)
        return;
    httpload_stop(l);
    for (int i = 0; i < l->n_who; i++)
        free(l->who[i].name);
    for (int i = 0; i < l->n_failures; i++)
        free(l->failures[i].why);
    pthread_mutex_destroy(&l->mu);
    free(l->url);
    free(l->host_header);
    free(l);
}

int64_t httpload_ok(struct httpload *l)
{
    return atomic_load(&l->ok);
}

int64_t httpload_failed(struct httpload *l)
{
    return atomic_load(&l->failed);
}

/* field: 0 first, 1 last, 2 count */
static int64_t who_field(struct httpload *l, const char *who, int field)
{
    int64_t v = field == 2 ? 0 : -1;

    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n_who; i++)
        if (!strcmp(l->who[i].name, who)) {
            v = field == 0 ? l->who[i].first_us : field == 1 ? l->who[i].last_us : l->who[i].count;
            break;
        }
    pthread_mutex_unlock(&l->mu);
    return v;
}

int64_t httpload_first_seen(struct httpload *l, const char *who)
{
    return who_field(l, who, 0);
}

int64_t httpload_last_seen(struct httpload *l, const char *who)
{
    return who_field(l, who, 1);
}

int64_t httpload_count(struct httpload *l, const char *who)
{
    return who_field(l, who, 2);
}

int64_t httpload_wait_seen(struct httpload *l, const char *who, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms, t;

    while ((t = httpload_first_seen(l, who)) < 0 && time_mono_ms() < deadline)
        time_sleep_ms(5);
    return t;
}

double httpload_rps(struct httpload *l)
{
    int64_t end, n = httpload_ok(l) + httpload_failed(l);

    pthread_mutex_lock(&l->mu);
    end = l->t_end_ms ? l->t_end_ms : time_mono_ms();
    pthread_mutex_unlock(&l->mu);
    return end > l->t0_ms ? (double)n * 1000.0 / (double)(end - l->t0_ms) : 0.0;
}

void httpload_report(struct httpload *l, FILE *f)
{
    char ts[40];

    fprintf(f, "httpload %s%s%s: %lld ok, %lld failed, %.0f requests/s, %d threads\n", l->url,
            l->host_header ? " " : "", l->host_header ? l->host_header : "",
            (long long)httpload_ok(l), (long long)httpload_failed(l), httpload_rps(l),
            l->o.threads);
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->n_who; i++) {
        time_iso8601(l->who[i].first_us, ts, sizeof(ts));
        fprintf(f, "  %-40s %8lld responses, first at %s\n", l->who[i].name,
                (long long)l->who[i].count, ts);
    }
    for (int i = 0; i < l->n_failures; i++) {
        time_iso8601(l->failures[i].at_us, ts, sizeof(ts));
        fprintf(f, "  failure at %s: %s\n", ts, l->failures[i].why);
    }
    pthread_mutex_unlock(&l->mu);
}
