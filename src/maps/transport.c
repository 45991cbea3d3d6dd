/* transport: parsing of transport strings (see transport.h). */
#include "maps/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "maps/resolver.h"
#include "util/mem.h"
#include "util/str.h"

/* "name" alone or "name:rest": 1 with *rest (NULL when there is no
 * colon), else 0. */
static int transport_is(const char *value, const char *name, const char **rest)
{
    size_t n = strlen(name);
    if (strncasecmp(value, name, n) != 0 || (value[n] != '\0' && value[n] != ':'))
        return 0;
    *rest = value[n] == ':' ? value + n + 1 : NULL;
    return 1;
}

/* A host as it may stand in a next hop: no blanks, controls or brackets. */
static int host_ok(const char *h, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch == 0x7f || ch == '[' || ch == ']')
            return 0;
    }
    return 1;
}

/* "[host]:port", "[host]", "host:port", "host" into host and port (24
 * when none is given); NULL, or why not. */
static const char *parse_lmtp_inet(const char *spec, struct transport_hop *hop)
{
    const char *host, *port_at = NULL;
    size_t hostlen;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL)
            return "missing ']'";
        host = spec + 1;
        hostlen = (size_t)(close - host);
        if (close[1] == ':')
            port_at = close + 2;
        else if (close[1] != '\0')
            return "junk after ']'";
    } else {
        const char *colon = strrchr(spec, ':');
        host = spec;
        hostlen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
        if (colon != NULL)
            port_at = colon + 1;
        if (memchr(host, ':', hostlen) != NULL)
            return "an IPv6 address must be in brackets";
    }
    if (!host_ok(host, hostlen))
        return "bad host";
    unsigned port = TRANSPORT_LMTP_PORT;
    if (port_at != NULL) {
        char *stop = NULL;
        long p = strtol(port_at, &stop, 10);
        if (stop == port_at || *stop != '\0' || p < 1 || p > 65535 || port_at[0] == '-' || port_at[0] == '+')
            return "bad port";
        port = (unsigned)p;
    }
    hop->host = xstrndup(host, hostlen);
    hop->port = port;
    return NULL;
}

/* A socket path, made absolute under queue_dir; NULL, or why not. */
static const char *parse_lmtp_unix(const char *path, const char *queue_dir, struct transport_hop *hop)
{
    if (path[0] == '\0')
        return "no socket path";
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            return "control character in the socket path";
    char *full;
    if (path[0] == '/') {
        full = xstrdup(path);
    } else {
        if (queue_dir == NULL || queue_dir[0] == '\0')
            return "a relative socket path needs queue_directory";
        full = xasprintf("%s/%s", queue_dir, path);
    }
    if (strlen(full) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        free(full);
        return "socket path too long";
    }
    hop->unix_socket = 1;
    hop->socket_path = full;
    hop->socket_shown = xstrdup(path);
    return NULL;
}

static int parse_lmtp(const char *value, const char *rest, const char *queue_dir, struct transport_hop *hop,
                      char **err)
{
    hop->kind = TRANSPORT_LMTP;
    const char *why;
    const char *spec;
    if (rest == NULL || rest[0] == '\0')
        why = "no next hop (lmtp:unix:/path or lmtp:inet:host:port)";
    else if (transport_is(rest, "unix", &spec))
        why = parse_lmtp_unix(spec != NULL ? spec : "", queue_dir, hop);
    else if (transport_is(rest, "inet", &spec))
        why = parse_lmtp_inet(spec != NULL ? spec : "", hop);
    else
        why = parse_lmtp_inet(rest, hop);
    if (why == NULL)
        return 0;
    *err = xasprintf("bad LMTP next hop in \"%s\": %s", value, why);
    transport_hop_free(hop);
    return -1;
}

int transport_parse(const char *value, const char *queue_dir, struct transport_hop *hop, char **err)
{
    memset(hop, 0, sizeof *hop);
    *err = NULL;
    char *copy = xstrdup(value);
    char *v = str_trim(copy);
    const char *rest;
    const char *text;
    int rc = 0;
    if (transport_is(v, "local", &rest)) {
        hop->kind = TRANSPORT_LOCAL;
    } else if (transport_is(v, "smtp", &rest) || transport_is(v, "relay", &rest)) {
        hop->kind = TRANSPORT_SMTP;
        char *hopcopy = xstrdup(rest != NULL ? rest : "");
        hop->nexthop = xstrdup(str_trim(hopcopy));
        free(hopcopy);
    } else if (transport_is(v, "lmtp", &rest)) {
        rc = parse_lmtp(v, rest, queue_dir, hop, err);
    } else if (transport_is(v, "discard", &rest)) {
        hop->kind = TRANSPORT_DISCARD;
        char *textcopy = xstrdup(rest != NULL ? rest : "");
        char *t = str_trim(textcopy);
        hop->text = xstrdup(*t ? t : "discarded");
        free(textcopy);
    } else if (resolver_error_transport(v, "5.0.0", hop->status, &text)) {
        hop->kind = TRANSPORT_ERROR;
        hop->text = xstrdup(text);
    } else if (resolver_retry_transport(v, hop->status, &text)) {
        hop->kind = TRANSPORT_RETRY;
        hop->text = xstrdup(text);
    } else if (transport_is(v, "virtual", &rest)) {
        hop->kind = TRANSPORT_VIRTUAL;
    } else {
        *err = xasprintf("unsupported transport in \"%s\"", v);
        rc = -1;
    }
    free(copy);
    return rc;
}

/* The two halves of "name:nexthop" (at the first colon; no colon: all
 * name), blanks around each dropped. Both malloc'd. */
static void split_transport(const char *value, char **name, char **nexthop)
{
    const char *colon = strchr(value, ':');
    char *n = colon ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
    char *h = xstrdup(colon ? colon + 1 : "");
    *name = xstrdup(str_trim(n));
    *nexthop = xstrdup(str_trim(h));
    free(n);
    free(h);
}

/* A transport whose next hop is a destination to send to. */
static int sends_to_nexthop(const char *name)
{
    return strcasecmp(name, "smtp") == 0 || strcasecmp(name, "relay") == 0 || strcasecmp(name, "lmtp") == 0;
}

char *transport_combine(const char *class_default, const char *entry)
{
    char *class_name, *class_hop, *entry_name, *entry_hop;
    split_transport(class_default, &class_name, &class_hop);
    split_transport(entry, &entry_name, &entry_hop);
    const char *name = *entry_name ? entry_name : class_name;
    const char *hop = entry_hop;
    if (!*hop && (!*entry_name || (sends_to_nexthop(entry_name) && sends_to_nexthop(class_name))))
        hop = class_hop;
    char *combined = *hop ? xasprintf("%s:%s", name, hop) : xstrdup(name);
    free(class_name);
    free(class_hop);
    free(entry_name);
    free(entry_hop);
    return combined;
}

int transport_is_null(const char *entry)
{
    char *name, *hop;
    split_transport(entry, &name, &hop);
    int null = !*name && !*hop;
    free(name);
    free(hop);
    return null;
}

void transport_hop_free(struct transport_hop *hop)
{
    free(hop->nexthop);
    free(hop->socket_path);
    free(hop->socket_shown);
    free(hop->host);
    free(hop->text);
    memset(hop, 0, sizeof *hop);
}

char *transport_lmtp_key(const struct transport_hop *hop)
{
    if (hop->kind != TRANSPORT_LMTP)
        return NULL;
    if (hop->unix_socket)
        return xasprintf("lmtp:unix:%s", hop->socket_shown);
    if (strchr(hop->host, ':') != NULL)
        return xasprintf("lmtp:inet:[%s]:%u", hop->host, hop->port);
    return xasprintf("lmtp:inet:%s:%u", hop->host, hop->port);
}
