/* capture_web: finds the page's files (see capture_web.h); the table itself
 * is generated at build time (scripts/embed-web.py). */
#include "capture/capture_web.h"

#include <string.h>

/* ends with a row whose name is NULL */
extern const struct capture_asset capture_web_assets[];

const struct capture_asset *capture_web_find(const char *name)
{
    for (const struct capture_asset *a = capture_web_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}
