/* controllers/sched/sched_plan.c -- filters, affinity, strategies, the instance count and the
 * mismatch check (reference/scheduling.md §3–§7, §9; docs/internals/scheduling.md).
 *
 * One plan walks instances 1..N. For each it narrows a list of node indexes in place, filter
 * after filter, in the original's order, then lets the strategy take the minimum of its
 * tuple in one pass (reservoir sampling breaks ties at random, the effect of the original's
 * shuffle + unstable sort). Per-pass state, updated after every choice:
 *   passcnt[node]  instances of this service chosen on the node in this pass;
 *   effcnt[node]   instances 1..limit of this service "effectively" on the node: the ones
 *                  already placed in this pass where they were placed, the others where
 *                  they are now. Instances above limit are about to be deleted (scale-down
 *                  first) and count nowhere.
 * Nothing is sorted, so an instance costs O(candidates × rules).
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/specparse.h"
#include "common/xmalloc.h"
#include "controllers/sched/sched_int.h"

#include "common/banned.h"

enum akey { K_NODE, K_LABEL, K_SERVICE, K_CONTAINER };

/* One affinity rule, parsed, with caches of what it matched. */
struct rule {
    char *text; /* as formatted for the instance: the message quotes it */
    enum akey key;
    int negate, soft, is_regex, dynamic;
    char *value;
    regex_t re;
    int re_ok;
    int svc;       /* K_SERVICE exact: interned id or -1 (no such service: matches nothing) */
    int self;      /* K_SERVICE: the value names the service being placed */
    int has_stack; /* K_SERVICE regex: the pattern has "\/" so it sees "stack/name" */
    int cid;       /* K_CONTAINER exact: interned container id or -1 */
    signed char *node_cache; /* K_NODE, K_LABEL: per node, -1 unknown */
    signed char *id_cache;   /* K_SERVICE/K_CONTAINER regex: per interned id, -1 unknown */
};

struct planner {
    const struct sched_grid *g;
    const struct sched_service *s;
    int sid; /* interned id of s, -1 when no instance of it exists */
    int *cands;
    size_t n_cands;
    int *list;    /* working list for one instance */
    int *scratch; /* survivors of one affinity rule */
    int *cur;     /* cur[n]: node of instance n now, -1 none; n in 1..cur_max */
    int cur_max;
    int *planned;                /* planned[n] for this pass, -1 not (yet) placed */
    int limit;                   /* instances 1..limit exist after this pass */
    int *passcnt, *effcnt, *adj; /* per node */
    int *zonesum;                /* per zone, scratch of one ha choice */
    int *zoneall;                /* per zone: passcnt summed over every candidate */
    struct rule *rules;          /* one per affinity string; dynamic ones are per instance */
    size_t n_rules;
    char *own_prefix; /* "<stack>/" of s: service values without '/' get it */
    char reason[SCHED_REASON_LEN];
};

#define MAX_PLAN 1000000 /* instances of one plan; instance numbers above are ignored */

static const char *const strategy_names[] = {"HighAvailability", "Daemon", "Random"};

/* --- affinity parsing --------------------------------------------------------------------- */

/* The rule text for instance n, as Ruby's `affinity % [n.to_s]`: "%s" is the number, "%%" a
 * percent sign; any other '%' is kept as written. */
static char *format_instance(const char *tmpl, int n)
{
    struct buf b = BUF_INIT;
    char num[16];
    char *out;

    snprintf(num, sizeof(num), "%d", n);
    for (const char *p = tmpl; *p; p++) {
        enum status st;
        if (p[0] == '%' && p[1] == 's') {
            st = buf_puts(&b, num);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            st = buf_puts(&b, "%");
            p++;
        } else {
            char one[2] = {*p, 0};
            st = buf_puts(&b, one);
        }
        BUG_ON(st != ST_OK);
    }
    out = xstrdup(b.ptr ? b.ptr : "");
    buf_release(&b);
    return out;
}

/* Parse text (already formatted) into r. The original splits with /\A(.+)(==|!=)([~])?(.+)/:
 * greedy, so the last operator with something before it wins. */
static enum status parse_rule(const char *text, struct rule *r, struct err *e)
{
    const char *op = NULL;
    struct spec_affinity a;
    enum status st;
    size_t klen;

    memset(r, 0, sizeof(*r));
    r->svc = r->cid = -1;
    for (const char *p = text + (text[0] ? 1 : 0); p[0] && p[1]; p++)
        if ((p[0] == '=' || p[0] == '!') && p[1] == '=' && p[2])
            op = p;
    if (!op)
        return err_set(e, ST_INVALID, "Invalid affinity filter: %s", text);
    klen = (size_t)(op - text);
    if (klen == 4 && strncmp(text, "node", 4) == 0)
        r->key = K_NODE;
    else if (klen == 5 && strncmp(text, "label", 5) == 0)
        r->key = K_LABEL;
    else if (klen == 7 && strncmp(text, "service", 7) == 0)
        r->key = K_SERVICE;
    else if (klen == 9 && strncmp(text, "container", 9) == 0)
        r->key = K_CONTAINER;
    else
        return err_set(e, ST_INVALID, "Unknown affinity filter: %.*s", (int)klen, text);
    st = spec_parse_affinity(text, &a, e);
    if (st != ST_OK)
        return st;
    r->negate = a.negate;
    r->soft = a.soft;
    r->is_regex = a.is_regex;
    r->value = a.value;
    a.value = NULL;
    spec_affinity_release(&a);
    if (r->is_regex) {
        st = spec_regex_compile(r->value, &r->re, REG_NOSUB, e);
        if (st != ST_OK) {
            FREE_AND_NULL(r->value);
            return st;
        }
        r->re_ok = 1;
    }
    r->text = xstrdup(text);
    return ST_OK;
}

static void rule_release(struct rule *r)
{
    FREE_AND_NULL(r->text);
    FREE_AND_NULL(r->value);
    if (r->re_ok)
        regfree(&r->re);
    r->re_ok = 0;
    FREE_AND_NULL(r->node_cache);
    FREE_AND_NULL(r->id_cache);
}

enum status sched_affinity_check(const char *rule, int instance_number, struct err *e)
{
    struct rule r;
    char *text = format_instance(rule, instance_number);
    enum status st = parse_rule(text, &r, e);

    if (st == ST_OK)
        rule_release(&r);
    free(text);
    return st;
}

/* Resolve what a rule refers to once it is parsed: the service or container it names. */
static void rule_resolve(struct planner *p, struct rule *r)
{
    const struct sched_grid *g = p->g;

    if (r->key == K_SERVICE && !r->is_regex) {
        /* "stack/name" or "name" (own stack) → "<grid>/<stack>/<name>". */
        char *id = strchr(r->value, '/') ? xasprintf("%s/%s", p->s->grid, r->value)
                                         : xasprintf("%s/%s/%s", p->s->grid, p->s->stack, r->value);
        r->self = strcmp(id, p->s->id) == 0;
        r->svc = sched__intern_find(&g->services, id);
        free(id);
    } else if (r->key == K_SERVICE) {
        r->has_stack = strstr(r->value, "\\/") != NULL;
        r->id_cache = xmalloc(g->services.n + 1);
        memset(r->id_cache, 0xff, g->services.n + 1);
        /* Does the pattern match the service being placed? */
        char *own = xasprintf("%s/%s", p->s->stack, p->s->name);
        r->self = regexec(&r->re, r->has_stack ? own : p->s->name, 0, NULL, 0) == 0;
        free(own);
    } else if (r->key == K_CONTAINER && !r->is_regex) {
        r->cid = sched__intern_find(&g->containers, r->value);
    } else if (r->key == K_CONTAINER) {
        r->id_cache = xmalloc(g->containers.n + 1);
        memset(r->id_cache, 0xff, g->containers.n + 1);
    } else {
        r->node_cache = xmalloc(g->n_nodes + 1);
        memset(r->node_cache, 0xff, g->n_nodes + 1);
    }
}

/* --- matching ----------------------------------------------------------------------------- */

static int svc_regex_match(struct planner *p, struct rule *r, int sid)
{
    const char *id = p->g->services.names[sid];
    size_t glen = strlen(p->s->grid);

    if (r->id_cache[sid] >= 0)
        return r->id_cache[sid];
    int m = 0;
    /* Service ids are "<grid>/<stack>/<name>"; other grids' ids cannot be in the snapshot,
     * but check the prefix anyway. */
    if (strncmp(id, p->s->grid, glen) == 0 && id[glen] == '/') {
        const char *sn = id + glen + 1, *slash = strchr(sn, '/');
        if (slash) {
            if (r->has_stack)
                m = regexec(&r->re, sn, 0, NULL, 0) == 0;
            else if ((size_t)(slash - sn) == strlen(p->s->stack) &&
                     strncmp(sn, p->s->stack, (size_t)(slash - sn)) == 0)
                m = regexec(&r->re, slash + 1, 0, NULL, 0) == 0;
        }
    }
    r->id_cache[sid] = (signed char)m;
    return m;
}

/* Does node x match the rule (before negation)? */
static int rule_match(struct planner *p, struct rule *r, int x)
{
    const struct sched__node *n = &p->g->nodes[x];
    size_t i;

    switch (r->key) {
    case K_NODE:
    case K_LABEL: {
        if (r->node_cache[x] >= 0)
            return r->node_cache[x];
        int m = 0;
        if (r->key == K_NODE)
            m = r->is_regex ? regexec(&r->re, n->name, 0, NULL, 0) == 0
                            : strcmp(n->name, r->value) == 0;
        else
            for (i = 0; i < n->n_labels && !m; i++)
                m = r->is_regex ? regexec(&r->re, n->labels[i], 0, NULL, 0) == 0
                                : strcmp(n->labels[i], r->value) == 0;
        r->node_cache[x] = (signed char)m;
        return m;
    }
    case K_SERVICE:
        /* The service being placed is where its instances effectively are; every other
         * service where its instances are assigned now. */
        if (r->self && p->effcnt[x] > 0)
            return 1;
        if (!r->is_regex) {
            if (r->self || r->svc < 0)
                return 0;
            const int *c = sched__imap_get(&n->services, r->svc);
            return c && *c > 0;
        }
        for (i = 0; i < n->services.cap; i++) {
            int k = n->services.keys[i];
            if (k >= 0 && k != p->sid && n->services.vals[i] > 0 && svc_regex_match(p, r, k))
                return 1;
        }
        return 0;
    case K_CONTAINER:
        /* Containers are the instances assigned now, own ones included (the original looked
         * at container records, which move only once a container is recreated). */
        if (!r->is_regex) {
            if (r->cid < 0)
                return 0;
            const int *c = sched__imap_get(&n->containers, r->cid);
            return c && *c > 0;
        }
        for (i = 0; i < n->containers.cap; i++) {
            int k = n->containers.keys[i];
            if (k < 0 || n->containers.vals[i] <= 0)
                continue;
            if (r->id_cache[k] < 0)
                r->id_cache[k] =
                    (signed char)(regexec(&r->re, p->g->containers.names[k], 0, NULL, 0) == 0);
            if (r->id_cache[k])
                return 1;
        }
        return 0;
    }
    return 0;
}

/* --- filters ------------------------------------------------------------------------------ */

static int cur_of(const struct planner *p, int i)
{
    return i >= 1 && i <= p->cur_max ? p->cur[i] : -1;
}

/* Where instance j is for the instance being placed now (i): placed in this pass or not. */
static int eff_of(const struct planner *p, int j, int i)
{
    if (j < i && j <= p->limit && p->planned[j] >= 0)
        return p->planned[j];
    return cur_of(p, j);
}

static PRINTF_LIKE(2, 3) int fail(struct planner *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
    va_end(ap);
    return -1;
}

/* Ruby's Array#inspect of ints, "[80, 443]", into out. */
static void inspect_ints(char *out, size_t len, const int *v, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(out + o, len - o, "[");
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%d", i ? ", " : "", v[i]);
    if (o < len)
        snprintf(out + o, len - o, "]");
}

/* Ruby's Array#inspect of strings, "[\"a\", \"b\"]", into out (no escaping needed: the
 * values are names). */
static void inspect_strs(char *out, size_t len, char *const *v, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(out + o, len - o, "[");
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s\"%s\"", i ? ", " : "", v[i]);
    if (o < len)
        snprintf(out + o, len - o, "]");
}

/* Ruby's Float#to_s for the CPU message: 2 → "2.0", 0.5 → "0.5". */
static void ruby_float(char *out, size_t len, double v)
{
    snprintf(out, len, "%.15g", v);
    if (!strpbrk(out, ".eEn"))
        snprintf(out + strlen(out), len - strlen(out), ".0");
}

/* A driver matches the node's "name" or "name:version" (the original compared with
 * "name:version" only when the node reported a version). */
static int has_drivers(const struct sched__node *n, char *const *need, size_t n_need)
{
    for (size_t k = 0; k < n_need; k++) {
        size_t i;
        for (i = 0; i < n->n_drivers && strcmp(n->drivers[i], need[k]) != 0; i++)
            ;
        if (i == n->n_drivers)
            return 0;
    }
    return 1;
}

static int port_free(struct planner *p, int x, int i)
{
    const struct sched__node *n = &p->g->nodes[x];

    /* Own instances: every instance of this service publishes the service's ports; the one
     * being placed does not conflict with itself. */
    if (p->effcnt[x] - (cur_of(p, i) == x) > 0)
        return 0;
    for (size_t k = 0; k < p->s->n_node_ports; k++) {
        const int *head = sched__imap_get(&n->ports, p->s->node_ports[k]);
        for (int u = head ? *head - 1 : -1; u >= 0; u = p->g->port_uses[u].next)
            if (p->g->port_uses[u].service != p->sid && p->g->port_uses[u].count > 0)
                return 0;
    }
    return 1;
}

/* The interned id of the container of the same stack called `what` ("data-3"), -1 when no
 * node runs one. */
static int dependency_id(struct planner *p, const char *what)
{
    char *name =
        strcmp(p->s->stack, "null") == 0 ? xstrdup(what) : xasprintf("%s.%s", p->s->stack, what);
    int cid = sched__intern_find(&p->g->containers, name);
    free(name);
    return cid;
}

/* Does node x run any of the containers ids[0..n)? */
static int runs_any(struct planner *p, int x, const int *ids, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const int *c = ids[k] >= 0 ? sched__imap_get(&p->g->nodes[x].containers, ids[k]) : NULL;
        if (c && *c > 0)
            return 1;
    }
    return 0;
}

#define KEEP_IF(cond)                                                                              \
    do {                                                                                           \
        size_t o_ = 0;                                                                             \
        for (size_t k_ = 0; k_ < *n; k_++) {                                                       \
            int x = list[k_];                                                                      \
            if (cond)                                                                              \
                list[o_++] = x;                                                                    \
        }                                                                                          \
        *n = o_;                                                                                   \
    } while (0)

/* Run the filters of §4 over the candidates for instance i, leaving the survivors in
 * list[0..*n). -1 with p->reason when one leaves nothing, else 0. */
static int filter(struct planner *p, int i, int *list, size_t *n)
{
    const struct sched_service *s = p->s;
    const struct sched_grid *g = p->g;
    int here = cur_of(p, i);
    char what[SCHED_REASON_LEN - 100];

    /* 1. Availability, copying the candidates into list on the way. */
    *n = 0;
    for (size_t k = 0; k < p->n_cands; k++)
        if (!g->nodes[p->cands[k]].drain)
            list[(*n)++] = p->cands[k];
    if (!*n)
        return fail(p, "Filter Availability did not return any nodes");
    /* 2. Ephemeral (stateful only; an instance already there may stay). */
    if (s->stateful) {
        KEEP_IF(!g->nodes[x].ephemeral || x == here);
        if (!*n)
            return fail(p, "Did not find any non-ephemeral nodes for stateful service");
    }
    /* 3. VolumePlugin. */
    if (s->n_volume_drivers) {
        KEEP_IF(has_drivers(&g->nodes[x], s->volume_drivers, s->n_volume_drivers));
        if (!*n) {
            inspect_strs(what, sizeof(what), s->volume_drivers, s->n_volume_drivers);
            return fail(p, "Did not find any nodes with required volume drivers: %s", what);
        }
    }
    /* 4. VolumeInstance: no volume instance records exist yet (see the internals doc). */
    /* 5. Affinity. */
    for (size_t r = 0; r < p->n_rules; r++) {
        struct rule *ru = &p->rules[r], dyn;
        struct err e = ERR_INIT;
        size_t before = *n, kept = 0;

        if (ru->dynamic) {
            char *text = format_instance(s->affinity[r], i);
            if (parse_rule(text, &dyn, &e) != ST_OK) {
                free(text);
                return fail(p, "%s", e.msg);
            }
            free(text);
            rule_resolve(p, &dyn);
            ru = &dyn;
        }
        /* One pass into scratch: the survivors replace list only when there are any. */
        for (size_t k = 0; k < before; k++)
            if (rule_match(p, ru, list[k]) != ru->negate)
                p->scratch[kept++] = list[k];
        if (kept) {
            memcpy(list, p->scratch, kept * sizeof(*list));
            *n = kept;
        } else if (!ru->soft) {
            fail(p, "Did not find any nodes for affinity filter: %s", ru->text);
            if (ru == &dyn)
                rule_release(&dyn);
            return -1;
        }
        if (ru == &dyn)
            rule_release(&dyn);
    }
    /* 6. Port: node ports only, protocol and bind address ignored (as the original). */
    if (s->n_node_ports) {
        KEEP_IF(port_free(p, x, i));
        if (!*n) {
            inspect_ints(what, sizeof(what), s->node_ports, s->n_node_ports);
            return fail(p, "Did not find any nodes with unused ports: %s", what);
        }
    }
    /* 7. Cpu: total cores only. */
    if (s->cpus > 0) {
        KEEP_IF(g->nodes[x].cpus >= s->cpus);
        if (!*n) {
            ruby_float(what, sizeof(what), s->cpus);
            return fail(p, "Did not find any nodes with %s CPUs available", what);
        }
    }
    /* 8. Memory. Node stats do not exist yet (issue 8): the 1.25 × peak usage fallback and
     * the free-memory test are off; only mem_total is compared. */
    int64_t mem = s->memory > 0 ? s->memory : s->memory_swap;
    if (mem > 0) {
        KEEP_IF(x == here || g->nodes[x].mem_total >= mem);
        if (!*n)
            return fail(p, "Did not find any nodes with sufficient free memory: %lld",
                        (long long)mem);
    }
    /* 9. Dependency: volumes_from, then net container:<name>. */
    if (s->n_volumes_from) {
        char **vf = xcalloc(s->n_volumes_from, sizeof(*vf));
        int *ids = xcalloc(s->n_volumes_from, sizeof(*ids));
        for (size_t k = 0; k < s->n_volumes_from; k++) {
            vf[k] = format_instance(s->volumes_from[k], i);
            ids[k] = dependency_id(p, vf[k]);
        }
        KEEP_IF(runs_any(p, x, ids, s->n_volumes_from));
        if (!*n)
            inspect_strs(what, sizeof(what), vf, s->n_volumes_from);
        for (size_t k = 0; k < s->n_volumes_from; k++)
            free(vf[k]);
        free(vf);
        free(ids);
        if (!*n)
            return fail(p, "Did not find any nodes for service dependency volumes_from: %s", what);
    }
    if (s->net_container) {
        char *net = format_instance(s->net_container, i);
        int id = dependency_id(p, net);
        KEEP_IF(runs_any(p, x, &id, 1));
        if (!*n) {
            fail(p, "Did not find any nodes for service dependency net: %s", net);
            free(net);
            return -1;
        }
        free(net);
    }
    return 0;
}

/* --- strategies --------------------------------------------------------------------------- */

static int in_list(const int *list, size_t n, int x)
{
    for (size_t k = 0; k < n; k++)
        if (list[k] == x)
            return 1;
    return 0;
}

static int pick_ha(struct planner *p, int i, const int *list, size_t n)
{
    const struct sched_grid *g = p->g;
    int here = cur_of(p, i), best = -1;
    long bz = 0, bc = 0, br = 0, ties = 0;

    /* zone_count: the per-pass counters of the filtered nodes in the node's zone. When the
     * filters kept every candidate that is the running per-zone total; else sum it. */
    const int *zs = p->zoneall;
    if (n != p->n_cands) {
        for (size_t k = 0; k < n; k++)
            p->zonesum[g->nodes[list[k]].zone] += p->passcnt[list[k]];
        zs = p->zonesum;
    }
    for (size_t k = 0; k < n; k++) {
        int x = list[k];
        long z = zs[g->nodes[x].zone], c = p->passcnt[x];
        /* rank = 10, −5 when the node hosts this instance now, + memory pressure (0: no
         * node stats yet). Kept as an integer while the pressure term is 0. */
        long rank = x == here ? 5 : 10;
        if (best < 0 || z < bz || (z == bz && (c < bc || (c == bc && rank < br)))) {
            best = x;
            bz = z;
            bc = c;
            br = rank;
            ties = 1;
        } else if (z == bz && c == bc && rank == br) {
            ties++;
            if (sched__rand_below(g, (uint64_t)ties) == 0)
                best = x;
        }
    }
    if (zs == p->zonesum)
        for (size_t k = 0; k < n; k++)
            p->zonesum[g->nodes[list[k]].zone] = 0;
    return best;
}

static int pick_daemon(struct planner *p, int i, const int *list, size_t n)
{
    const struct sched_grid *g = p->g;
    int here = cur_of(p, i), best = -1, bnum = 0;
    long total = (long)n * p->s->instances, brank = 0;
    int touched = 0;

    /* instance_rank counts instances numbered ≤ total: effcnt covers 1..limit, so adjust by
     * the instances between total and limit (rare: only when filters narrow this one). */
    if (total < p->limit) {
        for (int j = (int)total + 1; j <= p->limit; j++) {
            int e = eff_of(p, j, i);
            if (e >= 0)
                p->adj[e]--;
        }
        touched = 1;
    } else if (total > p->limit) {
        for (int j = p->limit + 1; j <= total && j <= p->cur_max; j++)
            if (p->cur[j] >= 0)
                p->adj[p->cur[j]]++;
        touched = 1;
    }
    for (size_t k = 0; k < n; k++) {
        int x = list[k];
        long rank = x == here ? -1 : (long)p->effcnt[x] + p->adj[x];
        int num = g->nodes[x].node_number;
        if (best < 0 || rank < brank || (rank == brank && num < bnum)) {
            best = x;
            brank = rank;
            bnum = num;
        }
    }
    if (touched)
        for (size_t k = 0; k < g->n_nodes; k++)
            p->adj[k] = 0;
    return best;
}

/* Select the node of instance i: filters, then the strategy. -1 with p->reason. */
static int select_node(struct planner *p, int i)
{
    size_t n = p->n_cands;
    int here = cur_of(p, i), x;

    if (!p->n_cands)
        return fail(p, "There are no nodes available");
    if (filter(p, i, p->list, &n) != 0)
        return -1;
    if (p->s->strategy == SCHED_RANDOM) {
        if (here >= 0 && in_list(p->list, n, here))
            x = here;
        else if (here >= 0 && p->s->stateful)
            x = -1;
        else
            x = p->list[sched__rand_below(p->g, n)];
    } else if (p->s->stateful && here >= 0) {
        x = in_list(p->list, n, here) ? here : -1;
    } else {
        x = p->s->strategy == SCHED_DAEMON ? pick_daemon(p, i, p->list, n)
                                           : pick_ha(p, i, p->list, n);
    }
    if (x < 0)
        return fail(p, "Strategy %s did not find any node", strategy_names[p->s->strategy]);
    return x;
}

/* --- one pass ----------------------------------------------------------------------------- */

/* Reset the per-pass state for instances 1..limit. */
static void pass_begin(struct planner *p, int limit)
{
    size_t nn = p->g->n_nodes;

    p->limit = limit;
    memset(p->passcnt, 0, nn * sizeof(int));
    memset(p->effcnt, 0, nn * sizeof(int));
    memset(p->zoneall, 0, (p->g->zones.n + 1) * sizeof(int));
    for (int j = 1; j <= limit && j <= p->cur_max; j++)
        if (p->cur[j] >= 0)
            p->effcnt[p->cur[j]]++;
    p->planned = xrealloc(p->planned, ((size_t)limit + 1) * sizeof(int));
    for (int j = 0; j <= limit; j++)
        p->planned[j] = -1;
}

static void pass_place(struct planner *p, int i, int x)
{
    int c = cur_of(p, i);

    p->planned[i] = x;
    p->passcnt[x]++;
    p->zoneall[p->g->nodes[x].zone]++;
    if (c >= 0)
        p->effcnt[c]--;
    p->effcnt[x]++;
}

static long strategy_count(const struct sched_service *s, long nodes)
{
    return s->strategy == SCHED_DAEMON ? nodes * s->instances : s->instances;
}

static void planner_release(struct planner *p)
{
    for (size_t r = 0; r < p->n_rules; r++)
        rule_release(&p->rules[r]);
    FREE_AND_NULL(p->rules);
    FREE_AND_NULL(p->cands);
    FREE_AND_NULL(p->list);
    FREE_AND_NULL(p->scratch);
    FREE_AND_NULL(p->cur);
    FREE_AND_NULL(p->planned);
    FREE_AND_NULL(p->passcnt);
    FREE_AND_NULL(p->effcnt);
    FREE_AND_NULL(p->adj);
    FREE_AND_NULL(p->zonesum);
    FREE_AND_NULL(p->zoneall);
    FREE_AND_NULL(p->own_prefix);
}

static enum status planner_init(struct planner *p, const struct sched_grid *g,
                                const struct sched_service *s, struct err *e)
{
    size_t nn = g->n_nodes;

    memset(p, 0, sizeof(*p));
    p->g = g;
    p->s = s;
    if (!s->id || !s->grid || !s->stack || !s->name)
        return err_set(e, ST_INVALID, "service without id, grid, stack or name");
    if (s->instances < 0)
        return err_set(e, ST_INVALID, "service '%s' has a negative instance count", s->id);
    p->sid = sched__intern_find(&g->services, s->id);
    p->cands = xmalloc((nn + 1) * sizeof(int));
    p->list = xmalloc((nn + 1) * sizeof(int));
    p->scratch = xmalloc((nn + 1) * sizeof(int));
    for (size_t k = 0; k < nn; k++)
        if (g->nodes[k].candidate)
            p->cands[p->n_cands++] = (int)k;
    p->passcnt = xcalloc(nn + 1, sizeof(int));
    p->effcnt = xcalloc(nn + 1, sizeof(int));
    p->adj = xcalloc(nn + 1, sizeof(int));
    p->zonesum = xcalloc(g->zones.n + 1, sizeof(int));
    p->zoneall = xcalloc(g->zones.n + 1, sizeof(int));

    /* Current placement: cur[n]. Two keys of one number (a move half done): prefer the one
     * on a candidate node. Orphans (node gone) have no node. */
    if (p->sid >= 0 && (size_t)p->sid < g->alloc_insts) {
        const struct sched__svc_insts *si = &g->insts[p->sid];
        for (size_t k = 0; k < si->n; k++)
            if (si->v[k].number > p->cur_max && si->v[k].number <= MAX_PLAN)
                p->cur_max = si->v[k].number;
        p->cur = xmalloc(((size_t)p->cur_max + 1) * sizeof(int));
        for (int j = 0; j <= p->cur_max; j++)
            p->cur[j] = -1;
        for (size_t k = 0; k < si->n; k++) {
            int num = si->v[k].number, x = si->v[k].node;
            if (num > p->cur_max || x < 0)
                continue;
            if (p->cur[num] < 0 || (!g->nodes[p->cur[num]].candidate && g->nodes[x].candidate))
                p->cur[num] = x;
        }
    }

    p->rules = xcalloc(s->n_affinity + 1, sizeof(*p->rules));
    for (size_t r = 0; r < s->n_affinity; r++) {
        struct rule *ru = &p->rules[r];
        if (strchr(s->affinity[r], '%')) {
            /* Checked for instance 1 here; parsed again for each instance. */
            enum status st = sched_affinity_check(s->affinity[r], 1, e);
            if (st != ST_OK)
                return st;
            memset(ru, 0, sizeof(*ru));
            ru->dynamic = 1;
        } else {
            enum status st = parse_rule(s->affinity[r], ru, e);
            if (st != ST_OK)
                return st;
            rule_resolve(p, ru);
        }
        p->n_rules = r + 1;
    }
    return ST_OK;
}

/* Place instances 1..limit into out[0..limit). Returns the first failed number (0 none) and
 * its reason in p->reason. */
static int run_pass(struct planner *p, int limit, int *out, char *reason, size_t reason_len)
{
    int failed = 0;

    pass_begin(p, limit);
    for (int i = 1; i <= limit; i++) {
        int x = select_node(p, i);
        out[i - 1] = x;
        if (x >= 0) {
            pass_place(p, i, x);
        } else if (!failed) {
            failed = i;
            snprintf(reason, reason_len, "%s", p->reason);
        }
    }
    return failed;
}

enum status sched_plan(const struct sched_grid *g, const struct sched_service *s,
                       struct sched_plan *out, struct err *e)
{
    struct planner p;
    enum status st;
    long n;

    memset(out, 0, sizeof(*out));
    st = planner_init(&p, g, s, e);
    if (st != ST_OK)
        goto out;

    n = strategy_count(s, (long)p.n_cands);
    if (n > MAX_PLAN) {
        st = err_set(e, ST_INVALID, "service '%s' would have %ld instances, more than %d", s->id, n,
                     MAX_PLAN);
        goto out;
    }
    if (s->strategy == SCHED_DAEMON && n > 0) {
        /* §7: simulate 1..max over fresh counters; N follows the nodes that took any. */
        int *sim = xmalloc((size_t)n * sizeof(int));
        char why[SCHED_REASON_LEN] = "";
        long distinct = 0;

        run_pass(&p, (int)n, sim, why, sizeof(why));
        for (long k = 0; k < n; k++)
            if (sim[k] >= 0 && p.passcnt[sim[k]] > 0) {
                distinct++;
                p.passcnt[sim[k]] = 0; /* counted */
            }
        free(sim);
        n = strategy_count(s, distinct);
        if (n == 0)
            snprintf(out->reason, sizeof(out->reason), "%s", why);
    }

    out->n = (int)n;
    out->node = xmalloc(((size_t)n + 1) * sizeof(int));
    if (!p.n_cands && s->instances > 0) {
        /* No node at all: every instance fails, and failed is 1 even when N is 0 (a daemon),
         * so an empty grid never reads as "scale to nothing". (A service scaled to 0 has
         * nothing to place and does not fail.) */
        for (long k = 0; k < n; k++)
            out->node[k] = -1;
        out->failed = 1;
        snprintf(out->reason, sizeof(out->reason), "There are no nodes available");
        goto out;
    }
    if (n > 0)
        out->failed = run_pass(&p, (int)n, out->node, out->reason, sizeof(out->reason));
out:
    planner_release(&p);
    if (st != ST_OK)
        sched_plan_release(out);
    return st;
}

void sched_plan_release(struct sched_plan *p)
{
    if (!p)
        return;
    FREE_AND_NULL(p->node);
    p->n = 0;
    p->failed = 0;
}

/* --- §9 ------------------------------------------------------------------------------------ */

/* "n1,n2" of the nodes marked in set, cut short with "..." when it does not fit. */
static void node_set_str(const struct sched_grid *g, const char *set, char *out, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (size_t k = 0; k < g->n_nodes; k++) {
        if (!set[k])
            continue;
        size_t need = strlen(g->nodes[k].name) + (o ? 1 : 0);
        if (o + need + 4 >= len) {
            snprintf(out + o, len - o, "...");
            return;
        }
        o += (size_t)snprintf(out + o, len - o, "%s%s", o ? "," : "", g->nodes[k].name);
    }
    if (!o)
        snprintf(out, len, "no node");
}

int sched_mismatch(const struct sched_grid *g, const struct sched_service *s, char *why,
                   size_t why_len)
{
    struct sched_plan plan;
    struct err e = ERR_INIT;
    int sid, placed = 0, result = 0;
    size_t nn = g->n_nodes, k;
    char *cur_set = NULL, *plan_set = NULL;

    if (why && why_len)
        why[0] = '\0';
    for (k = 0; k < nn && !g->nodes[k].candidate; k++)
        ;
    if (k == nn)
        return 0; /* never reschedule into an empty grid */
    if (sched_plan(g, s, &plan, &e) != ST_OK) {
        if (why && why_len)
            snprintf(why, why_len, "cannot be planned: %s", e.msg);
        return 0;
    }
    cur_set = xcalloc(nn + 1, 1);
    plan_set = xcalloc(nn + 1, 1);
    sid = sched__intern_find(&g->services, s->id);
    if (sid >= 0 && (size_t)sid < g->alloc_insts)
        for (k = 0; k < g->insts[sid].n; k++)
            if (g->insts[sid].v[k].node >= 0) {
                placed++;
                cur_set[g->insts[sid].v[k].node] = 1;
            }
    for (int i = 0; i < plan.n; i++)
        if (plan.node[i] >= 0)
            plan_set[plan.node[i]] = 1;
    if (placed != plan.n) {
        result = 1;
        if (why && why_len)
            snprintf(why, why_len,
                     "has wrong number of instances (or they are not distributed correctly): "
                     "%d with a node, %d wanted",
                     placed, plan.n);
    } else if (memcmp(cur_set, plan_set, nn) != 0) {
        result = 1;
        if (why && why_len) {
            char now[160], planned[160];
            node_set_str(g, cur_set, now, sizeof(now));
            node_set_str(g, plan_set, planned, sizeof(planned));
            snprintf(why, why_len,
                     "has wrong number of instances (or they are not distributed correctly): "
                     "on %s, a plan would use %s",
                     now, planned);
        }
    }
    free(cur_set);
    free(plan_set);
    sched_plan_release(&plan);
    return result;
}
