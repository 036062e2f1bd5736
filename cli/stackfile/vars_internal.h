/* cli/stackfile/vars_internal.h -- what the parts of the variables module share (not for
 * anyone else; the interface is vars.h).
 *
 *   vars.c         definitions (vars_new), conditions, on-demand resolution, setters, accessors
 *   vars_type.c    conversion of a value to its type, and validation (§6.2)
 *   vars_resolve.c the non-interactive resolvers and the evaluate calculator (§6.3)
 *   vars_prompt.c  the interactive resolvers: prompt, service_link, certificates,
 *                  vault_cert_prompt
 */
#ifndef CLI_STACKFILE_VARS_INTERNAL_H
#define CLI_STACKFILE_VARS_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "cli/stackfile/vars.h"
#include "common/err.h"

#define MAX_DEPTH 200           /* nested on-demand resolution */
#define MAX_RANDOM_LEN 65536    /* random_string length cap */
#define MAX_FILE_SIZE (4 << 20) /* file: resolver cap */
#define MAX_LINE 65536          /* prompt answer cap */
#define MAX_ATTEMPTS 10         /* invalid prompt answers before giving up */

/* For buffers without a cap, which cannot fail (allocation aborts). */
#define BUF_OK(call) BUG_ON((call) != ST_OK)

enum vtype { T_STRING, T_INTEGER, T_BOOLEAN, T_ENUM, T_URI, T_ARRAY };

enum vstate { UNRESOLVED, RESOLVING, DONE };

/* A resolver (`from:`) or setter (`to:`) entry: name and its hint (owned, NULL for none). */
struct hinted {
    char *name;
    json_t *hint;
};

struct var {
    char *name;
    const json_t *def; /* borrowed from vars->defs; NULL for builtins */
    int builtin;
    enum vtype type;
    int required;
    json_t *cli;  /* command-line value (owned), wins over def's value: */
    json_t *dflt; /* default (owned) */
    struct hinted *from;
    size_t nfrom;
    struct hinted *to;
    size_t nto;
    json_t *enum_opts; /* enum: normalised [{value,label,description}] (owned) */
    enum vstate state;
    int skipped;
    json_t *value;    /* owned; NULL until resolved */
    char *conv_error; /* the value could not be converted to the type */
};

struct vars {
    json_t *defs; /* our deep copy of the definitions */
    struct var *v;
    size_t n;
    /* During vars_run only. */
    const struct vars_host *host;
    struct err *e;
    int depth;
    int nested_fail; /* e already holds a complete message from a nested resolution */
};

/* A resolver: *out gets a new reference, or stays NULL for "no value". Errors of its own go
 * to re; when a nested resolution failed instead, the message is already in v->e and
 * v->nested_fail is set. */
typedef enum status (*resolver_fn)(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                   struct err *re);

/* vars.c: helpers. Option getters treat a null option as absent. */
const json_t *vars__opt(const struct var *x, const char *key);
int vars__opt_bool(const struct var *x, const char *key, int dflt);
int vars__opt_int(const struct var *x, const char *key, long long *out);
struct var *vars__find(const struct vars *v, const char *name);
/* The value as text the way the original's to_s showed it ("" for null, compact JSON for
 * lists and mappings). Caller frees. */
char *vars__to_text(const json_t *j);
/* A JSON string from bytes: NULL when they are not UTF-8. */
json_t *vars__text_json(const char *s, size_t n);
int vars__is_blank(const char *s);
size_t vars__utf8_len(const char *s, size_t n);
int vars__values_equal(const json_t *a, const json_t *b); /* JSON equality, 1 == 1.0 */
int vars__nonempty_string(const json_t *h);
int vars__text_is_false(const json_t *j);
/* vars.c: resolution. value_of resolves name first; *out is borrowed (json_null() when
 * undeclared, *declared then 0). cond_eval: any = skip_if semantics (a list or mapping is
 * true when any part is), else all parts. */
enum status vars__resolve_var(struct vars *v, struct var *x);
enum status vars__value_of(struct vars *v, const char *name, const json_t **out, int *declared);
enum status vars__cond_eval(struct vars *v, const json_t *c, int any, int *res);

/* vars_type.c */
int vars__parse_int(const char *s, long long *out); /* whole string, Ruby-style underscores */
int vars__bool_of(const struct var *x, const json_t *raw); /* boolean type's truth of raw */
/* raw (borrowed, NULL = null) converted to x's type; NULL with *why (caller frees) when it
 * cannot be. */
json_t *vars__convert(const struct var *x, const json_t *raw, char **why);
json_t *vars__validate(const struct var *x); /* errors object, NULL when valid */

/* vars_resolve.c: run resolver r of x, wrapping its own errors as
 * "Resolver '<name>' for '<var>' : <message>" in v->e. */
int vars__all_digits(const char *s);
enum status vars__run_resolver(struct vars *v, struct var *x, const struct hinted *r, json_t **out);

/* vars_prompt.c (give no value unless v->host->interactive) */
enum status vars__r_prompt(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                           struct err *re);
enum status vars__r_service_link(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                 struct err *re);
enum status vars__r_certificates(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                 struct err *re);
enum status vars__r_vault_cert_prompt(struct vars *v, struct var *x, const json_t *hint,
                                      json_t **out, struct err *re);

#endif
