/* tests/integration/test_ctl_runtime.c -- the controller runtime against a real etcd (one
 * per test): informers (listing, events in order, re-list after compaction, write-through),
 * and whole controller processes running ctl_main() with a small test controller: leader
 * election between two replicas, take-over after SIGKILL and after SIGTERM, /healthz and
 * /metrics, flags.
 *
 * The controller processes are this test binary itself: run with CTL_TEST_CHILD=1 in its
 * environment, a constructor runs ctl_main() with test_def before Criterion's main starts
 * (glibc hands constructors argc and argv). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "etcdclient/etcd.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

/* --- the test controller (child processes) ------------------------------------------------ */

struct child {
    struct ctl *c;
    struct informer *inf;
    struct wq *q;
    char *marker_prefix;
    int64_t pause_ms;
    int64_t copies;
    int fail_setup;
};

static enum status child_reconcile(void *arg, const char *key, struct err *e)
{
    struct child *ch = arg;
    struct etcd_txn *t = etcd_txn_new();
    struct etcd_txn_result res = {0};
    char *mk = xasprintf("%s%s", ch->marker_prefix, ctl_id(ch->c));
    char *val = xasprintf("{\"id\":\"%s\",\"key\":\"%s\"}", ctl_id(ch->c), key);
    enum status st;

    if (ch->pause_ms)
        time_sleep_ms(ch->pause_ms);
    ctl_txn_fence(ch->c, t);
    etcd_txn_put(t, ETCD_THEN, mk, val, strlen(val), 0);
    st = etcd_txn_commit(ctl_etcd(ch->c), t, &res, e);
    if (st == ST_OK && !res.succeeded)
        st = err_set(e, ST_CONFLICT, "not the leader any more");
    etcd_txn_result_release(&res);
    etcd_txn_free(t);
    free(mk);
    free(val);
    return st;
}

static void child_handler(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct child *ch = arg;

    (void)o;
    (void)n;
    wq_add(ch->q, key);
}

static enum status child_setup(struct ctl *c, void *state, struct err *e)
{
    struct child *ch = state;

    if (ch->fail_setup)
        return err_set(e, ST_INVALID, "told to fail by --fail-setup");
    ch->c = c;
    ch->inf = ctl_informer(c, "/t/work/", child_handler, ch);
    ch->q = ctl_wq(c, "work", child_reconcile, ch, 0);
    return ST_OK;
}

static void child_resync(struct ctl *c, void *state)
{
    struct child *ch = state;
    struct ctl_obj *objs;
    size_t n = informer_list(ch->inf, "/t/work/", &objs);

    (void)c;
    for (size_t i = 0; i < n; i++)
        wq_add(ch->q, objs[i].key);
    ctl_objs_free(objs, n);
}

static struct child child_state;

static const struct ctl_opt child_opts[] = {
    {"marker-prefix", "CTLTEST_MARKER_PREFIX", CTL_OPT_STRING, &child_state.marker_prefix,
     "/t/acted/", 0, 0, "where reconciles write their marker"},
    {"pause", NULL, CTL_OPT_DURATION, &child_state.pause_ms, "0", 0, 60000,
     "sleep this long in every reconcile"},
    {"copies", NULL, CTL_OPT_INT, &child_state.copies, "1", 1, 10, "an integer option"},
    {"fail-setup", NULL, CTL_OPT_FLAG, &child_state.fail_setup, NULL, 0, 0,
     "make setup() fail"},
    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct ctl_def child_def = {
    .name = "ctltest",
    .summary = "a controller for the runtime's tests",
    .http_port = 9399,
    .opts = child_opts,
    .setup = child_setup,
    .resync = child_resync,
};

__attribute__((constructor)) static void maybe_child(int argc, char **argv)
{
    if (!getenv("CTL_TEST_CHILD"))
        return;
    exit(ctl_main(argc, argv, &child_def, &child_state));
}

/* --- fixture ------------------------------------------------------------------------------ */

static struct etcd_proc ep;
static struct etcd *ec;
static char *dir;
static pid_t kids[2];
static char *kid_logs[2];

static void setup(void)
{
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_proc_start(&ep), 0, "cannot start etcd");
    o.endpoints = ep.endpoint;
    ec = etcd_create(&o, &e);
    cr_assert_not_null(ec, "%s", e.msg);
    dir = proc_tempdir("ctlrt");
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++) {
        if (kids[i] > 0)
            proc_stop(kids[i], SIGKILL, 5000);
        kids[i] = 0;
        FREE_AND_NULL(kid_logs[i]);
    }
    etcd_destroy(ec);
    ec = NULL;
    etcd_proc_cleanup(&ep);
    if (dir)
        proc_rmtree(dir);
    FREE_AND_NULL(dir);
}

TestSuite(ctl_runtime, .init = setup, .fini = teardown, .timeout = 120);

static int64_t put(const char *key, const char *val)
{
    struct err e = ERR_INIT;
    int64_t rev = 0;

    cr_assert_eq(etcd_put(ec, key, val, strlen(val), 0, NULL, &rev, &e), ST_OK, "put %s: %s",
                 key, e.msg);
    return rev;
}

static int64_t del(const char *key)
{
    struct err e = ERR_INIT;
    struct etcd_txn *t = etcd_txn_new();
    struct etcd_txn_result r = {0};
    int64_t rev;

    etcd_txn_delete(t, ETCD_THEN, key, NULL);
    cr_assert_eq(etcd_txn_commit(ec, t, &r, &e), ST_OK, "delete %s: %s", key, e.msg);
    rev = r.revision;
    etcd_txn_result_release(&r);
    etcd_txn_free(t);
    return rev;
}

static int64_t current_rev(void)
{
    struct etcd_range_opts o = {0};
    struct etcd_range_result r = {0};
    struct err e = ERR_INIT;
    int64_t rev;

    o.count_only = 1;
    cr_assert_eq(etcd_range(ec, "/", &o, &r, &e), ST_OK, "%s", e.msg);
    rev = r.revision;
    etcd_range_result_release(&r);
    return rev;
}

/* --- recording handler --- */

#define MAXEV 256

struct events {
    pthread_mutex_t mu;
    char ev[MAXEV][96]; /* "+key=value", "~key=value", "-key" */
    int n;
};

static void rec_handler(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct events *r = arg;
    char *v = n ? json_dumps(n, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    pthread_mutex_lock(&r->mu);
    if (r->n < MAXEV) {
        if (!n)
            snprintf(r->ev[r->n], sizeof(r->ev[0]), "-%s", key);
        else
            snprintf(r->ev[r->n], sizeof(r->ev[0]), "%c%s=%s", o ? '~' : '+', key, v);
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    free(v);
}

static int ev_n(struct events *r)
{
    int n;

    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void wait_events(struct events *r, int n, int ms)
{
    int64_t end = time_mono_ms() + ms;

    while (ev_n(r) < n && time_mono_ms() < end)
        time_sleep_ms(10);
}

static void wait_synced(struct informer *inf)
{
    int64_t end = time_mono_ms() + 10000;

    while (!informer_synced(inf) && time_mono_ms() < end)
        time_sleep_ms(10);
    cr_assert(informer_synced(inf), "informer did not sync");
}

static void expect_events(struct events *r, const char *const *want, int n)
{
    wait_events(r, n, 5000);
    time_sleep_ms(100); /* nothing more may come */
    for (int i = 0; i < n && i < r->n; i++)
        cr_expect_str_eq(r->ev[i], want[i], "event %d", i);
    cr_assert_eq(ev_n(r), n, "got %d events, want %d (last: %s)", ev_n(r), n,
                 r->n ? r->ev[r->n - 1] : "none");
}

/* --- informers in-process ------------------------------------------------------------------ */

Test(ctl_runtime, informer_lists_existing_keys_then_sees_puts_and_deletes_in_order)
{
    static struct events r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct ctl *c = ctl_new_for_test(NULL, NULL, ec, 1);
    struct informer *inf = ctl_informer(c, "/t/", rec_handler, &r);
    int64_t rev, mr = 0;
    json_t *v;

    put("/t/b", "2");
    put("/t/a", "1");
    put("/t/notjson", "{oops");
    put("/u/outside", "1");
    ctl_start_for_test(c);
    wait_synced(inf);
    put("/t/c", "3");
    put("/t/a", "{\"x\":1}");
    del("/t/b");
    rev = put("/t/c", "33");
    const char *const want[] = {"+/t/a=1", "+/t/b=2", "+/t/c=3", "~/t/a={\"x\":1}", "-/t/b",
                                "~/t/c=33"};
    expect_events(&r, want, 6);
    cr_assert_eq(informer_revision(inf), rev);
    v = informer_get(inf, "/t/c", &mr, NULL);
    cr_assert_eq(json_integer_value(v), 33);
    cr_assert_eq(mr, rev);
    json_decref(v);
    cr_assert_null(informer_get(inf, "/t/notjson", NULL, NULL));
    cr_assert_eq(informer_count(inf, "/t/"), 2);
    ctl_free_for_test(c);
}

Test(ctl_runtime, compaction_past_the_watch_revision_relists_and_delivers_the_difference)
{
    static struct events r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct ctl *c = ctl_new_for_test(NULL, NULL, ec, 1);
    struct informer *inf = ctl_informer(c, "/t/", rec_handler, &r);
    struct err e = ERR_INIT;
    char *metrics;

    put("/t/a", "1");
    put("/t/b", "2");
    put("/t/c", "3");
    ctl_start_for_test(c);
    wait_synced(inf);
    wait_events(&r, 3, 2000);
    informer_hold_for_test(inf, 1); /* watch stopped at the current revision */
    put("/t/a", "10");
    del("/t/b");
    put("/t/d", "4");
    put("/t/c", "30");
    put("/t/c", "3"); /* changed and changed back: no difference to deliver */
    put("/t/e", "5");
    del("/t/e"); /* came and went: nothing either */
    cr_assert_eq(etcd_compact(ec, current_rev(), &e), ST_OK, "%s", e.msg);
    informer_hold_for_test(inf, 0);
    const char *const want[] = {"+/t/a=1", "+/t/b=2", "+/t/c=3", "~/t/a=10",
                                "-/t/b",   "~/t/c=3", "+/t/d=4"};
    /* /t/c was rewritten (new mod_revision), so it is delivered even with the same value */
    expect_events(&r, want, 7);
    cr_assert_eq(informer_count(inf, "/t/"), 3);
    cr_assert_eq(informer_revision(inf), current_rev());
    metrics = ctl__metrics_render(c);
    cr_assert(strstr(metrics, "kontena_informer_relists_total{prefix=\"/t/\"} 1\n"), "%s",
              metrics);
    free(metrics);
    /* and the new watch goes on from the listing */
    put("/t/f", "6");
    const char *const more[] = {"+/t/a=1", "+/t/b=2", "+/t/c=3", "~/t/a=10", "-/t/b",
                                "~/t/c=3", "+/t/d=4", "+/t/f=6"};
    expect_events(&r, more, 8);
    ctl_free_for_test(c);
}

Test(ctl_runtime, write_through_suppresses_stale_events)
{
    static struct events r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct ctl *c = ctl_new_for_test(NULL, NULL, ec, 1);
    struct informer *inf = ctl_informer(c, "/t/", rec_handler, &r);
    int64_t r2, r3;
    json_t *v2 = json_integer(2), *got;

    put("/t/y", "1");
    ctl_start_for_test(c);
    wait_synced(inf);
    wait_events(&r, 1, 2000);
    informer_hold_for_test(inf, 1); /* the watch lags behind our own writes */
    put("/t/x", "1");
    r2 = put("/t/x", "2");
    informer_store(inf, "/t/x", v2, r2); /* write-through of our second write */
    put("/t/y", "5");
    r3 = del("/t/y");
    informer_forget(inf, "/t/y", r3);
    got = informer_get(inf, "/t/x", NULL, NULL);
    cr_assert_eq(json_integer_value(got), 2);
    json_decref(got);
    cr_assert_null(informer_get(inf, "/t/y", NULL, NULL));
    informer_hold_for_test(inf, 0);
    put("/t/z", "9"); /* a marker: once it is seen, the stale events were processed */
    const char *const want[] = {"+/t/y=1", "+/t/z=9"};
    expect_events(&r, want, 2);
    got = informer_get(inf, "/t/x", NULL, NULL);
    cr_assert_eq(json_integer_value(got), 2, "a late event brought back an old value");
    json_decref(got);
    cr_assert_null(informer_get(inf, "/t/y", NULL, NULL), "a late put resurrected /t/y");
    /* past the tombstone, the key can come back through the watch */
    put("/t/y", "7");
    const char *const more[] = {"+/t/y=1", "+/t/z=9", "+/t/y=7"};
    expect_events(&r, more, 3);
    json_decref(v2);
    ctl_free_for_test(c);
}

/* --- whole processes ---------------------------------------------------------------------- */

static pid_t spawn_kid(int i, const char *id, const char *ttl, const char *http,
                       const char *const extra[])
{
    const char *argv[24];
    int n = 0;
    const char *const env[] = {"CTL_TEST_CHILD=1", NULL};

    argv[n++] = "/proc/self/exe";
    argv[n++] = "--etcd-endpoints";
    argv[n++] = ep.endpoint;
    argv[n++] = "--id";
    argv[n++] = id;
    argv[n++] = "--lease-ttl";
    argv[n++] = ttl;
    argv[n++] = "--http-listen";
    argv[n++] = http;
    argv[n++] = "--resync-interval";
    argv[n++] = "1s";
    for (int k = 0; extra && extra[k] && n < 23; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    free(kid_logs[i]);
    kid_logs[i] = xasprintf("%s/%s.log", dir, id);
    kids[i] = proc_spawn(argv, env, kid_logs[i]);
    cr_assert(kids[i] > 0);
    return kids[i];
}

static int count_prefix(const char *prefix)
{
    struct etcd_range_opts o = {0};
    struct etcd_range_result r = {0};
    struct err e = ERR_INIT;
    int n;

    o.range_end = ETCD_PREFIX;
    o.count_only = 1;
    cr_assert_eq(etcd_range(ec, prefix, &o, &r, &e), ST_OK, "%s", e.msg);
    n = (int)r.count;
    etcd_range_result_release(&r);
    return n;
}

static int key_exists(const char *key)
{
    struct etcd_kv kv = {0};
    struct err e = ERR_INIT;
    enum status st = etcd_get(ec, key, &kv, NULL, &e);

    etcd_kv_release(&kv);
    return st == ST_OK;
}

/* Wait up to ms for key to exist; returns the ms it took or -1. */
static int64_t wait_key(const char *key, int ms)
{
    int64_t t0 = time_mono_ms(), end = t0 + ms;

    while (time_mono_ms() < end) {
        if (key_exists(key))
            return time_mono_ms() - t0;
        time_sleep_ms(20);
    }
    return -1;
}

/* The id in /kontena/leaders/ctltest, fresh memory, or NULL. */
static char *leader_id(void)
{
    struct etcd_kv kv = {0};
    struct err e = ERR_INIT;
    char *id = NULL;

    if (etcd_get(ec, "/kontena/leaders/ctltest", &kv, NULL, &e) == ST_OK) {
        json_t *v = json_loads(kv.value, 0, NULL);
        const char *s = json_string_value(json_object_get(v, "id"));
        id = s ? xstrdup(s) : NULL;
        json_decref(v);
    }
    etcd_kv_release(&kv);
    return id;
}

static void dump_logs(void)
{
    for (int i = 0; i < 2; i++)
        if (kid_logs[i])
            proc_dump_file(kid_logs[i]);
}

static void assert_clean_exit(int i, int status)
{
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        dump_logs();
        cr_assert_fail("replica %d did not exit 0 after SIGTERM (status %d)", i, status);
    }
    kids[i] = 0;
}

/* Two replicas; returns which one leads (0 or 1) once one has acted. */
static int two_replicas(const char *ttl)
{
    char *lid;
    int leader;

    put("/t/work/1", "{}");
    spawn_kid(0, "r0", ttl, "off", NULL);
    spawn_kid(1, "r1", ttl, "off", NULL);
    int64_t end = time_mono_ms() + 8000;
    while (count_prefix("/t/acted/") == 0 && time_mono_ms() < end)
        time_sleep_ms(20);
    if (count_prefix("/t/acted/") == 0) {
        dump_logs();
        cr_assert_fail("no replica acted");
    }
    time_sleep_ms(1500); /* resyncs every 1 s: a second actor would show by now */
    if (count_prefix("/t/acted/") != 1) {
        dump_logs();
        cr_assert_fail("%d replicas acted", count_prefix("/t/acted/"));
    }
    leader = key_exists("/t/acted/r0") ? 0 : 1;
    lid = leader_id();
    cr_assert_not_null(lid);
    cr_assert_str_eq(lid, leader ? "r1" : "r0");
    free(lid);
    return leader;
}

Test(ctl_runtime, two_replicas_one_acts_and_the_other_takes_over_after_sigkill_within_ttl)
{
    int leader = two_replicas("2s"), other = 1 - leader;
    char *other_marker = xasprintf("/t/acted/r%d", other);
    int64_t took;

    proc_stop(kids[leader], SIGKILL, 5000);
    kids[leader] = 0;
    took = wait_key(other_marker, 2000 + 3000);
    if (took == -1)
        dump_logs();
    cr_assert(took != -1, "the standby did not act within the lease TTL + 3 s");
    cr_assert(took >= 500, "the standby acted after %lld ms: before the lease could expire",
              (long long)took);
    assert_clean_exit(other, proc_stop(kids[other], SIGTERM, 10000));
    free(other_marker);
}

Test(ctl_runtime, sigterm_gives_the_lease_back_and_the_standby_takes_over_at_once)
{
    int leader = two_replicas("10s"), other = 1 - leader;
    char *other_marker = xasprintf("/t/acted/r%d", other);
    int64_t t0 = time_mono_ms(), took;

    assert_clean_exit(leader, proc_stop(kids[leader], SIGTERM, 10000));
    took = wait_key(other_marker, 5000);
    if (took == -1)
        dump_logs();
    cr_assert(took != -1, "the standby did not take over");
    took = time_mono_ms() - t0;
    cr_assert(took < 3000, "take-over after SIGTERM took %lld ms (lease TTL 10 s)",
              (long long)took);
    assert_clean_exit(other, proc_stop(kids[other], SIGTERM, 10000));
    free(other_marker);
}

Test(ctl_runtime, a_stalled_leader_is_fenced_once_its_lease_expired)
{
    int leader = two_replicas("2s"), other = 1 - leader;
    char *mine = xasprintf("/t/acted/r%d", leader), *theirs = xasprintf("/t/acted/r%d", other);
    struct err e = ERR_INIT;
    int64_t end;

    /* the leader stops (a long GC pause, SIGSTOP) past its lease: the standby takes over */
    kill(kids[leader], SIGSTOP);
    cr_assert_eq(etcd_delete(ec, mine, NULL, NULL, &e), ST_OK, "%s", e.msg);
    int64_t took = wait_key(theirs, 6000);
    if (getenv("CTL_TEST_SHOW_LOGS"))
        fprintf(stderr, "standby acted after %lld ms\n", (long long)took);
    if (took == -1) {
        kill(kids[leader], SIGCONT);
        dump_logs();
        cr_assert_fail("the standby did not take over from a stopped leader");
    }
    /* woken up, the old leader's resync fires at once; its writes carry the fence of a key
     * that is gone, so none lands, and it notices it lost the lease */
    kill(kids[leader], SIGCONT);
    end = time_mono_ms() + 3000;
    while (time_mono_ms() < end) {
        if (key_exists(mine)) {
            dump_logs();
            cr_assert_fail("the stalled leader wrote after losing its lease");
        }
        time_sleep_ms(20);
    }
    assert_clean_exit(leader, proc_stop(kids[leader], SIGTERM, 10000));
    assert_clean_exit(other, proc_stop(kids[other], SIGTERM, 10000));
    {
        char *out = NULL;
        const char *argv[] = {"cat", kid_logs[leader], NULL};
        proc_run(argv, NULL, NULL, &out, NULL);
        if (getenv("CTL_TEST_SHOW_LOGS"))
            fprintf(stderr, "%s", out);
        cr_assert(strstr(out, "lost the leadership"), "%s", out);
        free(out);
    }
    free(mine);
    free(theirs);
}

Test(ctl_runtime, healthz_after_sync_and_metrics_with_leader_and_queue_series)
{
    int port = proc_free_port();
    char *listen = xasprintf("127.0.0.1:%d", port);
    char *hz = xasprintf("http://127.0.0.1:%d/healthz", port);
    char *mu = xasprintf("http://127.0.0.1:%d/metrics", port);
    struct http_reply rep = {0};

    put("/t/work/a", "{}");
    spawn_kid(0, "m0", "2s", listen, NULL);
    if (proc_wait_http(hz, 200, 10000) != 0) {
        dump_logs();
        cr_assert_fail("/healthz never answered 200");
    }
    cr_assert_neq(wait_key("/t/acted/m0", 5000), -1);
    time_sleep_ms(200);
    cr_assert_eq(http_do("GET", mu, NULL, NULL, 0, NULL, &rep), 0);
    cr_assert_eq(rep.status, 200);
    cr_assert(strstr(rep.body, "# TYPE kontena_leader gauge\nkontena_leader 1\n"), "%s",
              rep.body);
    cr_assert(strstr(rep.body, "kontena_workqueue_depth{queue=\"work\"} 0\n"), "%s", rep.body);
    cr_assert(strstr(rep.body, "kontena_workqueue_adds_total{queue=\"work\"} "), "%s", rep.body);
    cr_assert(strstr(rep.body, "kontena_reconcile_total{queue=\"work\",result=\"ok\"} "), "%s",
              rep.body);
    cr_assert(strstr(rep.body, "kontena_reconcile_seconds_count{queue=\"work\"} "), "%s",
              rep.body);
    cr_assert(strstr(rep.body, "kontena_informer_events_total{prefix=\"/t/work/\"} 1\n"), "%s",
              rep.body);
    cr_assert(strstr(rep.body, "kontena_etcd_errors_total "), "%s", rep.body);
    http_reply_release(&rep);
    cr_assert_eq(http_do("GET", hz, NULL, NULL, 0, NULL, &rep), 0);
    cr_assert_str_eq(rep.body, "ok\n");
    http_reply_release(&rep);

    /* etcd gone: /healthz says so */
    etcd_proc_stop(&ep);
    int64_t end = time_mono_ms() + 8000;
    do {
        http_reply_release(&rep);
        cr_assert_eq(http_do("GET", hz, NULL, NULL, 0, NULL, &rep), 0);
        if (rep.status == 503)
            break;
        time_sleep_ms(100);
    } while (time_mono_ms() < end);
    cr_assert_eq(rep.status, 503, "%s", rep.body);
    cr_assert(strstr(rep.body, "/t/work/") || strstr(rep.body, "etcd"), "%s", rep.body);
    http_reply_release(&rep);
    etcd_proc_restart(&ep);
    if (proc_wait_http(hz, 200, 15000) != 0) {
        dump_logs();
        cr_assert_fail("/healthz not 200 again after etcd came back");
    }
    assert_clean_exit(0, proc_stop(kids[0], SIGTERM, 10000));
    free(listen);
    free(hz);
    free(mu);
}

static int run_self(const char *const args[], char **out, char **err)
{
    const char *argv[16];
    const char *const env[] = {"CTL_TEST_CHILD=1", NULL};
    int n = 0;

    argv[n++] = "/proc/self/exe";
    for (int k = 0; args[k] && n < 15; k++)
        argv[n++] = args[k];
    argv[n] = NULL;
    return proc_run(argv, env, NULL, out, err);
}

Test(ctl_runtime, bad_flags_are_usage_errors_with_status_2)
{
    const char *const cases[][4] = {
        {"--workers", "0", NULL, "bad --workers '0'"},
        {"--lease-ttl", "1s", NULL, "bad --lease-ttl '1s'"},
        {"--http-listen", "nowhere", NULL, "bad --http-listen 'nowhere'"},
        {"--pause", "soon", NULL, "bad --pause 'soon'"},
        {"--copies", "11", NULL, "bad --copies '11'"},
        {"--no-such-flag", NULL, NULL, "See 'kontena-ctltest --help'"},
        {"extra", NULL, NULL, "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *out = NULL, *err = NULL;
        const char *args[3] = {cases[i][0], cases[i][1], NULL};
        int st = run_self(args, &out, &err);
        cr_expect_eq(st, 2, "%s: status %d", cases[i][0], st);
        cr_expect(strstr(err, cases[i][3]), "%s: stderr '%s'", cases[i][0], err);
        free(out);
        free(err);
    }
    /* a failing setup() is a start failure: status 1 with the reason */
    {
        char *out = NULL, *err = NULL;
        char *ep_arg = xstrdup(ep.endpoint);
        const char *args[] = {"--fail-setup", "--etcd-endpoints", ep_arg, "--http-listen",
                              "off", NULL};
        int st = run_self(args, &out, &err);
        cr_expect_eq(st, 1, "status %d", st);
        cr_expect(strstr(err, "told to fail by --fail-setup"), "stderr '%s'", err);
        free(out);
        free(err);
        free(ep_arg);
    }
}

Test(ctl_runtime, help_lists_every_flag)
{
    const char *args[] = {"--help", NULL};
    const char *flags[] = {"--etcd-endpoints", "--http-listen", "--id", "--leader-elect",
                           "--no-leader-elect", "--lease-ttl", "--resync-interval",
                           "--workers", "--log-level", "--help", "--version",
                           "--marker-prefix", "--pause", "--copies", "--fail-setup",
                           "--no-fail-setup", "CTLTEST_MARKER_PREFIX", "127.0.0.1:9399",
                           "a controller for the runtime's tests", "kontena-ctltest"};
    char *out = NULL, *err = NULL;
    int st = run_self(args, &out, &err);

    cr_assert_eq(st, 0, "status %d: %s", st, err);
    for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
        cr_expect(strstr(out, flags[i]), "--help lacks '%s':\n%s", flags[i], out);
    free(out);
    free(err);
}
