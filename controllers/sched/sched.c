/* controllers/sched/sched.c -- the inputs of a plan: a service read from its stored JSON and
 * the grid snapshot (nodes, assigned instances and the per-node indexes over them). */
#include <stdlib.h>
#include <string.h>

#include "common/specparse.h"
#include "common/xmalloc.h"
#include "controllers/sched/sched_int.h"

#include "common/banned.h"

/* --- service ------------------------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void push_str(char ***v, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], s) == 0)
            return;
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = xstrdup(s);
}

static void free_strs(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    FREE_AND_NULL(*v);
    *n = 0;
}

static enum status strings_of(const json_t *arr, const char *field, char ***v, size_t *n,
                              struct err *e)
{
    size_t i;
    json_t *x;

    if (!arr || json_is_null(arr))
        return ST_OK;
    if (!json_is_array(arr))
        return err_set(e, ST_INVALID, "'%s' is not an array", field);
    json_array_foreach(arr, i, x)
    {
        if (!json_is_string(x))
            return err_set(e, ST_INVALID, "'%s' has an entry that is not a string", field);
        *v = xrealloc(*v, (*n + 1) * sizeof(**v));
        (*v)[(*n)++] = xstrdup(json_string_value(x));
    }
    return ST_OK;
}

static int64_t bytes_of(const json_t *v)
{
    long long n = 0;

    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
    if (json_is_string(v) && spec_parse_memory(json_string_value(v), &n, NULL) == ST_OK)
        return n;
    return 0;
}

enum status sched_service_from_json(struct sched_service *s, const json_t *svc, const json_t *grid,
                                    struct err *e)
{
    const char *name = jstr(svc, "name"), *strategy = jstr(svc, "strategy"), *net;
    const json_t *stack = json_object_get(svc, "stack"), *aff, *ports, *x, *inst, *opts;
    enum status st;
    size_t i;

    memset(s, 0, sizeof(*s));
    s->min_health = 0.8;
    if (!json_is_object(svc))
        return err_set(e, ST_INVALID, "service is not an object");
    if (!name || !*name)
        return err_set(e, ST_INVALID, "service has no name");
    s->name = xstrdup(name);
    s->stack = xstrdup(json_is_string(stack) ? json_string_value(stack) : "null");
    s->grid = xstrdup(jstr(svc, "grid") ? jstr(svc, "grid") : "");
    s->id = jstr(svc, "id") ? xstrdup(jstr(svc, "id"))
                            : xasprintf("%s/%s/%s", s->grid, s->stack, s->name);

    if (!strategy || strcmp(strategy, "ha") == 0)
        s->strategy = SCHED_HA;
    else if (strcmp(strategy, "daemon") == 0)
        s->strategy = SCHED_DAEMON;
    else if (strcmp(strategy, "random") == 0)
        s->strategy = SCHED_RANDOM;
    else {
        st = err_set(e, ST_INVALID, "service '%s' has an unknown strategy '%s'", s->id, strategy);
        goto fail;
    }

    inst = json_object_get(svc, "instances");
    if (!inst || json_is_null(inst))
        inst = json_object_get(svc, "container_count");
    s->instances = 1;
    if (inst && !json_is_null(inst)) {
        if (!json_is_integer(inst) || json_integer_value(inst) < 0 ||
            json_integer_value(inst) > 100000) {
            st = err_set(e, ST_INVALID, "service '%s' has a bad instance count", s->id);
            goto fail;
        }
        s->instances = (int)json_integer_value(inst);
    }
    s->stateful = json_is_true(json_object_get(svc, "stateful"));

    aff = json_object_get(svc, "affinity");
    if (json_array_size(aff) == 0 && grid)
        aff = json_object_get(grid, "default_affinity");
    st = strings_of(aff, "affinity", &s->affinity, &s->n_affinity, e);
    if (st != ST_OK)
        goto fail;
    for (i = 0; i < s->n_affinity; i++) {
        /* Checked with instance number 1: a rule that cannot parse for 1 cannot for any. */
        st = sched_affinity_check(s->affinity[i], 1, e);
        if (st != ST_OK)
            goto fail;
    }

    ports = json_object_get(svc, "ports");
    json_array_foreach(ports, i, x)
    {
        int np = 0;
        struct spec_port sp;
        if (json_is_object(x) && json_is_integer(json_object_get(x, "node_port")))
            np = (int)json_integer_value(json_object_get(x, "node_port"));
        else if (json_is_string(x) && spec_parse_port(json_string_value(x), &sp, NULL) == ST_OK)
            np = sp.node_port;
        if (np <= 0)
            continue;
        s->node_ports = xrealloc(s->node_ports, (s->n_node_ports + 1) * sizeof(int));
        s->node_ports[s->n_node_ports++] = np;
    }

    if (json_is_number(json_object_get(svc, "cpus")))
        s->cpus = json_number_value(json_object_get(svc, "cpus"));
    s->memory = bytes_of(json_object_get(svc, "memory"));
    s->memory_swap = bytes_of(json_object_get(svc, "memory_swap"));

    /* Volume drivers. The stored service keeps its volumes as strings "name:/path[:flags]"
     * and the stack's volumes list is [{name, external}]: no driver is stored anywhere yet
     * (grid volumes, /kontena/volumes/, are a later issue). So only two shapes give drivers:
     * a volume entry that is an object with "driver" (what a later volume store would
     * produce) and a service field "volume_drivers" (strings). Today: none, filter off. */
    json_array_foreach(json_object_get(svc, "volumes"), i, x)
    {
        if (json_is_object(x) && jstr(x, "driver") && *jstr(x, "driver"))
            push_str(&s->volume_drivers, &s->n_volume_drivers, jstr(x, "driver"));
    }
    json_array_foreach(json_object_get(svc, "volume_drivers"), i, x)
    {
        if (json_is_string(x) && *json_string_value(x))
            push_str(&s->volume_drivers, &s->n_volume_drivers, json_string_value(x));
    }

    st = strings_of(json_object_get(svc, "volumes_from"), "volumes_from", &s->volumes_from,
                    &s->n_volumes_from, e);
    if (st != ST_OK)
        goto fail;
    net = jstr(svc, "net");
    if (net && strncmp(net, "container:", 10) == 0 && net[10])
        s->net_container = xstrdup(net + 10);

    opts = json_object_get(svc, "deploy_opts");
    if (json_is_number(json_object_get(opts, "min_health")))
        s->min_health = json_number_value(json_object_get(opts, "min_health"));
    return ST_OK;
fail:
    sched_service_release(s);
    return st;
}

void sched_service_release(struct sched_service *s)
{
    if (!s)
        return;
    FREE_AND_NULL(s->id);
    FREE_AND_NULL(s->grid);
    FREE_AND_NULL(s->stack);
    FREE_AND_NULL(s->name);
    free_strs(&s->affinity, &s->n_affinity);
    FREE_AND_NULL(s->node_ports);
    s->n_node_ports = 0;
    free_strs(&s->volume_drivers, &s->n_volume_drivers);
    free_strs(&s->volumes_from, &s->n_volumes_from);
    FREE_AND_NULL(s->net_container);
}

char *sched_container_name(const char *stack, const char *name, int n)
{
    if (!stack || strcmp(stack, "null") == 0)
        return xasprintf("%s-%d", name, n);
    return xasprintf("%s.%s-%d", stack, name, n);
}

/* --- grid snapshot ------------------------------------------------------------------------ */

struct sched_grid *sched_grid_new(uint64_t seed)
{
    struct sched_grid *g = xcalloc(1, sizeof(*g));

    g->rng = xmalloc(sizeof(*g->rng));
    /* splitmix64 of the seed: xorshift must not start at 0, and nearby seeds should differ. */
    seed += 0x9E3779B97F4A7C15ULL;
    seed = (seed ^ (seed >> 30)) * 0xBF58476D1CE4E5B9ULL;
    seed = (seed ^ (seed >> 27)) * 0x94D049BB133111EBULL;
    seed ^= seed >> 31;
    *g->rng = seed ? seed : 1;
    return g;
}

void sched_grid_free(struct sched_grid *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_nodes; i++) {
        struct sched__node *n = &g->nodes[i];
        free(n->name);
        free_strs(&n->labels, &n->n_labels);
        free_strs(&n->drivers, &n->n_drivers);
        sched__imap_release(&n->ports);
        sched__imap_release(&n->services);
        sched__imap_release(&n->containers);
    }
    free(g->nodes);
    for (size_t i = 0; i < g->services.n && i < g->alloc_insts; i++)
        free(g->insts[i].v);
    free(g->insts);
    free(g->port_uses);
    sched__intern_release(&g->node_names);
    sched__intern_release(&g->zones);
    sched__intern_release(&g->services);
    sched__intern_release(&g->containers);
    free(g->rng);
    free(g);
}

size_t sched_grid_node_count(const struct sched_grid *g)
{
    return g->n_nodes;
}

const char *sched_grid_node_name(const struct sched_grid *g, int idx)
{
    if (idx < 0 || (size_t)idx >= g->n_nodes)
        return NULL;
    return g->nodes[idx].name;
}

int sched_grid_node_index(const struct sched_grid *g, const char *name)
{
    return name ? sched__intern_find(&g->node_names, name) : -1;
}

int sched_grid_node_candidate(const struct sched_grid *g, int idx)
{
    return idx >= 0 && (size_t)idx < g->n_nodes && g->nodes[idx].candidate;
}

int sched_grid_add_node(struct sched_grid *g, const json_t *node, int candidate)
{
    const char *name = jstr(node, "name"), *zone = "default", *avail = jstr(node, "availability");
    const json_t *labels = json_object_get(node, "labels"), *drivers, *x;
    struct sched__node *n;
    size_t i;
    int idx;

    if (!name || !*name)
        return -1;
    idx = sched__intern_find(&g->node_names, name);
    if (idx >= 0)
        return idx; /* first one wins: names are unique in a grid */
    idx = sched__intern_add(&g->node_names, name);
    BUG_ON((size_t)idx != g->n_nodes);
    if (g->n_nodes == g->alloc_nodes) {
        g->alloc_nodes = g->alloc_nodes ? g->alloc_nodes * 2 : 16;
        g->nodes = xrealloc(g->nodes, g->alloc_nodes * sizeof(*g->nodes));
    }
    n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof(*n));
    n->name = xstrdup(name);
    n->candidate = candidate != 0;
    n->drain = avail && strcmp(avail, "drain") == 0;
    if (json_is_integer(json_object_get(node, "node_number")))
        n->node_number = (int)json_integer_value(json_object_get(node, "node_number"));
    if (json_is_number(json_object_get(node, "cpus")))
        n->cpus = json_number_value(json_object_get(node, "cpus"));
    if (json_is_integer(json_object_get(node, "mem_total")))
        n->mem_total = (int64_t)json_integer_value(json_object_get(node, "mem_total"));
    json_array_foreach(labels, i, x)
    {
        const char *l = json_string_value(x);
        if (!l)
            continue;
        n->labels = xrealloc(n->labels, (n->n_labels + 1) * sizeof(*n->labels));
        n->labels[n->n_labels++] = xstrdup(l);
        if (strncmp(l, "az=", 3) == 0 && zone == (const char *)"default")
            zone = l + 3;
        if (strcmp(l, "ephemeral") == 0 || strncmp(l, "ephemeral=", 10) == 0)
            n->ephemeral = 1;
    }
    n->zone = sched__intern_add(&g->zones, zone);

    /* Volume drivers as the agent reports them: [{name, version}] or plain names; a node
     * that reports none has Docker's "local". */
    drivers = json_object_get(node, "volume_drivers");
    json_array_foreach(drivers, i, x)
    {
        const char *dn = json_is_string(x) ? json_string_value(x) : jstr(x, "name");
        const char *dv = json_is_object(x) ? jstr(x, "version") : NULL;
        if (!dn || !*dn)
            continue;
        push_str(&n->drivers, &n->n_drivers, dn);
        if (dv && *dv) {
            char *full = xasprintf("%s:%s", dn, dv);
            push_str(&n->drivers, &n->n_drivers, full);
            free(full);
        }
    }
    if (!json_is_array(drivers))
        push_str(&n->drivers, &n->n_drivers, "local");
    return idx;
}

void sched_grid_add_instance(struct sched_grid *g, const char *node, const char *service_id,
                             int instance_number, const char *container, const int *node_ports,
                             size_t n_node_ports)
{
    int nidx = node ? sched__intern_find(&g->node_names, node) : -1;
    int sid;
    struct sched__svc_insts *si;

    if (!service_id || instance_number < 1)
        return;
    sid = sched__intern_add(&g->services, service_id);
    if ((size_t)sid >= g->alloc_insts) {
        size_t a = g->alloc_insts ? g->alloc_insts * 2 : 16;
        while (a <= (size_t)sid)
            a *= 2;
        g->insts = xrealloc(g->insts, a * sizeof(*g->insts));
        memset(g->insts + g->alloc_insts, 0, (a - g->alloc_insts) * sizeof(*g->insts));
        g->alloc_insts = a;
    }
    si = &g->insts[sid];
    if (si->n == si->alloc) {
        si->alloc = si->alloc ? si->alloc * 2 : 4;
        si->v = xrealloc(si->v, si->alloc * sizeof(*si->v));
    }
    si->v[si->n].number = instance_number;
    si->v[si->n].node = nidx;
    si->n++;
    if (nidx < 0)
        return; /* an orphan: its node is gone, it takes nothing anywhere */

    struct sched__node *n = &g->nodes[nidx];
    (*sched__imap_put(&n->services, sid))++;
    if (container && *container)
        (*sched__imap_put(&n->containers, sched__intern_add(&g->containers, container)))++;
    for (size_t i = 0; i < n_node_ports; i++) {
        int dup = 0, *head, u;
        for (size_t k = 0; k < i; k++)
            dup |= node_ports[k] == node_ports[i];
        if (dup || node_ports[i] <= 0)
            continue;
        head = sched__imap_get(&n->ports, node_ports[i]);
        for (u = head ? *head - 1 : -1; u >= 0; u = g->port_uses[u].next)
            if (g->port_uses[u].service == sid)
                break;
        if (u >= 0) {
            g->port_uses[u].count++;
            continue;
        }
        if (g->n_port_uses == g->alloc_port_uses) {
            g->alloc_port_uses = g->alloc_port_uses ? g->alloc_port_uses * 2 : 64;
            g->port_uses = xrealloc(g->port_uses, g->alloc_port_uses * sizeof(*g->port_uses));
        }
        u = (int)g->n_port_uses++;
        g->port_uses[u].service = sid;
        g->port_uses[u].count = 1;
        /* The map holds head index + 1, so a new key's 0 reads as the empty list. */
        head = sched__imap_put(&n->ports, node_ports[i]);
        g->port_uses[u].next = *head - 1;
        *head = u + 1;
    }
}
