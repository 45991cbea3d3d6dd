/* dmarc_report: DMARC aggregate reports (see dmarc_report.h). */
#include "mailauth/dmarc_report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "msg/msg_header.h"
#include "util/base64.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static const char *const dispositions[] = {"none", "pass", "quarantine", "reject", NULL};
static const char *const aligned_results[] = {"pass", "fail", NULL};
static const char *const reasons[] = {"", "local_policy", "mailing_list", "other", "policy_test_mode",
                                      "trusted_forwarder", NULL};
/* RFC 8601 2.7.1 and 2.7.2, as RFC 9990's DKIMResultType and SPFResultType list them */
static const char *const dkim_results[] = {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror", NULL};
static const char *const spf_results[] = {"none", "pass", "fail", "softfail", "policy", "neutral", "temperror",
                                          "permerror", NULL};

void dmarc_report_row_free(struct dmarc_report_row *r)
{
    char **fields[] = {&r->policy_domain, &r->source_ip, &r->header_from, &r->envelope_from, &r->envelope_to,
                       &r->disposition, &r->dkim, &r->spf, &r->reason, &r->spf_domain, &r->spf_result};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        free(*fields[i]);
    for (size_t i = 0; i < r->ndkim; i++) {
        free(r->dkim_sigs[i].domain);
        free(r->dkim_sigs[i].selector);
        free(r->dkim_sigs[i].result);
    }
    memset(r, 0, sizeof *r);
}

static int in_list(const char *v, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(v, list[i]) == 0)
            return 1;
    return 0;
}

static void replace(char **field, const char *value)
{
    char *copy = xstrdup(value);
    free(*field);
    *field = copy;
}

/* A domain field: normalized in place; "" allowed when optional. */
static int check_domain(char **field, int optional, const char *what, char *why)
{
    if (!*field)
        *field = xstrdup("");
    if (!**field && optional)
        return 0;
    char norm[DMARC_DOMAIN_MAX + 1];
    if (dmarc_domain_normalize(*field, norm) != 0) {
        snprintf(why, DMARC_ERR_MAX, "%s is not a domain name", what);
        return -1;
    }
    replace(field, norm);
    return 0;
}

static int check_enum(char **field, const char *const *list, const char *what, char *why)
{
    if (!*field)
        *field = xstrdup("");
    if (!in_list(*field, list)) {
        snprintf(why, DMARC_ERR_MAX, "%s is not one of its values", what);
        return -1;
    }
    return 0;
}

int dmarc_report_selector_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DMARC_REPORT_FIELD_MAX || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!str_is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && !(s[i] == '.' && s[i + 1] != '.'))
            return 0;
    return 1;
}

int dmarc_report_row_check(struct dmarc_report_row *r, char *why)
{
    if (check_domain(&r->policy_domain, 0, "policy_domain", why) || check_domain(&r->header_from, 0, "header_from", why) ||
        check_domain(&r->envelope_from, 1, "envelope_from", why) || check_domain(&r->envelope_to, 1, "envelope_to", why) ||
        check_enum(&r->disposition, dispositions, "disposition", why) || check_enum(&r->dkim, aligned_results, "dkim", why) ||
        check_enum(&r->spf, aligned_results, "spf", why) || check_enum(&r->reason, reasons, "reason", why) ||
        check_domain(&r->spf_domain, 1, "spf_domain", why))
        return -1;
    if (!r->spf_result)
        r->spf_result = xstrdup("");
    if (*r->spf_domain ? !in_list(r->spf_result, spf_results) : *r->spf_result != '\0') {
        snprintf(why, DMARC_ERR_MAX, "spf_result does not go with spf_domain");
        return -1;
    }
    /* the address as inet_ntop writes it: one spelling per client */
    const char *ip = r->source_ip ? r->source_ip : "";
    if (strncasecmp(ip, "IPv6:", 5) == 0)
        ip += 5;
    unsigned char bin[16];
    char text[INET6_ADDRSTRLEN];
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, ip, bin) != 1 || !inet_ntop(family, bin, text, sizeof text)) {
        snprintf(why, DMARC_ERR_MAX, "source_ip is not an IP address");
        return -1;
    }
    replace(&r->source_ip, text);
    if (r->ndkim > DMARC_REPORT_MAX_DKIM) {
        snprintf(why, DMARC_ERR_MAX, "more than %d DKIM results", DMARC_REPORT_MAX_DKIM);
        return -1;
    }
    for (size_t i = 0; i < r->ndkim; i++) {
        struct dmarc_report_dkim *d = &r->dkim_sigs[i];
        if (check_domain(&d->domain, 0, "a DKIM domain", why) || check_enum(&d->result, dkim_results, "a DKIM result", why))
            return -1;
        if (!d->selector || !dmarc_report_selector_ok(d->selector)) {
            snprintf(why, DMARC_ERR_MAX, "a DKIM selector is not one");
            return -1;
        }
    }
    return 0;
}

void dmarc_report_row_line(const struct dmarc_report_row *r, struct strbuf *out)
{
    const char *fields[] = {r->policy_domain, r->source_ip, r->header_from, r->envelope_from, r->envelope_to,
                            r->disposition, r->dkim, r->spf, r->reason, r->spf_domain, r->spf_result};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (i)
            strbuf_putc(out, '\t');
        strbuf_puts(out, fields[i]);
    }
    for (size_t i = 0; i < r->ndkim; i++)
        strbuf_printf(out, "\t%s\t%s\t%s", r->dkim_sigs[i].domain, r->dkim_sigs[i].selector, r->dkim_sigs[i].result);
}

#define ROW_FIXED_FIELDS 11

int dmarc_report_row_parse(const char *line, size_t len, struct dmarc_report_row *r)
{
    memset(r, 0, sizeof *r);
    enum { MAX_FIELDS = 1 + ROW_FIXED_FIELDS + 3 * DMARC_REPORT_MAX_DKIM };
    char *f[MAX_FIELDS];
    size_t n = 0;
    const char *p = line, *end = line + len;
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *stop = tab ? tab : end;
        if (n == MAX_FIELDS || (size_t)(stop - p) > DMARC_REPORT_FIELD_MAX) {
            for (size_t i = 0; i < n; i++)
                free(f[i]);
            return -1;
        }
        f[n++] = xstrndup(p, (size_t)(stop - p));
        if (!tab)
            break;
        p = tab + 1;
    }
    int ok = n >= 1 + ROW_FIXED_FIELDS && (n - 1 - ROW_FIXED_FIELDS) % 3 == 0;
    char *countend = NULL;
    errno = 0;
    unsigned long long count = ok ? strtoull(f[0], &countend, 10) : 0;
    /* ERANGE: a count past 2^64-1 is not one (strtoull would say 2^64-1) */
    if (!ok || !str_is_digit(f[0][0]) || *countend || count == 0 || errno == ERANGE) {
        for (size_t i = 0; i < n; i++)
            free(f[i]);
        return -1;
    }
    free(f[0]);
    r->count = count;
    char **fields[] = {&r->policy_domain, &r->source_ip, &r->header_from, &r->envelope_from, &r->envelope_to,
                       &r->disposition, &r->dkim, &r->spf, &r->reason, &r->spf_domain, &r->spf_result};
    for (size_t i = 0; i < ROW_FIXED_FIELDS; i++)
        *fields[i] = f[1 + i];
    for (size_t i = 1 + ROW_FIXED_FIELDS; i < n; i += 3) {
        r->dkim_sigs[r->ndkim++] = (struct dmarc_report_dkim){f[i], f[i + 1], f[i + 2]};
    }
    char why[DMARC_ERR_MAX];
    if (dmarc_report_row_check(r, why) != 0) {
        dmarc_report_row_free(r);
        return -1;
    }
    return 0;
}

char *dmarc_report_id(const struct dmarc_report_meta *meta, const char *policy_domain)
{
    return xasprintf("%lld.%s@%s", (long long)meta->begin, policy_domain, meta->receiver);
}

char *dmarc_report_filename(const struct dmarc_report_meta *meta, const char *policy_domain)
{
    return xasprintf("%s!%s!%lld!%lld.xml.gz", meta->receiver, policy_domain, (long long)meta->begin,
                     (long long)meta->end);
}

/* Text content: the five XML specials escaped, anything not printable
 * ASCII left out (every field of a row is already plain ASCII; this is for
 * the configured names). */
static void xml_text(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': strbuf_puts(out, "&amp;"); break;
        case '<': strbuf_puts(out, "&lt;"); break;
        case '>': strbuf_puts(out, "&gt;"); break;
        case '"': strbuf_puts(out, "&quot;"); break;
        case '\'': strbuf_puts(out, "&apos;"); break;
        default:
            if (*s >= 0x20 && *s < 0x7f)
                strbuf_putc(out, *s);
        }
    }
}

static void element(struct strbuf *out, int depth, const char *name, const char *value)
{
    strbuf_printf(out, "%*s<%s>", depth * 2, "", name);
    xml_text(out, value);
    strbuf_printf(out, "</%s>\n", name);
}

static const char *policy_or(enum dmarc_policy p, enum dmarc_policy fallback)
{
    return dmarc_policy_name(p != DMARC_POLICY_UNSET ? p : fallback);
}

static void fo_text(unsigned fo, char *buf, size_t size)
{
    static const struct { unsigned bit; const char *name; } opts[] = {
        {DMARC_FO_0, "0"}, {DMARC_FO_1, "1"}, {DMARC_FO_D, "d"}, {DMARC_FO_S, "s"}};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (fo & opts[i].bit)
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? ":" : "", opts[i].name);
    if (!buf[0])
        snprintf(buf, size, "0");
}

static void row_xml(struct strbuf *out, const struct dmarc_report_row *r)
{
    char count[24];
    snprintf(count, sizeof count, "%llu", (unsigned long long)r->count);
    strbuf_puts(out, "  <record>\n    <row>\n");
    element(out, 3, "source_ip", r->source_ip);
    element(out, 3, "count", count);
    strbuf_puts(out, "      <policy_evaluated>\n");
    element(out, 4, "disposition", r->disposition);
    element(out, 4, "dkim", r->dkim);
    element(out, 4, "spf", r->spf);
    if (*r->reason) {
        strbuf_puts(out, "        <reason>\n");
        element(out, 5, "type", r->reason);
        strbuf_puts(out, "        </reason>\n");
    }
    strbuf_puts(out, "      </policy_evaluated>\n    </row>\n    <identifiers>\n");
    element(out, 3, "header_from", r->header_from);
    /* present but empty for the null reverse-path (RFC 9990 3.1.1.10) */
    element(out, 3, "envelope_from", r->envelope_from);
    if (*r->envelope_to)
        element(out, 3, "envelope_to", r->envelope_to);
    strbuf_puts(out, "    </identifiers>\n    <auth_results>\n");
    for (size_t i = 0; i < r->ndkim; i++) {
        strbuf_puts(out, "      <dkim>\n");
        element(out, 4, "domain", r->dkim_sigs[i].domain);
        element(out, 4, "selector", r->dkim_sigs[i].selector);
        element(out, 4, "result", r->dkim_sigs[i].result);
        strbuf_puts(out, "      </dkim>\n");
    }
    if (*r->spf_domain) {
        strbuf_puts(out, "      <spf>\n");
        element(out, 4, "domain", r->spf_domain);
        element(out, 4, "scope", "mfrom");
        element(out, 4, "result", r->spf_result);
        strbuf_puts(out, "      </spf>\n");
    }
    strbuf_puts(out, "    </auth_results>\n  </record>\n");
}

void dmarc_report_xml(const struct dmarc_report_meta *meta, const char *policy_domain,
                      const struct dmarc_record *rec, struct dmarc_report_row *const *rows, size_t nrows,
                      struct strbuf *out)
{
    char num[24];
    strbuf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    strbuf_puts(out, "<feedback xmlns=\"" DMARC_REPORT_NAMESPACE "\">\n");
    element(out, 1, "version", "1.0");
    strbuf_puts(out, "  <report_metadata>\n");
    element(out, 2, "org_name", meta->org_name);
    element(out, 2, "email", meta->email);
    char *rid = dmarc_report_id(meta, policy_domain);
    element(out, 2, "report_id", rid);
    free(rid);
    strbuf_puts(out, "    <date_range>\n");
    snprintf(num, sizeof num, "%lld", (long long)meta->begin);
    element(out, 3, "begin", num);
    snprintf(num, sizeof num, "%lld", (long long)meta->end);
    element(out, 3, "end", num);
    strbuf_puts(out, "    </date_range>\n");
    if (meta->generator)
        element(out, 2, "generator", meta->generator);
    strbuf_puts(out, "  </report_metadata>\n  <policy_published>\n");
    element(out, 2, "domain", policy_domain);
    /* unspecified tags with their defaults (RFC 9990 3.1.1.5): sp is p,
     * np is sp; a record whose p is unusable is applied as p=none */
    enum dmarc_policy p = dmarc_record_policy_ok(rec) ? rec->p : DMARC_POLICY_NONE;
    enum dmarc_policy sp = dmarc_record_policy_ok(rec) ? rec->sp : DMARC_POLICY_UNSET;
    enum dmarc_policy np = dmarc_record_policy_ok(rec) ? rec->np : DMARC_POLICY_UNSET;
    element(out, 2, "p", policy_or(p, DMARC_POLICY_NONE));
    element(out, 2, "sp", policy_or(sp, p));
    element(out, 2, "np", policy_or(np, sp != DMARC_POLICY_UNSET ? sp : p));
    element(out, 2, "adkim", rec->adkim == DMARC_STRICT ? "s" : "r");
    element(out, 2, "aspf", rec->aspf == DMARC_STRICT ? "s" : "r");
    element(out, 2, "discovery_method", "treewalk");
    char fo[16];
    fo_text(rec->fo, fo, sizeof fo);
    element(out, 2, "fo", fo);
    element(out, 2, "testing", rec->testing ? "y" : "n");
    strbuf_puts(out, "  </policy_published>\n");
    for (size_t i = 0; i < nrows; i++)
        row_xml(out, rows[i]);
    strbuf_puts(out, "</feedback>\n");
}

int dmarc_report_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper, not zlib's */
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    unsigned char *buf = xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

static void utc_text(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

void dmarc_report_message(const struct dmarc_report_meta *meta, const char *policy_domain,
                          const char *const *to, size_t nto, const unsigned char *gz, size_t gzlen,
                          time_t date, const char *boundary_seed, struct strbuf *out)
{
    char *rid = dmarc_report_id(meta, policy_domain);
    char *file = dmarc_report_filename(meta, policy_domain);
    char *when = msg_header_date(date);
    strbuf_printf(out, "From: %s\r\nTo: ", meta->email);
    for (size_t i = 0; i < nto; i++)
        strbuf_printf(out, "%s%s", i ? ",\r\n " : "", to[i]);
    /* folded between its parts, as RFC 9990 3.5.2's example is */
    strbuf_printf(out, "\r\nSubject: Report Domain: %s\r\n Submitter: %s\r\n Report-ID: <%s>\r\n", policy_domain,
                  meta->receiver, rid);
    if (when)
        strbuf_puts(out, when);   /* the whole field */
    strbuf_printf(out, "Message-ID: <%s>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n", rid);
    strbuf_printf(out, "Content-Type: multipart/mixed; boundary=\"=_dmarc_%s\"\r\n\r\n", boundary_seed);
    char b[40], e[40];
    utc_text(meta->begin, b, sizeof b);
    utc_text(meta->end, e, sizeof e);
    strbuf_printf(out, "--=_dmarc_%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                       "This is a DMARC aggregate report (RFC 9990) from %s for %s,\r\n"
                       "covering %s to %s.\r\nThe report is the attached %s.\r\n\r\n",
                  boundary_seed, meta->receiver, policy_domain, b, e, file);
    strbuf_printf(out, "--=_dmarc_%s\r\nContent-Type: application/gzip; name=\"%s\"\r\n"
                       "Content-Disposition: attachment; filename=\"%s\"\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n",
                  boundary_seed, file, file);
    char line[80];
    for (size_t off = 0; off < gzlen; off += 57) {
        size_t k = gzlen - off < 57 ? gzlen - off : 57;   /* 57 bytes: 76 characters a line */
        size_t n = base64_encode(gz + off, k, line);
        strbuf_append(out, line, n);
        strbuf_puts(out, "\r\n");
    }
    strbuf_printf(out, "\r\n--=_dmarc_%s--\r\n", boundary_seed);
    free(when);
    free(file);
    free(rid);
}

int dmarc_report_mailto(const char *uri, char **addr, const char **host)
{
    if (strncasecmp(uri, "mailto:", 7) != 0)
        return -1;
    const char *p = uri + 7;
    size_t n = strcspn(p, "?");
    if (n == 0 || n > 3 * 254)
        return -1;
    char decoded[255 * 3 + 1];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = str_hex_value(p[i + 1]), lo = str_hex_value(p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '\0')
                return -1;
        }
        decoded[k++] = c;
    }
    decoded[k] = '\0';
    /* one plain addr-spec: a dot-atom local part (quoted ones are not
     * worth the risk of a report address) and a host name */
    char *at = strrchr(decoded, '@');
    if (!at || at == decoded || k > 254)
        return -1;
    *at = '\0';
    if (!str_is_dot_atom(decoded, strlen(decoded), 0))
        return -1;
    char dom[DMARC_DOMAIN_MAX + 1];
    if (dmarc_domain_normalize(at + 1, dom) != 0)
        return -1;
    *addr = xasprintf("%s@%s", decoded, dom);
    *host = strchr(*addr, '@') + 1;
    return 0;
}
