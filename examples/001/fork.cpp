// Seed 001, os.fork(): the operating system copies the calling process; fork() returns
// twice, the child's pid in the parent and 0 in the child. This is the raw system call
// that multiproc's start::fork is built on, used here without multiproc.

#include <cstdio>
#include <iostream>

#include <sys/wait.h>
#include <unistd.h>

int main() {
    // std::endl flushes: a line still buffered at fork() would be printed by both processes.
    std::cout << "Process (" << ::getpid() << ") start..." << std::endl;
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("fork");
        return 1;
    }
    if (pid != 0) {
        std::cout << "I (" << ::getpid() << ") just created a child process (" << pid << ")." << std::endl;
        // Python's snippet leaves the child unreaped; a C++ program should wait for it.
        ::waitpid(pid, nullptr, 0);
    } else {
        std::cout << "I am child process (" << ::getpid() << ") and my parent is " << ::getppid() << "." << std::endl;
        // The child leaves with _exit: returning from main would run the exit handlers and
        // static destructors of a copy of its parent.
        ::_exit(0);
    }
}
