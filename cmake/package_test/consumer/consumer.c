/* Uses the installed relattn: causal ALiBi attention on 3 tokens, checked by hand. */
#include <math.h>
#include <stdio.h>

#include "relattn/relattn.h"

int main(void) {
  /* 3 tokens, 1 head, d = 2; zero queries and keys: each query averages the values it sees. */
  float q[3][2] = {{0}}, k[3][2] = {{0}}, v[3][2] = {{1, 2}, {3, 4}, {5, 6}}, o[3][2];
  static _Alignas(RELATTN_WORKSPACE_ALIGNMENT) unsigned char workspace[1 << 20];
  relattn_attention_desc desc;
  relattn_attention_desc_init(&desc);
  desc.n_q = desc.n_kv = 3;
  desc.n_heads = desc.n_kv_heads = 1;
  desc.head_dim = 2;
  desc.q = (relattn_tensor){q, RELATTN_F32, 2, 2, NULL, 0, 0};
  desc.k = (relattn_tensor){k, RELATTN_F32, 2, 2, NULL, 0, 0};
  desc.v = (relattn_tensor){v, RELATTN_F32, 2, 2, NULL, 0, 0};
  desc.o = (relattn_output){o, RELATTN_F32, 2, 2};
  desc.mask.causal = 1;
  size_t bytes = 0;
  relattn_status s = relattn_attention_workspace_size(&desc, 1, &bytes);
  if (s == RELATTN_OK && bytes > sizeof(workspace)) s = RELATTN_ERR_WORKSPACE_TOO_SMALL;
  if (s == RELATTN_OK) s = relattn_attention(&desc, workspace, bytes, NULL);
  if (s != RELATTN_OK) {
    fprintf(stderr, "relattn: %s: %s\n", relattn_status_string(s), relattn_last_error());
    return 1;
  }
  printf("relattn %s: o[2] = (%g, %g)\n", relattn_version_string(), o[2][0], o[2][1]);
  return fabsf(o[1][0] - 2.0f) < 1e-6f && fabsf(o[2][1] - 4.0f) < 1e-6f ? 0 : 1;
}
