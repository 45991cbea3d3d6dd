/* fuzz_auth_dovecot: libFuzzer target for smtpd's client of Dovecot's auth
 * socket, fed what the server says. The harness is the server: it listens
 * on a unix socket, the client connects to it and queues three checks
 * behind the handshake, and the input is written back as the server's
 * side of the conversation, in up to four writes (split at 0xFF bytes,
 * which never occur in Dovecot's protocol), each followed by a turn of the
 * event loop; then the server closes. Built and run by `make fuzz` and
 * `make fuzz-long`.
 *
 * Checks, besides the sanitizers (use after free is the risk here: replies
 * finish requests, violations drop the connection under the reader):
 *  - every check is answered exactly once, with a result and a reason that
 *    has no control character and at most 200 octets;
 *  - the client never writes a password in clear (only the base64 PLAIN). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/auth_dovecot.h"
#include "fuzz_util.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECKS 3
#define PASSWORD "s3cret-Pa55"

struct answer {
    int calls;
    enum auth_result result;
};

static void answered(void *arg, enum auth_result result, const char *why)
{
    struct answer *a = arg;
    a->calls++;
    a->result = result;
    FUZZ_REQUIRE(why != NULL && strlen(why) <= 200);
    for (const unsigned char *p = (const unsigned char *)why; *p; p++)
        FUZZ_REQUIRE(*p >= 0x20 && *p != 0x7f);
}

/* The socket stays for the whole run; remove it with the scratch directory. */
static char socket_path[256];

static void remove_socket(void)
{
    unlink(socket_path);
}

static int listen_socket(char *path, size_t pathlen)
{
    (void)fuzz_scratch_dirfd();   /* makes the scratch directory */
    snprintf(path, pathlen, "%s/auth", fuzz_scratch_path());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_REQUIRE(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    FUZZ_REQUIRE(strlen(path) < sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    FUZZ_REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 4) == 0);
    return fd;
}

/* What the client wrote so far; it must never hold the password in clear. */
static void drain_client(int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        FUZZ_REQUIRE(memmem(buf, (size_t)n, PASSWORD, strlen(PASSWORD)) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    static int listener = -1;
    const char *path = socket_path;
    if (base == NULL) {
        log_set_stderr(0);
        base = event_base_new();
        FUZZ_REQUIRE(base != NULL);
        listener = listen_socket(socket_path, sizeof socket_path);
        atexit(remove_socket);
    }
    struct auth_dovecot *d = auth_dovecot_new(base, path);
    struct answer answers[CHECKS];
    memset(answers, 0, sizeof answers);
    static const char *const users[CHECKS] = {"alice", "bob@example.org", "carol"};
    struct auth_dovecot_info info = {"192.0.2.1", "198.51.100.7", 587, 40123, 1};
    for (int i = 0; i < CHECKS; i++)
        auth_dovecot_check(d, users[i], PASSWORD, &info, answered, &answers[i]);

    int server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    FUZZ_REQUIRE(server >= 0);
    int sndbuf = 1 << 20;
    setsockopt(server, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

    size_t pos = 0;
    for (int turn = 0; turn < 4 && pos < size; turn++) {
        const uint8_t *cut = turn < 3 ? memchr(data + pos, 0xff, size - pos) : NULL;
        size_t len = cut ? (size_t)(cut - (data + pos)) : size - pos;
        if (len > 0 && send(server, data + pos, len, MSG_NOSIGNAL) < 0)
            FUZZ_REQUIRE(errno == EPIPE || errno == ECONNRESET);
        pos += len + (cut != NULL);
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain_client(server);
    }
    close(server);
    /* The client sees the end of the connection; the answers follow. */
    for (int turn = 0; turn < 3; turn++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    for (int i = 0; i < CHECKS; i++) {
        FUZZ_REQUIRE(answers[i].calls == 1);
        FUZZ_REQUIRE(answers[i].result == AUTH_OK || answers[i].result == AUTH_FAIL ||
                     answers[i].result == AUTH_TEMPFAIL);
    }
    auth_dovecot_free(d);
    return 0;
}
