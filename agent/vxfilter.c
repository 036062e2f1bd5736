/* agent/vxfilter.c -- the VXLAN admission chain's text: rendered from the peer plan, compared
 * with what iptables-save shows, turned into an iptables-restore transaction. No processes
 * here (overlay.c runs them), so all of it is unit-tested. See vxfilter.h. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "agent/vxfilter.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define RULE_PREFIX "-A " VXFILTER_CHAIN " "
#define INPUT_PREFIX "-A INPUT "

/* The buffers here have no cap, so appends cannot fail (xmalloc aborts on OOM). */
#define PUT(b, ...) (void)!buf_printf((b), __VA_ARGS__)

static int valid_ipv4(const char *s)
{
    struct in_addr a;
    return s && inet_pton(AF_INET, s, &a) == 1;
}

/* An interface name iptables takes as it is and prints back the same: no '+' (a wildcard
 * for iptables), no spaces or quotes that would change the rule's meaning. */
static int plain_ifname(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n >= 16)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *vxfilter_rules(const json_t *plan, const char *wg_if)
{
    size_t n = json_array_size(plan), k = 0, i;
    char **lines = xcalloc(n + 1, sizeof(*lines));
    struct buf b = BUF_INIT;
    const json_t *p;

    json_array_foreach(plan, i, p)
    {
        const char *dst = json_string_value(json_object_get(p, "dst"));
        if (!valid_ipv4(dst))
            continue; /* no forwarding entry (waiting for a key), or not an address */
        if (!json_is_true(json_object_get(p, "encrypted")))
            lines[k++] = xasprintf(RULE_PREFIX "-s %s/32 -j ACCEPT\n", dst);
        else if (plain_ifname(wg_if))
            lines[k++] = xasprintf(RULE_PREFIX "-s %s/32 -i %s -j ACCEPT\n", dst, wg_if);
    }
    qsort(lines, k, sizeof(*lines), cmp_str);
    for (i = 0; i < k; i++)
        if (i == 0 || strcmp(lines[i], lines[i - 1]) != 0)
            PUT(&b, "%s", lines[i]);
    for (i = 0; i < k; i++)
        free(lines[i]);
    free(lines);
    PUT(&b, RULE_PREFIX "-j DROP\n");
    return buf_take(&b);
}

char *vxfilter_restore(const char *save, const char *rules)
{
    struct buf have = BUF_INIT, out = BUF_INIT;
    int in_filter = 0, chain = 0, input_rules = 0, jumps = 0, jump_first = 0;
    const char *line = save ? save : "";
    char *res = NULL;

    while (*line) {
        size_t len = strcspn(line, "\n");
        const char *next = line + len + (line[len] == '\n');

        if (len > 0 && line[0] == '*') {
            in_filter = len == strlen("*filter") && !strncmp(line, "*filter", len);
        } else if (in_filter) {
            if (!strncmp(line, ":" VXFILTER_CHAIN " ", strlen(":" VXFILTER_CHAIN " "))) {
                chain = 1;
            } else if (!strncmp(line, RULE_PREFIX, strlen(RULE_PREFIX))) {
                PUT(&have, "%.*s\n", (int)len, line);
            } else if (!strncmp(line, INPUT_PREFIX, strlen(INPUT_PREFIX))) {
                size_t rest = len - strlen(INPUT_PREFIX);
                int is_jump = rest == strlen(VXFILTER_JUMP) &&
                              !strncmp(line + strlen(INPUT_PREFIX), VXFILTER_JUMP, rest);
                if (input_rules++ == 0)
                    jump_first = is_jump;
                jumps += is_jump;
            }
        }
        line = next;
    }
    if (chain && !strcmp(have.ptr ? have.ptr : "", rules) && jumps == 1 && jump_first)
        goto out; /* nothing differs */
    PUT(&out, "*filter\n");
    if (!chain || strcmp(have.ptr ? have.ptr : "", rules) != 0)
        PUT(&out, ":" VXFILTER_CHAIN " - [0:0]\n%s", rules);
    if (!(jumps == 1 && jump_first)) {
        /* Behind another INPUT rule the chain could be skipped (an earlier ACCEPT): the
         * jump must come first, and exactly once. */
        for (int j = 0; j < jumps; j++)
            PUT(&out, "-D INPUT " VXFILTER_JUMP "\n");
        PUT(&out, "-I INPUT 1 " VXFILTER_JUMP "\n");
    }
    PUT(&out, "COMMIT\n");
    res = buf_take(&out);
out:
    buf_release(&have);
    buf_release(&out);
    return res;
}
