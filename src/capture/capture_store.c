/* capture_store: the index of capture/ (see capture_store.h). */
#include "capture/capture_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/queue_file.h"
#include "spool/spool.h"
#include "util/clock.h"
#include "util/fsops.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* How much of a message is read to find Subject, From and Date for the
 * list: header sections are rarely larger; a larger one shows what fits. */
#define CAPTURE_HEADER_READ_MAX (256 * 1024)

static struct {
    int dirfd;
    struct capture_entry **v;     /* oldest first */
    size_t n, cap;
    size_t max_messages;
    int64_t max_age_s;
    uint64_t last_cursor;
    struct capture_stats stats;
} cs = {.dirfd = -1};

static void entry_free(struct capture_entry *e)
{
    if (!e)
        return;
    free(e->sender);
    for (size_t i = 0; i < e->nrcpt; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
    for (size_t i = 0; i < e->ninbox; i++)
        free(e->inboxes[i]);
    free(e->inboxes);
    free(e->login);
    free(e->client_address);
    free(e->client_name);
    free(e->helo);
    free(e->tls);
    free(e->protocol);
    free(e->auth_results);
    free(e->subject);
    free(e->from);
    free(e->date);
    free(e);
}

/* Valid UTF-8 without control characters other than tab, for JSON and the
 * page (a header may carry any byte). */
static char *clean_text(const char *s)
{
    char *valid = g_utf8_make_valid(s ? s : "", -1);
    for (unsigned char *p = (unsigned char *)valid; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
    char *out = xstrdup(valid);
    g_free(valid);
    return out;
}

static char *attr_copy(const struct queue_file_message *m, const char *name)
{
    const char *v = queue_file_message_attr(m, name);
    return v ? clean_text(v) : NULL;
}

static void add_inbox(struct capture_entry *e, const char *addr)
{
    char *low = xstrdup(addr);
    str_lower(low);
    for (size_t i = 0; i < e->ninbox; i++)
        if (strcmp(e->inboxes[i], low) == 0) {
            free(low);
            return;
        }
    e->inboxes = xrealloc(e->inboxes, (e->ninbox + 1) * sizeof *e->inboxes);
    e->inboxes[e->ninbox++] = low;
}

/* Subject, From and Date from the header section, through GMime. */
static void read_summary(int fd, const struct queue_file_message *m, struct capture_entry *e)
{
    size_t want = m->content_length < CAPTURE_HEADER_READ_MAX ? (size_t)m->content_length : CAPTURE_HEADER_READ_MAX;
    char *buf = xmalloc(want + 1);
    ssize_t got = pread(fd, buf, want, (off_t)m->content_offset);
    if (got < 0)
        got = 0;
    buf[got] = 0;
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(buf, (size_t)got);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    if (msg) {
        const char *subject = g_mime_message_get_subject(msg);
        e->subject = clean_text(subject);
        InternetAddressList *from = g_mime_message_get_from(msg);
        char *from_text = from ? internet_address_list_to_string(from, NULL, FALSE) : NULL;
        e->from = clean_text(from_text);
        g_free(from_text);
        GDateTime *date = g_mime_message_get_date(msg);
        if (date) {
            GDateTime *utc = g_date_time_to_utc(date);
            gchar *iso = utc ? g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ") : NULL;
            e->date = clean_text(iso);
            g_free(iso);
            if (utc)
                g_date_time_unref(utc);
        }
        g_object_unref(msg);
    }
    g_object_unref(parser);
    g_object_unref(stream);
    free(buf);
    if (!e->subject)
        e->subject = xstrdup("");
    if (!e->from)
        e->from = xstrdup("");
    if (!e->date)
        e->date = xstrdup("");
}

/* The value of the Authentication-Results field among the fields smtpd
 * put above the message (QF_ATTR_PREPEND), unfolded; NULL when none. */
static char *auth_results(const char *prepend)
{
    static const char name[] = "Authentication-Results:";
    if (!prepend)
        return NULL;
    const char *p = strcasestr(prepend, name);
    if (!p)
        return NULL;
    p += sizeof name - 1;
    /* the field ends at a line end not followed by a blank (a fold) */
    const char *end = p;
    while (*end && !((end[0] == '\n') && end[1] != ' ' && end[1] != '\t'))
        end++;
    char *value = xstrndup(p, (size_t)(end - p));
    char *clean = clean_text(str_trim(value));
    free(value);
    /* folds became blanks; squeeze runs of them */
    char *w = clean;
    for (const char *r = clean; *r; r++)
        if (!(*r == ' ' && w > clean && w[-1] == ' '))
            *w++ = *r;
    *w = 0;
    return clean;
}

static struct capture_entry *read_entry(const char *id)
{
    int fd = fsops_openat(cs.dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) {
        log_warn("capture: cannot open %s/%s: %s", QDIR_CAPTURE, id, strerror(errno));
        return NULL;
    }
    struct queue_file_message m;
    char err[256];
    if (queue_file_read_fd(fd, &m, err, sizeof err) != 0 || strcmp(m.id, id) != 0) {
        log_warn("capture: %s/%s is not a valid queue file: %s", QDIR_CAPTURE, id, err);
        queue_file_message_free(&m);
        close(fd);
        return NULL;
    }
    struct capture_entry *e = xcalloc(1, sizeof *e);
    str_copy(e->id, id, sizeof e->id);
    e->arrival_us = m.arrival_us;
    e->sender = clean_text(m.sender);
    e->size = m.content_length;
    e->rcpts = xcalloc(m.nrcpt ? m.nrcpt : 1, sizeof *e->rcpts);
    /* the envelope's own recipients; capture = copy shares the file with
     * the queue, which appends the ones aliases add (parent >= 0) */
    for (size_t i = 0; i < m.nrcpt; i++) {
        if (m.rcpts[i].parent >= 0)
            continue;
        e->rcpts[e->nrcpt++] = clean_text(m.rcpts[i].addr);
        add_inbox(e, e->rcpts[e->nrcpt - 1]);
    }
    e->login = attr_copy(&m, "sasl_username");
    if (e->login && *e->login)
        add_inbox(e, e->login);
    e->client_address = attr_copy(&m, "client_address");
    e->client_name = attr_copy(&m, "client_name");
    e->helo = attr_copy(&m, "helo_name");
    e->tls = attr_copy(&m, "tls");
    e->protocol = attr_copy(&m, "protocol");
    e->dkim_sign = queue_file_message_attr(&m, QF_ATTR_DKIM_SIGN) != NULL;
    e->auth_results = auth_results(queue_file_message_attr(&m, QF_ATTR_PREPEND));
    read_summary(fd, &m, e);
    queue_file_message_free(&m);
    close(fd);
    return e;
}

/* Inserts by arrival (a scan finds files in any order); cursors are given
 * afterwards for a scan, at once for a new arrival. */
static void insert_sorted(struct capture_entry *e)
{
    if (cs.n == cs.cap) {
        cs.cap = cs.cap ? cs.cap * 2 : 256;
        cs.v = xrealloc(cs.v, cs.cap * sizeof *cs.v);
    }
    size_t i = cs.n;
    while (i > 0 && (cs.v[i - 1]->arrival_us > e->arrival_us ||
                     (cs.v[i - 1]->arrival_us == e->arrival_us && strcmp(cs.v[i - 1]->id, e->id) > 0)))
        i--;
    memmove(cs.v + i + 1, cs.v + i, (cs.n - i) * sizeof *cs.v);
    cs.v[i] = e;
    cs.n++;
}

static void remove_at(size_t i, int unlink_file)
{
    struct capture_entry *e = cs.v[i];
    if (unlink_file && fsops_unlinkat(cs.dirfd, e->id, 0) != 0 && errno != ENOENT)
        log_warn("capture: cannot remove %s/%s: %s", QDIR_CAPTURE, e->id, strerror(errno));
    memmove(cs.v + i, cs.v + i + 1, (cs.n - i - 1) * sizeof *cs.v);
    cs.n--;
    entry_free(e);
}

void capture_store_prune(void)
{
    size_t over = cs.n > cs.max_messages ? cs.n - cs.max_messages : 0;
    int64_t now = clock_now_us();
    size_t old = 0;
    if (cs.max_age_s > 0)
        while (old < cs.n && cs.v[old]->arrival_us < now - cs.max_age_s * 1000000)
            old++;
    size_t drop = over > old ? over : old;
    if (drop == 0)
        return;
    log_info("capture: pruned %zu oldest messages (capture_max_messages %zu, capture_max_age %llds)", drop,
             cs.max_messages, (long long)cs.max_age_s);
    /* remove the files first, then the entries in one move */
    for (size_t i = 0; i < drop; i++) {
        if (fsops_unlinkat(cs.dirfd, cs.v[i]->id, 0) != 0 && errno != ENOENT)
            log_warn("capture: cannot remove %s/%s: %s", QDIR_CAPTURE, cs.v[i]->id, strerror(errno));
        entry_free(cs.v[i]);
    }
    memmove(cs.v, cs.v + drop, (cs.n - drop) * sizeof *cs.v);
    cs.n -= drop;
    cs.stats.pruned += drop;
}

static void scan(void)
{
    int fd = dup(cs.dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        log_error("capture: cannot read %s/: %s", QDIR_CAPTURE, strerror(errno));
        return;
    }
    rewinddir(d);
    struct dirent *de;
    size_t added = 0;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name) || capture_store_find(de->d_name))
            continue;
        struct capture_entry *e = read_entry(de->d_name);
        if (!e) {
            cs.stats.unreadable++;
            continue;
        }
        insert_sorted(e);
        added++;
    }
    closedir(d);
    /* cursors in arrival order, above every cursor given before */
    for (size_t i = 0; i < cs.n; i++) {
        struct capture_entry *e = cs.v[i];
        if (e->cursor)
            continue;
        uint64_t c = e->arrival_us > 0 ? (uint64_t)e->arrival_us : 1;
        e->cursor = c > cs.last_cursor ? c : cs.last_cursor + 1;
        cs.last_cursor = e->cursor;
    }
    cs.stats.captured += added;
    capture_store_prune();
}

int capture_store_open(const char *queue_dir, size_t max_messages, int64_t max_age_s, char **err)
{
    char *path = xasprintf("%s/%s", queue_dir, QDIR_CAPTURE);
    cs.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (cs.dirfd < 0) {
        *err = xasprintf("cannot open %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    cs.max_messages = max_messages;
    cs.max_age_s = max_age_s;
    scan();
    if (cs.n)
        log_info("capture: %zu messages in the store", cs.n);
    return 0;
}

void capture_store_close(void)
{
    for (size_t i = 0; i < cs.n; i++)
        entry_free(cs.v[i]);
    free(cs.v);
    if (cs.dirfd >= 0)
        close(cs.dirfd);
    memset(&cs, 0, sizeof cs);
    cs.dirfd = -1;
}

int capture_store_add(const char *id)
{
    if (!queue_id_valid(id))
        return -1;
    if (capture_store_find(id))
        return 0;
    struct capture_entry *e = read_entry(id);
    if (!e) {
        cs.stats.unreadable++;
        return -1;
    }
    uint64_t c = e->arrival_us > 0 ? (uint64_t)e->arrival_us : 1;
    /* a new arrival is the newest: its cursor is above every other */
    e->cursor = c > cs.last_cursor ? c : cs.last_cursor + 1;
    cs.last_cursor = e->cursor;
    if (cs.n == cs.cap) {
        cs.cap = cs.cap ? cs.cap * 2 : 256;
        cs.v = xrealloc(cs.v, cs.cap * sizeof *cs.v);
    }
    cs.v[cs.n++] = e;
    cs.stats.captured++;
    capture_store_prune();
    return 0;
}

void capture_store_rescan(void)
{
    scan();
}

size_t capture_store_count(void)
{
    return cs.n;
}

const struct capture_entry *capture_store_at(size_t i)
{
    return i < cs.n ? cs.v[i] : NULL;
}

const struct capture_entry *capture_store_find(const char *id)
{
    for (size_t i = cs.n; i-- > 0;)
        if (strcmp(cs.v[i]->id, id) == 0)
            return cs.v[i];
    return NULL;
}

int capture_entry_in_inbox(const struct capture_entry *e, const char *inbox)
{
    for (size_t i = 0; i < e->ninbox; i++)
        if (strcasecmp(e->inboxes[i], inbox) == 0)
            return 1;
    return 0;
}

int capture_store_content(const struct capture_entry *e, char **out, size_t *len)
{
    int fd = fsops_openat(cs.dirfd, e->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0)
        return -1;
    struct queue_file_message m;
    char err[256];
    if (queue_file_read_fd(fd, &m, err, sizeof err) != 0) {
        queue_file_message_free(&m);
        close(fd);
        errno = EBADMSG;
        return -1;
    }
    char *buf = xmalloc(m.content_length + 1);
    size_t done = 0;
    while (done < m.content_length) {
        ssize_t r = pread(fd, buf + done, m.content_length - done, (off_t)(m.content_offset + done));
        if (r <= 0) {
            int e2 = r < 0 ? errno : EIO;
            free(buf);
            queue_file_message_free(&m);
            close(fd);
            errno = e2;
            return -1;
        }
        done += (size_t)r;
    }
    buf[done] = 0;
    queue_file_message_free(&m);
    close(fd);
    *out = buf;
    *len = done;
    return 0;
}

int capture_store_delete(const char *id)
{
    for (size_t i = 0; i < cs.n; i++)
        if (strcmp(cs.v[i]->id, id) == 0) {
            remove_at(i, 1);
            cs.stats.deleted++;
            return 0;
        }
    return -1;
}

const struct capture_stats *capture_store_stats(void)
{
    return &cs.stats;
}

int capture_filter_match(const struct capture_filter *f, const struct capture_entry *e)
{
    if (e->cursor <= f->after)
        return 0;
    if (f->inbox && *f->inbox && !capture_entry_in_inbox(e, f->inbox))
        return 0;
    if (f->from && *f->from && !strcasestr(e->from, f->from) && !strcasestr(e->sender, f->from))
        return 0;
    if (f->subject && *f->subject && !strcasestr(e->subject, f->subject))
        return 0;
    return 1;
}

void capture_filter_free(struct capture_filter *f)
{
    free(f->inbox);
    free(f->from);
    free(f->subject);
    f->inbox = f->from = f->subject = NULL;
}
