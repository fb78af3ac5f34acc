/* Built with -m32: every syscall goes through the IA32 entry point, which the
 * seccomp filter must kill. Exit 20 "through" when the open works, 10 "blocked". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/etc/hostname";
    int fd = openat(AT_FDCWD, path, O_RDONLY);
    if (fd >= 0) {
        printf("through fd %d\n", fd);
        return 20;
    }
    printf("blocked %s\n", strerror(errno));
    return 10;
}
