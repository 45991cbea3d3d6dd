/* capture_rules: the API's failure rules (see capture_rules.h). */
#include "capture/capture_rules.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <fcntl.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capture_json.h"
#include "spool/spool.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

#define RULES_MAX 100
#define RULE_PATTERN_MAX 500
#define RULE_REPLY_MAX 200
#define RULES_JSON "rules.json"

static struct {
    int dirfd;
} cr = {.dirfd = -1};

int capture_rules_init(const char *queue_dir, char **err)
{
    char *path = xasprintf("%s/%s", queue_dir, QDIR_CAPTURE_RULES);
    cr.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (cr.dirfd < 0) {
        *err = xasprintf("cannot open %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    return 0;
}

/* Replaces name in capture-rules/ with data (write, then rename). */
static int replace_file(const char *name, const char *data, size_t len)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".%s.new", name);
    int fd = openat(cr.dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w <= 0) {
            close(fd);
            unlinkat(cr.dirfd, tmp, 0);
            return -1;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0 || renameat(cr.dirfd, tmp, cr.dirfd, name) != 0) {
        unlinkat(cr.dirfd, tmp, 0);
        return -1;
    }
    return 0;
}

/* "CODE X.Y.Z text": a 4xx/5xx code, an enhanced code of the same class,
 * printable text. */
static int reply_ok(const char *r)
{
    size_t len = strlen(r);
    if (len < 11 || len > RULE_REPLY_MAX || (r[0] != '4' && r[0] != '5') || !str_is_digit(r[1]) ||
        !str_is_digit(r[2]) || r[3] != ' ' || r[4] != r[0] || r[5] != '.')
        return 0;
    const char *p = r + 6;
    for (int part = 0; part < 2; part++) {
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 3)
            return 0;
        p += n;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    if (*p != ' ' || p[1] == 0)
        return 0;
    for (const unsigned char *c = (const unsigned char *)r; *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            return 0;
    return 1;
}

/* A PCRE2 pattern that compiles and fits the table's /pattern/ syntax. */
static const char *pattern_problem(const char *pat)
{
    if (!*pat || strlen(pat) > RULE_PATTERN_MAX)
        return "match must be a pattern of 1 to 500 bytes";
    for (const unsigned char *c = (const unsigned char *)pat; *c; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '/')
            return "match may not hold '/' or control characters";
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &offset, NULL);
    if (!re)
        return "match is not a valid PCRE2 pattern";
    pcre2_code_free(re);
    return NULL;
}

static json_t *read_rules(void)
{
    int fd = openat(cr.dirfd, RULES_JSON, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return json_pack("{s:[], s:n}", "recipients", "session_failure_rate");
    json_error_t jerr;
    json_t *j = json_loadfd(fd, 0, &jerr);
    close(fd);
    return j ? j : json_pack("{s:[], s:n}", "recipients", "session_failure_rate");
}

void capture_rules_get(struct evhttp_request *req)
{
    capture_reply_json(req, 200, "OK", read_rules());
}

void capture_rules_put(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    json_t *body = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, 0, &jerr);
    json_t *rcpts = body ? json_object_get(body, "recipients") : NULL;
    json_t *rate = body ? json_object_get(body, "session_failure_rate") : NULL;
    const char *why = NULL;
    if (!json_is_object(body))
        why = "expected a JSON object {\"recipients\": [...], \"session_failure_rate\": N}";
    else if (rcpts && !json_is_array(rcpts))
        why = "recipients must be a list of {\"match\", \"reply\"}";
    else if (rcpts && json_array_size(rcpts) > RULES_MAX)
        why = "at most 100 recipient rules";
    else if (rate && !json_is_null(rate) &&
             (!json_is_integer(rate) || json_integer_value(rate) < 0 || json_integer_value(rate) > 100))
        why = "session_failure_rate must be a whole percentage, 0 to 100, or null";
    struct strbuf table = STRBUF_INIT;
    strbuf_puts(&table, "# written by the capture API (PUT /api/v1/rules)\n");
    size_t i;
    json_t *rule;
    json_array_foreach(rcpts, i, rule) {
        if (why)
            break;
        const char *match = json_string_value(json_object_get(rule, "match"));
        const char *reply = json_string_value(json_object_get(rule, "reply"));
        if (!match || !reply)
            why = "each recipient rule needs \"match\" and \"reply\"";
        else if ((why = pattern_problem(match)) != NULL)
            ;
        else if (!reply_ok(reply))
            why = "reply must be \"CODE X.Y.Z text\" with a 4xx or 5xx code and the same class";
        else
            strbuf_printf(&table, "/%s/ %s\n", match, reply);   /* case-insensitive by default, as in Postfix */
    }
    if (why) {
        strbuf_free(&table);
        json_decref(body);
        capture_reply_error(req, 400, "Bad Request", why);
        return;
    }
    json_t *list = rcpts ? json_incref(rcpts) : json_array();
    json_t *saved = json_pack("{s:o, s:O}", "recipients", list, "session_failure_rate", rate ? rate : json_null());
    char *json = json_dumps(saved, JSON_COMPACT);
    char rate_text[16];
    snprintf(rate_text, sizeof rate_text, "%lld\n", rate && json_is_integer(rate) ? (long long)json_integer_value(rate) : 0LL);
    int rc = replace_file(QFILE_CAPTURE_RECIPIENT_RULES, strbuf_str(&table), table.len);
    if (rc == 0 && rate && json_is_integer(rate))
        rc = replace_file(QFILE_CAPTURE_SESSION_RULE, rate_text, strlen(rate_text));
    else if (rc == 0 && unlinkat(cr.dirfd, QFILE_CAPTURE_SESSION_RULE, 0) != 0 && errno != ENOENT)
        rc = -1;
    if (rc == 0)
        rc = replace_file(RULES_JSON, json, strlen(json));
    free(json);
    strbuf_free(&table);
    json_decref(body);
    if (rc != 0) {
        log_warn("capture: cannot write the failure rules in %s/: %s", QDIR_CAPTURE_RULES, strerror(errno));
        json_decref(saved);
        capture_reply_error(req, 500, "Internal Server Error", "cannot write the rules");
        return;
    }
    log_info("capture: failure rules set: %zu recipient rules, session failure rate %s", json_array_size(rcpts),
             rate && json_is_integer(rate) ? rate_text : "from main.cf\n");
    capture_reply_json(req, 200, "OK", saved);
}

void capture_rules_delete(struct evhttp_request *req)
{
    static const char empty[] = "# no rules (DELETE /api/v1/rules)\n";
    int rc = replace_file(QFILE_CAPTURE_RECIPIENT_RULES, empty, sizeof empty - 1);
    if (unlinkat(cr.dirfd, QFILE_CAPTURE_SESSION_RULE, 0) != 0 && errno != ENOENT)
        rc = -1;
    if (unlinkat(cr.dirfd, RULES_JSON, 0) != 0 && errno != ENOENT)
        rc = -1;
    if (rc != 0) {
        capture_reply_error(req, 500, "Internal Server Error", "cannot remove the rules");
        return;
    }
    log_info("capture: failure rules removed");
    capture_reply_json(req, 200, "OK", read_rules());
}

void capture_rules_shutdown(void)
{
    if (cr.dirfd >= 0)
        close(cr.dirfd);
    cr.dirfd = -1;
}
