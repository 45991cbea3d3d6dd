/* smtpc_cmd: the MAIL and RCPT commands smtpc sends, with the
 * parameters the server offered: SIZE (RFC 1870), BODY (RFC 6152),
 * SMTPUTF8 (RFC 6531), RET, ENVID, NOTIFY, ORCPT (RFC 3461, with the
 * "utf-8" address type of RFC 6533 for ORCPT). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtpc/smtpc_internal.h"
#include "util/mem.h"
#include "util/str.h"

/* RFC 3461 §4.2 and §4.4: the encoded ORCPT address and ENVID limits. A
 * value over them would get the whole command refused, so it is left out
 * (the DSN then lacks it, which is what RFC 3461 §4 allows a relay to do). */
#define ORCPT_MAX 500
#define ENVID_MAX 100

int smtpc_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (str_is_ctl(*p))
            return 0;
    return 1;
}

/* RFC 3461 §4: xtext, "+HH" for anything but printable ASCII, '+' and '='. */
static void put_xtext(struct strbuf *sb, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 33 && c <= 126 && c != '+' && c != '=')
            strbuf_putc(sb, (char)c);
        else
            strbuf_printf(sb, "+%02X", c);
    }
}

/* The code point at s: an "\x{HEX}" escape (2-6 digits) or one UTF-8
 * sequence or an ASCII octet. Returns its length in s, 0 if s holds
 * neither a valid escape, UTF-8 nor ASCII there. */
static size_t next_code_point(const char *s, size_t len, unsigned long *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (len >= 6 && s[0] == '\\' && s[1] == 'x' && s[2] == '{') {
        size_t i = 3;
        unsigned long v = 0;
        while (i < len && i < 9 && str_hex_value(s[i]) >= 0)
            v = v * 16 + (unsigned long)str_hex_value(s[i++]);
        if (i - 3 >= 2 && i < len && s[i] == '}' && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff)) {
            *cp = v;
            return i + 1;
        }
    }
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t n = str_utf8_len(u, len);
    if (n == 0)
        return 0;
    *cp = str_utf8_decode(u, n);
    return n;
}

/* RFC 6533 §3: a "utf-8" address as utf-8-addr-unitext (raw UTF-8, when
 * the transaction is SMTPUTF8) or utf-8-addr-xtext (7-bit). Escapes the
 * address already holds are decoded first, so nothing is escaped twice.
 * -1 when the address is not UTF-8. */
static int put_utf8_addr(struct strbuf *sb, const char *s, size_t len, int raw_utf8)
{
    for (size_t i = 0; i < len;) {
        unsigned long cp;
        size_t n = next_code_point(s + i, len - i, &cp);
        if (n == 0)
            return -1;
        i += n;
        if (cp >= 0x21 && cp <= 0x7e && cp != '+' && cp != '=' && cp != '\\')
            strbuf_putc(sb, (char)cp);
        else if (cp >= 0x80 && raw_utf8)
            strbuf_put_utf8(sb, (uint32_t)cp);
        else
            strbuf_printf(sb, "\\x{%02lX}", cp);
    }
    return 0;
}

/* " ORCPT=type;value", or nothing when it cannot be sent within limits. */
static void put_orcpt(struct strbuf *sb, const char *orcpt, int smtputf8)
{
    const char *semi = strchr(orcpt, ';');
    const char *type = "rfc822", *addr = orcpt;
    size_t type_len = 6;
    if (semi != NULL && semi > orcpt) {
        type = orcpt;
        type_len = (size_t)(semi - orcpt);
        addr = semi + 1;
    }
    for (size_t i = 0; i < type_len; i++) {
        unsigned char c = (unsigned char)type[i];
        if (c <= 32 || c >= 127 || c == '=' || c == '+')
            return;
    }
    size_t addr_len = strlen(addr);
    if (addr_len == 0)
        return;
    int is_utf8_type = type_len == 5 && strncasecmp(type, "utf-8", 5) == 0;
    int is_rfc822 = type_len == 6 && strncasecmp(type, "rfc822", 6) == 0;
    struct strbuf v = STRBUF_INIT;
    int ok = 1;
    if (is_utf8_type || (is_rfc822 && str_has_8bit(addr, strlen(addr)))) {
        /* an rfc822 address cannot hold UTF-8: it travels as type utf-8 */
        strbuf_puts(&v, "utf-8;");
        ok = put_utf8_addr(&v, addr, addr_len, smtputf8) == 0;
    } else {
        strbuf_append(&v, type, type_len);
        strbuf_putc(&v, ';');
        put_xtext(&v, addr, addr_len);
    }
    if (ok && v.len - (size_t)(strchr(strbuf_str(&v), ';') - strbuf_str(&v)) - 1 <= ORCPT_MAX) {
        strbuf_puts(sb, " ORCPT=");
        strbuf_puts(sb, strbuf_str(&v));
    }
    strbuf_free(&v);
}

void smtpc_put_mail(struct strbuf *sb, const struct smtpc_msg *m, const struct smtpc_ext *ext,
                    int smtputf8)
{
    strbuf_printf(sb, "MAIL FROM:<%s>", m->sender ? m->sender : "");
    if (ext->size)
        strbuf_printf(sb, " SIZE=%llu", (unsigned long long)smtpc_msg_size(m));
    if (m->body_8bit && ext->eightbit)
        strbuf_puts(sb, " BODY=8BITMIME");
    if (smtputf8)
        strbuf_puts(sb, " SMTPUTF8");
    if (ext->dsn) {
        if (m->ret != NULL && (strcasecmp(m->ret, "FULL") == 0 || strcasecmp(m->ret, "HDRS") == 0))
            strbuf_printf(sb, " RET=%s", strcasecmp(m->ret, "FULL") == 0 ? "FULL" : "HDRS");
        if (m->envid != NULL && m->envid[0] != '\0') {
            struct strbuf v = STRBUF_INIT;
            put_xtext(&v, m->envid, strlen(m->envid));
            if (v.len <= ENVID_MAX)
                strbuf_printf(sb, " ENVID=%s", strbuf_str(&v));
            strbuf_free(&v);
        }
    }
    strbuf_puts(sb, "\r\n");
}

void smtpc_put_rcpt(struct strbuf *sb, const struct smtpc_rcpt *r, const struct smtpc_ext *ext,
                    int smtputf8)
{
    strbuf_printf(sb, "RCPT TO:<%s>", r->addr);
    if (ext->dsn) {
        /* NOTIFY bits as in queue_file.h / smtp_cmd.h */
        if (r->notify & 8) {
            strbuf_puts(sb, " NOTIFY=NEVER");
        } else if (r->notify & 7) {
            const char *sep = " NOTIFY=";
            static const char *const words[] = {"SUCCESS", "FAILURE", "DELAY"};
            for (unsigned i = 0; i < 3; i++) {
                if (r->notify & (1u << i)) {
                    strbuf_printf(sb, "%s%s", sep, words[i]);
                    sep = ",";
                }
            }
        }
        if (r->orcpt != NULL && r->orcpt[0] != '\0')
            put_orcpt(sb, r->orcpt, smtputf8);
    }
    strbuf_puts(sb, "\r\n");
}
