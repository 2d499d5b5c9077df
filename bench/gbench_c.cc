// gbench_c.cc -- the C interface of gbench_c.h over Google Benchmark (C++).
//
// gb_state and gb_bench are never defined: pointers to them are
// benchmark::State and benchmark::internal::Benchmark cast. No exception may
// reach C, so every entry point that allocates catches.
#include "gbench_c.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

benchmark::State *S(gb_state *st) { return reinterpret_cast<benchmark::State *>(st); }
const benchmark::State *S(const gb_state *st) {
  return reinterpret_cast<const benchmark::State *>(st);
}
benchmark::internal::Benchmark *B(gb_bench *b) {
  return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}

// Seconds per iteration, by full benchmark name.
struct Timings {
  std::vector<double> runs;   // one per repetition
  double median = -1.0;       // the "median" aggregate, when there was one
};
std::map<std::string, Timings> g_results, g_real;  // CPU time, wall-clock time

// Forwards everything to the reporter the flags ask for (console, json, csv)
// and keeps each run's CPU time for gb_result_cpu_time.
class RecordingReporter : public benchmark::BenchmarkReporter {
 public:
  explicit RecordingReporter(benchmark::BenchmarkReporter *inner) : inner_(inner) {}
  bool ReportContext(const Context &context) override { return inner_->ReportContext(context); }
  void ReportRuns(const std::vector<Run> &reports) override {
    for (const Run &r : reports) {
      if (r.error_occurred || r.iterations <= 0) continue;
      double unit = benchmark::GetTimeUnitMultiplier(r.time_unit);
      record(g_results[r.run_name.str()], r, r.GetAdjustedCPUTime() / unit);
      record(g_real[r.run_name.str()], r, r.GetAdjustedRealTime() / unit);
    }
    inner_->ReportRuns(reports);
  }
  void Finalize() override { inner_->Finalize(); }

 private:
  static void record(Timings &t, const Run &r, double sec) {
    if (r.run_type == Run::RT_Aggregate) {
      if (r.aggregate_name == "median") t.median = sec;
    } else {
      t.runs.push_back(sec);
    }
  }
  benchmark::BenchmarkReporter *inner_;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

extern "C" {

gb_bench *gb_register(const char *name, gb_fn fn, void *ctx) {
  try {
    auto *b = benchmark::RegisterBenchmark(
        name, [fn, ctx](benchmark::State &st) { fn(reinterpret_cast<gb_state *>(&st), ctx); });
    return reinterpret_cast<gb_bench *>(b);
  } catch (...) {
    return nullptr;
  }
}

void gb_add_args(gb_bench *b, const int64_t *args, size_t n) {
  if (!b || !args || n == 0) return;
  try {
    B(b)->Args(std::vector<int64_t>(args, args + n));
  } catch (...) {
  }
}

void gb_set_iterations(gb_bench *b, int64_t n) {
  if (b && n > 0) B(b)->Iterations(n);
}

void gb_set_repetitions(gb_bench *b, int n) {
  if (b && n > 0) B(b)->Repetitions(n);
}

void gb_set_unit(gb_bench *b, gb_unit unit) {
  static const benchmark::TimeUnit units[] = {benchmark::kNanosecond, benchmark::kMicrosecond,
                                              benchmark::kMillisecond, benchmark::kSecond};
  if (b && unit >= GB_NANOSECOND && unit <= GB_SECOND) B(b)->Unit(units[unit]);
}

int gb_keep_running(gb_state *st) { return S(st)->KeepRunning(); }

int64_t gb_range(const gb_state *st, size_t i) { return S(st)->range(i); }

int64_t gb_iterations(const gb_state *st) { return S(st)->iterations(); }

void gb_pause_timing(gb_state *st) { S(st)->PauseTiming(); }
void gb_resume_timing(gb_state *st) { S(st)->ResumeTiming(); }

void gb_set_items_processed(gb_state *st, int64_t items) { S(st)->SetItemsProcessed(items); }
void gb_set_bytes_processed(gb_state *st, int64_t bytes) { S(st)->SetBytesProcessed(bytes); }

void gb_set_counter(gb_state *st, const char *name, double value, unsigned flags) {
  using C = benchmark::Counter;
  int f = C::kDefaults;
  if (flags & GB_COUNTER_RATE) f |= C::kIsRate;
  if (flags & GB_COUNTER_PER_ITERATION) f |= C::kAvgIterations;
  if (flags & GB_COUNTER_INVARIANT) f |= C::kIsIterationInvariant;
  try {
    S(st)->counters[name] = C(value, static_cast<C::Flags>(f),
                              (flags & GB_COUNTER_BASE_1024) ? C::kIs1024 : C::kIs1000);
  } catch (...) {
  }
}

void gb_set_label(gb_state *st, const char *label) {
  try {
    S(st)->SetLabel(label);
  } catch (...) {
  }
}

void gb_skip_with_error(gb_state *st, const char *msg) { S(st)->SkipWithError(msg); }
int gb_error_occurred(const gb_state *st) { return S(st)->error_occurred(); }

void gb_do_not_optimize(const void *p) { benchmark::DoNotOptimize(p); }
void gb_clobber_memory(void) { benchmark::ClobberMemory(); }

void gb_add_context(const char *key, const char *value) {
  try {
    benchmark::AddCustomContext(key, value);
  } catch (...) {
  }
}

int gb_initialize(int *argc, char **argv, const char *const *defaults, size_t ndefaults) {
  try {
    // argv[0], the defaults, then the real arguments: benchmark parses flags
    // in order and the last occurrence wins.
    static std::vector<std::string> storage;
    static std::vector<char *> args;
    storage.assign(1, *argc > 0 ? argv[0] : "bench");
    for (size_t i = 0; i < ndefaults; i++) storage.emplace_back(defaults[i]);
    for (int i = 1; i < *argc; i++) storage.emplace_back(argv[i]);
    args.clear();
    for (std::string &s : storage) args.push_back(&s[0]);
    args.push_back(nullptr);
    int n = static_cast<int>(storage.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return -1;
    *argc = std::min(*argc, n);
    for (int i = 0; i < *argc; i++) argv[i] = args[i];
    return 0;
  } catch (...) {
    return -1;
  }
}

size_t gb_run(void) {
  try {
    g_results.clear();
    // The default display reporter honours --benchmark_format and colour flags;
    // it belongs to the library (it is never freed there either).
    RecordingReporter rep(benchmark::CreateDefaultDisplayReporter());
    return benchmark::RunSpecifiedBenchmarks(&rep);
  } catch (...) {
    return 0;
  }
}

void gb_use_real_time(gb_bench *b) {
  if (b) B(b)->UseRealTime();
}

static int result_time(const std::map<std::string, Timings> &results, const char *full_name,
                       double *seconds) {
  auto it = results.find(full_name);
  if (it == results.end()) return -1;
  const Timings &t = it->second;
  if (t.median >= 0.0) {
    *seconds = t.median;
    return 0;
  }
  if (t.runs.empty()) return -1;
  *seconds = median_of(t.runs);
  return 0;
}

int gb_result_cpu_time(const char *full_name, double *seconds) {
  return result_time(g_results, full_name, seconds);
}

int gb_result_real_time(const char *full_name, double *seconds) {
  return result_time(g_real, full_name, seconds);
}

void gb_shutdown(void) { benchmark::Shutdown(); }

int gb_main(int argc, char **argv, const char *const *defaults, size_t ndefaults) {
  if (gb_initialize(&argc, argv, defaults, ndefaults) != 0) return 2;
  gb_run();
  gb_shutdown();
  return 0;
}

}  // extern "C"
