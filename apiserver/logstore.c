/* apiserver/logstore.c -- per-grid segment files of JSON lines (see logstore.h).
 *
 * Each segment keeps in memory only an index of the file offset of every BLK-th line, so a
 * read at any id seeks straight to its block; ids within a segment are consecutive, so the
 * line of id i is line (i - first_id) of its segment. Readers copy the segment's committed
 * size under the grid's mutex and read the file without it: a line is only counted after it
 * was written completely, and a segment deleted meanwhile stays readable through an open fd
 * (a reader that could not even open it treats the ids as evicted).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apiserver/logstore.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define BLK 64                 /* lines per index block */
#define CUR_BUCKETS 4096
#define READ_CHUNK (64 * 1024)
#define LINE_MAX_BYTES (1 << 20) /* no stored line is longer: data is cut at 16 KiB */
#define CURSORS_SAVE_MS 1000
#define NAME_MAX_LEN 256
#define TIME_MAX_S 9000000000LL /* 2255-03-14: ns since the epoch still fit in int64 */

struct seg {
    int64_t first_id, count;
    uint64_t size;
    uint64_t *blk; /* blk[k] = offset of line k*BLK */
    size_t nblk, ablk;
};

struct cursor {
    struct cursor *next;
    char *id;
    int64_t ns;
    uint64_t gen;     /* batch in which batch_ns was taken */
    int64_t batch_ns; /* the cursor as it was before that batch */
};

struct gstore {
    struct gstore *next;
    char *name, *dir;
    pthread_mutex_t mu;
    struct seg *segs;
    size_t nseg, aseg;
    int fd; /* append fd of the last segment, -1 if none open */
    int64_t next_id;
    uint64_t total;
    struct cursor *cur[CUR_BUCKETS];
    size_t ncur;
    uint64_t gen;
    int cursors_dirty;
    int64_t cursors_saved_ms;
};

struct logstore {
    char *dir;
    int lock_fd; /* flock()ed <dir>/.lock: one apiserver per directory */
    uint64_t window, seg_max;
    pthread_mutex_t mu; /* the grid list */
    struct gstore *grids;
    logstore_notify_cb notify;
    void *notify_arg;
    uint64_t stored, dropped_dup, dropped_invalid, evicted; /* __atomic */
};

/* --- time ------------------------------------------------------------------------------ */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int64_t logstore_time_parse(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, oh, om;
    int64_t frac = 0, ns, t;
    const char *p;

    if (!s || !*s)
        return -1;
    if (strspn(s, "0123456789") == strlen(s) || (strchr(s, '.') && !strchr(s, '-') &&
                                                  !strchr(s, 'T'))) {
        /* Unix seconds, optional fraction */
        char *end;
        long long whole;
        errno = 0;
        whole = strtoll(s, &end, 10);
        if (errno || whole < 0 || whole > TIME_MAX_S || end == s)
            return -1;
        if (*end == '.') {
            int n = 0;
            for (end++; *end >= '0' && *end <= '9'; end++, n++)
                if (n < 9)
                    frac = frac * 10 + (*end - '0');
            if (n == 0)
                return -1;
            for (; n < 9; n++)
                frac *= 10;
        }
        if (*end)
            return -1;
        return (int64_t)whole * 1000000000LL + frac;
    }
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return -1;
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 9)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 9; n++)
            frac *= 10;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = (int64_t)timegm(&tm);
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && !digits(p + 1, 2, &oh) && p[3] == ':' &&
               !digits(p + 4, 2, &om)) {
        int64_t off = (int64_t)oh * 3600 + om * 60;
        t = *p == '+' ? t - off : t + off;
        p += 6;
    } else {
        return -1;
    }
    if (*p || t < 0 || t > TIME_MAX_S)
        return -1;
    ns = t * 1000000000LL + frac;
    return ns;
}

void logstore_time_format(int64_t ns, char *out)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    char buf[64];

    gmtime_r(&t, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
             tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
             (long long)(ns % 1000000000LL));
    memcpy(out, buf, LOGSTORE_TIME_LEN);
    out[LOGSTORE_TIME_LEN] = '\0';
}

/* --- JSON text ------------------------------------------------------------------------- */

enum status logstore_json_escape(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 0;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            elen = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            elen = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2);
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (elen) {
            if (buf_append(b, s + start, i - start) != ST_OK || buf_append(b, esc, elen) != ST_OK)
                return ST_INVALID;
            start = i + 1;
        }
    }
    return buf_append(b, s + start, n - start);
}

/* Valid UTF-8 prefix length of s[0..n) with invalid bytes: returns a fresh copy where every
 * invalid byte is replaced by '?', so every stored line is valid JSON. */
static char *utf8_clean(const char *s, size_t n, size_t *outlen)
{
    char *o = xmalloc(n + 1);
    size_t i = 0, k = 0;

    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t j = 1; ok && j < len; j++)
            if (((unsigned char)s[i + j] >> 6) != 2)
                ok = 0;
        if (ok && len == 2 && c < 0xc2)
            ok = 0;
        if (ok && c == 0) /* NUL would end strings elsewhere */
            ok = 0;
        if (!ok) {
            o[k++] = '?';
            i++;
            continue;
        }
        memcpy(o + k, s + i, len);
        k += len;
        i += len;
    }
    o[k] = '\0';
    *outlen = k;
    return o;
}

static int add_str(struct buf *b, const char *s)
{
    size_t n;
    char *c = utf8_clean(s, strlen(s), &n);
    int ok = buf_append(b, "\"", 1) == ST_OK && logstore_json_escape(b, c, n) == ST_OK &&
             buf_append(b, "\"", 1) == ST_OK;
    free(c);
    return ok;
}

/* --- cursors ---------------------------------------------------------------------------- */

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % CUR_BUCKETS;
}

static struct cursor *cursor_get(struct gstore *g, const char *id, int create)
{
    unsigned h = hash_str(id);
    struct cursor *c;

    for (c = g->cur[h]; c; c = c->next)
        if (!strcmp(c->id, id))
            return c;
    if (!create)
        return NULL;
    c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    c->ns = -1;
    c->batch_ns = -1;
    c->next = g->cur[h];
    g->cur[h] = c;
    g->ncur++;
    return c;
}

static void cursors_save(struct gstore *g)
{
    json_t *o = json_object(), *cs = json_object();
    char *path = xasprintf("%s/cursors.json", g->dir), *tmp = xasprintf("%s.tmp", path);
    char t[LOGSTORE_TIME_LEN + 1];

    for (size_t i = 0; i < CUR_BUCKETS; i++)
        for (struct cursor *c = g->cur[i]; c; c = c->next)
            if (c->ns >= 0) {
                logstore_time_format(c->ns, t);
                json_object_set_new(cs, c->id, json_string(t));
            }
    json_object_set_new(o, "upto", json_integer(g->next_id - 1));
    json_object_set_new(o, "cursors", cs);
    if (json_dump_file(o, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0)
        log_warn("msg=\"cannot save the log cursors of grid '%s' to '%s': %s\"", g->name, path,
                 strerror(errno));
    else
        g->cursors_dirty = 0;
    g->cursors_saved_ms = time_mono_ms();
    json_decref(o);
    free(tmp);
    free(path);
}

/* --- line fields ------------------------------------------------------------------------ */

static int64_t line_id(const char *l, size_t n)
{
    int64_t v = 0;
    size_t i = 6;

    if (n < 8 || memcmp(l, "{\"id\":", 6) != 0)
        return -1;
    for (; i < n && l[i] >= '0' && l[i] <= '9'; i++)
        v = v * 10 + (l[i] - '0');
    return i < n && l[i] == ',' ? v : -1;
}

/* The created_at of a stored line (LOGSTORE_TIME_LEN chars) or NULL. */
static const char *line_time(const char *l, size_t n)
{
    const char *p = memmem(l, n, ",\"created_at\":\"", 15);
    if (!p || (size_t)(p + 15 + LOGSTORE_TIME_LEN - l) > n)
        return NULL;
    return p + 15;
}

/* The container_id of a stored line, into out (size outsz) or 0 if none. */
static int line_container(const char *l, size_t n, char *out, size_t outsz)
{
    const char *p = memmem(l, n, ",\"container_id\":\"", 17), *q;
    if (!p)
        return 0;
    p += 17;
    q = memchr(p, '"', n - (size_t)(p - l));
    if (!q || (size_t)(q - p) >= outsz)
        return 0;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 1;
}

/* --- segments --------------------------------------------------------------------------- */

static char *seg_path(const struct gstore *g, int64_t first_id)
{
    return xasprintf("%s/%020lld.seg", g->dir, (long long)first_id);
}

static void seg_note_line(struct seg *sg, uint64_t off)
{
    if (sg->count % BLK == 0) {
        if (sg->nblk == sg->ablk) {
            sg->ablk = sg->ablk ? sg->ablk * 2 : 16;
            sg->blk = xrealloc(sg->blk, sg->ablk * sizeof(*sg->blk));
        }
        sg->blk[sg->nblk++] = off;
    }
    sg->count++;
}

/* Scan an existing segment file: count its lines, index them, cut a partial last line.
 * Calls fn for every line when given. */
static int seg_scan(struct gstore *g, struct seg *sg,
                    void (*fn)(struct gstore *, const char *, size_t))
{
    char *path = seg_path(g, sg->first_id);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct buf b = BUF_INIT;
    uint64_t base = 0;
    char chunk[READ_CHUNK];
    ssize_t n;
    int rc = 0;

    if (fd == -1) {
        log_warn("msg=\"cannot open log segment '%s': %s\"", path, strerror(errno));
        free(path);
        return -1;
    }
    buf_init(&b, LINE_MAX_BYTES + READ_CHUNK);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        size_t start = 0;
        if (buf_append(&b, chunk, (size_t)n) != ST_OK) {
            rc = -1; /* a line longer than we ever write: stop indexing here */
            break;
        }
        for (;;) {
            char *nl = memchr(b.ptr + start, '\n', b.len - start);
            size_t len;
            if (!nl)
                break;
            len = (size_t)(nl - (b.ptr + start));
            if (fn)
                fn(g, b.ptr + start, len);
            seg_note_line(sg, base + start);
            start += len + 1;
        }
        buf_consume(&b, start);
        base += start;
    }
    if (b.len || rc) {
        log_warn("msg=\"log segment '%s': cutting a partial last line\"", path);
        if (ftruncate(fd, (off_t)base) != 0)
            rc = -1;
    }
    sg->size = base;
    close(fd);
    buf_release(&b);
    free(path);
    return rc;
}

static void seg_free(struct seg *sg)
{
    free(sg->blk);
    sg->blk = NULL;
}

static void remove_oldest(struct logstore *s, struct gstore *g)
{
    char *path = seg_path(g, g->segs[0].first_id);

    if (unlink(path) != 0 && errno != ENOENT)
        log_warn("msg=\"cannot delete log segment '%s': %s\"", path, strerror(errno));
    free(path);
    g->total -= g->segs[0].size;
    seg_free(&g->segs[0]);
    memmove(g->segs, g->segs + 1, (g->nseg - 1) * sizeof(*g->segs));
    g->nseg--;
    __atomic_add_fetch(&s->evicted, 1, __ATOMIC_RELAXED);
}

/* Open a new last segment starting at next_id. */
static enum status seg_roll(struct gstore *g, struct err *e)
{
    char *path;
    struct seg *sg;

    if (g->fd != -1) {
        close(g->fd);
        g->fd = -1;
    }
    if (g->nseg && g->segs[g->nseg - 1].count == 0) {
        sg = &g->segs[g->nseg - 1]; /* an empty last segment: reuse */
    } else {
        if (g->nseg == g->aseg) {
            g->aseg = g->aseg ? g->aseg * 2 : 8;
            g->segs = xrealloc(g->segs, g->aseg * sizeof(*g->segs));
        }
        sg = &g->segs[g->nseg++];
        memset(sg, 0, sizeof(*sg));
        sg->first_id = g->next_id;
    }
    path = seg_path(g, sg->first_id);
    g->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (g->fd == -1) {
        enum status st = err_set(e, ST_IO, "cannot open log segment '%s': %s", path,
                                 strerror(errno));
        if (sg->count == 0)
            g->nseg--;
        free(path);
        return st;
    }
    free(path);
    return ST_OK;
}

/* --- grids ------------------------------------------------------------------------------ */

static int grid_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 128 && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->first_id < y->first_id ? -1 : x->first_id > y->first_id;
}

static void recover_line(struct gstore *g, const char *l, size_t n)
{
    char cid[NAME_MAX_LEN];
    const char *t;
    int64_t id = line_id(l, n), ns;
    struct cursor *c;

    /* only lines after the saved cursors matter; g->next_id holds "upto + 1" here */
    if (id < g->next_id)
        return;
    t = line_time(l, n);
    if (!t || !line_container(l, n, cid, sizeof(cid)))
        return;
    {
        char tb[LOGSTORE_TIME_LEN + 1];
        memcpy(tb, t, LOGSTORE_TIME_LEN);
        tb[LOGSTORE_TIME_LEN] = '\0';
        ns = logstore_time_parse(tb);
    }
    c = cursor_get(g, cid, 1);
    if (ns > c->ns)
        c->ns = ns;
    g->cursors_dirty = 1;
}

static struct gstore *grid_new(struct logstore *s, const char *name)
{
    struct gstore *g = xcalloc(1, sizeof(*g));

    g->name = xstrdup(name);
    g->dir = xasprintf("%s/%s", s->dir, name);
    pthread_mutex_init(&g->mu, NULL);
    g->fd = -1;
    g->next_id = 1;
    return g;
}

/* Load a grid directory: segments, next id, cursors. */
static struct gstore *grid_load(struct logstore *s, const char *name)
{
    struct gstore *g = grid_new(s, name);
    DIR *d = opendir(g->dir);
    struct dirent *de;
    int64_t upto = 0;
    char *cpath;
    json_t *cj;

    if (!d)
        return g;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long long first = strtoll(de->d_name, &end, 10);
        if (first < 1 || strcmp(end, ".seg") != 0)
            continue;
        if (g->nseg == g->aseg) {
            g->aseg = g->aseg ? g->aseg * 2 : 8;
            g->segs = xrealloc(g->segs, g->aseg * sizeof(*g->segs));
        }
        memset(&g->segs[g->nseg], 0, sizeof(g->segs[0]));
        g->segs[g->nseg++].first_id = first;
    }
    closedir(d);
    qsort(g->segs, g->nseg, sizeof(*g->segs), cmp_seg);

    cpath = xasprintf("%s/cursors.json", g->dir);
    cj = json_load_file(cpath, 0, NULL);
    free(cpath);
    if (json_is_object(cj)) {
        const char *k;
        json_t *v;
        upto = json_integer_value(json_object_get(cj, "upto"));
        json_object_foreach(json_object_get(cj, "cursors"), k, v)
        {
            int64_t ns = logstore_time_parse(json_string_value(v));
            if (ns >= 0 && strlen(k) < NAME_MAX_LEN)
                cursor_get(g, k, 1)->ns = ns;
        }
    }
    json_decref(cj);
    /* recover_line() skips ids <= upto; next_id is set for real below */
    g->next_id = upto + 1;
    for (size_t i = 0; i < g->nseg; i++) {
        struct seg *sg = &g->segs[i];
        /* Segments entirely before upto need no line callback: just index them. */
        int need_lines = i + 1 == g->nseg || g->segs[i + 1].first_id > upto + 1;
        seg_scan(g, sg, need_lines ? recover_line : NULL);
        g->total += sg->size;
    }
    /* Drop empty segments but the last. */
    for (size_t i = 0; i + 1 < g->nseg;) {
        if (g->segs[i].count == 0) {
            char *p = seg_path(g, g->segs[i].first_id);
            unlink(p);
            free(p);
            seg_free(&g->segs[i]);
            memmove(g->segs + i, g->segs + i + 1, (g->nseg - i - 1) * sizeof(*g->segs));
            g->nseg--;
        } else {
            i++;
        }
    }
    g->next_id = g->nseg ? g->segs[g->nseg - 1].first_id + g->segs[g->nseg - 1].count : 1;
    if (g->next_id <= upto) /* segments lost: never reuse ids the cursors saw */
        g->next_id = upto + 1;
    if (g->nseg && g->segs[g->nseg - 1].count == 0 &&
        g->segs[g->nseg - 1].first_id != g->next_id) {
        /* an empty last segment with a stale name */
        char *p = seg_path(g, g->segs[g->nseg - 1].first_id);
        unlink(p);
        free(p);
        seg_free(&g->segs[--g->nseg]);
    }
    log_info("msg=\"log window of grid '%s': %zu segments, %llu bytes, ids up to %lld, %zu "
             "cursors\"",
             name, g->nseg, (unsigned long long)g->total, (long long)g->next_id - 1, g->ncur);
    return g;
}

static struct gstore *grid_get(struct logstore *s, const char *name, int create)
{
    struct gstore *g;

    if (!grid_name_ok(name))
        return NULL;
    pthread_mutex_lock(&s->mu);
    for (g = s->grids; g; g = g->next)
        if (!strcmp(g->name, name))
            break;
    if (!g && create) {
        char *dir = xasprintf("%s/%s", s->dir, name);
        if (mkdir(dir, 0750) != 0 && errno != EEXIST)
            log_warn("msg=\"cannot create log directory '%s': %s\"", dir, strerror(errno));
        free(dir);
        g = grid_new(s, name);
        g->next = s->grids;
        s->grids = g;
    }
    pthread_mutex_unlock(&s->mu);
    return g;
}

static void grid_free(struct gstore *g)
{
    if (g->fd != -1)
        close(g->fd);
    for (size_t i = 0; i < g->nseg; i++)
        seg_free(&g->segs[i]);
    free(g->segs);
    for (size_t i = 0; i < CUR_BUCKETS; i++)
        for (struct cursor *c = g->cur[i], *n; c; c = n) {
            n = c->next;
            free(c->id);
            free(c);
        }
    pthread_mutex_destroy(&g->mu);
    free(g->name);
    free(g->dir);
    free(g);
}

/* --- open / close ------------------------------------------------------------------------ */

static int mkdir_p(const char *dir)
{
    char *p = xstrdup(dir);
    int rc = 0;

    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0750) != 0 && errno != EEXIST)
            rc = -1;
        *q = '/';
    }
    if (mkdir(p, 0750) != 0 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

/* Delete the grids' files of dir when its epoch is not ours; write ours. */
static void check_epoch(const char *dir, const char *epoch)
{
    char *path = xasprintf("%s/epoch", dir), *tmp = xasprintf("%s/epoch.tmp", dir);
    char have[128] = "";
    FILE *f = fopen(path, "r");
    DIR *d;
    struct dirent *de;

    if (f) {
        if (!fgets(have, sizeof(have), f))
            have[0] = '\0';
        fclose(f);
        have[strcspn(have, "\n")] = '\0';
    }
    if (strcmp(have, epoch) != 0) {
        {
            d = opendir(dir);
            while (d && (de = readdir(d)) != NULL) {
                char *gd;
                DIR *gdir;
                struct dirent *ge;
                if (!grid_name_ok(de->d_name))
                    continue;
                gd = xasprintf("%s/%s", dir, de->d_name);
                gdir = opendir(gd);
                while (gdir && (ge = readdir(gdir)) != NULL) {
                    if (strstr(ge->d_name, ".seg") || !strncmp(ge->d_name, "cursors.json", 12)) {
                        char *fp = xasprintf("%s/%s", gd, ge->d_name);
                        unlink(fp);
                        free(fp);
                    }
                }
                if (gdir)
                    closedir(gdir);
                rmdir(gd);
                free(gd);
            }
            if (d)
                closedir(d);
            if (have[0])
                log_warn("msg=\"log directory '%s' belonged to another cluster (epoch %s, ours "
                         "%s): its windows were deleted\"",
                         dir, have, epoch);
        }
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", epoch) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
            log_warn("msg=\"cannot write '%s': %s\"", path, strerror(errno));
    }
    free(path);
    free(tmp);
}

enum status logstore_open(const char *dir, uint64_t window_bytes, const char *epoch,
                          struct logstore **out, struct err *e)
{
    struct logstore *s;
    DIR *d;
    struct dirent *de;
    char *probe;
    int fd;

    *out = NULL;
    if (!dir || !*dir)
        return err_set(e, ST_INVALID, "no log directory");
    if (mkdir_p(dir) != 0)
        return err_set(e, ST_IO, "cannot create log directory '%s': %s", dir, strerror(errno));
    probe = xasprintf("%s/.lock", dir);
    fd = open(probe, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        enum status st = err_set(e, ST_IO, "cannot write to log directory '%s': %s", dir,
                                 strerror(errno));
        free(probe);
        return st;
    }
    free(probe);
    /* Two apiservers appending to the same segments would corrupt them. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        enum status st = err_set(e, ST_CONFLICT,
                                 "log directory '%s' is in use by another apiserver", dir);
        close(fd);
        return st;
    }
    if (epoch && *epoch)
        check_epoch(dir, epoch);
    s = xcalloc(1, sizeof(*s));
    s->lock_fd = fd;
    s->dir = xstrdup(dir);
    s->window = window_bytes < 65536 ? 65536 : window_bytes;
    s->seg_max = s->window / 8;
    if (s->seg_max < 16384)
        s->seg_max = 16384;
    if (s->seg_max > 64ull << 20)
        s->seg_max = 64ull << 20;
    pthread_mutex_init(&s->mu, NULL);
    d = opendir(dir);
    while (d && (de = readdir(d)) != NULL) {
        struct gstore *g;
        if (!grid_name_ok(de->d_name))
            continue;
        g = grid_load(s, de->d_name);
        g->next = s->grids;
        s->grids = g;
    }
    if (d)
        closedir(d);
    *out = s;
    return ST_OK;
}

void logstore_close(struct logstore *s)
{
    int empty = 1;

    if (!s)
        return;
    for (struct gstore *g = s->grids, *n; g; g = n) {
        n = g->next;
        if (g->cursors_dirty)
            cursors_save(g);
        if (g->nseg > 1 || (g->nseg == 1 && g->segs[0].count > 0))
            empty = 0;
        else
            rmdir(g->dir); /* fails (and stays) when it holds anything */
        grid_free(g);
    }
    if (empty) {
        /* nothing kept: leave no trace (a test's server, a master that never got a line) */
        char *p = xasprintf("%s/epoch", s->dir);
        unlink(p);
        free(p);
        p = xasprintf("%s/.lock", s->dir);
        unlink(p);
        free(p);
        rmdir(s->dir);
    }
    pthread_mutex_destroy(&s->mu);
    close(s->lock_fd);
    free(s->dir);
    free(s);
}

void logstore_set_notify(struct logstore *s, logstore_notify_cb cb, void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->notify = cb;
    s->notify_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

void logstore_totals(struct logstore *s, struct logstore_totals *t)
{
    memset(t, 0, sizeof(*t));
    if (!s)
        return;
    t->stored = __atomic_load_n(&s->stored, __ATOMIC_RELAXED);
    t->dropped_dup = __atomic_load_n(&s->dropped_dup, __ATOMIC_RELAXED);
    t->dropped_invalid = __atomic_load_n(&s->dropped_invalid, __ATOMIC_RELAXED);
    t->evicted_segments = __atomic_load_n(&s->evicted, __ATOMIC_RELAXED);
    pthread_mutex_lock(&s->mu);
    for (struct gstore *g = s->grids; g; g = g->next) {
        pthread_mutex_lock(&g->mu);
        t->bytes += g->total;
        pthread_mutex_unlock(&g->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

/* --- append ------------------------------------------------------------------------------ */

static int item_ok(const struct log_item *it)
{
    size_t n;
    if (!it->container_id || !it->name || !it->node || !it->type || !it->time || !it->data)
        return 0;
    n = strlen(it->container_id);
    if (n == 0 || n >= NAME_MAX_LEN || strspn(it->container_id, "0123456789abcdefABCDEF") != n)
        return 0;
    if (!*it->name || strlen(it->name) >= NAME_MAX_LEN || strlen(it->node) >= NAME_MAX_LEN)
        return 0;
    if ((it->stack && strlen(it->stack) >= NAME_MAX_LEN) ||
        (it->service && strlen(it->service) >= NAME_MAX_LEN))
        return 0;
    return !strcmp(it->type, "stdout") || !strcmp(it->type, "stderr");
}

static int render_line(struct buf *b, int64_t id, const char *grid, const struct log_item *it,
                       const char *t)
{
    size_t dn = strlen(it->data), cn;
    char *data;
    int ok;

    if (dn > LOGSTORE_DATA_MAX) {
        dn = LOGSTORE_DATA_MAX; /* cut, and not inside a UTF-8 sequence */
        while (dn > 0 && ((unsigned char)it->data[dn] >> 6) == 2)
            dn--;
    }
    ok = buf_printf(b, "{\"id\":%lld,\"created_at\":\"%s\",\"name\":", (long long)id, t) == ST_OK &&
         add_str(b, it->name) && buf_puts(b, ",\"container_id\":") == ST_OK &&
         add_str(b, it->container_id) && buf_puts(b, ",\"node\":{\"name\":") == ST_OK &&
         add_str(b, it->node) && buf_puts(b, "},\"grid\":{\"id\":") == ST_OK && add_str(b, grid) &&
         buf_puts(b, ",\"name\":") == ST_OK && add_str(b, grid) && buf_puts(b, "},") == ST_OK;
    if (ok && it->service) {
        const char *stack = it->stack ? it->stack : "null";
        char *sid = xasprintf("%s/%s", grid, stack), *vid = xasprintf("%s/%s/%s", grid, stack,
                                                                        it->service);
        ok = buf_puts(b, "\"stack\":{\"id\":") == ST_OK && add_str(b, sid) &&
             buf_puts(b, ",\"name\":") == ST_OK && add_str(b, stack) &&
             buf_puts(b, "},\"service\":{\"id\":") == ST_OK && add_str(b, vid) &&
             buf_puts(b, ",\"name\":") == ST_OK && add_str(b, it->service) &&
             buf_puts(b, "},") == ST_OK;
        free(sid);
        free(vid);
    } else if (ok) {
        ok = buf_puts(b, "\"stack\":null,\"service\":null,") == ST_OK;
    }
    if (ok && it->instance >= 0)
        ok = buf_printf(b, "\"instance\":%ld,", it->instance) == ST_OK;
    else if (ok)
        ok = buf_puts(b, "\"instance\":null,") == ST_OK;
    if (!ok)
        return 0;
    data = utf8_clean(it->data, dn, &cn);
    ok = buf_printf(b, "\"type\":\"%s\",\"data\":\"", it->type) == ST_OK &&
         logstore_json_escape(b, data, cn) == ST_OK && buf_puts(b, "\"}\n") == ST_OK;
    free(data);
    return ok;
}

struct undo {
    struct cursor *c;
    int64_t ns, batch_ns;
    uint64_t gen;
};

enum status logstore_append(struct logstore *s, const char *grid, const struct log_item *items,
                            size_t n, size_t *stored, size_t *dropped, logstore_line_cb cb,
                            void *cb_arg, struct err *e)
{
    struct gstore *g = grid_get(s, grid, 1);
    struct buf b = BUF_INIT;
    size_t nst = 0, ndup = 0, ninv = 0, *ends = NULL, *idx = NULL;
    struct undo *undo = NULL;
    size_t nundo = 0;
    enum status st = ST_OK;
    struct seg *sg;
    int64_t id0;
    char (*times)[LOGSTORE_TIME_LEN + 1] = NULL;
    logstore_notify_cb notify;
    void *notify_arg;

    if (stored)
        *stored = 0;
    if (dropped)
        *dropped = 0;
    if (!g)
        return err_set(e, ST_INVALID, "invalid grid name '%s'", grid ? grid : "");
    if (n == 0)
        return ST_OK;
    buf_init(&b, 0);
    ends = xcalloc(n, sizeof(*ends));
    idx = xcalloc(n, sizeof(*idx));
    undo = xcalloc(n, sizeof(*undo));
    times = xcalloc(n, sizeof(*times));
    pthread_mutex_lock(&g->mu);
    if (g->fd == -1 || (g->nseg && g->segs[g->nseg - 1].size >= s->seg_max)) {
        st = seg_roll(g, e);
        if (st != ST_OK)
            goto unlock;
    }
    g->gen++;
    id0 = g->next_id;
    for (size_t i = 0; i < n; i++) {
        const struct log_item *it = &items[i];
        int64_t ns;
        struct cursor *c;

        if (!item_ok(it) || (ns = logstore_time_parse(it->time)) < 0) {
            ninv++;
            continue;
        }
        c = cursor_get(g, it->container_id, 1);
        undo[nundo].c = c;
        undo[nundo].ns = c->ns;
        undo[nundo].batch_ns = c->batch_ns;
        undo[nundo].gen = c->gen;
        nundo++;
        if (c->gen != g->gen) {
            c->gen = g->gen;
            c->batch_ns = c->ns;
        }
        if (ns <= c->batch_ns) { /* sent before: the agent resent after a reconnect */
            ndup++;
            continue;
        }
        logstore_time_format(ns, times[nst]);
        if (!render_line(&b, id0 + (int64_t)nst, g->name, it, times[nst])) {
            ninv++;
            continue;
        }
        if (ns > c->ns)
            c->ns = ns;
        ends[nst] = b.len;
        idx[nst] = i;
        nst++;
    }
    if (nst) {
        size_t off = 0;
        sg = &g->segs[g->nseg - 1];
        while (off < b.len) {
            ssize_t w = write(g->fd, b.ptr + off, b.len - off);
            if (w == -1 && errno == EINTR)
                continue;
            if (w <= 0) {
                st = err_set(e, ST_IO, "cannot write log segment of grid '%s': %s", g->name,
                             strerror(errno));
                break;
            }
            off += (size_t)w;
        }
        if (st != ST_OK) {
            /* Take back what was written and every cursor move: the agent resends. */
            if (ftruncate(g->fd, (off_t)sg->size) != 0)
                log_warn("msg=\"cannot cut log segment of grid '%s': %s\"", g->name,
                         strerror(errno));
            for (size_t k = nundo; k-- > 0;) {
                undo[k].c->ns = undo[k].ns;
                undo[k].c->batch_ns = undo[k].batch_ns;
                undo[k].c->gen = undo[k].gen;
            }
            nst = 0;
            goto unlock;
        }
        for (size_t k = 0; k < nst; k++)
            seg_note_line(sg, sg->size + (k ? ends[k - 1] : 0));
        sg->size += b.len;
        g->total += b.len;
        g->next_id += (int64_t)nst;
        g->cursors_dirty = 1;
        if (cb)
            for (size_t k = 0; k < nst; k++) {
                size_t start = k ? ends[k - 1] : 0;
                cb(cb_arg, g->name, &items[idx[k]], times[k], b.ptr + start,
                   ends[k] - start - 1);
            }
        while (g->total > s->window && g->nseg > 1)
            remove_oldest(s, g);
    }
    if (g->cursors_dirty && time_mono_ms() - g->cursors_saved_ms >= CURSORS_SAVE_MS)
        cursors_save(g);
unlock:
    pthread_mutex_unlock(&g->mu);
    __atomic_add_fetch(&s->stored, nst, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->dropped_dup, ndup, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->dropped_invalid, ninv, __ATOMIC_RELAXED);
    if (stored)
        *stored = nst;
    if (dropped)
        *dropped = ndup + ninv;
    pthread_mutex_lock(&s->mu);
    notify = s->notify;
    notify_arg = s->notify_arg;
    pthread_mutex_unlock(&s->mu);
    if (nst && notify)
        notify(notify_arg, grid);
    buf_release(&b);
    free(ends);
    free(idx);
    free(undo);
    free(times);
    return st;
}

int logstore_cursor(struct logstore *s, const char *grid, const char *container_id, char *out)
{
    struct gstore *g = grid_get(s, grid, 0);
    struct cursor *c;
    int found = 0;

    if (!g || !container_id)
        return 0;
    pthread_mutex_lock(&g->mu);
    c = cursor_get(g, container_id, 0);
    if (c && c->ns >= 0) {
        logstore_time_format(c->ns, out);
        found = 1;
    }
    pthread_mutex_unlock(&g->mu);
    return found;
}

void logstore_bounds(struct logstore *s, const char *grid, int64_t *first, int64_t *next)
{
    struct gstore *g = grid_get(s, grid, 0);

    *first = *next = 1;
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    *next = g->next_id;
    *first = g->nseg ? g->segs[0].first_id : g->next_id;
    if (g->nseg && g->segs[0].count == 0)
        *first = g->next_id;
    pthread_mutex_unlock(&g->mu);
}

void logstore_drop_grid(struct logstore *s, const char *grid)
{
    struct gstore *g = grid_get(s, grid, 0);
    char *path;

    /* The grid record stays (readers may hold it): only its files and contents go. */
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    if (g->fd != -1) {
        close(g->fd);
        g->fd = -1;
    }
    for (size_t i = 0; i < g->nseg; i++) {
        path = seg_path(g, g->segs[i].first_id);
        unlink(path);
        free(path);
        seg_free(&g->segs[i]);
    }
    g->nseg = 0;
    g->total = 0;
    for (size_t i = 0; i < CUR_BUCKETS; i++) {
        for (struct cursor *c = g->cur[i], *n; c; c = n) {
            n = c->next;
            free(c->id);
            free(c);
        }
        g->cur[i] = NULL;
    }
    g->ncur = 0;
    g->cursors_dirty = 0;
    path = xasprintf("%s/cursors.json", g->dir);
    unlink(path);
    free(path);
    pthread_mutex_unlock(&g->mu);
}

/* --- reading ----------------------------------------------------------------------------- */

struct cfilter {
    struct buf *frag[5]; /* containers, nodes, stacks, services: lists of fragments */
    size_t nfrag[5];
    char inst[40];
    struct buf q;
    const char *since;
    int any; /* no filter at all */
};

enum { F_CONT, F_NODE, F_STACK, F_SVC, F_N };

static void frag_list(struct cfilter *cf, int k, const char *const *list, const char *pre,
                      const char *mid, const char *post)
{
    size_t n = 0;
    if (!list)
        return;
    while (list[n])
        n++;
    cf->frag[k] = xcalloc(n ? n : 1, sizeof(struct buf));
    for (size_t i = 0; i < n; i++) {
        struct buf *b = &cf->frag[k][i];
        buf_init(b, 0);
        if (buf_puts(b, pre) != ST_OK || (mid && (logstore_json_escape(b, mid, strlen(mid)) != ST_OK ||
                                                  buf_puts(b, "/") != ST_OK)) ||
            logstore_json_escape(b, list[i], strlen(list[i])) != ST_OK || buf_puts(b, post) != ST_OK)
            buf_reset(b);
    }
    cf->nfrag[k] = n;
}

static void cfilter_init(struct cfilter *cf, const char *grid, const struct log_filter *f)
{
    memset(cf, 0, sizeof(*cf));
    buf_init(&cf->q, 0);
    cf->any = 1;
    if (!f)
        return;
    frag_list(cf, F_CONT, f->containers, ",\"name\":\"", NULL, "\",\"container_id\":");
    frag_list(cf, F_NODE, f->nodes, "\"node\":{\"name\":\"", NULL, "\"}");
    frag_list(cf, F_STACK, f->stacks, "\"stack\":{\"id\":\"", grid, "\"");
    frag_list(cf, F_SVC, f->services, "\"service\":{\"id\":\"", grid, "\"");
    if (f->instance >= 0)
        snprintf(cf->inst, sizeof(cf->inst), ",\"instance\":%ld,", f->instance);
    if (f->q && *f->q && logstore_json_escape(&cf->q, f->q, strlen(f->q)) != ST_OK)
        buf_reset(&cf->q);
    cf->since = f->since && *f->since ? f->since : NULL;
    cf->any = !f->containers && !f->nodes && !f->stacks && !f->services && f->instance < 0 &&
              !cf->q.len && !cf->since;
}

static void cfilter_release(struct cfilter *cf)
{
    for (int k = 0; k < F_N; k++) {
        for (size_t i = 0; i < cf->nfrag[k]; i++)
            buf_release(&cf->frag[k][i]);
        free(cf->frag[k]);
    }
    buf_release(&cf->q);
}

static int cfilter_match(const struct cfilter *cf, const char *l, size_t n)
{
    if (cf->any)
        return 1;
    for (int k = 0; k < F_N; k++) {
        int ok = 0;
        if (!cf->frag[k])
            continue;
        for (size_t i = 0; i < cf->nfrag[k] && !ok; i++)
            ok = cf->frag[k][i].len && memmem(l, n, cf->frag[k][i].ptr, cf->frag[k][i].len);
        if (!ok)
            return 0;
    }
    if (cf->inst[0] && !memmem(l, n, cf->inst, strlen(cf->inst)))
        return 0;
    if (cf->since) {
        const char *t = line_time(l, n);
        if (!t || strncmp(t, cf->since, LOGSTORE_TIME_LEN) <= 0)
            return 0;
    }
    if (cf->q.len) {
        const char *d = memmem(l, n, ",\"data\":\"", 9);
        if (!d || !memmem(d + 9, n - (size_t)(d + 9 - l), cf->q.ptr, cf->q.len))
            return 0;
    }
    return 1;
}

/* Where id is: segment index, the block offset to start at and how many lines to skip
 * there, the segment's committed size and line count. Under g->mu. 0 if id is not stored
 * (*id moved to the next stored id when it fell in a gap or below the window). */
struct pos {
    int64_t first_id, count;
    uint64_t off, size, blk_end;
    int64_t skip;
};

static int locate(struct gstore *g, int64_t *id, struct pos *p)
{
    for (size_t i = 0; i < g->nseg; i++) {
        struct seg *sg = &g->segs[i];
        if (*id >= sg->first_id + sg->count)
            continue;
        if (*id < sg->first_id)
            *id = sg->first_id;
        if (sg->count == 0)
            return 0;
        p->first_id = sg->first_id;
        p->count = sg->count;
        p->size = sg->size;
        p->off = sg->blk[(*id - sg->first_id) / BLK];
        p->blk_end = (size_t)((*id - sg->first_id) / BLK) + 1 < sg->nblk
                         ? sg->blk[(*id - sg->first_id) / BLK + 1]
                         : sg->size;
        p->skip = (*id - sg->first_id) % BLK;
        return 1;
    }
    return 0;
}

/* Read lines of one segment from p; fn returns 0 to stop. Returns -1 if the file is gone. */
static int read_seg(struct gstore *g, const struct pos *p, uint64_t end_off,
                    int (*fn)(void *, int64_t, const char *, size_t), void *arg, int64_t *id)
{
    char *path = seg_path(g, p->first_id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = READ_CHUNK, have = 0;
    char *b;
    uint64_t off = p->off;
    int64_t skip = p->skip;
    int rc = 0;

    free(path);
    if (fd == -1)
        return -1;
    b = xmalloc(cap);
    while (off < end_off) {
        size_t want = cap - have;
        ssize_t r;
        size_t start = 0;
        if ((uint64_t)want > end_off - off)
            want = (size_t)(end_off - off);
        r = pread(fd, b + have, want, (off_t)off);
        if (r <= 0) {
            rc = r == 0 ? 0 : -1;
            break;
        }
        off += (uint64_t)r;
        have += (size_t)r;
        for (;;) {
            char *nl = memchr(b + start, '\n', have - start);
            size_t len;
            if (!nl)
                break;
            len = (size_t)(nl - (b + start));
            if (skip > 0) {
                skip--;
            } else {
                int more = fn(arg, *id, b + start, len);
                if (more >= 0)
                    (*id)++;
                if (more <= 0) {
                    rc = 1;
                    goto out;
                }
            }
            start += len + 1;
        }
        memmove(b, b + start, have - start);
        have -= start;
        if (have == cap) {
            if (cap >= LINE_MAX_BYTES)
                break; /* cannot happen with lines we wrote */
            cap *= 2;
            b = xrealloc(b, cap);
        }
    }
out:
    free(b);
    close(fd);
    return rc;
}

struct fwd_ctx {
    const struct cfilter *cf;
    struct buf *out;
    const char *sep;
    size_t max_entries, max_bytes, max_scan, n, scanned;
};

static int fwd_line(void *arg, int64_t id, const char *l, size_t len)
{
    struct fwd_ctx *c = arg;
    size_t sl = c->sep ? strlen(c->sep) : 0;

    (void)id;
    if (c->max_scan && c->scanned >= c->max_scan)
        return -1; /* examined enough for one call: the next one starts here */
    c->scanned++;
    if (!cfilter_match(c->cf, l, len))
        return 1;
    if (c->n > 0 && c->out->len + len + sl > c->max_bytes)
        return -1; /* not taken: the next read starts with it */
    if (buf_append(c->out, l, len) != ST_OK || (sl && buf_append(c->out, c->sep, sl) != ST_OK))
        return -1;
    c->n++;
    return c->n < c->max_entries;
}

size_t logstore_read(struct logstore *s, const char *grid, int64_t from,
                     const struct log_filter *f, size_t max_entries, size_t max_bytes,
                     size_t max_scan, struct buf *out, const char *sep, int64_t *next_id,
                     int64_t *dropped)
{
    struct gstore *g = grid_get(s, grid, 0);
    struct cfilter cf;
    struct fwd_ctx c = {.out = out, .sep = sep, .max_entries = max_entries,
                        .max_bytes = max_bytes, .max_scan = max_scan};
    int64_t id = from < 1 ? 1 : from;

    *dropped = 0;
    *next_id = id;
    if (!g || max_entries == 0)
        return 0;
    cfilter_init(&cf, grid, f);
    c.cf = &cf;
    for (int guard = 0; guard < 1000; guard++) {
        struct pos p;
        int64_t before;
        int found, rc;

        pthread_mutex_lock(&g->mu);
        if (g->nseg && id < g->segs[0].first_id) {
            *dropped += g->segs[0].first_id - id; /* evicted before this reader got there */
            id = g->segs[0].first_id;
        }
        found = locate(g, &id, &p);
        pthread_mutex_unlock(&g->mu);
        if (!found)
            break;
        before = id;
        rc = read_seg(g, &p, p.size, fwd_line, &c, &id);
        if (rc == -1 && id == before)
            continue; /* evicted between locate and open: look again */
        if (rc != 0 || id < p.first_id + p.count)
            break; /* full */
    }
    *next_id = id;
    cfilter_release(&cf);
    return c.n;
}

struct tail_ctx {
    const struct cfilter *cf;
    int64_t *ids;
    size_t n, cap;
};

static int tail_line(void *arg, int64_t id, const char *l, size_t len)
{
    struct tail_ctx *c = arg;
    if (!cfilter_match(c->cf, l, len))
        return 1;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->ids = xrealloc(c->ids, c->cap * sizeof(*c->ids));
    }
    c->ids[c->n++] = id;
    return 1;
}

int64_t logstore_tail_start(struct logstore *s, const char *grid, const struct log_filter *f,
                            size_t limit)
{
    struct gstore *g = grid_get(s, grid, 0);
    struct cfilter cf;
    int64_t first, next, result;
    size_t total = 0;
    struct tail_ctx c = {0};

    if (!g)
        return 1;
    logstore_bounds(s, grid, &first, &next);
    cfilter_init(&cf, grid, f);
    if (cf.any) {
        cfilter_release(&cf);
        return next - (int64_t)limit > first ? next - (int64_t)limit : first;
    }
    c.cf = &cf;
    result = first;
    /* Blocks from the newest backwards; each block read whole. */
    for (int64_t id_end = next; id_end > first;) {
        struct pos p;
        int64_t blk_first, id, probe = id_end - 1;
        int found;

        pthread_mutex_lock(&g->mu);
        found = locate(g, &probe, &p);
        pthread_mutex_unlock(&g->mu);
        if (!found || probe != id_end - 1)
            break;
        blk_first = probe - p.skip;
        p.skip = 0;
        id = blk_first;
        c.n = 0;
        if (read_seg(g, &p, p.blk_end, tail_line, &c, &id) == -1)
            break;
        if (total + c.n >= limit) {
            result = c.ids[c.n - (limit - total)];
            goto done;
        }
        total += c.n;
        id_end = blk_first;
    }
    result = total ? first : next; /* fewer than limit matches: all of them */
done:
    free(c.ids);
    cfilter_release(&cf);
    return result;
}
