/* cli/stackfile/stackfile.h -- reading a kontena.yml: from source text to the JSON body the
 * master takes (reference/stack-file.md, the whole of it).
 *
 * Pipeline (stack-file.md §2, in this order): raw YAML parse for stack/version/meta/depends;
 * internal parse (`${}` with GRID/STACK/PLATFORM only, `$$`) for `variables:`; variable set-up
 * and resolution (vars.h); Liquid over the whole raw text (liquid.h); `${}` substitution with
 * the resolved values; `$$` → `$`; YAML parse (ynode.h); schema validation; conversion of
 * every service to the master's JSON. `depends:` children are loaded the same way, recursively,
 * as <parent>-<dependency> (children first).
 *
 * Two kinds of findings, both flat JSON arrays of
 *   {"file": "<basename>" or "" (variables), "path": "services.redis.omg",
 *    "keys": ["services","redis","omg"], "line": 7 (1-based; 0 when unknown),
 *    "message": "key not expected"}
 * errors (the stack cannot be installed) and notifications (warnings). Hard failures that
 * stop reading (missing file, YAML syntax, Liquid errors, undeclared `${x}`, a resolver
 * failure) are returned as a status with the message in struct err instead.
 */
#ifndef CLI_STACKFILE_STACKFILE_H
#define CLI_STACKFILE_STACKFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/stackfile/vars.h"
#include "common/err.h"

struct stackfile_opts {
    const char *source;      /* FILE argument (path or http(s) URL); NULL → "kontena.yml" */
    const char *name;        /* installed name (-n); NULL → the name part of `stack:` */
    const char *grid;        /* GRID; NULL → "validate" (offline validation) */
    const char *platform;    /* PLATFORM; NULL → grid, or "validate-platform" when grid is NULL */
    const char *parent_name; /* PARENT_STACK when loading a child on its own; NULL for a root */
    const json_t *values;    /* -v / --values-from: name → value; "dep.name" routes to children */
    const json_t *defaults;  /* upgrade: the installed stacks' stored values, same naming */
    int skip_dependencies;   /* do not load depends: children (their names stay variables) */
    const struct vars_host *host; /* NULL → offline, not interactive */
    FILE *msg; /* "Value for x is not set. Substituting with an empty string." (NULL → stdout) */
    int no_network; /* never fetch URLs or registry stacks (fuzzing, tests): "Not found" */
};

struct stackfile {
    char *source;   /* absolute path, or the URL */
    char *name;     /* installed name */
    char *dep_name; /* the depends: entry this child came from; NULL for the root */
    char *stack;    /* the `stack:` value without version ("user/name") */
    char *version;  /* stack version ("0.0.1" by default) */
    char *raw;      /* the file's text as read */
    json_t *doc;    /* the fully interpolated document; NULL if it could not be built */
    json_t *payload; /* the install/upgrade body (stack-file.md §11); NULL when errors */
    json_t *errors;  /* findings, [] when valid */
    json_t *notifications;
    struct stackfile **children; /* depends: entries, in file order */
    size_t nchildren;
};

/* Read, render and validate a stack file and its children. ST_OK also when the file has
 * validation errors (they are in sf->errors, see stackfile_valid()); anything else is a
 * hard failure with e set, e.g. "Not found: no such file foo.yml or invalid uri scheme",
 * "Error while parsing kontena.yml : (3:1) ...", "Liquid error: undefined variable x
 * (line 4)", "Undeclared variable 'x' in kontena.yml:12 -- image: ${x}" (1-based line). */
enum status stackfile_load(const struct stackfile_opts *o, struct stackfile **out,
                           struct err *e);
/* The same for a root stack file whose text is already in memory; path names it (findings,
 * messages) and its directory is where relative depends:, extends.file and env_file paths
 * start. o->source is ignored. Text after a NUL byte is ignored. */
enum status stackfile_load_text(const struct stackfile_opts *o, const char *path,
                                const char *text, size_t len, struct stackfile **out,
                                struct err *e);
void stackfile_free(struct stackfile *sf);
/* 1 when neither sf nor any child has errors. */
int stackfile_valid(const struct stackfile *sf);

/* Append a finding to list. keys: NULL-terminated path segments. line 0 = unknown. */
void sf_finding(json_t *list, const char *file, int line, const char *message, ...)
    __attribute__((sentinel));
/* The original's nested YAML rendering of findings (stack-file.md §9): a list with one item
 * per file ("- kontena.yml:" then the nested keys), variable findings as "- variables:";
 * each leaf message is followed by " (line N)" when the line is known. Caller frees. */
char *stackfile_findings_yaml(const json_t *findings);

#endif
