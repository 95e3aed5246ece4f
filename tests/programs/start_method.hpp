// The test programs take the start method as their first argument (fork when absent) and
// run their body once with that method's context.
#pragma once

#include <multiproc/context.hpp>
#include <multiproc/spawn.hpp>

#include <cstdio>
#include <string>

/// Calls `body.template operator()<Ctx>()` with the context named by argv[1].
template <class Body>
int with_start_method(int argc, char** argv, Body body) {
    std::string m = argc > 1 ? argv[1] : "fork";
    if (m == "fork") return body.template operator()<multiproc::context<multiproc::start::fork>>();
    if (m == "spawn") return body.template operator()<multiproc::context<multiproc::start::spawn>>();
    if (m == "forkserver") return body.template operator()<multiproc::context<multiproc::start::forkserver>>();
    std::fprintf(stderr, "unknown start method %s\n", m.c_str());
    return 2;
}
