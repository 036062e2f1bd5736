/* tests/support/api_fixture.h -- Criterion fixture: a fresh real etcd and kontena-apiserver
 * for every test. Include it in one test file only (it defines statics):
 *
 *     #include "tests/support/api_fixture.h"
 *     TestSuite(api, .init = api_fixture_setup, .fini = api_fixture_teardown, .timeout = 60);
 *     API_TEST(api, something_works) { ... uses `api` and `etcd` ... }
 *
 * API_TEST ends each test by stopping the API server and asserting it exited with status 0,
 * so a sanitizer report or a crash at shutdown fails the test. (Criterion does not count
 * failures raised in .fini, hence the wrapper rather than a check in the teardown.)
 */
#ifndef TESTS_SUPPORT_API_FIXTURE_H
#define TESTS_SUPPORT_API_FIXTURE_H

#include <criterion/criterion.h>

#include "tests/support/api_proc.h"
#include "tests/support/etcd_proc.h"

static struct etcd_proc etcd;
static struct api_proc api;

static void api_fixture_setup(void)
{
    cr_assert_eq(etcd_proc_start(&etcd), 0, "cannot start etcd");
    cr_assert_eq(api_proc_start(&api, etcd.endpoint, 0), 0, "cannot start kontena-apiserver");
}

static void api_fixture_teardown(void)
{
    api_proc_cleanup(&api);
    etcd_proc_cleanup(&etcd);
}

#define API_TEST(suite, name)                                                                  \
    static void name##_body(void);                                                             \
    Test(suite, name)                                                                          \
    {                                                                                          \
        name##_body();                                                                         \
        cr_assert_eq(api_proc_stop(&api), 0, "kontena-apiserver did not exit cleanly");       \
    }                                                                                          \
    static void name##_body(void)

#endif
