/* Unit tests for common/: buffers, errors, time, crypto. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/cmdline.h"
#include "common/crypto.h"
#include "common/err.h"
#include "common/jsonutil.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

Test(buf, append_respects_cap)
{
    struct buf b;
    buf_init(&b, 8);
    cr_assert_eq(buf_puts(&b, "12345"), ST_OK);
    cr_assert_eq(buf_puts(&b, "6789"), ST_INVALID, "append past the cap must fail");
    cr_assert_str_eq(b.ptr, "12345", "a failed append leaves the buffer as it was");
    cr_assert_eq(buf_printf(&b, "%d", 678), ST_OK);
    cr_assert_str_eq(b.ptr, "12345678");
    buf_consume(&b, 3);
    cr_assert_str_eq(b.ptr, "45678");
    char *s = buf_take(&b);
    cr_assert_str_eq(s, "45678");
    cr_assert_null(b.ptr);
    free(s);
    buf_release(&b);
}

Test(cmdline, long_in_range_or_minus_one)
{
    cr_assert_eq(cmdline_long("30000", 100, 3600000), 30000);
    cr_assert_eq(cmdline_long("100", 100, 200), 100);
    cr_assert_eq(cmdline_long("99", 100, 200), -1);
    cr_assert_eq(cmdline_long("201", 100, 200), -1);
    cr_assert_eq(cmdline_long("12x", 0, 100), -1);
    cr_assert_eq(cmdline_long("", 0, 100), -1);
    cr_assert_eq(cmdline_long(NULL, 0, 100), -1);
}

Test(err, set_and_wrap)
{
    struct err e = ERR_INIT;
    cr_assert_eq(err_set(&e, ST_NOTFOUND, "grid '%s' not found", "x"), ST_NOTFOUND);
    cr_assert_eq(err_wrap(&e, "cannot remove grid"), ST_NOTFOUND);
    cr_assert_str_eq(e.msg, "cannot remove grid: grid 'x' not found");
    cr_assert_eq(err_set(NULL, ST_IO, "ignored"), ST_IO);
}

Test(timeutil, iso8601_round_trip)
{
    char s[40];
    time_iso8601(1777629600123000LL, s, sizeof(s));
    cr_assert_str_eq(s, "2026-05-01T10:00:00.123Z");
    cr_assert_eq(time_iso8601_parse(s), 1777629600123000LL);
    cr_assert_eq(time_iso8601_parse("2026-05-01T10:00:00Z"), 1777629600000000LL);
    cr_assert_eq(time_iso8601_parse("yesterday"), -1);
}

Test(timeutil, deadline_is_ms_ahead_on_the_given_clock)
{
    const clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
    const int64_t ms[] = {0, 1, 999, 1500, 86400000};

    for (size_t c = 0; c < 2; c++)
        for (size_t i = 0; i < 5; i++) {
            struct timespec now, d;
            int64_t diff;
            clock_gettime(clocks[c], &now);
            d = time_deadline(clocks[c], ms[i]);
            diff = (d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
            cr_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L, "tv_nsec %ld", d.tv_nsec);
            cr_assert(diff >= ms[i] && diff <= ms[i] + 50, "%lld ms ahead, wanted %lld",
                      (long long)diff, (long long)ms[i]);
        }
}

Test(jsonutil, jstr_and_jint_take_only_their_type)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:n}", "s", "x", "i", 7, "n", "8", "z");

    cr_assert_str_eq(jstr(o, "s"), "x");
    cr_assert_null(jstr(o, "i"));
    cr_assert_null(jstr(o, "missing"));
    cr_assert_null(jstr(NULL, "s"));
    cr_assert_eq(jint(o, "i", -1), 7);
    cr_assert_eq(jint(o, "n", -1), -1);
    cr_assert_eq(jint(o, "z", -2), -2);
    cr_assert_eq(jint(NULL, "i", -3), -3);
    json_decref(o);
}

Test(crypto, sha256_known_vector)
{
    char hex[65];
    crypto_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(crypto, base64_round_trip)
{
    const char *cases[] = {"", "a", "ab", "abc", "/kontena/grids/x"};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *enc = crypto_b64_encode(cases[i], strlen(cases[i]));
        size_t n = 99;
        char *dec = crypto_b64_decode(enc, strlen(enc), &n);
        cr_assert_not_null(dec);
        cr_assert_eq(n, strlen(cases[i]));
        cr_assert_str_eq(dec, cases[i]);
        free(enc);
        free(dec);
    }
    cr_assert_null(crypto_b64_decode("abc", 3, NULL), "length not a multiple of 4");
    cr_assert_null(crypto_b64_decode("a*c=", 4, NULL), "bad alphabet");
}

Test(crypto, password_hash_verifies_and_rejects)
{
    char *stored = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(crypto_password_hash("s3cret", &stored, &e), ST_OK, "%s", e.msg);
    cr_assert(strncmp(stored, "scrypt$15$8$1$", 14) == 0);
    cr_assert_eq(crypto_password_verify("s3cret", stored, &e), ST_OK);
    cr_assert_eq(crypto_password_verify("s3cres", stored, &e), ST_DENIED);
    cr_assert_eq(crypto_password_verify("s3cret", "plain", &e), ST_INVALID);
    free(stored);
}

Test(crypto, selfsigned_cert_fingerprint_matches)
{
    char *cert, *key, *fp, *fp2;
    struct err e = ERR_INIT;
    cr_assert_eq(crypto_selfsigned_cert("kontena-master", "DNS:master.test", 365, &cert, &key,
                                        &fp, &e),
                 ST_OK, "%s", e.msg);
    cr_assert(strstr(cert, "BEGIN CERTIFICATE") != NULL);
    cr_assert(strstr(key, "BEGIN PRIVATE KEY") != NULL);
    cr_assert_eq(crypto_cert_fingerprint(cert, &fp2, &e), ST_OK);
    cr_assert_str_eq(fp, fp2);
    cr_assert_eq(strlen(fp), 64);
    free(cert);
    free(key);
    free(fp);
    free(fp2);
    cr_assert_eq(crypto_cert_fingerprint("garbage", &fp2, &e), ST_INVALID);
}

Test(crypto, random_hex_is_fresh)
{
    char *a = crypto_random_hex(16), *b = crypto_random_hex(16);
    cr_assert_eq(strlen(a), 32);
    cr_assert_str_neq(a, b);
    free(a);
    free(b);
}
