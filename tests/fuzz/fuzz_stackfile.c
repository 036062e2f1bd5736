/* tests/fuzz/fuzz_stackfile.c -- libFuzzer target: the input bytes are a stack file's text,
 * read through the whole pipeline (stackfile_load_text), offline and without prompts; then
 * the findings and the interpolated document are rendered as YAML. Built and run by
 * hack/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/stackfile/stackfile.h"
#include "cli/stackfile/ynode.h"
#include "common/xmalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *path; /* <empty temp dir>/kontena.yml: relative depends/extends find nothing */
static FILE *devnull;

/* The variables see an empty environment, and setters write nowhere. */
static const char *no_getenv(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static int no_setenv(void *ctx, const char *name, const char *value)
{
    (void)ctx;
    (void)name;
    (void)value;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char tmpl[] = "/tmp/kontena-fuzz-XXXXXX";
    (void)argc;
    (void)argv;
    if (!mkdtemp(tmpl))
        abort();
    path = xasprintf("%s/kontena.yml", tmpl);
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    return 0;
}

static void render_all(const struct stackfile *sf)
{
    char *y;

    for (size_t i = 0; i < sf->nchildren; i++)
        render_all(sf->children[i]);
    y = stackfile_findings_yaml(sf->errors);
    free(y);
    y = stackfile_findings_yaml(sf->notifications);
    free(y);
    if (sf->doc) {
        y = yaml_dump(sf->doc);
        free(y);
    }
    if (sf->payload) {
        y = yaml_dump(sf->payload);
        free(y);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vars_host host = {.getenv = no_getenv, .setenv = no_setenv, .interactive = 0};
    struct stackfile_opts o = {
        .host = &host,
        .msg = devnull,
        .no_network = 1,
    };
    struct stackfile *sf = NULL;
    struct err e = ERR_INIT;

    if (stackfile_load_text(&o, path, (const char *)data, size, &sf, &e) == ST_OK) {
        (void)stackfile_valid(sf);
        render_all(sf);
        stackfile_free(sf);
    }
    return 0;
}
