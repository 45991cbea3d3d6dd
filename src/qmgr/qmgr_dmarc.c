/* qmgr_dmarc: DMARC aggregate reports, the queue's part (see qmgr_dmarc.h). */
#include "qmgr/qmgr_dmarc.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/mailauth_dns.h"
#include "qmgr/qmgr.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/spool.h"
#include "spool/store.h"
#include "util/clock.h"
#include "util/hashmap.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"
#include "util/version.h"

/* One distinct row and how often it was seen. */
struct counted {
    uint64_t n;
    struct dmarc_report_row row;   /* for a file's rows; unused while counting */
    char line[];
};

/* Making the reports of one period's file. */
struct report_job {
    char file[64];
    time_t begin, end;
    struct hashmap rows;           /* struct counted, by line */
    struct counted **sorted;       /* by policy domain, most frequent first */
    size_t nsorted;
    size_t first, last;            /* the domain in progress: sorted[first..last) */
    struct dmarc_check *check;
    struct mailauth_dns_query *query;
    struct dmarc_outcome *policy;  /* its record as published now */
    size_t uri;                    /* the rua URI being confirmed */
    char *addr;                    /* its address */
    const char *host;              /* inside addr */
    char **to;                     /* confirmed addresses */
    size_t nto;
    unsigned reports;
};

static struct {
    int on;
    struct event_base *base;
    struct mailauth_dns dns;
    struct dmarc_cache *cache;
    int dirfd;
    long long interval;
    char *address, *org_name, *receiver;
    struct hashmap counts;         /* struct counted, by line */
    time_t period;                 /* the period counts belongs to */
    struct event *tick;
    struct report_job *job;
} dm = {.dirfd = -1};

static const void *counted_key(const void *item, size_t *len)
{
    const struct counted *c = item;
    *len = strlen(c->line);
    return c->line;
}

static struct counted *counted_new(const char *line, size_t len)
{
    struct counted *c = xcalloc(1, sizeof *c + len + 1);
    memcpy(c->line, line, len);
    return c;
}

static void counts_free(struct hashmap *m)
{
    size_t i = 0;
    struct counted *c;
    while ((c = hashmap_next(m, &i))) {
        dmarc_report_row_free(&c->row);
        free(c);
    }
    hashmap_free(m);
}

/* ---- counting ---- */

/* Appends the counts to their period's file and forgets them. */
static void flush(void)
{
    if (hashmap_count(&dm.counts) == 0)
        return;
    struct strbuf buf = STRBUF_INIT;
    size_t i = 0;
    struct counted *c;
    while ((c = hashmap_next(&dm.counts, &i)))
        strbuf_printf(&buf, "%llu\t%s\n", (unsigned long long)c->n, c->line);
    char name[64];
    snprintf(name, sizeof name, "%lld-%lld", (long long)dm.period, (long long)(dm.period + dm.interval));
    int fd = openat(dm.dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    ssize_t w = fd >= 0 ? write(fd, buf.buf, buf.len) : -1;
    if (w != (ssize_t)buf.len)
        log_warn("dmarc: cannot record %zu report rows in %s/%s: %s", hashmap_count(&dm.counts), QDIR_DMARC, name,
                 w < 0 ? strerror(errno) : "short write");
    if (fd >= 0)
        close(fd);
    strbuf_free(&buf);
    counts_free(&dm.counts);
    hashmap_init(&dm.counts, counted_key, QMGR_DMARC_MAX_ROWS);
}

void qmgr_dmarc_record(const struct ipc_msg *m)
{
    if (!dm.on)
        return;
    struct dmarc_report_row r;
    memset(&r, 0, sizeof r);
    struct { char **field; const char *name; } fields[] = {
        {&r.policy_domain, "policy_domain"}, {&r.source_ip, "source_ip"}, {&r.header_from, "header_from"},
        {&r.envelope_from, "envelope_from"}, {&r.envelope_to, "envelope_to"}, {&r.disposition, "disposition"},
        {&r.dkim, "dkim"}, {&r.spf, "spf"}, {&r.reason, "reason"}, {&r.spf_domain, "spf_domain"},
        {&r.spf_result, "spf_result"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = ipc_msg_get(m, fields[i].name);
        *fields[i].field = xstrdup(v ? v : "");
    }
    for (size_t i = 0; i < DMARC_REPORT_MAX_DKIM; i++) {
        char name[16];
        snprintf(name, sizeof name, "dkim%zu", i);
        const char *v = ipc_msg_get(m, name);
        if (!v)
            break;
        const char *sp1 = strchr(v, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp2)
            break;
        r.dkim_sigs[r.ndkim++] = (struct dmarc_report_dkim){xstrndup(v, (size_t)(sp1 - v)),
                                                            xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)),
                                                            xstrdup(sp2 + 1)};
    }
    char why[DMARC_ERR_MAX];
    if (dmarc_report_row_check(&r, why) != 0) {
        log_warn("dmarc: a report row from smtpd is refused: %s", why);
        dmarc_report_row_free(&r);
        return;
    }
    struct strbuf line = STRBUF_INIT;
    dmarc_report_row_line(&r, &line);
    dmarc_report_row_free(&r);
    time_t now = clock_now();
    time_t period = now - now % dm.interval;
    if (period != dm.period) {
        flush();
        dm.period = period;
    }
    struct counted *c = hashmap_get(&dm.counts, line.buf, line.len);
    if (!c) {
        if (hashmap_full(&dm.counts))
            flush();
        c = counted_new(line.buf, line.len);
        hashmap_add(&dm.counts, c);
    }
    c->n++;
    strbuf_free(&line);
}

/* ---- making the reports of a period ---- */

static void job_next_domain(struct report_job *j);
static void job_next_uri(struct report_job *j);

static void job_free(struct report_job *j)
{
    if (j->check)
        dmarc_check_cancel(j->check);
    if (j->query)
        mailauth_dns_cancel(&dm.dns, j->query);
    if (j->policy)
        dmarc_outcome_free(j->policy);
    for (size_t i = 0; i < j->nto; i++)
        free(j->to[i]);
    free(j->to);
    free(j->addr);
    free(j->sorted);
    counts_free(&j->rows);
    free(j);
}

static int by_domain_then_count(const void *a, const void *b)
{
    const struct counted *x = *(struct counted *const *)a, *y = *(struct counted *const *)b;
    int c = strcmp(x->row.policy_domain, y->row.policy_domain);
    if (c)
        return c;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->line, y->line);
}

/* Reads a period's file into j->rows, adding up repeated rows. */
static int job_read(struct report_job *j)
{
    int fd = openat(dm.dirfd, j->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        log_warn("dmarc: cannot read %s/%s: %s", QDIR_DMARC, j->file, fd < 0 ? strerror(errno) : "not a file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t size = (size_t)sb.st_size < QMGR_DMARC_FILE_MAX ? (size_t)sb.st_size : QMGR_DMARC_FILE_MAX;
    char *text = xmalloc(size + 1);
    ssize_t got = read(fd, text, size);
    close(fd);
    if (got < 0)
        got = 0;
    text[got] = '\0';
    size_t bad = 0;
    for (char *p = text, *nl; p < text + got; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + got - p));
        if (!nl)
            break;   /* a partial last line (cut by the size bound) */
        struct dmarc_report_row r;
        if (dmarc_report_row_parse(p, (size_t)(nl - p), &r) != 0) {
            bad++;
            continue;
        }
        struct strbuf line = STRBUF_INIT;
        dmarc_report_row_line(&r, &line);
        struct counted *c = hashmap_get(&j->rows, line.buf, line.len);
        if (c) {
            c->n += r.count;
            dmarc_report_row_free(&r);
        } else if (!hashmap_full(&j->rows)) {
            c = counted_new(line.buf, line.len);
            c->n = r.count;
            c->row = r;
            hashmap_add(&j->rows, c);
        } else {
            bad++;
            dmarc_report_row_free(&r);
        }
        strbuf_free(&line);
    }
    free(text);
    if (bad)
        log_warn("dmarc: %s/%s: %zu lines not used (malformed, or past the limits)", QDIR_DMARC, j->file, bad);
    j->sorted = xcalloc(hashmap_count(&j->rows) + 1, sizeof *j->sorted);
    size_t i = 0;
    struct counted *c;
    while ((c = hashmap_next(&j->rows, &i)))
        j->sorted[j->nsorted++] = c;
    qsort(j->sorted, j->nsorted, sizeof *j->sorted, by_domain_then_count);
    return 0;
}

static void job_finish(struct report_job *j)
{
    if (unlinkat(dm.dirfd, j->file, 0) != 0)
        log_warn("dmarc: cannot remove %s/%s: %s", QDIR_DMARC, j->file, strerror(errno));
    log_info("dmarc: reports for %lld-%lld: %u queued", (long long)j->begin, (long long)j->end, j->reports);
    dm.job = NULL;
    job_free(j);
}

/* Writes the report of sorted[first..last) and queues it. */
static void job_send(struct report_job *j)
{
    const char *domain = j->sorted[j->first]->row.policy_domain;
    if (j->nto == 0) {
        log_info("dmarc: no report for %s: none of its rua addresses can be used", domain);
        return;
    }
    struct dmarc_report_meta meta = {
        .org_name = dm.org_name,
        .email = dm.address,
        .receiver = dm.receiver,
        .begin = j->begin,
        .end = j->end - 1,
        .generator = "tern " TERN_VERSION,
    };
    size_t n = j->last - j->first;
    if (n > QMGR_DMARC_REPORT_ROWS)
        n = QMGR_DMARC_REPORT_ROWS;   /* the most frequent ones: sorted by count */
    struct dmarc_report_row **rows = xcalloc(n, sizeof *rows);
    uint64_t messages = 0;
    for (size_t i = 0; i < n; i++) {
        rows[i] = &j->sorted[j->first + i]->row;
        rows[i]->count = j->sorted[j->first + i]->n;
        messages += rows[i]->count;
    }
    struct strbuf xml = STRBUF_INIT, msg = STRBUF_INIT;
    dmarc_report_xml(&meta, domain, &j->policy->record, rows, n, &xml);
    free(rows);
    unsigned char *gz = NULL;
    size_t gzlen = 0;
    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    struct queue_file_writer *w = NULL;
    if (dmarc_report_gzip(xml.buf, xml.len, &gz, &gzlen) != 0) {
        log_warn("dmarc: cannot compress the report for %s", domain);
    } else if (queue_file_writer_open(store_incoming_dirfd(), id, &w) != 0) {
        log_warn("dmarc: cannot create the report for %s: %s", domain, strerror(errno));
    } else {
        dmarc_report_message(&meta, domain, (const char *const *)j->to, j->nto, gz, gzlen, clock_now(), id, &msg);
        struct queue_file_message env;
        queue_file_message_init(&env, id, clock_now_us(), dm.address);
        for (size_t i = 0; i < j->nto; i++)
            queue_file_message_add_rcpt(&env, j->to[i], "", 0, -1);
        queue_file_message_set_attr(&env, "origin", "dmarc-report");
        /* reports must pass DMARC themselves (RFC 9990 3.5.2) */
        queue_file_message_set_attr(&env, QF_ATTR_DKIM_SIGN, "1");
        if (queue_file_writer_write(w, msg.buf, msg.len) != 0 || queue_file_writer_finish(w, &env) != 0) {
            log_warn("dmarc: cannot write the report for %s: %s", domain, strerror(errno));
        } else {
            struct strbuf to = STRBUF_INIT;
            for (size_t i = 0; i < j->nto; i++)
                strbuf_printf(&to, "%s%s", i ? "," : "", j->to[i]);
            log_info("%s: DMARC aggregate report for %s: %zu records, %llu messages, to=%s", id, domain, n,
                     (unsigned long long)messages, to.buf);
            strbuf_free(&to);
            j->reports++;
            qmgr_commit(id, NULL, NULL);
        }
        queue_file_message_free(&env);
    }
    free(gz);
    strbuf_free(&xml);
    strbuf_free(&msg);
}

static void add_to(struct report_job *j, const char *addr)
{
    for (size_t i = 0; i < j->nto; i++)
        if (strcasecmp(j->to[i], addr) == 0)
            return;
    if (j->nto == DMARC_MAX_URIS)
        return;
    if (!j->to)
        j->to = xcalloc(DMARC_MAX_URIS, sizeof *j->to);
    j->to[j->nto++] = xstrdup(addr);
}

static void uri_done(struct report_job *j)
{
    free(j->addr);
    j->addr = NULL;
    j->host = NULL;
    j->uri++;
    job_next_uri(j);
}

/* The answer at POLICY._report._dmarc.HOST (RFC 9990 4, steps 5 to 9). */
static void on_confirmation(void *arg, struct dns_rrset *rs)
{
    struct report_job *j = arg;
    j->query = NULL;
    const char *domain = j->sorted[j->first]->row.policy_domain;
    int confirmed = 0, other_host = 0;
    char *override[DMARC_MAX_URIS];
    size_t noverride = 0;
    for (size_t i = 0; rs->status == DNS_OK && i < rs->nrrs; i++) {
        char *text = dmarc_txt_record(&rs->rrs[i]);
        struct dmarc_record rec;
        if (text && dmarc_record_parse(text, strlen(text), &rec, NULL) == 0) {
            confirmed = 1;
            for (size_t k = 0; k < rec.nrua; k++) {
                char *addr;
                const char *host;
                if (dmarc_report_mailto(rec.rua[k], &addr, &host) != 0)
                    continue;
                if (strcmp(host, j->host) != 0 || noverride == DMARC_MAX_URIS) {
                    other_host |= strcmp(host, j->host) != 0;
                    free(addr);
                    continue;
                }
                override[noverride++] = addr;
            }
            dmarc_record_free(&rec);
        }
        free(text);
    }
    if (rs->status == DNS_TEMPFAIL)
        log_warn("dmarc: report for %s not sent to %s: cannot look up %s: %s", domain, j->addr, rs->name,
                 rs->why ? rs->why : "temporary failure");
    else if (!confirmed)
        log_info("dmarc: report for %s not sent to %s: %s does not agree to receive it (no DMARC1 record at %s)",
                 domain, j->addr, j->host, rs->name);
    else if (other_host)
        log_info("dmarc: report for %s not sent to %s: %s names another host (RFC 9990 section 4)", domain,
                 j->addr, rs->name);
    else if (noverride == 0)
        add_to(j, j->addr);
    for (size_t i = 0; i < noverride; i++) {
        if (confirmed && !other_host)
            add_to(j, override[i]);
        free(override[i]);
    }
    dns_rrset_free(rs);
    uri_done(j);
}

/* The destination host's Organizational Domain is known. */
static void on_destination(void *arg, struct dmarc_outcome *o)
{
    struct report_job *j = arg;
    j->check = NULL;
    const char *domain = j->sorted[j->first]->row.policy_domain;
    const char *ours = j->policy->org_domain;
    if (ours && o->org_domain && strcmp(ours, o->org_domain) == 0) {
        add_to(j, j->addr);   /* the domain's own organization */
        dmarc_outcome_free(o);
        uri_done(j);
        return;
    }
    dmarc_outcome_free(o);
    char name[DMARC_DOMAIN_MAX + 2];
    int len = snprintf(name, sizeof name, "%s._report._dmarc.%s", domain, j->host);
    if (len < 0 || (size_t)len > DMARC_DOMAIN_MAX) {
        log_info("dmarc: report for %s not sent to %s: the name to confirm it is too long", domain, j->addr);
        uri_done(j);
        return;
    }
    j->query = mailauth_dns_lookup(&dm.dns, name, DNS_TYPE_TXT, on_confirmation, j);
}

static void job_next_uri(struct report_job *j)
{
    const struct dmarc_record *rec = &j->policy->record;
    const char *domain = j->sorted[j->first]->row.policy_domain;
    for (; j->uri < rec->nrua; j->uri++) {
        if (dmarc_report_mailto(rec->rua[j->uri], &j->addr, &j->host) == 0)
            break;
        char shown[128];
        snprintf(shown, sizeof shown, "%s", rec->rua[j->uri]);
        str_printable(shown);
        log_info("dmarc: report for %s: rua %s is not a mailto: address tern can use", domain, shown);
    }
    if (j->uri == rec->nrua) {
        job_send(j);
        j->first = j->last;
        job_next_domain(j);
        return;
    }
    struct dmarc_auth none = {0};
    struct dmarc_env env = {&dm.dns, dm.cache, dm.base};
    j->check = dmarc_check_start(&env, j->host, &none, on_destination, j);
}

/* The policy domain's record, as published now. */
static void on_policy(void *arg, struct dmarc_outcome *o)
{
    struct report_job *j = arg;
    j->check = NULL;
    const char *domain = j->sorted[j->first]->row.policy_domain;
    if (!o->has_record || !o->policy_domain || strcmp(o->policy_domain, domain) != 0 || o->record.nrua == 0) {
        log_info("dmarc: no report for %s: %s", domain,
                 o->result == DMARC_RESULT_TEMPERROR ? "its DMARC record cannot be looked up now"
                                                     : "it no longer publishes a DMARC record with rua=");
        dmarc_outcome_free(o);
        j->first = j->last;
        job_next_domain(j);
        return;
    }
    j->policy = o;
    j->uri = 0;
    job_next_uri(j);
}

static void job_next_domain(struct report_job *j)
{
    if (j->policy)
        dmarc_outcome_free(j->policy);
    j->policy = NULL;
    for (size_t i = 0; i < j->nto; i++)
        free(j->to[i]);
    j->nto = 0;
    if (j->first >= j->nsorted) {
        job_finish(j);
        return;
    }
    const char *domain = j->sorted[j->first]->row.policy_domain;
    j->last = j->first + 1;
    while (j->last < j->nsorted && strcmp(j->sorted[j->last]->row.policy_domain, domain) == 0)
        j->last++;
    struct dmarc_auth none = {0};
    struct dmarc_env env = {&dm.dns, dm.cache, dm.base};
    j->check = dmarc_check_start(&env, domain, &none, on_policy, j);
}

/* The oldest period file whose period is over, if any: starts its reports. */
static void start_due_reports(void)
{
    if (dm.job)
        return;
    int fd = dup(dm.dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    time_t now = clock_now();
    long long best_begin = 0, best_end = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long b, en;
        char tail;
        if (sscanf(e->d_name, "%lld-%lld%c", &b, &en, &tail) != 2 || en <= b || en > now)
            continue;
        if (!best_end || b < best_begin) {
            best_begin = b;
            best_end = en;
        }
    }
    closedir(d);
    if (!best_end)
        return;
    struct report_job *j = xcalloc(1, sizeof *j);
    snprintf(j->file, sizeof j->file, "%lld-%lld", best_begin, best_end);
    j->begin = (time_t)best_begin;
    j->end = (time_t)best_end;
    hashmap_init(&j->rows, counted_key, QMGR_DMARC_MAX_ROWS);
    if (job_read(j) != 0) {
        /* unreadable: set aside, so it is not tried at every tick */
        char aside[80];
        snprintf(aside, sizeof aside, "%s.unreadable", j->file);
        renameat(dm.dirfd, j->file, dm.dirfd, aside);
        job_free(j);
        return;
    }
    dm.job = j;
    job_next_domain(j);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    flush();
    start_due_reports();
}

void qmgr_dmarc_init(struct event_base *base, struct conf *c, const char *queue_dir, struct dns_ctx *dns)
{
    memset(&dm, 0, sizeof dm);
    dm.dirfd = -1;
    const char *address = conf_str(c, "dmarc_report_address");
    if (!*address)
        return;
    char *dir = xasprintf("%s/%s", queue_dir, QDIR_DMARC);
    dm.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dm.dirfd < 0) {
        log_error("dmarc: %s: %s; no aggregate reports", dir, strerror(errno));
        free(dir);
        return;
    }
    free(dir);
    dm.on = 1;
    dm.base = base;
    dm.dns = mailauth_dns_real(dns);
    dm.cache = dmarc_cache_new(0);
    dm.interval = conf_time(c, "dmarc_report_interval");
    if (dm.interval < 1)
        dm.interval = 1;
    dm.address = xstrdup(address);
    dm.org_name = xstrdup(conf_str(c, "dmarc_report_org_name"));
    dm.receiver = xstrdup(conf_str(c, "myhostname"));
    hashmap_init(&dm.counts, counted_key, QMGR_DMARC_MAX_ROWS);
    dm.tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {dm.interval < QMGR_DMARC_TICK_S ? dm.interval : QMGR_DMARC_TICK_S, 0};
    event_add(dm.tick, &tv);
    /* a period that ended while tern was stopped */
    start_due_reports();
}

void qmgr_dmarc_shutdown(void)
{
    if (!dm.on)
        return;
    flush();
    if (dm.job)
        job_free(dm.job);
    event_free(dm.tick);
    counts_free(&dm.counts);
    dmarc_cache_free(dm.cache);
    free(dm.address);
    free(dm.org_name);
    free(dm.receiver);
    close(dm.dirfd);
    memset(&dm, 0, sizeof dm);
    dm.dirfd = -1;
}
