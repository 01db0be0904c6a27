/* JNI glue for org.relattn.RelAttn (bindings/android/java/): reads RelAttn.Params into a
 * relattn_attention_desc, points it at the caller's float[] arrays or direct buffers (sizes
 * already checked by the Java side) and runs one call. Failures throw: RelAttnException with
 * the library's status and message, IllegalArgumentException for a buffer the Java checks
 * cannot see (address, alignment), OutOfMemoryError for the workspace. */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */

#include <jni.h>
#include <pthreadpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "relattn/relattn.h"
#ifdef RELATTN_JNI_CHECK_SIGNATURES
#include "org_relattn_RelAttn.h" /* javac -h: the definitions below must match it */
#endif

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

/* Fields of RelAttn.Params by name. A missing field leaves NoSuchFieldError pending; once an
 * exception is pending every read returns 0 / NULL, and the caller checks ExceptionCheck. */
static jfieldID Field(JNIEnv* env, jobject p, const char* name, const char* type) {
  if ((*env)->ExceptionCheck(env)) return NULL;
  return (*env)->GetFieldID(env, (*env)->GetObjectClass(env, p), name, type);
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
static jfloatArray ArrayField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "[F");
  return f ? (jfloatArray)(*env)->GetObjectField(env, p, f) : NULL;
}

/* A float[] held for the length of a call; released without copying back unless written. */
typedef struct Pinned {
  jfloatArray array;
  jfloat* data;
} Pinned;

static jfloat* Pin(JNIEnv* env, Pinned* pin, jfloatArray array) {
  pin->array = array;
  pin->data = array && !(*env)->ExceptionCheck(env)
                  ? (*env)->GetFloatArrayElements(env, array, NULL)
                  : NULL;
  return pin->data;
}

static void Unpin(JNIEnv* env, Pinned* pin, int written) {
  if (pin->data)
    (*env)->ReleaseFloatArrayElements(env, pin->array, pin->data, written ? 0 : JNI_ABORT);
}

/* Everything in Params but the tensors; tables pins slopes, table and sinks. Returns 0 with an
 * exception pending on failure. */
static int ReadParams(JNIEnv* env, jobject p, relattn_attention_desc* d, Pinned tables[3],
                      int32_t* n_threads) {
  relattn_attention_desc_init(d);
  d->n_q = IntField(env, p, "nQ");
  d->n_kv = IntField(env, p, "nKv");
  d->n_heads = IntField(env, p, "heads");
  d->n_kv_heads = IntField(env, p, "kvHeads");
  d->head_dim = IntField(env, p, "headDim");
  d->v_head_dim = IntField(env, p, "vHeadDim");
  d->scale = FloatField(env, p, "scale");
  d->mask.causal = BoolField(env, p, "causal");
  d->mask.window = LongField(env, p, "window");
  d->mask.n_valid_kv = LongField(env, p, "validKv");
  d->q_pos.start = LongField(env, p, "qStart");
  d->k_pos.start = LongField(env, p, "kStart");
  const int bidirectional = !d->mask.causal || BoolField(env, p, "bidirectional");
  relattn_bias* b = &d->bias;
  b->kind = (relattn_bias_kind)IntField(env, p, "scheme");
  b->alibi.max_bias = FloatField(env, p, "maxBias");
  b->alibi.causal = !bidirectional;
  b->alibi.slopes = Pin(env, &tables[0], ArrayField(env, p, "slopes"));
  b->t5.table = b->shaw.table = Pin(env, &tables[1], ArrayField(env, p, "table"));
  b->t5.table_dtype = RELATTN_F32;
  b->t5.num_buckets = IntField(env, p, "numBuckets");
  b->t5.max_distance = IntField(env, p, "maxDistance");
  b->t5.bidirectional = bidirectional;
  b->shaw.k = IntField(env, p, "shawK");
  d->softcap = FloatField(env, p, "softcap");
  d->sinks = Pin(env, &tables[2], ArrayField(env, p, "sinks"));
  *n_threads = IntField(env, p, "threads");
  if ((*env)->ExceptionCheck(env)) return 0;
  if (*n_threads < 1) {
    Throw(env, "java/lang/IllegalArgumentException", "threads: must be >= 1");
    return 0;
  }
  return 1;
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
  if (s != RELATTN_OK) ThrowStatus(env, s);
}

static relattn_tensor Tensor(const void* data, relattn_dtype dtype, int32_t heads, int32_t dim) {
  relattn_tensor t = {data, dtype, (int64_t)heads * dim, dim, NULL, 0, 0};
  return t;
}

JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeAttentionArrays(JNIEnv* env, jclass cls,
                                                                      jobject p, jfloatArray q,
                                                                      jfloatArray k, jfloatArray v,
                                                                      jfloatArray out) {
  (void)cls;
  relattn_attention_desc d;
  Pinned tables[3] = {{0}}, arrays[4] = {{0}};
  int32_t n_threads = 1;
  if (ReadParams(env, p, &d, tables, &n_threads) && Pin(env, &arrays[0], q) &&
      Pin(env, &arrays[1], k) && Pin(env, &arrays[2], v) && Pin(env, &arrays[3], out)) {
    const int32_t v_dim = d.v_head_dim ? d.v_head_dim : d.head_dim;
    d.q = Tensor(arrays[0].data, RELATTN_F32, d.n_heads, d.head_dim);
    d.k = Tensor(arrays[1].data, RELATTN_F32, d.n_kv_heads, d.head_dim);
    d.v = Tensor(arrays[2].data, RELATTN_F32, d.n_kv_heads, v_dim);
    relattn_output o = {arrays[3].data, RELATTN_F32, (int64_t)d.n_heads * v_dim, v_dim};
    d.o = o;
    Run(env, &d, n_threads);
  }
  const int ok = !(*env)->ExceptionCheck(env);
  for (int i = 0; i < 4; ++i) Unpin(env, &arrays[i], ok && i == 3);
  for (int i = 0; i < 3; ++i) Unpin(env, &tables[i], 0);
}

/* The address of a direct buffer's byte offset, aligned to its element size; NULL with an
 * exception pending if it has none. */
static void* BufferAt(JNIEnv* env, jobject buffer, jlong offset, relattn_dtype dtype,
                      const char* name) {
  char* base = buffer ? (char*)(*env)->GetDirectBufferAddress(env, buffer) : NULL;
  char message[128];
  if (!base) {
    snprintf(message, sizeof message, "%s: not a direct buffer", name);
  } else if ((uintptr_t)(base + offset) % (dtype == RELATTN_F16 ? 2 : 4) != 0) {
    snprintf(message, sizeof message, "%s: address not aligned to its element size", name);
  } else {
    return base + offset;
  }
  Throw(env, "java/lang/IllegalArgumentException", message);
  return NULL;
}

JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeAttentionBuffers(
    JNIEnv* env, jclass cls, jobject p, jobject q, jlong q_offset, jobject k, jlong k_offset,
    jobject v, jlong v_offset, jobject out, jlong out_offset) {
  (void)cls;
  relattn_attention_desc d;
  Pinned tables[3] = {{0}};
  int32_t n_threads = 1;
  if (ReadParams(env, p, &d, tables, &n_threads)) {
    const relattn_dtype dtype = (relattn_dtype)IntField(env, p, "dtype");
    const relattn_dtype out_dtype = (relattn_dtype)IntField(env, p, "outDtype");
    const int32_t v_dim = d.v_head_dim ? d.v_head_dim : d.head_dim;
    void* qa = BufferAt(env, q, q_offset, dtype, "q");
    void* ka = qa ? BufferAt(env, k, k_offset, dtype, "k") : NULL;
    void* va = ka ? BufferAt(env, v, v_offset, dtype, "v") : NULL;
    void* oa = va ? BufferAt(env, out, out_offset, out_dtype, "out") : NULL;
    if (oa) {
      d.q = Tensor(qa, dtype, d.n_heads, d.head_dim);
      d.k = Tensor(ka, dtype, d.n_kv_heads, d.head_dim);
      d.v = Tensor(va, dtype, d.n_kv_heads, v_dim);
      relattn_output o = {oa, out_dtype, (int64_t)d.n_heads * v_dim, v_dim};
      d.o = o;
      Run(env, &d, n_threads);
    }
  }
  for (int i = 0; i < 3; ++i) Unpin(env, &tables[i], 0);
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
  const relattn_status s =
      relattn_t5_bucket(offset, num_buckets, max_distance, bidirectional, &bucket);
  if (s != RELATTN_OK) ThrowStatus(env, s);
  return bucket;
}

JNIEXPORT jstring JNICALL Java_org_relattn_RelAttn_version(JNIEnv* env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, relattn_version_string());
}
