/* auth_passwd: tern's own SASL password file (see auth_passwd.h).
 *
 * Threading: the loop thread owns the table, the file identity and the
 * libevent event; workers see only requests, which carry their own copies
 * of the password and the hash to compare against. One mutex guards the
 * two request lists (queued, done) and each request's state, so a cancel
 * from the loop thread and a worker finishing can never both free one. */
#include "auth/auth_passwd.h"

#include <crypt.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/hashmap.h"
#include "util/list.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Checked for unknown users so they cost what known ones do. It is the
 * yescrypt hash, at libxcrypt's default cost, of a string nobody types;
 * the result is thrown away anyway. */
static const char dummy_hash[] = "$y$j9T$uafPIUsEcQXcFZ6cieugf0$MVJS0qfqmtfvSPj5mTdCfPumGWfjzlMleo5gaKSXJy/";

#define MAX_HASH 512

struct pw_entry {
    char *name;
    size_t name_len;
    char *hash;
    char **addrs; /* NULL-terminated, never NULL itself */
};

struct pw_table {
    struct hashmap users; /* of struct pw_entry, by name */
};

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_DONE };

struct auth_passwd_req {
    struct auth_passwd *db;
    struct list_node link; /* in db->queue or db->done */
    enum req_state state;
    int cancelled;  /* set while RUNNING: the worker frees it */
    int user_known;
    char *password; /* wiped and freed as soon as hashed */
    char *hash;     /* NULL = dummy_hash */
    enum auth_result result;
    const char *why; /* static text */
    uint64_t seq;    /* order on the done list */
    auth_cb cb;
    void *arg;
};

struct auth_passwd {
    struct event_base *base;
    char *path;

    /* loop thread only */
    struct pw_table *table; /* NULL while the file is unavailable */
    int have_identity;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    struct timespec last_stat;
    int stat_due;
    int outage_logged;
    int dispatching;
    int close_pending;

    /* shared with workers, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct list queue; /* of struct auth_passwd_req */
    struct list done;
    uint64_t done_seq;
    size_t inflight; /* queued + being hashed */
    size_t max_pending;
    int stopping;
    void (*hook)(void *arg);
    void *hook_arg;

    pthread_t threads[AUTH_PASSWD_THREADS];
    size_t nthreads;
    int efd;
    struct event *ev;
};

/* ---------- line syntax ---------- */

/* Name and address bytes: visible ASCII or 8-bit (UTF-8), minus the
 * separators of this file. */
static int token_byte_ok(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != ':' && c != ',';
}

static int token_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!token_byte_ok((unsigned char)s[i]))
            return 0;
    return 1;
}

/* The crypt(3) alphabet: base64 variants plus '$' separators and the
 * "rounds=N" parameter of $5$/$6$. */
static int hash_ok(const char *s, size_t len)
{
    if (len < 2 || len > MAX_HASH || s[0] != '$')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '/' || c == '$' || c == '='))
            return 0;
    }
    return 1;
}

/* Calls fn for each comma-separated address of field (blanks around items
 * allowed); returns 0 at the first bad item. */
static int each_address(const char *field, size_t len, void (*fn)(void *ctx, const char *a, size_t n), void *ctx)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && field[i] != ',')
            i++;
        size_t a = start, b = i;
        while (a < b && str_is_blank(field[a]))
            a++;
        while (b > a && str_is_blank(field[b - 1]))
            b--;
        if (!token_ok(field + a, b - a, AUTH_PASSWD_MAX_ADDRESS))
            return 0;
        if (fn)
            fn(ctx, field + a, b - a);
        if (i < len) {
            i++; /* the comma */
            if (i == len)
                return 0; /* trailing comma: an empty item */
        }
    }
    return 1;
}

enum auth_passwd_line_kind auth_passwd_split_line(const char *line, size_t len, struct auth_passwd_line *out,
                                                  const char **why)
{
    memset(out, 0, sizeof *out);
    *why = NULL;
    while (len > 0 && str_is_blank(line[0])) {
        line++;
        len--;
    }
    while (len > 0 && str_is_blank(line[len - 1]))
        len--;
    if (len == 0 || line[0] == '#')
        return AUTH_PASSWD_LINE_SKIP;
    if (memchr(line, '\0', len)) {
        *why = "NUL byte in line";
        return AUTH_PASSWD_LINE_BAD;
    }
    const char *c1 = memchr(line, ':', len);
    if (!c1) {
        *why = "missing ':' after the user name";
        return AUTH_PASSWD_LINE_BAD;
    }
    out->name = line;
    out->name_len = (size_t)(c1 - line);
    const char *rest = c1 + 1;
    size_t rest_len = len - out->name_len - 1;
    const char *c2 = memchr(rest, ':', rest_len);
    out->hash = rest;
    out->hash_len = c2 ? (size_t)(c2 - rest) : rest_len;
    if (c2) {
        out->addrs = c2 + 1;
        out->addrs_len = rest_len - out->hash_len - 1;
        if (memchr(out->addrs, ':', out->addrs_len)) {
            *why = "more than three ':'-separated fields";
            return AUTH_PASSWD_LINE_BAD;
        }
    }
    if (!token_ok(out->name, out->name_len, AUTH_PASSWD_MAX_NAME)) {
        *why = "invalid user name";
        return AUTH_PASSWD_LINE_BAD;
    }
    if (!hash_ok(out->hash, out->hash_len)) {
        *why = "invalid password hash (want a crypt(3) string such as $y$...)";
        return AUTH_PASSWD_LINE_BAD;
    }
    if (out->addrs && !each_address(out->addrs, out->addrs_len, NULL, NULL)) {
        *why = "invalid sender address list";
        return AUTH_PASSWD_LINE_BAD;
    }
    return AUTH_PASSWD_LINE_ENTRY;
}

int auth_passwd_valid_name(const char *s)
{
    return token_ok(s, strlen(s), AUTH_PASSWD_MAX_NAME);
}

int auth_passwd_valid_address(const char *s)
{
    return token_ok(s, strlen(s), AUTH_PASSWD_MAX_ADDRESS);
}

/* ---------- table ---------- */

static const void *entry_name(const void *item, size_t *len)
{
    const struct pw_entry *e = item;
    *len = e->name_len;
    return e->name;
}

static struct pw_entry *table_find(const struct pw_table *t, const char *name, size_t len)
{
    return t ? hashmap_get(&t->users, name, len) : NULL;
}

static void table_free(struct pw_table *t)
{
    if (!t)
        return;
    size_t i = 0;
    struct pw_entry *e;
    while ((e = hashmap_next(&t->users, &i))) {
        free(e->name);
        free(e->hash);
        for (char **a = e->addrs; *a; a++)
            free(*a);
        free(e->addrs);
        free(e);
    }
    hashmap_free(&t->users);
    free(t);
}

struct addr_collect {
    char **v;
    size_t n, cap;
};

static void collect_address(void *ctx, const char *a, size_t n)
{
    struct addr_collect *c = ctx;
    c->v = xgrow(c->v, &c->cap, c->n + 2, sizeof *c->v);
    c->v[c->n++] = xstrndup(a, n);
    c->v[c->n] = NULL;
}

static void table_add_line(struct pw_table *t, const char *path, int lineno, const char *line, size_t len)
{
    struct auth_passwd_line f;
    const char *why;
    enum auth_passwd_line_kind k = auth_passwd_split_line(line, len, &f, &why);
    if (k == AUTH_PASSWD_LINE_SKIP)
        return;
    if (k == AUTH_PASSWD_LINE_BAD) {
        log_warn("%s:%d: %s; line skipped", path, lineno, why);
        return;
    }
    if (table_find(t, f.name, f.name_len)) {
        log_warn("%s:%d: user %.*s appears again; line skipped (the first one counts)", path, lineno,
                 (int)f.name_len, f.name);
        return;
    }
    char *hash = xstrndup(f.hash, f.hash_len);
    int cs = crypt_checksalt(hash);
    if (cs == CRYPT_SALT_INVALID || cs == CRYPT_SALT_METHOD_DISABLED) {
        log_warn("%s:%d: password hash of a method this system cannot compute; line skipped", path, lineno);
        free(hash);
        return;
    }
    if (cs == CRYPT_SALT_METHOD_LEGACY)
        log_warn("%s:%d: user %.*s has a weak legacy password hash; set a new password with tern passwd add",
                 path, lineno, (int)f.name_len, f.name);
    struct addr_collect c = {NULL, 0, 0};
    if (f.addrs)
        each_address(f.addrs, f.addrs_len, collect_address, &c);
    if (!c.v)
        c.v = xcalloc(1, sizeof *c.v);
    struct pw_entry *e = xcalloc(1, sizeof *e);
    e->name = xstrndup(f.name, f.name_len);
    e->name_len = f.name_len;
    e->hash = hash;
    e->addrs = c.v;
    hashmap_add(&t->users, e);
}

static struct pw_table *table_parse(const char *path, const char *data, size_t len)
{
    struct pw_table *t = xcalloc(1, sizeof *t);
    hashmap_init(&t->users, entry_name, 0);
    size_t pos = 0;
    int lineno = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t n = end - pos;
        if (n > AUTH_PASSWD_MAX_LINE)
            log_warn("%s:%d: line longer than %d bytes; line skipped", path, lineno, AUTH_PASSWD_MAX_LINE);
        else
            table_add_line(t, path, lineno, data + pos, n);
        pos = end + 1;
    }
    return t;
}

/* ---------- loading ---------- */

static int timespec_eq(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int identity_matches(const struct auth_passwd *db, const struct stat *st)
{
    return db->have_identity && db->dev == st->st_dev && db->ino == st->st_ino && db->size == st->st_size &&
           timespec_eq(&db->mtime, &st->st_mtim) && timespec_eq(&db->ctime, &st->st_ctim);
}

static void set_unavailable(struct auth_passwd *db, const char *reason)
{
    table_free(db->table);
    db->table = NULL;
    db->have_identity = 0;
    if (!db->outage_logged) {
        log_error("password file %s unavailable: %s; SASL logins get temporary failures until it is fixed",
                  db->path, reason);
        db->outage_logged = 1;
    }
}

/* Reads the whole file, bounded; returns the data (heap) or NULL with
 * *reason (a static or strerror text: loop thread only). */
static char *read_bounded(const char *path, struct stat *st, size_t *len, const char **reason)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *reason = strerror(errno);
        return NULL;
    }
    if (fstat(fd, st) != 0) {
        *reason = strerror(errno);
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st->st_mode)) {
        *reason = "not a regular file";
        close(fd);
        return NULL;
    }
    if (st->st_size > AUTH_PASSWD_MAX_FILE) {
        *reason = "file larger than the limit (16 MiB)";
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st->st_size + 1, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap > AUTH_PASSWD_MAX_FILE) {
                *reason = "file larger than the limit (16 MiB)";
                free(buf);
                close(fd);
                return NULL;
            }
            buf = xgrow(buf, &cap, cap + 4096, 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *reason = strerror(errno);
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

static void load(struct auth_passwd *db)
{
    struct stat st;
    size_t len = 0;
    const char *reason = NULL;
    char *data = read_bounded(db->path, &st, &len, &reason);
    if (!data) {
        set_unavailable(db, reason);
        return;
    }
    struct pw_table *t = table_parse(db->path, data, len);
    explicit_bzero(data, len);
    free(data);
    table_free(db->table);
    db->table = t;
    db->have_identity = 1;
    db->dev = st.st_dev;
    db->ino = st.st_ino;
    db->size = st.st_size;
    db->mtime = st.st_mtim;
    db->ctime = st.st_ctim;
    if (db->outage_logged)
        log_info("password file %s readable again", db->path);
    db->outage_logged = 0;
    size_t users = hashmap_count(&t->users);
    log_info("password file %s: %zu user%s", db->path, users, users == 1 ? "" : "s");
}

static void maybe_reload(struct auth_passwd *db)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!db->stat_due) {
        long long ms = (long long)(now.tv_sec - db->last_stat.tv_sec) * 1000 +
                       (now.tv_nsec - db->last_stat.tv_nsec) / 1000000;
        if (ms < 1000)
            return;
    }
    db->stat_due = 0;
    db->last_stat = now;
    struct stat st;
    if (stat(db->path, &st) != 0) {
        set_unavailable(db, strerror(errno));
        return;
    }
    if (!identity_matches(db, &st))
        load(db);
}

/* ---------- request lists (under mu) ---------- */

static struct auth_passwd_req *first_req(struct list *l)
{
    return LIST_FIRST(l, struct auth_passwd_req, link);
}

static void req_free(struct auth_passwd_req *r)
{
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->hash);
    free(r);
}

static void wake_loop(struct auth_passwd *db)
{
    uint64_t one = 1;
    /* EAGAIN only when the counter is near overflow: the loop is awake anyway. */
    (void)!write(db->efd, &one, sizeof one);
}

/* Under mu. */
static void push_done(struct auth_passwd *db, struct auth_passwd_req *r)
{
    r->state = REQ_DONE;
    r->seq = ++db->done_seq;
    list_append(&db->done, &r->link);
}

static void finish_now(struct auth_passwd *db, struct auth_passwd_req *r, enum auth_result res, const char *why)
{
    r->result = res;
    r->why = why;
    pthread_mutex_lock(&db->mu);
    push_done(db, r);
    pthread_mutex_unlock(&db->mu);
    wake_loop(db);
}

/* ---------- workers ---------- */

static int hashes_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static void *worker_main(void *arg)
{
    struct auth_passwd *db = arg;
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    for (;;) {
        pthread_mutex_lock(&db->mu);
        while (!db->stopping && list_empty(&db->queue))
            pthread_cond_wait(&db->cv, &db->mu);
        if (db->stopping) {
            pthread_mutex_unlock(&db->mu);
            break;
        }
        struct auth_passwd_req *r = first_req(&db->queue);
        list_remove(&db->queue, &r->link);
        r->state = REQ_RUNNING;
        void (*hook)(void *) = db->hook;
        void *hook_arg = db->hook_arg;
        pthread_mutex_unlock(&db->mu);

        if (hook)
            hook(hook_arg);
        const char *want = r->hash ? r->hash : dummy_hash;
        const char *got = crypt_rn(r->password, want, cd, (int)sizeof *cd);
        if (!r->user_known) {
            r->result = AUTH_FAIL;
            r->why = "no such user";
        } else if (!got || got[0] == '*') {
            r->result = AUTH_TEMPFAIL;
            r->why = "password hash method not supported by this system";
        } else if (hashes_equal(got, want)) {
            r->result = AUTH_OK;
            r->why = "password ok";
        } else {
            r->result = AUTH_FAIL;
            r->why = "password mismatch";
        }
        explicit_bzero(cd, sizeof *cd);
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
        r->password = NULL;

        int notify = 0;
        pthread_mutex_lock(&db->mu);
        db->inflight--;
        if (r->cancelled || db->stopping) {
            req_free(r);
        } else {
            push_done(db, r);
            notify = 1;
        }
        pthread_mutex_unlock(&db->mu);
        if (notify)
            wake_loop(db);
    }
    free(cd);
    return NULL;
}

/* ---------- loop side ---------- */

static void final_free(struct auth_passwd *db)
{
    if (db->ev)
        event_free(db->ev);
    if (db->efd >= 0)
        close(db->efd);
    table_free(db->table);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
    free(db->path);
    free(db);
}

static void on_results(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct auth_passwd *db = arg;
    uint64_t count;
    while (read(fd, &count, sizeof count) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&db->mu);
    /* Only results present now: a callback that starts a check which fails
     * at once must not make this loop run forever. Later ones wrote the
     * eventfd after the drain above, so the event fires again for them. */
    uint64_t last = db->done_seq;
    pthread_mutex_unlock(&db->mu);
    db->dispatching++;
    while (!db->close_pending) {
        pthread_mutex_lock(&db->mu);
        struct auth_passwd_req *r = first_req(&db->done);
        if (!r || r->seq > last) {
            pthread_mutex_unlock(&db->mu);
            break;
        }
        list_remove(&db->done, &r->link);
        pthread_mutex_unlock(&db->mu);
        auth_cb cb = r->cb;
        void *cb_arg = r->arg;
        enum auth_result res = r->result;
        const char *why = r->why;
        req_free(r);
        cb(cb_arg, res, why);
    }
    db->dispatching--;
    if (db->close_pending && db->dispatching == 0)
        final_free(db);
}

struct auth_passwd *auth_passwd_open(struct event_base *base, const char *path, char **err)
{
    *err = NULL;
    struct auth_passwd *db = xcalloc(1, sizeof *db);
    db->base = base;
    db->path = xstrdup(path);
    db->max_pending = AUTH_PASSWD_MAX_PENDING;
    db->efd = -1;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);

    db->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (db->efd < 0) {
        *err = xasprintf("eventfd: %s", strerror(errno));
        final_free(db);
        return NULL;
    }
    db->ev = event_new(base, db->efd, EV_READ | EV_PERSIST, on_results, db);
    if (!db->ev || event_add(db->ev, NULL) != 0) {
        *err = xstrdup("cannot add the result event to the event loop");
        final_free(db);
        return NULL;
    }

    /* Workers must never take the process's signals: smtpd handles them
     * on the loop thread. New threads inherit this mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < AUTH_PASSWD_THREADS; i++) {
        int e = pthread_create(&db->threads[i], NULL, worker_main, db);
        if (e != 0) {
            *err = xasprintf("cannot start password check thread: %s", strerror(e));
            break;
        }
        db->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (*err) {
        char *e = *err;
        *err = NULL;
        auth_passwd_close(db);
        *err = e;
        return NULL;
    }

    clock_gettime(CLOCK_MONOTONIC, &db->last_stat);
    load(db);
    return db;
}

struct auth_passwd_req *auth_passwd_check(struct auth_passwd *db, const char *user, const char *password,
                                          auth_cb cb, void *arg)
{
    struct auth_passwd_req *r = xcalloc(1, sizeof *r);
    r->db = db;
    r->cb = cb;
    r->arg = arg;
    maybe_reload(db);
    if (!db->table) {
        finish_now(db, r, AUTH_TEMPFAIL, "password file unavailable");
        return r;
    }
    size_t pwlen = strnlen(password, AUTH_PASSWD_MAX_PASSWORD + 1);
    if (pwlen > AUTH_PASSWD_MAX_PASSWORD) {
        finish_now(db, r, AUTH_FAIL, "password too long");
        return r;
    }
    pthread_mutex_lock(&db->mu);
    int full = db->inflight >= db->max_pending;
    pthread_mutex_unlock(&db->mu);
    if (full) {
        finish_now(db, r, AUTH_TEMPFAIL, "too many password checks pending");
        return r;
    }
    size_t ulen = strnlen(user, AUTH_PASSWD_MAX_NAME + 1);
    const struct pw_entry *e = ulen <= AUTH_PASSWD_MAX_NAME ? table_find(db->table, user, ulen) : NULL;
    r->user_known = e != NULL;
    r->hash = e ? xstrdup(e->hash) : NULL;
    r->password = xstrndup(password, pwlen);

    pthread_mutex_lock(&db->mu);
    r->state = REQ_QUEUED;
    list_append(&db->queue, &r->link);
    db->inflight++;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
    return r;
}

void auth_passwd_cancel(struct auth_passwd_req *r)
{
    if (!r)
        return;
    struct auth_passwd *db = r->db;
    pthread_mutex_lock(&db->mu);
    switch (r->state) {
    case REQ_QUEUED:
        list_remove(&db->queue, &r->link);
        db->inflight--;
        req_free(r);
        break;
    case REQ_RUNNING:
        r->cancelled = 1; /* the worker frees it when done */
        break;
    case REQ_DONE:
        list_remove(&db->done, &r->link);
        req_free(r);
        break;
    }
    pthread_mutex_unlock(&db->mu);
}

void auth_passwd_close(struct auth_passwd *db)
{
    if (!db || db->close_pending)
        return;
    pthread_mutex_lock(&db->mu);
    db->stopping = 1;
    struct auth_passwd_req *r;
    while ((r = first_req(&db->queue))) {
        list_remove(&db->queue, &r->link);
        db->inflight--;
        req_free(r);
    }
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
    /* A worker busy hashing finishes that one hash (tens of ms), sees
     * stopping and drops the result. */
    for (size_t i = 0; i < db->nthreads; i++)
        pthread_join(db->threads[i], NULL);
    db->nthreads = 0;
    while ((r = first_req(&db->done))) {
        list_remove(&db->done, &r->link);
        req_free(r);
    }
    if (db->dispatching) {
        db->close_pending = 1; /* on_results frees db when it unwinds */
        return;
    }
    final_free(db);
}

const char *const *auth_passwd_addresses(struct auth_passwd *db, const char *user)
{
    size_t ulen = strnlen(user, AUTH_PASSWD_MAX_NAME + 1);
    if (ulen > AUTH_PASSWD_MAX_NAME)
        return NULL;
    const struct pw_entry *e = table_find(db->table, user, ulen);
    return e ? (const char *const *)e->addrs : NULL;
}

void auth_passwd_recheck(struct auth_passwd *db)
{
    db->stat_due = 1;
}

size_t auth_passwd_count(const struct auth_passwd *db)
{
    return db->table ? hashmap_count(&db->table->users) : 0;
}

#ifdef TERN_TEST_BUILD
void auth_passwd_test_set_worker_hook(struct auth_passwd *db, void (*hook)(void *arg), void *arg)
{
    pthread_mutex_lock(&db->mu);
    db->hook = hook;
    db->hook_arg = arg;
    pthread_mutex_unlock(&db->mu);
}

void auth_passwd_test_set_max_pending(struct auth_passwd *db, size_t max)
{
    pthread_mutex_lock(&db->mu);
    db->max_pending = max;
    pthread_mutex_unlock(&db->mu);
}
#endif
