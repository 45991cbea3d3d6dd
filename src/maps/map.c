/* map: lookup tables named with Postfix's "type:name" syntax (see map.h). */
#include "maps/map.h"
#include "maps/map_async.h"
#include "maps/map_cidr.h"
#include "maps/map_regexp.h"
#include "maps/map_source.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdalign.h>
#include <stddef.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* ---------- a table of strings: util/hashmap over copied entries ---------- */

/* Entries (key and value text) are carved out of large blocks so a 100k-line
 * table costs a few large allocations instead of 200k small ones; blocks
 * never move, so the map can point into them. */
#define BLOCK_SIZE 65536

struct block {
    struct block *next;
    size_t used, size;
    max_align_t data[]; /* aligned for struct entry */
};

struct entry {
    const char *value; /* a replaced value stays in its block unused: duplicates are rare */
    size_t key_len;
    char key[];        /* folded to lowercase, NUL-terminated */
};

struct table {
    struct hashmap map; /* of struct entry; key_of is NULL until the first put */
    struct block *blocks;
};

static const void *entry_key(const void *item, size_t *len)
{
    const struct entry *e = item;
    *len = e->key_len;
    return e->key;
}

static void *table_alloc(struct table *t, size_t n)
{
    n = (n + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t);
    struct block *b = t->blocks;
    if (!b || b->size - b->used < n) {
        size_t size = n > BLOCK_SIZE / 4 ? n : BLOCK_SIZE;
        b = xmalloc(sizeof *b + size);
        b->used = 0;
        b->size = size;
        /* A large entry gets a block of its own behind the current one, whose
         * free space stays in use. */
        if (size == n && t->blocks) {
            b->next = t->blocks->next;
            t->blocks->next = b;
        } else {
            b->next = t->blocks;
            t->blocks = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static const char *table_strndup(struct table *t, const char *s, size_t len)
{
    char *p = table_alloc(t, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void table_free(struct table *t)
{
    hashmap_free(&t->map);
    while (t->blocks) {
        struct block *b = t->blocks;
        t->blocks = b->next;
        free(b);
    }
    memset(t, 0, sizeof *t);
}

/* key must already be folded to lowercase. Returns 1 when it replaced an
 * existing entry (the caller decides whether that deserves a warning). */
static int table_put(struct table *t, const char *key, size_t klen, const char *val, size_t vlen)
{
    if (!t->map.key_of)
        hashmap_init(&t->map, entry_key, 0);
    klen = strnlen(key, klen); /* the key is text: it ends at a NUL */
    struct entry *e = hashmap_get(&t->map, key, klen);
    int replaced = e != NULL;
    if (!replaced) {
        e = table_alloc(t, sizeof *e + klen + 1);
        e->key_len = klen;
        memcpy(e->key, key, klen);
        e->key[klen] = '\0';
        hashmap_add(&t->map, e);
    }
    e->value = table_strndup(t, val, vlen);
    return replaced;
}

static const char *table_get(const struct table *t, const char *key)
{
    const struct entry *e = hashmap_get_str(&t->map, key);
    return e ? e->value : NULL;
}

/* ---------- maps ---------- */

enum map_kind { MAP_KIND_FILE, MAP_KIND_REGEXP, MAP_KIND_CIDR, MAP_KIND_INLINE, MAP_KIND_STATIC, MAP_KIND_PASSWD,
                MAP_KIND_GROUP, MAP_KIND_ASYNC };

/* What identifies one version of a source file: an in-place edit changes
 * size/mtime/ctime, an atomic replace changes the inode. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
    struct timespec ctim;
    uid_t uid; /* the owner: map_source_owner */
    gid_t gid;
};

struct map {
    char *spec;
    enum map_kind kind;
    unsigned flags;
    char *path;         /* file and regexp tables */
    char *static_value; /* static: */
    struct table table; /* file and inline tables */
    enum map_regexp_dialect dialect; /* regexp tables: */
    struct map_regexp *regexp;       /* their compiled rules */
    struct map_cidr *cidr;           /* cidr: tables' rules (map_cidr.c) */
    struct map_async *async;         /* pgsql: (map_async.h) */
    int loaded;         /* table or regexp holds the contents of the file version in id */
    int failing;        /* the file could not be read; already logged */
    struct file_id id;
    int checked;
    long long last_check; /* monotonic nanoseconds */
    struct map *next_file; /* open_files: every file table this process holds */
};

/* Every open file table, so a sandbox can be told which files the process
 * will read again after it stops opening new things (map_foreach_open_file). */
static struct map *open_files;

static unsigned check_interval = 1;

void map_set_check_interval(unsigned seconds)
{
    check_interval = seconds;
}

static long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void file_id_from_stat(struct file_id *id, const struct stat *st)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtim = st->st_mtim;
    id->ctim = st->st_ctim;
    id->uid = st->st_uid;
    id->gid = st->st_gid;
}

static int file_id_equal(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* ---------- source-file parsing ---------- */

struct loader {
    const char *path;
    map_source_line_fn *fn;
    void *arg;
    struct strbuf logical;
    size_t lineno; /* where the current logical line started */
    int active;
    const char *bad; /* why the current logical line will be skipped */
};

/* Where map.c's key/value source lines go. */
struct kv_target {
    unsigned flags;
    struct table *table;
};

static void load_entry_postmap(const struct kv_target *t, const char *path, size_t lineno, char *line)
{
    char *p = line;
    while (*p && !str_is_blank((unsigned char)*p))
        p++;
    size_t klen = (size_t)(p - line);
    while (str_is_blank((unsigned char)*p))
        p++;
    if (!*p) {
        log_warn("%s, line %zu: expected format: key whitespace value; entry skipped", path, lineno);
        return;
    }
    line[klen] = '\0';
    str_lower(line);
    if (table_put(t->table, line, klen, p, strlen(p)))
        log_warn("%s, line %zu: duplicate entry for \"%s\"; the later one is used", path, lineno, line);
}

/* Unquotes an aliases(5) name "like \"this\"" at *pp into out; returns 0 on
 * success with *pp after the closing quote. */
static int unquote_name(const char **pp, struct strbuf *out)
{
    const char *p = *pp + 1;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        strbuf_putc(out, *p);
    }
    if (*p != '"')
        return -1;
    *pp = p + 1;
    return 0;
}

static void load_entry_alias(const struct kv_target *t, const char *path, size_t lineno, char *line)
{
    struct strbuf name = STRBUF_INIT;
    const char *p = line;
    if (*p == '"') {
        if (unquote_name(&p, &name) != 0) {
            log_warn("%s, line %zu: unterminated quoted name; entry skipped", path, lineno);
            goto out;
        }
        while (str_is_blank((unsigned char)*p))
            p++;
        if (*p != ':') {
            log_warn("%s, line %zu: need name:value pair; entry skipped", path, lineno);
            goto out;
        }
    } else {
        const char *colon = strchr(p, ':');
        if (!colon) {
            log_warn("%s, line %zu: need name:value pair; entry skipped", path, lineno);
            goto out;
        }
        size_t n = (size_t)(colon - p);
        while (n && str_is_blank((unsigned char)p[n - 1]))
            n--;
        for (size_t i = 0; i < n; i++) {
            if (str_is_blank((unsigned char)p[i])) {
                log_warn("%s, line %zu: name contains whitespace (quote it); entry skipped", path,
                         lineno);
                goto out;
            }
        }
        strbuf_append(&name, p, n);
        p = colon;
    }
    p++; /* the colon */
    while (str_is_blank((unsigned char)*p))
        p++;
    if (name.len == 0) {
        log_warn("%s, line %zu: empty alias name; entry skipped", path, lineno);
        goto out;
    }
    if (!*p) {
        log_warn("%s, line %zu: alias \"%s\" has no value; entry skipped", path, lineno,
                 strbuf_str(&name));
        goto out;
    }
    str_lower(name.buf);
    if (table_put(t->table, name.buf, name.len, p, strlen(p)))
        log_warn("%s, line %zu: duplicate entry for \"%s\"; the later one is used", path, lineno,
                 name.buf);
out:
    strbuf_free(&name);
}

/* A name listed twice is still the same name: no warning for duplicates. */
static void load_entry_names(const struct kv_target *t, char *line)
{
    char *p = line;
    while (*p) {
        while (*p == ',' || str_is_space((unsigned char)*p))
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && !str_is_space((unsigned char)p[n]))
            n++;
        if (!n)
            break;
        char *name = p;
        p += n;
        if (*p)
            *p++ = '\0';
        if (n > 1 && name[n - 1] == '.')
            name[--n] = '\0';
        str_lower(name);
        table_put(t->table, name, n, "", 0);
    }
}

static void load_kv_line(void *arg, const char *path, size_t lineno, char *line)
{
    const struct kv_target *t = arg;
    if (t->flags & MAP_NAME_LIST_FORMAT)
        load_entry_names(t, line);
    else if (t->flags & MAP_ALIAS_FORMAT)
        load_entry_alias(t, path, lineno, line);
    else
        load_entry_postmap(t, path, lineno, line);
}

static void loader_finish_line(struct loader *ld)
{
    if (!ld->active)
        return;
    ld->active = 0;
    if (ld->bad) {
        log_warn("%s, line %zu: %s; entry skipped", ld->path, ld->lineno, ld->bad);
    } else {
        size_t len = ld->logical.len;
        char *line = ld->logical.buf;
        while (len && str_is_blank((unsigned char)line[len - 1]))
            len--;
        line[len] = '\0';
        ld->fn(ld->arg, ld->path, ld->lineno, line);
    }
    strbuf_reset(&ld->logical);
    ld->bad = NULL;
}

static void loader_append(struct loader *ld, const char *s, size_t len)
{
    if (ld->bad)
        return;
    if (memchr(s, '\0', len)) {
        ld->bad = "line contains a NUL byte";
        return;
    }
    if (ld->logical.len + len > MAP_MAX_LINE) {
        ld->bad = "line is longer than 65536 bytes";
        return;
    }
    strbuf_append(&ld->logical, s, len);
}

static void loader_physical_line(struct loader *ld, const char *s, size_t len, size_t lineno)
{
    if (len && s[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && str_is_blank((unsigned char)s[i]))
        i++;
    if (i == len || s[i] == '#')
        return; /* blank or comment: neither starts nor ends a logical line */
    if (i > 0) {
        if (!ld->active) {
            log_warn("%s, line %zu: continuation line without an entry before it; skipped",
                     ld->path, lineno);
            return;
        }
        loader_append(ld, s, len);
        return;
    }
    loader_finish_line(ld);
    ld->active = 1;
    ld->lineno = lineno;
    loader_append(ld, s, len);
}

void map_source_lines(const char *path, const char *data, size_t len, map_source_line_fn *fn,
                      void *arg)
{
    struct loader ld = {.path = path, .fn = fn, .arg = arg};
    size_t lineno = 0;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        loader_physical_line(&ld, p, (size_t)(eol - p), ++lineno);
        p = nl ? nl + 1 : end;
    }
    loader_finish_line(&ld);
    strbuf_free(&ld.logical);
}

static void parse_source(const char *path, unsigned flags, const char *data, size_t len,
                         struct table *table)
{
    struct kv_target t = {.flags = flags, .table = table};
    map_source_lines(path, data, len, load_kv_line, &t);
}

/* Reads the whole file; on failure returns -1 with errno set. */
static int read_file(const char *path, struct strbuf *out, struct file_id *id)
{
    int fd = fsops_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        goto fail;
    }
    file_id_from_stat(id, &st);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (n == 0)
            break;
        strbuf_append(out, chunk, (size_t)n);
    }
    close(fd);
    return 0;
fail: {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}
}

static void map_set_failing(struct map *m, const char *what, int err_no)
{
    table_free(&m->table);
    map_regexp_free(m->regexp);
    map_cidr_free(m->cidr);
    map_async_close(m->async);
    m->regexp = NULL;
    m->cidr = NULL;
    m->loaded = 0;
    if (!m->failing)
        log_error("table %s: cannot %s %s: %s; lookups fail with a temporary error until it "
                  "is readable",
                  m->spec, what, m->path, strerror(err_no));
    m->failing = 1;
}

/* Rereads the source file (key/value or pattern rules, by the map's kind).
 * A file that changes while we read it is read again (a few times) so a
 * lookup does not see a half-written edit. */
static int file_load(struct map *m)
{
    struct table fresh = {0};
    struct map_regexp *fresh_regexp = NULL;
    struct map_cidr *fresh_cidr = NULL;
    struct file_id id = {0};
    for (int attempt = 0; attempt < 3; attempt++) {
        struct strbuf data = STRBUF_INIT;
        if (read_file(m->path, &data, &id) != 0) {
            int e = errno;
            strbuf_free(&data);
            table_free(&fresh);
            map_regexp_free(fresh_regexp);
            map_cidr_free(fresh_cidr);
            map_set_failing(m, "read", e);
            return -1;
        }
        if (m->kind == MAP_KIND_REGEXP) {
            map_regexp_free(fresh_regexp);
            fresh_regexp = map_regexp_parse(m->path, m->dialect, strbuf_str(&data), data.len);
        } else if (m->kind == MAP_KIND_CIDR) {
            map_cidr_free(fresh_cidr);
            fresh_cidr = map_cidr_parse(m->path, strbuf_str(&data), data.len);
        } else {
            table_free(&fresh);
            parse_source(m->path, m->flags, strbuf_str(&data), data.len, &fresh);
        }
        strbuf_free(&data);
        struct stat st;
        struct file_id after;
        if (stat(m->path, &st) == 0) {
            file_id_from_stat(&after, &st);
            if (file_id_equal(&after, &id))
                break;
        }
    }
    table_free(&m->table);
    m->table = fresh;
    map_regexp_free(m->regexp);
    m->regexp = fresh_regexp;
    map_cidr_free(m->cidr);
    m->cidr = fresh_cidr;
    m->id = id;
    m->loaded = 1;
    if (m->failing)
        log_info("table %s: %s is readable again (%zu entries)", m->spec, m->path,
                 m->regexp ? map_regexp_count(m->regexp)
                 : m->cidr ? map_cidr_count(m->cidr)
                           : hashmap_count(&m->table.map));
    m->failing = 0;
    return 0;
}

static int file_refresh(struct map *m)
{
    long long now = monotonic_ns();
    if (m->checked && now - m->last_check < (long long)check_interval * 1000000000LL)
        return m->loaded ? 0 : -1;
    m->checked = 1;
    m->last_check = now;
    struct stat st;
    if (stat(m->path, &st) != 0) {
        map_set_failing(m, "open", errno);
        return -1;
    }
    struct file_id now_id;
    file_id_from_stat(&now_id, &st);
    if (m->loaded && file_id_equal(&now_id, &m->id))
        return 0;
    return file_load(m);
}

/* ---------- spec parsing ---------- */

/* Returns the '}' that closes the '{' at open, or NULL. */
static const char *matching_brace(const char *open)
{
    int depth = 0;
    for (const char *p = open; *p; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            return p;
    }
    return NULL;
}

static void set_err(char **err, char *msg)
{
    if (err)
        *err = msg;
    else
        free(msg);
}

static char *trimmed_copy(const char *s, size_t len)
{
    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    return xstrndup(s, len);
}

/* One "key=value" inline entry; returns an error message or NULL. */
static char *inline_entry(struct map *m, const char *s, size_t len, int braced)
{
    const char *eq = memchr(s, '=', len);
    if (!eq)
        return xasprintf("table %s: entry \"%.*s\" has no '='", m->spec, (int)len, s);
    char *key = braced ? trimmed_copy(s, (size_t)(eq - s)) : xstrndup(s, (size_t)(eq - s));
    char *val = braced ? trimmed_copy(eq + 1, len - (size_t)(eq - s) - 1)
                       : xstrndup(eq + 1, len - (size_t)(eq - s) - 1);
    char *msg = NULL;
    if (!*key) {
        msg = xasprintf("table %s: entry \"%.*s\" has an empty key", m->spec, (int)len, s);
    } else {
        str_lower(key);
        if (table_put(&m->table, key, strlen(key), val, strlen(val)))
            log_warn("table %s: duplicate entry for \"%s\"; the later one is used", m->spec, key);
    }
    free(key);
    free(val);
    return msg;
}

static char *parse_inline(struct map *m, const char *body)
{
    while (isspace((unsigned char)*body))
        body++;
    const char *close = *body == '{' ? matching_brace(body) : NULL;
    if (!close)
        return xasprintf("table %s: expected inline:{ key=value, ... }", m->spec);
    for (const char *q = close + 1; *q; q++)
        if (!isspace((unsigned char)*q))
            return xasprintf("table %s: text after the closing '}'", m->spec);
    const char *p = body + 1;
    while (p < close) {
        if (isspace((unsigned char)*p) || *p == ',') {
            p++;
            continue;
        }
        char *msg;
        if (*p == '{') {
            const char *end = matching_brace(p);
            /* end < close always holds: the outer brace balances. */
            msg = inline_entry(m, p + 1, (size_t)(end - p - 1), 1);
            p = end + 1;
        } else {
            const char *start = p;
            int depth = 0;
            while (p < close && (depth > 0 || !(isspace((unsigned char)*p) || *p == ','))) {
                if (*p == '{')
                    depth++;
                else if (*p == '}')
                    depth--;
                p++;
            }
            msg = inline_entry(m, start, (size_t)(p - start), 0);
        }
        if (msg)
            return msg;
    }
    return NULL;
}

static char *parse_static(struct map *m, const char *body)
{
    char *text = trimmed_copy(body, strlen(body));
    if (text[0] == '{') {
        const char *close = matching_brace(text);
        if (!close || close[1] != '\0') {
            free(text);
            return xasprintf("table %s: expected static:{text}", m->spec);
        }
        m->static_value = trimmed_copy(text + 1, (size_t)(close - text - 1));
        free(text);
    } else {
        m->static_value = text;
    }
    return NULL;
}

static int type_is(const char *type, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(type, *list) == 0)
            return 1;
    return 0;
}

static const char *const file_types[] = {"hash", "btree", "lmdb", "texthash", NULL};
/* Postfix table types we know of but do not implement. */
static const char *const unsupported_types[] = {
    "tcp",    "socketmap", "ldap",    "mysql",
    "sqlite", "memcache", "nis",       "nisplus", "netinfo",
    "cdb",    "dbm",    "sdbm",     "environ", "fail",     "pipemap", "randmap",
    "union",  "internal", "ldaps",  NULL};

/* Key/value and pattern tables alike: a source file, reread when it changes. */
static char *setup_file_table(struct map *m, enum map_kind kind, const char *name)
{
    if (name[0] != '/')
        return xasprintf("table %s: the file name must be an absolute path", m->spec);
    m->kind = kind;
    m->path = xstrdup(name);
    m->next_file = open_files;
    open_files = m;
    file_refresh(m); /* a failure is logged once and retried on lookup */
    return NULL;
}

static char *map_setup(struct map *m, const char *type, const char *name)
{
    if (type_is(type, file_types))
        return setup_file_table(m, MAP_KIND_FILE, name);
    if (strcmp(type, "regexp") == 0 || strcmp(type, "pcre") == 0) {
        m->dialect = strcmp(type, "pcre") == 0 ? MAP_REGEXP_PCRE : MAP_REGEXP_POSIX;
        return setup_file_table(m, MAP_KIND_REGEXP, name);
    }
    if (strcmp(type, "cidr") == 0)
        return setup_file_table(m, MAP_KIND_CIDR, name);
    if (strcmp(type, "inline") == 0) {
        m->kind = MAP_KIND_INLINE;
        return parse_inline(m, name);
    }
    if (strcmp(type, "static") == 0) {
        m->kind = MAP_KIND_STATIC;
        return parse_static(m, name);
    }
    if (strcmp(type, "unix") == 0) {
        if (strcmp(name, "passwd.byname") == 0)
            m->kind = MAP_KIND_PASSWD;
        else if (strcmp(name, "group.byname") == 0)
            m->kind = MAP_KIND_GROUP;
        else
            return xasprintf("table %s: unknown unix table \"%s\" (passwd.byname or "
                             "group.byname)",
                             m->spec, name);
        return NULL;
    }
    if (strcmp(type, "pgsql") == 0) {
        char *err = NULL;
        m->kind = MAP_KIND_ASYNC;
        m->async = map_async_open_pgsql(m->spec, name, &err);
        return m->async ? NULL : err;
    }
    if (type_is(type, unsupported_types))
        return xasprintf("table type %s is not supported yet", type);
    return xasprintf("unknown table type \"%s\" in \"%s\"", type, m->spec);
}

struct map *map_open(const char *spec, unsigned flags, char **err)
{
    if (err)
        *err = NULL;
    char *s = trimmed_copy(spec, strlen(spec));
    /* Postfix's proxy:TYPE:NAME shares a table through its proxymap
     * process; tern's processes each read their tables themselves, so
     * "proxy:" is the table behind it (the guides' main.cf lines work) */
    while (strncasecmp(s, "proxy:", 6) == 0) {
        char *inner = xstrdup(s + 6);
        free(s);
        s = inner;
    }
    const char *colon = strchr(s, ':');
    size_t tlen = colon ? (size_t)(colon - s) : 0;
    int type_ok = tlen > 0;
    for (size_t i = 0; i < tlen; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            type_ok = 0;
    if (!type_ok) {
        set_err(err, xasprintf("table \"%s\" is not of the form type:name", s));
        free(s);
        return NULL;
    }
    struct map *m = xcalloc(1, sizeof *m);
    m->spec = s;
    m->flags = flags;
    char *type = xstrndup(s, tlen);
    str_lower(type);
    char *msg = map_setup(m, type, colon + 1);
    free(type);
    if (msg) {
        set_err(err, msg);
        map_close(m);
        return NULL;
    }
    return m;
}

void map_close(struct map *m)
{
    if (!m)
        return;
    if (m->path) /* only file tables are on the list, and only they have a path */
        for (struct map **pp = &open_files; *pp; pp = &(*pp)->next_file)
            if (*pp == m) {
                *pp = m->next_file;
                break;
            }
    table_free(&m->table);
    map_regexp_free(m->regexp);
    map_cidr_free(m->cidr);
    map_async_close(m->async);
    free(m->spec);
    free(m->path);
    free(m->static_value);
    free(m);
}

void map_foreach_open_file(void (*fn)(void *arg, const char *path), void *arg)
{
    for (struct map *m = open_files; m; m = m->next_file)
        fn(arg, m->path);
}

int map_is_pattern(const struct map *m)
{
    return m->kind == MAP_KIND_REGEXP || m->kind == MAP_KIND_CIDR;
}

int map_source_owner(struct map *m, uid_t *uid, gid_t *gid)
{
    if (m->kind != MAP_KIND_FILE && m->kind != MAP_KIND_REGEXP && m->kind != MAP_KIND_CIDR)
        return 0;
    if (!m->loaded && file_refresh(m) != 0)
        return -1;
    *uid = m->id.uid;
    *gid = m->id.gid;
    return 1;
}

const char *map_spec(const struct map *m)
{
    return m->spec;
}

/* getpw*_r and getgr*_r want a caller buffer of unknown size: grow on ERANGE. */
#define NSS_BUF_MAX (1024 * 1024)

static int nss_not_found(int rc)
{
    /* POSIX lets these mean "no such entry" as well as the usual 0/NULL. */
    return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM;
}

/* fetch looks key up into entry (a struct passwd or group) using buf and
 * sets *found; format makes the table value from the entry. */
typedef int nss_fetch_fn(const char *key, void *entry, char *buf, size_t size, int *found);
typedef char *nss_format_fn(const void *entry);

static int nss_lookup(const char *table, const char *key, char **value, void *entry, nss_fetch_fn *fetch,
                      nss_format_fn *format)
{
    for (size_t size = 4096;; size *= 4) {
        char *buf = xmalloc(size);
        int found = 0;
        int rc = fetch(key, entry, buf, size, &found);
        if (rc == ERANGE && size < NSS_BUF_MAX) {
            free(buf);
            continue;
        }
        int result = 0;
        if (found) {
            *value = format(entry);
            result = 1;
        } else if (!nss_not_found(rc)) {
            log_error("table %s: lookup of %s failed: %s", table, key, strerror(rc));
            result = -1;
        }
        free(buf);
        return result;
    }
}

static int fetch_passwd(const char *key, void *entry, char *buf, size_t size, int *found)
{
    struct passwd *res = NULL;
    int rc = getpwnam_r(key, entry, buf, size, &res);
    *found = res != NULL;
    return rc;
}

static char *format_passwd(const void *entry)
{
    const struct passwd *pw = entry;
    return xasprintf("%s:x:%lu:%lu:%s:%s:%s", pw->pw_name, (unsigned long)pw->pw_uid, (unsigned long)pw->pw_gid,
                     pw->pw_gecos ? pw->pw_gecos : "", pw->pw_dir ? pw->pw_dir : "",
                     pw->pw_shell ? pw->pw_shell : "");
}

static int fetch_group(const char *key, void *entry, char *buf, size_t size, int *found)
{
    struct group *res = NULL;
    int rc = getgrnam_r(key, entry, buf, size, &res);
    *found = res != NULL;
    return rc;
}

static char *format_group(const void *entry)
{
    const struct group *gr = entry;
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "%s:x:%lu:", gr->gr_name, (unsigned long)gr->gr_gid);
    for (char **mem = gr->gr_mem; mem && *mem; mem++) {
        if (mem != gr->gr_mem)
            strbuf_putc(&sb, ',');
        strbuf_puts(&sb, *mem);
    }
    return strbuf_detach(&sb);
}

int map_foreach(struct map *m, int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
    if (m->kind == MAP_KIND_FILE && file_refresh(m) != 0)
        return -1;
    if (m->kind != MAP_KIND_FILE && m->kind != MAP_KIND_INLINE)
        return 0;
    size_t i = 0;
    const struct entry *e;
    while ((e = hashmap_next(&m->table.map, &i))) {
        int rc = fn(arg, e->key, e->value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int map_lookup(struct map *m, const char *key, char **value)
{
    *value = NULL;
    if (m->kind == MAP_KIND_STATIC) {
        *value = xstrdup(m->static_value);
        return 1;
    }
    if (!key || !*key)
        return 0;
    if ((m->kind == MAP_KIND_FILE || m->kind == MAP_KIND_REGEXP || m->kind == MAP_KIND_CIDR) &&
        file_refresh(m) != 0)
        return -1;
    if (m->kind == MAP_KIND_ASYNC)
        return map_async_lookup(m->async, key, value);
    if (m->kind == MAP_KIND_REGEXP) /* patterns see the key as given: case is their flags' job */
        return map_regexp_lookup(m->regexp, m->spec, key, value);
    if (m->kind == MAP_KIND_CIDR)
        return map_cidr_lookup(m->cidr, key, value);
    char *folded = xstrdup(key);
    str_lower(folded);
    int rc = 0;
    switch (m->kind) {
    case MAP_KIND_FILE:
    case MAP_KIND_INLINE: {
        const char *v = table_get(&m->table, folded);
        if (v) {
            *value = xstrdup(v);
            rc = 1;
        }
        break;
    }
    case MAP_KIND_PASSWD:
        rc = nss_lookup("unix:passwd.byname", folded, value, &(struct passwd){0}, fetch_passwd, format_passwd);
        break;
    case MAP_KIND_GROUP:
        rc = nss_lookup("unix:group.byname", folded, value, &(struct group){0}, fetch_group, format_group);
        break;
    case MAP_KIND_STATIC:
    case MAP_KIND_REGEXP:
    case MAP_KIND_CIDR:
    case MAP_KIND_ASYNC:
        break;
    }
    free(folded);
    return rc;
}

/* ---------- lists ---------- */

struct map_list {
    struct map **maps;
    size_t n, cap;
};

struct map_list *map_list_open(const char *specs, unsigned flags, char **err)
{
    if (err)
        *err = NULL;
    struct map_list *l = xcalloc(1, sizeof *l);
    const char *p = specs;
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!*p)
            break;
        /* Separators inside braces belong to the spec: inline:{a=b, c=d}. */
        const char *start = p;
        int depth = 0;
        while (*p && (depth > 0 || !(isspace((unsigned char)*p) || *p == ','))) {
            if (*p == '{')
                depth++;
            else if (*p == '}' && depth > 0)
                depth--;
            p++;
        }
        char *one = xstrndup(start, (size_t)(p - start));
        struct map *m = map_open(one, flags, err);
        free(one);
        if (!m) {
            map_list_close(l);
            return NULL;
        }
        l->maps = xgrow(l->maps, &l->cap, l->n + 1, sizeof *l->maps);
        l->maps[l->n++] = m;
    }
    return l;
}

int map_list_lookup(struct map_list *l, const char *key, char **value)
{
    *value = NULL;
    for (size_t i = 0; i < l->n; i++) {
        int rc = map_lookup(l->maps[i], key, value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int map_list_lookup_partial(struct map_list *l, const char *key, char **value)
{
    *value = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (map_is_pattern(l->maps[i]))
            continue;
        int rc = map_lookup(l->maps[i], key, value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void map_list_close(struct map_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        map_close(l->maps[i]);
    free(l->maps);
    free(l);
}

size_t map_list_count(const struct map_list *l)
{
    return l->n;
}

struct map *map_list_get(struct map_list *l, size_t i)
{
    return i < l->n ? l->maps[i] : NULL;
}
