/* cli/opts.h -- command-line option parser (cli.md §1.1, the original's Clamp behaviour).
 *
 *   - options may come after positional parameters: `vault write NAME --silent VALUE`;
 *   - `--` ends option parsing, everything after it is positional;
 *   - short flags combine (`-fq` = `-f -q`); a short option with a value takes the rest of
 *     its word or the next word (`-nfoo`, `-n foo`);
 *   - `--opt=value` and `--opt value` both work; `--[no-]x` flags accept `--x` and `--no-x`;
 *   - every command also accepts -h/--help and -D/--[no-]debug; the top level -v/--version;
 *   - a group stops at its first positional word, the sub-command name.
 *
 * Values are borrowed from argv, which must outlive the struct opts.
 */
#ifndef CLI_OPTS_H
#define CLI_OPTS_H

#include <stddef.h>

#include "cli/cli.h"
#include "common/err.h"

struct optval {
    int set;           /* given on the command line */
    int neg;           /* given as --no-x */
    const char *str;   /* last value given */
    const char **list; /* every value given, for CLI_OPT_MULTI (owned array) */
    size_t nlist;
};

struct opts {
    const struct cli_cmd *cmd;
    const struct cli_opt **spec; /* the command's options followed by the global ones */
    struct optval *val;          /* one per spec entry */
    size_t nspec;
    char **args; /* positional parameters (owned array of borrowed strings) */
    int nargs;
    int help;    /* -h/--help was given: print help, do nothing else */
    int version; /* -v/--version was given (top level only) */
    int rest;    /* groups: index in argv of the sub-command word (argc if none) */
};

#define OPTS_INIT                                                                                  \
    {                                                                                              \
        NULL, NULL, NULL, 0, NULL, 0, 0, 0, 0                                                      \
    }

/* Parse argv[0..argc) for cmd. On a usage error returns ST_INVALID with the message for
 * "ERROR: <message>" in e ("Unrecognised option '-x'", "parameter 'NAME': no value
 * provided", "too many arguments", ...). Stops at the first help switch. For a group, stops
 * at the first positional word and leaves its index in o->rest; no parameters are checked. */
enum status opts_parse(struct opts *o, const struct cli_cmd *cmd, int argc, char **argv,
                       struct err *e) WARN_UNUSED_RESULT;
void opts_release(struct opts *o);

/* Whether the command declares an option with this long name. */
int opts_has(const struct opts *o, const char *name);
/* Accessors by long name. The name must be declared for the command (BUG otherwise). */
int opts_given(const struct opts *o, const char *name);
/* Value given, else from the option's env variable (when set and not empty), else the
 * declared default, else NULL. Borrowed. */
const char *opts_str(const struct opts *o, const char *name);
/* Flags: 1 when given as --x, 0 when given as --no-x; when not given, the env variable
 * (anything but "", "false", "0" and "no" is true), else 0. */
int opts_flag(const struct opts *o, const char *name);
/* Integer options (validated by opts_parse); def when not given and no default. */
long opts_int(const struct opts *o, const char *name, long def);
/* Repeatable options: the values in order, count in *n (0 and NULL when not given). */
const char *const *opts_list(const struct opts *o, const char *name, size_t *n);

/* Whether an environment value counts as true (DEBUG=1, DEBUG=true ...). */
int opts_env_true(const char *v);

/* The options every command has, appended after its own (help and debug), and the extra
 * top-level one (version). Exposed for cli_help(). */
extern const struct cli_opt opts_global[];
extern const struct cli_opt opts_toplevel[];

#endif
