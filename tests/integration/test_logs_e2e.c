/* tests/integration/test_logs_e2e.c -- container logs end to end (issue 8, points 1 and 4): a
 * whole platform (tests/support/platform.h: real etcd, kontena-apiserver, controllers and
 * agents on the machine's dockerd) and the real `kontena` CLI.
 *
 *   - a service printing numbered sequences on stdout and stderr: `service logs -f` sees
 *     every line exactly once and in order, across an apiserver restart in the middle (the
 *     follower reconnects with from=<last id>, the agents resend from their cursors);
 *   - --tail, --since, -i, grid logs --node / -c, --search, stack logs, container logs;
 *   - a follower that reads very slowly while 150,000 lines are produced into a 1 MiB window:
 *     the apiserver's RSS stays bounded and the follower gets a `dropped` marker;
 *   - grid log forwarding to a real rsyslogd (Debian's) on loopback, UDP and TCP.
 *
 * The apiserver's log store goes to a temp dir per test (KONTENA_LOG_DIR in the environment
 * the platform's processes inherit); the slow-follower test also sets
 * KONTENA_LOG_WINDOW_MB=1. Every test starts its own platform in its body; the suite's .fini
 * cleans up even after a failure.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/platform.h"
#include "tests/support/proc.h"

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

static struct platform pf;
static char *stack_name, *stack_file, *log_dir;
static pid_t follower_pid, syslog_pid;
static char *syslog_dir;

static void suite_init(void)
{
    docker_env_require();
}

static void suite_fini(void)
{
    if (follower_pid > 0)
        proc_stop(follower_pid, SIGKILL, 2000);
    follower_pid = 0;
    if (syslog_pid > 0)
        proc_stop(syslog_pid, SIGTERM, 3000);
    syslog_pid = 0;
    platform_cleanup(&pf);
    if (log_dir && !getenv("KEEP_TEST_DIRS"))
        proc_rmtree(log_dir);
    if (syslog_dir && !getenv("KEEP_TEST_DIRS"))
        proc_rmtree(syslog_dir);
    FREE_AND_NULL(syslog_dir);
    FREE_AND_NULL(log_dir);
    FREE_AND_NULL(stack_name);
    FREE_AND_NULL(stack_file);
}

TestSuite(logs, .init = suite_init, .fini = suite_fini, .timeout = 240);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            platform_dump_logs(&pf);                                                               \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

/* Start the platform with `agents` agents and the log store in a fresh temp dir; window_mb
 * NULL keeps the apiserver's default window. The grid name is unique to the test. */
static void start(int agents, const char *window_mb)
{
    struct platform_opts o = {.agents = agents};
    const struct criterion_test *t = criterion_current_test;
    const char *name = t ? t->name : "x";
    uint32_t h = 2166136261u; /* FNV-1a */
    char suffix[32];

    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    snprintf(suffix, sizeof(suffix), "l-%06x", (unsigned)(h & 0xffffff));
    o.grid_suffix = suffix;
    log_dir = proc_tempdir("kontena-logstore");
    cr_assert_not_null(log_dir);
    setenv("KONTENA_LOG_DIR", log_dir, 1);
    if (window_mb)
        setenv("KONTENA_LOG_WINDOW_MB", window_mb, 1);
    else
        unsetenv("KONTENA_LOG_WINDOW_MB");
    /* /metrics of parallel apiservers must not fight over the default port */
    setenv("KONTENA_METRICS_LISTEN", "off", 1);
    if (platform_start(&pf, &o) != 0) {
        platform_dump_logs(&pf);
        cr_assert_fail("cannot start the platform (logs above)");
    }
}

/* Install a stack (name "<what>-<run>") with the given services YAML (indented by two). */
static void install(const char *what, const char *services)
{
    char *text;

    stack_name = platform_name(what);
    text = xasprintf("stack: logs/%s\nversion: 1.0.0\nservices:\n%s", what, services);
    stack_file = platform_write_file(&pf, "stack.yml", text);
    free(text);
    cr_assert_not_null(stack_file);
    CHECK(platform_cli(&pf, "stack", "install", "--name", stack_name, "--timeout", "90",
                       "--no-wait", stack_file, NULL) == 0,
          "stack install: %s%s", pf.out, pf.err);
}

/* Spawn `kontena args...` in the background as the logged-in admin, stdout and stderr to
 * out_path. */
static pid_t spawn_cli(const char *out_path, const char *const args[])
{
    const char *argv[32];
    char *bin = xasprintf("%s/kontena", KONTENA_BIN_DIR);
    char *home = xasprintf("HOME=%s", pf.api.dir);
    char *cfg = xasprintf("KONTENA_CONFIG=%s/kontena_client.json", pf.api.dir);
    const char *env[] = {home, cfg, NULL};
    int n = 0;
    pid_t pid;

    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = proc_spawn(argv, env, out_path);
    free(cfg);
    free(home);
    free(bin);
    return pid;
}

/* The JSON entries (lines starting with '{') of a CLI output. New reference. */
static json_t *json_lines(const char *text)
{
    json_t *arr = json_array();
    const char *p = text;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len && p[0] == '{') {
            json_t *e = json_loadb(p, len, 0, NULL);
            if (e)
                json_array_append_new(arr, e);
        }
        p = nl ? nl + 1 : NULL;
    }
    return arr;
}

static size_t count_json_lines(const char *path)
{
    char *text = proc_read_file(path);
    size_t n = 0;

    for (const char *p = text; p && *p;) {
        if (*p == '{')
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    free(text);
    return n;
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---------------------------------------------------------------------------------------- */

#define SEQ_N 2000
#define SEQ_INSTANCES 2

/* Every (container, stream) has lines "<out|err> 1".."<out|err> SEQ_N" exactly once, in
 * order; ids strictly increase. Fails with the first difference. */
static void check_sequences(const json_t *entries)
{
    struct {
        char name[128];
        long next[2];
    } seen[8];
    size_t nseen = 0, i;
    json_int_t last_id = -1;
    json_t *e;

    memset(seen, 0, sizeof(seen));
    json_array_foreach(entries, i, e)
    {
        const char *name = jstr(e, "name"), *type = jstr(e, "type"), *data = jstr(e, "data");
        json_int_t id = json_integer_value(json_object_get(e, "id"));
        int err = type && !strcmp(type, "stderr");
        size_t k;
        long num;

        cr_assert(name && type && data, "entry without name/type/data: %s",
                  json_dumps(e, JSON_COMPACT));
        cr_assert_gt(id, last_id, "ids not increasing at entry %zu (%lld after %lld)", i,
                     (long long)id, (long long)last_id);
        last_id = id;
        for (k = 0; k < nseen && strcmp(seen[k].name, name); k++)
            ;
        if (k == nseen) {
            cr_assert_lt(nseen, 8, "too many containers");
            snprintf(seen[k].name, sizeof(seen[k].name), "%s", name);
            seen[k].next[0] = seen[k].next[1] = 1;
            nseen++;
        }
        cr_assert(!strncmp(data, err ? "err " : "out ", 4), "%s line on %s: '%s'", name, type,
                  data);
        num = strtol(data + 4, NULL, 10);
        cr_assert_eq(num, seen[k].next[err], "%s %s: line %ld where %ld was due (lost or twice)",
                     name, type, num, seen[k].next[err]);
        seen[k].next[err]++;
    }
    cr_assert_eq(nseen, SEQ_INSTANCES, "lines of %zu containers, want %d", nseen, SEQ_INSTANCES);
    for (i = 0; i < nseen; i++)
        for (int s = 0; s < 2; s++)
            cr_assert_eq(seen[i].next[s], SEQ_N + 1, "%s %s: %ld lines, want %d", seen[i].name,
                         s ? "stderr" : "stdout", seen[i].next[s] - 1, SEQ_N);
}

Test(logs, follow_sees_every_line_once_in_order_across_an_apiserver_restart)
{
    const size_t want = (size_t)SEQ_INSTANCES * 2 * SEQ_N;
    char *svc, *out_path, *text;
    const char *args[12];
    int64_t deadline;
    size_t have = 0;
    json_t *entries;
    int n = 0;

    start(1, NULL);
    /* 2000 numbered lines on each stream, in bursts of 200 a second: about 10 s of output */
    install("seq", "  seq:\n"
                   "    image: " DOCKER_ENV_IMAGE "\n"
                   "    instances: 2\n"
                   "    stop_grace_period: 1s\n"
                   "    command: sh -c 'sleep 2; i=0; while [ $$i -lt 2000 ]; do i=$$((i+1)); "
                   "echo \"out $$i\"; echo \"err $$i\" >&2; "
                   "if [ $$((i % 200)) = 0 ]; then sleep 1; fi; done; exec sleep 3600'\n");
    svc = xasprintf("%s/seq", stack_name);
    out_path = xasprintf("%s/follow.out", pf.api.dir);
    args[n++] = "service";
    args[n++] = "logs";
    args[n++] = "-f";
    args[n++] = "-o";
    args[n++] = "json";
    args[n++] = "--tail";
    args[n++] = "10000";
    args[n++] = svc;
    args[n] = NULL;
    follower_pid = spawn_cli(out_path, args);
    cr_assert_gt(follower_pid, 0);

    /* Restart the apiserver once the follower has seen a fifth of the lines. */
    deadline = time_mono_ms() + 60000;
    while ((have = count_json_lines(out_path)) < want / 5 && time_mono_ms() < deadline)
        time_sleep_ms(100);
    CHECK(have >= want / 5, "the follower saw %zu lines in 60 s", have);
    fprintf(stderr, "logs: restarting the apiserver after %zu of %zu lines\n", have, want);
    CHECK(api_proc_restart(&pf.api) == 0, "apiserver restart failed");
    CHECK(count_json_lines(out_path) < want, "every line arrived before the restart");

    deadline = time_mono_ms() + 90000;
    while ((have = count_json_lines(out_path)) < want && time_mono_ms() < deadline)
        time_sleep_ms(200);
    time_sleep_ms(1500); /* anything extra (a duplicate) would arrive now */
    proc_stop(follower_pid, SIGTERM, 3000);
    follower_pid = 0;
    text = proc_read_file(out_path);
    cr_assert_not_null(text);
    if (count_json_lines(out_path) != want)
        platform_dump_logs(&pf);
    entries = json_lines(text);
    fprintf(stderr, "logs: the follower printed %zu entries (want %zu)\n", json_array_size(entries),
            want);
    check_sequences(entries);
    cr_assert_eq(json_array_size(entries), want);
    /* the follower noticed the restart and went on */
    cr_assert(strstr(text, "reconnecting"), "no reconnect warning in the follower's output");
    json_decref(entries);
    free(text);
    free(out_path);
    free(svc);
    cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly");
}

/* ---------------------------------------------------------------------------------------- */

/* `kontena args...` must succeed; its stdout's JSON entries. */
static json_t *cli_entries(const char *const args[])
{
    const char *argv[24];
    int n = 0, rc;

    for (; args[n] && n < 23; n++)
        argv[n] = args[n];
    argv[n] = NULL;
    {
        char *out = NULL, *err = NULL;
        rc = api_cli_env(&pf.api, NULL, NULL, &out, &err, argv);
        CHECK(rc == 0, "kontena %s %s: exit %d: %s%s", argv[0], argv[1], rc, out, err);
        json_t *e = json_lines(out);
        free(out);
        free(err);
        return e;
    }
}

/* How many entries have data starting with prefix. */
static size_t count_data(const json_t *entries, const char *prefix)
{
    size_t i, n = 0;
    json_t *e;

    json_array_foreach(entries, i, e)
    {
        const char *d = jstr(e, "data");
        if (d && !strncmp(d, prefix, strlen(prefix)))
            n++;
    }
    return n;
}

/* Poll `service logs --tail 10000 -o json` until `want` lines start with prefix. */
static void wait_lines(const char *svc, const char *prefix, size_t want)
{
    const char *args[] = {"service", "logs", "--tail", "10000", "-o", "json", svc, NULL};
    int64_t deadline = time_mono_ms() + 60000;
    size_t have = 0;

    for (;;) {
        json_t *e = cli_entries(args);
        have = count_data(e, prefix);
        json_decref(e);
        if (have >= want)
            return;
        CHECK(time_mono_ms() < deadline, "%zu lines '%s...' of %s after 60 s, want %zu", have,
              prefix, svc, want);
        time_sleep_ms(300);
    }
}

static size_t count_lines(const char *text)
{
    size_t n = 0;

    for (const char *p = text; p && *p; p++)
        if (*p == '\n')
            n++;
    return n;
}

Test(logs, tail_since_instance_node_container_search_stack_and_container_logs)
{
    char since[40], *svc, *cname1, *cname2, *cid;
    json_t *e, *inst, *x;
    size_t i;
    const char *node2 = NULL;

    start(2, NULL);
    /* 20 "a" lines, a pause, 20 "b" lines and one needle per instance */
    install("flt", "  two:\n"
                   "    image: " DOCKER_ENV_IMAGE "\n"
                   "    instances: 2\n"
                   "    stop_grace_period: 1s\n"
                   "    deploy:\n"
                   "      strategy: ha\n"
                   "    command: sh -c 'for i in $$(seq 1 20); do echo \"a $$i\"; done; sleep 5; "
                   "for i in $$(seq 1 20); do echo \"b $$i\"; done; echo needle-x7q >&2; "
                   "exec sleep 3600'\n");
    svc = xasprintf("%s/two", stack_name);
    inst = platform_wait_running(&pf, stack_name, "two", 2, 60000);
    CHECK(inst, "the two instances are not running");
    json_array_foreach(inst, i, x)
    {
        if (json_integer_value(json_object_get(x, "instance_number")) == 2)
            node2 = jstr(x, "node");
    }
    CHECK(node2, "no instance 2");
    wait_lines(svc, "a ", 40);
    time_iso8601_now(since, sizeof(since));
    fprintf(stderr, "logs: --since %s\n", since);
    wait_lines(svc, "needle", 2);
    wait_lines(svc, "b ", 40);
    cname1 = xasprintf("%s.two-1", stack_name);
    cname2 = xasprintf("%s.two-2", stack_name);

    /* --tail 5, text: "<created_at> [<instance>]: <data>", the newest five lines */
    CHECK(platform_cli(&pf, "service", "logs", "--tail", "5", svc, NULL) == 0, "%s%s", pf.out,
          pf.err);
    cr_assert_eq(count_lines(pf.out) + count_lines(pf.err), 5, "--tail 5 gave:\n%s%s", pf.out,
                 pf.err);
    cr_assert(strstr(pf.out, "]: b 20") || strstr(pf.err, "]: needle-x7q"), "%s%s", pf.out, pf.err);
    cr_assert(!strstr(pf.out, ": a "), "old lines in --tail 5: %s", pf.out);
    {
        const char *l = pf.out;
        cr_assert(l[0] >= '2' && strstr(l, "Z [") != NULL, "not '<created_at> [<n>]: ': %s", l);
    }
    /* --lines is --tail */
    CHECK(platform_cli(&pf, "service", "logs", "--lines", "3", "-o", "json", svc, NULL) == 0,
          "%s%s", pf.out, pf.err);
    e = json_lines(pf.out);
    cr_assert_eq(json_array_size(e), 3);
    json_decref(e);

    /* -i 1: only instance 1's 41 lines */
    {
        const char *args[] = {"service", "logs", "-i",   "1", "--tail",
                              "1000",    "-o",   "json", svc, NULL};
        e = cli_entries(args);
        cr_assert_eq(json_array_size(e), 41, "-i 1: %zu entries", json_array_size(e));
        json_array_foreach(e, i, x) cr_assert_str_eq(jstr(x, "name"), cname1);
        json_decref(e);
    }
    /* --since: only what came after the "a" lines */
    {
        const char *args[] = {"service", "logs", "--since", since, "--tail",
                              "1000",    "-o",   "json",    svc,   NULL};
        e = cli_entries(args);
        cr_assert_eq(count_data(e, "a "), 0, "--since %s returned 'a' lines", since);
        cr_assert_eq(count_data(e, "b "), 40);
        cr_assert_eq(json_array_size(e), 42);
        json_decref(e);
    }
    /* --search */
    {
        const char *args[] = {"service", "logs", "--search", "needle-x7", "-o", "json", svc, NULL};
        e = cli_entries(args);
        cr_assert_eq(json_array_size(e), 2, "--search: %zu entries", json_array_size(e));
        json_array_foreach(e, i, x) cr_assert_str_eq(jstr(x, "type"), "stderr");
        json_decref(e);
    }
    /* grid logs --node: only that node's container; -c: only that container */
    {
        const char *args[] = {"grid", "logs", "--node", node2, "--tail",
                              "1000", "-o",   "json",   NULL};
        e = cli_entries(args);
        cr_assert_eq(json_array_size(e), 41, "--node %s: %zu entries", node2, json_array_size(e));
        json_array_foreach(e, i, x)
        {
            cr_assert_str_eq(jstr(json_object_get(x, "node"), "name"), node2);
            cr_assert_str_eq(jstr(x, "name"), cname2);
        }
        json_decref(e);
    }
    {
        const char *args[] = {"grid", "logs", "-c", cname1, "--search", "b 1", "-o", "json", NULL};
        e = cli_entries(args);
        /* "b 1", "b 10".."b 19" */
        cr_assert_eq(json_array_size(e), 11, "-c %s --search 'b 1': %zu", cname1,
                     json_array_size(e));
        json_array_foreach(e, i, x) cr_assert_str_eq(jstr(x, "name"), cname1);
        json_decref(e);
    }
    CHECK(platform_cli(&pf, "grid", "logs", "--service", svc, "--tail", "2", NULL) == 0, "%s%s",
          pf.out, pf.err);
    cr_assert_eq(count_lines(pf.out) + count_lines(pf.err), 2, "%s%s", pf.out, pf.err);
    cr_assert(strstr(pf.out, stack_name) || strstr(pf.err, stack_name), "%s", pf.out);

    /* stack logs NAME SERVICE: "<created_at> [<container name>]: <data>" */
    CHECK(platform_cli(&pf, "stack", "logs", "--tail", "100", stack_name, "two", NULL) == 0, "%s%s",
          pf.out, pf.err);
    {
        char *want = xasprintf(" [%s]: b 20\n", cname2);
        cr_assert(strstr(pf.out, want), "stack logs lacks '%s': %s", want, pf.out);
        free(want);
    }
    cr_assert_eq(count_lines(pf.out) + count_lines(pf.err), 82);

    /* container logs NODE/NAME: "<created_at> <name>: <data>", stderr lines on stderr (the
     * order between a container's two streams is Docker's, so the needle is looked for in the
     * whole window, not in the last three lines) */
    cid = xasprintf("%s/%s", node2, cname2);
    CHECK(platform_cli(&pf, "container", "logs", "--tail", "100", cid, NULL) == 0, "%s%s", pf.out,
          pf.err);
    {
        char *want = xasprintf(" %s: b 20\n", cname2),
             *want2 = xasprintf(" %s: needle-x7q\n", cname2);
        cr_assert(strstr(pf.out, want), "container logs lacks '%s': %s", want, pf.out);
        cr_assert(strstr(pf.err, want2), "container logs stderr lacks '%s': %s", want2, pf.err);
        cr_assert_eq(count_lines(pf.out), 40, "%s", pf.out);
        cr_assert_eq(count_lines(pf.err), 1, "%s", pf.err);
        cr_assert(!strstr(pf.out, cname1), "another container's lines: %s", pf.out);
        free(want);
        free(want2);
    }
    CHECK(platform_cli(&pf, "container", "logs", "--tail", "3", cid, NULL) == 0, "%s%s", pf.out,
          pf.err);
    cr_assert_eq(count_lines(pf.out) + count_lines(pf.err), 3, "%s%s", pf.out, pf.err);

    /* errors */
    cr_assert_neq(platform_cli(&pf, "service", "logs", "no-such-svc", NULL), 0);
    cr_assert(strstr(pf.err, "[error]"), "%s", pf.err);
    cr_assert_neq(platform_cli(&pf, "service", "logs", "--tail", "0", svc, NULL), 0);
    cr_assert_neq(platform_cli(&pf, "service", "logs", "--since", "yesterday-ish", svc, NULL), 0);
    cr_assert_neq(platform_cli(&pf, "container", "logs", "no-slash", NULL), 0);
    {
        char *unknown = xasprintf("%s/%s.nope-1", node2, stack_name);
        cr_assert_neq(platform_cli(&pf, "container", "logs", unknown, NULL), 0);
        cr_assert(strstr(pf.err, "not found"), "%s", pf.err);
        free(unknown);
    }

    json_decref(inst);
    free(cid);
    free(cname1);
    free(cname2);
    free(svc);
    cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly");
}

/* ---------------------------------------------------------------------------------------- */

#define FLOOD_N 150000

struct slow_reader {
    pthread_t th;
    char *url, *token, *cafile;
    volatile int slow; /* sleep in every callback while set */
    volatile int stop;
    volatile long bytes, entries;
    volatile int dropped_seen, last_seen;
    char tail[64]; /* the end of what came so far, for markers split across callbacks */
};

static size_t slow_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct slow_reader *r = arg;
    size_t n = size * nmemb;
    char *scan;
    size_t tl = strlen(r->tail);

    if (r->stop)
        return 0;
    if (r->slow)
        usleep(100 * 1000);
    r->bytes += (long)n;
    /* look for the markers in tail + data */
    scan = xmalloc(tl + n + 1);
    memcpy(scan, r->tail, tl);
    memcpy(scan + tl, p, n);
    scan[tl + n] = '\0';
    for (const char *q = scan; (q = strstr(q, "\"id\":")) != NULL; q++)
        if (q >= scan + tl)
            r->entries++;
    if (strstr(scan, "\"dropped\""))
        r->dropped_seen = 1;
    {
        char last[32];
        snprintf(last, sizeof(last), "-%d\"", FLOOD_N);
        if (strstr(scan, last))
            r->last_seen = 1;
    }
    {
        size_t keep = tl + n < sizeof(r->tail) - 1 ? tl + n : sizeof(r->tail) - 1;
        memcpy(r->tail, scan + tl + n - keep, keep);
        r->tail[keep] = '\0';
    }
    free(scan);
    return n;
}

static void *slow_main(void *arg)
{
    struct slow_reader *r = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char *auth = xasprintf("Authorization: Bearer %s", r->token);

    hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CAINFO, r->cafile);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 1024L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, slow_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    (void)curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(auth);
    return NULL;
}

/* VmRSS (or another field of /proc/<pid>/status) in KiB, -1 when unreadable. */
static long proc_status_kb(pid_t pid, const char *field)
{
    char path[64], *text, *p;
    long v = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = proc_read_file(path);
    if (text && (p = strstr(text, field)) != NULL)
        v = strtol(p + strlen(field) + 1, NULL, 10);
    free(text);
    return v;
}

Test(logs, slow_follower_keeps_the_apiserver_bounded_and_gets_a_dropped_marker)
{
    struct slow_reader r;
    char *g, *url_svc, *svc, *cli_out;
    long base_kb, max_kb = 0, kb;
    int64_t deadline, t0;
    int done = 0;

#if defined(__SANITIZE_ADDRESS__)
    /* ASan keeps up to 256 MB of freed memory in quarantine: RSS would say nothing */
    setenv("ASAN_OPTIONS", "quarantine_size_mb=4:detect_leaks=1", 1);
#endif
    start(1, "1");
    install("flood", "  flood:\n"
                     "    image: " DOCKER_ENV_IMAGE "\n"
                     "    instances: 1\n"
                     "    stop_grace_period: 1s\n"
                     "    command: sh -c 'sleep 4; seq 1 150000 | sed "
                     "\"s/^/flood-line-with-some-padding-to-make-it-about-a-hundred-bytes-long-"
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "xxxxxxxxxxxxxxx"
                     "xxxxxxxxxxxxxxxxxxxx-/\"; exec sleep 3600'\n");
    svc = xasprintf("%s/flood", stack_name);
    memset(&r, 0, sizeof(r));
    g = xstrdup(pf.grid);
    url_svc = xasprintf("%s/v1/services/%s/%s/flood/container_logs?follow=1&limit=1", pf.api.url, g,
                        stack_name);
    r.url = url_svc;
    r.token = xstrdup(api_proc_admin_token(&pf.api));
    r.cafile = pf.pem;
    r.slow = 1;
    {
        json_t *running = platform_wait_running(&pf, stack_name, "flood", 1, 60000);
        CHECK(running, "flood not running");
        json_decref(running);
    }
    base_kb = proc_status_kb(pf.api.pid, "VmRSS:");
    cr_assert_gt(base_kb, 0);
    cr_assert_eq(pthread_create(&r.th, NULL, slow_main, &r), 0);
    /* A CLI follower too, stopped (SIGSTOP) as soon as the flood reaches it: once continued it
     * must say what was dropped and go on to the last line. */
    cli_out = xasprintf("%s/cli-follow.out", pf.api.dir);
    {
        const char *args[] = {"service", "logs", "-f", "--tail", "1", "-o", "json", svc, NULL};
        follower_pid = spawn_cli(cli_out, args);
    }
    cr_assert_gt(follower_pid, 0);
    deadline = time_mono_ms() + 60000;
    while (count_json_lines(cli_out) == 0 && time_mono_ms() < deadline)
        time_sleep_ms(20);
    CHECK(count_json_lines(cli_out) > 0, "the CLI follower saw no flood line in 60 s");
    kill(follower_pid, SIGSTOP);

    /* Until the last line is stored (a fast reader finds it), watch the apiserver's RSS. */
    t0 = time_mono_ms();
    deadline = t0 + 150000;
    while (!done && time_mono_ms() < deadline) {
        const char *args[] = {"service", "logs", "--tail", "1", "--search",
                              "-150000", "-o",   "json",   svc, NULL};
        char *out = NULL;
        const char *argv[16];
        int n = 0;

        for (; args[n]; n++)
            argv[n] = args[n];
        argv[n] = NULL;
        for (int k = 0; k < 10; k++) {
            kb = proc_status_kb(pf.api.pid, "VmRSS:");
            if (kb > max_kb)
                max_kb = kb;
            time_sleep_ms(100);
        }
        if (api_cli_env(&pf.api, NULL, NULL, &out, NULL, argv) == 0 && out &&
            strstr(out, "-150000\""))
            done = 1;
        free(out);
    }
    fprintf(stderr,
            "logs: %d lines stored in %lld ms; apiserver RSS %ld KiB before, at most %ld KiB "
            "during; the slow reader got %ld bytes, %ld entries\n",
            FLOOD_N, (long long)(time_mono_ms() - t0), base_kb, max_kb, r.bytes, r.entries);
    CHECK(done, "the last flood line was not stored within 150 s");
    cr_assert_lt(r.entries, FLOOD_N / 2, "the slow reader was not slow (%ld entries)", r.entries);
    cr_assert_lt(max_kb - base_kb, 48 * 1024,
                 "the apiserver grew by %ld KiB while a follower lagged", max_kb - base_kb);

    /* Now read fast: the reader must get a dropped marker and then the newest lines. */
    r.slow = 0;
    deadline = time_mono_ms() + 60000;
    while (!(r.dropped_seen && r.last_seen) && time_mono_ms() < deadline)
        time_sleep_ms(200);
    r.stop = 1;
    pthread_join(r.th, NULL);
    fprintf(stderr, "logs: after speeding up: %ld entries, dropped marker %s, last line %s\n",
            r.entries, r.dropped_seen ? "yes" : "no", r.last_seen ? "yes" : "no");
    cr_assert(r.dropped_seen, "no {\"dropped\": ...} marker for the evicted follower");
    cr_assert(r.last_seen, "the follower did not reach the last line");
    cr_assert_lt(r.entries, FLOOD_N, "the follower got every line although the window is 1 MiB");

    /* The CLI follower, continued: a warning with the count, then on to the last line. */
    kill(follower_pid, SIGCONT);
    deadline = time_mono_ms() + 60000;
    for (;;) {
        char *text = proc_read_file(cli_out);
        int ok = text && strstr(text, " log lines dropped: older than the log window") &&
                 strstr(text, "-150000\"");
        free(text);
        if (ok)
            break;
        if (time_mono_ms() >= deadline) {
            proc_dump_file(cli_out);
            cr_assert_fail("the CLI follower did not warn of the dropped lines and reach the end");
        }
        time_sleep_ms(200);
    }
    proc_stop(follower_pid, SIGTERM, 3000);
    follower_pid = 0;
    fprintf(stderr, "logs: the stopped CLI follower printed %zu entries and the dropped warning\n",
            count_json_lines(cli_out));
    cr_assert_lt(count_json_lines(cli_out), FLOOD_N);
    free(cli_out);

    free(r.token);
    free(url_svc);
    free(g);
    free(svc);
    cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly");
}

/* ---------------------------------------------------------------------------------------- */

/* Wait until the file holds a line containing every one of the strings (NULL-ended). */
static int wait_file_line(const char *path, const char *const want[], int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;

    for (;;) {
        char *text = proc_read_file(path);
        for (const char *p = text; p && *p;) {
            const char *nl = strchr(p, '\n');
            char *line = xstrndup(p, nl ? (size_t)(nl - p) : strlen(p));
            int ok = 1;
            for (size_t i = 0; want[i]; i++)
                ok = ok && strstr(line, want[i]);
            free(line);
            if (ok) {
                free(text);
                return 0;
            }
            p = nl ? nl + 1 : NULL;
        }
        if (time_mono_ms() >= deadline) {
            fprintf(stderr, "syslog output %s:\n%s\n", path, text ? text : "(none)");
            free(text);
            return -1;
        }
        free(text);
        time_sleep_ms(200);
    }
}

Test(logs, syslog_forwarding_delivers_lines_to_rsyslogd_over_udp_and_tcp)
{
    int udp = proc_free_port(), tcp = proc_free_port();
    char *conf, *out, *pidf, *text, *addr, *svc_udp, *svc_tcp;
    const char *argv[8];
    char *log;

    start(1, NULL);
    /* a real rsyslogd with its own configuration on loopback */
    syslog_dir = proc_tempdir("kontena-rsyslog");
    out = xasprintf("%s/out.log", syslog_dir);
    pidf = xasprintf("%s/rsyslogd.pid", syslog_dir);
    conf = xasprintf("%s/rsyslog.conf", syslog_dir);
    log = xasprintf("%s/rsyslogd.log", syslog_dir);
    text =
        xasprintf("global(workDirectory=\"%s\")\n"
                  "module(load=\"imudp\")\n"
                  "module(load=\"imtcp\")\n"
                  "input(type=\"imudp\" address=\"127.0.0.1\" port=\"%d\")\n"
                  "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\")\n"
                  "template(name=\"kt\" type=\"string\" "
                  "string=\"%%PRI%% %%HOSTNAME%% %%APP-NAME%% %%PROCID%% %%MSGID%% %%msg%%\\n\")\n"
                  "*.* action(type=\"omfile\" file=\"%s\" template=\"kt\")\n",
                  syslog_dir, udp, tcp, out);
    {
        FILE *f = fopen(conf, "w");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
    }
    free(text);
    argv[0] = "rsyslogd";
    argv[1] = "-n";
    argv[2] = "-f";
    argv[3] = conf;
    argv[4] = "-i";
    argv[5] = pidf;
    argv[6] = NULL;
    syslog_pid = proc_spawn(argv, NULL, log);
    cr_assert_gt(syslog_pid, 0);
    {
        char *probe = NULL;
        int64_t deadline = time_mono_ms() + 10000;
        /* its TCP input answers once both inputs are set up */
        while (!(probe = platform_tcp_read(tcp)) && time_mono_ms() < deadline)
            time_sleep_ms(100);
        free(probe);
        if (time_mono_ms() >= deadline)
            proc_dump_file(log);
    }

    /* CLI checks of the grid options */
    cr_assert_neq(
        platform_cli(&pf, "grid", "update", "--log-opt", "syslog-address=udp://x:1", pf.grid, NULL),
        0);
    cr_assert(strstr(pf.err, "Need to specify --log-forwarder"), "%s", pf.err);
    cr_assert_neq(platform_cli(&pf, "grid", "update", "--log-forwarder", "syslog", "--log-opt",
                               "syslog-address=bogus", pf.grid, NULL),
                  0, "a bad syslog-address was accepted");

    addr = xasprintf("syslog-address=udp://127.0.0.1:%d", udp);
    CHECK(platform_cli(&pf, "grid", "update", "--log-forwarder", "syslog", "--log-opt", addr,
                       pf.grid, NULL) == 0,
          "grid update: %s%s", pf.out, pf.err);
    free(addr);
    CHECK(platform_cli(&pf, "grid", "show", pf.grid, NULL) == 0, "%s", pf.err);
    cr_assert(strstr(pf.out, "logs:\n  forwarder: syslog\n"), "grid show: %s", pf.out);
    cr_assert(strstr(pf.out, "syslog-address: udp://127.0.0.1:"), "grid show: %s", pf.out);

    install("fwd", "  say:\n"
                   "    image: " DOCKER_ENV_IMAGE "\n"
                   "    instances: 1\n"
                   "    stop_grace_period: 1s\n"
                   "    command: sh -c 'sleep 1; echo hello-udp-5a1; echo oops-udp-5a1 >&2; "
                   "exec sleep 3600'\n");
    svc_udp = xasprintf("%s.say", stack_name);
    {
        /* "<PRI> <node> <stack>.<service> <instance> <stdout|stderr> <data>": user.info (14)
         * for stdout, user.err (11) for stderr */
        const char *w1[] = {"14 node-1 ", svc_udp, " 1 stdout hello-udp-5a1", NULL};
        const char *w2[] = {"11 node-1 ", svc_udp, " 1 stderr oops-udp-5a1", NULL};
        CHECK(wait_file_line(out, w1, 60000) == 0, "the stdout line did not reach rsyslogd (udp)");
        CHECK(wait_file_line(out, w2, 10000) == 0, "the stderr line did not reach rsyslogd (udp)");
    }

    /* TCP (octet-counted frames) */
    addr = xasprintf("syslog-address=tcp://127.0.0.1:%d", tcp);
    CHECK(platform_cli(&pf, "grid", "update", "--log-forwarder", "syslog", "--log-opt", addr,
                       pf.grid, NULL) == 0,
          "grid update tcp: %s%s", pf.out, pf.err);
    free(addr);
    CHECK(
        platform_cli(&pf, "service", "create", "--instances", "1", "--cmd",
                     "sh -c 'sleep 1; for i in 1 2 3; do echo hello-tcp-$i; done; exec sleep 3600'",
                     "--stop-timeout", "1s", "tcpsay", DOCKER_ENV_IMAGE, NULL) == 0,
        "service create: %s%s", pf.out, pf.err);
    CHECK(platform_cli(&pf, "service", "deploy", "tcpsay", NULL) == 0, "deploy: %s%s", pf.out,
          pf.err);
    svc_tcp = xstrdup("null.tcpsay");
    {
        const char *w1[] = {"14 node-1 ", svc_tcp, " 1 stdout hello-tcp-1", NULL};
        const char *w3[] = {"14 node-1 ", svc_tcp, " 1 stdout hello-tcp-3", NULL};
        CHECK(wait_file_line(out, w1, 60000) == 0, "the line did not reach rsyslogd (tcp)");
        CHECK(wait_file_line(out, w3, 10000) == 0, "the third line did not reach rsyslogd (tcp)");
    }

    /* --no-log-forwarder: grid show has no logs block any more */
    CHECK(platform_cli(&pf, "grid", "update", "--no-log-forwarder", pf.grid, NULL) == 0, "%s%s",
          pf.out, pf.err);
    CHECK(platform_cli(&pf, "grid", "show", pf.grid, NULL) == 0, "%s", pf.err);
    cr_assert(!strstr(pf.out, "forwarder:"), "grid show: %s", pf.out);

    CHECK(platform_cli(&pf, "service", "rm", "--force", "tcpsay", NULL) == 0, "%s%s", pf.out,
          pf.err);
    free(svc_tcp);
    free(svc_udp);
    free(log);
    free(conf);
    free(pidf);
    free(out);
    cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly");
}
