/* cli/stackfile/vars_prompt.c -- the interactive resolvers: prompt (text, enum menu, yes/no,
 * hidden input), service_link, certificates and vault_cert_prompt (stack-file.md §6.3). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "cli/stackfile/vars_internal.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* ---------------------------------------------------------------------------------------- */
/* Prompts */

static FILE *p_in(const struct vars *v)
{
    return v->host->in ? v->host->in : stdin;
}

static FILE *p_out(const struct vars *v)
{
    return v->host->out ? v->host->out : stderr;
}

/* One line of input without its newline; -1 at end of input. echo == 0 turns the terminal's
 * echo off while reading (only when input is a terminal). */
static int read_answer(struct vars *v, int echo, char **line)
{
    FILE *in = p_in(v), *out = p_out(v);
    int fd = fileno(in), c, restore = 0;
    struct termios old, quiet;
    struct buf b;

    fflush(out);
    if (!echo && fd != -1 && isatty(fd) && tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(fd, TCSANOW, &quiet) == 0; /* keeps type-ahead */
    }
    buf_init(&b, MAX_LINE);
    while ((c = getc(in)) != EOF && c != '\n') {
        char ch = (char)c;
        if (buf_append(&b, &ch, 1) != ST_OK)
            continue; /* over the cap: the rest of the line is dropped */
    }
    if (restore) {
        tcsetattr(fd, TCSANOW, &old);
        fputc('\n', out);
    }
    if (c == EOF && b.len == 0) {
        buf_release(&b);
        *line = NULL;
        return -1;
    }
    if (b.len && b.ptr[b.len - 1] == '\r')
        b.ptr[--b.len] = 0;
    *line = buf_take(&b);
    return 0;
}

static char *label_of(const struct var *x)
{
    const json_t *l = vars__opt(x, "label");
    return l ? vars__to_text(l) : xstrdup(x->name);
}

/* The question: "<hint> :" when the hint is a custom text, else "<verb> <label> :". */
static char *question(const struct var *x, const json_t *hint, const char *verb)
{
    char *l, *q;

    if (json_is_string(hint) && json_string_length(hint) &&
        strcmp(json_string_value(hint), x->name) != 0)
        return xasprintf("%s :", json_string_value(hint));
    if (hint && !json_is_string(hint) && !json_is_boolean(hint) && !json_is_null(hint)) {
        l = vars__to_text(hint);
        q = xasprintf("%s :", l);
        free(l);
        return q;
    }
    l = label_of(x);
    q = xasprintf("%s %s :", verb, l);
    free(l);
    return q;
}

/* A numbered menu; *choice gets 1..n, or 0 for "the default / nothing" (empty answer with
 * dflt 0, or end of input). */
static void menu(struct vars *v, const char *q, char **items, size_t n, size_t dflt, size_t *choice)
{
    FILE *out = p_out(v);
    char *line;

    fprintf(out, "%s\n", q);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %zu. %s\n", i + 1, items[i]);
    *choice = dflt;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        char *end;
        unsigned long k;
        if (dflt)
            fprintf(out, "Choose 1-%zu (%zu): ", n, dflt);
        else
            fprintf(out, "Choose 1-%zu: ", n);
        if (read_answer(v, 1, &line) != 0)
            return;
        if (!*line) {
            free(line);
            if (dflt)
                return;
            continue;
        }
        errno = 0;
        k = strtoul(line, &end, 10);
        if (!errno && end != line && !*end && k >= 1 && k <= n) {
            free(line);
            *choice = k;
            return;
        }
        fprintf(out, "Invalid choice '%s'\n", line);
        free(line);
    }
}

/* Several of items; *chosen gets a list of 0-based indices in menu order. */
static void menu_multi(struct vars *v, const char *q, char **items, size_t n, json_t **chosen)
{
    FILE *out = p_out(v);
    char *line;

    fprintf(out, "%s\n", q);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %zu. %s\n", i + 1, items[i]);
    *chosen = json_array();
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        char *p, *end;
        int ok = 1;
        unsigned char *pick = xcalloc(n, 1);
        fprintf(out, "Choose any of 1-%zu, separated by commas or spaces (empty for none): ", n);
        if (read_answer(v, 1, &line) != 0) {
            free(pick);
            return;
        }
        for (p = line; *p;) {
            unsigned long k;
            if (*p == ',' || isspace((unsigned char)*p)) {
                p++;
                continue;
            }
            errno = 0;
            k = strtoul(p, &end, 10);
            if (errno || end == p || k < 1 || k > n) {
                ok = 0;
                break;
            }
            pick[k - 1] = 1;
            p = end;
        }
        if (ok) {
            for (size_t i = 0; i < n; i++)
                if (pick[i])
                    json_array_append_new(*chosen, json_integer((json_int_t)i));
            free(pick);
            free(line);
            return;
        }
        fprintf(out, "Invalid choice '%s'\n", line);
        free(pick);
        free(line);
    }
}

static enum status prompt_text(struct vars *v, struct var *x, const char *q, json_t **out,
                               struct err *re)
{
    int echo = vars__opt_bool(x, "echo", 1);
    char *line, *d = NULL;

    if (x->dflt && echo)
        d = vars__to_text(x->dflt);
    fprintf(p_out(v), d && *d ? "%s (%s) " : "%s ", q, d);
    free(d);
    if (read_answer(v, echo, &line) != 0 || !*line) {
        free(line);
        if (x->dflt)
            *out = json_incref(x->dflt);
        return ST_OK;
    }
    *out = json_string(line);
    free(line);
    if (!*out)
        return err_set(re, ST_INVALID, "Answer is not valid UTF-8 text");
    return ST_OK;
}

static enum status prompt_bool(struct vars *v, struct var *x, const char *q, json_t **out)
{
    int d = x->dflt ? vars__bool_of(x, x->dflt) : 1;
    FILE *o = p_out(v);
    char *line;

    *out = json_boolean(d);
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        fprintf(o, "%s %s ", q, d ? "(Y/n)" : "(y/N)");
        if (read_answer(v, 1, &line) != 0)
            return ST_OK;
        for (char *p = line; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!*line) {
            free(line);
            return ST_OK;
        }
        if (!strcmp(line, "y") || !strcmp(line, "yes") || !strcmp(line, "true")) {
            free(line);
            json_decref(*out);
            *out = json_true();
            return ST_OK;
        }
        if (!strcmp(line, "n") || !strcmp(line, "no") || !strcmp(line, "false")) {
            free(line);
            json_decref(*out);
            *out = json_false();
            return ST_OK;
        }
        fprintf(o, "Invalid answer '%s', answer y or n\n", line);
        free(line);
    }
    return ST_OK;
}

static enum status prompt_enum(struct vars *v, struct var *x, const char *q, json_t **out,
                               struct err *re)
{
    size_t n = json_array_size(x->enum_opts), dflt = 0, choice, i;
    int other = vars__opt_bool(x, "can_be_other", 0);
    char **items = xcalloc(n + 1, sizeof(*items));
    char *dt = x->dflt ? vars__to_text(x->dflt) : NULL;
    const json_t *o;
    enum status st = ST_OK;

    json_array_foreach(x->enum_opts, i, o)
    {
        char *l = vars__to_text(json_object_get(o, "label"));
        char *d = vars__to_text(json_object_get(o, "description"));
        char *val = vars__to_text(json_object_get(o, "value"));
        items[i] = strcmp(l, d) ? xasprintf("%s (%s)", l, d) : xstrdup(l);
        if (dt && !dflt && strcmp(dt, val) == 0)
            dflt = i + 1;
        free(l);
        free(d);
        free(val);
    }
    if (other)
        items[n] = xstrdup("(Other)");
    menu(v, q, items, n + (other ? 1 : 0), dflt, &choice);
    if (choice >= 1 && choice <= n) {
        *out = json_deep_copy(json_object_get(json_array_get(x->enum_opts, choice - 1), "value"));
    } else if (choice == n + 1) {
        char *l = label_of(x), *q2 = xasprintf("Enter %s :", l);
        json_t *saved = x->dflt;
        x->dflt = NULL; /* the free-text answer has no default */
        st = prompt_text(v, x, q2, out, re);
        x->dflt = saved;
        free(q2);
        free(l);
    }
    for (i = 0; i <= n; i++)
        free(items[i]);
    free(items);
    free(dt);
    return st;
}

enum status vars__r_prompt(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                           struct err *re)
{
    char *q;
    enum status st;

    if (!v->host->interactive)
        return ST_OK;
    switch (x->type) {
    case T_ENUM:
        q = question(x, hint, "Select");
        st = prompt_enum(v, x, q, out, re);
        break;
    case T_BOOLEAN:
        q = question(x, hint, "Enable");
        st = prompt_bool(v, x, q, out);
        break;
    default:
        q = question(x, hint, "Enter");
        st = prompt_text(v, x, q, out, re);
        break;
    }
    free(q);
    return st;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return n == 0;
}

enum status vars__r_service_link(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                 struct err *re)
{
    const char *img = json_string_value(json_object_get(hint, "image"));
    const char *nm = json_string_value(json_object_get(hint, "name"));
    json_t *list, *ids = json_array();
    char **items = NULL;
    size_t n = 0, i, choice;
    const json_t *s;

    (void)re;
    if (!v->host->interactive || !v->host->service_list)
        goto out;
    list = v->host->service_list(v->host->ctx);
    json_array_foreach(list, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        const char *sn = json_string_value(json_object_get(s, "name"));
        const char *si = json_string_value(json_object_get(s, "image"));
        if (!id || (img && !(si && strstr(si, img))) || (nm && !(sn && strstr(sn, nm))))
            continue;
        items = xrealloc(items, (n + 2) * sizeof(*items));
        items[n++] = si ? xasprintf("%s (%s)", id, si) : xstrdup(id);
        json_array_append_new(ids, json_string(id));
    }
    json_decref(list);
    if (n == 0)
        goto out;
    if (!x->required)
        items[n] = xstrdup("<none>");
    menu(v, json_string_value(json_object_get(hint, "prompt")), items, n + !x->required, 0,
         &choice);
    if (choice >= 1 && choice <= n)
        *out = json_deep_copy(json_array_get(ids, choice - 1));
    for (i = 0; i < n + !x->required; i++)
        free(items[i]);
out:
    free(items);
    json_decref(ids);
    return ST_OK;
}

/* Multi-select over a list of strings from the master (certificates, vault secrets). */
static void pick_many(struct vars *v, const json_t *list, const char *q, int certs_only,
                      json_t **out)
{
    json_t *names = json_array(), *chosen = NULL;
    char **items = NULL;
    size_t n = 0, i;
    const json_t *it;

    json_array_foreach(list, i, it)
    {
        const char *s = json_string_value(it);
        if (!s || (certs_only && !contains_ci(s, "ssl") && !contains_ci(s, "cert")))
            continue;
        items = xrealloc(items, (n + 1) * sizeof(*items));
        items[n++] = xstrdup(s);
        json_array_append(names, (json_t *)it);
    }
    if (n) {
        menu_multi(v, q, items, n, &chosen);
        *out = json_array();
        json_array_foreach(chosen, i, it)
            json_array_append(*out, json_array_get(names, (size_t)json_integer_value(it)));
    }
    for (i = 0; i < n; i++)
        free(items[i]);
    free(items);
    json_decref(chosen);
    json_decref(names);
}

enum status vars__r_certificates(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                 struct err *re)
{
    json_t *list;
    char *q;

    (void)re;
    if (!v->host->interactive || !v->host->certificate_list)
        return ST_OK;
    q = vars__nonempty_string(hint) && strcmp(json_string_value(hint), x->name)
            ? xstrdup(json_string_value(hint))
            : xstrdup("Select SSL certificates");
    list = v->host->certificate_list(v->host->ctx);
    pick_many(v, list, q, 0, out);
    json_decref(list);
    free(q);
    return ST_OK;
}

enum status vars__r_vault_cert_prompt(struct vars *v, struct var *x, const json_t *hint,
                                      json_t **out, struct err *re)
{
    json_t *list;
    char *q;

    (void)re;
    if (!v->host->interactive || !v->host->vault_list)
        return ST_OK;
    q = vars__nonempty_string(hint) && strcmp(json_string_value(hint), x->name)
            ? xstrdup(json_string_value(hint))
            : xstrdup("Select SSL certs");
    list = v->host->vault_list(v->host->ctx);
    pick_many(v, list, q, 1, out);
    json_decref(list);
    free(q);
    return ST_OK;
}
