// The program of the MPI consumer route (docs/packaging.md, "MPI"): built against the
// installed package's multiproc::mpi, or with pkg-config and MPI's module, and run without
// an MPI launcher. It exits 0 only if the header compiled and linked against MPI, and the
// pool refuses to start with the sentence that says how to launch the program.
#include <multiproc/ext/start/mpi.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/spawn.hpp>

#include <cstdio>
#include <string>

int main() {
    multiproc::freeze_support();
    if (multiproc::mpi_rank() != -1) {
        std::fprintf(stderr, "consumer: mpi_rank() is %d without a launcher\n", multiproc::mpi_rank());
        return 1;
    }
    try {
        multiproc::basic_pool<multiproc::ext::start::mpi<multiproc::ext::start::in_rank>> pool;
    } catch (const multiproc::state_error& e) {
        if (std::string(e.what()).find("not started by an MPI launcher") == std::string::npos) {
            std::fprintf(stderr, "consumer: unexpected error: %s\n", e.what());
            return 1;
        }
        std::printf("consumer: multiproc::mpi built, and the pool asks for a launcher\n");
        return 0;
    }
    std::fprintf(stderr, "consumer: a pool of ext::start::mpi started without a launcher\n");
    return 1;
}
