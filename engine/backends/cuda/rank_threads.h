// The host threads of a tensor-parallel run: one per rank (GPU), each bound to its device for its whole life, so
// that a rank's stream, graph captures (thread-local) and NCCL calls always come from the same thread.
#ifndef REPRISE_RANK_THREADS_H
#define REPRISE_RANK_THREADS_H

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

// A reusable barrier of n threads.
class rank_barrier {
  public:
    void reset(int n) { n_ = n, count_ = 0; }
    void wait() {
        std::unique_lock<std::mutex> lk(mu_);
        long gen = generation_;
        if (++count_ == n_) {
            count_ = 0, generation_++;
            cv_.notify_all();
        } else
            cv_.wait(lk, [&] { return generation_ != gen; });
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    int n_ = 1, count_ = 0;
    long generation_ = 0;
};

// run(f): every thread i runs f(i), and run returns when all have. The threads start with init(i).
class rank_threads {
  public:
    void start(int n, std::function<void(int)> init) {
        for (int i = 0; i < n; i++)
            threads_.emplace_back([this, i, init] {
                init(i);
                long seen = 0;
                for (;;) {
                    std::function<void(int)> job;
                    {
                        std::unique_lock<std::mutex> lk(mu_);
                        cv_work_.wait(lk, [&] { return stop_ || job_id_ != seen; });
                        if (stop_) return;
                        seen = job_id_, job = job_;
                    }
                    job(i);
                    std::lock_guard<std::mutex> lk(mu_);
                    if (--pending_ == 0) cv_done_.notify_all();
                }
            });
    }
    int size() const { return (int)threads_.size(); }
    void run(const std::function<void(int)> &f) {
        std::unique_lock<std::mutex> lk(mu_);
        job_ = f, pending_ = (int)threads_.size(), job_id_++;
        cv_work_.notify_all();
        cv_done_.wait(lk, [&] { return pending_ == 0; });
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
        }
        cv_work_.notify_all();
        for (std::thread &t : threads_) t.join();
        threads_.clear();
    }

  private:
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_work_, cv_done_;
    std::function<void(int)> job_;
    long job_id_ = 0;
    int pending_ = 0;
    bool stop_ = false;
};

#endif
