#include "output_files.hpp"

#include <atman/error.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.hpp"

namespace atman::engine {

namespace fs = std::filesystem;

namespace {

std::string reason() { return std::strerror(errno); }

std::string named(const output_file& file) { return file.option + " " + file.path; }

// The file the path leads to, links followed (also one to a file not yet
// there), for comparing and for writing beside it.
fs::path resolved(const std::string& path) {
    std::error_code ignored;
    fs::path p = fs::absolute(path, ignored);
    for (int hops = 0; hops < 40 && fs::is_symlink(p, ignored); ++hops) {
        const fs::path to = fs::read_symlink(p, ignored);
        p = to.is_absolute() ? to : p.parent_path() / to;
    }
    const fs::path canonical = fs::weakly_canonical(p, ignored);
    return canonical.empty() ? p : canonical;
}

// A new empty file beside target (mkstemp's name pattern), or -1 with errno set.
int create_beside(const fs::path& target, std::string& name) {
    name = (target.parent_path() / ("." + target.filename().string() + ".XXXXXX")).string();
    return mkstemp(name.data());
}

bool write_all(int fd, const std::string& text) {
    for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += std::size_t(n);
    }
    return true;
}

// The mode a new file gets (0666 less the umask), else the replaced file's.
mode_t mode_for(const fs::path& target) {
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) return st.st_mode & 07777;
    const mode_t mask = ::umask(0);
    ::umask(mask);
    return 0666 & ~mask;
}

}  // namespace

void check_output_files(const std::vector<output_file>& files) {
    for (std::size_t a = 0; a < files.size(); ++a) {
        const fs::path target = resolved(files[a].path);
        for (std::size_t b = 0; b < a; ++b) {
            if (resolved(files[b].path) == target)
                throw usage_error(files[b].option + " and " + files[a].option + " name the same file, " +
                                  files[a].path + "; give each output a file of its own");
        }
        struct stat st {};
        if (::stat(target.c_str(), &st) == 0) {
            if (S_ISDIR(st.st_mode)) throw usage_error("cannot write " + named(files[a]) + ": it is a directory");
            if (::access(target.c_str(), W_OK) != 0) throw usage_error("cannot write " + named(files[a]) + ": " + reason());
            if (!S_ISREG(st.st_mode)) continue;  // a device or FIFO, written in place
        }
        std::string probe;
        const int fd = create_beside(target, probe);
        if (fd < 0) throw usage_error("cannot write " + named(files[a]) + ": " + reason());
        ::close(fd);
        ::unlink(probe.c_str());
    }
}

staged_outputs::staged_outputs() {
    sigemptyset(&blocked_);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) sigaddset(&blocked_, signal);
    pthread_sigmask(SIG_BLOCK, &blocked_, &previous_);
}

staged_outputs::~staged_outputs() {
    for (const staged& s : staged_)
        if (!s.temporary.empty()) ::unlink(s.temporary.c_str());
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

void staged_outputs::stage(const output_file& file, const std::string& text) {
    const fs::path target = resolved(file.path);
    struct stat st {};
    const bool in_place = ::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
    staged s{file, {}, target.string()};
    int fd = -1;
    if (in_place) {
        fd = ::open(target.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    } else {
        fd = create_beside(target, s.temporary);
        if (fd >= 0) staged_.push_back(s);  // removed by the destructor unless committed
    }
    const auto fail = [&] { return atman::error("cannot write " + named(file) + ": " + reason()); };
    if (fd < 0) throw fail();
    const bool written = write_all(fd, text) && (in_place || (::fchmod(fd, mode_for(target)) == 0 && ::fsync(fd) == 0));
    const int write_errno = errno;
    if (::close(fd) != 0 || !written) {
        if (!written) errno = write_errno;
        throw fail();
    }
}

void staged_outputs::commit() {
    for (staged& s : staged_) {
        if (::rename(s.temporary.c_str(), s.target.c_str()) != 0)
            throw atman::error("cannot write " + named(s.file) + ": " + reason());
        s.temporary.clear();
    }
}

void write_stdout(const std::string& text) {
    errno = 0;
    const bool written = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
    if (std::fflush(stdout) != 0 || !written || std::ferror(stdout))
        throw atman::error("cannot write the output to standard output: " +
                           (errno != 0 ? reason() : std::string("write error")));
}

void require_open_stdout() {
    if (::fcntl(STDOUT_FILENO, F_GETFD) == -1)
        throw usage_error("standard output is closed; give -o FILE to write the output to a file");
}

}  // namespace atman::engine
