/* tests/unit/test_wg.c -- agent/wg.c (WireGuard keys, UAPI reply parsing, device names) and
 * agent/overlay.c's peer plan (which pairs run plain and which over WireGuard), without any
 * network. The live device is exercised by test_multihost. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent/overlay.h"
#include "agent/wg.h"

#include "common/banned.h"

/* RFC 7748 §6.1: Alice's private and public X25519 keys. */
#define ALICE_PRIV "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define ALICE_PUB "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"

Test(wg, public_key_derivation_matches_rfc7748)
{
    struct wg_key k;
    char hex[2 * WG_KEY_LEN + 1];
    struct err e = ERR_INIT;

    cr_assert_eq(wg_key_from_hex(ALICE_PRIV, k.priv), 0);
    cr_assert_eq(wg_key_derive(&k, &e), ST_OK, "%s", e.msg);
    wg_key_to_hex(k.pub, hex);
    cr_assert_str_eq(hex, ALICE_PUB);
}

Test(wg, generated_keys_are_clamped_distinct_and_round_trip)
{
    struct wg_key a, b, c;
    char b64[WG_KEY_B64_LEN + 1], hex[2 * WG_KEY_LEN + 1];
    unsigned char back[WG_KEY_LEN];
    struct err e = ERR_INIT;

    cr_assert_eq(wg_key_generate(&a, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(wg_key_generate(&b, &e), ST_OK, "%s", e.msg);
    cr_assert_neq(memcmp(a.priv, b.priv, WG_KEY_LEN), 0);
    cr_assert_eq(a.priv[0] & 7, 0);
    cr_assert_eq(a.priv[31] & 128, 0);
    cr_assert_eq(a.priv[31] & 64, 64);
    /* the public key follows from the private one */
    memcpy(c.priv, a.priv, WG_KEY_LEN);
    cr_assert_eq(wg_key_derive(&c, &e), ST_OK);
    cr_assert_eq(memcmp(c.pub, a.pub, WG_KEY_LEN), 0);
    wg_key_to_b64(a.pub, b64);
    cr_assert_eq(strlen(b64), WG_KEY_B64_LEN);
    cr_assert_eq(wg_key_from_b64(b64, back), 0);
    cr_assert_eq(memcmp(back, a.pub, WG_KEY_LEN), 0);
    wg_key_to_hex(a.pub, hex);
    cr_assert_eq(wg_key_from_hex(hex, back), 0);
    cr_assert_eq(memcmp(back, a.pub, WG_KEY_LEN), 0);
}

Test(wg, bad_encodings_are_refused)
{
    unsigned char k[WG_KEY_LEN];

    cr_assert_eq(wg_key_from_b64(NULL, k), -1);
    cr_assert_eq(wg_key_from_b64("", k), -1);
    cr_assert_eq(wg_key_from_b64("abc=", k), -1);
    cr_assert_eq(wg_key_from_b64("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=", k), -1);
    cr_assert_eq(wg_key_from_b64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", k), -1);
    cr_assert_eq(wg_key_from_hex(ALICE_PRIV "00", k), -1);
    {
        char bad[] = ALICE_PRIV;
        bad[10] = 'z';
        cr_assert_eq(wg_key_from_hex(bad, k), -1);
        cr_assert_eq(wg_key_from_hex(ALICE_PRIV, k), 0);
    }
}

Test(wg, uapi_get_reply_is_parsed)
{
    const char *reply = "private_key=" ALICE_PRIV "\n"
                        "listen_port=51820\n"
                        "public_key=" ALICE_PUB "\n"
                        "endpoint=10.250.0.12:51820\n"
                        "allowed_ip=169.254.81.2/32\n"
                        "last_handshake_time_sec=1700000000\n"
                        "rx_bytes=10\n"
                        "public_key=" ALICE_PRIV "\n"
                        "allowed_ip=169.254.81.3/32\n"
                        "allowed_ip=169.254.81.4/32\n"
                        "errno=0\n\n";
    json_t *g = wg_parse_get(reply), *p;

    cr_assert_str_eq(json_string_value(json_object_get(g, "private_key")), ALICE_PRIV);
    cr_assert_eq(json_integer_value(json_object_get(g, "listen_port")), 51820);
    cr_assert_eq(json_object_size(json_object_get(g, "peers")), 2);
    p = json_object_get(json_object_get(g, "peers"), ALICE_PUB);
    cr_assert_str_eq(json_string_value(json_object_get(p, "endpoint")), "10.250.0.12:51820");
    cr_assert_eq(json_array_size(json_object_get(p, "allowed_ips")), 1);
    p = json_object_get(json_object_get(g, "peers"), ALICE_PRIV);
    cr_assert_null(json_object_get(p, "endpoint"));
    cr_assert_eq(json_array_size(json_object_get(p, "allowed_ips")), 2);
    json_decref(g);
    g = wg_parse_get(NULL);
    cr_assert_eq(json_object_size(json_object_get(g, "peers")), 0);
    json_decref(g);
}

Test(wg, device_names_fit_and_differ_per_node_and_address)
{
    char a[16], b[16], c[16], d[16];

    wg_ifname("node-1", "10.250.0.11", a);
    wg_ifname("node-1", "10.250.0.11", b);
    wg_ifname("node-1", "10.250.1.11", c);
    wg_ifname("node-2", "10.250.0.11", d);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert_str_neq(a, d);
    cr_assert_eq(strlen(a), 11);
    cr_assert_eq(strncmp(a, "kwg", 3), 0);
}

/* --- the peer plan --------------------------------------------------------------------- */

#define KEY_B "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr0676pjqqbTmo="

static json_t *plan_of(const char *self, const char *nodes, const char *trusted)
{
    json_t *n = json_loads(nodes, 0, NULL), *t = trusted ? json_loads(trusted, 0, NULL) : NULL;
    json_t *online = json_object(), *p;
    const char *k;
    json_t *v;

    cr_assert_not_null(n);
    json_object_foreach(n, k, v) json_object_set_new(online, k, json_object());
    p = overlay_plan(self, n, online, t);
    json_decref(n);
    json_decref(t);
    json_decref(online);
    return p;
}

static const json_t *entry(const json_t *plan, const char *node)
{
    size_t i;
    json_t *p;
    json_array_foreach(
        plan, i, p) if (!strcmp(json_string_value(json_object_get(p, "node")), node)) return p;
    cr_assert_fail("no plan entry for %s", node);
    return NULL;
}

#define NODES3                                                                                     \
    "{\"a\":{\"node_number\":1,\"private_ip\":\"10.0.0.1\",\"wireguard_public_key\":\"" KEY_B      \
    "\"},"                                                                                         \
    "\"b\":{\"node_number\":2,\"private_ip\":\"10.0.0.2\",\"wireguard_public_key\":\"" KEY_B       \
    "\"},"                                                                                         \
    "\"c\":{\"node_number\":3,\"private_ip\":\"10.0.1.3\",\"wireguard_public_key\":\"" KEY_B       \
    "\"},"                                                                                         \
    "\"d\":{\"node_number\":4,\"private_ip\":\"10.0.1.4\"}}"

Test(overlay_plan, no_trusted_subnets_encrypts_every_pair)
{
    json_t *p = plan_of("a", NODES3, NULL);

    cr_assert_eq(json_array_size(p), 3);
    cr_assert(json_is_true(json_object_get(entry(p, "b"), "encrypted")));
    cr_assert_str_eq(json_string_value(json_object_get(entry(p, "b"), "dst")), "169.254.81.2");
    cr_assert_str_eq(json_string_value(json_object_get(entry(p, "c"), "dst")), "169.254.81.3");
    cr_assert_str_eq(json_string_value(json_object_get(entry(p, "c"), "ip")), "10.0.1.3");
    /* no published key: no destination at all, never plain instead */
    cr_assert(json_is_true(json_object_get(entry(p, "d"), "encrypted")));
    cr_assert(json_is_null(json_object_get(entry(p, "d"), "dst")));
    json_decref(p);
}

Test(overlay_plan, a_pair_is_plain_only_when_both_ends_are_trusted)
{
    json_t *p = plan_of("a", NODES3, "[\"10.0.0.0/24\"]");

    cr_assert(json_is_false(json_object_get(entry(p, "b"), "encrypted")));
    cr_assert_str_eq(json_string_value(json_object_get(entry(p, "b"), "dst")), "10.0.0.2");
    cr_assert(json_is_true(json_object_get(entry(p, "c"), "encrypted")));
    cr_assert(json_is_null(json_object_get(entry(p, "d"), "dst")));
    json_decref(p);
    /* the same from an untrusted node's side: encrypted towards trusted ones too */
    p = plan_of("c", NODES3, "[\"10.0.0.0/24\"]");
    cr_assert(json_is_true(json_object_get(entry(p, "a"), "encrypted")));
    cr_assert_str_eq(json_string_value(json_object_get(entry(p, "a"), "dst")), "169.254.81.1");
    json_decref(p);
    /* everything trusted, with a /32 and a bad entry ignored */
    p = plan_of("c", NODES3, "[\"bogus\", \"10.0.1.3/32\", \"10.0.0.0/16\", 7]");
    cr_assert(json_is_false(json_object_get(entry(p, "a"), "encrypted")));
    cr_assert(json_is_false(json_object_get(entry(p, "d"), "encrypted")));
    cr_assert_str_eq(json_string_value(json_object_get(entry(p, "d"), "dst")), "10.0.1.4");
    json_decref(p);
}

Test(overlay_plan, subnet_membership)
{
    json_t *t = json_loads("[\"192.168.0.0/16\", \"10.1.2.3\", \"0.0.0.0/0x\", \"172.16.0.0/33\"]",
                           0, NULL);
    cr_assert(overlay_in_subnets("192.168.200.1", t));
    cr_assert(overlay_in_subnets("10.1.2.3", t));
    cr_assert_not(overlay_in_subnets("10.1.2.4", t));
    cr_assert_not(overlay_in_subnets("172.16.0.1", t));
    cr_assert_not(overlay_in_subnets("nonsense", t));
    cr_assert_not(overlay_in_subnets(NULL, t));
    json_decref(t);
    t = json_loads("[\"0.0.0.0/0\"]", 0, NULL);
    cr_assert(overlay_in_subnets("8.8.8.8", t));
    json_decref(t);
}
