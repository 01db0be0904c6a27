/* Prints the C compiler's layout of the structures relattn/_capi.py mirrors, one
 * "struct field offset" or "struct sizeof size" line each, for tests/test_layout.py. */
#include <stddef.h>
#include <stdio.h>

#include "relattn/relattn.h"

#define FIELD(type, field) printf(#type " " #field " %zu\n", offsetof(type, field))
#define SIZE(type) printf(#type " sizeof %zu\n", sizeof(type))

int main(void) {
  SIZE(relattn_tensor);
  FIELD(relattn_tensor, data);
  FIELD(relattn_tensor, dtype);
  FIELD(relattn_tensor, token_stride);
  FIELD(relattn_tensor, head_stride);
  FIELD(relattn_tensor, row_scales);
  FIELD(relattn_tensor, scale_token_stride);
  FIELD(relattn_tensor, scale_head_stride);
  SIZE(relattn_output);
  FIELD(relattn_output, data);
  FIELD(relattn_output, dtype);
  FIELD(relattn_output, token_stride);
  FIELD(relattn_output, head_stride);
  SIZE(relattn_positions);
  FIELD(relattn_positions, positions);
  FIELD(relattn_positions, start);
  SIZE(relattn_alibi);
  FIELD(relattn_alibi, slopes);
  FIELD(relattn_alibi, max_bias);
  FIELD(relattn_alibi, causal);
  SIZE(relattn_t5);
  FIELD(relattn_t5, table);
  FIELD(relattn_t5, table_dtype);
  FIELD(relattn_t5, table_scales);
  FIELD(relattn_t5, num_buckets);
  FIELD(relattn_t5, max_distance);
  FIELD(relattn_t5, bidirectional);
  SIZE(relattn_shaw);
  FIELD(relattn_shaw, table);
  FIELD(relattn_shaw, k);
  SIZE(relattn_shaw_vector);
  FIELD(relattn_shaw_vector, table);
  FIELD(relattn_shaw_vector, k);
  FIELD(relattn_shaw_vector, per_head);
  SIZE(relattn_bias);
  FIELD(relattn_bias, kind);
  FIELD(relattn_bias, alibi);
  FIELD(relattn_bias, t5);
  FIELD(relattn_bias, shaw);
  FIELD(relattn_bias, shaw_vector);
  SIZE(relattn_rope);
  FIELD(relattn_rope, pairing);
  FIELD(relattn_rope, rotary_dims);
  FIELD(relattn_rope, base);
  FIELD(relattn_rope, linear_scale);
  FIELD(relattn_rope, scaling);
  SIZE(relattn_rope_scaling);
  FIELD(relattn_rope_scaling, type);
  FIELD(relattn_rope_scaling, factor);
  FIELD(relattn_rope_scaling, low_freq_factor);
  FIELD(relattn_rope_scaling, high_freq_factor);
  FIELD(relattn_rope_scaling, beta_fast);
  FIELD(relattn_rope_scaling, beta_slow);
  FIELD(relattn_rope_scaling, no_truncate);
  FIELD(relattn_rope_scaling, attention_factor);
  FIELD(relattn_rope_scaling, original_max_position);
  FIELD(relattn_rope_scaling, max_position);
  FIELD(relattn_rope_scaling, sequence_length);
  FIELD(relattn_rope_scaling, short_factor);
  FIELD(relattn_rope_scaling, long_factor);
  FIELD(relattn_rope_scaling, inv_freq);
  SIZE(relattn_mask);
  FIELD(relattn_mask, causal);
  FIELD(relattn_mask, window);
  FIELD(relattn_mask, n_valid_kv);
  FIELD(relattn_mask, first_valid_kv);
  SIZE(relattn_attention_desc);
  FIELD(relattn_attention_desc, n_q);
  FIELD(relattn_attention_desc, n_kv);
  FIELD(relattn_attention_desc, n_heads);
  FIELD(relattn_attention_desc, n_kv_heads);
  FIELD(relattn_attention_desc, head_dim);
  FIELD(relattn_attention_desc, v_head_dim);
  FIELD(relattn_attention_desc, q);
  FIELD(relattn_attention_desc, k);
  FIELD(relattn_attention_desc, v);
  FIELD(relattn_attention_desc, o);
  FIELD(relattn_attention_desc, q_pos);
  FIELD(relattn_attention_desc, k_pos);
  FIELD(relattn_attention_desc, scale);
  FIELD(relattn_attention_desc, bias);
  FIELD(relattn_attention_desc, rope);
  FIELD(relattn_attention_desc, mask);
  FIELD(relattn_attention_desc, kv_cache);
  FIELD(relattn_attention_desc, softcap);
  FIELD(relattn_attention_desc, sinks);
  FIELD(relattn_attention_desc, lse);
  SIZE(relattn_merge_desc);
  FIELD(relattn_merge_desc, n_q);
  FIELD(relattn_merge_desc, n_heads);
  FIELD(relattn_merge_desc, v_head_dim);
  FIELD(relattn_merge_desc, a);
  FIELD(relattn_merge_desc, b);
  FIELD(relattn_merge_desc, lse_a);
  FIELD(relattn_merge_desc, lse_b);
  FIELD(relattn_merge_desc, sinks);
  FIELD(relattn_merge_desc, o);
  FIELD(relattn_merge_desc, lse);
  SIZE(relattn_kv_cache_desc);
  FIELD(relattn_kv_cache_desc, n_kv_heads);
  FIELD(relattn_kv_cache_desc, head_dim);
  FIELD(relattn_kv_cache_desc, v_head_dim);
  FIELD(relattn_kv_cache_desc, capacity);
  FIELD(relattn_kv_cache_desc, k_dtype);
  FIELD(relattn_kv_cache_desc, v_dtype);
  FIELD(relattn_kv_cache_desc, ring);
  FIELD(relattn_kv_cache_desc, rope);
  FIELD(relattn_kv_cache_desc, n_sink_tokens);
  FIELD(relattn_kv_cache_desc, sink_positions);
  SIZE(relattn_threads);
  FIELD(relattn_threads, parallel_for);
  FIELD(relattn_threads, context);
  FIELD(relattn_threads, n_threads);
  return 0;
}
