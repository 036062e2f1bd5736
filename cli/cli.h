/* cli/cli.h -- the kontena CLI: command table, per-run context and the helpers commands share.
 *
 * Every command is one entry in a table (git's `commands[]`): its full path ("grid create"),
 * aliases, the function that runs it, a one-line description, its positional parameters and
 * its options. Groups ("grid", "master user") are entries without a function; their
 * sub-commands are the entries whose path extends theirs by one word. Each cli/cmd_*.c file
 * defines the table of its group, cli/commands.c lists those tables, finds the command
 * for an argv, prints --help and runs it.
 *
 * Commands talk to the master only through its HTTP API (cli/api.h), keep their state in
 * the client config (cli/config.h) and print through cli/output.h. A command returns its
 * exit status: 0 on success, 1 after printing an error.
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

struct api;
struct config;
struct server;
struct opts;
struct cli;

/* Option flags (struct cli_opt.flags). */
#define CLI_OPT_NEG 0x01      /* boolean written --[no-]x: --x sets it, --no-x clears it */
#define CLI_OPT_MULTI 0x02    /* takes a value and may be given more than once */
#define CLI_OPT_INT 0x04      /* value must be an integer */
#define CLI_OPT_REQUIRED 0x08 /* must be given */
#define CLI_OPT_HIDDEN 0x10   /* accepted but not shown in --help */

/* One option of a command. An option with `arg == NULL` is a flag. All strings are static. */
struct cli_opt {
    char short_name;       /* 'n' for -n, 0 for none */
    const char *long_name; /* "name" for --name; also the key for opts_str() and friends */
    const char *arg;       /* value placeholder shown in help ("NAME"), NULL for a flag */
    unsigned flags;        /* CLI_OPT_* */
    const char *help;
    const char *def; /* default value (also shown in help), NULL for none */
    const char *env; /* environment variable that supplies the default, NULL for none */
};

/* One positional parameter. The name carries its arity, as in the help text: "NAME" is
 * required, "[URL]" optional, "EMAIL ..." one or more, "[NAME] ..." any number. Only the
 * last parameter may repeat. */
struct cli_param {
    const char *name;
    const char *help;
};

typedef int cli_fn(struct cli *c, struct opts *o);

struct cli_cmd {
    const char *path;               /* words after "kontena", "" for the top level */
    const char *aliases;            /* other names of the last word, space separated, or NULL */
    cli_fn *fn;                     /* NULL for a group */
    const char *desc;               /* first line of --help; more lines after '\n' */
    const struct cli_param *params; /* {NULL}-terminated, or NULL */
    const struct cli_opt *opts;     /* {0}-terminated, or NULL */
    int hidden;                     /* not listed in help or completion */
};

/* The tables of each group, {NULL}-terminated. */
extern const struct cli_cmd cli_master_cmds[];
extern const struct cli_cmd cli_master_user_cmds[];
extern const struct cli_cmd cli_master_token_cmds[];
extern const struct cli_cmd cli_grid_cmds[];
extern const struct cli_cmd cli_grid_subnet_cmds[];
extern const struct cli_cmd cli_grid_user_cmds[];
extern const struct cli_cmd cli_audit_cmds[];
extern const struct cli_cmd cli_stack_cmds[];
extern const struct cli_cmd cli_stack_file_cmds[];
extern const struct cli_cmd cli_stack_label_cmds[];
extern const struct cli_cmd cli_service_cmds[];
extern const struct cli_cmd cli_service_deploy_cmds[];
extern const struct cli_cmd cli_service_env_cmds[];
extern const struct cli_cmd cli_node_cmds[];
extern const struct cli_cmd cli_container_cmds[];
extern const struct cli_cmd cli_whoami_cmds[];
extern const struct cli_cmd cli_version_cmds[];
extern const struct cli_cmd cli_complete_cmds[];

/* Iterate over every command, the top level first: i = 0, 1, ... until NULL. */
const struct cli_cmd *cli_cmd_at(size_t i);
/* The command with this exact path (aliases not considered), or NULL. */
const struct cli_cmd *cli_cmd_find(const char *path);
/* The sub-command of group `parent` called `word` (name or alias), or NULL. */
const struct cli_cmd *cli_cmd_child(const struct cli_cmd *parent, const char *word);
/* Whether child's path is parent's plus one word. */
int cli_cmd_is_child(const struct cli_cmd *parent, const struct cli_cmd *child);
/* Last word of the command's path ("add" for "grid user add"). */
const char *cli_cmd_name(const struct cli_cmd *cmd);
/* Print the --help text of cmd to out. */
void cli_help(const struct cli_cmd *cmd, FILE *out);

/* Run the CLI on argv (argv[0] is the program name); returns the exit status. */
int cli_main(int argc, char **argv);
/* `kontena complete ...`, handled before option parsing (cmd_complete.c): argv holds the
 * words after "complete". */
int cli_complete(struct cli *c, int argc, char **argv);

/* Per-run state. The config and the API client are made on first use. */
struct cli {
    const struct cli_cmd *cmd;
    int debug;
    struct config *cfg;    /* owned; cli_config() loads it */
    struct server *server; /* borrowed from cfg: the master the API client talks to */
    struct api *api;       /* owned; cli_connect() makes it */
};

/* Load the config if not yet loaded. NULL after printing the error. */
struct config *cli_config(struct cli *c);
/* Resolve the current master (cli.md §1.5) and make the API client for it with its token.
 * Returns 0, or prints "You are not logged into a Kontena Master..." and returns 1. */
int cli_connect(struct cli *c);
/* Like cli_connect() but for a known server and token (login); replaces c->api. */
void cli_use_server(struct cli *c, struct server *s, const char *token);
/* The grid commands act on: --grid (when the command has it and it was given), then
 * KONTENA_GRID, then the current master's grid. NULL after printing
 * "You have not selected a grid. Use: kontena grid". Needs cli_connect() first. */
const char *cli_grid(struct cli *c, struct opts *o);
/* Print the API client's last error as " [error] ..." and return 1. */
int cli_fail_api(struct cli *c);
/* DELETE path while the spinner started by the caller runs: 0 and the spinner "done" on
 * success, else the API error printed and 1. */
int cli_api_delete(struct cli *c, const char *path);
/* After a DELETE the master may remove asynchronously (as the original did): poll path once a
 * second until it answers 404. 0, or 1 after printing the API error or
 * "<what> is still there N seconds after its removal". */
int cli_wait_gone(struct cli *c, const char *path, const char *what, int seconds);
/* Save the config; prints the error and returns 1 on failure. No-op while KONTENA_URL is
 * set. */
int cli_save_config(struct cli *c);
/* Whether -o json was asked for. Returns -1 after printing a usage error for an unknown
 * format. */
int cli_want_json(struct cli *c, struct opts *o);
/* Print v as indented JSON on stdout. */
void cli_print_json(const json_t *v);
/* A JSON scalar as text (strings as they are, numbers in decimal, true/false); null_text
 * for null, a missing value or a container. Caller frees. */
char *cli_json_text(const json_t *v, const char *null_text);
/* Escape s for use as one segment of a URL path or a query value; caller frees. */
char *cli_escape(const char *s);
/* Make the current master use grid `name` after checking that it exists: prints
 * "Using grid: <name>" unless silent. Returns the exit status. (cmd_grid.c) */
int cli_grid_use(struct cli *c, const char *name, int silent);
/* Select the first grid of the master if it has no current grid (login). (cmd_grid.c) */
int cli_grid_autoselect(struct cli *c, int silent);

/* ---- services and stacks (cmd_service*.c, cmd_stack*.c) ---- */

/* A service as the user named it: "svc" (stack-less, the pseudo-stack "null"), "stack/svc"
 * or "grid/stack/svc" (cli.md §6). Every string is owned. */
struct svc_ref {
    char *grid, *stack, *name;
    char *path;  /* "/v1/services/<grid>/<stack>/<svc>", segments escaped */
    char *typed; /* the name as typed, for messages */
};
/* Parse typed; the grid comes from cli_grid() unless typed names one. Needs cli_connect().
 * Returns 0, or 1 after printing the error. */
int svc_ref_parse(struct cli *c, struct opts *o, const char *typed, struct svc_ref *r);
void svc_ref_release(struct svc_ref *r);

/* Wait for the service deploy record `deploy` (as the API returned it) of the service at
 * svc_path to finish: polls GET <svc_path>/deploys/<id> once a second, for at most
 * timeout_s seconds. The spinner the caller started goes on running; when the record's
 * `reason` changes, the current spinner ends and a new one "<label>: <reason>" starts.
 * Success: the spinner done and one "⊛ Deployed instance ..." line per instance; returns 0.
 * Failure or timeout: " [error] 500 : <reason>:" (or "deploy timed out") and returns 1.
 * (cmd_service_deploy.c) */
int cli_service_deploy_wait(struct cli *c, const char *svc_path, const json_t *deploy,
                            const char *label, long timeout_s);
/* `--timeout SECONDS` of the deploying commands, validated: > 0. -1 after printing a usage
 * error. */
long cli_deploy_timeout(struct cli *c, struct opts *o);

/* Stacks (cmd_stack.c), shared with the stack file commands (cmd_stack_file.c). */
/* "/v1/stacks/<grid>/<name><suffix>", segments escaped; caller frees. */
char *stack_path(const char *grid, const char *name, const char *suffix);
/* GET the stack; NULL after printing the API error (a 404 included). New reference. */
json_t *stack_fetch(struct cli *c, const char *grid, const char *name);
/* `stack deploy` of one stack: POST .../deploy under the spinner "Triggering deployment of
 * stack <name>", then, when wait is set, wait for it (at most timeout_s seconds). Returns 0,
 * or 1 after printing the error. */
int stack_deploy(struct cli *c, const char *grid, const char *name, int wait, long timeout_s);
/* `stack rm --force` of one stack: its children first (deepest first, "> Removing
 * dependency <child> .."), unless keep_deps; then DELETE and wait until it answers 404.
 * Returns 0, or 1 after printing the error. */
int stack_remove(struct cli *c, const char *grid, const char *name, int keep_deps);

/* Key-level changes from an installed stack (GET /v1/stacks/..., services as the master shows
 * them) to an install body (stack-file.md §11), appended to out as strings:
 * "~ web.image: \"a:1\" → \"a:2\"", "+ web.ports[1]: {...}", "- web.env[0]: \"A=1\"",
 * "+ db: new service, image x", "- old: service removed", "~ version: ...". Nothing
 * appended when the file would change nothing. (cmd_stack_diff.c) */
void stack_diff(const json_t *installed, const json_t *payload, json_t *out);

/* The stack file reader's host (cli/stackfile/vars.h) for this run: prompts when stdin is a
 * terminal; with a grid (and cli_connect() done) the service resolvers ask the master; grid
 * NULL is offline `stack validate`. No vault yet. (stackhost.c) */
struct vars_host;
struct vars_host *stackhost_create(struct cli *c, const char *grid);
void stackhost_destroy(struct vars_host *h); /* NULL is fine */

/* ---- logs and stats (cmd_logs.c, cmd_stats.c) ---- */

/* `service logs NAME`, `stack logs NAME [SERVICE ...]`, `grid logs`, `container logs
 * NODE/NAME`: the newest --tail entries, or with -f a stream that reconnects with
 * from=<last id> until interrupted. Their option tables hold CLI_LOG_OPTS. */
int cli_cmd_service_logs(struct cli *c, struct opts *o);
int cli_cmd_stack_logs(struct cli *c, struct opts *o);
int cli_cmd_grid_logs(struct cli *c, struct opts *o);
int cli_cmd_container_logs(struct cli *c, struct opts *o);
/* `service stats NAME`, `stack stats NAME`, `grid stats`; option tables hold
 * CLI_STATS_OPTS. */
int cli_cmd_service_stats(struct cli *c, struct opts *o);
int cli_cmd_stack_stats(struct cli *c, struct opts *o);
int cli_cmd_grid_stats(struct cli *c, struct opts *o);
/* A byte count as the original's filesize_to_human: "0B", "512B", "1.5K", "12.34M" (powers
 * of 1000, two decimals at most). */
void cli_human_size(double size, char *out, size_t len);

#define CLI_LOG_OPTS                                                                               \
    {'t',   "tail", "LINES", CLI_OPT_INT, "Number of lines to show from the end (1..10000)",       \
     "100", NULL},                                                                                 \
        {0, "lines", "LINES", CLI_OPT_INT, "Same as --tail", NULL, NULL},                          \
        {0,                                                                                        \
         "since",                                                                                  \
         "TIME",                                                                                   \
         0,                                                                                        \
         "Only lines since TIME: RFC 3339, unix seconds, or an age (30s, 15m, 2h, 1d)",            \
         NULL,                                                                                     \
         NULL},                                                                                    \
        {'f', "follow", NULL, 0, "Follow new lines (reconnects until interrupted)", NULL, NULL},   \
        {0, "search", "TEXT", 0, "Only lines containing TEXT", NULL, NULL},                        \
    {                                                                                              \
        'o', "output", "FORMAT", 0, "Output format: table or json (one entry per line)", NULL,     \
            NULL                                                                                   \
    }
#define CLI_STATS_OPTS                                                                             \
    {'t',  "tail", NULL, 0, "Print the table again every --interval seconds (until interrupted)",  \
     NULL, NULL},                                                                                  \
        {0, "interval", "SECONDS", CLI_OPT_INT, "Seconds between tables with --tail", "2", NULL},  \
        CLI_OPT_OUTPUT

/* Options shared by many commands, for use inside a command's option table. */
#define CLI_OPT_OUTPUT                                                                             \
    {                                                                                              \
        'o', "output", "FORMAT", 0, "Output format: table or json", NULL, NULL                     \
    }
#define CLI_OPT_QUIET                                                                              \
    {                                                                                              \
        'q', "quiet", NULL, 0, "Output the identifying column only", NULL, NULL                    \
    }
#define CLI_OPT_FORCE                                                                              \
    {                                                                                              \
        'f', "force", NULL, 0, "Force remove (no confirmation)", NULL, NULL                        \
    }
#define CLI_OPT_GRID                                                                               \
    {                                                                                              \
        0, "grid", "GRID", 0, "Specify grid to use", NULL, NULL                                    \
    }
#define CLI_OPT_END                                                                                \
    {                                                                                              \
        0, NULL, NULL, 0, NULL, NULL, NULL                                                         \
    }
#define CLI_PARAM_END                                                                              \
    {                                                                                              \
        NULL, NULL                                                                                 \
    }
#define CLI_CMD_END                                                                                \
    {                                                                                              \
        NULL, NULL, NULL, NULL, NULL, NULL, 0                                                      \
    }

#endif
