/* listeners: binding the master's sockets (see listeners.h). */
#include "daemon/listeners.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/mastercf.h"
#include "daemon/instance.h"
#include "daemon/runtime.h"
#include "smtpd/smtpd_policy.h"
#include "smtpd/smtpd_session.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static const char *service_port(const char *port)
{
    /* /etc/services calls 465 "submissions"; master.cf says "smtps". */
    if (strcmp(port, "smtps") == 0)
        return "465";
    return port;
}

static int bind_one(const char *host, const char *port, int family, struct strbuf *diag, char **bound)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    int gai = getaddrinfo(host, service_port(port), &hints, &res);
    if (gai != 0) {
        strbuf_printf(diag, "cannot use listen address %s port %s: %s\n", host ? host : "*", port, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        strbuf_printf(diag, "bind %s%s%s:%s: %s\n", res->ai_family == AF_INET6 ? "[" : "", host ? host : "*",
                  res->ai_family == AF_INET6 ? "]" : "", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    char name[INET6_ADDRSTRLEN] = "*";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    unsigned p = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, name, sizeof name);
            p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, name, sizeof name);
            p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    *bound = ss.ss_family == AF_INET6 ? xasprintf("[%s]:%u", name, p) : xasprintf("%s:%u", name, p);
    freeaddrinfo(res);
    return fd;
}

static void add_listener(struct runtime *rt, const char *service, int fd, char *bound, struct conf *c)
{
    rt->listeners = xrealloc(rt->listeners, (rt->nlisteners + 1) * sizeof *rt->listeners);
    struct runtime_listener *l = &rt->listeners[rt->nlisteners++];
    l->fd = fd;
    l->service = xstrdup(service);
    l->address = bound;
    l->conf = c;
}

/* capture_http_address: "host:port" or "[v6]:port", a loopback address
 * (the API has no login yet: nothing else may reach it). */
int listeners_bind_capture(struct runtime *rt, struct conf *conf, struct strbuf *diag)
{
    const char *addr = conf_str(conf, "capture_http_address");
    char host[INET6_ADDRSTRLEN + 2];
    const char *port;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host) {
            strbuf_printf(diag, "capture_http_address %s: expected [address]:port\n", addr);
            return -1;
        }
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host) {
            strbuf_printf(diag, "capture_http_address %s: expected address:port\n", addr);
            return -1;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
        port = colon + 1;
    }
    if (strcmp(host, "localhost") == 0)
        str_copy(host, "127.0.0.1", sizeof host);
    struct in_addr a4;
    struct in6_addr a6;
    int loopback = (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) ||
                   (inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6));
    if (!loopback) {
        strbuf_printf(diag, "capture_http_address %s: only a loopback address may serve the capture API\n", addr);
        return -1;
    }
    rt->capture_http_fd = bind_one(host, port, AF_UNSPEC, diag, &rt->capture_http_address);
    return rt->capture_http_fd < 0 ? -1 : 0;
}

int listeners_tls(const char *service, struct conf *c, struct tls_keyring *keys, struct ssl_ctx_st **out,
                  struct strbuf *diag)
{
    char *err = NULL;
    /* the restriction lists too: a typo there must not start a server */
    struct smtpd_policy_lists *p = smtpd_policy_from_conf(c, &err);
    if (!p) {
        strbuf_printf(diag, "service %s: %s\n", service, err ? err : "bad restrictions");
        free(err);
        *out = NULL;
        return -1;
    }
    smtpd_policy_free(p);
    err = NULL;
    char *label = xasprintf("service %s", service);
    *out = tls_server_ctx(c, label, keys, &err);
    free(label);
    if (err) {
        strbuf_printf(diag, "service %s: %s\n", service, err);
        free(err);
        return -1;
    }
    if (!*out && tls_server_level(c) == TLS_LEVEL_ENCRYPT &&
        (conf_bool(c, "smtpd_tls_wrappermode") || strcmp(conf_str(c, "smtpd_tls_security_level"), "encrypt") == 0)) {
        strbuf_printf(diag, "service %s: %s needs a certificate (smtpd_tls_cert_file or smtpd_tls_chain_files)\n",
                  service, conf_bool(c, "smtpd_tls_wrappermode") ? "smtpd_tls_wrappermode = yes"
                                                                 : "smtpd_tls_security_level = encrypt");
        return -1;
    }
    return 0;
}

int listeners_bind(struct runtime *rt, struct instance *inst, struct tls_keyring *keys, struct strbuf *diag)
{
    const char *protocols = conf_str(inst->conf, "inet_protocols");
    int want4 = strstr(protocols, "all") || strstr(protocols, "ipv4");
    int want6 = strstr(protocols, "all") || strstr(protocols, "ipv6");
    int failures = 0;
    for (size_t i = 0; i < inst->services.n; i++) {
        struct mastercf_service *s = &inst->services.svc[i];
        if (strcmp(s->type, "inet") != 0)
            continue;
        if (strcmp(s->command, "smtpd") != 0) {
            log_warn("%s:%d: service %s: command %s is not supported by tern; ignored", s->file, s->line,
                     s->name, s->command);
            continue;
        }
        char *host = NULL, *port = NULL;
        if (mastercf_split_listen(s->name, conf_str(inst->conf, "inet_interfaces"), &host, &port) != 0) {
            strbuf_printf(diag, "%s:%d: cannot parse service name %s\n", s->file, s->line, s->name);
            failures++;
            continue;
        }
        struct conf *c = conf_clone(inst->conf);
        for (size_t k = 0; k < s->noverrides; k++)
            conf_set(c, s->overrides[k].name, s->overrides[k].value, s->file, s->line);
        /* The interfaces: the host part of the service name, or inet_interfaces. */
        struct conf_list hosts = {0};
        const char *loopback[] = {"127.0.0.1", "::1"}, *any[] = {"0.0.0.0", "::"};
        const char **list = NULL;
        size_t nlist = 0;
        if (!host || strcmp(host, "all") == 0) {
            list = any;
            nlist = 2;
        } else if (strcmp(host, "loopback-only") == 0) {
            list = loopback;
            nlist = 2;
        } else {
            hosts = conf_list_split(host);
            list = (const char **)hosts.items;
            nlist = hosts.n;
        }
        int bound_any = 0;
        for (size_t h = 0; h < nlist; h++) {
            char *addr = xstrdup(list[h]);
            size_t al = strlen(addr);
            if (al > 2 && addr[0] == '[' && addr[al - 1] == ']') {
                memmove(addr, addr + 1, al - 2);
                addr[al - 2] = '\0';
            }
            int is6 = strchr(addr, ':') != NULL;
            if ((is6 && !want6) || (!is6 && !want4)) {
                free(addr);
                continue;
            }
            char *bound = NULL;
            struct strbuf why = STRBUF_INIT;
            int fd = bind_one(addr, port, is6 ? AF_INET6 : AF_INET, &why, &bound);
            if (fd >= 0) {
                add_listener(rt, s->name, fd, bound, bound_any ? conf_clone(c) : c);
                bound_any = 1;
                struct runtime_listener *l = &rt->listeners[rt->nlisteners - 1];
                if (listeners_tls(s->name, l->conf, keys, &l->tls_ctx, diag) != 0)
                    failures++;
            } else if (is6 && (list == any || list == loopback) && errno == EADDRNOTAVAIL) {
                log_warn("%s", strbuf_str(&why)); /* no IPv6 on this host: IPv4 is enough */
            } else {
                strbuf_puts(diag, strbuf_str(&why));
                failures++;
            }
            strbuf_free(&why);
            free(addr);
        }
        if (!bound_any)
            conf_free(c);
        conf_list_free(&hosts);
        free(host);
        free(port);
    }
    return failures ? -1 : 0;
}
