/* storage_reply: storage errno to SMTP reply (see storage_reply.h). */
#include "spool/storage_reply.h"

#include <errno.h>

static const struct {
    int err;
    int code;
    const char *reply;
} table[] = {
    {ENOSPC, 452, "452 4.3.1 Insufficient system storage"},
    {EDQUOT, 452, "452 4.3.1 Insufficient system storage"},
    {EINVAL, 451, "451 4.3.0 Error: internal error"},
};

static const char default_reply[] = "451 4.3.0 Error: queue file write error";

const char *storage_reply(int err)
{
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].err == err)
            return table[i].reply;
    return default_reply;
}

int storage_reply_code(int err)
{
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].err == err)
            return table[i].code;
    return 451;
}
