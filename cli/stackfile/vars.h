/* cli/stackfile/vars.h -- stack file variables (reference/stack-file.md §6): types, value /
 * default / required, resolvers (`from:`), setters (`to:`), conditions (`only_if`/`skip_if`).
 *
 * The original used the "opto" library; this is its behaviour, minus its bugs:
 *  - every variable is required unless `required: false` (quirk kept: it is what files rely on);
 *  - resolvers are tried in order until one gives a non-null value; implicit ones follow the
 *    listed ones: `env` with the variable's own name (unless an `env` resolver is listed) and
 *    finally `default`;
 *  - a value given on the command line bypasses resolvers but is converted and validated;
 *  - `gte` really means >= (the original's gte behaved as gt: fixed, noted in docs/).
 * Variables are resolved in declaration order (prompts appear in that order); a condition or
 * resolver referring to a later variable resolves that one first (cycles → hard error
 * "Variable <a> depends on itself").
 *
 * Everything that needs the outside world goes through struct vars_host, so tests can run
 * offline and the CLI can plug the master in.
 */
#ifndef CLI_STACKFILE_VARS_H
#define CLI_STACKFILE_VARS_H

#include <jansson.h>
#include <stdio.h>

#include "common/err.h"

struct vars_host {
    void *ctx;
    /* Environment of the CLI process (NULL → getenv / setenv). */
    const char *(*getenv)(void *ctx, const char *name);
    int (*setenv)(void *ctx, const char *name, const char *value);
    /* Master-backed resolvers and setters. A NULL callback means "no master or grid
     * selected" (offline `stack validate`): the resolver gives null, the setter does nothing. */
    json_t *(*vault_get)(void *ctx, const char *name); /* new reference, NULL if missing */
    enum status (*vault_set)(void *ctx, const char *name, const char *value, struct err *e);
    json_t *(*vault_list)(void *ctx);        /* array of secret names */
    json_t *(*certificate_list)(void *ctx);  /* array of certificate subjects */
    /* Current `instances` of service <service> of installed stack <stack>; NULL if none. */
    json_t *(*service_instances)(void *ctx, const char *stack, const char *service);
    /* Grid services for `service_link`: array of {"id": "stack/svc" or "null/svc",
     * "name": ..., "image": ...}. */
    json_t *(*service_list)(void *ctx);
    /* Prompts. When `interactive` is 0 (stdin is not a TTY), the prompt resolvers give null
     * and nothing is printed. in/out default to stdin/stderr. */
    int interactive;
    FILE *in, *out;
};

struct vars;

/* Read the definitions (the `variables:` mapping as JSON, in declaration order; NULL for
 * none). builtins (GRID, STACK, PLATFORM, dependency names, PARENT_STACK: name → value) are
 * fixed values that override same-named definitions. Hard errors (ST_INVALID): "No handler
 * for type <t>", "Unknown resolver: <name>", a definition that is not a mapping, an enum
 * without options, "Missing or empty vault secret name". */
struct vars *vars_new(const json_t *defs, const json_t *builtins, struct err *e);
void vars_free(struct vars *v);

/* A value from the command line (-v, --values-from): bypasses resolvers. Names that match
 * no variable are ignored. String input is converted by the variable's type (-v n=2 → 2). */
void vars_set_value(struct vars *v, const char *name, const json_t *value);
/* A default (stack upgrade: the installed stack's stored values become defaults). */
void vars_set_default(struct vars *v, const char *name, const json_t *value);

/* Resolve, validate and run setters for every variable. Validation failures are collected
 * into *errors (a new object, empty when all is well): name → {key: message}, keys as the
 * original showed them: presence ("Required value missing"), validate_min_length
 * ("Too short. Minimum length is 8, length is 3."), validate_max_length, validate_min,
 * validate_max, validate_in ("Value X not in a, b"), validate_options ("Value is not one of
 * the options"), validate_scheme. Hard failures (resolver errors such as an unreadable
 * `file:`, "Variable x not declared", an `evaluate` syntax error) → ST_INVALID. */
enum status vars_run(struct vars *v, const struct vars_host *host, json_t **errors,
                     struct err *e);

/* Every variable's value after vars_run, builtins included, skipped ones as null: the
 * context for Liquid. New reference. */
json_t *vars_values(const struct vars *v);
/* The value `${name}` substitutes: the variable called name, else the variable whose
 * `to: env:` targets name. Returns 1 and sets *out (borrowed; may be json_null()) if found,
 * 0 if undeclared. */
int vars_lookup(const struct vars *v, const char *name, const json_t **out);
/* Whether variable name is "true" for service-level only_if/skip_if: declared, not skipped,
 * value not null, not false, not the string "false". */
int vars_truthy(const struct vars *v, const char *name);
/* What the master stores as the stack's variables (stack-file.md §6.7): every value,
 * dependency names included, except GRID, STACK, PLATFORM, PARENT_STACK and variables with
 * `vault` in from or to. New reference. */
json_t *vars_stored(const struct vars *v);

#endif
