/* tests/fuzz/fuzz_logbatch.c -- libFuzzer target for the master's log path: the input is one
 * agent message, read by logbatch_parse() (apiserver/logbatch.c) without a NUL after it;
 * the items of a valid batch are stored by logstore_append() in a small window (64 KiB, so
 * segments roll and are evicted), and every stored line read back must be valid JSON with
 * the ids in order, and the filters (apiserver/logstore.c) run over them.
 *
 * Build and run (clang):
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -D_GNU_SOURCE -I. tests/fuzz/fuzz_logbatch.c apiserver/logbatch.c apiserver/logstore.c \
 *     common/buf.c common/err.c common/xmalloc.c common/log.c common/timeutil.c \
 *     $(pkg-config --cflags --libs jansson) -lpthread -o build-fuzz/fuzz_logbatch
 *   build-fuzz/fuzz_logbatch -max_total_time=60 -max_len=65536
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/logbatch.h"
#include "apiserver/logstore.h"
#include "common/log.h"
#include "common/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct logstore *store;

static void check_lines(const struct log_filter *f)
{
    struct buf b = BUF_INIT;
    int64_t first, next, n, dropped, prev = 0;

    logstore_bounds(store, "f", &first, &next);
    buf_init(&b, 0);
    logstore_read(store, "f", first, f, 100000, 1u << 26, 0, &b, "\n", &n, &dropped);
    for (char *p = b.ptr, *nl; p && (nl = memchr(p, '\n', b.len - (size_t)(p - b.ptr)));
         p = nl + 1) {
        json_error_t je;
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, &je);
        int64_t id;
        if (!o) {
            fprintf(stderr, "stored line is not JSON (%s): %.*s\n", je.text, (int)(nl - p), p);
            abort();
        }
        id = json_integer_value(json_object_get(o, "id"));
        if (id <= prev) {
            fprintf(stderr, "ids out of order: %lld after %lld\n", (long long)id, (long long)prev);
            abort();
        }
        prev = id;
        json_decref(o);
    }
    buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *msg = xmalloc(size ? size : 1);
    struct logbatch lb;
    const char *why;
    static int calls;

    if (!store) {
        char dir[] = "/tmp/fuzz_logbatch.XXXXXX";
        struct err e = ERR_INIT;
        log_min_level = LOG_ERROR;
        if (!mkdtemp(dir) || logstore_open(dir, 65536, "fuzz", &store, &e) != ST_OK)
            abort();
    }
    memcpy(msg, data, size);
    if (logbatch_parse(msg, size, 10000, &lb, &why) == 1) {
        size_t stored, dropped;
        struct err e = ERR_INIT;
        for (size_t i = 0; i < lb.n; i++)
            lb.items[i].node = "n1";
        if (logstore_append(store, "f", lb.items, lb.n, &stored, &dropped, NULL, NULL, &e) !=
            ST_OK)
            abort();
        if (lb.n) {
            /* every item's own fields as filters */
            const char *names[] = {lb.items[0].name ? lb.items[0].name : "x", NULL};
            char since[LOGSTORE_TIME_LEN + 1];
            struct log_filter f = {.containers = names, .instance = lb.items[0].instance,
                                   .q = lb.items[0].data};
            int64_t ns = logstore_time_parse(lb.items[0].time);
            if (ns >= 0) {
                logstore_time_format(ns, since);
                f.since = since;
            }
            check_lines(&f);
            (void)logstore_tail_start(store, "f", &f, 3);
        }
        logbatch_release(&lb);
    }
    if (++calls % 500 == 0)
        check_lines(NULL);
    free(msg);
    return 0;
}
