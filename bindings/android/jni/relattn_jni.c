/* JNI glue for org.relattn.RelAttn and org.relattn.KVCache (bindings/android/java/): reads
 * RelAttn.Params (and its RelAttn.Rope) into a relattn_attention_desc, points it at the
 * caller's arrays (float[]: F32; short[]: F16 / BF16 bits; byte[] with float[] row scales:
 * I8; long[] positions and allowed bits, int[] segment ids) or direct buffers (F32, F16,
 * BF16), or at a KVCache's memory, sizes already checked by the Java side, and runs one call.
 * A KVCache lives in a direct ByteBuffer its Java object owns, sliced at an address aligned to
 * RELATTN_KV_CACHE_ALIGNMENT: the relattn_kv_cache is its first byte, and the glue keeps no
 * state. Failures throw: RelAttnException with the library's status and message,
 * IllegalArgumentException for a buffer the Java checks cannot see (address, alignment),
 * OutOfMemoryError for the workspace; the outputs and the cache are then left as they were. */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */

#include <jni.h>
#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relattn/relattn.h"
#ifdef RELATTN_JNI_CHECK_SIGNATURES
#include "org_relattn_KVCache.h" /* javac -h: the definitions below must match them */
#include "org_relattn_RelAttn.h"
#endif

/* The field tables below store enums as int32 (relattn.h gives each an int range). */
_Static_assert(sizeof(relattn_dtype) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(relattn_rope_pairing) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(relattn_rope_scaling_type) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(relattn_sink_positions) == sizeof(int32_t), "enum size");

static void Throw(JNIEnv* env, const char* class_name, const char* message) {
  jclass c = (*env)->FindClass(env, class_name);
  if (c) (*env)->ThrowNew(env, c, message);
}

static void ThrowStatus(JNIEnv* env, relattn_status status) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s", relattn_status_string(status), relattn_last_error());
  jclass c = (*env)->FindClass(env, "org/relattn/RelAttnException");
  jmethodID init = c ? (*env)->GetMethodID(env, c, "<init>", "(ILjava/lang/String;)V") : NULL;
  jstring text = init ? (*env)->NewStringUTF(env, message) : NULL;
  jobject e = text ? (*env)->NewObject(env, c, init, (jint)status, text) : NULL;
  if (e) (*env)->Throw(env, (jthrowable)e);
}

static void Check(JNIEnv* env, relattn_status status) {
  if (status != RELATTN_OK) ThrowStatus(env, status);
}

/* Fields of a Java object by name. A missing field leaves NoSuchFieldError pending; once an
 * exception is pending every read returns 0 / NULL (and writes do nothing), and the caller
 * checks ExceptionCheck. */
static jfieldID Field(JNIEnv* env, jobject p, const char* name, const char* type) {
  if ((*env)->ExceptionCheck(env)) return NULL;
  jclass c = (*env)->GetObjectClass(env, p);
  jfieldID f = c ? (*env)->GetFieldID(env, c, name, type) : NULL;
  (*env)->DeleteLocalRef(env, c); /* a call reads ~50 fields: JNI guarantees 16 local refs */
  return f;
}
static jint IntField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "I");
  return f ? (*env)->GetIntField(env, p, f) : 0;
}
static jlong LongField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "J");
  return f ? (*env)->GetLongField(env, p, f) : 0;
}
static jfloat FloatField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "F");
  return f ? (*env)->GetFloatField(env, p, f) : 0.0f;
}
static jboolean BoolField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "Z");
  return f ? (*env)->GetBooleanField(env, p, f) : JNI_FALSE;
}
static jobject ObjectField(JNIEnv* env, jobject p, const char* name, const char* type) {
  jfieldID f = Field(env, p, name, type);
  return f ? (*env)->GetObjectField(env, p, f) : NULL;
}
static jfloatArray ArrayField(JNIEnv* env, jobject p, const char* name) {
  return (jfloatArray)ObjectField(env, p, name, "[F");
}

/* A Java object's scalar field and the C struct member it maps to: type 'I' (int32 or one of
 * relattn.h's enums, which are int), 'J' (int64), 'F' (float) or 'Z' (an int from a Java
 * boolean). */
typedef struct FieldMap {
  const char* name;
  char type;
  size_t offset;
} FieldMap;

static void ReadFields(JNIEnv* env, jobject o, const FieldMap* map, size_t n, void* c) {
  for (size_t i = 0; i < n; ++i) {
    void* at = (char*)c + map[i].offset;
    const char* name = map[i].name;
    switch (map[i].type) {
      case 'I': *(int32_t*)at = IntField(env, o, name); break;
      case 'Z': *(int*)at = BoolField(env, o, name); break;
      case 'J': *(int64_t*)at = LongField(env, o, name); break;
      case 'F': *(float*)at = FloatField(env, o, name); break;
    }
  }
}

/* The inverse of ReadFields: c's members into o's fields. */
static void WriteFields(JNIEnv* env, jobject o, const FieldMap* map, size_t n, const void* c) {
  for (size_t i = 0; i < n; ++i) {
    const void* at = (const char*)c + map[i].offset;
    const char type[2] = {map[i].type, '\0'};
    jfieldID f = Field(env, o, map[i].name, type);
    if (!f) return;
    switch (map[i].type) {
      case 'I': (*env)->SetIntField(env, o, f, *(const int32_t*)at); break;
      case 'Z': (*env)->SetBooleanField(env, o, f, *(const int*)at != 0); break;
      case 'J': (*env)->SetLongField(env, o, f, *(const int64_t*)at); break;
      case 'F': (*env)->SetFloatField(env, o, f, *(const float*)at); break;
    }
  }
}

/* The primitive arrays one call holds: float[] 'F', short[] 'S', byte[] 'B', int[] 'I',
 * long[] 'J', double[] 'D'. Released without copying back, but for the outputs (pinned last,
 * from index outputs_from on), and those only when no exception is pending (a failed call
 * leaves them untouched). */
typedef struct Pinned {
  jarray array;
  void* data;
  char type;
} Pinned;
/* The most a call pins: 3 tables, 3 rope tables, 2 position, 2 segment and 1 allowed arrays,
 * 6 tensors (with their scales), out and lse. */
enum { kMaxPinned = 24 };
typedef struct Pins {
  Pinned at[kMaxPinned];
  int n;
} Pins;

/* The elements of array (NULL: none, or an exception pending, which it leaves so). */
static void* Pin(JNIEnv* env, Pins* pins, jarray array, char type) {
  if (!array || (*env)->ExceptionCheck(env)) return NULL;
  if (pins->n == kMaxPinned) {
    Throw(env, "java/lang/IllegalStateException", "relattn_jni: more arrays than kMaxPinned");
    return NULL;
  }
  void* data = NULL;
  switch (type) {
    case 'F': data = (*env)->GetFloatArrayElements(env, (jfloatArray)array, NULL); break;
    case 'S': data = (*env)->GetShortArrayElements(env, (jshortArray)array, NULL); break;
    case 'B': data = (*env)->GetByteArrayElements(env, (jbyteArray)array, NULL); break;
    case 'I': data = (*env)->GetIntArrayElements(env, (jintArray)array, NULL); break;
    case 'J': data = (*env)->GetLongArrayElements(env, (jlongArray)array, NULL); break;
    case 'D': data = (*env)->GetDoubleArrayElements(env, (jdoubleArray)array, NULL); break;
  }
  if (data) {
    Pinned pin = {array, data, type};
    pins->at[pins->n++] = pin;
  }
  return data;
}

static void Unpin(JNIEnv* env, Pins* pins, int outputs_from) {
  const int ok = !(*env)->ExceptionCheck(env);
  for (int i = 0; i < pins->n; ++i) {
    Pinned* p = &pins->at[i];
    const jint mode = ok && i >= outputs_from ? 0 : JNI_ABORT;
    switch (p->type) {
      case 'F': (*env)->ReleaseFloatArrayElements(env, p->array, p->data, mode); break;
      case 'S': (*env)->ReleaseShortArrayElements(env, p->array, p->data, mode); break;
      case 'B': (*env)->ReleaseByteArrayElements(env, p->array, p->data, mode); break;
      case 'I': (*env)->ReleaseIntArrayElements(env, p->array, p->data, mode); break;
      case 'J': (*env)->ReleaseLongArrayElements(env, p->array, p->data, mode); break;
      case 'D': (*env)->ReleaseDoubleArrayElements(env, p->array, p->data, mode); break;
    }
  }
  pins->n = 0;
}

/* The Java array type holding a tensor of dtype: float[] F32, byte[] I8, short[] F16 / BF16. */
static char ArrayType(relattn_dtype dtype) {
  return dtype == RELATTN_F32 ? 'F' : dtype == RELATTN_I8 || dtype == RELATTN_Q4 ? 'B' : 'S';
}

/* relattn_rope's scalar fields by RelAttn.Rope's names. */
static const FieldMap kRopeFields[] = {
    {"pairing", 'I', offsetof(relattn_rope, pairing)},
    {"rotaryDims", 'I', offsetof(relattn_rope, rotary_dims)},
    {"base", 'F', offsetof(relattn_rope, base)},
    {"linearScale", 'F', offsetof(relattn_rope, linear_scale)},
    {"scaling", 'I', offsetof(relattn_rope, scaling.type)},
    {"factor", 'F', offsetof(relattn_rope, scaling.factor)},
    {"lowFreqFactor", 'F', offsetof(relattn_rope, scaling.low_freq_factor)},
    {"highFreqFactor", 'F', offsetof(relattn_rope, scaling.high_freq_factor)},
    {"betaFast", 'F', offsetof(relattn_rope, scaling.beta_fast)},
    {"betaSlow", 'F', offsetof(relattn_rope, scaling.beta_slow)},
    {"noTruncate", 'Z', offsetof(relattn_rope, scaling.no_truncate)},
    {"attentionFactor", 'F', offsetof(relattn_rope, scaling.attention_factor)},
    {"originalMaxPosition", 'J', offsetof(relattn_rope, scaling.original_max_position)},
    {"maxPosition", 'J', offsetof(relattn_rope, scaling.max_position)},
    {"sequenceLength", 'J', offsetof(relattn_rope, scaling.sequence_length)},
};
enum { kRopeFieldCount = sizeof kRopeFields / sizeof kRopeFields[0] };

/* RelAttn.Rope (null: off) into relattn_rope, field for field (zeros are the C defaults);
 * its tables are pinned in pins. */
static void ReadRope(JNIEnv* env, jobject r, relattn_rope* rope, Pins* pins) {
  relattn_rope zero = {0};
  *rope = zero;
  if (!r) return;
  ReadFields(env, r, kRopeFields, kRopeFieldCount, rope);
  relattn_rope_scaling* s = &rope->scaling;
  s->short_factor = Pin(env, pins, ObjectField(env, r, "shortFactor", "[D"), 'D');
  s->long_factor = Pin(env, pins, ObjectField(env, r, "longFactor", "[D"), 'D');
  s->inv_freq = Pin(env, pins, ObjectField(env, r, "invFreq", "[D"), 'D');
}

/* Params' masks and positions into d; their arrays pinned in pins. */
static void ReadMask(JNIEnv* env, jobject p, relattn_attention_desc* d, Pins* pins) {
  relattn_mask* m = &d->mask;
  m->causal = BoolField(env, p, "causal");
  m->window = LongField(env, p, "window");
  m->n_valid_kv = LongField(env, p, "validKv");
  m->first_valid_kv = LongField(env, p, "firstValidKv");
  m->q_segments = Pin(env, pins, ObjectField(env, p, "qSegments", "[I"), 'I');
  m->k_segments = Pin(env, pins, ObjectField(env, p, "kSegments", "[I"), 'I');
  m->allowed = Pin(env, pins, ObjectField(env, p, "allowed", "[J"), 'J');
  m->allowed_row_words = LongField(env, p, "allowedRowWords");
  m->allowed_key_offset = LongField(env, p, "allowedKeyOffset");
  d->q_pos.start = LongField(env, p, "qStart");
  d->k_pos.start = LongField(env, p, "kStart");
  d->q_pos.positions = Pin(env, pins, ObjectField(env, p, "qPositions", "[J"), 'J');
  d->k_pos.positions = Pin(env, pins, ObjectField(env, p, "kPositions", "[J"), 'J');
}

/* Params' position scheme into d->bias; slopes and table pinned in pins. */
static void ReadBias(JNIEnv* env, jobject p, relattn_attention_desc* d, Pins* pins) {
  const int bidirectional = !d->mask.causal || BoolField(env, p, "bidirectional");
  relattn_bias* b = &d->bias;
  b->kind = (relattn_bias_kind)IntField(env, p, "scheme");
  b->alibi.max_bias = FloatField(env, p, "maxBias");
  b->alibi.causal = !bidirectional;
  b->alibi.slopes = Pin(env, pins, ArrayField(env, p, "slopes"), 'F');
  /* One table field: T5 [heads][buckets], Shaw [heads][2k+1], Shaw vector
   * [heads or 1][2k+1][head_dim]; the kind picks which the library reads. */
  const float* table = Pin(env, pins, ArrayField(env, p, "table"), 'F');
  b->t5.table = b->shaw.table = b->shaw_vector.table = table;
  b->t5.table_dtype = RELATTN_F32;
  b->t5.num_buckets = IntField(env, p, "numBuckets");
  b->t5.max_distance = IntField(env, p, "maxDistance");
  b->t5.bidirectional = bidirectional;
  b->shaw.k = b->shaw_vector.k = IntField(env, p, "shawK");
  b->shaw_vector.per_head = BoolField(env, p, "shawPerHead");
}

/* Everything in Params but the tensors and lse, with rope read from the Rope object given
 * (Params' own, or a KVCache's); every array it reads is pinned in pins. Returns 0 with an
 * exception pending on failure. */
static int ReadParams(JNIEnv* env, jobject p, jobject rope, relattn_attention_desc* d, Pins* pins,
                      int32_t* n_threads) {
  relattn_attention_desc_init(d);
  if ((*env)->EnsureLocalCapacity(env, kMaxPinned + 8) != 0) return 0; /* one ref per array */
  d->n_q = IntField(env, p, "nQ");
  d->n_kv = IntField(env, p, "nKv");
  d->n_heads = IntField(env, p, "heads");
  d->n_kv_heads = IntField(env, p, "kvHeads");
  d->head_dim = IntField(env, p, "headDim");
  d->v_head_dim = IntField(env, p, "vHeadDim");
  d->scale = FloatField(env, p, "scale");
  d->precision = (relattn_precision)IntField(env, p, "precision");
  ReadMask(env, p, d, pins);
  ReadBias(env, p, d, pins);
  d->softcap = FloatField(env, p, "softcap");
  d->sinks = Pin(env, pins, ArrayField(env, p, "sinks"), 'F');
  ReadRope(env, rope, &d->rope, pins);
  *n_threads = IntField(env, p, "threads");
  if ((*env)->ExceptionCheck(env)) return 0;
  if (*n_threads < 1) {
    Throw(env, "java/lang/IllegalArgumentException", "threads: must be >= 1");
    return 0;
  }
  return 1;
}

/* Pins Params' lse (null: not wanted) into d->lse, as an output; 0 with an exception pending if
 * that failed. */
static int PinLse(JNIEnv* env, Pins* pins, jobject p, relattn_attention_desc* d) {
  d->lse = Pin(env, pins, ArrayField(env, p, "lse"), 'F');
  return !(*env)->ExceptionCheck(env);
}

/* Runs d on the calling thread or on a pthreadpool of n_threads; throws on failure. */
static void Run(JNIEnv* env, const relattn_attention_desc* d, int32_t n_threads) {
  pthreadpool_t pool = n_threads > 1 ? pthreadpool_create((size_t)n_threads) : NULL;
  relattn_threads threads;
  relattn_status s = pool ? relattn_threads_from_pthreadpool(pool, &threads) : RELATTN_OK;
  size_t bytes = 0;
  if (s == RELATTN_OK)
    s = relattn_attention_workspace_size(d, pool ? threads.n_threads : 1, &bytes);
  void* workspace = NULL;
  if (s == RELATTN_OK && posix_memalign(&workspace, RELATTN_WORKSPACE_ALIGNMENT, bytes + 1) != 0) {
    if (pool) pthreadpool_destroy(pool);
    Throw(env, "java/lang/OutOfMemoryError", "relattn workspace");
    return;
  }
  if (s == RELATTN_OK) s = relattn_attention(d, workspace, bytes, pool ? &threads : NULL);
  free(workspace);
  if (pool) pthreadpool_destroy(pool);
  Check(env, s);
}

/* A contiguous [tokens][heads][dim] tensor. */
static relattn_tensor Tensor(const void* data, relattn_dtype dtype, int32_t heads, int32_t dim) {
  relattn_tensor t = {data, dtype, (int64_t)heads * dim, dim, NULL, 0, 0};
  return t;
}

/* Whether array is a byte[]. */
static int IsByteArray(JNIEnv* env, jobject array) {
  jclass bytes = (*env)->FindClass(env, "[B");
  if (!bytes) return 0; /* exception pending */
  const int is = (*env)->IsInstanceOf(env, array, bytes);
  (*env)->DeleteLocalRef(env, bytes);
  return is;
}

/* A [tokens][heads][dim] array tensor: values of dtype (F32 float[], F16 / BF16 short[]); with
 * scales, a byte[] with its row scales float[] [tokens][heads] (I8); a byte[] without scales:
 * q4_0 blocks, rows of dim / 32 * 18 bytes (Q4, byte strides). Returns 0 with an exception
 * pending if a pin failed. */
static int ArrayTensor(JNIEnv* env, Pins* pins, jobject values, jfloatArray scales,
                       relattn_dtype dtype, int32_t heads, int32_t dim, relattn_tensor* t) {
  if (scales) {
    dtype = RELATTN_I8;
  } else if (values && IsByteArray(env, values)) {
    dtype = RELATTN_Q4;
    dim = dim / 32 * 18; /* bytes per row; Java checked dim % 32 == 0 */
  }
  const void* data = Pin(env, pins, (jarray)values, ArrayType(dtype));
  *t = Tensor(data, dtype, heads, dim);
  if (scales) {
    t->row_scales = Pin(env, pins, scales, 'F');
    t->scale_token_stride = heads;
    t->scale_head_stride = 1;
  }
  return data && (!scales || t->row_scales);
}

/* The contiguous [n_q][n_heads][v_dim] output. */
static relattn_output Output(void* data, relattn_dtype dtype, int32_t heads, int32_t v_dim) {
  relattn_output o = {data, dtype, (int64_t)heads * v_dim, v_dim};
  return o;
}

/* Pins the output array out of dtype, then Params' lse, from index *outputs_from on; 0 with an
 * exception pending if a pin failed. */
static int PinOutputs(JNIEnv* env, Pins* pins, int* outputs_from, jobject p, jobject out,
                      relattn_dtype dtype, int32_t v_dim, relattn_attention_desc* d) {
  *outputs_from = pins->n;
  void* o = Pin(env, pins, (jarray)out, ArrayType(dtype));
  d->o = Output(o, dtype, d->n_heads, v_dim);
  return o && PinLse(env, pins, p, d);
}

JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeAttentionArrays(
    JNIEnv* env, jclass cls, jobject p, jobject rope, jobject q, jfloatArray q_scales, jobject k,
    jfloatArray k_scales, jobject v, jfloatArray v_scales, jobject out) {
  (void)cls;
  relattn_attention_desc d;
  Pins pins = {.n = 0};
  int32_t n_threads = 1;
  int outputs_from = kMaxPinned;
  if (ReadParams(env, p, rope, &d, &pins, &n_threads)) {
    const relattn_dtype dtype = (relattn_dtype)IntField(env, p, "dtype");
    const relattn_dtype out_dtype = (relattn_dtype)IntField(env, p, "outDtype");
    const int32_t v_dim = d.v_head_dim ? d.v_head_dim : d.head_dim;
    if (ArrayTensor(env, &pins, q, q_scales, dtype, d.n_heads, d.head_dim, &d.q) &&
        ArrayTensor(env, &pins, k, k_scales, dtype, d.n_kv_heads, d.head_dim, &d.k) &&
        ArrayTensor(env, &pins, v, v_scales, dtype, d.n_kv_heads, v_dim, &d.v) &&
        PinOutputs(env, &pins, &outputs_from, p, out, out_dtype, v_dim, &d)) {
      Run(env, &d, n_threads);
    }
  }
  Unpin(env, &pins, outputs_from);
}

/* relattn_quantize_i8 of the F32 x [tokens][heads][dim] into values and scales (lengths
 * checked by the Java side); nothing is written on failure. */
JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeQuantizeI8(JNIEnv* env, jclass cls,
                                                                 jfloatArray x, jint tokens,
                                                                 jint heads, jint dim,
                                                                 jbyteArray values,
                                                                 jfloatArray scales) {
  (void)cls;
  Pins pins = {.n = 0};
  const float* src = Pin(env, &pins, x, 'F');
  int8_t* q = src ? Pin(env, &pins, values, 'B') : NULL;
  float* s = q ? Pin(env, &pins, scales, 'F') : NULL;
  if (s) {
    const relattn_tensor t = Tensor(src, RELATTN_F32, heads, dim);
    relattn_tensor quantized;
    Check(env, relattn_quantize_i8(&t, tokens, heads, dim, q, s, &quantized));
  }
  Unpin(env, &pins, 1); /* values and scales are the outputs */
}

/* relattn_merge of the F32 parts o_a, o_b [n_q][heads][v_dim] with their lse [n_q][heads]
 * (and sinks [heads] or null) into out and lse (null: not wanted); lengths checked by the Java
 * side. out may be o_a or o_b, lse lse_a or lse_b (in place). */
JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeMerge(JNIEnv* env, jclass cls, jint n_q,
                                                            jint heads, jint v_dim, jfloatArray o_a,
                                                            jfloatArray lse_a, jfloatArray o_b,
                                                            jfloatArray lse_b, jfloatArray sinks,
                                                            jfloatArray out, jfloatArray lse) {
  (void)cls;
  Pins pins = {.n = 0};
  relattn_merge_desc d;
  memset(&d, 0, sizeof d);
  d.n_q = n_q;
  d.n_heads = heads;
  d.v_head_dim = v_dim;
  d.a = Tensor(Pin(env, &pins, o_a, 'F'), RELATTN_F32, heads, v_dim);
  d.lse_a = Pin(env, &pins, lse_a, 'F');
  d.b = Tensor(Pin(env, &pins, o_b, 'F'), RELATTN_F32, heads, v_dim);
  d.lse_b = Pin(env, &pins, lse_b, 'F');
  d.sinks = Pin(env, &pins, sinks, 'F');
  const int outputs_from = pins.n;
  d.o = Output(Pin(env, &pins, out, 'F'), RELATTN_F32, heads, v_dim);
  d.lse = Pin(env, &pins, lse, 'F');
  if (!(*env)->ExceptionCheck(env)) Check(env, relattn_merge(&d));
  Unpin(env, &pins, outputs_from);
}

static int ElementBytes(relattn_dtype dtype) {
  return dtype == RELATTN_F32 ? 4 : dtype == RELATTN_I8 ? 1 : 2;
}

/* The address of a direct buffer's byte offset, aligned to its element size; NULL with an
 * exception pending if it has none. */
static void* BufferAt(JNIEnv* env, jobject buffer, jlong offset, relattn_dtype dtype,
                      const char* name) {
  char* base = buffer ? (char*)(*env)->GetDirectBufferAddress(env, buffer) : NULL;
  char message[128];
  if (!base) {
    snprintf(message, sizeof message, "%s: not a direct buffer", name);
  } else if ((uintptr_t)(base + offset) % ElementBytes(dtype) != 0) {
    snprintf(message, sizeof message, "%s: address not aligned to its element size", name);
  } else {
    return base + offset;
  }
  Throw(env, "java/lang/IllegalArgumentException", message);
  return NULL;
}

JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeAttentionBuffers(
    JNIEnv* env, jclass cls, jobject p, jobject rope, jobject q, jlong q_offset, jobject k,
    jlong k_offset, jobject v, jlong v_offset, jobject out, jlong out_offset) {
  (void)cls;
  relattn_attention_desc d;
  Pins pins = {.n = 0};
  int32_t n_threads = 1;
  int outputs_from = kMaxPinned;
  if (ReadParams(env, p, rope, &d, &pins, &n_threads)) {
    const relattn_dtype dtype = (relattn_dtype)IntField(env, p, "dtype");
    const relattn_dtype out_dtype = (relattn_dtype)IntField(env, p, "outDtype");
    const int32_t v_dim = d.v_head_dim ? d.v_head_dim : d.head_dim;
    void* qa = BufferAt(env, q, q_offset, dtype, "q");
    void* ka = qa ? BufferAt(env, k, k_offset, dtype, "k") : NULL;
    void* va = ka ? BufferAt(env, v, v_offset, dtype, "v") : NULL;
    void* oa = va ? BufferAt(env, out, out_offset, out_dtype, "out") : NULL;
    outputs_from = pins.n;
    if (oa && PinLse(env, &pins, p, &d)) {
      d.q = Tensor(qa, dtype, d.n_heads, d.head_dim);
      d.k = Tensor(ka, dtype, d.n_kv_heads, d.head_dim);
      d.v = Tensor(va, dtype, d.n_kv_heads, v_dim);
      d.o = Output(oa, out_dtype, d.n_heads, v_dim);
      Run(env, &d, n_threads);
    }
  }
  Unpin(env, &pins, outputs_from);
}

JNIEXPORT jfloatArray JNICALL Java_org_relattn_RelAttn_alibiSlopes(JNIEnv* env, jclass cls,
                                                                   jint heads, jfloat max_bias) {
  (void)cls;
  float slopes[RELATTN_MAX_HEADS];
  const relattn_status s = relattn_alibi_slopes(heads, max_bias, slopes);
  if (s != RELATTN_OK) {
    ThrowStatus(env, s);
    return NULL;
  }
  jfloatArray result = (*env)->NewFloatArray(env, heads);
  if (result) (*env)->SetFloatArrayRegion(env, result, 0, heads, slopes);
  return result;
}

JNIEXPORT jint JNICALL Java_org_relattn_RelAttn_t5Bucket(JNIEnv* env, jclass cls, jlong offset,
                                                         jint num_buckets, jint max_distance,
                                                         jboolean bidirectional) {
  (void)cls;
  int32_t bucket = 0;
  Check(env, relattn_t5_bucket(offset, num_buckets, max_distance, bidirectional, &bucket));
  return bucket;
}

JNIEXPORT jstring JNICALL Java_org_relattn_RelAttn_version(JNIEnv* env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, relattn_version_string());
}

/* ---------------------------------------------------------------- KV cache (KVCache.java) */

/* relattn_kv_cache_desc's scalar fields by the names of KVCache.Header (and KVCache). */
static const FieldMap kCacheFields[] = {
    {"kvHeads", 'I', offsetof(relattn_kv_cache_desc, n_kv_heads)},
    {"headDim", 'I', offsetof(relattn_kv_cache_desc, head_dim)},
    {"vHeadDim", 'I', offsetof(relattn_kv_cache_desc, v_head_dim)},
    {"capacity", 'J', offsetof(relattn_kv_cache_desc, capacity)},
    {"kDtype", 'I', offsetof(relattn_kv_cache_desc, k_dtype)},
    {"vDtype", 'I', offsetof(relattn_kv_cache_desc, v_dtype)},
    {"ring", 'Z', offsetof(relattn_kv_cache_desc, ring)},
    {"sinkTokens", 'J', offsetof(relattn_kv_cache_desc, n_sink_tokens)},
    {"sinkPositions", 'I', offsetof(relattn_kv_cache_desc, sink_positions)},
};
enum { kCacheFieldCount = sizeof kCacheFields / sizeof kCacheFields[0] };
static const char kRopeType[] = "Lorg/relattn/RelAttn$Rope;";

/* A KVCache.Header (kvHeads ... sinkPositions, rope) as a relattn_kv_cache_desc; the rope's
 * tables are pinned in pins. Returns 0 with an exception pending on failure. */
static int ReadCacheDesc(JNIEnv* env, jobject h, relattn_kv_cache_desc* d, Pins* pins) {
  relattn_kv_cache_desc zero = {0};
  *d = zero;
  ReadFields(env, h, kCacheFields, kCacheFieldCount, d);
  ReadRope(env, ObjectField(env, h, "rope", kRopeType), &d->rope, pins);
  return !(*env)->ExceptionCheck(env);
}

JNIEXPORT jlong JNICALL Java_org_relattn_KVCache_nativeSize(JNIEnv* env, jclass cls, jobject h) {
  (void)cls;
  relattn_kv_cache_desc d;
  Pins pins = {.n = 0};
  size_t bytes = 0;
  if (ReadCacheDesc(env, h, &d, &pins)) Check(env, relattn_kv_cache_size(&d, &bytes));
  Unpin(env, &pins, kMaxPinned);
  return (jlong)bytes;
}

/* Bytes from the direct buffer b's address up to the next RELATTN_KV_CACHE_ALIGNMENT. */
JNIEXPORT jint JNICALL Java_org_relattn_KVCache_nativeAlignOffset(JNIEnv* env, jclass cls,
                                                                  jobject b) {
  (void)cls;
  const uintptr_t address = (uintptr_t)(*env)->GetDirectBufferAddress(env, b);
  return (jint)((RELATTN_KV_CACHE_ALIGNMENT - address % RELATTN_KV_CACHE_ALIGNMENT) %
                RELATTN_KV_CACHE_ALIGNMENT);
}

/* The cache at the start of KVCache's memory buffer (relattn_kv_cache_init or attach put it
 * there); the library checks its header at every call. */
static relattn_kv_cache* CacheOf(JNIEnv* env, jobject memory) {
  return (relattn_kv_cache*)(*env)->GetDirectBufferAddress(env, memory);
}

static size_t BytesOf(JNIEnv* env, jobject memory) {
  return (size_t)(*env)->GetDirectBufferCapacity(env, memory);
}

JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeInit(JNIEnv* env, jclass cls, jobject h,
                                                           jobject memory) {
  (void)cls;
  relattn_kv_cache_desc d;
  Pins pins = {.n = 0};
  if (ReadCacheDesc(env, h, &d, &pins)) {
    relattn_kv_cache* cache = NULL;
    Check(env, relattn_kv_cache_init(&d, CacheOf(env, memory), BytesOf(env, memory), &cache));
  }
  Unpin(env, &pins, kMaxPinned);
}

/* relattn_kv_cache_attach of the bytes in memory (a copy the Java side made, aligned); on
 * success the desc the cache was made with (relattn_kv_cache_get_desc: v_head_dim resolved,
 * the rope's table pointers NULL) goes into the KVCache.Header h (its rope's scalars
 * included). */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAttach(JNIEnv* env, jclass cls,
                                                             jobject memory, jobject h) {
  (void)cls;
  relattn_kv_cache* cache = NULL;
  relattn_status s = relattn_kv_cache_attach(CacheOf(env, memory), BytesOf(env, memory), &cache);
  relattn_kv_cache_desc d;
  if (s == RELATTN_OK) s = relattn_kv_cache_get_desc(cache, &d);
  if (s != RELATTN_OK) {
    ThrowStatus(env, s);
    return;
  }
  WriteFields(env, h, kCacheFields, kCacheFieldCount, &d);
  jobject rope = ObjectField(env, h, "rope", kRopeType);
  if (rope) WriteFields(env, rope, kRopeFields, kRopeFieldCount, &d.rope);
}

/* Appends n tokens of dtype: k [n][kv_heads][head_dim], v [n][kv_heads][v_head_dim] at
 * positions [n] (NULL: continuing). Changes nothing on failure. */
static void Append(JNIEnv* env, jobject memory, jlong n, jint kv_heads, jint head_dim,
                   jint v_head_dim, relattn_dtype dtype, const void* k, const void* v,
                   const int64_t* positions) {
  const relattn_tensor kt = Tensor(k, dtype, kv_heads, head_dim);
  const relattn_tensor vt = Tensor(v, dtype, kv_heads, v_head_dim);
  const relattn_positions pos = {positions, 0};
  Check(env, relattn_kv_cache_append(CacheOf(env, memory), n, &kt, &vt, positions ? &pos : NULL));
}

/* Appends n tokens from arrays of dtype (F32 float[], F16 / BF16 short[]; lengths checked by
 * the Java side) at positions [n] (null: continuing). */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAppend(JNIEnv* env, jclass cls,
                                                             jobject memory, jlong n, jint kv_heads,
                                                             jint head_dim, jint v_head_dim,
                                                             jint dtype, jobject k, jobject v,
                                                             jlongArray positions) {
  (void)cls;
  Pins pins = {.n = 0};
  const void* ka = Pin(env, &pins, (jarray)k, ArrayType((relattn_dtype)dtype));
  const void* va = Pin(env, &pins, (jarray)v, ArrayType((relattn_dtype)dtype));
  const int64_t* pa = Pin(env, &pins, positions, 'J');
  if (ka && va && !(*env)->ExceptionCheck(env)) {
    Append(env, memory, n, kv_heads, head_dim, v_head_dim, (relattn_dtype)dtype, ka, va, pa);
  }
  Unpin(env, &pins, kMaxPinned);
}

/* Appends n tokens from direct buffers of dtype (F32, F16 or BF16) at the byte offsets the
 * Java side checked, at positions [n] (null: continuing). */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAppendBuffers(
    JNIEnv* env, jclass cls, jobject memory, jlong n, jint kv_heads, jint head_dim, jint v_head_dim,
    jint dtype, jobject k, jlong k_offset, jobject v, jlong v_offset, jlongArray positions) {
  (void)cls;
  Pins pins = {.n = 0};
  void* ka = BufferAt(env, k, k_offset, (relattn_dtype)dtype, "k");
  void* va = ka ? BufferAt(env, v, v_offset, (relattn_dtype)dtype, "v") : NULL;
  const int64_t* pa = va ? Pin(env, &pins, positions, 'J') : NULL;
  if (va && !(*env)->ExceptionCheck(env)) {
    Append(env, memory, n, kv_heads, head_dim, v_head_dim, (relattn_dtype)dtype, ka, va, pa);
  }
  Unpin(env, &pins, kMaxPinned);
}

JNIEXPORT jlong JNICALL Java_org_relattn_KVCache_nativeLength(JNIEnv* env, jclass cls,
                                                              jobject memory) {
  (void)cls;
  return relattn_kv_cache_length(CacheOf(env, memory));
}

JNIEXPORT jlong JNICALL Java_org_relattn_KVCache_nativeNextPosition(JNIEnv* env, jclass cls,
                                                                    jobject memory) {
  (void)cls;
  return relattn_kv_cache_next_position(CacheOf(env, memory));
}

JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeTruncate(JNIEnv* env, jclass cls,
                                                               jobject memory, jlong n) {
  (void)cls;
  Check(env, relattn_kv_cache_truncate(CacheOf(env, memory), n));
}

JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeClear(JNIEnv* env, jclass cls,
                                                            jobject memory) {
  (void)cls;
  relattn_kv_cache_clear(CacheOf(env, memory));
}

/* Attention of q [n_q][heads][head_dim] (Params' dtype with q_scales NULL, or byte[] with its
 * row scales: I8) over the cache, queries from q_start (or Params' qPositions), into out
 * [n_q][heads][v_head_dim] of Params' outDtype (and lse); the Params' key fields are 0 or the
 * cache's (checked by the Java side and the library). */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAttention(JNIEnv* env, jclass cls, jobject p,
                                                                jobject rope, jobject memory,
                                                                jlong q_start, jint head_dim,
                                                                jint v_head_dim, jobject q,
                                                                jfloatArray q_scales, jobject out) {
  (void)cls;
  relattn_attention_desc d;
  Pins pins = {.n = 0};
  int32_t n_threads = 1;
  int outputs_from = kMaxPinned;
  if (ReadParams(env, p, rope, &d, &pins, &n_threads)) {
    const relattn_dtype dtype = (relattn_dtype)IntField(env, p, "dtype");
    const relattn_dtype out_dtype = (relattn_dtype)IntField(env, p, "outDtype");
    if (ArrayTensor(env, &pins, q, q_scales, dtype, d.n_heads, head_dim, &d.q) &&
        PinOutputs(env, &pins, &outputs_from, p, out, out_dtype, v_head_dim, &d)) {
      d.kv_cache = CacheOf(env, memory);
      d.head_dim = head_dim;
      d.v_head_dim = v_head_dim;
      d.q_pos.start = q_start;
      Run(env, &d, n_threads);
    }
  }
  Unpin(env, &pins, outputs_from);
}
