// Helpers of the emulation's tests: device copies of host vectors and back, and a child process that must abort.
#ifndef REPRISE_EMU_TEST_UTIL_H
#define REPRISE_EMU_TEST_UTIL_H

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "kernels/cuda_compat.h"
#include "tests/test_util.h"

template <typename T> static T *device_copy(const std::vector<T> &h) {
    T *d;
    cudaMalloc((void **)&d, h.size() * sizeof(T));
    cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}

template <typename T> static std::vector<T> host_copy(const T *d, size_t n) {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
}

// Runs fn in a child process; it must abort (or, for sanitizer reports, exit non-zero when `any_failure`), and its
// stderr must mention every string in `want`.
template <typename F>
static void expect_abort(const char *what, F fn, std::vector<std::string> want, const char *env = nullptr, bool any_failure = false) {
    int pipefd[2];
    if (pipe(pipefd)) abort();
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        if (env) putenv(const_cast<char *>(env));
        fn();
        _exit(0);
    }
    close(pipefd[1]);
    std::string err;
    char buf[512];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) err.append(buf, (size_t)n);
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    bool failed = (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) || (any_failure && WIFEXITED(status) && WEXITSTATUS(status));
    CHECK(failed, "%s: the child did not abort (status %d); stderr: %s", what, status, err.c_str());
    for (const std::string &w : want) CHECK(err.find(w) != std::string::npos, "%s: stderr lacks '%s': %s", what, w.c_str(), err.c_str());
}

#endif
