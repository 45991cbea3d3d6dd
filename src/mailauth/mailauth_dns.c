/* mailauth_dns: the real resolver behind the mail-authentication modules'
 * DNS interface (see mailauth_dns.h). */
#include "mailauth/mailauth_dns.h"

static struct mailauth_dns_query *real_lookup(void *ctx, const char *name, int rrtype, dns_rrset_cb cb,
                                              void *arg)
{
    return (struct mailauth_dns_query *)dns_lookup(ctx, name, rrtype, cb, arg);
}

static void real_cancel(void *ctx, struct mailauth_dns_query *q)
{
    (void)ctx;
    dns_cancel((struct dns_query *)q);
}

struct mailauth_dns mailauth_dns_real(struct dns_ctx *d)
{
    return (struct mailauth_dns){.lookup = real_lookup, .cancel = real_cancel, .ctx = d};
}
