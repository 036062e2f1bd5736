/* cli/output.h -- what the CLI prints: tables, spinners, errors, prompts and confirmations
 * (cli.md §1.2, §1.3).
 *
 * Colours are used only when the stream is a terminal and KONTENA_SIMPLE_TERM is unset.
 * Spinners and prompts go to stdout, errors and warnings to stderr.
 */
#ifndef CLI_OUTPUT_H
#define CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"

/* A table: upper-case header row, columns padded to their widest cell plus two spaces,
 * trailing spaces stripped, no borders. An empty table prints the header line only. */
struct table;
/* headers are copied and upper-cased ("resource_type" -> "RESOURCE_TYPE"). */
struct table *table_create(const char *const *headers, size_t ncols);
void table_destroy(struct table *t); /* NULL is fine */
/* Add a row of ncols cells (copied); a NULL cell prints as empty. */
void table_add(struct table *t, const char *const *cells);
size_t table_rows(const struct table *t);
void table_print(const struct table *t, FILE *out);

/* Render v as YAML lines (Ruby's to_yaml without the "---" line), each line prefixed by
 * `prefix` ("\t" for API errors), into b: objects as "key: value" / "key:" + nested lines
 * two spaces deeper, arrays as "- item" at the key's indentation. */
void yaml_render(const json_t *v, const char *prefix, struct buf *b);

/* Whether fd is a terminal that may get colours and spinners. */
int output_tty(int fd);

/* " [error] <message>" on stderr; returns 1 (the exit status) so commands can
 * `return cli_error(...)`. */
int cli_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* " [warn] <message>" on stderr. */
void cli_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Usage error: "ERROR: <message>\n\nSee: 'kontena <path> --help'" on stderr; returns 1. */
int cli_usage_error(const char *path, const char *msg);

/* Spinner around a slow step (one at a time). On a terminal "    *   <msg> .. " with a
 * rotating character, replaced by " [done] <msg>" or " [fail] <msg>"; elsewhere
 * "* <msg>.. " and then "done" or "fail" on the same line. A silent spinner prints
 * nothing. spinner_tick() turns the wheel (the HTTP client calls it while waiting). */
void spinner_start(int silent, const char *fmt, ...) PRINTF_LIKE(2, 3);
void spinner_tick(void);
void spinner_done(void);
void spinner_fail(void);
/* Whether a spinner is running; errors end it with "fail" first. */
int spinner_active(void);

/* Ask for a line on the terminal (prompt on stdout); echo off for passwords. Returns the
 * answer without its newline (caller frees) or NULL when stdin is not a terminal or at EOF. */
char *prompt_line(const char *prompt, int echo);
/* Read one line from stdin (for --password-stdin), without the newline; NULL on EOF. */
char *read_stdin_line(void);

/* Destructive-command confirmations. Both return 0 to go ahead and 1 (after printing the
 * error) to stop. force skips them. Without a terminal on stdin and stdout they fail with
 * "Command requires --force". */
int confirm_command(const char *name, int force); /* type the name to confirm */
int confirm(const char *question, int force);     /* yes/no; NULL for the default question */

#endif
