/* cli/stackfile/ynode.h -- YAML documents as trees that remember where each node was written.
 *
 * libyaml's event parser builds the tree; every node keeps its 1-based line and column so
 * validation errors can name them. Scalars are typed by YAML 1.1 rules, as the original's
 * Ruby (Psych) did: plain `yes`/`no`/`on`/`off`/`true`/`false` (any case form Psych takes)
 * are booleans, `~`/`null`/empty are null, decimal/0x/0o/0b and base-60 (`22:22` → 1342)
 * integers, floats (`1.0`, `.5`, `1e3`, `.inf`, `.nan`); quoted scalars and explicit `!!str`
 * are always strings. Anchors and aliases are expanded (deep copies, with a cap on the total
 * number of nodes so that "billion laughs" documents fail cleanly), and merge keys
 * (`<<: *a`, `<<: [*a, *b]`) are applied; a later explicit key wins over a merged one.
 * Duplicate keys: the last one wins (as Psych).
 */
#ifndef CLI_STACKFILE_YNODE_H
#define CLI_STACKFILE_YNODE_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

enum ynode_kind { YN_SCALAR, YN_MAP, YN_SEQ };
enum yscalar { YS_NULL, YS_BOOL, YS_INT, YS_FLOAT, YS_STR };

struct ynode {
    enum ynode_kind kind;
    enum yscalar stype; /* scalars: the resolved type */
    char *text;         /* scalars: the value as written (unescaped), "" for an empty null */
    long long ival;     /* YS_INT */
    double fval;        /* YS_FLOAT */
    int bval;           /* YS_BOOL */
    size_t len;         /* YN_MAP: number of pairs, YN_SEQ: number of items */
    struct ynode **keys; /* YN_MAP: key nodes (scalars), in document order; NULL for YN_SEQ */
    struct ynode **vals; /* YN_MAP: values; YN_SEQ: items */
    int line, col;       /* 1-based position where the node starts */
};

/* Parse the first document of text. An empty document gives a YS_NULL scalar. A syntax
 * error gives ST_INVALID with e = "(<line>:<col>) <libyaml problem> <context>" (1-based);
 * callers prefix it ("Error while parsing kontena.yml : ..."). */
enum status ynode_parse(const char *text, size_t len, struct ynode **out, struct err *e);
void ynode_free(struct ynode *n);
/* Deep copy. */
struct ynode *ynode_dup(const struct ynode *n);

/* The value of key in a mapping, NULL when n is not a mapping or has no such key. */
const struct ynode *ynode_get(const struct ynode *map, const char *key);
/* The key node of key in a mapping (for its line), or NULL. */
const struct ynode *ynode_key(const struct ynode *map, const char *key);
/* Ruby class name of the node's value, for messages such as "must be a mapping, not
 * String": "Hash", "Array", "String", "Integer", "Float", "TrueClass", "FalseClass",
 * "NilClass". */
const char *ynode_class(const struct ynode *n);
/* Scalar truthiness helpers. */
int ynode_is_null(const struct ynode *n); /* NULL pointer or a null scalar */
int ynode_is_str(const struct ynode *n);  /* a string scalar */

/* The node as JSON: mappings → objects (document order), sequences → arrays, scalars by
 * their resolved type. Non-string mapping keys are converted to their text. */
json_t *ynode_to_json(const struct ynode *n);

/* YAML text of a JSON value, as `stack validate` prints the interpolated document: starts
 * with "---\n", block style, two-space indent, strings quoted as Psych (the original's Ruby
 * to_yaml) quotes them: whatever would not read back as the same string ("22:22", "yes",
 * "1.0", "") and, like Psych, any string starting with a non-word character ("/data").
 * Caller frees. */
char *yaml_dump(const json_t *v);

#endif
