/* Unit tests of the hosts files the agent's DNS writes (agent/dns.h) and of the reserved
 * node ports (common/reserved_ports.h). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent/dns.h"
#include "common/reserved_ports.h"

#include "common/banned.h"

TestSuite(dns, .timeout = 30);

static json_t *inst(const char *stack, const char *service, int n, const char *cidr)
{
    json_t *o = json_pack("{s:s,s:i,s:s}", "service", service, "instance_number", n, "grid", "g");
    if (stack)
        json_object_set_new(o, "stack", json_string(stack));
    else
        json_object_set_new(o, "stack", json_null());
    if (cidr)
        json_object_set_new(o, "overlay_cidr", json_string(cidr));
    return o;
}

static json_t *obs(const char *state)
{
    return json_pack("{s:s}", "state", state);
}

static const char *file_of(const json_t *files, const char *name)
{
    return json_string_value(json_object_get(files, name));
}

Test(dns, stack_services_instances_and_exposed_stack_name)
{
    json_t *i = json_object(), *o = json_object(), *s = json_object(), *f;

    json_object_set_new(i, "n1/shop.web-1", inst("shop", "web", 1, "10.81.128.5/16"));
    json_object_set_new(i, "n2/shop.web-2", inst("shop", "web", 2, "10.81.128.6/16"));
    json_object_set_new(i, "n2/shop.db-1", inst("shop", "db", 1, "10.81.128.7/16"));
    json_object_set_new(o, "n1/shop.web-1", obs("running"));
    json_object_set_new(o, "n2/shop.web-2", obs("running"));
    json_object_set_new(o, "n2/shop.db-1", obs("running"));
    json_object_set_new(s, "shop", json_pack("{s:s}", "expose", "web"));
    f = dns_hosts_files("g", i, o, s);
    cr_assert_eq(json_object_size(f), 1); /* lines in the order of the keys */
    cr_assert_str_eq(file_of(f, "shop.hosts"),
                     "10.81.128.5 web-1.shop.g.kontena.local web.shop.g.kontena.local "
                     "shop-1.g.kontena.local shop.g.kontena.local\n"
                     "10.81.128.7 db-1.shop.g.kontena.local db.shop.g.kontena.local\n"
                     "10.81.128.6 web-2.shop.g.kontena.local web.shop.g.kontena.local "
                     "shop-2.g.kontena.local shop.g.kontena.local\n");
    json_decref(f);
    json_decref(i);
    json_decref(o);
    json_decref(s);
}

Test(dns, stackless_services_go_to_null_hosts)
{
    json_t *i = json_object(), *o = json_object(), *s = json_object(), *f;

    json_object_set_new(i, "n1/redis-1", inst(NULL, "redis", 1, "10.81.128.9/16"));
    json_object_set_new(i, "n1/cache-1", inst("null", "cache", 1, "10.81.128.10/16"));
    json_object_set_new(o, "n1/redis-1", obs("running"));
    json_object_set_new(o, "n1/cache-1", obs("running"));
    f = dns_hosts_files("g", i, o, s);
    cr_assert_str_eq(file_of(f, "null.hosts"),
                     "10.81.128.10 cache-1.g.kontena.local cache.g.kontena.local\n"
                     "10.81.128.9 redis-1.g.kontena.local redis.g.kontena.local\n");
    json_decref(f);
    json_decref(i);
    json_decref(o);
    json_decref(s);
}

Test(dns, only_running_instances_with_an_address_of_the_same_node)
{
    json_t *i = json_object(), *o = json_object(), *s = json_object(), *f;

    json_object_set_new(i, "n1/st.a-1", inst("st", "a", 1, "10.81.128.1/16"));
    json_object_set_new(i, "n1/st.a-2", inst("st", "a", 2, NULL));             /* no address */
    json_object_set_new(i, "n1/st.a-3", inst("st", "a", 3, "10.81.128.3/16")); /* stopped */
    json_object_set_new(i, "n2/st.a-4", inst("st", "a", 4, "10.81.128.4/16")); /* no obs */
    json_object_set_new(i, "n2/st.a-5", inst("st", "a", 5, "10.81.128.5/16")); /* moved */
    json_object_set_new(o, "n1/st.a-1", obs("running"));
    json_object_set_new(o, "n1/st.a-2", obs("running"));
    json_object_set_new(o, "n1/st.a-3", obs("stopped"));
    json_object_set_new(o, "n1/st.a-5", obs("running")); /* the old node's leftover */
    f = dns_hosts_files("g", i, o, s);
    cr_assert_str_eq(file_of(f, "st.hosts"),
                     "10.81.128.1 a-1.st.g.kontena.local a.st.g.kontena.local\n");
    json_decref(f);
    json_decref(i);
    json_decref(o);
    json_decref(s);
}

Test(dns, bad_values_are_never_written)
{
    json_t *i = json_object(), *o = json_object(), *s = json_object(), *f;
    static const char *const names[] = {"n/1", "n/2", "n/3", "n/4", "n/5", "n/6", "n/7"};

    json_object_set_new(i, names[0], inst("st", "we b", 1, "10.81.128.1/16"));
    json_object_set_new(i, names[1], inst("st", "web\n10.0.0.1", 1, "10.81.128.1/16"));
    json_object_set_new(i, names[2], inst("s/t", "web", 1, "10.81.128.1/16"));
    json_object_set_new(i, names[3], inst("st", "web", 1, "10.81.128.1 evil/16"));
    json_object_set_new(i, names[4], inst("st", "web", 0, "10.81.128.1/16"));
    json_object_set_new(i, names[5], inst("st", "-web", 1, "10.81.128.1/16"));
    json_object_set_new(
        i, names[6],
        json_pack("{s:s,s:s,s:s}", "stack", "st", "service", "x", "instance_number", "1"));
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        json_object_set_new(o, names[k], obs("running"));
    f = dns_hosts_files("g", i, o, s);
    cr_assert_eq(json_object_size(f), 0, "%s", json_dumps(f, 0));
    json_decref(f);
    f = dns_hosts_files("bad grid", i, o, s);
    cr_assert_eq(json_object_size(f), 0);
    json_decref(f);
    json_decref(i);
    json_decref(o);
    json_decref(s);
}

Test(dns, search_domains)
{
    char *a = dns_search_domain("g", "shop"), *b = dns_search_domain("g", NULL),
         *c = dns_search_domain("g", "null");
    cr_assert_str_eq(a, "shop.g.kontena.local");
    cr_assert_str_eq(b, "g.kontena.local");
    cr_assert_str_eq(c, "g.kontena.local");
    free(a);
    free(b);
    free(c);
}

Test(dns, reserved_ports)
{
    cr_assert_not_null(reserved_port_user(4789, "udp", NULL));
    cr_assert_not_null(strstr(reserved_port_user(4789, "udp", "1.2.3.4"), "VXLAN"));
    cr_assert_not_null(strstr(reserved_port_user(51820, "udp", "0.0.0.0"), "WireGuard"));
    cr_assert_null(reserved_port_user(4789, "tcp", NULL));
    cr_assert_not_null(strstr(reserved_port_user(53, "udp", "0.0.0.0"), "DNS"));
    cr_assert_not_null(reserved_port_user(53, "tcp", ""));
    cr_assert_not_null(reserved_port_user(53, "udp", "10.81.0.3"));
    cr_assert_null(reserved_port_user(53, "udp", "192.168.1.10"));
    cr_assert_null(reserved_port_user(53, "tcp", "192.168.1.10"));
    cr_assert_null(reserved_port_user(80, "tcp", NULL));
    cr_assert_null(reserved_port_user(4789, NULL, NULL));
}
