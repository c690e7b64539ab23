// atman-explain-mpi: atman-explain spread over the processes of an MPI run,
// on one machine or many (docs/scale-out.md).
//
// Rank 0 reads and tokenises the prompt (and generates the target unless
// --target) and broadcasts the explain request. Every rank loads the model,
// makes the plan (deterministic, so the same on every rank), runs the base
// pass and its shard of the plan (atman::shard, balanced by recomputed
// token-rows), and sends its deltas to rank 0, which merges them and writes
// what atman-explain writes. The options are atman-explain's (engine/cli.hpp);
// --threads 0 shares each machine's cores among the ranks on it.
//
// After each phase the ranks agree whether one of them failed. If one did,
// every rank stops, rank 0 reports the lowest failed rank's message and all
// exit 1 (2 for bad usage): output is written only when every shard arrived.
//
// For the tests: ATMAN_MPI_FAIL_RANK=r makes rank r fail after running its shard.

#include <atman/atman.hpp>

#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/cli.hpp"
#include "engine/mpi_wire.hpp"
#include "engine/limits.hpp"
#include "engine/llama_engine.hpp"
#include "engine/omp_policy.hpp"
#include "engine/progress.hpp"

namespace {

namespace eng = atman::engine;

constexpr int root = 0;

class mpi_session {
public:
    mpi_session(int& argc, char**& argv) {
        int provided = 0;  // only the main thread calls MPI; OpenMP threads never do
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
    mpi_session(const mpi_session&) = delete;
    mpi_session& operator=(const mpi_session&) = delete;
    ~mpi_session() { MPI_Finalize(); }

    int rank = 0, size = 1;
};

// MPI counts are int; the messages here are far smaller, but say so if not.
int mpi_count(std::size_t bytes) {
    if (bytes > std::size_t(INT_MAX)) throw atman::error("a message of " + std::to_string(bytes) + " bytes is too large for MPI");
    return int(bytes);
}

void broadcast(std::vector<char>& bytes, int from) {
    std::uint64_t size = bytes.size();
    MPI_Bcast(&size, 1, MPI_UINT64_T, from, MPI_COMM_WORLD);
    bytes.resize(size);
    MPI_Bcast(bytes.data(), mpi_count(size), MPI_CHAR, from, MPI_COMM_WORLD);
}

// Runs work on every rank; then, if any rank failed, every rank throws the
// error of the lowest failed rank, so that none waits in a collective the
// failed one will never reach.
template <class Work>
void phase(const mpi_session& mpi, Work&& work) {
    int code = 0;
    std::string message;
    try {
        work();
    } catch (const eng::usage_error& e) {
        code = 2, message = e.what();
    } catch (const std::exception& e) {
        code = 1, message = e.what();
    }
    int first_failed = code != 0 ? mpi.rank : mpi.size;
    MPI_Allreduce(MPI_IN_PLACE, &first_failed, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first_failed == mpi.size) return;
    MPI_Bcast(&code, 1, MPI_INT, first_failed, MPI_COMM_WORLD);
    std::vector<char> text(message.begin(), message.end());
    broadcast(text, first_failed);
    message.assign(text.begin(), text.end());
    if (code == 2) throw eng::usage_error(message);
    throw atman::error("rank " + std::to_string(first_failed) + " of " + std::to_string(mpi.size) + ": " + message);
}

// Rank 0 receives every rank's bytes, in rank order.
std::vector<std::vector<char>> gather(const std::vector<char>& mine, const mpi_session& mpi) {
    const int my_size = mpi_count(mine.size());
    std::vector<int> sizes(std::size_t(mpi.size)), offsets(std::size_t(mpi.size));
    MPI_Allgather(&my_size, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::size_t total = 0;  // every rank checks the same sum, so all fail alike or none
    for (int r = 0; r < mpi.size; ++r) offsets[r] = int(total), total += std::size_t(sizes[r]);
    mpi_count(total);
    std::vector<char> all(mpi.rank == root ? total : 0);
    MPI_Gatherv(mine.data(), my_size, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, root,
                MPI_COMM_WORLD);
    std::vector<std::vector<char>> parts;
    if (mpi.rank == root) {
        for (int r = 0; r < mpi.size; ++r)
            parts.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + sizes[r]);
    }
    return parts;
}

// --threads, or for 0 this machine's cores shared among the ranks on it
// (fewer when MPI bound the rank to fewer cores).
int threads_per_rank(int threads) {
    if (threads > 0) return threads;
    MPI_Comm machine;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &machine);
    int ranks_here = 1;
    MPI_Comm_size(machine, &ranks_here);
    MPI_Comm_free(&machine);
    const int cores = int(std::thread::hardware_concurrency());
    return std::max(1, std::min(omp_get_num_procs(), cores / ranks_here));
}

int fault_injected_rank() {
    const char* value = std::getenv("ATMAN_MPI_FAIL_RANK");
    return value != nullptr && *value != '\0' ? std::atoi(value) : -1;
}

// Per rank: perturbations, recomputed token-rows and seconds, to show how even the shards were.
void say_balance(const std::string& program, const std::vector<atman::raw_deltas>& shards) {
    std::cerr << program << ": per rank (perturbations, token-forwards, seconds):";
    for (const atman::raw_deltas& shard : shards)
        std::cerr << " (" << shard.rows.size() << ", " << shard.stats.token_forwards << ", " << shard.stats.seconds << ")";
    std::cerr << "\n";
}

void explain(const mpi_session& mpi, eng::cli_options options) {
    const bool is_root = mpi.rank == root;
    options.quiet = options.quiet || !is_root;  // one voice on stderr
    if (options.search != "exhaustive")
        throw eng::usage_error("--search " + options.search + " runs in atman-explain only, not over MPI");
    eng::apply_threads(threads_per_rank(options.threads));

    std::string user_prompt;
    phase(mpi, [&] {
        if (!is_root) return;
        eng::check_outputs(options);
        user_prompt = eng::read_prompt(options);
    });
    std::optional<eng::loaded_model> loaded;
    std::optional<eng::llama_engine> engine;
    std::vector<char> request_bytes;
    phase(mpi, [&] {
        loaded.emplace(options);
        engine.emplace(loaded->model);
        if (is_root) request_bytes = eng::encode_request(eng::build_request(options, user_prompt, *loaded, *engine));
    });
    broadcast(request_bytes, root);

    const auto started = std::chrono::steady_clock::now();
    atman::explain_request request;
    std::vector<char> deltas_bytes;
    phase(mpi, [&] {
        request = eng::decode_request(request_bytes.data(), request_bytes.size());
        const atman::plan full = atman::plan_explanation(*engine, request, options.cfg);
        const atman::plan mine = atman::shard(full, mpi.rank, mpi.size);
        eng::progress_bar bar("units on rank " + std::to_string(mpi.rank), !options.quiet);
        atman::explain_options run_options;
        run_options.before_running = [&](const atman::plan& plan) {
            eng::check_plan_memory(loaded->model.hparams(), plan);
            bar.weigh_by(plan);
        };
        run_options.progress = [&](atman::index_t done, atman::index_t total) {
            bar.update(done, total);
            return true;
        };
        deltas_bytes = eng::encode_deltas(atman::explain_deltas(*engine, request, options.cfg, mine, run_options));
        if (fault_injected_rank() == mpi.rank) throw atman::error("failing on purpose (ATMAN_MPI_FAIL_RANK)");
    });
    const std::vector<std::vector<char>> parts = gather(deltas_bytes, mpi);
    if (!is_root) return;

    std::vector<atman::raw_deltas> shards;
    for (const std::vector<char>& part : parts) shards.push_back(eng::decode_deltas(part.data(), part.size()));
    if (!options.quiet) say_balance(options.program, shards);
    atman::raw_deltas merged = atman::merge_deltas(shards);
    merged.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    eng::write_outputs(options, atman::make_explanation(request, options.cfg, merged), loaded->json());
}

}  // namespace

int main(int argc, char** argv) {
    // Before MPI_Init: a restart after it would leave the MPI runtime half set up.
    eng::restart_with_passive_omp_wait("atman-explain-mpi", argv);
    const mpi_session mpi(argc, argv);
    const eng::cli_program program{
        "atman-explain-mpi",
        "atman-explain-mpi: atman-explain over the processes of an MPI run (mpirun -np N atman-explain-mpi ...).\n"
        "Each rank runs its share of the perturbations; rank 0 writes the explanation."};
    return eng::run_command_line(
        program, argc, argv, [&](const eng::cli_options& options) { explain(mpi, options); }, mpi.rank == root);
}
