/* tests/fuzz/fuzz_lbenv.c -- libFuzzer target for common/lbenv (KONTENA_LB_* parsing and
 * every single-value check kontena-lb re-runs on etcd values).
 *
 * The input is split on NUL bytes (at most 64 pieces): every piece is fed to
 * every lbenv_check_* function, and all pieces together are one env array for
 * lbenv_parse() and, as services of one load balancer, for lbenv_check_set().
 *
 * Build and run (clang):
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -D_GNU_SOURCE -I. tests/fuzz/fuzz_lbenv.c common/lbenv.c common/buf.c common/err.c \
 *     common/xmalloc.c $(pkg-config --cflags --libs jansson) -o build-fuzz/fuzz_lbenv
 *   build-fuzz/fuzz_lbenv -max_total_time=60 -max_len=4096
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/lbenv.h"
#include "common/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xmalloc(size + 1);
    const char *env[64];
    size_t n = 0;
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;
    json_t *arr = json_array(), *set = json_array();
    int port;
    enum lb_mode mode;

    memcpy(text, data, size);
    text[size] = '\0';
    for (size_t at = 0; at <= size && n < 64;) {
        env[n++] = text + at;
        at += strlen(text + at) + 1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = env[i];
        (void)lbenv_check_mode(v, &mode, &e);
        (void)lbenv_check_balance(v, &e);
        (void)lbenv_check_virtual_hosts(v, &e);
        (void)lbenv_check_virtual_paths(v, &e);
        (void)lbenv_check_keep_virtual_path(v, &e);
        (void)lbenv_check_cookie(v, &e);
        (void)lbenv_check_basic_auth(v, &e);
        (void)lbenv_check_lines(v, &e);
        (void)lbenv_check_port(v, &port, &e);
        (void)lbenv_check_name(v, &e);
        (void)lbenv_check_upstream(v, &e);
        (void)lbenv_check_uri(v, &e);
        json_array_append_new(arr, json_string(v)); /* NULL (invalid UTF-8) is skipped */
    }
    if (lbenv_parse(&lb, env, n, "fuzz", &e) == ST_OK)
        lbenv_release(&lb);
    json_array_append_new(set, json_pack("{s:s,s:s,s:[],s:b}", "id", "lb", "image", "kontena/lb",
                                         "links", "changed", 1));
    json_array_append_new(set, json_pack("{s:s,s:s,s:O,s:[s],s:b}", "id", "a", "image", "x", "env",
                                         arr, "links", "lb", "changed", 1));
    json_array_append_new(set, json_pack("{s:s,s:s,s:O,s:[s],s:b}", "id", "b", "image", "x", "env",
                                         arr, "links", "lb", "changed", 0));
    (void)lbenv_check_set(set, NULL, &e);
    json_decref(set);
    json_decref(arr);
    free(text);
    return 0;
}
