/* tests/unit/test_agent_stats.c -- agent/stats.c's computations without Docker: a container
 * item from two Engine API stats replies (CPU % of one core, memory without the inactive
 * page cache, network rates, block I/O, identity from the labels) and a node sample from a
 * made-up /proc (cpu shares between two samples, meminfo, loadavg, net/dev groups). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/stats.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    cr_assert(j, "bad test JSON: %s", e.text);
    return j;
}

static double num(const json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

Test(agent_stats, container_item_from_two_samples)
{
    json_t *summary = load("{\"Id\": \"abc\", \"Names\": [\"/node-1.st.web-2\"], \"Labels\": "
                           "{\"io.kontena.container.name\": \"st.web-2\", \"io.kontena.stack\": "
                           "\"st\", \"io.kontena.service\": \"web\", \"io.kontena.instance\": "
                           "\"2\"}}");
    json_t *r1 = load("{\"cpu_stats\": {\"cpu_usage\": {\"total_usage\": 1000000000}, "
                      "\"system_cpu_usage\": 100000000000, \"online_cpus\": 2}, "
                      "\"memory_stats\": {\"usage\": 3000000, \"limit\": 8000000, \"stats\": "
                      "{\"total_inactive_file\": 1000000}}, \"networks\": {\"eth0\": "
                      "{\"rx_bytes\": 1000, \"tx_bytes\": 500}, \"eth1\": {\"rx_bytes\": 24, "
                      "\"tx_bytes\": 0}}, \"blkio_stats\": {\"io_service_bytes_recursive\": "
                      "[{\"op\": \"Read\", \"value\": 4096}, {\"op\": \"Write\", \"value\": "
                      "8192}, {\"op\": \"Total\", \"value\": 12288}]}}");
    /* 2 s later: 0.5 s of CPU used while the system counted 4 s (2 cores x 2 s) */
    json_t *r2 = load("{\"cpu_stats\": {\"cpu_usage\": {\"total_usage\": 1500000000}, "
                      "\"system_cpu_usage\": 104000000000, \"online_cpus\": 2}, "
                      "\"memory_stats\": {\"usage\": 3000000, \"limit\": 8000000, \"stats\": "
                      "{\"total_inactive_file\": 1000000}}, \"networks\": {\"eth0\": "
                      "{\"rx_bytes\": 3024, \"tx_bytes\": 1500}}}");
    struct stats_prev prev;
    json_t *a, *b;

    memset(&prev, 0, sizeof(prev));
    a = stats_container_item(summary, r1, &prev, 1000);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "st.web-2");
    cr_assert_str_eq(json_string_value(json_object_get(a, "stack")), "st");
    cr_assert_str_eq(json_string_value(json_object_get(a, "service")), "web");
    cr_assert_eq(json_integer_value(json_object_get(a, "instance")), 2);
    cr_assert_eq(num(a, "cpu", "usage_pct"), 0, "no CPU %% from a first sample");
    cr_assert_eq(num(a, "cpu", "num_cores"), 2);
    cr_assert_eq(num(a, "memory", "usage"), 2000000, "usage without the inactive cache");
    cr_assert_eq(num(a, "memory", "limit"), 8000000);
    cr_assert_eq(num(a, "network", "rx_bytes"), 1024, "summed over interfaces");
    cr_assert_eq(num(a, "blkio", "read_bytes"), 4096);
    cr_assert_eq(num(a, "blkio", "write_bytes"), 8192);
    b = stats_container_item(summary, r2, &prev, 3000);
    /* 0.5 / 4 x 2 cores x 100 = 25 % of one core */
    cr_assert(fabs(num(b, "cpu", "usage_pct") - 25.0) < 0.001, "%f", num(b, "cpu", "usage_pct"));
    cr_assert(fabs(num(b, "network", "rx_bytes_per_second") - 1000.0) < 0.001);
    cr_assert(fabs(num(b, "network", "tx_bytes_per_second") - 500.0) < 0.001);
    json_decref(a);
    json_decref(b);
    json_decref(r1);
    json_decref(r2);
    json_decref(summary);
}

Test(agent_stats, container_without_labels_or_numbers)
{
    json_t *summary = load("{\"Id\": \"x\", \"Names\": [\"/plain\"], \"Labels\": {}}");
    json_t *raw = load("{\"memory_stats\": {}, \"cpu_stats\": {}}");
    struct stats_prev prev;
    json_t *a;

    memset(&prev, 0, sizeof(prev));
    a = stats_container_item(summary, raw, &prev, 1);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "plain");
    cr_assert_str_eq(json_string_value(json_object_get(a, "stack")), "null");
    cr_assert(json_is_null(json_object_get(a, "instance")));
    cr_assert_eq(num(a, "cpu", "num_cores"), 1);
    json_decref(a);
    json_decref(raw);
    json_decref(summary);
}

static char *dir;

static void put_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");

    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    free(path);
}

static void setup_proc(void)
{
    char tmpl[] = "/tmp/agent-stats-XXXXXX", *net;

    cr_assert(mkdtemp(tmpl));
    dir = xstrdup(tmpl);
    net = xasprintf("%s/net", dir);
    cr_assert_eq(mkdir(net, 0700), 0);
    free(net);
}

static void teardown_proc(void)
{
    const char *files[] = {"stat", "meminfo", "loadavg", "net/dev"};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", dir, files[i]);
        unlink(p);
        free(p);
    }
    char *net = xasprintf("%s/net", dir);
    rmdir(net);
    free(net);
    rmdir(dir);
    free(dir);
}

static const char netdev1[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
    "docker0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
    "kontena0: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n";
static const char netdev2[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "docker0: 3000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
    "kontena0: 300 3 0 0 0 0 0 0 1400 4 0 0 0 0 0 0\n";

Test(agent_stats, node_sample_from_proc, .init = setup_proc, .fini = teardown_proc)
{
    struct stats_node_prev prev;
    json_t *a, *b, *ext, *in;

    memset(&prev, 0, sizeof(prev));
    put_file("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0\n"
                     "cpu1 50 0 50 400 0 0 0 0\nintr 1\n");
    put_file("meminfo", "MemTotal:       1000 kB\nMemFree:         250 kB\nBuffers:          10 kB\n"
                        "Cached:          100 kB\nActive:          300 kB\nInactive:        200 kB\n");
    put_file("loadavg", "0.50 0.25 0.10 1/100 1234\n");
    put_file("net/dev", netdev1);
    a = stats_node_sample(dir, "/", &prev, 1000);
    cr_assert_eq(num(a, "memory", "total"), 1024000);
    cr_assert_eq(num(a, "memory", "used"), 768000);
    cr_assert_eq(num(a, "memory", "cached"), 102400);
    cr_assert_eq(num(a, "load", "1m"), 0.5);
    cr_assert_eq(num(a, "load", "15m"), 0.1);
    cr_assert_eq(num(a, "cpu", "num_cores"), 2);
    cr_assert_eq(num(a, "cpu", "used_pct"), 0, "no CPU share from a first sample");
    cr_assert(json_is_array(json_object_get(a, "filesystem")));
    cr_assert_gt(json_integer_value(json_object_get(json_array_get(json_object_get(a, "filesystem"), 0), "total")), 0);
    /* next second: 60 user, 20 system, 120 idle jiffies out of 200 */
    put_file("stat", "cpu  160 0 120 920 0 0 0 0 0 0\ncpu0 80 0 60 460 0 0 0 0\n"
                     "cpu1 80 0 60 460 0 0 0 0\n");
    put_file("net/dev", netdev2);
    b = stats_node_sample(dir, "/", &prev, 2000);
    cr_assert(fabs(num(b, "cpu", "used_pct") - 40.0) < 0.001, "%f", num(b, "cpu", "used_pct"));
    /* summed over the 2 cores: 30 % x 2 */
    cr_assert(fabs(num(b, "cpu", "user") - 60.0) < 0.001, "%f", num(b, "cpu", "user"));
    cr_assert(fabs(num(b, "cpu", "idle") - 120.0) < 0.001, "%f", num(b, "cpu", "idle"));
    ext = json_object_get(json_object_get(b, "network"), "external");
    in = json_object_get(json_object_get(b, "network"), "internal");
    cr_assert_eq(json_integer_value(json_object_get(ext, "rx_bytes")), 3000);
    cr_assert(fabs(json_number_value(json_object_get(ext, "rx_bytes_per_second")) - 2000.0) < 0.001);
    cr_assert(fabs(json_number_value(json_object_get(in, "tx_bytes_per_second")) - 1000.0) < 0.001);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(ext, "interfaces"), 0)),
                     "docker0");
    json_decref(a);
    json_decref(b);
}

/* Missing or garbage files: the fields are left out, nothing crashes. */
Test(agent_stats, node_sample_without_proc, .init = setup_proc, .fini = teardown_proc)
{
    struct stats_node_prev prev;
    json_t *a;

    memset(&prev, 0, sizeof(prev));
    put_file("stat", "garbage\n");
    put_file("loadavg", "x y z\n");
    a = stats_node_sample(dir, "/nonexistent-dir", &prev, 1);
    cr_assert_null(json_object_get(a, "cpu"));
    cr_assert_null(json_object_get(a, "memory"));
    cr_assert_null(json_object_get(a, "load"));
    cr_assert_null(json_object_get(a, "filesystem"));
    cr_assert(json_is_string(json_object_get(a, "time")));
    json_decref(a);
}
