/* libFuzzer target: the queue file reader on arbitrary files (a damaged
 * spool must be reported, never crash the queue). Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spool/queue_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("qf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        struct queue_file_message m;
        char err[256];
        if (queue_file_read_fd(fd, &m, err, sizeof err) == 0) {
            /* what the queue does next: append progress to a valid file */
            if (m.nrcpt)
                queue_file_append_status(fd, &m, 0);
            queue_file_message_free(&m);
        }
    }
    close(fd);
    return 0;
}
