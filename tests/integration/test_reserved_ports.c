/* Reserved node ports (common/reserved_ports.h) over the API: a stack install, a service
 * create and a service update publishing 4789/udp or 51820/udp get a 422 naming the port
 * and what uses it, and nothing is written; so does 53 on 0.0.0.0, while 53 on one of the
 * node's own addresses and 4789/tcp are fine. The stack file reader's
 * side is the corpus case tests/stackfiles/reserved-ports. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"

#include "common/banned.h"

TestSuite(reserved_ports, .init = api_fixture_setup, .fini = api_fixture_teardown, .timeout = 90);

static char *tok;
static struct http_reply rep;

/* body with single quotes for readability: 'x' -> "x" */
static long call(const char *token, const char *method, const char *path, const char *body)
{
    char *u = xasprintf("%s%s", api.url, path), *b = body ? xstrdup(body) : NULL;

    for (char *p = b; p && *p; p++)
        if (*p == '\'')
            *p = '"';
    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    cr_assert_eq(http_do(method, u, token, b, (size_t)-1, NULL, &rep), 0, "%s %s", method, path);
    free(u);
    free(b);
    return rep.status;
}

#define EXPECT(code, m, p, b_)                                                                     \
    do {                                                                                           \
        long got_ = call(tok, m, p, b_);                                                           \
        cr_assert_eq(got_, code, "%s %s -> %ld %s", m, p, got_, rep.body);                         \
    } while (0)

static const char *err_at(const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(rep.json, "error");
    v = json_object_get(v, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return json_string_value(v) ? json_string_value(v) : "(none)";
}

API_TEST(reserved_ports, vxlan_and_wireguard_ports_are_refused_with_a_clear_error)
{
    char *login = xasprintf("{'grant_type':'password','username':'admin','password':'%s'}",
                            api.admin_password);
    cr_assert_eq(call(NULL, "POST", "/oauth2/token", login), 201, "%s", rep.body);
    free(login);
    tok = xstrdup(json_string_value(json_object_get(rep.json, "access_token")));
    EXPECT(201, "POST", "/v1/grids", "{'name':'grd'}");

    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'net','stack':'t/net','services':[{'name':'vpn','image':'x',"
           "'ports':['4789:4789/udp']}]}");
    cr_assert_str_eq(err_at("services", "vpn", "ports"),
                     "Ports[0]: node port 4789/udp on 0.0.0.0 is reserved: the overlay "
                     "network's VXLAN tunnel uses it");
    EXPECT(404, "GET", "/v1/stacks/grd/net", NULL);

    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'wg','image':'x','ports':[{'node_port':80,'container_port':80},"
           "{'ip':'1.2.3.4','node_port':51820,'container_port':1,'protocol':'udp'}]}");
    cr_assert_str_eq(err_at("ports", NULL, NULL),
                     "Ports[1]: node port 51820/udp on 1.2.3.4 is reserved: the overlay "
                     "network's WireGuard encryption uses it");

    /* 53 on every address would clash with the node's dnsmasq (Docker's proxy binds
     * 0.0.0.0:53); on one of the node's own addresses it does not; tcp 4789 is free */
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'dns','image':'x','ports':['53:53/udp']}");
    cr_assert_str_eq(err_at("ports", NULL, NULL),
                     "Ports[0]: node port 53/udp on 0.0.0.0 is reserved: the node's DNS server "
                     "(dnsmasq on its overlay address) uses it");
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'dns','image':'x','ports':['192.168.1.10:53:53/udp',"
           "'192.168.1.10:53:53','4789:4789']}");
    EXPECT(422, "PUT", "/v1/services/grd/null/dns", "{'ports':['4789:4789/udp']}");
    cr_assert(strstr(err_at("ports", NULL, NULL), "4789/udp on 0.0.0.0 is reserved"), "%s",
              rep.body);

    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    FREE_AND_NULL(tok);
}
