/* cli/stackfile/findings.c -- validation findings: the flat list and the original's nested
 * YAML rendering (stackfile.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/stackfile.h"
#include "cli/stackfile/ynode.h"
#include "common/xmalloc.h"
#include "common/banned.h"

void sf_finding(json_t *list, const char *file, int line, const char *message, ...)
{
    json_t *keys = json_array();
    char *path = xstrdup("");
    va_list ap;

    va_start(ap, message);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
        char *p = xasprintf("%s%s%s", path, *path ? "." : "", k);
        free(path);
        path = p;
        json_array_append_new(keys, json_string(k));
    }
    va_end(ap);
    json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:i, s:s}", "file", file ? file : "",
                                          "path", path, "keys", keys, "line", line, "message",
                                          message ? message : ""));
    free(path);
}

/* Put message at keys[...] inside obj, creating objects on the way. A key that already
 * holds a message gets a list of messages. */
static void nest(json_t *obj, json_t *keys, size_t i, const char *msg)
{
    const char *k = json_string_value(json_array_get(keys, i));
    json_t *cur = json_object_get(obj, k);

    if (i + 1 == json_array_size(keys)) {
        if (!cur) {
            json_object_set_new(obj, k, json_string(msg));
        } else if (json_is_array(cur)) {
            json_array_append_new(cur, json_string(msg));
        } else if (json_is_string(cur)) {
            json_object_set_new(obj, k, json_pack("[O,s]", cur, msg));
        }
        return;
    }
    if (!json_is_object(cur)) {
        cur = json_object();
        json_object_set_new(obj, k, cur);
    }
    nest(cur, keys, i + 1, msg);
}

char *stackfile_findings_yaml(const json_t *findings)
{
    json_t *out = json_array();
    json_t *byfile = json_object(); /* file → nested object, in order of first appearance */
    size_t i;
    json_t *f;

    json_array_foreach(findings, i, f) {
        const char *file = json_string_value(json_object_get(f, "file"));
        json_t *keys = json_object_get(f, "keys");
        int line = (int)json_integer_value(json_object_get(f, "line"));
        const char *msg = json_string_value(json_object_get(f, "message"));
        char *text = line > 0 ? xasprintf("%s (line %d)", msg, line) : xstrdup(msg);
        json_t *tree = json_object_get(byfile, file ? file : "");

        if (!tree) {
            tree = json_object();
            json_object_set_new(byfile, file ? file : "", tree);
        }
        if (json_array_size(keys) == 0) {
            json_t *k = json_pack("[s]", "file");
            nest(tree, k, 0, text);
            json_decref(k);
        } else {
            nest(tree, keys, 0, text);
        }
        free(text);
    }
    const char *file;
    json_t *tree;
    json_object_foreach(byfile, file, tree) {
        if (!*file)
            json_array_append(out, tree);
        else
            json_array_append_new(out, json_pack("{s:[O]}", file, tree));
    }
    char *y = yaml_dump(out);
    json_decref(out);
    json_decref(byfile);
    /* Drop the document start marker: findings are printed after a header line. */
    if (strncmp(y, "---\n", 4) == 0)
        memmove(y, y + 4, strlen(y + 4) + 1);
    return y;
}
