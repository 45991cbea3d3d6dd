/* smtpd_capture: capture mode's failure rules (see smtpd_capture.h). */
#include "smtpd/smtpd_capture.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "maps/map.h"
#include "spool/spool.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

static struct {
    int on;
    struct map *rules;
    char *sessions_path;
    long conf_rate;              /* capture_session_failure_rate */
    unsigned long sessions;      /* sessions seen since start */
} sc;

void smtpd_capture_init(struct conf *c, const char *queue_dir)
{
    sc.on = 1;
    sc.conf_rate = (long)conf_int(c, "capture_session_failure_rate");
    /* an empty rules file until the API writes one: a missing table would
     * be a lookup failure, logged */
    char *path = xasprintf("%s/%s/%s", queue_dir, QDIR_CAPTURE_RULES, QFILE_CAPTURE_RECIPIENT_RULES);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    free(path);
    char *spec = xasprintf("pcre:%s/%s/%s", queue_dir, QDIR_CAPTURE_RULES, QFILE_CAPTURE_RECIPIENT_RULES);
    char *err = NULL;
    sc.rules = map_open(spec, 0, &err);
    if (!sc.rules) {
        log_warn("capture: %s: %s; no recipient rules", spec, err ? err : "cannot open");
        free(err);
    }
    free(spec);
    sc.sessions_path = xasprintf("%s/%s/%s", queue_dir, QDIR_CAPTURE_RULES, QFILE_CAPTURE_SESSION_RULE);
}

char *smtpd_capture_rcpt_reply(const char *addr)
{
    char *value = NULL;
    if (!sc.rules || map_lookup(sc.rules, addr, &value) != 1)
        return NULL;   /* no file (no rules yet) is no rule */
    return value;
}

/* The API's rate when it set one (a percentage in the sessions file),
 * else main.cf's. */
static long current_rate(void)
{
    int fd = open(sc.sessions_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sc.conf_rate;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return sc.conf_rate;
    buf[n] = 0;
    char *end;
    long rate = strtol(buf, &end, 10);
    return end != buf && rate >= 0 && rate <= 100 ? rate : sc.conf_rate;
}

int smtpd_capture_session_fails(void)
{
    if (!sc.on)
        return 0;
    long rate = current_rate();
    unsigned long k = ++sc.sessions;
    /* session k fails when it carries the share past a whole number:
     * 25% fails the 4th, 8th, ...; 100% every one */
    return rate > 0 && (k * (unsigned long)rate) / 100 > ((k - 1) * (unsigned long)rate) / 100;
}

void smtpd_capture_shutdown(void)
{
    if (sc.rules)
        map_close(sc.rules);
    free(sc.sessions_path);
    memset(&sc, 0, sizeof sc);
}
