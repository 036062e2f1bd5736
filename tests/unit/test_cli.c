/* Unit tests for cli/: option parser, config file, tables, YAML errors, help, dispatch. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/xmalloc.h"

/* ---- helpers ---- */

/* argv strings are never written; -Wwrite-strings wants the cast spelt out. */
#define S(lit) ((char *)(lit))

static char tmpdir[64];

/* A fresh HOME with no config and no KONTENA_* environment. */
static void fresh_env(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cli.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    setenv("HOME", tmpdir, 1);
    unsetenv("KONTENA_CONFIG");
    unsetenv("KONTENA_URL");
    unsetenv("KONTENA_MASTER");
    unsetenv("KONTENA_TOKEN");
    unsetenv("KONTENA_GRID");
    unsetenv("KONTENA_PASSWORD");
    unsetenv("DEBUG");
}

static void cleanup_env(void)
{
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        cr_assert_eq(buf_append(&b, chunk, n), ST_OK);
    fclose(f);
    return buf_take(&b);
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

struct run {
    int rc;
    char *out;
    char *err;
};

/* Run `kontena <args...>` in-process with stdout and stderr captured. */
static struct run run_cli(const char *first, ...)
{
    char *argv[32], *outp = xasprintf("%s/stdout", tmpdir), *errp = xasprintf("%s/stderr", tmpdir);
    int argc = 0, saved_out = dup(1), saved_err = dup(2), fo, fe;
    struct run r;
    va_list ap;

    argv[argc++] = (char *)"kontena";
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    r.rc = cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    r.out = slurp(outp);
    r.err = slurp(errp);
    free(outp);
    free(errp);
    return r;
}

static void run_release(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* ---- option parser ---- */

static int dummy_fn(struct cli *c, struct opts *o)
{
    (void)c;
    (void)o;
    return 0;
}

static const struct cli_cmd test_cmd = {
    "vault write",
    NULL,
    dummy_fn,
    "Write a secret",
    (const struct cli_param[]){{"NAME", "name"}, {"[VALUE]", "value"}, CLI_PARAM_END},
    (const struct cli_opt[]){
        {'s', "silent", NULL, 0, "silent", NULL, NULL},
        {'i', "interactive", NULL, 0, "interactive", NULL, NULL},
        {'t', "tty", NULL, 0, "tty", NULL, NULL},
        {'n', "name", "NAME", 0, "a name", "dflt", NULL},
        {0, "size", "N", CLI_OPT_INT, "a number", NULL, NULL},
        {0, "color", NULL, CLI_OPT_NEG, "colours", NULL, NULL},
        {0, "label", "L", CLI_OPT_MULTI, "labels", NULL, NULL},
        {'e', "env", "E", 0, "from env", NULL, "TEST_CLI_ENV"},
        CLI_OPT_END,
    },
    0,
};

static enum status parse(struct opts *o, struct err *e, int argc, char **argv)
{
    return opts_parse(o, &test_cmd, argc, argv, e);
}

Test(opts, options_after_positionals)
{
    char *argv[] = {S("NAME"), S("--silent"), S("VALUE")};
    struct opts o;
    struct err e = ERR_INIT;

    cr_assert_eq(parse(&o, &e, 3, argv), ST_OK, "%s", e.msg);
    cr_assert_eq(o.nargs, 2);
    cr_assert_str_eq(o.args[0], "NAME");
    cr_assert_str_eq(o.args[1], "VALUE");
    cr_assert(opts_flag(&o, "silent"));
    cr_assert_not(opts_flag(&o, "tty"));
    opts_release(&o);
}

Test(opts, double_dash_ends_options)
{
    char *argv[] = {S("NAME"), S("--"), S("--silent")};
    struct opts o;
    struct err e = ERR_INIT;

    cr_assert_eq(parse(&o, &e, 3, argv), ST_OK, "%s", e.msg);
    cr_assert_eq(o.nargs, 2);
    cr_assert_str_eq(o.args[1], "--silent");
    cr_assert_not(opts_flag(&o, "silent"));
    opts_release(&o);
}

Test(opts, combined_short_flags_and_values)
{
    char *argv[] = {S("-it"), S("x"), S("-sn"), S("foo"), S("-nbar")};
    struct opts o;
    struct err e = ERR_INIT;

    cr_assert_eq(parse(&o, &e, 5, argv), ST_OK, "%s", e.msg);
    cr_assert(opts_flag(&o, "interactive"));
    cr_assert(opts_flag(&o, "tty"));
    cr_assert(opts_flag(&o, "silent"));
    cr_assert_str_eq(opts_str(&o, "name"), "bar", "the last value wins");
    cr_assert_eq(o.nargs, 1);
    opts_release(&o);
}

Test(opts, long_values_negation_lists_and_defaults)
{
    char *argv[] = {S("x"), S("--size=42"), S("--no-color"), S("--label"), S("a"), S("--label=b")};
    struct opts o;
    struct err e = ERR_INIT;
    const char *const *list;
    size_t n;

    cr_assert_eq(parse(&o, &e, 6, argv), ST_OK, "%s", e.msg);
    cr_assert_eq(opts_int(&o, "size", 0), 42);
    cr_assert(opts_given(&o, "color"));
    cr_assert_eq(opts_flag(&o, "color"), 0);
    list = opts_list(&o, "label", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(list[0], "a");
    cr_assert_str_eq(list[1], "b");
    cr_assert_str_eq(opts_str(&o, "name"), "dflt", "declared default");
    cr_assert_null(opts_str(&o, "env"));
    setenv("TEST_CLI_ENV", "from-env", 1);
    cr_assert_str_eq(opts_str(&o, "env"), "from-env");
    opts_release(&o);
}

Test(opts, usage_errors)
{
    static const struct {
        int argc;
        char *argv[4];
        const char *msg;
    } cases[] = {
        {2, {S("x"), S("--bogus")}, "Unrecognised option '--bogus'"},
        {2, {S("x"), S("-iz")}, "Unrecognised option '-z'"},
        {2, {S("x"), S("--no-silent")}, "Unrecognised option '--no-silent'"},
        {0, {NULL}, "parameter 'NAME': no value provided"},
        {1, {S("--silent")}, "parameter 'NAME': no value provided"},
        {3, {S("a"), S("b"), S("c")}, "too many arguments"},
        {2, {S("x"), S("--name")}, "option '--name': no value provided"},
        {2, {S("x"), S("--size=abc")}, "option '--size': invalid value for Integer(): \"abc\""},
        {2, {S("x"), S("--silent=yes")}, "option '--silent': flag does not take a value"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct opts o;
        struct err e = ERR_INIT;

        cr_assert_eq(parse(&o, &e, cases[i].argc, (char **)cases[i].argv), ST_INVALID, "case %zu",
                     i);
        cr_assert_str_eq(e.msg, cases[i].msg);
        opts_release(&o);
    }
}

Test(opts, help_wins_over_missing_parameters)
{
    char *argv[] = {S("--silent"), S("-h"), S("--bogus")};
    struct opts o;
    struct err e = ERR_INIT;

    cr_assert_eq(parse(&o, &e, 3, argv), ST_OK, "%s", e.msg);
    cr_assert(o.help);
    opts_release(&o);
}

Test(opts, group_stops_at_subcommand)
{
    const struct cli_cmd *grid = cli_cmd_find("grid");
    char *argv[] = {S("-D"), S("create"), S("--bogus")};
    struct opts o;
    struct err e = ERR_INIT;

    cr_assert_not_null(grid);
    cr_assert_eq(opts_parse(&o, grid, 3, argv, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(o.rest, 1);
    cr_assert(opts_flag(&o, "debug"));
    opts_release(&o);
}

/* ---- config ---- */

Test(config, missing_file_is_empty_and_save_is_0600, .init = fresh_env, .fini = cleanup_env)
{
    char *path = xasprintf("%s/.kontena_client.json", tmpdir), *text;
    struct config *cfg;
    struct server *s;
    struct stat st;

    cr_assert_eq(config_load(NULL, &cfg, NULL), ST_OK);
    cr_assert_str_eq(cfg->path, path);
    cr_assert_eq(cfg->nservers, 0);
    cr_assert_null(config_master(cfg));
    s = config_add(cfg, "prod", "https://10.0.0.1:9292");
    config_set_str(&s->token, "secret");
    config_set_str(&s->grid, "web");
    config_set_current(cfg, s);
    cr_assert_eq(config_save(cfg, NULL), ST_OK);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    text = slurp(path);
    cr_assert(strstr(text, "\"current_server\": \"prod\""), "%s", text);
    cr_assert(strstr(text, "\"token_expires_at\": 0"), "%s", text);
    cr_assert(text[strlen(text) - 1] == '\n');
    free(text);
    config_free(cfg);
    free(path);
}

Test(config, round_trip_keeps_unknown_keys_and_renames_duplicates, .init = fresh_env,
     .fini = cleanup_env)
{
    char *path = xasprintf("%s/cfg.json", tmpdir), *text;
    struct config *cfg;

    spit(path, "{\"current_server\":\"a\",\"current_account\":\"kontena\",\"accounts\":[{\"name\":"
               "\"kontena\"}],\"servers\":[{\"name\":\"a\",\"url\":\"http://a:9292\",\"token\":"
               "\"t1\",\"account\":\"x\",\"token_expires_at\":123},{\"name\":\"a\",\"url\":"
               "\"http://b:9292\"}]}");
    setenv("KONTENA_CONFIG", path, 1);
    cr_assert_eq(config_load(NULL, &cfg, NULL), ST_OK);
    cr_assert_eq(cfg->nservers, 2);
    cr_assert_str_eq(cfg->servers[1]->name, "a-2");
    cr_assert_eq(cfg->servers[0]->token_expires_at, 123);
    cr_assert_str_eq(config_master(cfg)->url, "http://a:9292");
    cr_assert_eq(config_find_url(cfg, "http://b:9292/"), cfg->servers[1]);
    cr_assert_eq(config_save(cfg, NULL), ST_OK);
    config_free(cfg);
    text = slurp(path);
    cr_assert(strstr(text, "\"current_account\": \"kontena\""), "%s", text);
    cr_assert(strstr(text, "\"accounts\""), "%s", text);
    cr_assert(strstr(text, "\"account\": \"x\""), "%s", text);
    cr_assert(strstr(text, "\"name\": \"a-2\""), "%s", text);
    free(text);
    free(path);
}

Test(config, old_single_server_format_is_migrated, .init = fresh_env, .fini = cleanup_env)
{
    char *path = xasprintf("%s/cfg.json", tmpdir);
    struct config *cfg;

    spit(path, "{\"server\":{\"url\":\"http://old:9292\",\"token\":\"t\",\"grid\":\"g\"}}");
    cr_assert_eq(config_load(path, &cfg, NULL), ST_OK);
    cr_assert_eq(cfg->nservers, 1);
    cr_assert_str_eq(config_master(cfg)->url, "http://old:9292");
    cr_assert_str_eq(config_grid(config_master(cfg)), "g");
    config_free(cfg);
    free(path);
}

Test(config, malformed_file_is_an_error, .init = fresh_env, .fini = cleanup_env)
{
    char *path = xasprintf("%s/cfg.json", tmpdir);
    struct config *cfg;
    struct err e = ERR_INIT;

    spit(path, "{\"servers\": [");
    cr_assert_eq(config_load(path, &cfg, &e), ST_INVALID);
    cr_assert_null(cfg);
    cr_assert(strstr(e.msg, "cannot parse config"), "%s", e.msg);
    free(path);
}

static struct config *two_servers(void)
{
    char *path = xasprintf("%s/cfg.json", tmpdir);
    struct config *cfg;

    spit(path, "{\"current_server\":\"one\",\"servers\":["
               "{\"name\":\"one\",\"url\":\"http://one:9292\",\"token\":\"t1\",\"grid\":\"g1\"},"
               "{\"name\":\"two\",\"url\":\"http://two:9292\",\"token\":\"t2\",\"grid\":\"g2\"}]}");
    cr_assert_eq(config_load(path, &cfg, NULL), ST_OK);
    free(path);
    return cfg;
}

Test(config, env_resolution, .init = fresh_env, .fini = cleanup_env)
{
    struct config *cfg = two_servers();
    struct server *s;

    cr_assert_str_eq(config_master(cfg)->name, "one");
    setenv("KONTENA_MASTER", "two", 1);
    cr_assert_str_eq(config_master(cfg)->name, "two");
    setenv("KONTENA_MASTER", "nope", 1);
    cr_assert_null(config_master(cfg));
    unsetenv("KONTENA_MASTER");

    /* KONTENA_URL picks the entry with that URL ... */
    setenv("KONTENA_URL", "http://two:9292/", 1);
    s = config_master(cfg);
    cr_assert_str_eq(s->name, "two");
    cr_assert_str_eq(config_token(s), "t2");
    cr_assert_str_eq(config_grid(s), "g2");
    /* ... or a temporary one named $KONTENA_MASTER or "default". */
    setenv("KONTENA_URL", "http://three:9292", 1);
    s = config_master(cfg);
    cr_assert_eq(s, cfg->env_server);
    cr_assert_str_eq(s->name, "default");
    cr_assert_null(config_token(s));
    setenv("KONTENA_TOKEN", "envtoken", 1);
    setenv("KONTENA_GRID", "envgrid", 1);
    cr_assert_str_eq(config_token(s), "envtoken");
    cr_assert_str_eq(config_grid(s), "envgrid");
    cr_assert_eq(cfg->nservers, 2, "the temporary server is not stored");
    config_free(cfg);
}

Test(config, kontena_url_names_temporary_server_after_kontena_master, .init = fresh_env,
     .fini = cleanup_env)
{
    struct config *cfg = two_servers();

    setenv("KONTENA_URL", "http://three:9292", 1);
    setenv("KONTENA_MASTER", "ci", 1);
    cr_assert_str_eq(config_master(cfg)->name, "ci");
    config_free(cfg);
}

Test(config, never_written_while_kontena_url_is_set, .init = fresh_env, .fini = cleanup_env)
{
    struct config *cfg = two_servers();
    char *before = slurp(cfg->path), *after;

    setenv("KONTENA_URL", "http://one:9292", 1);
    config_set_str(&config_master(cfg)->grid, "changed");
    cr_assert_eq(config_save(cfg, NULL), ST_OK);
    after = slurp(cfg->path);
    cr_assert_str_eq(before, after);
    free(before);
    free(after);
    config_free(cfg);
}

Test(config, unique_names_and_removal, .init = fresh_env, .fini = cleanup_env)
{
    struct config *cfg = two_servers();
    char *name = config_unique_name(cfg, "one");

    cr_assert_str_eq(name, "one-2");
    free(name);
    cr_assert_str_eq(config_add(cfg, "one", "http://x")->name, "one-2");
    config_remove(cfg, config_find(cfg, "one"));
    cr_assert_null(cfg->current_server, "removing the current master clears it");
    cr_assert_eq(cfg->nservers, 2);
    config_free(cfg);
}

Test(config, url_host_and_cert_path, .init = fresh_env, .fini = cleanup_env)
{
    static const struct {
        const char *url, *host;
    } cases[] = {
        {"https://127.0.0.1:9292", "127.0.0.1"},
        {"https://master.example.com/", "master.example.com"},
        {"http://user@host:80/x?y", "host"},
        {"https://[::1]:9292", "::1"},
    };
    char *path, *want;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *host = config_url_host(cases[i].url);
        cr_assert_str_eq(host, cases[i].host);
        free(host);
    }
    path = config_cert_path("https://10.1.2.3:9292");
    want = xasprintf("%s/.kontena/certs/10.1.2.3_9292.pem", tmpdir);
    cr_assert_str_eq(path, want);
    free(path);
    free(want);
    path = config_cert_path("https://user@[::1]:9393/x");
    want = xasprintf("%s/.kontena/certs/::1_9393.pem", tmpdir);
    cr_assert_str_eq(path, want);
    free(path);
    free(want);
    path = config_cert_path("https://master.example/");
    want = xasprintf("%s/.kontena/certs/master.example.pem", tmpdir);
    cr_assert_str_eq(path, want);
    free(path);
    free(want);
    path = config_cert_path_host("https://10.1.2.3:9292");
    want = xasprintf("%s/.kontena/certs/10.1.2.3.pem", tmpdir);
    cr_assert_str_eq(path, want);
    free(path);
    free(want);
}

Test(config, install_cert_copies_pem_with_private_dirs, .init = fresh_env, .fini = cleanup_env)
{
    char *src = xasprintf("%s/ca.pem", tmpdir), *dir = xasprintf("%s/.kontena/certs", tmpdir);
    char *dst = xasprintf("%s/master_9292.pem", dir), *copy;
    struct err e = ERR_INIT;
    struct stat st;

    spit(src, "not a cert\n");
    cr_assert_eq(config_install_cert("https://master:9292", src, &e), ST_INVALID);
    spit(src, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    cr_assert_eq(config_install_cert("https://master:9292", src, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    copy = slurp(dst);
    cr_assert(strstr(copy, "BEGIN CERTIFICATE"));
    free(copy);
    free(src);
    free(dir);
    free(dst);
}

/* ---- output ---- */

static char *capture_table(const struct table *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    table_print(t, f);
    fclose(f);
    return text;
}

Test(output, table_pads_upcases_and_strips)
{
    static const char *const headers[] = {"name", "url", "x"};
    static const char *const r1[] = {"* prod", "https://a", ""};
    static const char *const r2[] = {"t", "http://bbbbbbbbbb", NULL};
    struct table *t = table_create(headers, 3);
    char *text = capture_table(t);

    cr_assert_str_eq(text, "NAME  URL  X\n", "empty table: header only");
    free(text);
    table_add(t, r1);
    table_add(t, r2);
    cr_assert_eq(table_rows(t), 2);
    text = capture_table(t);
    cr_assert_str_eq(text, "NAME    URL                X\n"
                           "* prod  https://a\n"
                           "t       http://bbbbbbbbbb\n");
    free(text);
    table_destroy(t);
}

Test(output, table_counts_utf8_as_one_column)
{
    static const char *const headers[] = {"a", "b"};
    static const char *const r1[] = {"\xc3\xa4\xc3\xa4", "x"};
    struct table *t = table_create(headers, 2);
    char *text;

    table_add(t, r1);
    text = capture_table(t);
    cr_assert_str_eq(text, "A   B\n\xc3\xa4\xc3\xa4  x\n");
    free(text);
    table_destroy(t);
}

Test(output, yaml_rendering_of_structured_errors)
{
    json_t *v =
        json_loads("{\"services\":{\"a\":{\"links\":\"service a has missing links: nope\"}},"
                   "\"list\":[\"x\",\"y\"],\"empty\":{},\"n\":null,\"num\":3,"
                   "\"objs\":[{\"k\":1,\"l\":2}]}",
                   0, NULL);
    struct buf b = BUF_INIT;

    yaml_render(v, "\t", &b);
    cr_assert_str_eq(b.ptr, "\tservices:\n"
                            "\t  a:\n"
                            "\t    links: service a has missing links: nope\n"
                            "\tlist:\n"
                            "\t- x\n"
                            "\t- y\n"
                            "\tempty: {}\n"
                            "\tn:\n"
                            "\tnum: 3\n"
                            "\tobjs:\n"
                            "\t- k: 1\n"
                            "\t  l: 2\n");
    buf_release(&b);
    json_decref(v);
}

Test(api, error_formats)
{
    static const struct {
        long status;
        const char *body, *want;
    } cases[] = {
        {422,
         "{\"error\":{\"services\":{\"a\":{\"links\":\"service a has missing links: nope\"}}}}",
         "422 : Unprocessable Entity:\n\tservices:\n\t  a:\n\t    links: service a has missing "
         "links: nope"},
        {422, "{\"error\":{\"grid\":\"grid 'x' still has 2 nodes and 1 stack\"}}",
         "422 : Unprocessable Entity:\n\tgrid: grid 'x' still has 2 nodes and 1 stack"},
        {404, "{\"error\":\"Grid x not found\"}", "404 : Grid x not found (/v1/grids/x)"},
        {403, "{\"error\":\"invalid_token\",\"error_description\":\"Token expired\"}",
         "403 : Token expired (/v1/grids/x)"},
        {404, "", "404 : Not Found (/v1/grids/x)"},
        {404, "{}", "404 : Not Found (/v1/grids/x)"},
        {403, "Access denied\n", "403 : Access denied (/v1/grids/x)"},
        {500, "{\"message\":\"Internal server error\"}",
         "500 : Internal server error (/v1/grids/x)"},
        {502, "<html>bad gateway</html>", "502 : Bad Gateway (/v1/grids/x)"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *msg =
            api_format_error(cases[i].status, cases[i].body, strlen(cases[i].body), "/v1/grids/x");
        cr_assert_str_eq(msg, cases[i].want, "case %zu", i);
        free(msg);
    }
}

Test(cli, escape)
{
    char *s = cli_escape("a b/c@d.e_f~g-h%");

    cr_assert_str_eq(s, "a%20b%2Fc%40d.e_f~g-h%25");
    free(s);
}

/* ---- command table and help ---- */

static char *capture_help(const struct cli_cmd *cmd)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    cli_help(cmd, f);
    fclose(f);
    return text;
}

Test(commands, every_command_has_help_with_usage_and_options)
{
    const struct cli_cmd *cmd;
    size_t n = 0;

    for (size_t i = 0; (cmd = cli_cmd_at(i)) != NULL; i++, n++) {
        char *text = capture_help(cmd), *usage = xasprintf("Usage:\n    kontena%s%s [OPTIONS]",
                                                           *cmd->path ? " " : "", cmd->path);

        cr_assert(strstr(text, usage), "'%s': %s", cmd->path, text);
        cr_assert(strstr(text, "\nOptions:\n"), "'%s'", cmd->path);
        cr_assert(strstr(text, "    -h, --help                    print help\n"), "'%s'",
                  cmd->path);
        if (!cmd->fn)
            cr_assert(strstr(text, "\nSubcommands:\n"), "group '%s'", cmd->path);
        if (cmd->params && cmd->params[0].name)
            cr_assert(strstr(text, "\nParameters:\n"), "'%s'", cmd->path);
        free(usage);
        free(text);
    }
    cr_assert_gt(n, 40);
}

Test(commands, table_is_consistent)
{
    const struct cli_cmd *cmd, *other;

    for (size_t i = 1; (cmd = cli_cmd_at(i)) != NULL; i++) {
        const char *sp = strrchr(cmd->path, ' ');
        char *parent = sp ? xstrndup(cmd->path, (size_t)(sp - cmd->path)) : xstrdup("");
        const struct cli_cmd *p = cli_cmd_find(parent);

        cr_assert_not_null(p, "'%s' has no parent group", cmd->path);
        cr_assert_null(p->fn, "parent of '%s' is not a group", cmd->path);
        cr_assert_eq(cli_cmd_child(p, cli_cmd_name(cmd)), cmd, "'%s' is shadowed", cmd->path);
        cr_assert(cmd->fn || cmd->opts == NULL, "group '%s' with options", cmd->path);
        for (size_t j = i + 1; (other = cli_cmd_at(j)) != NULL; j++)
            cr_assert_str_neq(cmd->path, other->path);
        free(parent);
    }
}

Test(commands, required_commands_exist)
{
    static const char *const paths[] = {
        "master login",
        "master logout",
        "master ls",
        "master use",
        "master current",
        "master user ls",
        "master user add",
        "master user rm",
        "master user role add",
        "master user role rm",
        "master token create",
        "master token ls",
        "master token show",
        "master token rm",
        "master token current",
        "master audit-log",
        "grid create",
        "grid ls",
        "grid use",
        "grid show",
        "grid current",
        "grid update",
        "grid rm",
        "grid env",
        "grid trusted-subnet ls",
        "grid trusted-subnet add",
        "grid trusted-subnet rm",
        "grid user ls",
        "grid user add",
        "grid user rm",
        "grid audit-log",
        "whoami",
        "version",
    };

    for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
        cr_assert_not_null(cli_cmd_find(paths[i]), "%s", paths[i]);
    cr_assert_eq(cli_cmd_child(cli_cmd_find("master"), "users"), cli_cmd_find("master user"));
    cr_assert_eq(cli_cmd_child(cli_cmd_find("grid"), "list"), cli_cmd_find("grid ls"));
}

/* ---- dispatch ---- */

Test(dispatch, usage_error_format, .init = fresh_env, .fini = cleanup_env)
{
    struct run r = run_cli("grid", "create", NULL);

    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "ERROR: parameter 'NAME': no value provided\n\n"
                            "See: 'kontena grid create --help'\n");
    run_release(&r);
    r = run_cli("grid", "-u", "ls", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "ERROR: Unrecognised option '-u'\n\nSee: 'kontena grid --help'\n");
    run_release(&r);
    r = run_cli("grid", "frob", NULL);
    cr_assert_str_eq(r.err, "ERROR: No such sub-command 'frob'\n\nSee: 'kontena grid --help'\n");
    run_release(&r);
}

Test(dispatch, help_and_version, .init = fresh_env, .fini = cleanup_env)
{
    struct run r = run_cli("master", "users", "role", "add", "--help", NULL);

    cr_assert_eq(r.rc, 0);
    cr_assert(
        !strncmp(r.out, "Usage:\n    kontena master user role add [OPTIONS] ROLE USER ...\n", 60),
        "%s", r.out);
    run_release(&r);
    r = run_cli("-v", NULL);
    cr_assert_str_eq(r.out, "kontena-cli " KONTENA_VERSION "\n");
    run_release(&r);
    r = run_cli("version", "--cli", NULL);
    cr_assert_str_eq(r.out, "kontena-cli " KONTENA_VERSION "\n");
    run_release(&r);
}

Test(dispatch, not_logged_in, .init = fresh_env, .fini = cleanup_env)
{
    struct run r = run_cli("grid", "ls", NULL);

    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(
        r.err, " [error] You are not logged into a Kontena Master. Use: kontena master login\n");
    run_release(&r);
}

Test(dispatch, master_ls_use_current, .init = fresh_env, .fini = cleanup_env)
{
    struct config *cfg = two_servers();
    struct run r;
    char *text;

    setenv("KONTENA_CONFIG", cfg->path, 1);
    r = run_cli("master", "ls", NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "NAME   URL\n* one  http://one:9292\ntwo    http://two:9292\n");
    run_release(&r);
    r = run_cli("master", "ls", "-q", NULL);
    cr_assert_str_eq(r.out, "one\ntwo\n");
    run_release(&r);
    r = run_cli("master", "use", "two", NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "Using master: two (http://two:9292)\nUsing grid: g2\n");
    run_release(&r);
    r = run_cli("master", "current", "--url", NULL);
    cr_assert_str_eq(r.out, "http://two:9292\n");
    run_release(&r);
    r = run_cli("master", "current", NULL);
    cr_assert_str_eq(r.out, "two http://two:9292\n");
    run_release(&r);
    r = run_cli("master", "use", "three", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert(strstr(r.err, "Could not resolve master by name 'three'"), "%s", r.err);
    run_release(&r);
    r = run_cli("master", "use", "--clear", NULL);
    cr_assert_eq(r.rc, 0);
    run_release(&r);
    r = run_cli("whoami", NULL);
    cr_assert_eq(r.rc, 1);
    run_release(&r);
    text = slurp(cfg->path);
    cr_assert(strstr(text, "\"current_server\": null"), "%s", text);
    free(text);
    config_free(cfg);
}

Test(dispatch, destructive_commands_need_force_without_tty, .init = fresh_env, .fini = cleanup_env)
{
    struct config *cfg = two_servers();
    struct run r;

    setenv("KONTENA_CONFIG", cfg->path, 1);
    r = run_cli("master", "rm", "two", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, " [error] Command requires --force\n");
    run_release(&r);
    r = run_cli("master", "remove", "--force", "two", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    run_release(&r);
    r = run_cli("master", "ls", "-q", NULL);
    cr_assert_str_eq(r.out, "one\n");
    run_release(&r);
    config_free(cfg);
}

Test(dispatch, grid_current_name_from_config_and_env, .init = fresh_env, .fini = cleanup_env)
{
    struct config *cfg = two_servers();
    struct run r;

    setenv("KONTENA_CONFIG", cfg->path, 1);
    r = run_cli("grid", "current", "--name", NULL);
    cr_assert_str_eq(r.out, "g1\n");
    run_release(&r);
    setenv("KONTENA_GRID", "other", 1);
    r = run_cli("grid", "current", "--name", NULL);
    cr_assert_str_eq(r.out, "other\n");
    run_release(&r);
    config_free(cfg);
}

Test(dispatch, complete_subcommand_tree, .init = fresh_env, .fini = cleanup_env)
{
    struct run r = run_cli("complete", "--subcommand-tree", NULL);

    cr_assert_eq(r.rc, 0);
    cr_assert(!strncmp(r.out, "kontena\nkontena master\n", 23), "%s", r.out);
    cr_assert(strstr(r.out, "\nkontena master user role add\n"));
    cr_assert(strstr(r.out, "\nkontena grid show\n"));
    cr_assert_null(strstr(r.out, "complete"));
    run_release(&r);
    r = run_cli("complete", "kontena", "master", "user", NULL);
    cr_assert_str_eq(r.out, "ls\nadd\nrm\nrole\n");
    run_release(&r);
}
