/* cli/cmd_audit.c -- `kontena master audit-log` and `kontena grid audit-log`: the newest
 * entries of the master-wide (master_admin only) or the grid's audit log, oldest first. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static int print_audit_log(struct cli *c, struct opts *o, const char *base)
{
    static const char *const headers[] = {"time",          "grid",       "resource_type",
                                          "resource_name", "event_name", "status",
                                          "user",          "source_ip",  "user_agent"};
    int json = cli_want_json(c, o);
    char *path = xasprintf("%s?limit=%ld", base, opts_int(o, "lines", 200));
    json_t *reply = NULL, *entry;
    struct table *t;
    size_t i;

    if (json < 0) {
        free(path);
        return 1;
    }
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    if (json) {
        cli_print_json(reply);
        json_decref(reply);
        return 0;
    }
    t = table_create(headers, ARRAY_SIZE(headers));
    json_array_foreach(json_object_get(reply, "logs"), i, entry)
    {
        const char *keys[] = {
            "time",         "grid", "resource_type", "resource_name", "event_name",
            "event_status", NULL,   "source_ip",     "user_agent"};
        char *cells[ARRAY_SIZE(keys)];

        for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
            cells[k] =
                keys[k]
                    ? cli_json_text(json_object_get(entry, keys[k]), "")
                    : cli_json_text(
                          json_object_get(json_object_get(entry, "user_identity"), "email"), "");
        table_add(t, (const char *const *)cells);
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
            free(cells[k]);
    }
    table_print(t, stdout);
    table_destroy(t);
    json_decref(reply);
    return 0;
}

static int cmd_master_audit_log(struct cli *c, struct opts *o)
{
    if (cli_connect(c))
        return 1;
    return print_audit_log(c, o, "/v1/audit_logs");
}

static int cmd_grid_audit_log(struct cli *c, struct opts *o)
{
    const char *grid;
    char *esc, *base;
    int rc;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    esc = cli_escape(grid);
    base = xasprintf("/v1/grids/%s/audit_log", esc);
    rc = print_audit_log(c, o, base);
    free(base);
    free(esc);
    return rc;
}

#define LINES_OPT                                                                                  \
    {                                                                                              \
        'l', "lines", "LINES", CLI_OPT_INT, "Number of lines to show", "200", NULL                 \
    }

const struct cli_cmd cli_audit_cmds[] = {
    {"master audit-log", NULL, cmd_master_audit_log, "Show the master's audit log", NULL,
     (const struct cli_opt[]){LINES_OPT, CLI_OPT_OUTPUT, CLI_OPT_END}, 0},
    {"grid audit-log", NULL, cmd_grid_audit_log, "Show the audit log of the current grid", NULL,
     (const struct cli_opt[]){CLI_OPT_GRID, LINES_OPT, CLI_OPT_OUTPUT, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
