#pragma once
// Output files written whole or not at all. Each text goes first to a
// temporary file beside its target; only once every one is written are they
// renamed over their targets, so a full disk, a file-size limit or a failing
// second output leaves the old files as they were. A target that is not a
// regular file (a terminal, /dev/null, a FIFO) is written in place: there is
// nothing to rename over it.

#include <csignal>
#include <string>
#include <vector>

namespace atman::engine {

struct output_file {
    std::string option;  // the option that named it, for messages: "-o", "--html"
    std::string path;
};

// Before any work: throws usage_error when two outputs name the same file,
// when one names a directory or a read-only file, or when no file can be
// created beside it (the reason from the system, e.g. "No such file or
// directory"). Creates nothing that stays.
void check_output_files(const std::vector<output_file>& files);

// Stages outputs, then commits them; what is staged and not committed is
// removed. While it lives, interrupts (SIGINT, SIGTERM, SIGHUP, SIGQUIT,
// SIGPIPE) wait, so that they find either no output written or all of it.
class staged_outputs {
public:
    staged_outputs();
    staged_outputs(const staged_outputs&) = delete;
    staged_outputs& operator=(const staged_outputs&) = delete;
    ~staged_outputs();

    // Writes text for file; throws atman::error "cannot write <option> <path>: <reason>".
    void stage(const output_file& file, const std::string& text);
    // Renames every staged file over its target.
    void commit();

private:
    struct staged {
        output_file file;
        std::string temporary, target;  // temporary empty: written in place
    };
    std::vector<staged> staged_;
    sigset_t blocked_, previous_;
};

// Writes text to standard output and flushes it; throws atman::error with the
// reason when that fails (a full disk, /dev/full, a closed descriptor).
void write_stdout(const std::string& text);

// Throws usage_error unless standard output is open (a closed one would be
// taken by the next file opened, and the output written into that file).
void require_open_stdout();

}  // namespace atman::engine
