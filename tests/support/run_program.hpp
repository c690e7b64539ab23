#pragma once
// Runs a program the way a user does, through the shell, for the tests of
// the command-line programs: exit code, stdout and stderr, and scratch files.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace atman_test {

struct program_result {
    int exit_code = -1;
    std::string out, err;
};

// text in single quotes, safe for /bin/sh.
inline std::string shell_quoted(const std::string& text) {
    std::string quoted = "'";
    for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

inline std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// A directory of its own for one test, removed with everything in it.
class scratch_dir {
public:
    explicit scratch_dir(const std::string& name)
        : path_(std::filesystem::temp_directory_path() / (name + "-" + std::to_string(getpid()))) {
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// Runs `environment program args...` in /bin/sh; environment is "NAME=value ..." or empty.
inline program_result run_program(const std::string& program, const std::vector<std::string>& args,
                                  const std::string& environment = {}) {
    static int runs = 0;
    const scratch_dir dir("atman-run-" + std::to_string(++runs));
    std::string command = environment + " " + shell_quoted(program);
    for (const std::string& a : args) command += " " + shell_quoted(a);
    command += " >" + shell_quoted((dir / "out").string()) + " 2>" + shell_quoted((dir / "err").string());
    const int status = std::system(command.c_str());
    program_result result;
    result.exit_code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = read_text(dir / "out");
    result.err = read_text(dir / "err");
    return result;
}

}  // namespace atman_test
