/* cli/output.c -- tables, YAML, spinners, errors, prompts; see output.h. */
#include "cli/output.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define COLOR_RED "\033[31m"
#define COLOR_GREEN "\033[32m"
#define COLOR_YELLOW "\033[33m"
#define COLOR_RESET "\033[0m"

/* Appends to buffers without a cap, which cannot fail short of a size_t overflow. */
static void bput(struct buf *b, const char *s, size_t n)
{
    if (buf_append(b, s, n) != ST_OK)
        bug_fail(__FILE__, __LINE__, "append to an uncapped buffer failed");
}

static void bputs(struct buf *b, const char *s)
{
    bput(b, s, strlen(s));
}

int output_tty(int fd)
{
    const char *simple = getenv("KONTENA_SIMPLE_TERM");

    return isatty(fd) && !(simple && *simple);
}

/* ---- tables ---- */

struct table {
    size_t ncols;
    char **cells; /* row-major; the header is row 0 */
    size_t nrows; /* including the header */
};

struct table *table_create(const char *const *headers, size_t ncols)
{
    struct table *t = xcalloc(1, sizeof(*t));

    t->ncols = ncols;
    table_add(t, headers);
    for (size_t i = 0; i < ncols; i++)
        for (char *p = t->cells[i]; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
    return t;
}

void table_destroy(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

void table_add(struct table *t, const char *const *cells)
{
    t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = xstrdup(cells[i] ? cells[i] : "");
    t->nrows++;
}

size_t table_rows(const struct table *t)
{
    return t->nrows - 1;
}

/* Display width of UTF-8 text: one column per code point (continuation bytes skipped). */
static size_t text_width(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

void table_print(const struct table *t, FILE *out)
{
    size_t *width = xcalloc(t->ncols, sizeof(*width));
    struct buf line = BUF_INIT;

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        buf_reset(&line);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];

            bputs(&line, cell);
            if (c + 1 < t->ncols)
                for (size_t pad = text_width(cell); pad < width[c] + 2; pad++)
                    bput(&line, " ", 1);
        }
        while (line.len && line.ptr[line.len - 1] == ' ')
            line.ptr[--line.len] = '\0';
        fprintf(out, "%s\n", line.len ? line.ptr : "");
    }
    buf_release(&line);
    free(width);
}

/* ---- YAML ---- */

static void yaml_scalar(const json_t *v, struct buf *b)
{
    char num[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        bput(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        bputs(b, num);
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        bputs(b, num);
        break;
    case JSON_TRUE:
        bputs(b, "true");
        break;
    case JSON_FALSE:
        bputs(b, "false");
        break;
    default: /* null: nothing after "key:" */
        break;
    }
}

static void indent_to(struct buf *b, const char *prefix, int indent)
{
    bputs(b, prefix);
    for (int i = 0; i < indent; i++)
        bput(b, " ", 1);
}

static int is_container(const json_t *v)
{
    return (json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v));
}

static void yaml_node(const json_t *v, const char *prefix, int indent, struct buf *b);

/* A value after "key:" or "-": nested lines, an empty {} / [], or " scalar". */
static void yaml_value(const json_t *v, const char *prefix, int indent, struct buf *b)
{
    if (is_container(v)) {
        bput(b, "\n", 1);
        /* Psych puts a mapping's list items at the key's own indentation. */
        yaml_node(v, prefix, json_is_array(v) ? indent : indent + 2, b);
        return;
    }
    if (json_is_object(v))
        bputs(b, " {}");
    else if (json_is_array(v))
        bputs(b, " []");
    else if (!json_is_null(v)) {
        bput(b, " ", 1);
        yaml_scalar(v, b);
    }
    bput(b, "\n", 1);
}

static void yaml_node(const json_t *v, const char *prefix, int indent, struct buf *b)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, item)
        {
            indent_to(b, prefix, indent);
            bputs(b, key);
            bput(b, ":", 1);
            yaml_value(item, prefix, indent, b);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (is_container(item)) {
                /* Render the item two columns deeper, then turn the first line's extra
                 * indentation into the "- " marker. */
                size_t start = b->len + strlen(prefix) + (size_t)indent;
                yaml_node(item, prefix, indent + 2, b);
                b->ptr[start] = '-';
                continue;
            }
            indent_to(b, prefix, indent);
            bput(b, "-", 1);
            yaml_value(item, prefix, indent, b);
        }
    } else {
        indent_to(b, prefix, indent);
        yaml_scalar(v, b);
        bput(b, "\n", 1);
    }
}

void yaml_render(const json_t *v, const char *prefix, struct buf *b)
{
    yaml_node(v, prefix, 0, b);
    /* Lines of null values end in "key:" already; nothing else leaves trailing spaces. */
}

/* ---- errors ---- */

static struct {
    int on;
    int tty;
    int frame;
    int64_t last_ms;
    char *msg;
} spin;

static void vreport(const char *tag, const char *color, const char *fmt, va_list ap)
{
    int colour = output_tty(STDERR_FILENO);

    if (spin.on)
        spinner_fail();
    fflush(stdout);
    fprintf(stderr, " %s%s%s ", colour ? color : "", tag, colour ? COLOR_RESET : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport("[error]", COLOR_RED, fmt, ap);
    va_end(ap);
    return 1;
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport("[warn]", COLOR_YELLOW, fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *path, const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "ERROR: %s\n\nSee: 'kontena%s%s --help'\n", msg, *path ? " " : "", path);
    return 1;
}

/* ---- spinners ---- */

static const char spin_frames[] = "\\|/-";

void spinner_start(int silent, const char *fmt, ...)
{
    va_list ap;
    int n;

    BUG_ON(spin.on);
    if (silent)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    spin.msg = xmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(spin.msg, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    spin.on = 1;
    spin.tty = output_tty(STDOUT_FILENO);
    spin.frame = 0;
    spin.last_ms = time_mono_ms();
    if (spin.tty)
        printf("\r    %c %s .. ", spin_frames[0], spin.msg);
    else
        printf("* %s.. ", spin.msg);
    fflush(stdout);
}

void spinner_tick(void)
{
    int64_t now;

    if (!spin.on || !spin.tty)
        return;
    now = time_mono_ms();
    if (now - spin.last_ms < 100)
        return;
    spin.last_ms = now;
    spin.frame = (spin.frame + 1) % 4;
    printf("\r    %c %s .. ", spin_frames[spin.frame], spin.msg);
    fflush(stdout);
}

static void spinner_end(const char *tag, const char *color, const char *word)
{
    if (!spin.on)
        return;
    if (spin.tty)
        printf("\r\033[K %s%s%s %s\n", color, tag, COLOR_RESET, spin.msg);
    else
        printf("%s\n", word);
    fflush(stdout);
    FREE_AND_NULL(spin.msg);
    spin.on = 0;
}

void spinner_done(void)
{
    spinner_end("[done]", COLOR_GREEN, "done");
}

void spinner_fail(void)
{
    spinner_end("[fail]", COLOR_RED, "fail");
}

int spinner_active(void)
{
    return spin.on;
}

/* ---- prompts ---- */

static struct termios saved_termios;
static volatile sig_atomic_t echo_off;

static void restore_echo(int sig)
{
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
    signal(sig, SIG_DFL);
    raise(sig);
}

static char *getline_stripped(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);

    if (n == -1) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

char *prompt_line(const char *prompt, int echo)
{
    struct termios quiet;
    void (*old_int)(int) = SIG_DFL, (*old_term)(int) = SIG_DFL;
    char *answer;

    if (!isatty(STDIN_FILENO))
        return NULL;
    fputs(prompt, stdout);
    fflush(stdout);
    if (!echo && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
        quiet = saved_termios;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        old_int = signal(SIGINT, restore_echo);
        old_term = signal(SIGTERM, restore_echo);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0)
            echo_off = 1;
    }
    answer = getline_stripped();
    if (echo_off) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
        echo_off = 0;
        signal(SIGINT, old_int);
        signal(SIGTERM, old_term);
        fputc('\n', stdout);
    }
    return answer;
}

char *read_stdin_line(void)
{
    return getline_stripped();
}

/* ---- confirmations ---- */

int confirm_command(const char *name, int force)
{
    char *prompt, *answer;
    int ok;

    if (force)
        return 0;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return cli_error("Command requires --force");
    printf("Destructive command. To proceed, type \"%s\" or re-run this command with --force "
           "option.\n",
           name);
    prompt = xasprintf("Enter '%s' to confirm: ", name);
    answer = prompt_line(prompt, 1);
    free(prompt);
    ok = answer && !strcmp(answer, name);
    free(answer);
    if (!ok)
        return cli_error("Confirmation did not match %s. Aborted command.", name);
    return 0;
}

int confirm(const char *question, int force)
{
    char *prompt, *answer;
    int ok;

    if (force)
        return 0;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return cli_error("Command requires --force");
    if (!question)
        question = "Destructive command. You can skip this prompt by running this command with "
                   "--force option. Are you sure?";
    prompt = xasprintf("%s (y/N) ", question);
    answer = prompt_line(prompt, 1);
    free(prompt);
    ok = answer && (!strcmp(answer, "y") || !strcmp(answer, "Y") || !strcmp(answer, "yes"));
    free(answer);
    if (!ok)
        return cli_error("Aborted command.");
    return 0;
}
