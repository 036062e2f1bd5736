/* controllers/runtime/ctl_metrics.c -- counters and gauges, rendered in the Prometheus
 * text format (one HELP/TYPE pair per metric name, series in registration order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "common/banned.h"

static const char *type_name(enum ctl_metric_type t)
{
    switch (t) {
    case CTL_METRIC_COUNTER: return "counter";
    case CTL_METRIC_GAUGE: return "gauge";
    case CTL_METRIC_SUMMARY: return "summary";
    }
    return "untyped";
}

struct ctl_metric *ctl__metric(struct ctl *c, const char *series, const char *base,
                               const char *help, enum ctl_metric_type type)
{
    struct ctl_metric *m;

    BUG_ON(!series || !*series);
    pthread_mutex_lock(&c->metrics_mu);
    for (size_t i = 0; i < c->nmetrics; i++) {
        if (strcmp(c->metrics[i]->series, series) == 0) {
            m = c->metrics[i];
            pthread_mutex_unlock(&c->metrics_mu);
            return m;
        }
    }
    m = xcalloc(1, sizeof(*m));
    m->series = xstrdup(series);
    m->base = base ? xstrdup(base) : xstrndup(series, strcspn(series, "{"));
    m->help = xstrdup(help ? help : "");
    m->type = type;
    c->metrics = xrealloc(c->metrics, (c->nmetrics + 1) * sizeof(*c->metrics));
    c->metrics[c->nmetrics++] = m;
    pthread_mutex_unlock(&c->metrics_mu);
    return m;
}

struct ctl_metric *ctl_counter(struct ctl *c, const char *name, const char *help)
{
    return ctl__metric(c, name, NULL, help, CTL_METRIC_COUNTER);
}

struct ctl_metric *ctl_gauge(struct ctl *c, const char *name, const char *help)
{
    return ctl__metric(c, name, NULL, help, CTL_METRIC_GAUGE);
}

/* One lock for every value: updates are rare next to the etcd round trips around them. */
static pthread_mutex_t value_mu = PTHREAD_MUTEX_INITIALIZER;

void ctl_metric_add(struct ctl_metric *m, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&value_mu);
    m->value += v;
    pthread_mutex_unlock(&value_mu);
}

void ctl_metric_set(struct ctl_metric *m, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&value_mu);
    m->value = v;
    pthread_mutex_unlock(&value_mu);
}

static double metric_get(struct ctl_metric *m)
{
    double v;

    pthread_mutex_lock(&value_mu);
    v = m->value;
    pthread_mutex_unlock(&value_mu);
    return v;
}

char *ctl__metrics_render(struct ctl *c)
{
    struct buf b = BUF_INIT;
    char *done;

    /* gauges computed on demand */
    ctl_metric_set(c->m_leader, ctl_is_leader(c));
    for (size_t i = 0; i < c->nwqs; i++)
        ctl_metric_set(c->wqs[i]->m_depth, (double)wq_len(c->wqs[i]));

    pthread_mutex_lock(&c->metrics_mu);
    done = xcalloc(c->nmetrics + 1, 1);
    for (size_t i = 0; i < c->nmetrics; i++) {
        struct ctl_metric *m = c->metrics[i];
        if (done[i])
            continue;
        if (buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->base, m->help, m->base,
                       type_name(m->type)) != ST_OK)
            break;
        for (size_t j = i; j < c->nmetrics; j++) {
            struct ctl_metric *s = c->metrics[j];
            if (done[j] || strcmp(s->base, m->base) != 0)
                continue;
            done[j] = 1;
            if (buf_printf(&b, "%s %.15g\n", s->series, metric_get(s)) != ST_OK)
                break;
        }
    }
    pthread_mutex_unlock(&c->metrics_mu);
    free(done);
    return buf_take(&b);
}

void ctl__metrics_free(struct ctl *c)
{
    for (size_t i = 0; i < c->nmetrics; i++) {
        free(c->metrics[i]->series);
        free(c->metrics[i]->base);
        free(c->metrics[i]->help);
        free(c->metrics[i]);
    }
    free(c->metrics);
    c->metrics = NULL;
    c->nmetrics = 0;
}
