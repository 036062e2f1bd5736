/* tests/unit/test_overlay_peers.c -- agent/overlay.c's peer list (region rule, online
 * filter) and the container address lookup, without any network. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent/overlay.h"

#include "common/banned.h"

static json_t *peers_of(const char *self, const char *nodes, const char *online)
{
    json_t *n = json_loads(nodes, 0, NULL), *o = json_loads(online, 0, NULL), *p;
    cr_assert_not_null(n);
    cr_assert_not_null(o);
    p = overlay_peers(self, n, o);
    json_decref(n);
    json_decref(o);
    return p;
}

static void expect(json_t *got, const char *want)
{
    json_t *w = json_loads(want, 0, NULL);
    char *g = json_dumps(got, JSON_COMPACT);
    cr_assert(json_equal(got, w), "peers %s, want %s", g, want);
    free(g);
    json_decref(w);
    json_decref(got);
}

Test(overlay_peers, same_region_private_other_region_public)
{
    expect(peers_of("a",
                    "{\"a\":{\"private_ip\":\"10.0.0.1\",\"public_ip\":\"1.1.1.1\"},"
                    "\"b\":{\"private_ip\":\"10.0.0.2\",\"public_ip\":\"1.1.1.2\"},"
                    "\"c\":{\"private_ip\":\"10.0.0.3\",\"public_ip\":\"1.1.1.3\","
                    "\"labels\":[\"az=x\",\"region=eu\"]}}",
                    "{\"a\":{},\"b\":{},\"c\":{}}"),
           "[\"1.1.1.3\",\"10.0.0.2\"]");
    /* the same, seen from c (region eu): both others are in region default */
    expect(peers_of("c",
                    "{\"a\":{\"private_ip\":\"10.0.0.1\",\"public_ip\":\"1.1.1.1\"},"
                    "\"b\":{\"private_ip\":\"10.0.0.2\",\"public_ip\":\"1.1.1.2\"},"
                    "\"c\":{\"private_ip\":\"10.0.0.3\",\"labels\":[\"region=eu\"]}}",
                    "{\"a\":{},\"b\":{},\"c\":{}}"),
           "[\"1.1.1.1\",\"1.1.1.2\"]");
}

Test(overlay_peers, offline_self_and_unusable_nodes_are_left_out)
{
    expect(peers_of("a",
                    "{\"a\":{\"private_ip\":\"10.0.0.1\"},"
                    "\"b\":{\"private_ip\":\"10.0.0.2\"},"  /* offline */
                    "\"c\":{\"private_ip\":\"not-an-ip\"}," /* no usable address */
                    "\"d\":{\"public_ip\":\"1.1.1.4\"},"    /* no private: public */
                    "\"e\":\"garbage\","                    /* not an object */
                    "\"f\":{\"private_ip\":\"10.0.0.4\"},"  /* same address as g */
                    "\"g\":{\"private_ip\":\"10.0.0.4\"}}",
                    "{\"a\":{},\"c\":{},\"d\":{},\"e\":{},\"f\":{},\"g\":{}}"),
           "[\"1.1.1.4\",\"10.0.0.4\"]");
    expect(peers_of("a", "{}", "{}"), "[]");
    expect(peers_of("a", "{\"b\":{\"private_ip\":\"10.0.0.2\"}}", "{\"b\":1}"), "[\"10.0.0.2\"]");
}

Test(overlay_peers, container_ip_on_the_kontena_network)
{
    json_t *c = json_loads("{\"NetworkSettings\":{\"IPAddress\":\"\",\"Networks\":{"
                           "\"bridge\":{\"IPAddress\":\"172.17.0.2\"},"
                           "\"kontena\":{\"IPAddress\":\"10.81.128.7\"}}}}",
                           0, NULL);
    cr_assert_str_eq(overlay_container_ip(c), "10.81.128.7");
    json_decref(c);
    c = json_loads(
        "{\"NetworkSettings\":{\"Networks\":{\"bridge\":{\"IPAddress\":\"172.17.0.2\"}}}}", 0,
        NULL);
    cr_assert_null(overlay_container_ip(c));
    json_decref(c);
    cr_assert_null(overlay_container_ip(NULL));
}

Test(overlay_peers, announce_refuses_bad_input)
{
    struct err e = ERR_INIT;
    cr_assert_eq(overlay_announce(0, "eth0", "10.81.0.1", &e), ST_INVALID);
    cr_assert_eq(overlay_announce(1, "eth0", "nope", &e), ST_INVALID);
    cr_assert_eq(overlay_announce(1, "eth0", NULL, &e), ST_INVALID);
    cr_assert_eq(overlay_announce(1, "an-interface-name-too-long", "10.81.0.1", &e), ST_INVALID);
}
