/*
 * reference_eval: runs tests/reference.c on cases read from stdin, for
 * tools/check_reference.py. One case per line:
 *   distance(0 ce, 1 mse) factor T rows cols  v_1 ... v_{2*rows*cols}
 * (student then teacher, row-major, any strtof spelling: hex floats, inf,
 * nan). Prints one line per case: the loss, then the gradient, as hex doubles.
 */
#include <stdio.h>
#include <stdlib.h>
#include "reference.h"

int main(void) {
  int d;
  float factor, temperature;
  size_t rows, cols;
  char word[64];
  while (scanf("%d %63s", &d, word) == 2) {
    factor = strtof(word, NULL);
    if (scanf("%63s %zu %zu", word, &rows, &cols) != 3) return 1;
    temperature = strtof(word, NULL);
    size_t n = rows * cols;
    float *x = malloc(2 * n * sizeof *x);
    double *g = malloc(n * sizeof *g);
    if (!x || !g) return 1;
    for (size_t i = 0; i < 2 * n; i++) {
      if (scanf("%63s", word) != 1) return 1;
      x[i] = strtof(word, NULL);
    }
    double loss = kd_reference_f64(d ? KD_MSE : KD_CROSS_ENTROPY, factor, temperature, rows,
                                   cols, x, cols, x + n, cols, g);
    printf("%a", loss);
    for (size_t i = 0; i < n; i++) printf(" %a", g[i]);
    printf("\n");
    free(x);
    free(g);
  }
  return 0;
}
