/* Guard pages around every row, on every ISA: a kernel that reads or writes a
 * single float outside the caller's rows x cols (before a row, after it, or
 * in the padding between rows) faults, and the fault is reported as a test
 * failure naming the case. Sanitizers cannot see this for the SIMD files: a
 * masked load or store is a builtin they do not instrument.
 *
 * Each row lies either flush against the page after it (every tail length
 * ends at a guard page) or flush against the page before it (every head
 * starts at one); the padding between rows is a guard page too. The results
 * must equal, bit for bit, those of the same rows in ordinary dense buffers.
 */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS, sigsetjmp under -std=c11 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "tester.h"

/* A rows x cols matrix whose rows are fenced by inaccessible pages. */
typedef struct guarded {
  unsigned char *base;
  size_t bytes;
  float *m; /* row i at m + i * ld */
  size_t ld;
} guarded;

static guarded guarded_new(size_t rows, size_t cols, int flush_end) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), fpp = page / sizeof(float);
  size_t data_pages = (cols + fpp - 1) / fpp, stride_pages = data_pages + 1;
  guarded g;
  g.bytes = (1 + rows * stride_pages) * page;
  void *p = mmap(NULL, g.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail_msg("mmap of %zu bytes failed", g.bytes);
  g.base = p;
  /* Page 0, then after each row's data pages, one guard page. */
  if (mprotect(g.base, page, PROT_NONE) != 0) fail_msg("mprotect failed");
  for (size_t i = 0; i < rows; i++)
    if (mprotect(g.base + (1 + i * stride_pages + data_pages) * page, page, PROT_NONE) != 0)
      fail_msg("mprotect failed");
  g.ld = stride_pages * fpp;
  g.m = (float *)(g.base + page) + (flush_end ? data_pages * fpp - cols : 0);
  return g;
}

static void guarded_free(guarded *g) {
  munmap(g->base, g->bytes);
}

static sigjmp_buf fault_jump;
static volatile sig_atomic_t faulted;

static void on_fault(int sig) {
  (void)sig;
  faulted = 1;
  siglongjmp(fault_jump, 1);
}

typedef enum call_kind { LOSS, LOSS_GRAD, IN_PLACE } call_kind;
static const char *const call_names[] = {"loss", "loss+grad", "loss+grad in place"};

/* The call under guard: returns its status, or fails the test on a fault. */
static kd_status guarded_call(kd_distance d, call_kind k, size_t rows, size_t cols,
                              float *s, const float *t, float *g, size_t ld, float *loss,
                              int flush_end) {
  volatile kd_status st = KD_OK; /* set between sigsetjmp and a possible siglongjmp */
  faulted = 0;
  if (sigsetjmp(fault_jump, 1) == 0) {
    if (k == LOSS)
      st = kd_loss_f32(d, 1.0f, 2.0f, rows, cols, s, ld, t, ld, loss);
    else
      st = kd_loss_grad_f32(d, 1.0f, 2.0f, rows, cols, s, ld, t, ld, loss, k == IN_PLACE ? s : g,
                            ld);
  }
  if (faulted)
    fail_msg("isa=%s %s %s rows=%zu cols=%zu, rows flush against the guard page %s: "
             "touched memory outside the rows (SIGSEGV)",
             kd_isa_name(kd_get_isa()), tk_distance_name(d), call_names[k], rows, cols,
             flush_end ? "after" : "before");
  return st;
}

static void check_case(kd_distance d, size_t rows, size_t cols, int flush_end, uint64_t seed) {
  size_t n = rows * cols;
  /* The reference run: the same values in dense buffers. */
  float *s = tk_malloc(n * sizeof(float)), *t = tk_malloc(n * sizeof(float));
  float *g = tk_malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    s[i] = (float)(3.0 * tk_normal(&seed));
    t[i] = (float)(3.0 * tk_normal(&seed));
  }
  guarded gs = guarded_new(rows, cols, flush_end), gt = guarded_new(rows, cols, flush_end);
  guarded gg = guarded_new(rows, cols, flush_end);
  for (call_kind k = LOSS; k <= IN_PLACE; k++) {
    for (size_t i = 0; i < rows; i++) {
      memcpy(gs.m + i * gs.ld, s + i * cols, cols * sizeof(float));
      memcpy(gt.m + i * gt.ld, t + i * cols, cols * sizeof(float));
    }
    float *s_ref = k == IN_PLACE ? tk_malloc(n * sizeof(float)) : s;
    if (k == IN_PLACE) memcpy(s_ref, s, n * sizeof(float));
    float want = NAN, got = NAN;
    kd_status st_want = k == LOSS
                            ? kd_loss_f32(d, 1.0f, 2.0f, rows, cols, s_ref, cols, t, cols, &want)
                            : kd_loss_grad_f32(d, 1.0f, 2.0f, rows, cols, s_ref, cols, t, cols,
                                               &want, k == IN_PLACE ? s_ref : g, cols);
    kd_status st = guarded_call(d, k, rows, cols, gs.m, gt.m, gg.m, gs.ld, &got, flush_end);
    assert_int_equal(st_want, KD_OK);
    assert_int_equal(st, KD_OK);
    if (memcmp(&want, &got, sizeof want) != 0)
      fail_msg("isa=%s %s %s rows=%zu cols=%zu: loss %.9g in guarded rows, %.9g dense",
               kd_isa_name(kd_get_isa()), tk_distance_name(d), call_names[k], rows, cols,
               got, want);
    if (k != LOSS) {
      const float *gw = k == IN_PLACE ? s_ref : g, *gm = k == IN_PLACE ? gs.m : gg.m;
      for (size_t i = 0; i < rows; i++)
        if (memcmp(gm + i * gs.ld, gw + i * cols, cols * sizeof(float)) != 0)
          fail_msg("isa=%s %s %s rows=%zu cols=%zu: gradient row %zu differs from the dense run",
                   kd_isa_name(kd_get_isa()), tk_distance_name(d), call_names[k], rows,
                   cols, i);
    }
    if (k == IN_PLACE) free(s_ref);
  }
  guarded_free(&gs);
  guarded_free(&gt);
  guarded_free(&gg);
  free(s);
  free(t);
  free(g);
}

/* Every tail length of every ISA's vector loops, block edges, and both sides
 * of the cross-entropy scratch threshold (2048 classes). */
static const size_t widths[] = {63,  64,   65,   100,  255,  256,  257,  1000, 1023,
                                1024, 1025, 2047, 2048, 2049, 4097, 32000};

static void bounds(kd_distance d) {
  struct sigaction sa, old_segv, old_bus;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fault;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
  sigaction(SIGBUS, &sa, &old_bus);
  uint64_t seed = 1;
  for (int flush_end = 0; flush_end <= 1; flush_end++) {
    for (size_t cols = 1; cols <= 40; cols++)
      for (size_t rows = 1; rows <= 3; rows += 2) check_case(d, rows, cols, flush_end, seed++);
    for (size_t k = 0; k < TK_COUNT(widths); k++)
      check_case(d, 3, widths[k], flush_end, seed++);
  }
  sigaction(SIGSEGV, &old_segv, NULL);
  sigaction(SIGBUS, &old_bus, NULL);
}

static void ce_bounds(void **state) {
  (void)state;
  bounds(KD_CROSS_ENTROPY);
}

static void mse_bounds(void **state) {
  (void)state;
  bounds(KD_MSE);
}

/* The family's distances: their own passes (divloss, klsum, divstats, BCE). */
static void family_bounds(void **state) {
  (void)state;
  for (size_t k = 0; k < TK_COUNT(tk_distances); k++)
    if (tk_distances[k] != KD_CROSS_ENTROPY && tk_distances[k] != KD_MSE)
      bounds(tk_distances[k]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ce_bounds),
      cmocka_unit_test(mse_bounds),
      cmocka_unit_test(family_bounds),
  };
  tk_isa_runs r = tk_isa_runs_start("bounds");
  while (tk_isa_next(&r))
    r.failures += cmocka_run_group_tests_name(r.name, tests, NULL, NULL);
  return r.failures;
}
