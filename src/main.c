/* tern: command dispatch (stub, replaced as commands land). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "tern: not yet\n");
    return 1;
}
