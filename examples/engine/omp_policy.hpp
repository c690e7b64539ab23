#pragma once
// Waiting OpenMP threads sleep instead of spinning: on a shared machine a
// spinning thread takes the core its partner needs (2x slower passes at a
// load of 8 on 2 cores); on an idle one it costs microseconds per pass.
// libgomp reads OMP_WAIT_POLICY when it is loaded, so the program restarts
// itself with it set; a value the user gave is kept.

#include <cstdlib>
#include <iostream>

#include <unistd.h>

namespace atman::engine {

// Call first in main(), before any OpenMP or MPI code runs. Returns only when
// OMP_WAIT_POLICY was already set or the restart failed (said on stderr).
inline void restart_with_passive_omp_wait(const char* program, char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    std::cerr << program << ": cannot restart with OMP_WAIT_POLICY=passive; continuing without" << std::endl;
}

}  // namespace atman::engine
