// The allocation wrapper: an allocation that cannot be satisfied reports its size and exits with 1, never a crash.
#include <sys/wait.h>
#include <unistd.h>

#include "loader/alloc.h"
#include "tests/test_util.h"

// Runs what() in a child with stderr into a pipe: its exit status and what it printed.
static int in_child(void (*what)(void), char *out, size_t cap) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        what();
        _exit(0);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t got;
    char sink[4096];
    while ((got = read(fd[0], n + 1 < cap ? out + n : sink, n + 1 < cap ? cap - 1 - n : sizeof sink)) > 0)   // all of it:
        if (n + 1 < cap) n += (size_t)got;                                                                    // no SIGPIPE
    out[n] = 0;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void huge_malloc(void) { rp_malloc((size_t)1 << 62); }
static void huge_calloc(void) { rp_calloc((size_t)1 << 40, (size_t)1 << 22); }
static void huge_realloc(void) { rp_realloc(rp_malloc(16), (size_t)1 << 62); }
static void fine(void) { free(rp_strndup(rp_strdup("abc"), 2)); }

static void failures_exit_with_a_message(void) {
    char out[512];
    struct {
        void (*f)(void);
        const char *want;
    } cases[] = {{huge_malloc, "out of memory allocating 4611686018427387904 bytes"},
                 {huge_calloc, "out of memory allocating"},
                 {huge_realloc, "out of memory allocating 4611686018427387904 bytes"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = in_child(cases[i].f, out, sizeof out);
        CHECK(rc == 1 && strstr(out, cases[i].want), "case %zu: exit %d, '%s'", i, rc, out);
    }
    CHECK(in_child(fine, out, sizeof out) == 0 && !*out, "a small allocation: '%s'", out);
}

int main(void) {
    RUN(failures_exit_with_a_message);
    return TEST_EXIT();
}
