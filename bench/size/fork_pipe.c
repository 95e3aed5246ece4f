/* The C counterpart of process_pipe.cpp for the binary-size figure of bench_compile: a
 * child sends one int through a pipe and the parent prints it, with nothing but fork(2),
 * pipe(2), write(2), read(2) and waitpid(2). */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        int value = 42;
        close(fds[0]);
        _exit(write(fds[1], &value, sizeof value) == (ssize_t)sizeof value ? 0 : 1);
    }
    close(fds[1]);
    int value = 0;
    ssize_t got = read(fds[0], &value, sizeof value);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    if (got != (ssize_t)sizeof value) return 1;
    printf("%d\n", value);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
