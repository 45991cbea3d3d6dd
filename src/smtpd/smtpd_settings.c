/* smtpd_settings: one listener's settings (struct smtpd_settings, see
 * smtpd_session.h), read from its configuration once when smtpd starts or
 * reloads: limits, restrictions, tables, TLS, mail authentication. Shared
 * read-only by every session of that listener. */
#include "smtpd/smtpd_session.h"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "conf/conf.h"
#include "msg/cleanup.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtpd/smtpd_session_internal.h"
#include "smtpd/smtpd_anvil.h"
#include "smtpd/smtpd_mailauth.h"
#include "smtpd/smtpd_policy.h"
#include "maps/map.h"
#include "tls/tls.h"
#include "util/list.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* Postfix's mynetworks_style when mynetworks itself is not set: "host"
 * the interfaces' own addresses, "subnet" their networks, "class" (IPv4)
 * the whole class A/B/C network of each. NULL if none could be read. */
static char *mynetworks_from_style(const char *style)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return NULL;
    struct strbuf sb = STRBUF_INIT;
    for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
        if (!p->ifa_addr || !p->ifa_netmask)
            continue;
        char buf[INET6_ADDRSTRLEN];
        if (p->ifa_addr->sa_family == AF_INET) {
            uint32_t a = ntohl(((struct sockaddr_in *)p->ifa_addr)->sin_addr.s_addr);
            uint32_t m = ntohl(((struct sockaddr_in *)p->ifa_netmask)->sin_addr.s_addr);
            int bits = 32;
            if (strcmp(style, "subnet") == 0) {
                bits = __builtin_popcount(m);
            } else if (strcmp(style, "class") == 0) {
                bits = a >> 31 == 0 ? 8 : a >> 30 == 2 ? 16 : 24;
                m = bits ? 0xffffffffu << (32 - bits) : 0;
            }
            if (strcmp(style, "host") != 0)
                a &= m;
            struct in_addr ia = {htonl(a)};
            inet_ntop(AF_INET, &ia, buf, sizeof buf);
            strbuf_printf(&sb, "%s%s/%d", sb.len ? " " : "", buf, bits);
        } else if (p->ifa_addr->sa_family == AF_INET6) {
            struct in6_addr a6 = ((struct sockaddr_in6 *)p->ifa_addr)->sin6_addr;
            const struct in6_addr *m6 = &((struct sockaddr_in6 *)p->ifa_netmask)->sin6_addr;
            int bits = 128;
            if (strcmp(style, "host") != 0) {
                bits = 0;
                for (int i = 0; i < 16; i++) {
                    bits += __builtin_popcount(m6->s6_addr[i]);
                    a6.s6_addr[i] &= m6->s6_addr[i];
                }
            }
            inet_ntop(AF_INET6, &a6, buf, sizeof buf);
            strbuf_printf(&sb, "%s[%s]/%d", sb.len ? " " : "", buf, bits);
        }
    }
    freeifaddrs(ifa);
    return sb.len ? strbuf_detach(&sb) : (strbuf_free(&sb), NULL);
}

void smtpd_settings_load(struct smtpd_settings *s, struct conf *c, const char *service,
                         struct ssl_ctx_st *tls_ctx)
{
    memset(s, 0, sizeof *s);
    s->tls_ctx = tls_ctx;
    s->tls_level = tls_ctx ? (int)tls_server_level(c) : TLS_LEVEL_NONE;
    s->tls_wrapper = tls_ctx && conf_bool(c, "smtpd_tls_wrappermode");
    s->tls_auth_only = conf_bool(c, "smtpd_tls_auth_only");
    s->tls_received = conf_bool(c, "smtpd_tls_received_header");
    s->sasl_enabled = conf_bool(c, "smtpd_sasl_auth_enable");
    s->sasl_dovecot = strcmp(conf_str(c, "smtpd_sasl_type"), "dovecot") == 0;
    const char *path = conf_str(c, "smtpd_sasl_path");
    if (!*path)
        path = s->sasl_dovecot ? "private/auth" : "passwd";
    /* as in Postfix, Dovecot's socket is relative to the queue directory;
     * tern's password file to the configuration directory */
    s->sasl_path = path[0] == '/' ? xstrdup(path)
                                  : xasprintf("%s/%s", conf_str(c, s->sasl_dovecot ? "queue_directory"
                                                                                    : "config_directory"),
                                              path);
    s->sasl_failure_limit = (long)conf_int(c, "smtpd_sasl_failure_limit");
    s->sasl_lockout_time = (long)conf_time(c, "smtpd_sasl_lockout_time");
    s->sasl_failure_delay = (long)conf_time(c, "smtpd_sasl_failure_delay");
    /* never long enough to outlast the session's own timeout */
    if (s->timeout > 1 && s->sasl_failure_delay >= s->timeout)
        s->sasl_failure_delay = s->timeout / 2;
    s->conn_count_limit = (long)conf_int(c, "smtpd_client_connection_count_limit");
    s->conn_rate_limit = (long)conf_int(c, "smtpd_client_connection_rate_limit");
    s->msg_rate_limit = (long)conf_int(c, "smtpd_client_message_rate_limit");
    s->rcpt_rate_limit = (long)conf_int(c, "smtpd_client_recipient_rate_limit");
    s->auth_rate_limit = (long)conf_int(c, "smtpd_client_auth_rate_limit");
    s->tls_rate_limit = (long)conf_int(c, "smtpd_client_new_tls_session_rate_limit");
    s->rate_unit = (long)conf_time(c, "anvil_rate_time_unit");
    char *perr = NULL;
    s->policy = smtpd_policy_from_conf(c, &perr);
    if (!s->policy) {
        log_error("service %s: %s; mail is refused with 451 until it is fixed", service, perr ? perr : "bad restrictions");
        free(perr);
        s->policy_broken = 1;
    }
    s->dns_resolvers = xstrdup(conf_str(c, "dns_resolvers"));
    s->mail_authentication = smtpd_mailauth_enabled(conf_str(c, "smtpd_mail_authentication"), service,
                                                    conf_bool(c, "smtpd_tls_wrappermode"));
    s->authserv_id = xstrdup(conf_str(c, "authserv_id"));
    s->policy_checks_spf = s->policy && smtpd_policy_checks_spf(s->policy);
    s->policy_end_of_data = s->policy && smtpd_policy_has_end_of_data(s->policy);
    s->dmarc_quarantine_hold = strcmp(conf_str(c, "dmarc_quarantine_action"), "hold") == 0;
    s->dmarc_reports = *conf_str(c, "dmarc_report_address") != '\0';
    s->reject_unlisted_recipient = conf_bool(c, "smtpd_reject_unlisted_recipient");
    s->reject_unlisted_sender = conf_bool(c, "smtpd_reject_unlisted_sender");
    s->unknown_local_code = (int)conf_int(c, "unknown_local_recipient_reject_code");
    s->unknown_virtual_alias_code = (int)conf_int(c, "unknown_virtual_alias_reject_code");
    s->unknown_virtual_mailbox_code = (int)conf_int(c, "unknown_virtual_mailbox_reject_code");
    s->unknown_relay_code = (int)conf_int(c, "unknown_relay_recipient_reject_code");
    s->capture_all = strcmp(conf_str(c, "capture"), "yes") == 0;
    s->capture_on = strcmp(conf_str(c, "capture"), "no") != 0;
    s->capture_any_login = s->capture_on && !conf_bool(c, "capture_require_auth");
    /* the journal copies a queue file into its record: no file needed; in
     * capture mode every commit stays a file */
    s->content_in_memory = strcmp(conf_str(c, "queue_sync_method"), "journal") == 0 && !s->capture_on;
    const char *slm = conf_str(c, "smtpd_sender_login_maps");
    if (*slm) {
        char *merr = NULL;
        s->sender_login_maps = map_list_open(slm, 0, &merr);
        if (!s->sender_login_maps) {
            log_error("smtpd_sender_login_maps: %s", merr ? merr : "cannot open");
            free(merr);
            s->policy_broken = 1;
        }
    }
    char *bad_ex = NULL;
    if (cidr_list_parse(&s->limit_exceptions, conf_str(c, "smtpd_client_event_limit_exceptions"), &bad_ex) > 0) {
        log_warn("smtpd_client_event_limit_exceptions: ignoring malformed entry \"%s\"", bad_ex);
        free(bad_ex);
    }
    s->service = xstrdup(service);
    s->myhostname = xstrdup(conf_str(c, "myhostname"));
    s->myorigin = xstrdup(conf_str(c, "myorigin"));
    s->banner = xstrdup(conf_str(c, "smtpd_banner"));
    s->mail_name = xstrdup(conf_str(c, "mail_name"));
    long long lim = conf_int(c, "message_size_limit");
    s->message_size_limit = lim > 0 ? (uint64_t)lim : 0;
    s->memory_limit = (uint64_t)conf_int(c, "smtpd_memory_limit");
    s->queue_minfree = (uint64_t)conf_int(c, "queue_minfree");
    s->queue_dir = xstrdup(conf_str(c, "queue_directory"));
    s->recipient_limit = (long)conf_int(c, "smtpd_recipient_limit");
    s->timeout = (long)conf_time(c, "smtpd_timeout");
    s->hard_error_limit = (long)conf_int(c, "smtpd_hard_error_limit");
    s->junk_command_limit = (long)conf_int(c, "smtpd_junk_command_limit");
    s->soft_error_limit = (long)conf_int(c, "smtpd_soft_error_limit");
    s->error_sleep_time = (long)conf_time(c, "smtpd_error_sleep_time");
    s->header_size_limit = (long)conf_int(c, "header_size_limit");
    s->hopcount_limit = (long)conf_int(c, "hopcount_limit");
    s->vrfy_enabled = !conf_bool(c, "disable_vrfy_command");
    s->expn_enabled = !conf_bool(c, "disable_expn_command");
    s->smtputf8 = conf_bool(c, "smtputf8_enable");
    s->require_from = conf_bool(c, "smtpd_require_from_header");
    s->reject_bare_lf = strcmp(conf_str(c, "smtpd_forbid_bare_newline"), "reject") == 0;
    char *bad = NULL;
    char *derived = NULL;
    if (!conf_is_set(c, "mynetworks") && *conf_str(c, "mynetworks_style"))
        derived = mynetworks_from_style(conf_str(c, "mynetworks_style"));
    if (derived)
        log_info("mynetworks (from mynetworks_style = %s): %s", conf_str(c, "mynetworks_style"), derived);
    if (cidr_list_parse(&s->mynetworks, derived ? derived : conf_str(c, "mynetworks"), &bad) > 0) {
        log_warn("mynetworks: ignoring malformed entry \"%s\"", bad);
        free(bad);
    }
    free(derived);
}

struct smtpd_policy_lists *smtpd_policy_from_conf(struct conf *c, char **err)
{
    return smtpd_policy_parse(conf_str(c, "smtpd_client_restrictions"), conf_str(c, "smtpd_helo_restrictions"),
                        conf_str(c, "smtpd_sender_restrictions"), conf_str(c, "smtpd_relay_restrictions"),
                        conf_str(c, "smtpd_recipient_restrictions"),
                        conf_str(c, "smtpd_end_of_data_restrictions"), err);
}

void smtpd_settings_free(struct smtpd_settings *s)
{
    free(s->service);
    free(s->myhostname);
    free(s->myorigin);
    free(s->banner);
    free(s->mail_name);
    free(s->queue_dir);
    free(s->sasl_path);
    smtpd_policy_free(s->policy);
    free(s->dns_resolvers);
    free(s->authserv_id);
    if (s->sender_login_maps)
        map_list_close(s->sender_login_maps);
    cidr_list_free(&s->mynetworks);
    cidr_list_free(&s->limit_exceptions);
    memset(s, 0, sizeof *s);
}

