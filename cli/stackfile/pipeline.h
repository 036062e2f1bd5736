/* cli/stackfile/pipeline.h -- the pipeline's own cross-file helpers (stackfile.c, source.c,
 * subst.c); not for schema.c / convert.c, which see internal.h only. */
#ifndef CLI_STACKFILE_PIPELINE_H
#define CLI_STACKFILE_PIPELINE_H

#include <jansson.h>
#include <stdio.h>

#include "common/err.h"

/* Stack files and documents fetched over HTTP are capped at this size. */
#define SF_MAX_FILE (4u << 20)

/* source.c: one stack file's text and where it came from (stack-file.md §1). */
struct sf_source {
    char *abs;      /* absolute path, URL, or the registry name as given */
    char *base;     /* basename of the path (or of the URL's path) */
    char *dir;      /* directory relative paths in this file are taken from */
    char *registry; /* "file://" or the registry base URL */
    char *text;     /* NUL-terminated; never contains a NUL byte */
    size_t len;
};

/* Resolve and read src: a local file (relative to refdir, or the working directory when
 * refdir is NULL), a registry name `user/stack[:version]` (only with
 * KONTENA_STACK_REGISTRY_URL set), or an http(s) URL. With no_network, URLs and registry
 * names are not fetched. ST_NOTFOUND "Not found: no such file <src> or invalid uri scheme";
 * ST_IO / ST_INVALID for fetch and read failures. */
enum status sf__source_read(const char *src, const char *refdir, int no_network,
                            struct sf_source *out, struct err *e);
/* The same for text already in memory, named path (made absolute). */
void sf__source_mem(const char *path, const char *text, size_t len, struct sf_source *out);
void sf__source_release(struct sf_source *s);

/* subst.c: `${}` substitution (stack-file.md §7). lookup returns 1 when name is declared
 * (*val may be NULL or json null: "not set"), 0 when it is not. */
typedef int (*sf_lookup_fn)(void *arg, const char *name, const json_t **val);

/* Substitute every $name / ${name} of text, line by line, skipping lines whose trimmed text
 * starts with "interpolate:" or "evaluate:". warn (may be NULL) gets "Value for x is not set.
 * Substituting with an empty string." per empty value. An undeclared name is ST_INVALID
 * "Undeclared variable 'x' in <file>:<line> -- <line text>" (1-based line). *out is
 * malloc'd on ST_OK. */
enum status sf__subst(const char *text, const char *file, sf_lookup_fn lookup, void *arg,
                      FILE *warn, char **out, struct err *e);
/* Every "$$" → "$". New string. */
char *sf__dollars(const char *text);
/* Ruby's value.to_s / value.inspect of a JSON value. New strings. */
char *sf__ruby_to_s(const json_t *v);
char *sf__ruby_inspect(const json_t *v);

#endif
