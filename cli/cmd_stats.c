/* cli/cmd_stats.c -- `service stats` and `stack stats` (cli.md §5, §6; master-api.md §2.13 and
 * the issue 8 contract): the latest sample of each running container, as the agents sent it,
 * in the original's columns CONTAINER  CPU %  MEM USAGE/LIMIT  MEM %  NET I/O.
 *
 * Sizes are printed as the original's filesize_to_human: powers of 1000, two decimals with
 * trailing zeros dropped, units B K M G T ("1.5M"). A container without a sample shows N/A;
 * a memory limit of 0 or ~2^63 and more (no limit) shows N/A and no percentage.
 * -t/--tail prints the table again every --interval seconds until interrupted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define NO_LIMIT 9.2e18 /* Docker reports "no limit" as about 2^63 or 2^64 */

static const json_t *jobj(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_object(v) ? v : NULL;
}

void cli_human_size(double size, char *out, size_t len)
{
    static const char units[] = "BKMGT";
    int e = 0;
    size_t n;

    if (!(size > 0) || !isfinite(size)) {
        snprintf(out, len, "0B");
        return;
    }
    while (size >= 1000 && e < 4) {
        size /= 1000;
        e++;
    }
    snprintf(out, len, "%.2f", size);
    n = strlen(out);
    while (n && out[n - 1] == '0')
        out[--n] = '\0';
    if (n && out[n - 1] == '.')
        out[--n] = '\0';
    if (n + 1 < len) {
        out[n] = units[e];
        out[n + 1] = '\0';
    }
}

/* One row of the table from a §2.13 stats entry. */
static void stats_row(struct table *t, const json_t *s)
{
    const json_t *cpu = jobj(s, "cpu"), *mem = jobj(s, "memory"), *net = jobj(s, "network");
    char cpu_s[32], use[32], lim[32], mem_s[80], pct[32], rx[32], tx[32], net_s[80];
    const char *row[5];
    char *name = cli_json_text(json_object_get(s, "container_id"), "-");

    if (cpu && json_is_number(json_object_get(cpu, "usage_pct")))
        snprintf(cpu_s, sizeof(cpu_s), "%.2f%%",
                 json_number_value(json_object_get(cpu, "usage_pct")));
    else
        snprintf(cpu_s, sizeof(cpu_s), "N/A");
    snprintf(pct, sizeof(pct), "N/A");
    if (mem) {
        double usage = json_number_value(json_object_get(mem, "usage"));
        double limit = json_number_value(json_object_get(mem, "limit"));

        cli_human_size(usage, use, sizeof(use));
        if (limit > 0 && limit < NO_LIMIT) {
            cli_human_size(limit, lim, sizeof(lim));
            snprintf(pct, sizeof(pct), "%.2f%%", usage / limit * 100);
        } else {
            snprintf(lim, sizeof(lim), "N/A");
        }
        snprintf(mem_s, sizeof(mem_s), "%s / %s", use, lim);
    } else {
        snprintf(mem_s, sizeof(mem_s), "N/A");
    }
    if (net) {
        cli_human_size(json_number_value(json_object_get(net, "rx_bytes")), rx, sizeof(rx));
        cli_human_size(json_number_value(json_object_get(net, "tx_bytes")), tx, sizeof(tx));
        snprintf(net_s, sizeof(net_s), "%s / %s", rx, tx);
    } else {
        snprintf(net_s, sizeof(net_s), "N/A");
    }
    row[0] = name;
    row[1] = cpu_s;
    row[2] = mem_s;
    row[3] = pct;
    row[4] = net_s;
    table_add(t, row);
    free(name);
}

static int show_stats(struct cli *c, struct opts *o, const char *path)
{
    static const char *const headers[] = {"container", "cpu %", "mem usage/limit", "mem %",
                                          "net i/o"};
    int json = cli_want_json(c, o), again = opts_flag(o, "tail");
    long interval = opts_int(o, "interval", 2);

    if (json < 0)
        return 1;
    if (interval < 1)
        return cli_usage_error(c->cmd->path, "--interval: must be at least 1 second");
    for (;;) {
        json_t *reply = NULL, *s;
        struct table *t;
        size_t i;

        if (api_get(c->api, path, &reply) != ST_OK)
            return cli_fail_api(c);
        if (json) {
            cli_print_json(reply);
        } else {
            t = table_create(headers, ARRAY_SIZE(headers));
            json_array_foreach(json_object_get(reply, "stats"), i, s) stats_row(t, s);
            table_print(t, stdout);
            table_destroy(t);
        }
        json_decref(reply);
        fflush(stdout);
        if (!again)
            return 0;
        time_sleep_ms(interval * 1000);
        if (!json)
            putchar('\n');
    }
}

int cli_cmd_service_stats(struct cli *c, struct opts *o)
{
    struct svc_ref ref;
    char *path;
    int rc;

    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &ref))
        return 1;
    path = xasprintf("%s/stats", ref.path);
    rc = show_stats(c, o, path);
    free(path);
    svc_ref_release(&ref);
    return rc;
}

int cli_cmd_stack_stats(struct cli *c, struct opts *o)
{
    const char *grid;
    char *path;
    int rc;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    path = stack_path(grid, o->args[0], "/stats");
    rc = show_stats(c, o, path);
    free(path);
    return rc;
}

int cli_cmd_grid_stats(struct cli *c, struct opts *o)
{
    const char *grid;
    char *path, *g;
    int rc;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    g = cli_escape(grid);
    path = xasprintf("/v1/grids/%s/stats", g);
    free(g);
    rc = show_stats(c, o, path);
    free(path);
    return rc;
}
