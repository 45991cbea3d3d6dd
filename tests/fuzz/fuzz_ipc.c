/* fuzz_ipc: libFuzzer target for the internal message decoder and its
 * schema check: what a process makes of a packet from a peer process (a
 * restarted smtpd, a `tern queue` run by any user on public/qmgr). The
 * input is one packet. Built and run by `make fuzz` and `make fuzz-long`.
 *
 * Checks, besides the sanitizers:
 *  - a decoded message re-encodes to the same bytes: attribute by attribute
 *    with ipc_msg_add, and whole through a SOCK_SEQPACKET pair with
 *    ipc_send_blocking / ipc_recv_blocking when it matches the schema (a
 *    sender refuses one that does not);
 *  - a message that matches the schema has its required attributes, its
 *    status among the listed values, no NUL in a text or number value (only
 *    IPC_BYTES values may hold one), and every number attribute readable
 *    with ipc_msg_get_u64 (the receivers read them so: a "number" it cannot
 *    read would silently become the receiver's default). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "util/ipc.h"
#include "util/ipc_schema.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The header the decoder kept, followed by the body, as it went on the wire. */
static void require_same_wire(const struct ipc_msg *m, const uint8_t *data, size_t size)
{
    FUZZ_REQUIRE(m->type == (uint16_t)(data[0] | data[1] << 8));
    FUZZ_REQUIRE(m->reqid == ((uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
                              (uint32_t)data[5] << 24));
    FUZZ_REQUIRE(m->body.len == size - 6);
    FUZZ_REQUIRE(size == 6 || memcmp(m->body.buf, data + 6, size - 6) == 0);
}

/* Rebuilt with ipc_msg_add (ipc_msg_add_bytes for a value holding a NUL);
 * attribute names holding a NUL cannot be. */
static void check_rebuild(const struct ipc_msg *m)
{
    struct ipc_msg copy;
    ipc_msg_init(&copy, m->type, m->reqid);
    size_t pos = 0, namelen, valuelen;
    const char *name, *value;
    while (ipc_msg_next(m, &pos, &name, &namelen, &value, &valuelen)) {
        if (memchr(name, '\0', namelen)) {
            ipc_msg_free(&copy);
            return;
        }
        char *n = xstrndup(name, namelen);
        if (memchr(value, '\0', valuelen))
            ipc_msg_add_bytes(&copy, n, value, valuelen);
        else
            ipc_msg_add(&copy, n, value);
        free(n);
    }
    FUZZ_REQUIRE(copy.body.len == m->body.len);
    FUZZ_REQUIRE(copy.body.len == 0 || memcmp(copy.body.buf, m->body.buf, m->body.len) == 0);
    ipc_msg_free(&copy);
}

static void check_schema_promises(const struct ipc_msg *m)
{
    const struct ipc_msg_spec *spec = ipc_schema_find(m->type);
    FUZZ_REQUIRE(spec != NULL);
    for (const struct ipc_attr_spec *a = spec->attrs; a->name; a++) {
        if (strchr(a->name, '#'))
            continue;
        if (a->required)
            FUZZ_REQUIRE(ipc_msg_get(m, a->name) != NULL);
        if (a->value == IPC_NUMBER && ipc_msg_get(m, a->name) != NULL)
            FUZZ_REQUIRE(ipc_msg_get_u64(m, a->name, 0) == ipc_msg_get_u64(m, a->name, 1));
    }
    /* every attribute is declared, and text reaches its receiver whole, as
     * a C string (numbered ones too) */
    size_t pos = 0, namelen, len;
    const char *name, *value;
    while (ipc_msg_next(m, &pos, &name, &namelen, &value, &len)) {
        const struct ipc_attr_spec *a = ipc_schema_attr(spec, name, namelen);
        FUZZ_REQUIRE(a != NULL);
        if (a->value != IPC_BYTES)
            FUZZ_REQUIRE(strlen(value) == len);
    }
    if (spec->statuses) {
        const char *st = ipc_msg_get(m, "status");
        FUZZ_REQUIRE(st != NULL);
        int listed = 0;
        for (const char *const *s = spec->statuses; *s; s++)
            listed |= strcmp(*s, st) == 0;
        FUZZ_REQUIRE(listed);
    }
}

/* Sent and received over a packet socket pair, as between processes. */
static void check_send_receive(const struct ipc_msg *m)
{
    static int pair[2] = {-1, -1};
    if (pair[0] < 0)
        FUZZ_REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
    if (6 + m->body.len > IPC_MAX_MSG)
        return;
    FUZZ_REQUIRE(ipc_send_blocking(pair[0], m) == 0);
    struct ipc_msg got;
    FUZZ_REQUIRE(ipc_recv_blocking(pair[1], &got, 1000) == 0);
    FUZZ_REQUIRE(got.type == m->type && got.reqid == m->reqid && got.body.len == m->body.len);
    FUZZ_REQUIRE(got.body.len == 0 || memcmp(got.body.buf, m->body.buf, m->body.len) == 0);
    ipc_msg_free(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_stderr(0);
        quiet = 1;
    }
    struct ipc_msg m;
    if (ipc_msg_decode(&m, data, size) != 0)
        return 0;
    require_same_wire(&m, data, size);
    check_rebuild(&m);
    char why[256];
    if (ipc_schema_check(&m, 0, why, sizeof why) == 0) {
        check_schema_promises(&m);
        check_send_receive(&m);
    } else {
        FUZZ_REQUIRE(why[0] != '\0');
    }
    ipc_msg_free(&m);
    return 0;
}
