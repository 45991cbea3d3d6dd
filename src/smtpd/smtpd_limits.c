/* smtpd_limits: what bounds a session besides its commands' own limits:
 * the per-client rates it counts (smtpd_anvil.c keeps the tables), the
 * memory budget of all sessions (smtpd_memory_limit) and of queue files kept
 * in memory, and the free space the queue file system must keep
 * (queue_minfree). See smtpd_session_internal.h. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "smtpd/smtpd_anvil.h"
#include "smtpd/smtpd_session_internal.h"
#include "util/log.h"

/* ---------- per-client rates ---------- */

static long rate_limit(const struct smtpd_settings *set, enum anvil_rate r)
{
    switch (r) {
    case ANVIL_RATE_CONN: return set->conn_rate_limit;
    case ANVIL_RATE_MSG: return set->msg_rate_limit;
    case ANVIL_RATE_RCPT: return set->rcpt_rate_limit;
    case ANVIL_RATE_AUTH: return set->auth_rate_limit;
    case ANVIL_RATE_TLS: return set->tls_rate_limit;
    case ANVIL_RATES: break;
    }
    return 0;
}

int smtpd_session_over_client_rate(struct smtp_session *s, enum anvil_rate r)
{
    static const char *const what[ANVIL_RATES] = {
        [ANVIL_RATE_CONN] = "Connection rate",
        [ANVIL_RATE_MSG] = "Message delivery request rate",
        [ANVIL_RATE_RCPT] = "Recipient address rate",
        [ANVIL_RATE_AUTH] = "AUTH command rate",
        [ANVIL_RATE_TLS] = "New TLS session rate",
    };
    long limit = rate_limit(s->set, r);
    if (s->limits_exempt || limit <= 0 ||
        !smtpd_anvil_rate(s->client_addr, r, limit, s->set->rate_unit, time(NULL)))
        return 0;
    log_warn("%s limit exceeded from %s[%s] for service %s", what[r], s->client_name, s->client_addr,
             s->set->service);
    return 1;
}

/* ---------- resources: smtpd_memory_limit, queue_minfree ---------- */

static uint64_t memory_charged;   /* by every session of this process */
static time_t memory_warned;

int smtpd_session_charge_memory(struct smtp_session *s, size_t bytes)
{
    uint64_t limit = s->set->memory_limit;
    if (limit && memory_charged + bytes > limit) {
        time_t now = time(NULL);
        if (now != memory_warned) {   /* once a second at most */
            memory_warned = now;
            log_warn("smtpd_memory_limit (%llu bytes) reached; refusing new sessions and recipients",
                     (unsigned long long)limit);
        }
        return -1;
    }
    memory_charged += bytes;
    s->memory_charged += bytes;
    return 0;
}

void smtpd_session_uncharge_memory(struct smtp_session *s, size_t bytes)
{
    memory_charged -= bytes;
    s->memory_charged -= bytes;
}

static uint64_t content_charged;   /* queue files in memory, of every session and pending commit */

static int content_charge(void *arg, size_t bytes)
{
    struct smtp_session *s = arg;
    uint64_t limit = s->set->memory_limit;
    if (limit && content_charged + bytes > limit / 4)
        return -1;
    content_charged += bytes;
    s->content_charged += bytes;
    return 0;
}

static void content_release(void *arg, size_t bytes)
{
    struct smtp_session *s = arg;
    content_charged -= bytes;
    s->content_charged -= bytes;
}

struct queue_file_memory smtpd_session_content_memory(struct smtp_session *s)
{
    return (struct queue_file_memory){SMTPD_CONTENT_MEMORY, content_charge, content_release, s};
}

void smtpd_content_memory_release(size_t bytes)
{
    content_charged -= bytes;
}

int smtpd_session_charge_recipient(struct smtp_session *s, const char *addr, const char *orcpt)
{
    size_t bytes = SMTPD_RCPT_MEMORY + strlen(addr) + (orcpt ? strlen(orcpt) : 0);
    if (smtpd_session_charge_memory(s, bytes) != 0)
        return -1;
    s->rcpt_memory_charged += bytes;
    return 0;
}

int smtpd_session_storage_short(const struct smtp_session *s, long long size)
{
    static time_t checked;
    static uint64_t free_bytes;
    static int known;
    if (!s->set->queue_dir)
        return -1;
    time_t now = time(NULL);
    if (now != checked) {
        struct statvfs sv;
        known = statvfs(s->set->queue_dir, &sv) == 0;
        free_bytes = known ? (uint64_t)sv.f_bavail * sv.f_frsize : 0;
        checked = now;
    }
    if (!known)
        return -1;
    uint64_t minfree = s->set->queue_minfree;
    if (free_bytes <= minfree)
        return 1;
    /* Postfix's rules: room for this message besides queue_minfree, and
     * for one and a half of the largest message */
    if (size > 0 && (uint64_t)size >= free_bytes - minfree)
        return 1;
    return s->set->message_size_limit && s->set->message_size_limit >= free_bytes / 3 * 2;
}
