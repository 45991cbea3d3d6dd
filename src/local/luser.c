/* luser: luser_relay's target for an unknown local user (see luser.h). */
#include "local/luser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/list_file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* What an expanded value may hold: an address's bytes, nothing a target
 * list or the queue would read as a command, file, :include: or separator. */
static const char address_bytes[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                    "@.-_+=!#$%&'*?^`{}~";

int luser_relay_target(const char *luser_relay, const char *rcpt, const char *user, const char *delimiters,
                       struct alias_result *out)
{
    memset(out, 0, sizeof *out);
    if (!luser_relay || !*luser_relay)
        return 0;
    char *local = xstrdup(rcpt);
    char *at = strrchr(local, '@');
    struct forward_vars v = {.user = user, .recipient = rcpt, .local = local};
    if (at) {
        *at = '\0';
        v.domain = at + 1;
    }
    char delim[2] = "";
    for (const char *p = local; *p && delimiters && *delimiters; p++) {
        if (strchr(delimiters, *p)) {
            delim[0] = *p;
            v.extension = p + 1;
            v.recipient_delimiter = delim;
            break;
        }
    }
    char *target = command_dir_expand(luser_relay, &v, address_bytes);
    free(local);
    int ok = target && *target && !strchr(" \t,|/:\"\\", target[0]) && strcasecmp(target, rcpt) != 0;
    if (!ok) {
        if (target && *target) {
            char *shown = xstrdup(rcpt);
            str_printable(shown);
            log_warn("luser_relay: not relaying %s to itself or to \"%s\"", shown, target);
            free(shown);
        }
        free(target);
        return 0;
    }
    out->t = xcalloc(1, sizeof *out->t);
    out->t[0].type = ALIAS_ADDRESS;
    out->t[0].value = target;
    out->n = 1;
    return 1;
}
