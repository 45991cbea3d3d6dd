/* libFuzzer target: the queue file readers on arbitrary bytes (a damaged
 * spool, or a journal a compromised queue process wrote for root's
 * `tern queue` to read, must be reported, never crash): queue_file_read_fd
 * on a file, queue_file_read_mem and queue_file_read_at on the same bytes
 * (they must agree with it), and queue_file_apply_progress on what follows
 * the valid records. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spool/queue_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("qf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    struct queue_file_message m, mm, ma;
    char err[256];
    int rc = queue_file_read_fd(fd, &m, err, sizeof err);
    /* the journal's reader of the same bytes agrees, record for record */
    int rcm = queue_file_read_mem(data, size, &mm, err, sizeof err);
    if (rc != rcm)
        abort();
    if (rc == 0 && (mm.nrcpt != m.nrcpt || mm.valid_end != m.valid_end || strcmp(mm.id, m.id) != 0 ||
                    mm.content_length != m.content_length))
        abort();
    /* a command's environment reads only the envelope: it never accepts
     * what the full reader refuses */
    if (queue_file_read_at(fd, 0, &ma, err, sizeof err) == 0) {
        if (rc != 0 || ma.nrcpt > m.nrcpt)
            abort();
        queue_file_message_free(&ma);
    }
    if (rc == 0) {
        /* what follows the valid records (a torn one) never applies whole */
        if (m.valid_end < size && queue_file_apply_progress(&mm, data + m.valid_end, size - m.valid_end) == 0)
            abort();
        /* what the queue does next: append progress to a valid file */
        if (m.nrcpt)
            queue_file_append_status(fd, &m, 0);
        queue_file_message_free(&m);
        queue_file_message_free(&mm);
    }
    close(fd);
    return 0;
}
