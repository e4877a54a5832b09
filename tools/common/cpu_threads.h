// How the CPU backend's OpenMP threads wait for work: spinning bounded, so that other work on the machine runs.
#ifndef REPRISE_CPU_THREADS_H
#define REPRISE_CPU_THREADS_H

// The spin count reprise runs libgomp with (GOMP_SPINCOUNT) unless the user chose a wait policy.
#define CPU_THREADS_SPINCOUNT "1000"

// libgomp's workers spin 300,000 times at every barrier before they sleep (its default when OMP_WAIT_POLICY is
// unset). Alone on a machine that is the fastest wait; beside any other busy process (a second shard of a sweep, the
// server's own HTTP threads, a client) the spinning workers take the cores the others need, and both slow down by
// 10x or more (bench_cpu --contention measures it). 1,000 spins, libgomp's own figure for an oversubscribed machine,
// keeps the single-process speed. libgomp reads the variable once, when it is loaded, before main: so a program
// calls this first thing in main, and it sets the variable and runs the program again (argv, same process id),
// unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set already. Where exec fails, the program goes on as it is.
void cpu_threads_bound_spinning(char **argv);

#endif
