/* Tests of etcdclient/ against a real etcd (Debian's etcd-server), no mocks.
 *
 * One etcd is shared by the whole binary: started in ReportHook(PRE_ALL) in the runner
 * process, published through $TEST_ETCD_ENDPOINT, stopped in POST_ALL. It runs with 500 ms
 * progress notifications. Each test works under its own prefix /t/<test>/<pid>/. Tests that
 * restart etcd, compact its history or enable auth start a private etcd of their own.
 * PRE_ALL also points $TMPDIR at a per-run directory that POST_ALL removes, so a crashed
 * test (whose .fini never runs) leaves no etcd data behind.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/timeutil.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/proc.h"

#define ENV_ENDPOINT "TEST_ETCD_ENDPOINT"

static const char *progress_args[] = {"--experimental-watch-progress-notify-interval=500ms", NULL};
static struct etcd_proc shared;
static char run_dir[256];

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    const char *tmp = getenv("TMPDIR");

    (void)set;
    snprintf(run_dir, sizeof(run_dir), "%s/test_etcd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(run_dir))
        setenv("TMPDIR", run_dir, 1);
    else
        run_dir[0] = '\0';
    shared.extra_args[0] = progress_args[0];
    if (etcd_proc_start(&shared) == 0)
        setenv(ENV_ENDPOINT, shared.endpoint, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    etcd_proc_cleanup(&shared);
    if (run_dir[0])
        proc_rmtree(run_dir);
}

static const char *endpoint;
static char pfx[160];

static void shared_init(void)
{
    endpoint = getenv(ENV_ENDPOINT);
    cr_assert_not_null(endpoint, "the shared etcd did not start (is etcd-server installed?)");
}

/* One timeout for all suites: Criterion 2.4.1 leaks a small allocation in the runner (which
 * LeakSanitizer reports) when suites with different timeouts run in parallel. */
#define SUITE_TIMEOUT 30
TestSuite(kv, .init = shared_init, .timeout = SUITE_TIMEOUT);
TestSuite(txn, .init = shared_init, .timeout = SUITE_TIMEOUT);
TestSuite(lease, .init = shared_init, .timeout = SUITE_TIMEOUT);
TestSuite(client, .init = shared_init, .timeout = SUITE_TIMEOUT);
TestSuite(watch, .init = shared_init, .timeout = SUITE_TIMEOUT);
TestSuite(private, .timeout = SUITE_TIMEOUT);

/* --- helpers ---------------------------------------------------------------------------- */

#define PREFIX(name) snprintf(pfx, sizeof(pfx), "/t/%s/%d/", name, (int)getpid())

/* pfx + suffix, in one of a few rotating static buffers. */
static const char *K(const char *suffix)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s%s", pfx, suffix);
    return b;
}

static struct etcd *client_for(const char *endpoints)
{
    struct etcd_opts o = {.endpoints = endpoints};
    struct err e = ERR_INIT;
    struct etcd *c = etcd_create(&o, &e);
    cr_assert_not_null(c, "etcd_create: %s", e.msg);
    return c;
}

static struct etcd *client(void)
{
    return client_for(endpoint);
}

static int64_t put(struct etcd *c, const char *key, const char *value)
{
    struct err e = ERR_INIT;
    int64_t rev = 0;
    cr_assert_eq(etcd_put(c, key, value, strlen(value), 0, NULL, &rev, &e), ST_OK, "put: %s",
                 e.msg);
    cr_assert_gt(rev, 0);
    return rev;
}

static void start_private(struct etcd_proc *p)
{
    cr_assert_eq(etcd_proc_start(p), 0, "cannot start a private etcd");
    endpoint = p->endpoint;
}

/* --- kv ----------------------------------------------------------------------------------- */

Test(kv, put_get_and_missing)
{
    struct etcd *c = client();
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    int64_t rev = 0, wrev;
    const char bin[] = {'a', 0, 'b', (char)0xff};

    PREFIX("put_get");
    wrev = put(c, K("k"), "hello");
    cr_assert_eq(etcd_get(c, K("k"), &kv, &rev, &e), ST_OK, "%s", e.msg);
    cr_assert_str_eq(kv.key, K("k"));
    cr_assert_str_eq(kv.value, "hello");
    cr_assert_eq(kv.value_len, 5);
    cr_assert_eq(kv.mod_revision, wrev);
    cr_assert_eq(kv.create_revision, wrev);
    cr_assert_eq(kv.version, 1);
    cr_assert_eq(kv.lease, 0);
    cr_assert_geq(rev, wrev);
    etcd_kv_release(&kv);

    cr_assert_eq(etcd_put(c, K("bin"), bin, sizeof(bin), 0, NULL, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_get(c, K("bin"), &kv, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(kv.value_len, sizeof(bin));
    cr_assert_eq(memcmp(kv.value, bin, sizeof(bin)), 0, "binary values survive base64");
    etcd_kv_release(&kv);

    put(c, K("empty"), "");
    cr_assert_eq(etcd_get(c, K("empty"), &kv, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_str_eq(kv.value, "", "an omitted value is the empty value");
    cr_assert_eq(kv.value_len, 0);
    etcd_kv_release(&kv);

    cr_assert_eq(etcd_get(c, K("missing"), &kv, &rev, &e), ST_NOTFOUND);
    cr_assert_null(kv.key);
    cr_assert(strstr(e.msg, "not found"), "%s", e.msg);
    cr_assert_gt(rev, 0, "the store revision even for a missing key");
    etcd_destroy(c);
}

Test(kv, put_prev_kv_and_lease)
{
    struct etcd *c = client();
    struct etcd_kv prev, kv;
    struct err e = ERR_INIT;
    int64_t rev1, rev2, lease;

    PREFIX("put_prev");
    cr_assert_eq(etcd_put(c, K("k"), "v1", 2, 0, &prev, &rev1, &e), ST_OK, "%s", e.msg);
    cr_assert_null(prev.key, "no previous pair");
    cr_assert_eq(etcd_put(c, K("k"), "v2", 2, 0, &prev, &rev2, &e), ST_OK, "%s", e.msg);
    cr_assert_gt(rev2, rev1);
    cr_assert_str_eq(prev.key, K("k"));
    cr_assert_str_eq(prev.value, "v1");
    cr_assert_eq(prev.mod_revision, rev1);
    etcd_kv_release(&prev);

    cr_assert_eq(etcd_lease_grant(c, 60, &lease, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_put(c, K("leased"), "x", 1, lease, NULL, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_get(c, K("leased"), &kv, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(kv.lease, lease);
    etcd_kv_release(&kv);
    cr_assert_eq(etcd_lease_revoke(c, lease, &e), ST_OK, "%s", e.msg);
    etcd_destroy(c);
}

Test(kv, range_options)
{
    struct etcd *c = client();
    struct etcd_range_result r;
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct err e = ERR_INIT;
    char end[200];

    PREFIX("range");
    for (int i = 1; i <= 5; i++) {
        char k[8], v[8];
        snprintf(k, sizeof(k), "a/%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        put(c, K(k), v);
    }
    put(c, K("b/1"), "other");

    cr_assert_eq(etcd_range(c, K("a/"), &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 5);
    cr_assert_eq(r.count, 5);
    cr_assert_eq(r.more, 0);
    cr_assert_str_eq(r.kvs[0].key, K("a/1"), "ascending by key");
    cr_assert_str_eq(r.kvs[4].value, "v5");
    cr_assert_gt(r.revision, 0);
    etcd_range_result_release(&r);

    o.limit = 2;
    cr_assert_eq(etcd_range(c, K("a/"), &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.count, 5, "count is the whole range");
    cr_assert_eq(r.more, 1);
    etcd_range_result_release(&r);

    o.sort_descend = 1;
    cr_assert_eq(etcd_range(c, K("a/"), &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.kvs[0].key, K("a/5"));
    cr_assert_str_eq(r.kvs[1].key, K("a/4"));
    etcd_range_result_release(&r);

    o = (struct etcd_range_opts){.range_end = ETCD_PREFIX, .keys_only = 1};
    cr_assert_eq(etcd_range(c, pfx, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 6);
    cr_assert_str_eq(r.kvs[5].key, K("b/1"));
    for (size_t i = 0; i < r.n; i++)
        cr_assert_null(r.kvs[i].value, "keys_only leaves values NULL");
    etcd_range_result_release(&r);

    o = (struct etcd_range_opts){.range_end = ETCD_PREFIX, .count_only = 1};
    cr_assert_eq(etcd_range(c, pfx, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(r.count, 6);
    etcd_range_result_release(&r);

    snprintf(end, sizeof(end), "%s", K("a/4"));
    o = (struct etcd_range_opts){.range_end = end};
    cr_assert_eq(etcd_range(c, K("a/2"), &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 2, "[a/2, a/4)");
    cr_assert_str_eq(r.kvs[1].key, K("a/3"));
    etcd_range_result_release(&r);

    cr_assert_eq(etcd_range(c, K("a/9"), NULL, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 0, "a missing single key is an empty range, not an error");
    etcd_range_result_release(&r);
    etcd_destroy(c);
}

Test(kv, range_at_revision)
{
    struct etcd *c = client();
    struct etcd_range_result r;
    struct etcd_range_opts o = {0};
    struct err e = ERR_INIT;
    int64_t rev1;

    PREFIX("range_rev");
    rev1 = put(c, K("k"), "old");
    put(c, K("k"), "new");
    o.revision = rev1;
    cr_assert_eq(etcd_range(c, K("k"), &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.kvs[0].value, "old");
    etcd_range_result_release(&r);
    o.revision = rev1 + 1000000;
    cr_assert_eq(etcd_range(c, K("k"), &o, &r, &e), ST_INVALID, "a future revision");
    etcd_destroy(c);
}

Test(kv, delete_single_prefix_range)
{
    struct etcd *c = client();
    struct etcd_range_result r;
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct err e = ERR_INIT;
    int64_t n = -1;
    char end[200];

    PREFIX("delete");
    put(c, K("one"), "1");
    put(c, K("p/1"), "1");
    put(c, K("p/2"), "2");
    put(c, K("r/a"), "a");
    put(c, K("r/b"), "b");
    put(c, K("r/c"), "c");

    cr_assert_eq(etcd_delete(c, K("one"), NULL, &n, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(etcd_delete(c, K("one"), NULL, &n, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(n, 0, "deleting a missing key deletes nothing");
    cr_assert_eq(etcd_delete(c, K("p/"), ETCD_PREFIX, &n, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(n, 2);
    snprintf(end, sizeof(end), "%s", K("r/c"));
    cr_assert_eq(etcd_delete(c, K("r/a"), end, &n, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(n, 2, "[r/a, r/c)");
    cr_assert_eq(etcd_range(c, pfx, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.count, 1, "only r/c is left");
    etcd_range_result_release(&r);
    etcd_destroy(c);
}

Test(kv, reply_over_cap_is_invalid)
{
    struct etcd_opts o = {.max_reply_bytes = 2048};
    struct etcd *big = client(), *c;
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    char v[4096];

    PREFIX("cap");
    o.endpoints = endpoint;
    c = etcd_create(&o, &e);
    cr_assert_not_null(c);
    memset(v, 'v', sizeof(v));
    cr_assert_eq(etcd_put(big, K("big"), v, sizeof(v), 0, NULL, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_get(c, K("big"), &kv, NULL, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "over 2048 bytes"), "%s", e.msg);
    put(c, K("small"), "fits");
    cr_assert_eq(etcd_get(c, K("small"), &kv, NULL, &e), ST_OK, "the handle is still usable");
    etcd_kv_release(&kv);
    etcd_destroy(c);
    etcd_destroy(big);
}

/* --- txn ---------------------------------------------------------------------------------- */

Test(txn, compares_then_else)
{
    struct etcd *c = client();
    struct etcd_txn *t;
    struct etcd_txn_result res;
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    int64_t rev;

    PREFIX("txn");
    rev = put(c, K("k"), "v");
    put(c, K("gone"), "x");

    t = etcd_txn_new();
    etcd_txn_cmp(t, K("k"), ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev);
    etcd_txn_cmp(t, K("k"), ETCD_CMP_CREATE, ETCD_CMP_EQUAL, rev);
    etcd_txn_cmp(t, K("k"), ETCD_CMP_VERSION, ETCD_CMP_EQUAL, 1);
    etcd_txn_cmp(t, K("k"), ETCD_CMP_VERSION, ETCD_CMP_LESS, 2);
    etcd_txn_cmp_value(t, K("k"), ETCD_CMP_EQUAL, "v", 1);
    etcd_txn_cmp(t, K("nope"), ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
    etcd_txn_put(t, ETCD_THEN, K("new"), "n", 1, 0);
    etcd_txn_delete(t, ETCD_THEN, K("gone"), NULL);
    etcd_txn_range(t, ETCD_THEN, pfx, &ro);
    etcd_txn_put(t, ETCD_ELSE, K("else"), "e", 1, 0);
    cr_assert_eq(etcd_txn_commit(c, t, &res, &e), ST_OK, "%s", e.msg);
    etcd_txn_free(t);
    cr_assert_eq(res.succeeded, 1);
    cr_assert_gt(res.revision, rev);
    cr_assert_eq(res.n, 3);
    cr_assert_eq(res.responses[0].type, ETCD_RESP_PUT);
    cr_assert_eq(res.responses[1].type, ETCD_RESP_DELETE);
    cr_assert_eq(res.responses[1].deleted, 1);
    cr_assert_eq(res.responses[2].type, ETCD_RESP_RANGE);
    cr_assert_eq(res.responses[2].range.n, 2, "k and new, seen inside the txn");
    cr_assert_str_eq(res.responses[2].range.kvs[0].key, K("k"));
    cr_assert_str_eq(res.responses[2].range.kvs[1].value, "n");
    etcd_txn_result_release(&res);

    /* A lost compare runs the else branch; still ST_OK. */
    t = etcd_txn_new();
    etcd_txn_cmp_value(t, K("k"), ETCD_CMP_NOT_EQUAL, "v", 1);
    etcd_txn_put(t, ETCD_THEN, K("then"), "t", 1, 0);
    etcd_txn_put(t, ETCD_ELSE, K("else"), "e", 1, 0);
    etcd_txn_range(t, ETCD_ELSE, K("k"), NULL);
    etcd_txn_delete(t, ETCD_ELSE, K("nothing/"), ETCD_PREFIX);
    cr_assert_eq(etcd_txn_commit(c, t, &res, &e), ST_OK, "%s", e.msg);
    etcd_txn_free(t);
    cr_assert_eq(res.succeeded, 0);
    cr_assert_eq(res.n, 3);
    cr_assert_eq(res.responses[0].type, ETCD_RESP_PUT);
    cr_assert_eq(res.responses[1].type, ETCD_RESP_RANGE);
    cr_assert_str_eq(res.responses[1].range.kvs[0].value, "v");
    cr_assert_eq(res.responses[2].type, ETCD_RESP_DELETE);
    cr_assert_eq(res.responses[2].deleted, 0);
    etcd_txn_result_release(&res);
    cr_assert_eq(etcd_get(c, K("then"), &kv, NULL, &e), ST_NOTFOUND);
    cr_assert_eq(etcd_get(c, K("else"), &kv, NULL, &e), ST_OK);
    etcd_kv_release(&kv);
    etcd_destroy(c);
}

Test(txn, second_writer_loses_with_conflict)
{
    struct etcd *c = client();
    struct etcd_kv a, b, kv;
    struct err e = ERR_INIT;
    int64_t rev = 0;

    PREFIX("cas");
    cr_assert_eq(etcd_put_if(c, K("obj"), "v0", 2, 0, 0, &rev, &e), ST_OK, "create: %s", e.msg);
    cr_assert_gt(rev, 0);
    cr_assert_eq(etcd_put_if(c, K("obj"), "again", 5, 0, 0, NULL, &e), ST_CONFLICT,
                 "create of an existing key");

    /* Two writers read the same mod_revision. */
    cr_assert_eq(etcd_get(c, K("obj"), &a, NULL, &e), ST_OK);
    cr_assert_eq(etcd_get(c, K("obj"), &b, NULL, &e), ST_OK);
    cr_assert_eq(a.mod_revision, b.mod_revision);
    cr_assert_eq(etcd_put_if(c, K("obj"), "A", 1, a.mod_revision, 0, &rev, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_put_if(c, K("obj"), "B", 1, b.mod_revision, 0, NULL, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "modified since revision"), "%s", e.msg);
    cr_assert_eq(etcd_get(c, K("obj"), &kv, NULL, &e), ST_OK);
    cr_assert_str_eq(kv.value, "A", "the first writer's value stays");
    cr_assert_eq(kv.mod_revision, rev);

    cr_assert_eq(etcd_delete_if(c, K("obj"), a.mod_revision, &e), ST_CONFLICT, "stale delete");
    cr_assert_eq(etcd_delete_if(c, K("obj"), kv.mod_revision, &e), ST_OK, "%s", e.msg);
    etcd_kv_release(&kv);
    cr_assert_eq(etcd_get(c, K("obj"), &kv, NULL, &e), ST_NOTFOUND);
    etcd_kv_release(&a);
    etcd_kv_release(&b);
    etcd_destroy(c);
}

/* --- lease -------------------------------------------------------------------------------- */

Test(lease, grant_keepalive_revoke)
{
    struct etcd *c = client();
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    int64_t id = 0, ttl = 0;

    PREFIX("lease");
    cr_assert_eq(etcd_lease_grant(c, 30, &id, &e), ST_OK, "%s", e.msg);
    cr_assert_neq(id, 0);
    cr_assert_eq(etcd_put(c, K("a"), "1", 1, id, NULL, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_put(c, K("b"), "2", 1, id, NULL, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_lease_keepalive(c, id, &ttl, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(ttl, 30);
    cr_assert_eq(etcd_lease_revoke(c, id, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(etcd_get(c, K("a"), &kv, NULL, &e), ST_NOTFOUND, "keys on the lease vanish");
    cr_assert_eq(etcd_get(c, K("b"), &kv, NULL, &e), ST_NOTFOUND);
    cr_assert_eq(etcd_lease_keepalive(c, id, &ttl, &e), ST_NOTFOUND);
    cr_assert_eq(ttl, 0);
    cr_assert_eq(etcd_lease_revoke(c, id, &e), ST_NOTFOUND);
    cr_assert_eq(etcd_put(c, K("c"), "3", 1, id, NULL, NULL, &e), ST_NOTFOUND,
                 "put on a revoked lease");
    cr_assert_eq(etcd_lease_grant(c, 0, &id, &e), ST_INVALID);
    etcd_destroy(c);
}

/* --- client: failover, bad options, threads ------------------------------------------------- */

Test(client, failover_to_live_endpoint)
{
    char eps[256], dead[64];
    struct etcd *c;
    struct etcd_kv kv;
    struct err e = ERR_INIT;

    PREFIX("failover");
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", proc_free_port());
    snprintf(eps, sizeof(eps), "%s, %s/", dead, endpoint);
    c = client_for(eps);
    cr_assert_str_eq(etcd_current_endpoint(c), dead, "starts with the first");
    put(c, K("k"), "v");
    cr_assert_str_eq(etcd_current_endpoint(c), endpoint, "the live one answered");
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_OK, "%s", e.msg);
    etcd_kv_release(&kv);
    etcd_destroy(c);

    c = client_for(dead);
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_RETRY);
    cr_assert(strstr(e.msg, "no etcd endpoint reachable"), "%s", e.msg);
    etcd_destroy(c);
}

Test(client, bad_options)
{
    struct etcd_opts o = {.endpoints = "127.0.0.1:2379"};
    struct err e = ERR_INIT;

    cr_assert_null(etcd_create(&o, &e));
    cr_assert_eq(e.st, ST_INVALID);
    o.endpoints = " , ";
    cr_assert_null(etcd_create(&o, &e));
    o.endpoints = "http://a:1";
    o.username = "root";
    cr_assert_null(etcd_create(&o, &e), "a user without a password");
    etcd_destroy(NULL);
}

#define HAMMER_THREADS 4
#define HAMMER_OPS 150

struct hammer {
    struct etcd *c;
    int id;
    int failures;
    char msg[ERR_MSG_LEN];
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;

    for (int i = 0; i < HAMMER_OPS; i++) {
        char key[256], val[32];
        struct etcd_kv kv;
        struct err e = ERR_INIT;
        snprintf(key, sizeof(key), "%sth%d/%d", pfx, h->id, i % 10);
        snprintf(val, sizeof(val), "%d-%d", h->id, i);
        if (etcd_put(h->c, key, val, strlen(val), 0, NULL, NULL, &e) != ST_OK ||
            etcd_get(h->c, key, &kv, NULL, &e) != ST_OK) {
            h->failures++;
            snprintf(h->msg, sizeof(h->msg), "%s", e.msg);
            continue;
        }
        if (strcmp(kv.value, val) != 0) {
            h->failures++;
            snprintf(h->msg, sizeof(h->msg), "read '%s' after writing '%s'", kv.value, val);
        }
        etcd_kv_release(&kv);
    }
    return NULL;
}

Test(client, four_threads_share_one_client)
{
    struct etcd *c = client();
    pthread_t th[HAMMER_THREADS];
    struct hammer h[HAMMER_THREADS];
    struct etcd_range_result r;
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct err e = ERR_INIT;

    PREFIX("hammer");
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i] = (struct hammer){.c = c, .id = i};
        cr_assert_eq(pthread_create(&th[i], NULL, hammer_thread, &h[i]), 0);
    }
    for (int i = 0; i < HAMMER_THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(h[i].failures, 0, "thread %d: %d failures, last: %s", i, h[i].failures,
                     h[i].msg);
    }
    cr_assert_eq(etcd_range(c, pfx, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.count, HAMMER_THREADS * 10);
    etcd_range_result_release(&r);
    etcd_destroy(c);
}

/* --- watch -------------------------------------------------------------------------------- */

#define MAX_EVENTS 256

struct seen_event {
    enum etcd_event_type type;
    char key[256];
    char value[64];
    char prev[64];
    int64_t mod_revision;
};

/* What a watch delivered, filled on the watch thread, read by the test under mu. */
struct watcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct etcd *c;
    struct etcd_watch *w;
    pthread_t th;
    struct seen_event ev[MAX_EVENTS];
    int n;
    int connected, disconnected, progress, compacted;
    int64_t progress_rev, compact_rev;
    int stop_after; /* callback returns 1 once n reaches it; 0 = never */
    int done;
    enum status st;
    struct err e;
};

static int on_watch(void *arg, const struct etcd_watch_msg *m)
{
    struct watcher *x = arg;
    int stop = 0;

    pthread_mutex_lock(&x->mu);
    switch (m->kind) {
    case ETCD_WATCH_EVENTS:
        for (size_t i = 0; i < m->n_events && x->n < MAX_EVENTS; i++) {
            struct seen_event *s = &x->ev[x->n++];
            s->type = m->events[i].type;
            s->mod_revision = m->events[i].kv.mod_revision;
            snprintf(s->key, sizeof(s->key), "%s", m->events[i].kv.key);
            snprintf(s->value, sizeof(s->value), "%s",
                     m->events[i].kv.value ? m->events[i].kv.value : "(null)");
            snprintf(s->prev, sizeof(s->prev), "%s",
                     m->events[i].prev_kv.key ? m->events[i].prev_kv.value : "(none)");
        }
        break;
    case ETCD_WATCH_PROGRESS:
        x->progress++;
        x->progress_rev = m->revision;
        break;
    case ETCD_WATCH_CONNECTED:
        x->connected++;
        break;
    case ETCD_WATCH_DISCONNECTED:
        x->disconnected++;
        break;
    case ETCD_WATCH_COMPACTED:
        x->compacted++;
        x->compact_rev = m->compact_revision;
        break;
    }
    if (x->stop_after && x->n >= x->stop_after)
        stop = 1;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return stop;
}

static void *watch_thread(void *arg)
{
    struct watcher *x = arg;
    struct err e = ERR_INIT;
    enum status st = etcd_watch_run(x->w, &e);

    pthread_mutex_lock(&x->mu);
    x->st = st;
    x->e = e;
    x->done = 1;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

static void watcher_start(struct watcher *x, struct etcd *c, const struct etcd_watch_opts *o)
{
    memset(x, 0, sizeof(*x));
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->c = c;
    x->w = etcd_watch_create(c, o, on_watch, x);
    cr_assert_not_null(x->w);
    cr_assert_eq(pthread_create(&x->th, NULL, watch_thread, x), 0);
}

/* Wait until *field >= want (or the watch ended); 1 if reached. */
static int watcher_wait(struct watcher *x, const int *field, int want, int64_t timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    int ok;

    pthread_mutex_lock(&x->mu);
    while (*field < want && !x->done && time_mono_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
    }
    ok = *field >= want;
    pthread_mutex_unlock(&x->mu);
    return ok;
}

/* Stop, join, free; returns how long run() took to return after the stop. */
static int64_t watcher_finish(struct watcher *x)
{
    int64_t t0 = time_mono_ms();

    etcd_watch_stop(x->w);
    pthread_join(x->th, NULL);
    t0 = time_mono_ms() - t0;
    etcd_watch_destroy(x->w);
    x->w = NULL;
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    return t0;
}

Test(watch, prefix_from_revision_with_prev_kv)
{
    struct etcd *c = client();
    struct etcd_watch_opts o = {.range_end = ETCD_PREFIX, .prev_kv = 1};
    struct watcher x;
    struct err e = ERR_INIT;
    int64_t r1;

    PREFIX("watch_prefix");
    r1 = put(c, K("w/a"), "1"); /* before the watch starts: replayed from r1 */
    put(c, K("w/a"), "2");
    put(c, K("other"), "not in the prefix");
    o.key = K("w/");
    o.start_revision = r1;
    watcher_start(&x, c, &o);
    put(c, K("w/b"), "3");
    cr_assert_eq(etcd_delete(c, K("w/a"), NULL, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert(watcher_wait(&x, &x.n, 4, 5000), "got %d events", x.n);
    cr_assert_eq(x.n, 4);
    cr_assert_str_eq(x.ev[0].key, K("w/a"));
    cr_assert_eq(x.ev[0].mod_revision, r1);
    cr_assert_str_eq(x.ev[0].value, "1");
    cr_assert_str_eq(x.ev[0].prev, "(none)");
    cr_assert_str_eq(x.ev[1].value, "2");
    cr_assert_str_eq(x.ev[1].prev, "1");
    cr_assert_str_eq(x.ev[2].key, K("w/b"));
    cr_assert_eq(x.ev[3].type, ETCD_EVENT_DELETE);
    cr_assert_str_eq(x.ev[3].prev, "2");
    cr_assert_eq(x.connected, 1);
    cr_assert_eq(etcd_watch_next_revision(x.w), x.ev[3].mod_revision + 1);
    watcher_finish(&x);
    cr_assert_eq(x.st, ST_OK);
    etcd_destroy(c);
}

Test(watch, from_now_and_callback_stop)
{
    struct etcd *c = client();
    struct etcd_watch_opts o = {0};
    struct watcher x;

    PREFIX("watch_now");
    put(c, K("k"), "before");
    o.key = K("k");
    watcher_start(&x, c, &o);
    x.stop_after = 2;
    cr_assert(watcher_wait(&x, &x.connected, 1, 5000));
    put(c, K("k"), "after1");
    put(c, K("k2"), "not watched");
    put(c, K("k"), "after2");
    cr_assert(watcher_wait(&x, &x.done, 1, 5000), "callback's stop ends run()");
    cr_assert_eq(x.st, ST_OK);
    cr_assert_eq(x.n, 2);
    cr_assert_str_eq(x.ev[0].value, "after1", "a watch from now skips older events");
    cr_assert_str_eq(x.ev[1].value, "after2");
    watcher_finish(&x);
    etcd_destroy(c);
}

Test(watch, progress_notifications_advance_revision)
{
    struct etcd *c = client();
    struct etcd_watch_opts o = {.range_end = ETCD_PREFIX, .progress_notify = 1};
    struct watcher x;
    int64_t rev;

    PREFIX("watch_progress");
    o.key = K("quiet/");
    rev = put(c, K("elsewhere"), "x");
    o.start_revision = rev; /* nothing under quiet/ since */
    watcher_start(&x, c, &o);
    /* The shared etcd sends progress every 500 ms (--experimental-watch-progress-notify-
     * interval); the default would be 10 minutes. */
    cr_assert(watcher_wait(&x, &x.progress, 1, 5000), "no progress notification");
    cr_assert_eq(x.n, 0);
    cr_assert_geq(x.progress_rev, rev);
    cr_assert_geq(etcd_watch_next_revision(x.w), x.progress_rev + 1,
                  "progress moves the resume point");
    watcher_finish(&x);
    etcd_destroy(c);
}

Test(watch, stop_from_another_thread_is_prompt)
{
    struct etcd *c = client();
    struct etcd_watch_opts o = {0};
    struct watcher x;
    int64_t took;

    PREFIX("watch_stop");
    o.key = K("idle");
    watcher_start(&x, c, &o);
    cr_assert(watcher_wait(&x, &x.connected, 1, 5000));
    time_sleep_ms(100); /* idle in curl_multi_poll */
    took = watcher_finish(&x);
    cr_assert_eq(x.st, ST_OK);
    cr_assert_lt(took, 300, "run() took %lld ms to return", (long long)took);
    etcd_destroy(c);
}

Test(watch, stop_during_backoff_is_prompt)
{
    char dead[64];
    struct etcd *c;
    struct etcd_watch_opts o = {.key = "/t/backoff"};
    struct watcher x;
    int64_t took;

    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", proc_free_port());
    c = client_for(dead);
    watcher_start(&x, c, &o);
    cr_assert(watcher_wait(&x, &x.disconnected, 3, 5000), "reconnects with backoff");
    took = watcher_finish(&x);
    cr_assert_eq(x.st, ST_OK);
    cr_assert_eq(x.connected, 0);
    cr_assert_lt(took, 300, "run() took %lld ms to return", (long long)took);
    etcd_destroy(c);
}

Test(watch, message_over_cap_is_invalid)
{
    struct etcd *c = client();
    struct etcd_watch_opts o = {.max_message_bytes = 1024};
    struct watcher x;
    char v[4096];

    PREFIX("watch_cap");
    memset(v, 'v', sizeof(v));
    o.key = K("big");
    watcher_start(&x, c, &o);
    cr_assert(watcher_wait(&x, &x.connected, 1, 5000));
    put(c, K("big"), "small");
    cr_assert(watcher_wait(&x, &x.n, 1, 5000));
    cr_assert_eq(etcd_put(c, K("big"), v, sizeof(v), 0, NULL, NULL, NULL), ST_OK);
    cr_assert(watcher_wait(&x, &x.done, 1, 5000));
    cr_assert_eq(x.st, ST_INVALID, "%s", x.e.msg);
    cr_assert(strstr(x.e.msg, "over 1024 bytes"), "%s", x.e.msg);
    cr_assert_eq(x.n, 1);
    watcher_finish(&x);
    etcd_destroy(c);
}

/* --- private etcd: restart, compaction, auth, TLS ------------------------------------------- */

static int event_value(const struct seen_event *s)
{
    return atoi(s->value);
}

Test(private, watch_resumes_across_etcd_restart)
{
    struct etcd_proc p = ETCD_PROC_INIT;
    struct etcd_watch_opts o = {.range_end = ETCD_PREFIX};
    struct etcd *c;
    struct watcher x;
    int64_t first = 0;
    enum { N = 20 };

    start_private(&p);
    c = client();
    PREFIX("restart");
    o.key = pfx;
    watcher_start(&x, c, &o);
    cr_assert(watcher_wait(&x, &x.connected, 1, 5000));
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        int64_t r = put(c, K("k"), v);
        if (!first)
            first = r;
    }
    cr_assert(watcher_wait(&x, &x.n, N, 5000), "got %d of %d", x.n, N);

    etcd_proc_kill(&p); /* a crash: the stream ends with a partial transfer */
    cr_assert(watcher_wait(&x, &x.disconnected, 2, 5000), "the watch notices and retries");
    cr_assert_eq(etcd_put(c, K("k"), "x", 1, 0, NULL, NULL, NULL), ST_RETRY, "etcd is down");
    cr_assert_eq(etcd_proc_restart(&p), 0);

    for (int i = N; i < 2 * N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        put(c, K("k"), v);
    }
    cr_assert(watcher_wait(&x, &x.n, 2 * N, 10000), "got %d of %d", x.n, 2 * N);
    time_sleep_ms(200); /* a duplicate would show up now */
    watcher_finish(&x);
    cr_assert_eq(x.n, 2 * N, "every event exactly once");
    for (int i = 0; i < 2 * N; i++) {
        cr_assert_eq(event_value(&x.ev[i]), i, "event %d in order", i);
        cr_assert_eq(x.ev[i].mod_revision, first + i, "no gap in revisions");
    }
    cr_assert_geq(x.connected, 2, "reconnected");
    etcd_destroy(c);
    etcd_proc_cleanup(&p);
}

Test(private, compaction)
{
    struct etcd_proc p = ETCD_PROC_INIT;
    struct etcd_watch_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_opts ro = {0};
    struct etcd_range_result r;
    struct etcd *c;
    struct watcher x;
    struct err e = ERR_INIT;
    int64_t r1, last = 0;

    start_private(&p);
    c = client();
    PREFIX("compact");
    r1 = put(c, K("k"), "0");
    for (int i = 1; i < 5; i++)
        last = put(c, K("k"), "i");
    cr_assert_eq(etcd_compact(c, last, &e), ST_OK, "%s", e.msg);

    ro.revision = r1;
    cr_assert_eq(etcd_range(c, K("k"), &ro, &r, &e), ST_COMPACTED, "%s", e.msg);
    cr_assert(strstr(e.msg, "compacted"), "%s", e.msg);
    ro.revision = last;
    cr_assert_eq(etcd_range(c, K("k"), &ro, &r, &e), ST_OK, "%s", e.msg);
    etcd_range_result_release(&r);

    o.key = pfx;
    o.start_revision = r1;
    watcher_start(&x, c, &o);
    cr_assert(watcher_wait(&x, &x.done, 1, 5000), "run() returns");
    cr_assert_eq(x.st, ST_COMPACTED, "%s", x.e.msg);
    cr_assert_eq(x.compacted, 1);
    cr_assert_eq(x.compact_rev, last);
    cr_assert_eq(x.n, 0);
    watcher_finish(&x);
    etcd_destroy(c);
    etcd_proc_cleanup(&p);
}

Test(private, auth_password_and_token_renewal)
{
    static const char *ttl_args[] = {"--auth-token-ttl=1", NULL};
    struct etcd_proc p = ETCD_PROC_INIT;
    struct etcd_opts eo = {.username = "root"};
    struct etcd_watch_opts wo = {0};
    struct etcd *c, *anon;
    struct etcd_kv kv;
    struct watcher x;
    struct err e = ERR_INIT;
    int64_t rev;

    p.extra_args[0] = ttl_args[0]; /* tokens expire after 1 s idle: forces a renewal */
    start_private(&p);
    cr_assert_eq(etcd_proc_enable_auth(&p, "s3cret"), 0);
    PREFIX("auth");
    eo.endpoints = p.endpoint;

    eo.password = "wrong";
    c = etcd_create(&eo, &e);
    cr_assert_not_null(c);
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_DENIED);
    cr_assert(strstr(e.msg, "authentication failed"), "%s", e.msg);
    wo.key = K("k");
    watcher_start(&x, c, &wo);
    cr_assert(watcher_wait(&x, &x.done, 1, 5000), "a watch with a wrong password ends");
    cr_assert_eq(x.st, ST_DENIED, "%s", x.e.msg);
    watcher_finish(&x);
    etcd_destroy(c);

    anon = client();
    cr_assert_eq(etcd_get(anon, K("k"), &kv, NULL, &e), ST_DENIED, "no token: %s", e.msg);
    etcd_destroy(anon);

    eo.password = "s3cret";
    c = etcd_create(&eo, &e);
    cr_assert_not_null(c);
    rev = put(c, K("k"), "v");
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_OK, "%s", e.msg);
    etcd_kv_release(&kv);

    time_sleep_ms(2500); /* the token expires (etcd checks TTLs once a second) */
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_OK, "renewed: %s", e.msg);
    cr_assert_str_eq(kv.value, "v");
    etcd_kv_release(&kv);

    time_sleep_ms(2500);
    wo.key = K("k");
    wo.start_revision = rev;
    watcher_start(&x, c, &wo);
    cr_assert(watcher_wait(&x, &x.n, 1, 5000), "watch with an expired token: %s", x.e.msg);
    cr_assert_str_eq(x.ev[0].value, "v");
    watcher_finish(&x);
    etcd_destroy(c);
    etcd_proc_cleanup(&p);
}

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write '%s'", path);
    fputs(data, f);
    fclose(f);
}

Test(private, tls)
{
    struct etcd_proc p = ETCD_PROC_INIT;
    struct etcd_opts eo = {0};
    struct etcd_watch_opts wo = {0};
    struct watcher x;
    struct etcd *c;
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    char dir[256], certf[300], keyf[300];
    char *cert = NULL, *key = NULL, *fp = NULL;
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(crypto_selfsigned_cert("etcd", NULL, 1, &cert, &key, &fp, &e), ST_OK, "%s", e.msg);
    snprintf(certf, sizeof(certf), "%s/etcd.pem", dir);
    snprintf(keyf, sizeof(keyf), "%s/etcd-key.pem", dir);
    write_file(certf, cert);
    write_file(keyf, key);
    p.cert_file = certf;
    p.key_file = keyf;
    start_private(&p);
    cr_assert_eq(strncmp(p.endpoint, "https://", 8), 0);
    PREFIX("tls");
    eo.endpoints = p.endpoint;
    eo.connect_timeout_ms = 10000; /* covers the handshake, slow under sanitizers/valgrind */

    c = etcd_create(&eo, &e); /* system CAs: our self-signed cert is refused */
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_INVALID, "%s", e.msg);
    wo.key = K("k");
    watcher_start(&x, c, &wo);
    cr_assert(watcher_wait(&x, &x.done, 1, 10000), "a watch does not retry a TLS failure");
    cr_assert_eq(x.st, ST_INVALID, "%s", x.e.msg);
    watcher_finish(&x);
    etcd_destroy(c);

    eo.cacert = certf;
    c = etcd_create(&eo, &e);
    put(c, K("k"), "secure");
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_OK, "%s", e.msg);
    etcd_kv_release(&kv);
    etcd_destroy(c);

    eo.cacert = NULL;
    eo.insecure_skip_verify = 1;
    c = etcd_create(&eo, &e);
    cr_assert_eq(etcd_get(c, K("k"), &kv, NULL, &e), ST_OK, "insecure: %s", e.msg);
    cr_assert_str_eq(kv.value, "secure");
    etcd_kv_release(&kv);
    etcd_destroy(c);

    etcd_proc_cleanup(&p);
    proc_rmtree(dir);
    free(cert);
    free(key);
    free(fp);
}
