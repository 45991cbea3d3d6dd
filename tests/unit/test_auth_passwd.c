/* Tests for auth_passwd (password file backend) and cli_passwd (tern passwd). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_passwd.h"
#include "cli/cli_passwd.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* ---------- helpers ---------- */

struct fixture {
    char dir[64];
    char path[128];
    struct event_base *base;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    if (tf_tmpdir_make(f->dir, sizeof f->dir, "authpw") != 0)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/passwd", f->dir);
    f->base = event_base_new();
    *state = f;
    return f->base ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tf_tmpdir_remove(f->dir);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Replaces path atomically (new inode), as an editor or tern passwd would. */
static void put_file(const char *path, const char *text)
{
    char *tmp = xasprintf("%s.new", path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
}

/* SHA-512 crypt with the minimum rounds: real crypt(3), but fast. */
static char *cheap_hash(const char *pw)
{
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *h = crypt_rn(pw, "$6$rounds=1000$testsaltTESTSALT", &cd, (int)sizeof cd);
    assert_non_null(h);
    return xstrdup(h);
}

struct result {
    int called;
    enum auth_result r;
    char why[96];
};

static int total_calls;

static void record(void *arg, enum auth_result r, const char *why)
{
    struct result *res = arg;
    res->called++;
    res->r = r;
    str_copy(res->why, why, sizeof res->why);
    total_calls++;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_until(struct event_base *base, const int *counter, int want)
{
    long long deadline = now_ms() + 20000;
    while (*counter < want && now_ms() < deadline) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (*counter < want) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(*counter, want);
}

static void run_for(struct event_base *base, int ms)
{
    long long deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Runs one check to completion; returns its result. */
static enum auth_result check_sync(struct fixture *f, struct auth_passwd *db, const char *user, const char *pw,
                                   struct result *res)
{
    memset(res, 0, sizeof *res);
    auth_passwd_check(db, user, pw, record, res);
    assert_int_equal(res->called, 0); /* never inside the call */
    run_until(f->base, &res->called, 1);
    return res->r;
}

/* stderr capture, for asserting log lines */
struct capture {
    int saved;
    char path[160];
};

static void capture_start(struct capture *c, const struct fixture *f, int fd)
{
    snprintf(c->path, sizeof c->path, "%s/capture.%d", f->dir, fd);
    fflush(fd == 1 ? stdout : stderr);
    c->saved = dup(fd);
    int out = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    dup2(out, fd);
    close(out);
}

static char *capture_end(struct capture *c, int fd)
{
    fflush(fd == 1 ? stdout : stderr);
    dup2(c->saved, fd);
    close(c->saved);
    char *text = tf_read_file(c->path, NULL);
    unlink(c->path);
    return text;
}

static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* workers held in the hook until the gate opens */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int entered;
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void gate_hook(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_reset(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = 0;
    gate.entered = 0;
    pthread_mutex_unlock(&gate.mu);
}

static void gate_wait_entered(int n)
{
    pthread_mutex_lock(&gate.mu);
    while (gate.entered < n)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static int entered_now(void)
{
    pthread_mutex_lock(&gate.mu);
    int n = gate.entered;
    pthread_mutex_unlock(&gate.mu);
    return n;
}

static struct auth_passwd *open_db(struct fixture *f)
{
    char *err = NULL;
    struct auth_passwd *db = auth_passwd_open(f->base, f->path, &err);
    assert_null(err);
    assert_non_null(db);
    return db;
}

/* A file with alice/secret, bob/hunter2 (with addresses). */
static void write_basic(struct fixture *f)
{
    char *ha = cheap_hash("secret"), *hb = cheap_hash("hunter2");
    char *text = xasprintf("alice:%s\nbob:%s:bob@example.org,b@example.org\n", ha, hb);
    put_file(f->path, text);
    free(text);
    free(ha);
    free(hb);
}

/* ---------- line syntax ---------- */

static enum auth_passwd_line_kind split(const char *s, struct auth_passwd_line *l, const char **why)
{
    return auth_passwd_split_line(s, strlen(s), l, why);
}

static void test_split_line(void **state)
{
    (void)state;
    struct auth_passwd_line l;
    const char *why;
    assert_int_equal(split("", &l, &why), AUTH_PASSWD_LINE_SKIP);
    assert_int_equal(split("   \t", &l, &why), AUTH_PASSWD_LINE_SKIP);
    assert_int_equal(split("# alice:$y$x", &l, &why), AUTH_PASSWD_LINE_SKIP);
    assert_int_equal(split("  # indented comment", &l, &why), AUTH_PASSWD_LINE_SKIP);

    assert_int_equal(split("  alice:$6$salt$hash \r", &l, &why), AUTH_PASSWD_LINE_ENTRY);
    assert_int_equal(l.name_len, 5);
    assert_memory_equal(l.name, "alice", 5);
    assert_int_equal(l.hash_len, 12);
    assert_memory_equal(l.hash, "$6$salt$hash", 12);
    assert_null(l.addrs);

    assert_int_equal(split("bob@example.org:$y$j9T$a$b:bob@example.org, b@x.org", &l, &why),
                     AUTH_PASSWD_LINE_ENTRY);
    assert_int_equal(l.name_len, strlen("bob@example.org"));
    assert_int_equal(l.addrs_len, strlen("bob@example.org, b@x.org"));

    assert_int_equal(split("carol:$6$s$h:", &l, &why), AUTH_PASSWD_LINE_ENTRY);
    assert_non_null(l.addrs);
    assert_int_equal(l.addrs_len, 0);

    assert_int_equal(split("alice", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_non_null(strstr(why, "':'"));
    assert_int_equal(split(":$6$s$h", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_string_equal(why, "invalid user name");
    assert_int_equal(split("al ice:$6$s$h", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_int_equal(split("alice:plaintext", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_non_null(strstr(why, "hash"));
    assert_int_equal(split("alice:", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_int_equal(split("alice:$6$s h$x", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_int_equal(split("alice:$6$s$h:a@x:extra", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_non_null(strstr(why, "fields"));
    assert_int_equal(split("alice:$6$s$h:a@x,,b@x", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_string_equal(why, "invalid sender address list");
    assert_int_equal(split("alice:$6$s$h:a@x,", &l, &why), AUTH_PASSWD_LINE_BAD);
    assert_int_equal(split("alice:$6$s$h:a b@x", &l, &why), AUTH_PASSWD_LINE_BAD);
    char nul[] = "ali\0ce:$6$s$h";
    assert_int_equal(auth_passwd_split_line(nul, sizeof nul - 1, &l, &why), AUTH_PASSWD_LINE_BAD);

    assert_true(auth_passwd_valid_name("alice@example.org"));
    assert_true(auth_passwd_valid_name("j\xc3\xbcrgen"));
    assert_false(auth_passwd_valid_name(""));
    assert_false(auth_passwd_valid_name("a:b"));
    assert_false(auth_passwd_valid_name("a,b"));
    assert_false(auth_passwd_valid_name("a\tb"));
    char longname[AUTH_PASSWD_MAX_NAME + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(auth_passwd_valid_name(longname));
    longname[AUTH_PASSWD_MAX_NAME] = '\0';
    assert_true(auth_passwd_valid_name(longname));
    assert_true(auth_passwd_valid_address("@example.org"));
    assert_false(auth_passwd_valid_address("a b@example.org"));
}

/* ---------- parsing a whole file ---------- */

static void test_parse_file(void **state)
{
    struct fixture *f = *state;
    char *h = cheap_hash("pw");
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "# users\n");                                       /* 1 */
    strbuf_printf(&sb, "\n");                                              /* 2 */
    strbuf_printf(&sb, "alice:%s\n", h);                                   /* 3 */
    strbuf_printf(&sb, "broken line without colon\n");                     /* 4 */
    strbuf_printf(&sb, "long:");                                           /* 5: too long */
    for (int i = 0; i < AUTH_PASSWD_MAX_LINE; i++)
        strbuf_putc(&sb, 'a');
    strbuf_putc(&sb, '\n');
    strbuf_printf(&sb, "bob:%s:bob@example.org, b@example.org\r\n", h);   /* 6 */
    strbuf_printf(&sb, "alice:$6$other$HASHTEXT\n");                          /* 7: duplicate */
    strbuf_printf(&sb, "eve:$1$zz$notsupportedmethod\n");                  /* 8: legacy MD5 - accepted */
    strbuf_printf(&sb, "mallory:$qq$unknownmethod\n");                     /* 9: unknown method */
    strbuf_printf(&sb, "carol:%s:", h);                                    /* 10: no final newline */
    put_file(f->path, strbuf_str(&sb));
    strbuf_free(&sb);

    struct capture c;
    capture_start(&c, f, 2);
    struct auth_passwd *db = open_db(f);
    char *log = capture_end(&c, 2);

    assert_int_equal(auth_passwd_count(db), 4); /* alice bob eve carol */
    char *want = xasprintf("%s:4:", f->path);
    assert_non_null(strstr(log, want));
    free(want);
    want = xasprintf("%s:5: line longer than", f->path);
    assert_non_null(strstr(log, want));
    free(want);
    want = xasprintf("%s:7: user alice appears again", f->path);
    assert_non_null(strstr(log, want));
    free(want);
    want = xasprintf("%s:8: user eve has a weak legacy", f->path);
    assert_non_null(strstr(log, want));
    free(want);
    want = xasprintf("%s:9:", f->path);
    assert_non_null(strstr(log, want));
    free(want);
    assert_null(strstr(log, h)); /* hashes stay out of logs */
    assert_null(strstr(log, "HASHTEXT"));
    free(log);

    const char *const *a = auth_passwd_addresses(db, "bob");
    assert_non_null(a);
    assert_string_equal(a[0], "bob@example.org");
    assert_string_equal(a[1], "b@example.org");
    assert_null(a[2]);
    a = auth_passwd_addresses(db, "alice");
    assert_non_null(a);
    assert_null(a[0]);
    a = auth_passwd_addresses(db, "carol");
    assert_non_null(a);
    assert_null(a[0]);
    assert_null(auth_passwd_addresses(db, "mallory"));
    assert_null(auth_passwd_addresses(db, "nobody"));
    assert_null(auth_passwd_addresses(db, "Bob")); /* names are case-sensitive */

    struct result r;
    assert_int_equal(check_sync(f, db, "alice", "pw", &r), AUTH_OK); /* the first alice line counts */
    assert_int_equal(check_sync(f, db, "carol", "pw", &r), AUTH_OK);
    assert_int_equal(check_sync(f, db, "bob", "pw", &r), AUTH_OK);
    assert_int_equal(check_sync(f, db, "BOB", "pw", &r), AUTH_FAIL);
    assert_int_equal(check_sync(f, db, "long", "pw", &r), AUTH_FAIL);
    auth_passwd_close(db);
    free(h);
}

/* ---------- checks ---------- */

static void test_ok_wrong_unknown(void **state)
{
    struct fixture *f = *state;
    write_basic(f);
    struct auth_passwd *db = open_db(f);
    struct result r;
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_OK);
    assert_int_equal(r.called, 1);
    assert_int_equal(check_sync(f, db, "alice", "Secret", &r), AUTH_FAIL);
    assert_string_equal(r.why, "password mismatch");
    assert_int_equal(check_sync(f, db, "alice", "", &r), AUTH_FAIL);
    assert_int_equal(check_sync(f, db, "bob", "hunter2", &r), AUTH_OK);
    assert_int_equal(check_sync(f, db, "alice", "hunter2", &r), AUTH_FAIL);
    assert_int_equal(check_sync(f, db, "nobody", "secret", &r), AUTH_FAIL);
    assert_string_equal(r.why, "no such user");
    assert_int_equal(check_sync(f, db, "", "secret", &r), AUTH_FAIL);

    /* over-long inputs are refused without touching a worker */
    char *longpw = xmalloc(AUTH_PASSWD_MAX_PASSWORD + 2);
    memset(longpw, 'p', AUTH_PASSWD_MAX_PASSWORD + 1);
    longpw[AUTH_PASSWD_MAX_PASSWORD + 1] = '\0';
    assert_int_equal(check_sync(f, db, "alice", longpw, &r), AUTH_FAIL);
    assert_string_equal(r.why, "password too long");
    free(longpw);
    char *longuser = xmalloc(1000);
    memset(longuser, 'u', 999);
    longuser[999] = '\0';
    assert_int_equal(check_sync(f, db, longuser, "secret", &r), AUTH_FAIL);
    free(longuser);
    auth_passwd_close(db);
}

static void test_real_yescrypt(void **state)
{
    struct fixture *f = *state;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof salt));
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *h = crypt_rn("correct horse", salt, &cd, (int)sizeof cd);
    assert_non_null(h);
    assert_true(strncmp(h, "$y$", 3) == 0);
    char *text = xasprintf("dave@example.org:%s\n", h);
    put_file(f->path, text);
    free(text);
    struct auth_passwd *db = open_db(f);
    struct result r;
    assert_int_equal(check_sync(f, db, "dave@example.org", "correct horse", &r), AUTH_OK);
    assert_int_equal(check_sync(f, db, "dave@example.org", "correct horse ", &r), AUTH_FAIL);
    /* unknown user: still a full hash against the dummy, still a failure */
    assert_int_equal(check_sync(f, db, "erin@example.org", "correct horse", &r), AUTH_FAIL);
    auth_passwd_close(db);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    struct capture c;
    capture_start(&c, f, 2);
    struct auth_passwd *db = open_db(f);
    struct result r;
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_TEMPFAIL);
    assert_string_equal(r.why, "password file unavailable");
    auth_passwd_recheck(db);
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_TEMPFAIL);
    auth_passwd_recheck(db);
    assert_int_equal(check_sync(f, db, "nobody", "x", &r), AUTH_TEMPFAIL);
    char *log = capture_end(&c, 2);
    assert_int_equal(count_occurrences(log, "unavailable"), 1); /* logged once per outage */
    assert_null(strstr(log, "secret"));
    free(log);
    assert_null(auth_passwd_addresses(db, "alice"));

    /* the file appears: checks work again */
    write_basic(f);
    auth_passwd_recheck(db);
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_OK);

    /* unreadable (a directory in its place) is unavailable too */
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(mkdir(f->path, 0700), 0);
    auth_passwd_recheck(db);
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_TEMPFAIL);
    assert_int_equal(rmdir(f->path), 0);
    auth_passwd_close(db);
}

static void test_reload(void **state)
{
    struct fixture *f = *state;
    char *ha = cheap_hash("secret"), *hb = cheap_hash("newpass");
    char *one = xasprintf("alice:%s\n", ha);
    char *two = xasprintf("alice:%s\nzoe:%s:zoe@example.org\n", ha, hb);
    char *three = xasprintf("zoe:%s\n", hb);
    put_file(f->path, one);
    struct auth_passwd *db = open_db(f);
    struct result r;
    assert_int_equal(check_sync(f, db, "zoe", "newpass", &r), AUTH_FAIL);

    put_file(f->path, two);
    /* within the same second the file is not even stat()ed again */
    assert_int_equal(check_sync(f, db, "zoe", "newpass", &r), AUTH_FAIL);
    struct timespec ts = {1, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(check_sync(f, db, "zoe", "newpass", &r), AUTH_OK);
    assert_int_equal(auth_passwd_count(db), 2);
    assert_string_equal(auth_passwd_addresses(db, "zoe")[0], "zoe@example.org");

    /* an explicit recheck skips the wait */
    put_file(f->path, three);
    auth_passwd_recheck(db);
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_FAIL);
    assert_string_equal(r.why, "no such user");
    assert_int_equal(auth_passwd_count(db), 1);

    /* in-place rewrite (same inode) is noticed too */
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fprintf(fp, "%s", two);
    fclose(fp);
    auth_passwd_recheck(db);
    assert_int_equal(check_sync(f, db, "alice", "secret", &r), AUTH_OK);

    auth_passwd_close(db);
    free(ha);
    free(hb);
    free(one);
    free(two);
    free(three);
}

static void test_many_concurrent(void **state)
{
    struct fixture *f = *state;
    write_basic(f);
    struct auth_passwd *db = open_db(f);
    enum { N = 100 };
    struct result res[N];
    enum auth_result want[N];
    memset(res, 0, sizeof res);
    total_calls = 0;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0:
            auth_passwd_check(db, "alice", "secret", record, &res[i]);
            want[i] = AUTH_OK;
            break;
        case 1:
            auth_passwd_check(db, "bob", "hunter2", record, &res[i]);
            want[i] = AUTH_OK;
            break;
        case 2:
            auth_passwd_check(db, "alice", "hunter2", record, &res[i]);
            want[i] = AUTH_FAIL;
            break;
        default:
            auth_passwd_check(db, "ghost", "secret", record, &res[i]);
            want[i] = AUTH_FAIL;
            break;
        }
    }
    assert_int_equal(total_calls, 0);
    run_until(f->base, &total_calls, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].called, 1);
        assert_int_equal(res[i].r, want[i]);
    }
    auth_passwd_close(db);
}

/* ---------- cancel, bound, close ---------- */

static void test_cancel(void **state)
{
    struct fixture *f = *state;
    write_basic(f);
    struct auth_passwd *db = open_db(f);
    gate_reset();
    auth_passwd_test_set_worker_hook(db, gate_hook, &gate);
    struct result r[5];
    memset(r, 0, sizeof r);
    total_calls = 0;
    struct auth_passwd_req *q[5];
    for (int i = 0; i < 5; i++)
        q[i] = auth_passwd_check(db, "alice", i % 2 ? "wrong" : "secret", record, &r[i]);
    gate_wait_entered(AUTH_PASSWD_THREADS); /* q[0], q[1] are being hashed */
    assert_int_equal(entered_now(), 2);
    auth_passwd_cancel(q[0]); /* while the worker is busy on it */
    auth_passwd_cancel(q[3]); /* still queued */
    gate_open();
    run_until(f->base, &total_calls, 3);
    run_for(f->base, 100);
    assert_int_equal(total_calls, 3);
    assert_int_equal(r[0].called, 0);
    assert_int_equal(r[3].called, 0);
    assert_int_equal(r[1].called, 1);
    assert_int_equal(r[1].r, AUTH_FAIL);
    assert_int_equal(r[2].r, AUTH_OK);
    assert_int_equal(r[4].r, AUTH_OK);

    /* cancel after the worker finished but before the loop delivered it */
    auth_passwd_test_set_worker_hook(db, NULL, NULL);
    struct result late;
    memset(&late, 0, sizeof late);
    struct auth_passwd_req *lq = auth_passwd_check(db, "alice", "secret", record, &late);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    auth_passwd_cancel(lq);
    run_for(f->base, 100);
    assert_int_equal(late.called, 0);

    /* cancel of an immediate result (file unavailable) */
    unlink(f->path);
    auth_passwd_recheck(db);
    lq = auth_passwd_check(db, "alice", "secret", record, &late);
    auth_passwd_cancel(lq);
    run_for(f->base, 50);
    assert_int_equal(late.called, 0);
    auth_passwd_close(db);
}

static void test_queue_bound(void **state)
{
    struct fixture *f = *state;
    write_basic(f);
    struct auth_passwd *db = open_db(f);
    gate_reset();
    auth_passwd_test_set_worker_hook(db, gate_hook, &gate);
    auth_passwd_test_set_max_pending(db, 3);
    struct result r[6];
    memset(r, 0, sizeof r);
    total_calls = 0;
    for (int i = 0; i < 6; i++)
        auth_passwd_check(db, "alice", "secret", record, &r[i]);
    /* the three over the bound fail at once, while the workers are held */
    run_until(f->base, &total_calls, 3);
    for (int i = 3; i < 6; i++) {
        assert_int_equal(r[i].called, 1);
        assert_int_equal(r[i].r, AUTH_TEMPFAIL);
        assert_string_equal(r[i].why, "too many password checks pending");
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].called, 0);
    gate_open();
    run_until(f->base, &total_calls, 6);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].r, AUTH_OK);
    /* room again once they are done */
    struct result again;
    assert_int_equal(check_sync(f, db, "alice", "secret", &again), AUTH_OK);
    auth_passwd_close(db);
}

static void slow_hook(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void test_close_pending(void **state)
{
    struct fixture *f = *state;
    write_basic(f);
    struct auth_passwd *db = open_db(f);
    auth_passwd_test_set_worker_hook(db, slow_hook, NULL);
    struct result r[20];
    memset(r, 0, sizeof r);
    total_calls = 0;
    for (int i = 0; i < 20; i++)
        auth_passwd_check(db, i % 2 ? "alice" : "nobody", "secret", record, &r[i]);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* workers are inside the slow hook now */
    auth_passwd_close(db);
    run_for(f->base, 100);
    assert_int_equal(total_calls, 0);

    auth_passwd_close(NULL);
}

static struct auth_passwd *close_me;

static void close_from_callback(void *arg, enum auth_result res, const char *why)
{
    record(arg, res, why);
    auth_passwd_close(close_me);
    close_me = NULL;
}

static void test_close_in_callback(void **state)
{
    struct fixture *f = *state;
    close_me = open_db(f); /* missing file: every check fails at once */
    struct result r[4];
    memset(r, 0, sizeof r);
    total_calls = 0;
    for (int i = 0; i < 4; i++)
        auth_passwd_check(close_me, "alice", "x", close_from_callback, &r[i]);
    run_until(f->base, &total_calls, 1);
    run_for(f->base, 50);
    assert_int_equal(total_calls, 1);
    assert_int_equal(r[0].r, AUTH_TEMPFAIL);
    assert_null(close_me);
}

static struct auth_passwd *retry_db;
static int retries;

static void retry_callback(void *arg, enum auth_result res, const char *why)
{
    record(arg, res, why);
    if (++retries < 5)
        auth_passwd_check(retry_db, "alice", "x", retry_callback, arg);
}

/* A callback starting a new check that fails at once gets its answer on a
 * later round, not in an endless loop inside one dispatch. */
static void test_check_from_callback(void **state)
{
    struct fixture *f = *state;
    retry_db = open_db(f);
    retries = 0;
    total_calls = 0;
    struct result r;
    memset(&r, 0, sizeof r);
    auth_passwd_check(retry_db, "alice", "x", retry_callback, &r);
    event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(total_calls, 1);
    run_until(f->base, &total_calls, 5);
    auth_passwd_close(retry_db);
}

/* ---------- tern passwd ---------- */

struct stdin_swap {
    int saved;
};

static void stdin_from(struct stdin_swap *s, const char *text)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
    close(p[1]);
    s->saved = dup(0);
    dup2(p[0], 0);
    close(p[0]);
}

static void stdin_restore(struct stdin_swap *s)
{
    dup2(s->saved, 0);
    close(s->saved);
}

/* Runs `tern passwd ARGS` with input on stdin; returns the exit status and
 * (when out is not NULL) what it printed on stdout. */
static int run_cli(struct fixture *f, const char *input, char **out, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 15; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    struct stdin_swap s;
    stdin_from(&s, input);
    struct capture c;
    capture_start(&c, f, 1);
    int rc = cli_passwd_main(f->path, argc, argv);
    char *text = capture_end(&c, 1);
    stdin_restore(&s);
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 && !strstr(de->d_name, ".lock"))
            n++;
    closedir(d);
    return n;
}

static void test_cli_add_list_check(void **state)
{
    struct fixture *f = *state;
    char *out;
    assert_int_equal(run_cli(f, "s3cret\n", NULL, 2, "add", "alice"), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    char *text = tf_read_file(f->path, NULL);
    assert_true(strncmp(text, "alice:$y$", 9) == 0);
    assert_null(strstr(text, "s3cret"));
    assert_int_equal(count_occurrences(text, "\n"), 1);
    free(text);

    assert_int_equal(run_cli(f, "pw two\r\n", NULL, 4, "add", "bob@example.org", "bob@example.org", "@example.net"), 0);
    assert_int_equal(run_cli(f, "", &out, 1, "list"), 0);
    assert_string_equal(out, "alice\nbob@example.org bob@example.org,@example.net\n");
    free(out);

    assert_int_equal(run_cli(f, "s3cret\n", &out, 2, "check", "alice"), 0);
    assert_string_equal(out, "ok\n");
    free(out);
    assert_int_equal(run_cli(f, "s3cret", &out, 2, "check", "alice"), 0); /* no newline at EOF */
    free(out);
    assert_int_equal(run_cli(f, "S3cret\n", &out, 2, "check", "alice"), 1);
    assert_string_equal(out, "fail: password mismatch\n");
    free(out);
    assert_int_equal(run_cli(f, "pw two\n", NULL, 2, "check", "bob@example.org"), 0);
    assert_int_equal(run_cli(f, "s3cret\n", &out, 2, "check", "nobody"), 1);
    assert_string_equal(out, "fail: no such user\n");
    free(out);

    /* smtpd's backend agrees with what the tool wrote */
    struct auth_passwd *db = open_db(f);
    struct result r;
    assert_int_equal(check_sync(f, db, "alice", "s3cret", &r), AUTH_OK);
    assert_int_equal(check_sync(f, db, "bob@example.org", "pw two", &r), AUTH_OK);
    const char *const *a = auth_passwd_addresses(db, "bob@example.org");
    assert_string_equal(a[0], "bob@example.org");
    assert_string_equal(a[1], "@example.net");
    assert_null(a[2]);
    auth_passwd_close(db);
}

static void test_cli_replace_keeps_others(void **state)
{
    struct fixture *f = *state;
    char *hc = cheap_hash("carolpw"), *hb = cheap_hash("oldpw");
    char *orig = xasprintf("# managed by hand\ncarol:%s\n\nbob:%s:bob@x.org,b@x.org\nnot a valid line\n", hc, hb);
    put_file(f->path, orig);
    assert_int_equal(chmod(f->path, 0600), 0);
    struct stat before, after;
    assert_int_equal(stat(f->path, &before), 0);

    /* add of an existing user replaces the password, keeps the addresses */
    assert_int_equal(run_cli(f, "newpw\n", NULL, 2, "add", "bob"), 0);
    assert_int_equal(stat(f->path, &after), 0);
    assert_int_not_equal(before.st_ino, after.st_ino); /* renamed into place */
    assert_int_equal(after.st_mode & 07777, 0600);     /* mode kept */
    assert_int_equal(dir_entries(f->dir), 1);          /* no temp file left */
    char *text = tf_read_file(f->path, NULL);
    char *carol = xasprintf("# managed by hand\ncarol:%s\n\nbob:$y$", hc);
    assert_true(strncmp(text, carol, strlen(carol)) == 0);
    assert_non_null(strstr(text, ":bob@x.org,b@x.org\nnot a valid line\n"));
    assert_null(strstr(text, hb));
    free(carol);
    free(text);
    assert_int_equal(run_cli(f, "oldpw\n", NULL, 2, "check", "bob"), 1);
    assert_int_equal(run_cli(f, "newpw\n", NULL, 2, "check", "bob"), 0);
    assert_int_equal(run_cli(f, "carolpw\n", NULL, 2, "check", "carol"), 0);

    /* given addresses replace the list */
    assert_int_equal(run_cli(f, "newpw2\n", NULL, 3, "add", "bob", "only@x.org"), 0);
    char *out;
    assert_int_equal(run_cli(f, "", &out, 1, "list"), 0);
    assert_string_equal(out, "carol\nbob only@x.org\n");
    free(out);

    free(orig);
    free(hc);
    free(hb);
}

static void test_cli_del(void **state)
{
    struct fixture *f = *state;
    char *ha = cheap_hash("a"), *hb = cheap_hash("b");
    char *orig = xasprintf("alice:%s\n#c\nbob:%s\nalice:%s:dup@x\n", ha, hb, hb);
    put_file(f->path, orig);
    assert_int_equal(run_cli(f, "", NULL, 2, "del", "alice"), 0);
    char *text = tf_read_file(f->path, NULL);
    char *want = xasprintf("#c\nbob:%s\n", hb);
    assert_string_equal(text, want); /* every alice line went */
    free(text);
    free(want);
    assert_int_equal(run_cli(f, "", NULL, 2, "del", "alice"), 1);
    assert_int_equal(run_cli(f, "", NULL, 2, "del", "Bob"), 1);
    assert_int_equal(run_cli(f, "", NULL, 2, "del", "bob"), 0);
    text = tf_read_file(f->path, NULL);
    assert_string_equal(text, "#c\n");
    free(text);
    unlink(f->path);
    assert_int_equal(run_cli(f, "", NULL, 2, "del", "bob"), 1);
    assert_int_equal(access(f->path, F_OK), -1);
    free(orig);
    free(ha);
    free(hb);
}

static void test_cli_errors(void **state)
{
    struct fixture *f = *state;
    char *out;
    assert_int_equal(cli_passwd_main(f->path, 0, NULL), 2);
    assert_int_equal(run_cli(f, "", NULL, 1, "frobnicate"), 2);
    assert_int_equal(run_cli(f, "pw\n", NULL, 1, "add"), 2);
    assert_int_equal(run_cli(f, "", NULL, 1, "del"), 2);
    assert_int_equal(run_cli(f, "", NULL, 3, "del", "a", "b"), 2);
    assert_int_equal(run_cli(f, "", NULL, 2, "list", "x"), 2);
    assert_int_equal(run_cli(f, "pw\n", NULL, 2, "add", "bad name"), 2);
    assert_int_equal(run_cli(f, "pw\n", NULL, 2, "add", "a:b"), 2);
    assert_int_equal(run_cli(f, "pw\n", NULL, 3, "add", "carl", "bad,addr"), 2);
    assert_int_equal(run_cli(f, "", NULL, 2, "add", "carl"), 2);   /* no password */
    assert_int_equal(run_cli(f, "\n", NULL, 2, "add", "carl"), 2); /* empty password */
    char *huge = xmalloc(AUTH_PASSWD_MAX_PASSWORD + 10);
    memset(huge, 'p', AUTH_PASSWD_MAX_PASSWORD + 8);
    strcpy(huge + AUTH_PASSWD_MAX_PASSWORD + 8, "\n");
    assert_int_equal(run_cli(f, huge, NULL, 2, "add", "carl"), 2);
    free(huge);
    assert_int_equal(access(f->path, F_OK), -1); /* nothing was created */
    assert_int_equal(run_cli(f, "pw\n", NULL, 2, "check", "carl"), 2); /* no file */
    assert_int_equal(run_cli(f, "", &out, 1, "list"), 0);             /* no file: no users */
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(run_cli(f, "", NULL, 1, "list"), 2);
    assert_int_equal(run_cli(f, "pw\n", NULL, 2, "add", "carl"), 2);
    assert_int_equal(rmdir(f->path), 0);
}

static void test_cli_write_failures(void **state)
{
    struct fixture *f = *state;
    char *ha = cheap_hash("a");
    char *orig = xasprintf("alice:%s\n", ha);
    put_file(f->path, orig);

    tf_fs_install();
    tf_fs_arm(TF_WRITE, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = ENOSPC});
    int rc = run_cli(f, "pw\n", NULL, 2, "add", "bob");
    tf_fs_uninstall();
    assert_int_equal(rc, 2);
    char *text = tf_read_file(f->path, NULL);
    assert_string_equal(text, orig);
    free(text);
    assert_int_equal(dir_entries(f->dir), 1);

    tf_fs_install();
    tf_fs_arm(TF_RENAME, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = EIO});
    rc = run_cli(f, "", NULL, 2, "del", "alice");
    tf_fs_uninstall();
    assert_int_equal(rc, 2);
    text = tf_read_file(f->path, NULL);
    assert_string_equal(text, orig);
    free(text);
    assert_int_equal(dir_entries(f->dir), 1);
    free(orig);
    free(ha);
}

/* Concurrent runs do not lose each other's users (the lock). */
static void test_cli_concurrent(void **state)
{
    struct fixture *f = *state;
    enum { KIDS = 6 };
    pid_t pids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char user[16];
            snprintf(user, sizeof user, "user%d", i);
            char *argv[] = {"add", user, NULL};
            struct stdin_swap s;
            stdin_from(&s, "pw\n");
            _exit(cli_passwd_main(f->path, 2, argv));
        }
    }
    for (int i = 0; i < KIDS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    char *out;
    assert_int_equal(run_cli(f, "", &out, 1, "list"), 0);
    for (int i = 0; i < KIDS; i++) {
        char want[20];
        snprintf(want, sizeof want, "user%d\n", i);
        assert_non_null(strstr(out, want));
    }
    assert_int_equal(count_occurrences(out, "\n"), KIDS);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_line),
        cmocka_unit_test_setup_teardown(test_parse_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ok_wrong_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_yescrypt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_add_list_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_replace_keeps_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_write_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
