/* The README's C example: causal ALiBi attention over one sequence. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relattn/relattn.h"

enum { N = 64, HEADS = 4, D = 32 };
static float q[N][HEADS][D], k[N][HEADS][D], v[N][HEADS][D], o[N][HEADS][D];

int main(int argc, char** argv) {
  if (argc > 1) { /* no options: --help says so, anything else is an error */
    const int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
    fprintf(help ? stdout : stderr,
            "%susage: relattn-minimal (no options)\nCausal ALiBi attention over %d tokens, "
            "%d heads, d %d; prints two output values.\n",
            help ? "" : "relattn-minimal: unknown option\n", N, HEADS, D);
    return help ? 0 : 2;
  }
  for (int i = 0; i < N * HEADS * D; ++i) {
    (&q[0][0][0])[i] = sinf(0.1f * i);
    (&k[0][0][0])[i] = cosf(0.3f * i);
    (&v[0][0][0])[i] = (float)(i % 7) - 3.0f;
  }
  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc); /* f32, no bias, scale 1/sqrt(D) */
  desc.n_q = desc.n_kv = N;
  desc.n_heads = desc.n_kv_heads = HEADS;
  desc.head_dim = D;
  desc.q = (relattn_tensor){q, RELATTN_F32, HEADS * D, D, NULL, 0, 0};
  desc.k = (relattn_tensor){k, RELATTN_F32, HEADS * D, D, NULL, 0, 0};
  desc.v = (relattn_tensor){v, RELATTN_F32, HEADS * D, D, NULL, 0, 0};
  desc.o = (relattn_output){o, RELATTN_F32, HEADS * D, D};
  desc.bias.kind = RELATTN_BIAS_ALIBI;
  desc.bias.alibi.max_bias = 8.0f; /* the ALiBi paper's slopes */
  desc.bias.alibi.causal = 1;
  desc.mask.causal = 1;

  size_t bytes = 0;
  relattn_status s = relattn_attention_workspace_size(&desc, 1, &bytes);
  unsigned char* buffer = malloc(bytes + RELATTN_WORKSPACE_ALIGNMENT);
  void* ws =
      buffer + (RELATTN_WORKSPACE_ALIGNMENT - (uintptr_t)buffer % RELATTN_WORKSPACE_ALIGNMENT);
  if (s == RELATTN_OK)
    s = buffer ? relattn_attention(&desc, ws, bytes, NULL) : RELATTN_ERR_NULL_ARGUMENT;
  free(buffer);
  if (s != RELATTN_OK) {
    fprintf(stderr, "relattn: %s: %s\n", relattn_status_string(s), relattn_last_error());
    return 1;
  }
  /* Query 0 sees only key 0: its output is v[0]. */
  printf("o[0][0][0] = %g (v[0][0][0] = %g), o[63][3][0] = %g\n", o[0][0][0], v[0][0][0],
         o[63][3][0]);
  return o[0][0][0] == v[0][0][0] ? 0 : 1;
}
