/* cli/stackfile/internal.h -- what the parts of the stack file reader share (not for the CLI).
 *
 *   stackfile.c  the pipeline, source resolution, `${}` substitution, depends  (uses all)
 *   schema.c     strict validation of the interpolated document (§3, §4, §9 of stack-file.md)
 *   convert.c    normalisation and conversion of services/volumes to the master's JSON (§4, §11)
 *   vars.c, liquid.c, ynode.c  see their headers
 */
#ifndef CLI_STACKFILE_INTERNAL_H
#define CLI_STACKFILE_INTERNAL_H

#include <jansson.h>

#include "cli/stackfile/stackfile.h"
#include "cli/stackfile/vars.h"
#include "cli/stackfile/ynode.h"
#include "common/err.h"

/* One file being processed (the stack file itself, or a file named by extends.file). */
struct sf_ctx {
    const char *path; /* absolute path (or URL) of this file */
    const char *base; /* its basename: findings are grouped under it */
    const char *dir;  /* directory that env_file, extends.file and build paths are relative to */
    const char *stack_name; /* installed name (STACK) */
    struct vars *vars;      /* resolved variables (only_if / skip_if, extends of other files) */
    json_t *errors;         /* findings lists (stackfile.h) */
    json_t *notes;
    const struct stackfile_opts *opts;
    /* Read another file through the same pipeline (Liquid, `${}` with these variables,
     * YAML parse) and return its interpolated tree; *abs gets its absolute path. Used by
     * extends.file. Set by stackfile.c. */
    enum status (*load_doc)(struct sf_ctx *cx, const char *path, struct ynode **doc,
                            char **abs, struct err *e);
    void *pipeline; /* stackfile.c's own state */
};

/* schema.c: check doc against the schema, appending to cx->errors / cx->notes.
 * is_extends_file: the file was named by extends.file (it need not have `stack:`). */
void sf_schema_validate(struct sf_ctx *cx, const struct ynode *doc, int is_extends_file);

/* convert.c: given a valid doc, fill payload (already holding stack, version, name,
 * registry, source, variables, metadata, parent, dependencies) with "services" (array of
 * master service objects in file order, only_if/skip_if applied, extends merged),
 * "volumes", "expose", "labels". Findings found only now (e.g. "image is missing",
 * extends errors reported by file) go to cx->errors. Hard failures (extends target not
 * found, unreadable env_file) → status + e. */
enum status sf_convert(struct sf_ctx *cx, const struct ynode *doc, json_t *payload,
                       struct err *e);

/* Shell-style word splitting for `command:` (POSIX sh quoting: '...', "...", backslash).
 * Returns a JSON array of strings, or NULL with e set on an unterminated quote. */
json_t *sf_shell_split(const char *s, struct err *e);

#endif
