/* cli/cmd_logs.c -- the log commands: `service logs`, `stack logs`, `grid logs` and
 * `container logs` (cli.md §3, §5, §6, §7; master-api.md §2.12 and the issue 8 contract).
 *
 * Without -f: one GET of the newest --tail entries (oldest first), printed, done.
 * With -f: a GET with follow=1 that the master never ends; it writes one bare JSON object per
 * entry (any split across chunks) and a " " keep-alive every 0.5 s when idle. cli/logscan.h
 * finds the complete objects and reads the printed fields of each without a JSON tree; we
 * print it and remember its id. When the stream ends or breaks (a master restart, no byte for
 * FOLLOW_IDLE_S) we reconnect with from=<last id>, so nothing is printed twice and nothing is
 * skipped while the master still has it; until the first entry arrives we ask again with the first
 * request's parameters. A `{"dropped": N, "reason": ...}` object (the follower fell out of the
 * master's window) becomes a warning on stderr.
 *
 * Output (cli.md): container and grid logs "<created_at> <name>: <data>", stack logs
 * "<created_at> [<name>]: <data>", service logs "<created_at> [<instance>]: <data>"; grid logs
 * with -f "<name> | <data>" as the original; a container's stderr lines go to stderr. -o json
 * prints each entry as one JSON line, all on stdout.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/logscan.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define FOLLOW_IDLE_S 10          /* keep-alives come every 0.5 s: 10 s of silence is a dead link */
#define FOLLOW_BACKOFF_MIN_MS 250 /* first wait before reconnecting */
#define FOLLOW_BACKOFF_MAX_MS 5000
#define FOLLOW_MAX_REFUSALS 5 /* 4xx replies in a row, after a first success, before giving up */
#define ENTRY_MAX (4u << 20)  /* one streamed object; a line is at most 16 KiB */
#define TAIL_MAX 10000

enum log_fmt {
    FMT_CONTAINER, /* "<created_at> <name>: <data>" */
    FMT_STACK,     /* "<created_at> [<name>]: <data>" */
    FMT_SERVICE,   /* "<created_at> [<instance>]: <data>" */
    FMT_GRID,      /* as container; with -f "<name> | <data>" */
};

struct logrun {
    struct cli *c;
    enum log_fmt fmt;
    int follow, json;
    struct logscan scan;   /* object boundaries in the follow stream */
    struct logentry entry; /* the fields of the entry being printed */
    char *last_id;         /* id of the last entry printed, NULL before the first */
    long got;              /* entries printed on the current connection */
    long garbage;          /* objects that were not entries */
    int fatal;             /* an object too large: stop */
};

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static void bput(struct buf *b, const char *s)
{
    if (buf_puts(b, s) != ST_OK)
        BUG_ON("uncapped buffer refused an append");
}

/* Append "&key=<escaped value>" (the first one with '?'). */
static void add_param(struct buf *b, const char *key, const char *value)
{
    char *v = cli_escape(value);

    bput(b, strchr(b->ptr ? b->ptr : "", '?') ? "&" : "?");
    bput(b, key);
    bput(b, "=");
    bput(b, v);
    free(v);
}

/* Append "&key=a,b,c" from a list of values; bare service names become "null/<name>" when
 * qualify is set (the grid's services parameter wants stack/service). */
static void add_list(struct buf *b, const char *key, const char *const *vals, size_t n, int qualify)
{
    struct buf joined = BUF_INIT;

    if (!n)
        return;
    for (size_t i = 0; i < n; i++) {
        if (i)
            bput(&joined, ",");
        if (qualify && !strchr(vals[i], '/'))
            bput(&joined, "null/");
        bput(&joined, vals[i]);
    }
    add_param(b, key, joined.ptr);
    buf_release(&joined);
}

/* --since: unix seconds and RFC 3339 times go to the master as they are; an age ("90s",
 * "15m", "2h", "1d") becomes the RFC 3339 time that long ago. NULL after printing a usage
 * error for a value that is none of these. Caller frees. */
static char *since_value(const char *path, const char *s)
{
    char *end, iso[40];
    long long v;

    if (!*s) {
        cli_usage_error(path, "--since: empty value");
        return NULL;
    }
    v = strtoll(s, &end, 10);
    if (end != s && isdigit((unsigned char)s[0])) {
        long long mult = 0;

        if (*end == '\0')
            return xstrdup(s);
        if (end[1] == '\0')
            mult = *end == 's'   ? 1
                   : *end == 'm' ? 60
                   : *end == 'h' ? 3600
                   : *end == 'd' ? 86400
                                 : 0;
        if (mult && v <= 100LL * 365 * 86400) {
            time_iso8601(time_now_us() - v * mult * 1000000, iso, sizeof(iso));
            return xstrdup(iso);
        }
    }
    if (time_iso8601_parse(s) >= 0 || (strlen(s) >= 20 && s[4] == '-' && s[10] == 'T'))
        return xstrdup(s);
    {
        char *msg = xasprintf("--since: '%s' is neither a time (RFC 3339), unix seconds nor an "
                              "age such as 30s, 15m, 2h or 1d",
                              s);
        cli_usage_error(path, msg);
        free(msg);
    }
    return NULL;
}

/* Print one entry. obj/len: its JSON text, printed as it is with -o json. */
static void print_entry(struct logrun *r, const struct logentry *e, const char *obj, size_t len)
{
    const char *t = or_empty(e->created_at), *name = or_empty(e->name);
    const char *data = or_empty(e->data);
    /* Like docker logs: a container's stderr lines go to our stderr (-o json keeps all on
     * stdout, in order). */
    FILE *f = e->type && !strcmp(e->type, "stderr") ? stderr : stdout;

    if (r->json) {
        fwrite(obj, 1, len, stdout);
        putchar('\n');
        return;
    }
    switch (r->fmt) {
    case FMT_GRID:
        if (r->follow) {
            fprintf(f, "%s | %s\n", name, data);
            break;
        }
        /* fall through */
    case FMT_CONTAINER:
        fprintf(f, "%s %s: %s\n", t, name, data);
        break;
    case FMT_STACK:
        fprintf(f, "%s [%s]: %s\n", t, name, data);
        break;
    case FMT_SERVICE:
        if (e->has_instance) {
            fprintf(f, "%s [%lld]: %s\n", t, e->instance, data);
        } else {
            /* the instance number from the name's "-<n>" suffix, else the name */
            const char *dash = strrchr(name, '-');
            if (dash && dash[1] && strspn(dash + 1, "0123456789") == strlen(dash + 1))
                name = dash + 1;
            fprintf(f, "%s [%s]: %s\n", t, name, data);
        }
        break;
    }
}

/* One complete object, streamed or listed (logscan callback): an entry, or a dropped
 * marker. */
static void on_object(void *arg, const char *s, size_t n)
{
    struct logrun *r = arg;

    if (logentry_parse(&r->entry, s, n) != ST_OK) {
        r->garbage++;
        return;
    }
    if (r->entry.has_dropped && !r->entry.data) {
        fflush(stdout);
        cli_warn("%lld log lines dropped: %s", r->entry.dropped, or_empty(r->entry.reason));
        return;
    }
    if (r->entry.id) {
        free(r->last_id);
        r->last_id = xstrdup(r->entry.id);
    }
    print_entry(r, &r->entry, s, n);
    r->got++;
}

/* api_stream() callback: print the complete objects in what arrived so far. */
static int on_data(const char *p, size_t n, void *arg)
{
    struct logrun *r = arg;

    if (logscan_feed(&r->scan, p, n, on_object, r) != ST_OK) {
        cli_error("a log entry from the master is larger than %u bytes", ENTRY_MAX);
        r->fatal = 1;
        return 1;
    }
    fflush(stdout);
    return 0;
}

/* The request path: base, the command's filters, then the log query. */
static char *log_path(const char *base, const char *filters, struct logrun *r, long tail,
                      const char *since, const char *search)
{
    struct buf b = BUF_INIT;
    char num[32];

    bput(&b, base);
    if (filters && *filters) {
        bput(&b, "?");
        bput(&b, filters);
    }
    if (r->last_id) {
        add_param(&b, "from", r->last_id);
    } else {
        snprintf(num, sizeof(num), "%ld", tail);
        add_param(&b, "limit", num);
        if (since)
            add_param(&b, "since", since);
    }
    if (search)
        add_param(&b, "q", search);
    if (r->follow)
        add_param(&b, "follow", "1");
    return buf_take(&b);
}

static int show_once(struct logrun *r, const char *path)
{
    json_t *reply = NULL, *e;
    size_t i;

    if (api_get(r->c->api, path, &reply) != ST_OK)
        return cli_fail_api(r->c);
    json_array_foreach(json_object_get(reply, "logs"), i, e)
    {
        char *text = json_is_object(e) ? json_dumps(e, JSON_COMPACT) : NULL;
        if (text)
            on_object(r, text, strlen(text));
        free(text);
    }
    json_decref(reply);
    fflush(stdout);
    return 0;
}

/* Follow until interrupted (or a lasting refusal). */
static int follow(struct logrun *r, const char *base, const char *filters, long tail,
                  const char *since, const char *search)
{
    int64_t backoff = FOLLOW_BACKOFF_MIN_MS;
    int connected_once = 0, refusals = 0, warned = 0;

    for (;;) {
        char *path = log_path(base, filters, r, tail, since, search);
        enum status st;
        long code;

        logscan_reset(&r->scan);
        r->got = 0;
        st = api_stream(r->c->api, path, FOLLOW_IDLE_S, on_data, r);
        free(path);
        if (r->fatal)
            return 1;
        code = api_status(r->c->api);
        if (code >= 200 && code < 300)
            connected_once = 1;
        if (st == ST_NOTFOUND || st == ST_DENIED || st == ST_INVALID || st == ST_CONFLICT) {
            /* The master refused: final before any success (a wrong name), tolerated a few
             * times after one (a master coming up again). */
            if (!connected_once || ++refusals > FOLLOW_MAX_REFUSALS)
                return cli_fail_api(r->c);
        } else {
            refusals = 0;
        }
        if (r->got) {
            backoff = FOLLOW_BACKOFF_MIN_MS;
            warned = 0;
        }
        if (!warned) {
            fflush(stdout);
            cli_warn("%s; reconnecting",
                     st == ST_OK ? "the master ended the log stream" : api_error(r->c->api));
            warned = 1;
        }
        time_sleep_ms(backoff);
        backoff = backoff * 2 > FOLLOW_BACKOFF_MAX_MS ? FOLLOW_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Common part of every log command, once the endpoint (base path) and filters are known. */
static int run_logs(struct cli *c, struct opts *o, enum log_fmt fmt, const char *base,
                    const char *filters)
{
    struct logrun r;
    const char *since_opt = opts_str(o, "since"), *search = opts_str(o, "search");
    long tail = opts_given(o, "lines") ? opts_int(o, "lines", 100) : opts_int(o, "tail", 100);
    char *since = NULL, *path;
    int json = cli_want_json(c, o), rc;

    if (json < 0)
        return 1;
    if (tail < 1 || tail > TAIL_MAX) {
        char *msg = xasprintf("--tail: %ld is not in 1..%d", tail, TAIL_MAX);
        cli_usage_error(c->cmd->path, msg);
        free(msg);
        return 1;
    }
    if (since_opt && !(since = since_value(c->cmd->path, since_opt)))
        return 1;
    if (search && !*search)
        search = NULL;
    memset(&r, 0, sizeof(r));
    r.c = c;
    r.fmt = fmt;
    r.json = json;
    r.follow = opts_flag(o, "follow");
    logscan_init(&r.scan, ENTRY_MAX);
    logentry_init(&r.entry);
    if (r.follow) {
        rc = follow(&r, base, filters, tail, since, search);
    } else {
        path = log_path(base, filters, &r, tail, since, search);
        rc = show_once(&r, path);
        free(path);
    }
    logscan_release(&r.scan);
    logentry_release(&r.entry);
    free(r.last_id);
    free(since);
    return rc;
}

int cli_cmd_service_logs(struct cli *c, struct opts *o)
{
    struct svc_ref ref;
    struct buf filters = BUF_INIT;
    char *base;
    int rc;

    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &ref))
        return 1;
    if (opts_given(o, "instance")) {
        long n = opts_int(o, "instance", 0);
        if (n < 1) {
            svc_ref_release(&ref);
            return cli_usage_error(c->cmd->path, "--instance: must be a number from 1");
        }
        if (buf_printf(&filters, "instance=%ld", n) != ST_OK)
            BUG_ON("uncapped buffer refused an append");
    }
    base = xasprintf("%s/container_logs", ref.path);
    rc = run_logs(c, o, FMT_SERVICE, base, filters.ptr);
    free(base);
    buf_release(&filters);
    svc_ref_release(&ref);
    return rc;
}

int cli_cmd_stack_logs(struct cli *c, struct opts *o)
{
    struct buf filters = BUF_INIT;
    const char *grid;
    char *base;
    int rc;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    /* The optional SERVICE words after the stack name. */
    add_list(&filters, "services", (const char *const *)o->args + 1, (size_t)(o->nargs - 1), 0);
    base = stack_path(grid, o->args[0], "/container_logs");
    rc = run_logs(c, o, FMT_STACK, base, filters.ptr ? filters.ptr + 1 : NULL);
    free(base);
    buf_release(&filters);
    return rc;
}

int cli_cmd_grid_logs(struct cli *c, struct opts *o)
{
    struct buf filters = BUF_INIT;
    const char *const *list;
    const char *grid;
    char *base, *g;
    size_t n;
    int rc;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    list = opts_list(o, "node", &n);
    add_list(&filters, "nodes", list, n, 0);
    list = opts_list(o, "stack", &n);
    add_list(&filters, "stacks", list, n, 0);
    list = opts_list(o, "service", &n);
    add_list(&filters, "services", list, n, 1);
    list = opts_list(o, "container", &n);
    add_list(&filters, "containers", list, n, 0);
    g = cli_escape(grid);
    base = xasprintf("/v1/grids/%s/container_logs", g);
    free(g);
    rc = run_logs(c, o, FMT_GRID, base, filters.ptr ? filters.ptr + 1 : NULL);
    free(base);
    buf_release(&filters);
    return rc;
}

/* Whether container `id` ("node/name") exists for the user: the original answered 404 for a
 * container it did not know, while the log store answers an empty list. Known: in the grid's
 * container list (GET /v1/grids/<g>/containers), or with a line in the window (a removed
 * container's lines stay readable). 1, 0, or -1 after printing an API error. */
static int container_known(struct cli *c, const char *grid_esc, const char *id, const char *base)
{
    json_t *reply = NULL, *x;
    char *path = xasprintf("/v1/grids/%s/containers", grid_esc);
    int known = 0;
    size_t i;

    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        cli_fail_api(c);
        return -1;
    }
    free(path);
    json_array_foreach(json_object_get(reply, "containers"), i, x)
    {
        const char *xid = json_string_value(json_object_get(x, "id"));
        if (xid && !strcmp(xid, id))
            known = 1;
    }
    json_decref(reply);
    if (known)
        return 1;
    path = xasprintf("%s?limit=1", base);
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        cli_fail_api(c);
        return -1;
    }
    free(path);
    known = json_array_size(json_object_get(reply, "logs")) > 0;
    json_decref(reply);
    return known;
}

int cli_cmd_container_logs(struct cli *c, struct opts *o)
{
    const char *id = o->args[0], *slash = strchr(id, '/'), *grid;
    char *node, *g, *nd, *nm, *base;
    int rc;

    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/'))
        return cli_error("Invalid container id '%s': use NODE/NAME (see kontena container ls)", id);
    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    node = xstrndup(id, (size_t)(slash - id));
    g = cli_escape(grid);
    nd = cli_escape(node);
    nm = cli_escape(slash + 1);
    base = xasprintf("/v1/containers/%s/%s/%s/logs", g, nd, nm);
    rc = container_known(c, g, id, base);
    if (rc == 0)
        rc = cli_error("Container %s not found (see kontena container ls)", id);
    else if (rc == 1)
        rc = run_logs(c, o, FMT_CONTAINER, base, NULL);
    else
        rc = 1;
    free(base);
    free(nm);
    free(nd);
    free(g);
    free(node);
    return rc;
}
