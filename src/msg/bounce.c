/* bounce: composes delivery status notifications -- the top header, the
 * three parts of the multipart/report, the boundary, and the returned
 * original. See bounce.h for the contract and the choices made where the RFCs
 * leave room; the formatting of field values is in bounce_fields.c. */
#include "msg/bounce.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include "msg/msg_header.h"
#include "msg/bounce_internal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A remote MTA's name leaves room on its line for the rest of the field. */
#define REMOTE_MTA_MAX (BOUNCE_LINE_HARD / 2)
/* The header of the original is looked for in this much of its start; a
 * header beyond it is cut at a line end (a notice need not carry it all). */
#define HEADER_READ_MAX (1024 * 1024)
#define IO_CHUNK 65536
/* Each try has 96 fresh random bits: running out means a broken random source. */
#define BOUNDARY_TRIES 16
#define BOUNDARY_RANDOM_BYTES 12
#define BOUNDARY_ID_MAX 32

enum return_mode { RETURN_NONE, RETURN_HEADERS, RETURN_FULL };

struct notice {
    const struct dsn_info *info;
    const struct dsn_rcpt *rcpts;
    size_t n;
    int global;              /* RFC 6533 types */
    struct strbuf text;      /* part 1 body */
    struct strbuf status;    /* part 2 body */
    enum return_mode ret;
    int too_big;             /* headers only because of max_returned */
    int empty;               /* the original has no content */
    char *prefix;            /* the start of the original, for its header */
    size_t prefix_len;
    size_t header_len;       /* header bytes in prefix to return (RETURN_HEADERS) */
    int insert_separator;    /* RETURN_FULL: an empty line goes in at header_len */
    int ret_8bit;
    int ret_needs_crlf;      /* the returned content does not end in a line end */
    char boundary[BOUNDARY_ID_MAX + 2 + 2 * BOUNDARY_RANDOM_BYTES + 1];
};

/* ---------------------------------------------------------------------------
 * randomness (for the boundary) */

static void system_random(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = getrandom(buf + got, len - got, GRND_NONBLOCK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == len)
        return;
    /* No entropy yet (early boot): uniqueness is all the boundary needs, and
     * it is verified against the content anyway. */
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 32) +
                 ++counter * 0x9E3779B97F4A7C15u;
    for (size_t i = got; i < len; i++) {
        x += 0x9E3779B97F4A7C15u;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        buf[i] = (unsigned char)(z ^ (z >> 31));
    }
}

static void (*random_fill)(unsigned char *buf, size_t len) = system_random;

#ifdef TERN_TEST_BUILD
void bounce_test_set_random(void (*fill)(unsigned char *buf, size_t len))
{
    random_fill = fill ? fill : system_random;
}
#endif

/* ---------------------------------------------------------------------------
 * per-recipient values */

static const char *default_action(enum dsn_kind kind)
{
    return kind == DSN_FAILURE ? "failed" : kind == DSN_DELAY ? "delayed" : "delivered";
}

static const char *action_of(const struct notice *nt, const struct dsn_rcpt *r)
{
    static const char *const actions[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
    for (size_t i = 0; r->action && i < sizeof actions / sizeof actions[0]; i++)
        if (strcasecmp(r->action, actions[i]) == 0)
            return actions[i];
    return default_action(nt->info->kind);
}

/* status-code = DIGIT "." 1*3DIGIT "." 1*3DIGIT, no leading zeros (RFC 3464
 * 2.3.4), class 2, 4 or 5 (RFC 3463). */
static int status_valid(const char *s)
{
    if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    const char *p = s + 2;
    for (int field = 0; field < 2; field++) {
        size_t digits = 0;
        while (p[digits] >= '0' && p[digits] <= '9')
            digits++;
        if (digits == 0 || digits > 3 || (digits > 1 && p[0] == '0'))
            return 0;
        p += digits;
        if (field == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

static const char *status_of(const struct notice *nt, const struct dsn_rcpt *r)
{
    if (r->status && status_valid(r->status))
        return r->status;
    return nt->info->kind == DSN_FAILURE ? "5.0.0" : nt->info->kind == DSN_DELAY ? "4.0.0" : "2.0.0";
}

static const char *status_subject(const char *status)
{
    switch (status[3] == '.' ? status[2] : '\0') {
    case '1': return "a problem with the address";
    case '2': return "a problem with the recipient's mailbox";
    case '3': return "a problem with the receiving mail system";
    case '4': return "a network or routing problem";
    case '5': return "a mail protocol problem";
    case '6': return "a problem with the message content";
    case '7': return "a security or policy refusal";
    default: return "the reason was not given";
    }
}

/* ---------------------------------------------------------------------------
 * part 1: the text */

static void text_reason(struct strbuf *out, const struct notice *nt, const struct dsn_rcpt *r)
{
    const char *action = action_of(nt, r);
    const char *status = status_of(nt, r);
    if (r->diagnostic && *bounce_untyped(r->diagnostic)) {
        /* Only an SMTP reply is the remote host's own words. */
        if (r->remote_mta && *bounce_untyped(r->remote_mta) && bounce_type_prefix_len(r->diagnostic) == 4 &&
            strncasecmp(r->diagnostic, "smtp", 4) == 0) {
            strbuf_puts(out, "host ");
            bounce_put_clean(out, bounce_untyped(r->remote_mta), REMOTE_MTA_MAX, 0);
            strbuf_puts(out, " said: ");
        }
        bounce_put_diagnostic(out, r->diagnostic, 1);
        return;
    }
    if (strcmp(action, "relayed") == 0) {
        strbuf_puts(out, "relayed to a mail system that does not report delivery");
        if (r->remote_mta && *bounce_untyped(r->remote_mta)) {
            strbuf_puts(out, " (");
            bounce_put_clean(out, bounce_untyped(r->remote_mta), REMOTE_MTA_MAX, 0);
            strbuf_puts(out, ")");
        }
    } else if (strcmp(action, "expanded") == 0) {
        strbuf_puts(out, "delivered to an alias or list and forwarded to its members");
    } else if (strcmp(action, "delivered") == 0) {
        strbuf_puts(out, "delivered");
    } else {
        strbuf_printf(out, "%s: %s (status %s)", strcmp(action, "delayed") == 0 ? "not delivered yet" : "delivery failed",
                  status_subject(status), status);
    }
}

static void build_text(struct notice *nt, const char *host, const char *mail_name)
{
    const struct dsn_info *info = nt->info;
    struct strbuf *sb = &nt->text;
    struct strbuf para = STRBUF_INIT;

    strbuf_printf(&para, "This is the %s mail system at host %s.", mail_name, host);
    bounce_put_wrapped(sb, "", strbuf_str(&para));
    strbuf_puts(sb, "\r\n");
    strbuf_reset(&para);

    if (info->kind == DSN_FAILURE) {
        bounce_put_wrapped(sb, "",
                    "Your message could not be delivered to one or more of its recipients. The mail "
                    "system has given up on the recipients listed below: each of them refused the "
                    "message for good, or could not be reached for as long as a message may wait "
                    "in the queue.");
        strbuf_puts(sb, "\r\n");
        if (nt->ret == RETURN_FULL)
            strbuf_puts(&para, "Your message is attached to this notice.");
        else if (nt->ret == RETURN_HEADERS && nt->too_big && !info->return_headers_only)
            strbuf_puts(&para, "The header of your message is attached; the message was too large to return "
                           "in full.");
        else if (nt->ret == RETURN_HEADERS)
            strbuf_puts(&para, "The header of your message is attached.");
        else
            strbuf_puts(&para, nt->empty ? "Your message was empty, so nothing of it is attached."
                                     : "Your message had no header to attach.");
        strbuf_puts(&para, " Please check each address below for typing mistakes and read the reason "
                       "given for it. If a reason is unclear or the problem persists, write to the "
                       "postmaster of this mail system (postmaster@");
        strbuf_puts(&para, host);
        strbuf_puts(&para, ") and include this notice.");
        bounce_put_wrapped(sb, "", strbuf_str(&para));
    } else if (info->kind == DSN_DELAY) {
        time_t until = 0;
        for (size_t i = 0; i < nt->n; i++)
            if (nt->rcpts[i].will_retry_until > until && strcmp(action_of(nt, &nt->rcpts[i]), "delayed") == 0)
                until = nt->rcpts[i].will_retry_until;
        char *date = until ? bounce_date_value(until) : NULL;
        strbuf_puts(&para, "Your message has not been delivered yet to the recipients listed below. ");
        if (date)
            strbuf_printf(&para, "The mail system will keep trying until %s.", date);
        else
            strbuf_puts(&para, "The mail system will keep trying for a while.");
        strbuf_puts(&para, " You do not need to send the message again. If it still cannot be delivered "
                       "when the mail system gives up, you will get another notice.");
        free(date);
        bounce_put_wrapped(sb, "", strbuf_str(&para));
    } else {
        int relayed = 0;
        for (size_t i = 0; i < nt->n; i++)
            relayed |= strcmp(action_of(nt, &nt->rcpts[i]), "relayed") == 0;
        strbuf_puts(&para, "Your message was delivered to the recipients listed below, as you asked to be "
                       "told.");
        if (relayed)
            strbuf_puts(&para, " A recipient marked as relayed was handed to a mail system that does not "
                           "report delivery, so no further notice will come for it.");
        bounce_put_wrapped(sb, "", strbuf_str(&para));
    }
    strbuf_puts(sb, "\r\n");

    for (size_t i = 0; i < nt->n; i++) {
        const struct dsn_rcpt *r = &nt->rcpts[i];
        strbuf_reset(&para);
        strbuf_putc(&para, '<');
        bounce_put_clean(&para, r->final_rcpt, SIZE_MAX, 1);
        strbuf_puts(&para, ">:");
        bounce_put_wrapped(sb, "", strbuf_str(&para));
        strbuf_reset(&para);
        text_reason(&para, nt, r);
        bounce_put_wrapped(sb, "    ", strbuf_str(&para));
        if (i + 1 < nt->n)
            strbuf_puts(sb, "\r\n");
    }
    strbuf_free(&para);
}

/* ---------------------------------------------------------------------------
 * part 2: the delivery status (RFC 3464 2.2, 2.3) */

static void build_status(struct notice *nt, const char *host)
{
    const struct dsn_info *info = nt->info;
    struct strbuf *sb = &nt->status;
    struct strbuf v = STRBUF_INIT;

    if (info->envid && *info->envid) {
        bounce_put_clean(&v, info->envid, SIZE_MAX, 0);
        bounce_put_field(sb, "Original-Envelope-Id", strbuf_str(&v));
        strbuf_reset(&v);
    }
    strbuf_printf(&v, "dns; %s", host);
    bounce_put_field(sb, "Reporting-MTA", strbuf_str(&v));
    strbuf_reset(&v);
    if (info->arrival)
        bounce_put_date_field(sb, "Arrival-Date", info->arrival);
    if (info->orig_queue_id && *info->orig_queue_id) {
        bounce_put_clean(&v, info->orig_queue_id, SIZE_MAX, 0);
        bounce_put_field(sb, "X-Tern-Queue-ID", strbuf_str(&v));
        strbuf_reset(&v);
    }
    if (info->orig_sender && *info->orig_sender) {
        bounce_put_address(&v, "rfc822", 6, "; ", info->orig_sender, nt->global);
        bounce_put_field(sb, "X-Tern-Sender", strbuf_str(&v));
        strbuf_reset(&v);
    }

    for (size_t i = 0; i < nt->n; i++) {
        const struct dsn_rcpt *r = &nt->rcpts[i];
        const char *action = action_of(nt, r);
        strbuf_puts(sb, "\r\n");
        if (r->orcpt && *r->orcpt) {
            bounce_put_orcpt(&v, r->orcpt, nt->global);
            bounce_put_field(sb, "Original-Recipient", strbuf_str(&v));
            strbuf_reset(&v);
        }
        bounce_put_address(&v, "rfc822", 6, "; ", r->final_rcpt, nt->global);
        bounce_put_field(sb, "Final-Recipient", strbuf_str(&v));
        strbuf_reset(&v);
        bounce_put_field(sb, "Action", action);
        bounce_put_field(sb, "Status", status_of(nt, r));
        if (r->remote_mta && *bounce_untyped(r->remote_mta)) {
            if (bounce_type_prefix_len(r->remote_mta) == 0)
                strbuf_puts(&v, "dns; ");
            bounce_put_clean(&v, r->remote_mta, REMOTE_MTA_MAX, 0);
            bounce_put_field(sb, "Remote-MTA", strbuf_str(&v));
            strbuf_reset(&v);
        }
        if (r->diagnostic && *bounce_untyped(r->diagnostic)) {
            size_t tl = bounce_type_prefix_len(r->diagnostic);
            if (tl)
                strbuf_append(&v, r->diagnostic, tl);
            else
                strbuf_puts(&v, "x-tern");
            strbuf_puts(&v, "; ");
            bounce_put_diagnostic(&v, r->diagnostic, nt->global);
            bounce_put_field(sb, "Diagnostic-Code", strbuf_str(&v));
            strbuf_reset(&v);
        }
        if (r->last_attempt)
            bounce_put_date_field(sb, "Last-Attempt-Date", r->last_attempt);
        if (r->will_retry_until && info->kind == DSN_DELAY && strcmp(action, "delayed") == 0)
            bounce_put_date_field(sb, "Will-Retry-Until", r->will_retry_until);
    }
    strbuf_free(&v);
}

/* ---------------------------------------------------------------------------
 * part 3: the original */

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = EIO; /* the queue file is shorter than its envelope says */
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* Reads the start of the original and decides what part 3 holds. */
static int plan_return(struct notice *nt, int fd, uint64_t offset, uint64_t length)
{
    const struct dsn_info *info = nt->info;
    nt->too_big = length > info->max_returned;
    int full = info->kind == DSN_FAILURE && !info->return_headers_only && !nt->too_big;
    if (length == 0) {
        nt->empty = 1;
        nt->ret = RETURN_NONE;
        return 0;
    }
    nt->prefix_len = length < HEADER_READ_MAX ? (size_t)length : HEADER_READ_MAX;
    nt->prefix = xmalloc(nt->prefix_len + 1);
    if (read_at(fd, nt->prefix, nt->prefix_len, offset) != 0)
        return -1;
    nt->prefix[nt->prefix_len] = '\0';

    struct msg_header_info hi;
    msg_header_scan(nt->prefix, nt->prefix_len, &hi);
    size_t header_len = hi.header_len;
    int has_separator = hi.has_body_separator;
    int ended = has_separator || header_len < nt->prefix_len || nt->prefix_len == length;
    msg_header_info_free(&hi);

    if (full) {
        nt->ret = RETURN_FULL;
        nt->header_len = header_len;
        nt->insert_separator = ended && !has_separator && header_len < nt->prefix_len;
        return 0;
    }
    if (!ended) {
        /* The header goes on past what was read: keep its whole lines. */
        while (header_len > 0 && nt->prefix[header_len - 1] != '\n')
            header_len--;
    }
    nt->header_len = header_len;
    nt->ret = header_len ? RETURN_HEADERS : RETURN_NONE;
    if (nt->ret == RETURN_HEADERS) {
        nt->ret_8bit = str_has_8bit(nt->prefix, header_len);
        nt->ret_needs_crlf = nt->prefix[header_len - 1] != '\n';
    }
    return 0;
}

/* Looks for the boundary in the original's [offset, offset+length), and notes
 * whether the original has 8-bit bytes and how it ends. */
static int scan_original(struct notice *nt, int fd, uint64_t offset, uint64_t length, int *found)
{
    size_t blen = strlen(nt->boundary);
    char *buf = xmalloc(IO_CHUNK + blen);
    size_t keep = 0;
    unsigned char last = 0;
    int eight = 0;
    *found = 0;
    for (uint64_t pos = 0; pos < length;) {
        size_t want = length - pos < IO_CHUNK ? (size_t)(length - pos) : IO_CHUNK;
        if (read_at(fd, buf + keep, want, offset + pos) != 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        eight = eight || str_has_8bit(buf + keep, want);
        last = (unsigned char)buf[keep + want - 1];
        size_t total = keep + want;
        if (memmem(buf, total, nt->boundary, blen)) {
            *found = 1;
            break;
        }
        keep = total < blen - 1 ? total : blen - 1;
        memmove(buf, buf + total - keep, keep);
        pos += want;
    }
    free(buf);
    nt->ret_8bit = eight;
    nt->ret_needs_crlf = last != '\n';
    return 0;
}

static void make_boundary(struct notice *nt)
{
    static const char hex[] = "0123456789abcdef";
    /* RFC 2046 bchars; a notice_id is a queue ID, but check rather than trust. */
    static const char bchars[] = "'()+_,-./:=?";
    unsigned char rnd[BOUNDARY_RANDOM_BYTES];
    size_t o = 0;
    const char *id = nt->info->notice_id ? nt->info->notice_id : "";
    for (size_t i = 0; id[i] && o < BOUNDARY_ID_MAX; i++) {
        unsigned char c = (unsigned char)id[i];
        if ((c < 0x80 && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) ||
            (c != '\0' && strchr(bchars, c)))
            nt->boundary[o++] = (char)c;
    }
    nt->boundary[o++] = '.';
    random_fill(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++) {
        nt->boundary[o++] = hex[rnd[i] >> 4];
        nt->boundary[o++] = hex[rnd[i] & 15];
    }
    nt->boundary[o] = '\0';
}

static int in_memory(const struct strbuf *sb, const char *needle)
{
    return sb->len && memmem(sb->buf, sb->len, needle, strlen(needle)) != NULL;
}

static int choose_boundary(struct notice *nt, int fd, uint64_t offset, uint64_t length)
{
    for (int tries = 0; tries < BOUNDARY_TRIES; tries++) {
        make_boundary(nt);
        if (in_memory(&nt->text, nt->boundary) || in_memory(&nt->status, nt->boundary))
            continue;
        if (nt->ret == RETURN_HEADERS &&
            memmem(nt->prefix, nt->header_len, nt->boundary, strlen(nt->boundary)))
            continue;
        if (nt->ret == RETURN_FULL) {
            int found;
            if (scan_original(nt, fd, offset, length, &found) != 0)
                return -1;
            if (found)
                continue;
        }
        return 0;
    }
    errno = EAGAIN;
    return -1;
}

/* Copies the original to w, with the empty line it lacks when planned. */
static int copy_original(struct queue_file_writer *w, struct notice *nt, int fd, uint64_t offset, uint64_t length)
{
    char *buf = xmalloc(IO_CHUNK);
    int rc = 0;
    for (uint64_t pos = 0; pos < length && rc == 0;) {
        size_t want = length - pos < IO_CHUNK ? (size_t)(length - pos) : IO_CHUNK;
        if (nt->insert_separator && pos < nt->header_len && nt->header_len - pos < want)
            want = (size_t)(nt->header_len - pos);
        if (nt->insert_separator && pos == nt->header_len && queue_file_writer_write(w, "\r\n", 2) != 0) {
            rc = -1;
            break;
        }
        if (read_at(fd, buf, want, offset + pos) != 0 || queue_file_writer_write(w, buf, want) != 0)
            rc = -1;
        pos += want;
    }
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}

/* ---------------------------------------------------------------------------
 * the notice */

static const char *subject_of(enum dsn_kind kind)
{
    switch (kind) {
    case DSN_DELAY: return "Delayed Mail (still being retried)";
    case DSN_SUCCESS: return "Successful Mail Delivery Report";
    default: return "Undelivered Mail Returned to Sender";
    }
}

static void put_top_header(struct strbuf *sb, struct notice *nt, const char *host, const char *message_id,
                           const char *date, int body_8bit)
{
    const struct dsn_info *info = nt->info;
    strbuf_puts(sb, date);
    strbuf_printf(sb, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", host);
    strbuf_puts(sb, "To: <");
    bounce_put_mailbox(sb, info->to);
    strbuf_puts(sb, ">\r\n");
    strbuf_printf(sb, "Subject: %s\r\n", subject_of(info->kind));
    strbuf_puts(sb, message_id);
    strbuf_puts(sb, "Auto-Submitted: auto-replied\r\n");
    strbuf_puts(sb, "MIME-Version: 1.0\r\n");
    /* RFC 6522: report-type names the subtype of the second part, so an
     * RFC 6533 notice is a global-delivery-status report; parsers match on it. */
    strbuf_printf(sb, "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n",
                  nt->global ? "global-delivery-status" : "delivery-status", nt->boundary);
    strbuf_printf(sb, "Content-Transfer-Encoding: %s\r\n", body_8bit ? "8bit" : "7bit");
    strbuf_puts(sb, "\r\n");
    strbuf_puts(sb, "This is a MIME-encapsulated message: a delivery status notification.\r\n");
}

static void put_part3_header(struct strbuf *sb, const struct notice *nt)
{
    const char *what = nt->info->kind == DSN_FAILURE ? "Undelivered Message"
                       : nt->info->kind == DSN_DELAY ? "Delayed Message"
                                                     : "Delivered Message";
    const char *type;
    if (nt->ret == RETURN_FULL)
        type = nt->global ? "message/global" : "message/rfc822";
    else
        type = nt->global ? "message/global-headers" : "text/rfc822-headers";
    strbuf_printf(sb, "\r\n--%s\r\n", nt->boundary);
    strbuf_printf(sb, "Content-Description: %s%s\r\n", what, nt->ret == RETURN_FULL ? "" : " Headers");
    strbuf_printf(sb, "Content-Type: %s\r\n", type);
    if (nt->ret_8bit)
        strbuf_puts(sb, "Content-Transfer-Encoding: 8bit\r\n");
    strbuf_puts(sb, "\r\n");
}

static void notice_free(struct notice *nt)
{
    int e = errno;
    strbuf_free(&nt->text);
    strbuf_free(&nt->status);
    free(nt->prefix);
    errno = e;
}

int bounce_write_report(struct queue_file_writer *w, const struct dsn_info *info, const struct dsn_rcpt *rcpts,
                        size_t n, int orig_fd, uint64_t offset, uint64_t length, struct bounce_report *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!w || !info || !rcpts || n == 0 || !info->myhostname || !*info->myhostname || !info->to ||
        !*info->to || offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!rcpts[i].final_rcpt) {
            errno = EINVAL;
            return -1;
        }
    }
    char *message_id = msg_header_message_id(info->notice_id, info->myhostname);
    char *date = msg_header_date(info->now);
    if (!message_id || !date) {
        free(message_id);
        free(date);
        errno = EINVAL;
        return -1;
    }

    /* myhostname made a valid msg-id, so it is a dot-atom or a literal. */
    const char *host = info->myhostname;
    const char *mail_name = info->mail_name && *info->mail_name ? info->mail_name : "Tern";
    struct notice nt = {.info = info, .rcpts = rcpts, .n = n, .global = info->smtputf8 != 0};
    struct strbuf sb = STRBUF_INIT;
    int rc = -1;

    if (plan_return(&nt, orig_fd, offset, length) != 0)
        goto out;
    {
        /* The name in the greeting is ours to show, not trusted text. */
        struct strbuf name = STRBUF_INIT;
        bounce_put_clean(&name, mail_name, 64, 1);
        build_text(&nt, host, strbuf_str(&name));
        strbuf_free(&name);
    }
    build_status(&nt, host);
    if (choose_boundary(&nt, orig_fd, offset, length) != 0)
        goto out;

    int text_8bit = str_has_8bit(nt.text.buf, nt.text.len);
    int status_8bit = str_has_8bit(nt.status.buf, nt.status.len);
    put_top_header(&sb, &nt, host, message_id, date, text_8bit || status_8bit || nt.ret_8bit);

    strbuf_printf(&sb, "\r\n--%s\r\n", nt.boundary);
    strbuf_puts(&sb, "Content-Description: Notification\r\n");
    strbuf_printf(&sb, "Content-Type: text/plain; charset=%s\r\n", text_8bit ? "utf-8" : "us-ascii");
    if (text_8bit)
        strbuf_puts(&sb, "Content-Transfer-Encoding: 8bit\r\n");
    strbuf_puts(&sb, "\r\n");
    strbuf_append(&sb, nt.text.buf, nt.text.len);

    strbuf_printf(&sb, "\r\n--%s\r\n", nt.boundary);
    strbuf_puts(&sb, "Content-Description: Delivery report\r\n");
    strbuf_printf(&sb, "Content-Type: %s\r\n", nt.global ? "message/global-delivery-status" : "message/delivery-status");
    if (status_8bit)
        strbuf_puts(&sb, "Content-Transfer-Encoding: 8bit\r\n");
    strbuf_puts(&sb, "\r\n");
    strbuf_append(&sb, nt.status.buf, nt.status.len);

    if (nt.ret != RETURN_NONE) {
        put_part3_header(&sb, &nt);
        if (nt.ret == RETURN_HEADERS)
            strbuf_append(&sb, nt.prefix, nt.header_len);
    }
    if (queue_file_writer_write(w, sb.buf, sb.len) != 0)
        goto out;
    if (nt.ret == RETURN_FULL && copy_original(w, &nt, orig_fd, offset, length) != 0)
        goto out;
    strbuf_reset(&sb);
    if (nt.ret != RETURN_NONE && nt.ret_needs_crlf)
        strbuf_puts(&sb, "\r\n");
    strbuf_printf(&sb, "\r\n--%s--\r\n", nt.boundary);
    if (queue_file_writer_write(w, sb.buf, sb.len) != 0)
        goto out;

    if (out) {
        out->body_8bit = text_8bit || status_8bit || nt.ret_8bit;
        out->header_8bit = str_has_8bit(info->to, strlen(info->to));
        out->returned_full = nt.ret == RETURN_FULL;
        out->returned_headers = nt.ret == RETURN_HEADERS;
    }
    rc = 0;
out:
    notice_free(&nt);
    {
        int e = errno;
        strbuf_free(&sb);
        free(message_id);
        free(date);
        errno = e;
    }
    return rc;
}

int bounce_write(struct queue_file_writer *w, const struct dsn_info *info, const struct dsn_rcpt *rcpts, size_t n,
                 int orig_fd, uint64_t offset, uint64_t length)
{
    return bounce_write_report(w, info, rcpts, n, orig_fd, offset, length, NULL);
}
