/* cli/stackfile/liquid.h -- the Liquid subset stack files use (reference/stack-file.md §8).
 *
 * Strict mode, like the original (Liquid 4, strict variables and filters):
 *   {{ expr | filter: arg, arg | ... }}   output; expr is a literal ("s", 's', 12, 1.5, true,
 *                                         false, nil/null, empty/blank), a variable, or a
 *                                         lookup (a.b, a[0], a["k"], a.size, a.first, a.last)
 *   {% if c %} {% elsif c %} {% else %} {% endif %}, {% unless c %} ... {% endunless %}
 *       c: expr [op expr] joined by `and` / `or` (evaluated right to left, as Liquid);
 *       ops ==, !=, <>, <, >, <=, >=, contains; only nil and false are falsy
 *   {% for x in (a..b) %} / {% for x in list %} ... {% else %} ... {% endfor %}
 *       (bounds may be variables; limit:, offset:, reversed; forloop.index/index0/first/last/
 *       length; {% break %} {% continue %})
 *   {% assign x = expr | filters %}, {% capture x %}...{% endcapture %}
 *   {% raw %}...{% endraw %}, {% comment %}...{% endcomment %}
 *   whitespace control {{- -}} {%- -%}
 * Filters (the standard Liquid 4 set the stack files used): upcase, downcase, capitalize,
 * strip, lstrip, rstrip, strip_newlines, newline_to_br, escape, append, prepend, remove,
 * remove_first, replace, replace_first, split, join, size, first, last, sort, uniq, reverse,
 * compact, map, slice, truncate, truncatewords, default, plus, minus, times, divided_by,
 * modulo, abs, ceil, floor, round, at_least, at_most, url_encode, url_decode, base64_encode,
 * base64_decode, concat, date (only "%s" and strftime of "now"), json (not Liquid 4; harmless).
 *
 * Errors (ST_INVALID, message in e, line 1-based):
 *   "Liquid error: undefined variable <name>"          (line N) appended as " (line N)"
 *   "Liquid error: undefined filter <name>"
 *   "Liquid syntax error: Unknown tag '<tag>'"
 *   "Liquid syntax error: '<tag>' tag was never closed", "... Unexpected '<tag>'", ...
 * Rendering never recurses without bound: nesting depth and output size are capped (errors
 * "Liquid error: nesting too deep", "Liquid error: output too large").
 */
#ifndef CLI_STACKFILE_LIQUID_H
#define CLI_STACKFILE_LIQUID_H

#include <jansson.h>

#include "common/err.h"

/* Render tmpl with vars (a JSON object: name → value; null values are defined and render
 * as ""). On ST_OK *out is the malloc'd result; otherwise e holds the message. */
enum status liquid_render(const char *tmpl, const json_t *vars, char **out, struct err *e);

#endif
