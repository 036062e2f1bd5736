/* tests/unit/test_ctl_wq.c -- the controller runtime's work queue: de-duplication, the
 * dirty/processing sets, backoff, delayed adds; and the runtime's informer cache with a
 * seeded (etcd-less) informer and its write-through rules. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "controllers/runtime/ctl_int.h"
#include "common/banned.h"

#define MAXREC 256

struct rec {
    pthread_mutex_t mu;
    char keys[MAXREC][32];
    int64_t at[MAXREC];
    int n;
    atomic_int inflight, max_inflight;
    atomic_int fail_left;   /* fail this many times, then succeed */
    int sleep_ms;
    atomic_int gate;        /* while 1, reconciles of "slow" wait */
};

static enum status rec_fn(void *arg, const char *key, struct err *e)
{
    struct rec *r = arg;
    int now = atomic_fetch_add(&r->inflight, 1) + 1;
    int m = atomic_load(&r->max_inflight);

    while (now > m && !atomic_compare_exchange_weak(&r->max_inflight, &m, now))
        ;
    pthread_mutex_lock(&r->mu);
    if (r->n < MAXREC) {
        snprintf(r->keys[r->n], sizeof(r->keys[0]), "%s", key);
        r->at[r->n] = time_mono_ms();
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    if (strcmp(key, "slow") == 0)
        while (atomic_load(&r->gate))
            time_sleep_ms(2);
    if (r->sleep_ms)
        time_sleep_ms(r->sleep_ms);
    atomic_fetch_sub(&r->inflight, 1);
    if (atomic_load(&r->fail_left) > 0) {
        atomic_fetch_sub(&r->fail_left, 1);
        return err_set(e, ST_RETRY, "failing on purpose");
    }
    return ST_OK;
}

static int rec_count(struct rec *r, const char *key)
{
    int c = 0;

    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        c += strcmp(r->keys[i], key) == 0;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static int rec_n(struct rec *r)
{
    int n;

    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void wait_n(struct rec *r, int n, int ms)
{
    int64_t end = time_mono_ms() + ms;

    while (rec_n(r) < n && time_mono_ms() < end)
        time_sleep_ms(5);
}

static struct rec *rec_new(void)
{
    struct rec *r = calloc(1, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    return r;
}

TestSuite(ctl_wq, .timeout = 60);

Test(ctl_wq, adding_a_queued_key_twice_reconciles_it_once)
{
    struct rec *r = rec_new();
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct wq *q = ctl_wq(c, "t", rec_fn, r, 1);

    /* queued before the workers run: all adds of "a" collapse into one */
    wq_add(q, "a");
    wq_add(q, "b");
    wq_add(q, "a");
    wq_add(q, "a");
    cr_assert_eq(wq_len(q), 2);
    ctl_start_for_test(c);
    wait_n(r, 2, 2000);
    time_sleep_ms(100);
    cr_assert_eq(rec_count(r, "a"), 1);
    cr_assert_eq(rec_count(r, "b"), 1);
    cr_assert_str_eq(r->keys[0], "a"); /* FIFO */
    cr_assert_eq(wq_len(q), 0);
    ctl_free_for_test(c);
    free(r);
}

Test(ctl_wq, key_added_while_processing_runs_again_once_never_concurrently)
{
    struct rec *r = rec_new();
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 4);
    struct wq *q = ctl_wq(c, "t", rec_fn, r, 4);

    atomic_store(&r->gate, 1);
    ctl_start_for_test(c);
    wq_add(q, "slow");
    wait_n(r, 1, 2000);
    cr_assert_eq(rec_n(r), 1);
    /* processing now: more adds mark it dirty; idle workers must not take it */
    for (int i = 0; i < 10; i++)
        wq_add(q, "slow");
    time_sleep_ms(100);
    cr_assert_eq(rec_count(r, "slow"), 1);
    cr_assert_eq(atomic_load(&r->max_inflight), 1);
    atomic_store(&r->gate, 0);
    wait_n(r, 2, 2000);
    time_sleep_ms(100);
    cr_assert_eq(rec_count(r, "slow"), 2);
    cr_assert_eq(atomic_load(&r->max_inflight), 1);
    ctl_free_for_test(c);
    free(r);
}

Test(ctl_wq, many_keys_many_threads_each_key_at_most_once_at_a_time)
{
    struct rec *r = rec_new();
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 8);
    struct wq *q = ctl_wq(c, "t", rec_fn, r, 8);

    r->sleep_ms = 1;
    ctl_start_for_test(c);
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 20; i++) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", i);
            wq_add(q, k);
        }
    time_sleep_ms(500);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        int n = rec_count(r, k);
        cr_assert(n >= 1 && n <= 5, "%s reconciled %d times", k, n);
    }
    ctl_free_for_test(c);
    free(r);
}

Test(ctl_wq, backoff_grows_and_success_resets_it)
{
    struct rec *r = rec_new();
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct wq *q = ctl_wq(c, "t", rec_fn, r, 1);

    cr_assert_eq(wq__backoff_ms(1), 100);
    cr_assert_eq(wq__backoff_ms(2), 200);
    cr_assert_eq(wq__backoff_ms(4), 800);
    cr_assert_eq(wq__backoff_ms(20), 30000);
    cr_assert_eq(wq__backoff_ms(1000), 30000);

    atomic_store(&r->fail_left, 3);
    ctl_start_for_test(c);
    wq_add(q, "x");
    wait_n(r, 4, 5000); /* fails 3 times: retried after 100, 200, 400 ms */
    cr_assert_eq(rec_n(r), 4);
    int64_t d1 = r->at[1] - r->at[0], d2 = r->at[2] - r->at[1], d3 = r->at[3] - r->at[2];
    cr_assert(d1 >= 95 && d1 < 400, "first retry after %lld ms", (long long)d1);
    cr_assert(d2 >= 195 && d2 < 600, "second retry after %lld ms", (long long)d2);
    cr_assert(d3 >= 395 && d3 < 1000, "third retry after %lld ms", (long long)d3);
    time_sleep_ms(300);
    cr_assert_eq(rec_n(r), 4, "a success is not retried");

    /* the success reset the count: the next failure waits the base delay again */
    atomic_store(&r->fail_left, 1);
    wq_add(q, "x");
    wait_n(r, 6, 3000);
    cr_assert_eq(rec_n(r), 6);
    int64_t d5 = r->at[5] - r->at[4];
    cr_assert(d5 >= 95 && d5 < 400, "retry after a reset took %lld ms", (long long)d5);
    ctl_free_for_test(c);
    free(r);
}

Test(ctl_wq, add_after_fires_in_due_order_and_the_earlier_delay_wins)
{
    struct rec *r = rec_new();
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct wq *q = ctl_wq(c, "t", rec_fn, r, 1);
    int64_t t0;

    ctl_start_for_test(c);
    t0 = time_mono_ms();
    wq_add_after(q, "c", 300);
    wq_add_after(q, "a", 100);
    wq_add_after(q, "b", 200);
    wq_add_after(q, "a", 1000); /* later: the pending 100 ms wins */
    wq_add_after(q, "b", 50);   /* earlier: replaces 200 ms */
    cr_assert_eq(wq_len(q), 0, "delayed keys are not waiting yet");
    wait_n(r, 3, 3000);
    cr_assert_eq(rec_n(r), 3);
    cr_assert_str_eq(r->keys[0], "b");
    cr_assert_str_eq(r->keys[1], "a");
    cr_assert_str_eq(r->keys[2], "c");
    cr_assert(r->at[0] - t0 >= 45 && r->at[0] - t0 < 180);
    cr_assert(r->at[1] - t0 >= 95);
    cr_assert(r->at[2] - t0 >= 295);
    time_sleep_ms(1200);
    cr_assert_eq(rec_n(r), 3, "the replaced and the superseded delays do not fire again");
    ctl_free_for_test(c);
    free(r);
}

Test(ctl_wq, workers_wait_for_leadership)
{
    struct rec *r = rec_new();
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct wq *q = ctl_wq(c, "t", rec_fn, r, 1);

    ctl_start_for_test(c);
    ctl__set_leader(c, 0, -1, 0);
    wq_add(q, "a");
    time_sleep_ms(150);
    cr_assert_eq(rec_n(r), 0);
    ctl__set_leader(c, 1, 5, 0);
    wait_n(r, 1, 2000);
    cr_assert_eq(rec_n(r), 1);
    ctl_free_for_test(c);
    free(r);
}

Test(ctl_wq, duration_parsing)
{
    cr_assert_eq(ctl_parse_duration("500ms"), 500);
    cr_assert_eq(ctl_parse_duration("30s"), 30000);
    cr_assert_eq(ctl_parse_duration("2m"), 120000);
    cr_assert_eq(ctl_parse_duration("1h"), 3600000);
    cr_assert_eq(ctl_parse_duration("1m30s"), 90000);
    cr_assert_eq(ctl_parse_duration("7"), 7000);
    cr_assert_eq(ctl_parse_duration(""), -1);
    cr_assert_eq(ctl_parse_duration("s"), -1);
    cr_assert_eq(ctl_parse_duration("5x"), -1);
    cr_assert_eq(ctl_parse_duration("-5s"), -1);
    cr_assert_eq(ctl_parse_duration("99999999999999999999s"), -1);
}

/* --- the cache, seeded without etcd --- */

Test(ctl_wq, seeded_informer_lists_sorted_by_prefix_and_counts)
{
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct informer *inf = ctl_informer(c, "/t/", NULL, NULL);
    struct ctl_obj *objs;
    json_t *v;
    size_t n;
    char k[64];

    for (int i = 999; i >= 0; i--) {
        snprintf(k, sizeof(k), "/t/%s/%03d", i % 2 ? "odd" : "even", i);
        v = json_pack("{s:i}", "i", i);
        informer_store(inf, k, v, 100 + i);
        json_decref(v);
    }
    cr_assert_eq(informer_count(inf, ""), 1000);
    cr_assert_eq(informer_count(inf, "/t/odd/"), 500);
    cr_assert_eq(informer_count(inf, "/t/od"), 500);
    cr_assert_eq(informer_count(inf, "/t/none/"), 0);
    n = informer_list(inf, "/t/odd/", &objs);
    cr_assert_eq(n, 500);
    for (size_t i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "/t/odd/%03zu", 2 * i + 1);
        cr_assert_str_eq(objs[i].key, k);
        cr_assert_eq(objs[i].mod_rev, 100 + 2 * (int64_t)i + 1);
        cr_assert_eq(objs[i].create_rev, objs[i].mod_rev);
    }
    ctl_objs_free(objs, n);

    int64_t mr = 0, cr = 0;
    v = informer_get(inf, "/t/even/010", &mr, &cr);
    cr_assert_not_null(v);
    cr_assert_eq(json_integer_value(json_object_get(v, "i")), 10);
    cr_assert_eq(mr, 110);
    json_decref(v);
    cr_assert_null(informer_get(inf, "/t/even/011", NULL, NULL));
    ctl_free_for_test(c);
}

Test(ctl_wq, write_through_ignores_older_revisions_and_forget_leaves_a_tombstone)
{
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct informer *inf = ctl_informer(c, "/t/", NULL, NULL);
    json_t *v1 = json_string("one"), *v2 = json_string("two"), *got;
    int64_t mr;

    informer_store(inf, "/t/a", v2, 20);
    informer_store(inf, "/t/a", v1, 10); /* older: ignored */
    got = informer_get(inf, "/t/a", &mr, NULL);
    cr_assert_str_eq(json_string_value(got), "two");
    cr_assert_eq(mr, 20);
    json_decref(got);

    informer_forget(inf, "/t/a", 30);
    cr_assert_null(informer_get(inf, "/t/a", NULL, NULL));
    cr_assert_eq(informer_count(inf, "/t/"), 0);
    informer_store(inf, "/t/a", v1, 25); /* older than the delete: stays deleted */
    cr_assert_null(informer_get(inf, "/t/a", NULL, NULL));
    informer_store(inf, "/t/a", v1, 31); /* newer: back */
    got = informer_get(inf, "/t/a", NULL, NULL);
    cr_assert_str_eq(json_string_value(got), "one");
    json_decref(got);
    json_decref(v1);
    json_decref(v2);
    ctl_free_for_test(c);
}

static int seen;
static void metric_count_handler(void *arg, const char *key, const json_t *o, const json_t *n)
{
    (void)arg;
    (void)key;
    (void)o;
    (void)n;
    seen++;
}

Test(ctl_wq, metrics_render_in_prometheus_text)
{
    struct ctl *c = ctl_new_for_test(NULL, NULL, NULL, 1);
    struct ctl_metric *m = ctl_counter(c, "kontena_things_total{kind=\"a\"}", "things done");
    struct ctl_metric *m2 = ctl_counter(c, "kontena_things_total{kind=\"b\"}", "things done");
    char *text;

    (void)ctl_informer(c, "/t/", metric_count_handler, NULL);
    cr_assert_eq(ctl_counter(c, "kontena_things_total{kind=\"a\"}", "x"), m);
    ctl_metric_add(m, 2);
    ctl_metric_add(m2, 1);
    ctl_metric_set(ctl_gauge(c, "kontena_g", "a gauge"), 7.5);
    (void)ctl_wq(c, "nodes", rec_fn, NULL, 1);
    text = ctl__metrics_render(c);
    cr_assert(strstr(text, "# TYPE kontena_things_total counter\n"
                           "kontena_things_total{kind=\"a\"} 2\n"
                           "kontena_things_total{kind=\"b\"} 1\n"),
              "%s", text);
    cr_assert(strstr(text, "kontena_g 7.5\n"), "%s", text);
    cr_assert(strstr(text, "kontena_leader 0\n"), "%s", text);
    cr_assert(strstr(text, "kontena_workqueue_depth{queue=\"nodes\"} 0\n"), "%s", text);
    cr_assert(strstr(text, "# TYPE kontena_reconcile_seconds summary\n"), "%s", text);
    cr_assert(strstr(text, "kontena_informer_relists_total{prefix=\"/t/\"} 0\n"), "%s", text);
    free(text);
    ctl_free_for_test(c);
}
