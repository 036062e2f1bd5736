/* tests/integration/test_agent_logs.c -- agent/logs.c against the machine's real dockerd.
 *
 * Suite `logs`: the follower with a recording sink in place of the master (it stores lines,
 * keeps a cursor per container as the master does and answers /containers/log_cursor and
 * /containers/log_batch): known sequences arrive once and in order, stderr is typed, a
 * dropped link and an agent restart lose and duplicate nothing, a master that does not
 * answer makes the follower pause rather than grow, containers started later and restarted
 * containers are followed, long lines are cut, Tty containers work. The same with the real
 * apiserver and CLI: test_agent_logs_e2e.c (a separate binary: see there).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/docker.h"
#include "agent/logs.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"

#include "common/banned.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    docker_env_global_setup();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    docker_env_global_cleanup();
}

static struct docker *d;
static char *node;

static void suite_init(void)
{
    struct err e = ERR_INIT;

    docker_env_require();
    if (getenv("DEBUG"))
        log_min_level = LOG_DEBUG;
    d = docker_create(NULL, &e);
    cr_assert(d, "docker_create: %s", e.msg);
    char *base = docker_env_name("node");
    /* this test's containers only: io.kontena.node=<this> (tests run in parallel) */
    node = xasprintf("%s-%d", base, (int)getpid());
    free(base);
}

static void suite_fini(void)
{
    char *label = xasprintf("io.kontena.node=%s", node);
    docker_env_remove_containers(label);
    free(label);
    docker_destroy(d);
    d = NULL;
    free(node);
}

TestSuite(logs, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* --- the sink: a master in miniature --------------------------------------------------------- */

struct held {
    struct held *next;
    json_t *items;
    logs_reply_fn reply;
    void *cbarg;
};

static struct sink {
    pthread_mutex_t mu;
    json_t *lines;   /* array of stored items, in arrival order */
    json_t *cursors; /* {id: time} */
    int hold;        /* do not answer batches: keep them in `held` */
    struct held *held;
    size_t nheld, batches, max_items, cursor_calls;
    size_t max_bytes;
    char bad[256]; /* what went wrong on the follower's thread (asserted by the test) */
} sk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void sink_reset(void)
{
    pthread_mutex_lock(&sk.mu);
    json_decref(sk.lines);
    json_decref(sk.cursors);
    sk.lines = json_array();
    sk.cursors = json_object();
    sk.hold = 0;
    sk.held = NULL;
    sk.nheld = sk.batches = sk.max_items = sk.cursor_calls = sk.max_bytes = 0;
    sk.bad[0] = '\0';
    pthread_mutex_unlock(&sk.mu);
}

/* Store items as the master does (drop what is at or before the cursor); sk.mu held. */
static json_t *store(json_t *items)
{
    json_t *acked = json_object(), *it;
    size_t i;

    json_array_foreach(items, i, it) {
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *t = json_string_value(json_object_get(it, "time"));
        const char *cur = json_string_value(json_object_get(sk.cursors, id));
        if (!id || !t) {
            snprintf(sk.bad, sizeof(sk.bad), "item without id or time");
            continue;
        }
        if (cur && docker_parse_time_ns(t, strlen(t)) <= docker_parse_time_ns(cur, strlen(cur)))
            continue;
        json_array_append(sk.lines, it);
        json_object_set_new(sk.cursors, id, json_string(t));
    }
    json_object_update(acked, sk.cursors);
    return json_pack("{s:o}", "acked", acked);
}

static void sink_call(void *arg, const char *method, const char *params, size_t len,
                      logs_reply_fn reply, void *cbarg)
{
    json_error_t jerr;
    json_t *p = json_loadb(params, len, 0, &jerr), *res = NULL;

    (void)arg;
    pthread_mutex_lock(&sk.mu);
    if (!json_is_array(p)) {
        snprintf(sk.bad, sizeof(sk.bad), "params of %s are not a JSON array: %s", method,
                 jerr.text);
        p = json_pack("[{s:[]}]", "items");
    }
    if (!strcmp(method, "/containers/log_cursor")) {
        json_t *ids = json_array_get(p, 0), *id, *c = json_object();
        size_t i;
        sk.cursor_calls++;
        json_array_foreach(ids, i, id) {
            json_t *t = json_object_get(sk.cursors, json_string_value(id));
            if (t)
                json_object_set(c, json_string_value(id), t);
        }
        res = json_pack("{s:o}", "cursors", c);
    } else if (!strcmp(method, "/containers/log_batch")) {
        json_t *items = json_object_get(json_array_get(p, 0), "items");
        sk.batches++;
        if (json_array_size(items) > sk.max_items)
            sk.max_items = json_array_size(items);
        if (len > sk.max_bytes)
            sk.max_bytes = len;
        if (sk.hold) {
            struct held *h = xcalloc(1, sizeof(*h));
            h->items = json_incref(items);
            h->reply = reply;
            h->cbarg = cbarg;
            h->next = sk.held;
            sk.held = h;
            sk.nheld++;
        } else {
            res = store(items);
        }
    } else {
        snprintf(sk.bad, sizeof(sk.bad), "unexpected method %s", method);
        res = json_object();
    }
    pthread_mutex_unlock(&sk.mu);
    if (res)
        reply(cbarg, NULL, res);
    json_decref(res);
    json_decref(p);
}

/* Answer (store = 1) or fail (store = 0: the connection dropped before the master stored
 * them) every held batch. */
static void sink_release(int do_store)
{
    struct held *h, *rev = NULL;
    json_t *err = json_pack("{s:i, s:s}", "code", 503, "message", "connection closed");
    json_t *res = NULL;

    pthread_mutex_lock(&sk.mu);
    h = sk.held;
    sk.held = NULL;
    sk.nheld = 0;
    sk.hold = 0;
    /* oldest first, as the master would have stored them, all before any answer goes out
     * (an answer lets the follower send more) */
    while (h) {
        struct held *n = h->next;
        h->next = rev;
        rev = h;
        h = n;
    }
    if (do_store)
        for (h = rev; h; h = h->next) {
            json_decref(res);
            res = store(h->items);
        }
    pthread_mutex_unlock(&sk.mu);
    for (h = rev; h; h = rev) {
        rev = h->next;
        if (do_store)
            h->reply(h->cbarg, NULL, res);
        else
            h->reply(h->cbarg, err, NULL);
        json_decref(h->items);
        free(h);
    }
    json_decref(res);
    json_decref(err);
}

static struct logs *start_logs(void)
{
    struct err e = ERR_INIT;
    struct logs_opts o = {.node = node, .grid = "lg", .transport = {.call = sink_call}};
    struct logs *l = logs_start(&o, &e);

    cr_assert(l, "logs_start: %s", e.msg);
    return l;
}

/* --- containers ---------------------------------------------------------------------------- */

static char *run(const char *what, const char *script, int tty)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name(what), *id = NULL, *cname = xasprintf("st.%s-1", what);
    json_t *c = json_pack("{s:s, s:[s,s,s], s:b, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s}, s:{}}",
                          "Image", DOCKER_ENV_IMAGE, "Cmd", "sh", "-c", script, "Tty", tty,
                          "Labels", DOCKER_ENV_RUN_LABEL, docker_env_run_id(), "io.kontena.node",
                          node, "io.kontena.grid", "lg", "io.kontena.stack", "st", "io.kontena.service", what,
                          "io.kontena.instance", "1", "io.kontena.container.name", cname,
                          "HostConfig");

    cr_assert(c);
    cr_assert_eq(docker_container_create(d, name, c, &id, &e), ST_OK, "create: %s", e.msg);
    cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "start: %s", e.msg);
    json_decref(c);
    free(name);
    free(cname);
    return id;
}

/* Items stored for container id with the given type, in order (new reference). */
static json_t *lines_of(const char *id, const char *type)
{
    json_t *out = json_array(), *it;
    size_t i;

    pthread_mutex_lock(&sk.mu);
    json_array_foreach(sk.lines, i, it) {
        if (strcmp(json_string_value(json_object_get(it, "id")), id) != 0)
            continue;
        if (type && strcmp(json_string_value(json_object_get(it, "type")), type) != 0)
            continue;
        json_array_append(out, it);
    }
    pthread_mutex_unlock(&sk.mu);
    return out;
}

static size_t count_of(const char *id, const char *type)
{
    json_t *a = lines_of(id, type);
    size_t n = json_array_size(a);

    json_decref(a);
    return n;
}

/* Wait (bounded) until id has n lines of type stored. */
static void wait_lines(const char *id, const char *type, size_t n, int timeout_ms)
{
    int64_t end = time_mono_ms() + timeout_ms;
    size_t got = 0;

    while (time_mono_ms() < end) {
        got = count_of(id, type);
        if (got >= n)
            return;
        time_sleep_ms(50);
    }
    cr_assert_str_empty(sk.bad, "sink: %s", sk.bad);
    if (getenv("DUMP")) {
        pthread_mutex_lock(&sk.mu);
        json_dump_file(sk.lines, getenv("DUMP"), JSON_INDENT(0));
        pthread_mutex_unlock(&sk.mu);
    }
    cr_assert_fail("container %.12s: %zu %s lines after %d ms, want %zu", id, got,
                   type ? type : "", timeout_ms, n);
}

/* The data of id's lines of type are exactly "<prefix><from>" ... "<prefix><to>". */
static void assert_sequence(const char *id, const char *type, const char *prefix, long from,
                            long to)
{
    json_t *a = lines_of(id, type), *it;
    size_t i;
    char want[64];

    cr_assert_str_empty(sk.bad, "sink: %s", sk.bad);
    cr_assert_eq(json_array_size(a), (size_t)(to - from + 1), "%s: %zu lines, want %ld", type,
                 json_array_size(a), to - from + 1);
    json_array_foreach(a, i, it) {
        snprintf(want, sizeof(want), "%s%ld", prefix, from + (long)i);
        cr_assert_str_eq(json_string_value(json_object_get(it, "data")), want,
                         "%s line %zu is '%s', want '%s'", type, i,
                         json_string_value(json_object_get(it, "data")), want);
    }
    json_decref(a);
}

/* --- tests ------------------------------------------------------------------------------------ */

Test(logs, sequences_once_in_order_with_identity)
{
    struct logs *l;
    char *id;
    json_t *a, *it;
    struct logs_counters n;

    sink_reset();
    l = start_logs();
    logs_link(l, 1);
    time_sleep_ms(300);
    id = run("seq", "i=1; while [ $i -le 3000 ]; do echo out $i; echo err $i >&2; i=$((i+1)); "
                    "done; sleep 60",
             0);
    wait_lines(id, "stdout", 3000, 30000);
    wait_lines(id, "stderr", 3000, 30000);
    time_sleep_ms(300);
    assert_sequence(id, "stdout", "out ", 1, 3000);
    assert_sequence(id, "stderr", "err ", 1, 3000);
    a = lines_of(id, NULL);
    it = json_array_get(a, 0);
    cr_assert_str_eq(json_string_value(json_object_get(it, "name")), "st.seq-1");
    cr_assert_str_eq(json_string_value(json_object_get(it, "node")), node);
    cr_assert_str_eq(json_string_value(json_object_get(it, "stack")), "st");
    cr_assert_str_eq(json_string_value(json_object_get(it, "service")), "seq");
    cr_assert_eq(json_integer_value(json_object_get(it, "instance")), 1);
    cr_assert(docker_parse_time_ns(json_string_value(json_object_get(it, "time")),
                                   strlen(json_string_value(json_object_get(it, "time")))) > 0);
    json_decref(a);
    logs_counters(l, &n);
    cr_assert_eq(n.lines_acked, 6000, "acked %llu", (unsigned long long)n.lines_acked);
    cr_assert_eq(n.queued_lines, 0);
    cr_assert_eq(n.followed, 1);
    cr_assert(sk.max_items <= 1000);
    logs_stop(l);
    logs_free(l);
    free(id);
}

/* A link that drops with batches unanswered (the master never stored them), then an agent
 * restart, while the container keeps printing: the stored sequence has no gap and no
 * duplicate. */
Test(logs, link_drop_and_agent_restart_lose_nothing)
{
    struct logs *l;
    char *id;

    sink_reset();
    id = run("resume", "i=1; while [ $i -le 6000 ]; do echo line $i; i=$((i+1)); "
                       "[ $((i % 200)) = 0 ] && sleep 0.1; done; sleep 60",
             0);
    l = start_logs();
    logs_link(l, 1);
    wait_lines(id, "stdout", 500, 20000);
    /* the master stops answering, then the connection drops with batches in flight */
    pthread_mutex_lock(&sk.mu);
    sk.hold = 1;
    pthread_mutex_unlock(&sk.mu);
    time_sleep_ms(500);
    /* the link drops, then its unanswered batches fail: as a closed WebSocket does it (the
     * other order lets the agent send one more batch that a still-open sink stores past the
     * failed ones, which no master connection can do) */
    logs_link(l, 0);
    time_sleep_ms(200); /* logs_link() is asynchronous: let the follower see the drop */
    sink_release(0);
    time_sleep_ms(300);
    logs_link(l, 1);
    wait_lines(id, "stdout", 2500, 20000);
    /* agent restart */
    logs_stop(l);
    logs_free(l);
    time_sleep_ms(500);
    l = start_logs();
    logs_link(l, 1);
    wait_lines(id, "stdout", 6000, 30000);
    time_sleep_ms(300);
    assert_sequence(id, "stdout", "line ", 1, 6000);
    cr_assert(sk.cursor_calls >= 3, "cursor asked %zu times", sk.cursor_calls);
    logs_stop(l);
    logs_free(l);
    free(id);
}

/* stdout and stderr interleaved (Docker's file is not in time order across the two), eight
 * link drops with batches unanswered: each stream arrives whole, once, in order; the resumed
 * follows re-read a second before the cursor and skip what the master has. */
Test(logs, many_link_drops_two_streams)
{
    struct logs *l;
    char *id;
    struct logs_counters n;

    sink_reset();
    l = start_logs();
    logs_link(l, 1);
    time_sleep_ms(300);
    id = run("drops", "i=1; while [ $i -le 4000 ]; do echo out $i; echo err $i >&2; "
                      "[ $((i % 100)) = 0 ] && sleep 0.1; i=$((i+1)); done; sleep 60",
             0);
    for (int k = 0; k < 8; k++) {
        time_sleep_ms(400);
        pthread_mutex_lock(&sk.mu);
        sk.hold = 1;
        pthread_mutex_unlock(&sk.mu);
        time_sleep_ms(150);
        logs_link(l, 0); /* first, as above */
        time_sleep_ms(200);
        sink_release(0);
        logs_link(l, 1);
    }
    wait_lines(id, "stdout", 4000, 60000);
    wait_lines(id, "stderr", 4000, 60000);
    time_sleep_ms(500);
    assert_sequence(id, "stdout", "out ", 1, 4000);
    assert_sequence(id, "stderr", "err ", 1, 4000);
    logs_counters(l, &n);
    cr_assert(n.lines_skipped > 0, "no line was read again after a drop");
    cr_assert_geq(n.links, 9);
    logs_stop(l);
    logs_free(l);
    free(id);
}

/* A master that does not answer: the follower keeps at most its in-flight batches plus a
 * sealed one or two, and pauses Docker instead of reading on; once answers come, everything
 * arrives. */
Test(logs, backpressure_pauses_instead_of_growing)
{
    struct logs *l;
    char *id;
    struct logs_counters n;
    int64_t end;

    sink_reset();
    pthread_mutex_lock(&sk.mu);
    sk.hold = 1;
    pthread_mutex_unlock(&sk.mu);
    l = start_logs();
    logs_link(l, 1);
    time_sleep_ms(300);
    id = run("flood", "seq 1 60000; sleep 60", 0);
    end = time_mono_ms() + 20000;
    do {
        time_sleep_ms(100);
        pthread_mutex_lock(&sk.mu);
        size_t held = sk.nheld;
        pthread_mutex_unlock(&sk.mu);
        if (held >= 4)
            break;
    } while (time_mono_ms() < end);
    time_sleep_ms(1000);
    logs_counters(l, &n);
    cr_assert_eq(sk.nheld, 4, "%zu batches out, want the 4 in flight", sk.nheld);
    cr_assert(n.pauses > 0, "never paused");
    cr_assert(n.queued_lines <= 7000, "%lld lines queued while the master is silent",
              (long long)n.queued_lines);
    cr_assert(n.lines_read < 60000, "read all %llu lines while the master is silent",
              (unsigned long long)n.lines_read);
    sink_release(1);
    wait_lines(id, "stdout", 60000, 60000);
    assert_sequence(id, "stdout", "", 1, 60000);
    logs_stop(l);
    logs_free(l);
    free(id);
}

/* Started after the follower, restarted: both runs' lines, once each. */
Test(logs, later_and_restarted_containers)
{
    struct logs *l;
    char *id;
    struct err e = ERR_INIT;

    sink_reset();
    l = start_logs();
    logs_link(l, 1);
    time_sleep_ms(500);
    id = run("later", "echo start; seq 1 100; exit 0", 0);
    wait_lines(id, "stdout", 101, 20000);
    cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "restart: %s", e.msg);
    wait_lines(id, "stdout", 202, 20000);
    time_sleep_ms(500);
    cr_assert_eq(count_of(id, "stdout"), 202);
    logs_stop(l);
    logs_free(l);
    free(id);
}

/* A 40,000-byte line arrives in 16 KiB pieces (Docker's own cut and ours), nothing lost;
 * bytes that are not UTF-8 are replaced; a Tty container's output is stdout. */
Test(logs, long_lines_binary_and_tty)
{
    struct logs *l;
    char *id, *tid;
    json_t *a, *it;
    size_t i, total = 0;

    sink_reset();
    id = run("long", "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'a\\377b\\tc\\n'; "
                     "echo end; sleep 60",
             0);
    tid = run("tty", "echo hello tty; sleep 60", 1);
    l = start_logs();
    logs_link(l, 1);
    wait_lines(tid, "stdout", 1, 20000);
    a = lines_of(tid, "stdout");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "data")),
                     "hello tty\r");
    json_decref(a);
    int64_t end = time_mono_ms() + 20000;
    for (;;) {
        a = lines_of(id, "stdout");
        if (json_array_size(a) &&
            !strcmp(json_string_value(json_object_get(json_array_get(a, json_array_size(a) - 1),
                                                      "data")),
                    "end"))
            break;
        json_decref(a);
        cr_assert(time_mono_ms() < end, "no 'end' line");
        time_sleep_ms(100);
    }
    cr_assert(json_array_size(a) >= 5, "%zu lines", json_array_size(a));
    json_array_foreach(a, i, it) {
        const char *s = json_string_value(json_object_get(it, "data"));
        if (i + 2 >= json_array_size(a))
            break;
        cr_assert(strlen(s) <= 16384, "piece %zu has %zu bytes", i, strlen(s));
        cr_assert_eq(strspn(s, "x"), strlen(s));
        total += strlen(s);
    }
    cr_assert_eq(total, 40000);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, json_array_size(a) - 2),
                                                       "data")),
                     "a\xef\xbf\xbd" "b\tc");
    json_decref(a);
    logs_stop(l);
    logs_free(l);
    free(id);
    free(tid);
}
