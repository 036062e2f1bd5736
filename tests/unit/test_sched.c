/* Unit tests for controllers/sched: filters with their messages, every affinity form, the
 * strategies, the instance count (reference/scheduling.md §7) and the mismatch check (§9).
 * Every grid is built with a fixed seed, so the random choices repeat. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "controllers/sched/sched.h"

#include "common/banned.h"

/* --- helpers ------------------------------------------------------------------------------ */

static json_t *jparse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    cr_assert(v, "bad test JSON %s: %s", text, je.text);
    return v;
}

/* Add a node from JSON text; candidate unless told otherwise. */
static int add_node(struct sched_grid *g, const char *text, int candidate)
{
    json_t *n = jparse(text);
    int idx = sched_grid_add_node(g, n, candidate);
    json_decref(n);
    cr_assert_geq(idx, 0);
    return idx;
}

/* Plain nodes n1..nk numbered 1..k. */
static struct sched_grid *grid_of(int k)
{
    struct sched_grid *g = sched_grid_new(42);
    for (int i = 1; i <= k; i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"name\":\"n%d\",\"node_number\":%d}", i, i);
        add_node(g, buf, 1);
    }
    return g;
}

static void svc_of(struct sched_service *s, const char *text)
{
    json_t *v = jparse(text);
    struct err e = ERR_INIT;
    cr_assert_eq(sched_service_from_json(s, v, NULL, &e), ST_OK, "%s", e.msg);
    json_decref(v);
}

/* An instance of service id on node, its container named as the scheduler names them. */
static void inst(struct sched_grid *g, const char *node, const char *id, int n, const int *ports,
                 size_t n_ports)
{
    char *copy = xstrdup(id), *stack = strchr(copy, '/') + 1, *name = strchr(stack, '/');
    *name++ = '\0';
    char *c = sched_container_name(stack, name, n);
    sched_grid_add_instance(g, node, id, n, c, ports, n_ports);
    free(c);
    free(copy);
}

/* The plan as "n1,n2,-" (node names per instance, '-' when not placed); fresh. */
static char *plan_str(const struct sched_grid *g, const struct sched_service *s,
                      struct sched_plan *keep)
{
    struct sched_plan p;
    struct err e = ERR_INIT;
    char *out = xstrdup("");

    cr_assert_eq(sched_plan(g, s, &p, &e), ST_OK, "%s", e.msg);
    for (int i = 0; i < p.n; i++) {
        const char *nm = p.node[i] >= 0 ? sched_grid_node_name(g, p.node[i]) : "-";
        char *o = xasprintf("%s%s%s", out, i ? "," : "", nm);
        free(out);
        out = o;
    }
    if (keep)
        *keep = p;
    else
        sched_plan_release(&p);
    return out;
}

/* Plan and expect it to fail at instance `failed` with `reason`. */
static void expect_fail(const struct sched_grid *g, const struct sched_service *s, int failed,
                        const char *reason)
{
    struct sched_plan p;
    char *str = plan_str(g, s, &p);
    cr_assert_eq(p.failed, failed, "failed %d, expected %d (%s; %s)", p.failed, failed, str,
                 p.reason);
    cr_assert_str_eq(p.reason, reason);
    sched_plan_release(&p);
    free(str);
}

static void expect_plan(const struct sched_grid *g, const struct sched_service *s, const char *want)
{
    struct sched_plan p;
    char *str = plan_str(g, s, &p);
    cr_assert_str_eq(str, want, "plan %s, expected %s (reason: %s)", str, want, p.reason);
    cr_assert_eq(p.failed, 0);
    sched_plan_release(&p);
    free(str);
}

#define SVC(extra) "{\"grid\":\"g\",\"stack\":\"s\",\"name\":\"web\"" extra "}"

/* --- service and grid inputs -------------------------------------------------------------- */

Test(sched, service_from_json_defaults_and_grid_default_affinity)
{
    struct sched_service s;
    json_t *svc = jparse("{\"grid\":\"g\",\"stack\":null,\"name\":\"web\",\"affinity\":[],"
                         "\"ports\":[{\"node_port\":80,\"container_port\":8080,"
                         "\"protocol\":\"udp\"}],\"memory\":\"64m\","
                         "\"net\":\"container:db-%s\",\"deploy_opts\":{\"min_health\":0.5}}");
    json_t *grid = jparse("{\"default_affinity\":[\"label==az=a\"]}");

    cr_assert_eq(sched_service_from_json(&s, svc, grid, NULL), ST_OK);
    cr_assert_str_eq(s.id, "g/null/web");
    cr_assert_str_eq(s.stack, "null");
    cr_assert_eq(s.strategy, SCHED_HA);
    cr_assert_eq(s.instances, 1);
    cr_assert_eq(s.n_affinity, 1);
    cr_assert_str_eq(s.affinity[0], "label==az=a");
    cr_assert_eq(s.n_node_ports, 1);
    cr_assert_eq(s.node_ports[0], 80);
    cr_assert_eq(s.memory, 64 << 20);
    cr_assert_str_eq(s.net_container, "db-%s");
    cr_assert_float_eq(s.min_health, 0.5, 1e-9);
    cr_assert_eq(s.n_volume_drivers, 0, "stored services carry no driver info");
    sched_service_release(&s);
    sched_service_release(&s); /* twice is fine */
    json_decref(svc);
    json_decref(grid);
}

Test(sched, service_from_json_rejects_unknown_strategy_and_affinity)
{
    struct sched_service s;
    struct err e = ERR_INIT;
    json_t *bad = jparse(SVC(",\"strategy\":\"spread\""));
    cr_assert_eq(sched_service_from_json(&s, bad, NULL, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "'spread'"), "%s", e.msg);
    json_decref(bad);

    bad = jparse(SVC(",\"affinity\":[\"host==n1\"]"));
    cr_assert_eq(sched_service_from_json(&s, bad, NULL, &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "Unknown affinity filter: host");
    json_decref(bad);

    cr_assert_eq(sched_affinity_check("nodeequalsn1", 1, &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "Invalid affinity filter: nodeequalsn1");
    cr_assert_eq(sched_affinity_check("node==/[/", 1, &e), ST_INVALID);
    cr_assert_eq(sched_affinity_check("container!=web-%s", 3, NULL), ST_OK);
}

Test(sched, container_names)
{
    char *a = sched_container_name("shop", "web", 3), *b = sched_container_name("null", "web", 1);
    cr_assert_str_eq(a, "shop.web-3");
    cr_assert_str_eq(b, "web-1");
    free(a);
    free(b);
}

Test(sched, grid_nodes_and_orphans)
{
    struct sched_grid *g = grid_of(2);
    json_t *noname = jparse("{\"node_number\":9}");
    cr_assert_eq(sched_grid_add_node(g, noname, 1), -1);
    json_decref(noname);
    cr_assert_eq(add_node(g, "{\"name\":\"n1\"}", 0), 0, "a second n1 is the first");
    cr_assert_eq(sched_grid_node_count(g), 2);
    cr_assert_eq(sched_grid_node_index(g, "n2"), 1);
    cr_assert_eq(sched_grid_node_index(g, "zz"), -1);
    cr_assert_null(sched_grid_node_name(g, 7));
    cr_assert(sched_grid_node_candidate(g, 1));

    /* An instance on a removed node is an orphan: it has no node, ha places it anew. */
    struct sched_service s;
    svc_of(&s, SVC(",\"instances\":1"));
    inst(g, "gone", "g/s/web", 1, NULL, 0);
    struct sched_plan p;
    char *str = plan_str(g, &s, &p);
    cr_assert_eq(p.failed, 0);
    cr_assert_neq(str[0], '-');
    free(str);
    sched_plan_release(&p);
    sched_service_release(&s);
    sched_grid_free(g);
    sched_grid_free(NULL);
}

/* --- filters ------------------------------------------------------------------------------ */

Test(sched, no_candidates_no_nodes_available)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    add_node(g, "{\"name\":\"off\",\"node_number\":1}", 0);
    svc_of(&s, SVC(",\"instances\":2"));
    expect_fail(g, &s, 1, "There are no nodes available");
    sched_service_release(&s);

    /* A daemon over an empty grid: N is 0 but failed says so anyway. */
    struct sched_plan p;
    svc_of(&s, SVC(",\"strategy\":\"daemon\""));
    cr_assert_eq(sched_plan(g, &s, &p, NULL), ST_OK);
    cr_assert_eq(p.n, 0);
    cr_assert_eq(p.failed, 1);
    cr_assert_str_eq(p.reason, "There are no nodes available");
    sched_plan_release(&p);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, availability_drain)
{
    struct sched_grid *g = sched_grid_new(3);
    struct sched_service s;
    add_node(g, "{\"name\":\"n1\",\"node_number\":1,\"availability\":\"drain\"}", 1);
    svc_of(&s, SVC(""));
    expect_fail(g, &s, 1, "Filter Availability did not return any nodes");
    add_node(g, "{\"name\":\"n2\",\"node_number\":2,\"availability\":\"active\"}", 1);
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    expect_plan(g, &s, "n2"); /* moved off the drained node */
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, ephemeral_only_for_stateful)
{
    struct sched_grid *g = sched_grid_new(3);
    struct sched_service st, sl;
    add_node(g, "{\"name\":\"e1\",\"node_number\":1,\"labels\":[\"ephemeral\"]}", 1);
    svc_of(&st, SVC(",\"stateful\":true"));
    svc_of(&sl, "{\"grid\":\"g\",\"stack\":\"s\",\"name\":\"api\"}");
    expect_fail(g, &st, 1, "Did not find any non-ephemeral nodes for stateful service");
    expect_plan(g, &sl, "e1");
    /* Already there: it may stay. */
    inst(g, "e1", "g/s/web", 1, NULL, 0);
    expect_plan(g, &st, "e1");
    sched_service_release(&st);
    sched_service_release(&sl);
    sched_grid_free(g);

    g = sched_grid_new(3);
    add_node(g, "{\"name\":\"e1\",\"node_number\":1,\"labels\":[\"ephemeral=yes\"]}", 1);
    add_node(g, "{\"name\":\"n2\",\"node_number\":2}", 1);
    svc_of(&st, SVC(",\"stateful\":true,\"instances\":2"));
    expect_plan(g, &st, "n2,n2");
    sched_service_release(&st);
    sched_grid_free(g);
}

Test(sched, volume_drivers)
{
    struct sched_grid *g = sched_grid_new(5);
    struct sched_service s;
    add_node(g, "{\"name\":\"plain\",\"node_number\":1}", 1);
    add_node(g,
             "{\"name\":\"rex\",\"node_number\":2,\"volume_drivers\":"
             "[{\"name\":\"local\"},{\"name\":\"rexray\",\"version\":\"0.11\"}]}",
             1);
    svc_of(&s, SVC(",\"instances\":2,\"volume_drivers\":[\"rexray\"]"));
    expect_plan(g, &s, "rex,rex");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"volumes\":[{\"name\":\"d\",\"driver\":\"rexray:0.11\"}]"));
    expect_plan(g, &s, "rex");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"volume_drivers\":[\"local\"]"));
    cr_assert_eq(s.n_volume_drivers, 1);
    sched_service_release(&s);
    svc_of(&s, SVC(",\"volume_drivers\":[\"nfs\",\"rexray\"]"));
    expect_fail(g, &s, 1,
                "Did not find any nodes with required volume drivers: [\"nfs\", \"rexray\"]");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, port_conflicts_with_other_services)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    int p80[] = {80}, p443[] = {443, 80};
    inst(g, "n1", "g/s/lb", 1, p80, 1);
    inst(g, "n2", "g/other/proxy", 1, p443, 2);
    svc_of(&s, SVC(",\"instances\":1,\"ports\":[{\"node_port\":80,\"container_port\":80,"
                   "\"protocol\":\"udp\"}]"));
    expect_plan(g, &s, "n3"); /* protocol is ignored: udp 80 conflicts with tcp 80 */
    inst(g, "n3", "g/s/db", 1, p80, 1);
    expect_fail(g, &s, 1, "Did not find any nodes with unused ports: [80]");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, port_own_instance_does_not_conflict_but_siblings_do)
{
    struct sched_grid *g = grid_of(2);
    struct sched_service s;
    int p[] = {80, 443};
    inst(g, "n1", "g/s/web", 1, p, 2);
    inst(g, "n2", "g/s/web", 2, p, 2);
    svc_of(&s, SVC(",\"instances\":2,\"ports\":[\"80:80\",\"443:443\"]"));
    expect_plan(g, &s, "n1,n2");
    sched_service_release(&s);
    /* A third instance finds both nodes taken by its siblings. */
    svc_of(&s, SVC(",\"instances\":3,\"ports\":[\"80:80\",\"443:443\"]"));
    expect_fail(g, &s, 3, "Did not find any nodes with unused ports: [80, 443]");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, cpu_filter)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    add_node(g, "{\"name\":\"small\",\"node_number\":1,\"cpus\":1}", 1);
    add_node(g, "{\"name\":\"big\",\"node_number\":2,\"cpus\":4}", 1);
    svc_of(&s, SVC(",\"instances\":2,\"cpus\":2"));
    expect_plan(g, &s, "big,big");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"cpus\":8"));
    expect_fail(g, &s, 1, "Did not find any nodes with 8.0 CPUs available");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"cpus\":4.5"));
    expect_fail(g, &s, 1, "Did not find any nodes with 4.5 CPUs available");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, memory_filter_uses_mem_total)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    add_node(g, "{\"name\":\"small\",\"node_number\":1,\"mem_total\":1000}", 1);
    add_node(g, "{\"name\":\"big\",\"node_number\":2,\"mem_total\":5000}", 1);
    svc_of(&s, SVC(",\"instances\":2,\"memory\":2000"));
    expect_plan(g, &s, "big,big");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"memory_swap\":9000"));
    expect_fail(g, &s, 1, "Did not find any nodes with sufficient free memory: 9000");
    /* A node that already hosts the instance always passes. */
    inst(g, "small", "g/s/web", 1, NULL, 0);
    expect_plan(g, &s, "small");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, dependency_volumes_from_and_net)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    inst(g, "n2", "g/s/data", 1, NULL, 0);
    inst(g, "n3", "g/s/data", 2, NULL, 0);
    inst(g, "n1", "g/other/data", 2, NULL, 0); /* another stack: does not count */
    svc_of(&s, SVC(",\"instances\":2,\"volumes_from\":[\"data-%s\"]"));
    expect_plan(g, &s, "n2,n3");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"instances\":3,\"volumes_from\":[\"data-%s\"]"));
    expect_fail(g, &s, 3,
                "Did not find any nodes for service dependency volumes_from: [\"data-3\"]");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"instances\":3,\"net\":\"container:data-%s\""));
    expect_fail(g, &s, 3, "Did not find any nodes for service dependency net: data-3");
    sched_service_release(&s);
    sched_grid_free(g);
}

/* --- affinity ----------------------------------------------------------------------------- */

static struct sched_grid *zone_grid(void)
{
    struct sched_grid *g = sched_grid_new(7);
    add_node(g, "{\"name\":\"a1\",\"node_number\":1,\"labels\":[\"az=a\",\"ssd\"]}", 1);
    add_node(g, "{\"name\":\"a2\",\"node_number\":2,\"labels\":[\"az=a\"]}", 1);
    add_node(g, "{\"name\":\"b1\",\"node_number\":3,\"labels\":[\"az=b\",\"ssd\"]}", 1);
    return g;
}

static void aff_plan(const char *affinity_json, int instances, const char *want)
{
    struct sched_grid *g = zone_grid();
    struct sched_service s;
    char *text = xasprintf("{\"grid\":\"g\",\"stack\":\"s\",\"name\":\"web\",\"instances\":%d,"
                           "\"affinity\":%s}",
                           instances, affinity_json);
    inst(g, "a2", "g/s/db", 1, NULL, 0);
    inst(g, "b1", "g/other/db", 1, NULL, 0);
    inst(g, "a1", "g/s/cache", 2, NULL, 0);
    svc_of(&s, text);
    expect_plan(g, &s, want);
    sched_service_release(&s);
    sched_grid_free(g);
    free(text);
}

static void aff_fail(const char *affinity_json, const char *reason)
{
    struct sched_grid *g = zone_grid();
    struct sched_service s;
    char *text = xasprintf("{\"grid\":\"g\",\"stack\":\"s\",\"name\":\"web\",\"affinity\":%s}",
                           affinity_json);
    inst(g, "a2", "g/s/db", 1, NULL, 0);
    svc_of(&s, text);
    expect_fail(g, &s, 1, reason);
    sched_service_release(&s);
    sched_grid_free(g);
    free(text);
}

Test(sched, affinity_node_eq_ne)
{
    aff_plan("[\"node==b1\"]", 2, "b1,b1");
    aff_plan("[\"node!=a1\",\"node!=a2\"]", 1, "b1");
    aff_fail("[\"node==zz\"]", "Did not find any nodes for affinity filter: node==zz");
}

Test(sched, affinity_label_eq_ne)
{
    aff_plan("[\"label==az=b\"]", 2, "b1,b1");
    aff_plan("[\"label!=az=a\"]", 1, "b1");
    aff_plan("[\"label==ssd\",\"label==az=a\"]", 2, "a1,a1");
    aff_fail("[\"label==az=x\"]", "Did not find any nodes for affinity filter: label==az=x");
}

Test(sched, affinity_soft_is_dropped_only_when_nothing_matches)
{
    aff_plan("[\"label==~az=b\"]", 2, "b1,b1");           /* matches: acts as a hard rule */
    aff_plan("[\"label==~az=x\",\"node==a1\"]", 1, "a1"); /* nothing matches: ignored */
    aff_plan("[\"node!=~a1\",\"node!=~a2\",\"node!=~b1\"]", 1, "b1");
    aff_plan("[\"node!=~a1\",\"node!=~a2\"]", 1, "b1");
}

Test(sched, affinity_regex_values)
{
    aff_plan("[\"node==/^b\\\\d$/\"]", 1, "b1");
    aff_plan("[\"node!=/a/\"]", 1, "b1");
    aff_plan("[\"label==/^az=[b-z]/\"]", 1, "b1");
    aff_plan("[\"label!=/ssd/\"]", 1, "a2");
    aff_fail("[\"node==/^x/\"]", "Did not find any nodes for affinity filter: node==/^x/");
}

Test(sched, affinity_service_same_and_other_stack)
{
    aff_plan("[\"service==db\"]", 1, "a2");       /* own stack: s/db is on a2 */
    aff_plan("[\"service==other/db\"]", 1, "b1"); /* other stack's db is on b1 */
    aff_plan("[\"service!=db\",\"service!=cache\"]", 1, "b1");
    aff_fail("[\"service==nope\"]", "Did not find any nodes for affinity filter: service==nope");
    /* Regex: without "\/" it sees own-stack names, with it "stack/name". */
    aff_plan("[\"service==/^d/\"]", 1, "a2");
    aff_plan("[\"service==/^other\\\\/d/\"]", 1, "b1");
    aff_plan("[\"service!=/^(db|cache)$/\"]", 1, "b1");
}

Test(sched, affinity_service_self_anti_affinity_spreads_within_the_pass)
{
    /* "service!=web" on web itself: each placed instance takes its node away. */
    struct sched_grid *g = zone_grid();
    struct sched_service s;
    struct sched_plan p;
    svc_of(&s, SVC(",\"instances\":3,\"affinity\":[\"node!=a1\",\"service!=web\"]"));
    char *str = plan_str(g, &s, &p);
    cr_assert_eq(p.failed, 3, "%s", str);
    cr_assert_str_eq(p.reason, "Did not find any nodes for affinity filter: service!=web");
    cr_assert(p.node[0] >= 1 && p.node[1] >= 1 && p.node[0] != p.node[1], "%s", str);
    free(str);
    sched_plan_release(&p);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, affinity_container_and_instance_number)
{
    /* container names: s.db-1 on a2, other.db-1 on b1, s.cache-2 on a1 */
    aff_plan("[\"container==s.db-1\"]", 1, "a2");
    aff_plan("[\"container==other.db-%s\"]", 1, "b1");
    aff_plan("[\"container!=s.db-1\",\"container!=s.cache-2\"]", 1, "b1");
    aff_plan("[\"container==/^other\\\\./\"]", 1, "b1");
    aff_plan("[\"container!=/db/\",\"container==/-2$/\"]", 1, "a1");
}

Test(sched, affinity_percent_s_formats_the_instance_number)
{
    struct sched_grid *g = zone_grid();
    struct sched_service s;
    svc_of(&s, SVC(",\"instances\":3,\"affinity\":[\"node!=a%s\"]"));
    struct sched_plan p;
    char *str = plan_str(g, &s, &p);
    cr_assert_eq(p.failed, 0);
    cr_assert_str_neq(sched_grid_node_name(g, p.node[0]), "a1");
    cr_assert_str_neq(sched_grid_node_name(g, p.node[1]), "a2");
    sched_plan_release(&p);
    free(str);
    sched_service_release(&s);

    svc_of(&s, SVC(",\"instances\":2,\"affinity\":[\"container==s.cache-%s\"]"));
    expect_fail(g, &s, 1, "Did not find any nodes for affinity filter: container==s.cache-1");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, affinity_unknown_key_in_plan_is_invalid)
{
    struct sched_grid *g = zone_grid();
    struct sched_service s;
    struct sched_plan p;
    struct err e = ERR_INIT;
    svc_of(&s, SVC(""));
    /* A hand-built service skips sched_service_from_json's check: the plan refuses it. */
    s.affinity = xcalloc(1, sizeof(char *));
    s.affinity[0] = xstrdup("zone==a");
    s.n_affinity = 1;
    cr_assert_eq(sched_plan(g, &s, &p, &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "Unknown affinity filter: zone");
    sched_service_release(&s);
    sched_grid_free(g);
}

/* --- strategies --------------------------------------------------------------------------- */

static int count_on(const struct sched_grid *g, const struct sched_plan *p, const char *node)
{
    int c = 0;
    for (int i = 0; i < p->n; i++)
        c += p->node[i] >= 0 && strcmp(sched_grid_node_name(g, p->node[i]), node) == 0;
    return c;
}

Test(sched, ha_spreads_over_zones_then_nodes)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct sched_grid *g = sched_grid_new(seed);
        struct sched_service s;
        struct sched_plan p;
        add_node(g, "{\"name\":\"a1\",\"node_number\":1,\"labels\":[\"az=a\"]}", 1);
        add_node(g, "{\"name\":\"a2\",\"node_number\":2,\"labels\":[\"az=a\"]}", 1);
        add_node(g, "{\"name\":\"b1\",\"node_number\":3,\"labels\":[\"az=b\"]}", 1);
        svc_of(&s, SVC(",\"instances\":4"));
        cr_assert_eq(sched_plan(g, &s, &p, NULL), ST_OK);
        /* Zones first: b gets 2 of 4 although it has one node of three. */
        cr_assert_eq(count_on(g, &p, "b1"), 2, "seed %lu", (unsigned long)seed);
        cr_assert_eq(count_on(g, &p, "a1"), 1);
        cr_assert_eq(count_on(g, &p, "a2"), 1);
        /* The first two instances land in different zones. */
        cr_assert_neq(p.node[0] == 2, p.node[1] == 2);
        sched_plan_release(&p);
        sched_service_release(&s);
        sched_grid_free(g);
    }
}

Test(sched, ha_keeps_instances_where_they_are)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    inst(g, "n3", "g/s/web", 1, NULL, 0);
    inst(g, "n1", "g/s/web", 2, NULL, 0);
    inst(g, "n2", "g/s/web", 3, NULL, 0);
    svc_of(&s, SVC(",\"instances\":3"));
    expect_plan(g, &s, "n3,n1,n2");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, ha_same_seed_same_plan)
{
    char *a, *b;
    struct sched_service s;
    svc_of(&s, SVC(",\"instances\":7"));
    struct sched_grid *g1 = grid_of(10), *g2 = grid_of(10);
    a = plan_str(g1, &s, NULL);
    b = plan_str(g2, &s, NULL);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    sched_grid_free(g1);
    sched_grid_free(g2);
    sched_service_release(&s);
}

Test(sched, ha_count_is_container_count_even_with_fewer_nodes)
{
    struct sched_grid *g = grid_of(2);
    struct sched_service s;
    struct sched_plan p;
    svc_of(&s, SVC(",\"instances\":5"));
    cr_assert_eq(sched_plan(g, &s, &p, NULL), ST_OK);
    cr_assert_eq(p.n, 5);
    cr_assert_eq(p.failed, 0);
    cr_assert_eq(count_on(g, &p, "n1") + count_on(g, &p, "n2"), 5);
    cr_assert_geq(count_on(g, &p, "n1"), 2);
    cr_assert_geq(count_on(g, &p, "n2"), 2);
    sched_plan_release(&p);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, daemon_numbering_round_robin_by_node_number)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    /* Added out of order: node_number decides. */
    add_node(g, "{\"name\":\"n3\",\"node_number\":3}", 1);
    add_node(g, "{\"name\":\"n1\",\"node_number\":1}", 1);
    add_node(g, "{\"name\":\"n2\",\"node_number\":2}", 1);
    svc_of(&s, SVC(",\"strategy\":\"daemon\",\"instances\":2"));
    expect_plan(g, &s, "n1,n2,n3,n1,n2,n3");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, daemon_existing_instances_stay_and_new_node_gets_new_ones)
{
    struct sched_grid *g = grid_of(4);
    struct sched_service s;
    const char *at[] = {"n1", "n2", "n3", "n1", "n2", "n3"};
    for (int i = 0; i < 6; i++)
        inst(g, at[i], "g/s/web", i + 1, NULL, 0);
    svc_of(&s, SVC(",\"strategy\":\"daemon\",\"instances\":2"));
    expect_plan(g, &s, "n1,n2,n3,n1,n2,n3,n4,n4");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, daemon_count_shrinks_under_affinity)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    struct sched_plan p;
    add_node(g, "{\"name\":\"n1\",\"node_number\":1,\"labels\":[\"role=edge\"]}", 1);
    add_node(g, "{\"name\":\"n2\",\"node_number\":2}", 1);
    add_node(g, "{\"name\":\"n3\",\"node_number\":3,\"labels\":[\"role=edge\"]}", 1);
    svc_of(&s, SVC(",\"strategy\":\"daemon\",\"instances\":2,\"affinity\":[\"label==role=edge\"]"));
    expect_plan(g, &s, "n1,n3,n1,n3");
    sched_service_release(&s);

    /* Nothing matches: N is 0, not a failure, and the reason says why. */
    svc_of(&s, SVC(",\"strategy\":\"daemon\",\"affinity\":[\"label==role=db\"]"));
    cr_assert_eq(sched_plan(g, &s, &p, NULL), ST_OK);
    cr_assert_eq(p.n, 0);
    cr_assert_eq(p.failed, 0);
    cr_assert_str_eq(p.reason, "Did not find any nodes for affinity filter: label==role=db");
    sched_plan_release(&p);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, daemon_drain_shrinks_and_renumbers)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    add_node(g, "{\"name\":\"n1\",\"node_number\":1}", 1);
    add_node(g, "{\"name\":\"n2\",\"node_number\":2}", 1);
    add_node(g, "{\"name\":\"n3\",\"node_number\":3,\"availability\":\"drain\"}", 1);
    const char *at[] = {"n1", "n2", "n3", "n1", "n2", "n3"};
    for (int i = 0; i < 6; i++)
        inst(g, at[i], "g/s/web", i + 1, NULL, 0);
    svc_of(&s, SVC(",\"strategy\":\"daemon\",\"instances\":2"));
    /* N = 2 nodes × 2; 1, 2 and 4 stay, 3 goes to the node with fewer instances. */
    expect_plan(g, &s, "n1,n2,n2,n1");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, random_is_sticky_and_replaces_lost_nodes)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    add_node(g, "{\"name\":\"off\",\"node_number\":9}", 0);
    inst(g, "n2", "g/s/web", 1, NULL, 0);
    inst(g, "n3", "g/s/web", 2, NULL, 0);
    inst(g, "off", "g/s/web", 3, NULL, 0);
    svc_of(&s, SVC(",\"strategy\":\"random\",\"instances\":3"));
    struct sched_plan p;
    char *str = plan_str(g, &s, &p);
    cr_assert_eq(p.failed, 0);
    cr_assert_eq(strncmp(str, "n2,n3,n", 7), 0, "%s", str);
    free(str);
    sched_plan_release(&p);
    sched_service_release(&s);

    /* Stateful: an instance whose node is not a candidate fails instead of moving. */
    svc_of(&s, SVC(",\"strategy\":\"random\",\"instances\":3,\"stateful\":true"));
    expect_fail(g, &s, 3, "Strategy Random did not find any node");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, stateful_sticks_and_fails_when_its_node_is_filtered)
{
    struct sched_grid *g = sched_grid_new(2);
    struct sched_service s;
    add_node(g, "{\"name\":\"n1\",\"node_number\":1}", 1);
    add_node(g, "{\"name\":\"n2\",\"node_number\":2,\"availability\":\"drain\"}", 1);
    add_node(g, "{\"name\":\"n3\",\"node_number\":3}", 1);
    inst(g, "n3", "g/s/web", 1, NULL, 0);
    svc_of(&s, SVC(",\"stateful\":true,\"instances\":1"));
    /* ha would prefer n1 for a new instance only by chance; the stateful one stays. */
    expect_plan(g, &s, "n3");
    sched_service_release(&s);

    inst(g, "n2", "g/s/web", 2, NULL, 0);
    svc_of(&s, SVC(",\"stateful\":true,\"instances\":2"));
    expect_fail(g, &s, 2, "Strategy HighAvailability did not find any node");
    sched_service_release(&s);
    svc_of(&s, SVC(",\"stateful\":true,\"instances\":2,\"strategy\":\"daemon\""));
    cr_assert_eq(s.strategy, SCHED_DAEMON);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, scale_down_drops_high_numbers_first)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    int p[] = {80};
    for (int i = 1; i <= 3; i++)
        inst(g, i == 3 ? "n1" : i == 1 ? "n2" : "n3", "g/s/web", i, p, 1);
    /* Instance 3 (on n1) is deleted by the scale-down: n1's port is free for nothing else,
     * and instances 1, 2 stay. */
    svc_of(&s, SVC(",\"instances\":2,\"ports\":[\"80:80\"]"));
    expect_plan(g, &s, "n2,n3");
    sched_service_release(&s);
    sched_grid_free(g);
}

/* --- mismatch ----------------------------------------------------------------------------- */

Test(sched, mismatch_same_placement_is_none)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    char why[256];
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    inst(g, "n2", "g/s/web", 2, NULL, 0);
    inst(g, "n3", "g/s/web", 3, NULL, 0);
    svc_of(&s, SVC(",\"instances\":3"));
    for (int k = 0; k < 20; k++)
        cr_assert_eq(sched_mismatch(g, &s, why, sizeof(why)), 0, "%s", why);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, mismatch_node_gone)
{
    struct sched_grid *g = grid_of(2);
    struct sched_service s;
    char why[256];
    add_node(g, "{\"name\":\"lost\",\"node_number\":3}", 0); /* past its grace */
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    inst(g, "lost", "g/s/web", 2, NULL, 0);
    svc_of(&s, SVC(",\"instances\":2"));
    cr_assert_eq(sched_mismatch(g, &s, why, sizeof(why)), 1);
    cr_assert(strstr(why, "lost"), "%s", why);
    sched_service_release(&s);
    sched_grid_free(g);

    /* Removed node: the orphan has no node, so the count differs. */
    g = grid_of(2);
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    inst(g, "removed", "g/s/web", 2, NULL, 0);
    svc_of(&s, SVC(",\"instances\":2"));
    cr_assert_eq(sched_mismatch(g, &s, why, sizeof(why)), 1);
    cr_assert(strstr(why, "1 with a node, 2 wanted"), "%s", why);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, mismatch_more_nodes_rebalances_ha)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    inst(g, "n2", "g/s/web", 2, NULL, 0);
    inst(g, "n1", "g/s/web", 3, NULL, 0);
    inst(g, "n2", "g/s/web", 4, NULL, 0);
    svc_of(&s, SVC(",\"instances\":4"));
    cr_assert_eq(sched_mismatch(g, &s, NULL, 0), 1);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, mismatch_none_available_is_none)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    char why[64] = "x";
    add_node(g, "{\"name\":\"n1\",\"node_number\":1}", 0);
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    svc_of(&s, SVC(",\"instances\":3"));
    cr_assert_eq(sched_mismatch(g, &s, why, sizeof(why)), 0);
    cr_assert_str_eq(why, "");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, mismatch_daemon_new_node)
{
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    inst(g, "n1", "g/s/web", 1, NULL, 0);
    inst(g, "n2", "g/s/web", 2, NULL, 0);
    svc_of(&s, SVC(",\"strategy\":\"daemon\""));
    cr_assert_eq(sched_mismatch(g, &s, NULL, 0), 1);
    inst(g, "n3", "g/s/web", 3, NULL, 0);
    cr_assert_eq(sched_mismatch(g, &s, NULL, 0), 0);
    sched_service_release(&s);
    sched_grid_free(g);
}

/* --- bad input ---------------------------------------------------------------------------- */

Test(sched, garbage_json_never_crashes)
{
    const char *nodes[] = {"{\"name\":\"x1\",\"labels\":\"az=a\",\"cpus\":\"many\"}",
                           "{\"name\":\"x2\",\"labels\":[1,null,\"az=\"],\"mem_total\":-5,"
                           "\"volume_drivers\":[3,{\"name\":null},{\"version\":\"1\"}]}",
                           "{\"name\":\"x3\",\"node_number\":\"7\",\"availability\":5}", "[]",
                           "{\"name\":\"\"}"};
    const char *svcs[] = {
        "{\"name\":\"a\",\"ports\":\"80\",\"affinity\":{},\"instances\":-1}",
        "{\"name\":\"a\",\"affinity\":[5]}",
        "{\"name\":\"a\",\"affinity\":[\"label==~\"]}",
        "{\"name\":\"a\",\"affinity\":[\"==x\"]}",
        "{\"name\":\"a\",\"affinity\":[\"node==/(/\"]}",
        "{\"name\":\"a\",\"volumes_from\":[1]}",
        "{\"name\":\"a\",\"instances\":1e9}",
        "{\"name\":\"a\",\"stack\":7,\"ports\":[{\"node_port\":\"x\"},\"junk\",70000],"
        "\"memory\":\"lots\",\"net\":\"container:\",\"volumes\":[5,{\"driver\":7}],"
        "\"affinity\":[\"container==%s%%%d\",\"service==/\\\\//\"],\"instances\":3}",
        "{}",
        "[7]"};
    struct sched_grid *g = sched_grid_new(9);
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        json_t *n = jparse(nodes[i]);
        sched_grid_add_node(g, n, 1);
        json_decref(n);
    }
    sched_grid_add_instance(g, NULL, "g/null/a", 1, NULL, NULL, 0);
    sched_grid_add_instance(g, "x1", NULL, 1, "c", NULL, 0);
    sched_grid_add_instance(g, "x1", "g/null/a", 0, "c", NULL, 0);
    sched_grid_add_instance(g, "x1", "g/null/a", 2000000000, "", NULL, 0);
    int ports[] = {-1, 0, 80, 80};
    sched_grid_add_instance(g, "x2", "g/null/a", 2, "a-2", ports, 4);
    for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
        struct sched_service s;
        struct sched_plan p;
        json_t *v = jparse(svcs[i]);
        if (sched_service_from_json(&s, v, NULL, NULL) == ST_OK) {
            if (sched_plan(g, &s, &p, NULL) == ST_OK)
                sched_plan_release(&p);
            (void)sched_mismatch(g, &s, NULL, 0);
            sched_service_release(&s);
        }
        json_decref(v);
    }
    sched_grid_free(g);
}

Test(sched, percent_percent_is_a_literal_percent)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    add_node(g, "{\"name\":\"n%1\",\"node_number\":1}", 1);
    add_node(g, "{\"name\":\"n2\",\"node_number\":2}", 1);
    svc_of(&s, SVC(",\"instances\":1,\"affinity\":[\"node==n%%%s\"]"));
    expect_plan(g, &s, "n%1");
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, scaled_to_zero_never_fails)
{
    struct sched_grid *g = sched_grid_new(1);
    struct sched_service s;
    struct sched_plan p;
    add_node(g, "{\"name\":\"off\",\"node_number\":1}", 0);
    inst(g, "off", "g/s/web", 1, NULL, 0);
    svc_of(&s, SVC(",\"instances\":0"));
    cr_assert_eq(sched_plan(g, &s, &p, NULL), ST_OK);
    cr_assert_eq(p.n, 0);
    cr_assert_eq(p.failed, 0);
    sched_plan_release(&p);
    sched_service_release(&s);
    sched_grid_free(g);
}

Test(sched, daemon_with_instance_number_affinity)
{
    /* node!=n%s: the simulation of 1..3 puts 1 on n2, 2 on n1 and 3 (not on n3) on n1 again:
     * two distinct nodes, so N = 2 (§7). */
    struct sched_grid *g = grid_of(3);
    struct sched_service s;
    svc_of(&s, SVC(",\"strategy\":\"daemon\",\"affinity\":[\"node!=n%s\"]"));
    expect_plan(g, &s, "n2,n1");
    sched_service_release(&s);
    sched_grid_free(g);
}
