/* qmgr_log: the queue manager's delivery log line, as Postfix writes it
 * (see qmgr_log.h). */
#include "qmgr/qmgr_log.h"

#include <stdio.h>
#include <string.h>

#include "qmgr/qmgr_msg.h"
#include "util/log.h"

static void fmt_secs(char *buf, size_t len, double s)
{
    /* As Postfix writes them: two decimals below 10 s, trailing zeros dropped. */
    if (s < 0.005) {
        snprintf(buf, len, "0");
        return;
    }
    if (s >= 10) {
        snprintf(buf, len, "%.0f", s);
        return;
    }
    snprintf(buf, len, "%.2f", s);
    char *end = buf + strlen(buf) - 1;
    while (*end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
}

static const char *orig_to(const struct qmgr_msg *q, const struct queue_file_rcpt *r)
{
    if (r->parent >= 0 && (size_t)r->parent < q->m.nrcpt)
        return q->m.rcpts[r->parent].orcpt[0] ? q->m.rcpts[r->parent].orcpt : q->m.rcpts[r->parent].addr;
    return r->orcpt[0] && strcmp(r->orcpt, r->addr) != 0 ? r->orcpt : NULL;
}

/* Postfix's delivery log line. delays=a/b/c/d: before the queue manager,
 * in the queue manager, connection setup, transmission. */
void qmgr_log_delivery(const struct qmgr_msg *q, size_t idx, const char *relay, int64_t start_us, int64_t now,
                       const char *status)
{
    const struct queue_file_rcpt *r = &q->m.rcpts[idx];
    double a = (double)(q->active_us - q->m.arrival_us) / 1e6;
    double b = start_us ? (double)(start_us - q->active_us) / 1e6 : (double)(now - q->active_us) / 1e6;
    double d = start_us ? (double)(now - start_us) / 1e6 : 0;
    if (b < 0)
        b = 0;
    char sa[32], sb[32], sd[32], total[32];
    fmt_secs(sa, sizeof sa, a);
    fmt_secs(sb, sizeof sb, b);
    fmt_secs(sd, sizeof sd, d);
    fmt_secs(total, sizeof total, (double)(now - q->m.arrival_us) / 1e6);
    const char *orig = orig_to(q, r);
    char origbuf[600] = "";
    if (orig)
        snprintf(origbuf, sizeof origbuf, ", orig_to=<%s>", orig);
    log_info("%s: to=<%s>%s, relay=%s, delay=%s, delays=%s/%s/0/%s, dsn=%s, status=%s (%s)", q->m.id, r->addr,
             origbuf, relay, total, sa, sb, sd, r->dsn, status, r->reason);
}

