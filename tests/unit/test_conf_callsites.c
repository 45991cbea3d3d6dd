/* Unit test: every parameter name written in src/ is a row of the table,
 * asked for with a getter of its type, and every row is read by some code.
 *
 * A getter asked for a name that is not in the table, or of the wrong type,
 * panics at run time (conf.h); this test finds such a typo before then. It
 * reads the sources (tests run from the repository root), finds every call
 * of a getter, of a function that hands its argument on to one, and of the
 * other functions taking a parameter name, and checks the names written in
 * them. Comments and string contents are masked first, so that a call in a
 * comment or a string is not one, and arguments are split on the commas of
 * the call itself, so that calls split over lines are read whole.
 *
 * A call whose name is not written out (a variable) cannot be checked; each
 * must be listed in indirect_calls, and a row read only through one must be
 * listed in read_indirectly, each saying where. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/conf_params.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* ---- what counts as a call site ---- */

#define ANY_TYPE (-1)

struct getter {
    const char *fn;
    int type;     /* the row's type the function needs, or ANY_TYPE */
    int name_arg; /* which argument (from 0) is the parameter name */
    int reads;    /* whether a call reads the row's value */
};

static const struct getter getters[] = {
    /* conf.h's typed getters; conf_str takes a row of any type */
    {"conf_str", ANY_TYPE, 1, 1},
    {"conf_int", CONF_INT, 1, 1},
    {"conf_bool", CONF_BOOL, 1, 1},
    {"conf_time", CONF_TIME, 1, 1},
    {"conf_list", CONF_LIST, 1, 1},
    /* functions of src/ that pass their name argument on to a getter */
    {"opt_time", CONF_TIME, 1, 1},      /* src/qmgr/qmgr_relay.c: conf_time(c, name) */
    {"tls_client_ctx", ANY_TYPE, 1, 1}, /* src/tls/tls.c: conf_str(c, protocols_param) */
    {"domain_list_open", CONF_LIST, 2, 1}, /* src/maps/resolver.c: conf_list(c, param) */
    /* they take a name but read no value: the name must still be a row */
    {"conf_raw", ANY_TYPE, 1, 0},
    {"conf_is_set", ANY_TYPE, 1, 0},
    {"conf_origin", ANY_TYPE, 1, 0},
    {"conf_set", ANY_TYPE, 1, 0},
};

/* Calls whose name argument is an expression, not written-out names. */
struct indirect_call {
    const char *file, *fn, *expr;
    size_t seen;
};

static struct indirect_call indirect_calls[] = {
    /* the wrappers of getters above: their callers are checked instead */
    {"src/qmgr/qmgr_relay.c", "conf_time", "name", 0},
    {"src/tls/tls.c", "conf_str", "protocols_param", 0},
    {"src/maps/resolver.c", "conf_list", "param", 0},
    /* server_ctx_base: smtpd_tls_mandatory_protocols or smtpd_tls_protocols
     * by the listener's security level (see read_indirectly) */
    {"src/tls/tls.c", "conf_str", "param", 0},
    /* `tern config NAME`: any name the user types, looked up in the table
     * before conf_str is asked */
    {"src/cli/cli_config.c", "conf_raw", "argv[i]", 0},
    {"src/cli/cli_config.c", "conf_str", "argv[i]", 0},
    /* master.cf -o overrides, any name the user writes */
    {"src/daemon/listeners.c", "conf_set", "s->overrides[k].name", 0},
    {"src/daemon/master.c", "conf_set", "s->overrides[j].name", 0},
};

/* Rows no written-out name reads, each with where it is read. */
static const char *const read_indirectly[] = {
    /* src/tls/tls.c server_ctx_base, through `param`: the protocols of a
     * listener that requires TLS (smtpd_tls_security_level = encrypt or
     * smtpd_tls_wrappermode = yes) or offers it */
    "smtpd_tls_mandatory_protocols",
    "smtpd_tls_protocols",
};

/* Fewer sites than this means the scan itself is broken (today: about 130
 * written-out names in about 15 files). */
#define SITES_MIN 100
#define FILES_MIN 10

/* ---- scanning one source text ---- */

struct site {
    char *file;
    int line;
    const struct getter *g;
    char *names[2]; /* written-out names: one, or two for cond ? "a" : "b" */
    size_t nnames;
    char *expr; /* else the argument, blanks squeezed */
};

struct scan {
    struct site *sites;
    size_t n, cap;
    size_t files;
};

static int is_ident(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static int is_blank(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* A copy of text with comments blanked and the contents of string and
 * character literals replaced by '_' (quotes kept), newlines kept, so that
 * offsets and line numbers are the same as in text. */
static char *mask_source(const char *text, size_t len)
{
    char *m = xmalloc(len + 1);
    memcpy(m, text, len + 1);
    size_t i = 0;
    while (i < len) {
        if (text[i] == '/' && i + 1 < len && text[i + 1] == '*') {
            size_t end = i + 2;
            while (end + 1 < len && !(text[end] == '*' && text[end + 1] == '/'))
                end++;
            end = end + 2 <= len ? end + 2 : len;
            for (; i < end; i++)
                if (m[i] != '\n')
                    m[i] = ' ';
        } else if (text[i] == '/' && i + 1 < len && text[i + 1] == '/') {
            for (; i < len && text[i] != '\n'; i++)
                m[i] = ' ';
        } else if (text[i] == '"' || text[i] == '\'') {
            char quote = text[i++];
            while (i < len && text[i] != quote && text[i] != '\n') {
                if (text[i] == '\\' && i + 1 < len)
                    m[i++] = '_';
                m[i++] = '_';
            }
            i++;
        } else {
            i++;
        }
    }
    return m;
}

/* Names written as one or more adjacent literals ("a" "b" is "ab") in
 * [b, e): NULL when the span is anything else. m is the masked text. */
static char *literal_name(const char *text, const char *m, size_t b, size_t e)
{
    struct strbuf sb = STRBUF_INIT;
    int any = 0;
    size_t i = b;
    for (;;) {
        while (i < e && is_blank((unsigned char)m[i]))
            i++;
        if (i >= e)
            break;
        if (m[i] != '"')
            goto not_literal;
        size_t close = i + 1;
        while (close < e && m[close] != '"')
            close++;
        if (close >= e)
            goto not_literal;
        strbuf_append(&sb, text + i + 1, close - i - 1);
        any = 1;
        i = close + 1;
    }
    if (any)
        return strbuf_detach(&sb);
not_literal:
    strbuf_free(&sb);
    return NULL;
}

static char *squeezed(const char *m, size_t b, size_t e)
{
    struct strbuf sb = STRBUF_INIT;
    int space = 0;
    for (size_t i = b; i < e; i++) {
        if (is_blank((unsigned char)m[i])) {
            space = sb.len > 0;
            continue;
        }
        if (space)
            strbuf_putc(&sb, ' ');
        space = 0;
        strbuf_putc(&sb, m[i]);
    }
    return strbuf_detach(&sb);
}

/* Fills s from the name argument [b, e): written-out names, or the
 * expression. */
static void read_name_arg(struct site *s, const char *text, const char *m, size_t b, size_t e)
{
    char *name = literal_name(text, m, b, e);
    if (name) {
        s->names[s->nnames++] = name;
        return;
    }
    /* cond ? "a" : "b", the '?' and ':' outside brackets */
    size_t q = 0, colon = 0;
    int depth = 0;
    for (size_t i = b; i < e; i++) {
        if (m[i] == '(' || m[i] == '[')
            depth++;
        else if (m[i] == ')' || m[i] == ']')
            depth--;
        else if (depth == 0 && m[i] == '?' && !q)
            q = i;
        else if (depth == 0 && m[i] == ':' && q && !colon)
            colon = i;
    }
    if (q && colon) {
        char *yes = literal_name(text, m, q + 1, colon);
        char *no = literal_name(text, m, colon + 1, e);
        if (yes && no) {
            s->names[s->nnames++] = yes;
            s->names[s->nnames++] = no;
            return;
        }
        free(yes);
        free(no);
    }
    s->expr = squeezed(m, b, e);
}

/* Adds a site for every call of a function of getters[] in text. */
static void scan_source(struct scan *sc, const char *file, const char *text)
{
    size_t len = strlen(text);
    char *m = mask_source(text, len);
    sc->files++;
    for (size_t g = 0; g < sizeof getters / sizeof getters[0]; g++) {
        const char *fn = getters[g].fn;
        size_t fnlen = strlen(fn);
        for (const char *hit = m; (hit = strstr(hit, fn)) != NULL; hit += fnlen) {
            size_t at = (size_t)(hit - m);
            if ((at > 0 && is_ident((unsigned char)m[at - 1])) || is_ident((unsigned char)m[at + fnlen]))
                continue; /* part of a longer name: conf_list_free, my_conf_str */
            size_t i = at + fnlen;
            while (i < len && is_blank((unsigned char)m[i]))
                i++;
            if (i >= len || m[i] != '(')
                continue; /* named, not called */
            /* the arguments: split on commas at depth 1 */
            size_t arg_b[8], arg_e[8], nargs = 0;
            int depth = 0;
            size_t start = i + 1;
            for (; i < len; i++) {
                char ch = m[i];
                if (ch == '(' || ch == '[' || ch == '{') {
                    depth++;
                } else if (ch == ')' || ch == ']' || ch == '}') {
                    if (--depth == 0)
                        break;
                } else if (ch == ',' && depth == 1 && nargs < 7) {
                    arg_b[nargs] = start;
                    arg_e[nargs++] = i;
                    start = i + 1;
                }
            }
            if (i >= len)
                fail_msg("%s: unbalanced call of %s", file, fn);
            arg_b[nargs] = start;
            arg_e[nargs++] = i;
            /* a declaration or definition: (struct conf *c, const char *name) */
            char *first = squeezed(m, arg_b[0], arg_e[0]);
            int declaration = strncmp(first, "struct ", 7) == 0 || strncmp(first, "const ", 6) == 0;
            free(first);
            if (declaration)
                continue;
            sc->sites = xgrow(sc->sites, &sc->cap, sc->n + 1, sizeof *sc->sites);
            struct site *s = &sc->sites[sc->n++];
            memset(s, 0, sizeof *s);
            s->file = xstrdup(file);
            s->g = &getters[g];
            s->line = 1;
            for (size_t k = 0; k < at; k++)
                s->line += m[k] == '\n';
            if ((size_t)getters[g].name_arg >= nargs)
                s->expr = xstrdup("(missing)");
            else
                read_name_arg(s, text, m, arg_b[getters[g].name_arg], arg_e[getters[g].name_arg]);
        }
    }
    free(m);
}

static void scan_free(struct scan *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        free(sc->sites[i].file);
        for (size_t k = 0; k < sc->sites[i].nnames; k++)
            free(sc->sites[i].names[k]);
        free(sc->sites[i].expr);
    }
    free(sc->sites);
    memset(sc, 0, sizeof *sc);
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot read %s", path);
    struct strbuf sb = STRBUF_INIT;
    char buf[8192];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append(&sb, buf, got);
    fclose(f);
    return strbuf_detach(&sb);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Every .c and .h below dir. src/conf/ is left out: it is the table's own
 * module and reaches rows through the table, never by a written name. */
static void scan_tree(struct scan *sc, const char *dir)
{
    if (strcmp(dir, "src/conf") == 0)
        return;
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s (the unit tests run from the repository root)", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            scan_tree(sc, path);
        } else if (ends_with(path, ".c") || ends_with(path, ".h")) {
            char *text = read_whole(path);
            scan_source(sc, path, text);
            free(text);
        }
        free(path);
    }
    closedir(d);
}

/* ---- checking the sites against the table ---- */

static int allowed_indirectly(const char *name)
{
    for (size_t i = 0; i < sizeof read_indirectly / sizeof read_indirectly[0]; i++)
        if (strcmp(read_indirectly[i], name) == 0)
            return 1;
    return 0;
}

/* Marks as read the rows p's default refers to ($name, ${name...}, $(name...)),
 * and what their defaults refer to. */
static void mark_default_refs(const struct conf_param *p, unsigned char *read)
{
    for (const char *d = strchr(p->def, '$'); d; d = strchr(d + 1, '$')) {
        const char *n = d + 1;
        if (*n == '{' || *n == '(')
            n++;
        size_t len = 0;
        while (is_ident((unsigned char)n[len]))
            len++;
        const struct conf_param *q = conf_param_find_len(n, len);
        if (q && !read[q - conf_params]) {
            read[q - conf_params] = 1;
            mark_default_refs(q, read);
        }
    }
}

/* One line per problem in out; read[] (one per row) says which rows a site
 * reads, directly (1) or through a default (1 too). */
static void check_sites(struct scan *sc, unsigned char *read, struct strbuf *out)
{
    for (size_t i = 0; i < sizeof indirect_calls / sizeof indirect_calls[0]; i++)
        indirect_calls[i].seen = 0;
    for (size_t i = 0; i < sc->n; i++) {
        const struct site *s = &sc->sites[i];
        if (s->expr) {
            struct indirect_call *ic = NULL;
            for (size_t k = 0; k < sizeof indirect_calls / sizeof indirect_calls[0] && !ic; k++)
                if (strcmp(indirect_calls[k].file, s->file) == 0 && strcmp(indirect_calls[k].fn, s->g->fn) == 0 &&
                    strcmp(indirect_calls[k].expr, s->expr) == 0)
                    ic = &indirect_calls[k];
            if (ic)
                ic->seen++;
            else
                strbuf_printf(out,
                              "%s:%d: %s(..., %s): the name is not written out; list the call in "
                              "indirect_calls (and rows it alone reads in read_indirectly)\n",
                              s->file, s->line, s->g->fn, s->expr);
            continue;
        }
        for (size_t k = 0; k < s->nnames; k++) {
            const char *name = s->names[k];
            const struct conf_param *p = conf_param_find(name);
            if (!p) {
                strbuf_printf(out, "%s:%d: %s(..., \"%s\"): no such parameter in the table%s\n", s->file,
                              s->line, s->g->fn, name,
                              conf_ignored_find(name) ? " (it is a Postfix parameter tern ignores)" : "");
                continue;
            }
            if (s->g->type != ANY_TYPE && p->type != (enum conf_type)s->g->type) {
                strbuf_printf(out, "%s:%d: %s(..., \"%s\"): %s has type %s\n", s->file, s->line, s->g->fn, name, name,
                              conf_type_name(p->type));
                continue;
            }
            if (s->g->reads && !read[p - conf_params]) {
                read[p - conf_params] = 1;
                mark_default_refs(p, read);
            }
        }
    }
    for (size_t i = 0; i < sizeof indirect_calls / sizeof indirect_calls[0]; i++)
        if (!indirect_calls[i].seen)
            strbuf_printf(out, "indirect_calls: %s has no call %s(..., %s) any more\n", indirect_calls[i].file,
                          indirect_calls[i].fn, indirect_calls[i].expr);
}

static void check_rows_read(const unsigned char *read, struct strbuf *out)
{
    for (size_t i = 0; i < sizeof read_indirectly / sizeof read_indirectly[0]; i++) {
        const struct conf_param *p = conf_param_find(read_indirectly[i]);
        if (!p)
            strbuf_printf(out, "read_indirectly: %s is not a row\n", read_indirectly[i]);
        else if (read[p - conf_params])
            strbuf_printf(out, "read_indirectly: %s is read by a written-out name; take it off the list\n",
                          p->name);
    }
    for (size_t i = 0; i < conf_params_count; i++)
        if (!read[i] && !allowed_indirectly(conf_params[i].name))
            strbuf_printf(out,
                          "row %s is read by no code: read it, or take it out of the table (to "
                          "conf_ignored if Postfix configurations set it)\n",
                          conf_params[i].name);
}

/* ---- tests ---- */

static const struct site *find_site(const struct scan *sc, const char *fn, const char *name)
{
    for (size_t i = 0; i < sc->n; i++)
        for (size_t k = 0; k < sc->sites[i].nnames; k++)
            if (strcmp(sc->sites[i].g->fn, fn) == 0 && strcmp(sc->sites[i].names[k], name) == 0)
                return &sc->sites[i];
    return NULL;
}

/* The scanner on text made to trip it. */
static void test_scanner(void **state)
{
    (void)state;
    struct scan sc = {0};
    scan_source(&sc, "fake.c",
                "/* conf_int(c, \"in_a_comment\") */\n"                     /* 1 */
                "long t = conf_time(c,\n"                                   /* 2 */
                "                   \"smtpd_timeout\"); // conf_str(c, \"x\")\n"
                "const char *s = \"conf_str(c, \\\"in_a_string\\\")\";\n"   /* 4 */
                "const char *d = conf_str(c, dovecot ? \"queue_directory\"\n"
                "                                    : \"config_directory\");\n"
                "x = my_conf_str(c, \"not_a_getter\"); conf_list_free(&l);\n" /* 7 */
                "y = conf_int (c, \"smtpd_\" \"recipient_limit\");\n"       /* 8 */
                "z = conf_str(c, f(a, \"b\"), g[1]);\n"                     /* 9 */
                "const char *conf_str(struct conf *c, const char *name);\n" /* 10 */
                "w = conf_bool(c, ')' == k ? \"smtputf8_enable\" : \"disable_vrfy_command\");\n"
                "int (*fp)(void) = conf_bool;\n");                          /* 12 */
    assert_int_equal(sc.n, 5);
    const struct site *s = find_site(&sc, "conf_time", "smtpd_timeout");
    assert_non_null(s);
    assert_int_equal(s->line, 2);
    s = find_site(&sc, "conf_str", "queue_directory");
    assert_non_null(s);
    assert_int_equal(s->nnames, 2);
    assert_string_equal(s->names[1], "config_directory");
    assert_int_equal(s->line, 5);
    s = find_site(&sc, "conf_int", "smtpd_recipient_limit");
    assert_non_null(s);
    assert_int_equal(s->line, 8);
    s = find_site(&sc, "conf_bool", "disable_vrfy_command");
    assert_non_null(s);
    assert_int_equal(s->line, 11);
    size_t exprs = 0;
    for (size_t i = 0; i < sc.n; i++)
        if (sc.sites[i].expr) {
            exprs++;
            assert_string_equal(sc.sites[i].expr, "f(a, \"_\")");
            assert_int_equal(sc.sites[i].line, 9);
        }
    assert_int_equal(exprs, 1);
    scan_free(&sc);
}

/* A typo, a wrong getter, a Postfix parameter tern ignores and an unlisted
 * indirect call are each reported with file and line. */
static void test_checker_reports(void **state)
{
    (void)state;
    struct scan sc = {0};
    scan_source(&sc, "bad.c",
                "a = conf_int(c, \"smtpd_recipent_limit\");\n"
                "b = conf_int(c, \"smtpd_timeout\");\n"
                "c = conf_list(c, \"myorigin\");\n"
                "d = conf_str(c, \"smtpd_tls_loglevel\");\n"
                "e = conf_str(c, pick);\n"
                "f = conf_str(c, \"myorigin\");\n"
                "g = opt_time(c, \"smtp_tcp_port\");\n");
    unsigned char *read = xcalloc(conf_params_count, 1);
    struct strbuf out = STRBUF_INIT;
    check_sites(&sc, read, &out);
    const char *o = strbuf_str(&out);
    assert_non_null(strstr(o, "bad.c:1: conf_int(..., \"smtpd_recipent_limit\"): no such parameter in the table\n"));
    assert_non_null(strstr(o, "bad.c:2: conf_int(..., \"smtpd_timeout\"): smtpd_timeout has type time\n"));
    assert_non_null(strstr(o, "bad.c:3: conf_list(..., \"myorigin\"): myorigin has type string\n"));
    assert_non_null(strstr(o, "bad.c:4: conf_str(..., \"smtpd_tls_loglevel\"): no such parameter in the table "
                              "(it is a Postfix parameter tern ignores)\n"));
    assert_non_null(strstr(o, "bad.c:5: conf_str(..., pick): the name is not written out"));
    assert_non_null(strstr(o, "bad.c:7: opt_time(..., \"smtp_tcp_port\"): smtp_tcp_port has type integer\n"));
    /* the listed indirect calls are not in bad.c */
    assert_non_null(strstr(o, "indirect_calls: src/tls/tls.c has no call conf_str(..., param) any more\n"));
    /* myorigin was read, and through its default $myhostname too */
    assert_true(read[conf_param_find("myorigin") - conf_params]);
    assert_true(read[conf_param_find("myhostname") - conf_params]);
    assert_false(read[conf_param_find("smtpd_timeout") - conf_params]);
    strbuf_reset(&out);
    check_rows_read(read, &out);
    assert_non_null(strstr(strbuf_str(&out), "row smtpd_timeout is read by no code"));
    assert_null(strstr(strbuf_str(&out), "row myhostname "));
    assert_null(strstr(strbuf_str(&out), "row smtpd_tls_protocols ")); /* read_indirectly */
    strbuf_free(&out);
    free(read);
    scan_free(&sc);
}

/* The real thing: src/ against the table. */
static void test_src_call_sites(void **state)
{
    (void)state;
    struct scan sc = {0};
    scan_tree(&sc, "src");
    size_t written = 0, files = 0;
    for (size_t i = 0; i < sc.n; i++) {
        if (!sc.sites[i].nnames)
            continue;
        written++;
        int first_in_file = 1;
        for (size_t k = 0; k < i && first_in_file; k++)
            first_in_file = !sc.sites[k].nnames || strcmp(sc.sites[k].file, sc.sites[i].file) != 0;
        files += first_in_file;
    }
    if (written < SITES_MIN || files < FILES_MIN)
        fail_msg("found %zu written-out names in %zu files (of %zu scanned); expected at least %d in %d: "
                 "is the scan broken?",
                 written, files, sc.files, SITES_MIN, FILES_MIN);
    unsigned char *read = xcalloc(conf_params_count, 1);
    struct strbuf out = STRBUF_INIT;
    check_sites(&sc, read, &out);
    check_rows_read(read, &out);
    if (out.len)
        fail_msg("parameter names in src/ and the table disagree:\n%s", strbuf_str(&out));
    strbuf_free(&out);
    free(read);
    scan_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scanner),
        cmocka_unit_test(test_checker_reports),
        cmocka_unit_test(test_src_call_sites),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
