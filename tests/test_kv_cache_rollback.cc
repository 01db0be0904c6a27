// KV-cache rollback and save / restore (relattn_kv_cache_truncate, _attach):
// truncating and appending again gives the cache that never held the dropped
// tokens (decode over it bit-identical, next_position equal), for plain and
// ring caches, wrapped at every offset, with TEXT and CACHE sink tokens, with
// and without RoPE, f32 / f16 / int8 K; a byte copy attaches as an equal
// cache of its own; every corrupted header field and stored value, too few
// bytes, and random bytes get a status, never a crash, and change nothing.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lib/api/kv_cache.h"
#include "lib/common/f16.h"
#include "relattn/relattn.hpp"
#include "tests/token_value.h"

namespace relattn_test {
namespace {

constexpr int32_t kKvHeads = 2, kHeads = 4, kDim = 16;

struct Config {
  int64_t capacity = 24;
  bool ring = true;
  int64_t sinks = 0;
  relattn_sink_positions rule = RELATTN_SINK_POSITIONS_TEXT;
  bool rope = false;
  relattn_dtype k_dtype = RELATTN_F32;
  std::string Name() const {
    return "capacity " + std::to_string(capacity) + (ring ? " ring" : " plain") + " sinks " +
           std::to_string(sinks) + (rule == RELATTN_SINK_POSITIONS_CACHE ? " CACHE" : " TEXT") +
           (rope ? " rope" : "") + " k_dtype " + std::to_string(int(k_dtype));
  }
};

relattn_rope RopeOf(bool on) {
  return on ? relattn_rope{RELATTN_ROPE_HALVES, 0, 0.0f, 0.0f, {}} : relattn_rope{};
}

relattn_kv_cache_desc DescOf(const Config& c) {
  relattn_kv_cache_desc d{};
  d.n_kv_heads = kKvHeads;
  d.head_dim = kDim;
  d.capacity = c.capacity;
  d.k_dtype = c.k_dtype;
  d.v_dtype = c.k_dtype == RELATTN_F32 ? RELATTN_F32 : RELATTN_F16;
  d.ring = c.ring;
  d.rope = RopeOf(c.rope);
  d.n_sink_tokens = c.sinks;
  d.sink_positions = c.rule;
  return d;
}

// 64-byte aligned memory of `bytes` bytes.
class Memory {
 public:
  explicit Memory(size_t bytes) : words_(bytes / 8 + 16, 0), bytes_(bytes) {}
  void* get() {
    return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(words_.data()) + 63) &
                                   ~uintptr_t{63});
  }
  size_t size() const { return bytes_; }
  std::vector<uint8_t> Bytes() {
    const uint8_t* p = static_cast<const uint8_t*>(get());
    return std::vector<uint8_t>(p, p + bytes_);
  }

 private:
  std::vector<uint64_t> words_;
  size_t bytes_;
};

size_t SizeOf(const relattn_kv_cache_desc& d) {
  size_t bytes = 0;
  REQUIRE(relattn_kv_cache_size(&d, &bytes) == RELATTN_OK);
  return bytes;
}

// Appends tokens ids to cache (positions NULL, or the given ones).
relattn_status AppendTo(relattn_kv_cache* cache, const std::vector<int64_t>& ids,
                        const int64_t* positions = nullptr) {
  std::vector<float> k, v;
  for (int64_t id : ids) {
    for (int32_t h = 0; h < kKvHeads; ++h) {
      for (int32_t e = 0; e < kDim; ++e) {
        k.push_back(TokenValue(id, h, e, 0));
        v.push_back(TokenValue(id, h, e, 1));
      }
    }
  }
  const relattn_tensor kt = relattn::TokensHeadsDim(k.data(), RELATTN_F32, kKvHeads, kDim);
  const relattn_tensor vt = relattn::TokensHeadsDim(v.data(), RELATTN_F32, kKvHeads, kDim);
  const relattn_positions pos{positions, 0};
  return relattn_kv_cache_append(cache, int64_t(ids.size()), &kt, &vt, positions ? &pos : nullptr);
}

class Cache {
 public:
  explicit Cache(const relattn_kv_cache_desc& d) : memory_(SizeOf(d)) {
    REQUIRE(relattn_kv_cache_init(&d, memory_.get(), memory_.size(), &cache_) == RELATTN_OK);
  }
  relattn_kv_cache* get() const { return cache_; }
  Memory& memory() { return memory_; }
  relattn_status Append(const std::vector<int64_t>& ids, const int64_t* positions = nullptr) {
    return AppendTo(cache_, ids, positions);
  }

 private:
  Memory memory_;
  relattn_kv_cache* cache_ = nullptr;
};

// Decode of 2 queries at q_start over the cache (ALiBi causal, the cache's
// rope), f32 out; the status through *status when given, else required OK.
std::vector<float> Decode(const relattn_kv_cache* cache, int64_t q_start, bool rope,
                          relattn_status* status = nullptr) {
  std::vector<float> q;
  for (int64_t t = 0; t < 2; ++t) {
    for (int32_t h = 0; h < kHeads; ++h) {
      for (int32_t e = 0; e < kDim; ++e) q.push_back(TokenValue(1'000'000'000 + t, h, e, 0));
    }
  }
  relattn_attention_desc d;
  relattn_attention_desc_init(&d);
  d.n_q = 2;
  d.n_heads = kHeads;
  d.q = relattn::TokensHeadsDim(q.data(), RELATTN_F32, kHeads, kDim);
  std::vector<float> out(size_t(2) * kHeads * kDim);
  d.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, kHeads, kDim);
  d.q_pos.start = q_start;
  d.bias.kind = RELATTN_BIAS_ALIBI;
  d.bias.alibi.max_bias = 8.0f;
  d.bias.alibi.causal = 1;
  d.mask.causal = 1;
  d.rope = RopeOf(rope);
  d.kv_cache = cache;
  relattn::Workspace ws;
  const relattn::Status s = relattn::Attention(d, ws, nullptr);
  if (status) {
    *status = s.code;
  } else {
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  return out;
}

// What a cache holds, slot by slot, as relattn.h defines append and
// truncate: the token id and position in each slot.
struct Model {
  Config c;
  std::vector<int64_t> id, pos;
  int64_t length = 0, next_slot = 0, next_position = 0;
  explicit Model(const Config& config)
      : c(config), id(size_t(config.capacity)), pos(size_t(config.capacity)) {}

  void Append(const std::vector<int64_t>& ids) {
    for (int64_t token : ids) {
      id[next_slot] = token;
      pos[next_slot] = next_position++;
      next_slot = next_slot + 1 == c.capacity ? c.sinks : next_slot + 1;
      if (length < c.capacity) ++length;
    }
    if (c.rule == RELATTN_SINK_POSITIONS_CACHE && c.sinks > 0 && length == c.capacity) {
      for (int64_t s = 0; s < c.sinks; ++s) pos[s] = pos[next_slot] - c.sinks + s;
    }
  }
  void Truncate(int64_t n) {
    if (n == length) return;     // nothing dropped: nothing moves
    std::vector<int64_t> order;  // slots in append order
    for (int64_t s = 0; s < (length < c.capacity ? length : c.sinks); ++s) order.push_back(s);
    for (int64_t s = next_slot; length == c.capacity && s < c.capacity; ++s) order.push_back(s);
    for (int64_t s = c.sinks; length == c.capacity && s < next_slot; ++s) order.push_back(s);
    std::vector<int64_t> kept_id, kept_pos;
    for (int64_t i = 0; i < n; ++i) {
      kept_id.push_back(id[order[i]]);
      kept_pos.push_back(pos[order[i]]);
    }
    for (int64_t i = 0; i < n; ++i) id[i] = kept_id[i], pos[i] = kept_pos[i];
    length = next_slot = n;
    if (n == 0 || (c.rule == RELATTN_SINK_POSITIONS_CACHE && n <= c.sinks)) {
      for (int64_t s = 0; s < n; ++s) pos[s] = s;
      next_position = n;
    } else {
      next_position = pos[n - 1] + 1;
    }
  }
};

// A cache and its model, changed alike and compared with a fresh TEXT cache
// appended the model's slots at their positions.
struct Pair {
  Cache cache;
  Model model;
  explicit Pair(const Config& c) : cache(DescOf(c)), model(c) {}
  void Append(const std::vector<int64_t>& ids) {
    REQUIRE(cache.Append(ids) == RELATTN_OK);
    model.Append(ids);
  }
  void Truncate(int64_t n) {
    REQUIRE(relattn_kv_cache_truncate(cache.get(), n) == RELATTN_OK);
    model.Truncate(n);
  }
  void Check() {
    const Config& c = model.c;
    REQUIRE(relattn_kv_cache_length(cache.get()) == model.length);
    REQUIRE(relattn_kv_cache_next_position(cache.get()) == model.next_position);
    if (model.length == 0) return;
    Config text = c;
    text.rule = RELATTN_SINK_POSITIONS_TEXT;
    Cache fresh(DescOf(text));
    const std::vector<int64_t> ids(model.id.begin(), model.id.begin() + model.length);
    REQUIRE(fresh.Append(ids, model.pos.data()) == RELATTN_OK);
    const std::vector<float> got = Decode(cache.get(), model.next_position, c.rope);
    CHECK(got == Decode(fresh.get(), model.next_position, c.rope));
    // Its byte copy attaches (a state append and truncate leave is valid).
    Memory copy(cache.memory().size());
    std::memcpy(copy.get(), cache.get(), copy.size());
    relattn_kv_cache* attached = nullptr;
    const relattn_status status = relattn_kv_cache_attach(copy.get(), copy.size(), &attached);
    INFO(std::string(relattn_last_error()));
    REQUIRE(status == RELATTN_OK);
    CHECK(Decode(attached, model.next_position, c.rope) == got);
  }
};

std::vector<int64_t> Ids(int64_t first, int64_t n) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(first + i);
  return ids;
}

std::vector<Config> Configs() {
  std::vector<Config> out;
  for (relattn_dtype k_dtype : {RELATTN_F32, RELATTN_F16, RELATTN_I8}) {
    for (bool rope : {false, true}) {
      Config c;
      c.k_dtype = k_dtype;
      c.rope = rope;
      c.ring = false;
      c.capacity = 40;
      out.push_back(c);
      c.ring = true;
      c.capacity = 24;
      out.push_back(c);
      c.sinks = 4;
      out.push_back(c);
      c.rule = RELATTN_SINK_POSITIONS_CACHE;
      out.push_back(c);
    }
  }
  return out;
}

TEST_CASE("truncate, then append: equals never having appended the dropped tokens") {
  for (const Config& c : Configs()) {
    CAPTURE(c.Name());
    for (int64_t kept : {1, 3, 4, 5, 13, 16, 17}) {
      CAPTURE(kept);
      for (int64_t more : {int64_t(5), c.capacity + 13}) {  // the second wraps a ring
        if (!c.ring && kept + more > c.capacity) continue;
        Cache a(DescOf(c)), b(DescOf(c));
        REQUIRE(a.Append(Ids(0, kept)) == RELATTN_OK);
        REQUIRE(b.Append(Ids(0, kept)) == RELATTN_OK);
        REQUIRE(a.Append(Ids(100, 22 - kept)) == RELATTN_OK);  // 22 < capacity: no wrap
        REQUIRE(relattn_kv_cache_truncate(a.get(), kept) == RELATTN_OK);
        CHECK(relattn_kv_cache_length(a.get()) == kept);
        CHECK(relattn_kv_cache_next_position(a.get()) == kept);
        for (const std::vector<int64_t>& ids : {Ids(200, 2), Ids(300, more - 2)}) {
          REQUIRE(a.Append(ids) == RELATTN_OK);
          REQUIRE(b.Append(ids) == RELATTN_OK);
          const int64_t next = relattn_kv_cache_next_position(b.get());
          REQUIRE(relattn_kv_cache_next_position(a.get()) == next);
          REQUIRE(relattn_kv_cache_length(a.get()) == relattn_kv_cache_length(b.get()));
          CHECK(Decode(a.get(), next, c.rope) == Decode(b.get(), next, c.rope));
        }
      }
    }
  }
}

TEST_CASE("truncate of a wrapped ring at every offset keeps the oldest tokens in append order") {
  for (const Config& c : Configs()) {
    if (!c.ring) continue;
    CAPTURE(c.Name());
    const int64_t window = c.capacity - c.sinks;
    for (int64_t offset = 0; offset < window; offset += c.k_dtype == RELATTN_F32 ? 1 : 5) {
      for (int64_t n :
           {int64_t(1), c.sinks, c.sinks + 1, int64_t(15), int64_t(16), c.capacity - 1}) {
        if (n < 1) continue;
        CAPTURE(offset);
        CAPTURE(n);
        Pair p(c);
        p.Append(Ids(0, 7));
        p.Append(Ids(7, c.capacity + window + offset - 7));  // wrapped twice, then offset
        p.Check();
        p.Truncate(n);
        p.Check();
        p.Append(Ids(1000, 3));
        p.Check();
        p.Append(Ids(2000, c.capacity + 5));  // wraps again
        p.Check();
        p.Truncate(c.capacity - 2);
        p.Check();
      }
    }
  }
}

TEST_CASE("truncate(length) changes nothing; truncate(0) is clear; bad n changes nothing") {
  Config c;
  c.sinks = 4;
  c.rule = RELATTN_SINK_POSITIONS_CACHE;
  c.rope = true;
  Cache a(DescOf(c));
  REQUIRE(a.Append(Ids(0, 30)) == RELATTN_OK);  // wrapped: the sinks moved
  const std::vector<uint8_t> before = a.memory().Bytes();
  CHECK(relattn_kv_cache_truncate(a.get(), 24) == RELATTN_OK);
  CHECK(a.memory().Bytes() == before);
  for (int64_t n : {int64_t(-1), int64_t(25), INT64_MIN, INT64_MAX}) {
    CAPTURE(n);
    CHECK(relattn_kv_cache_truncate(a.get(), n) == RELATTN_ERR_BAD_DIMENSION);
    const std::string message = relattn_last_error();
    CHECK(message.find("n_tokens = " + std::to_string(n) + ": must be in 0..24") !=
          std::string::npos);
    CHECK(a.memory().Bytes() == before);
  }
  CHECK(relattn_kv_cache_truncate(nullptr, 0) == RELATTN_ERR_NULL_ARGUMENT);
  alignas(64) uint64_t junk[64] = {};
  CHECK(relattn_kv_cache_truncate(reinterpret_cast<relattn_kv_cache*>(junk), 0) ==
        RELATTN_ERR_BAD_CACHE);
  // A running append (flag set): BUSY, nothing changes, the flag stays.
  a.get()->appending = 1;
  const std::vector<uint8_t> busy = a.memory().Bytes();
  CHECK(relattn_kv_cache_truncate(a.get(), 3) == RELATTN_ERR_BUSY);
  CHECK(a.memory().Bytes() == busy);
  a.get()->appending = 0;
  // truncate(0): the bytes clear leaves.
  Memory cleared(a.memory().size());
  std::memcpy(cleared.get(), a.get(), cleared.size());
  relattn_kv_cache_clear(static_cast<relattn_kv_cache*>(cleared.get()));
  CHECK(relattn_kv_cache_truncate(a.get(), 0) == RELATTN_OK);
  CHECK(a.memory().Bytes() == cleared.Bytes());
  CHECK(relattn_kv_cache_length(a.get()) == 0);
  CHECK(relattn_kv_cache_next_position(a.get()) == 0);
  // A header made inconsistent: refused.
  REQUIRE(a.Append(Ids(0, 3)) == RELATTN_OK);
  a.get()->next_slot = 9;
  CHECK(relattn_kv_cache_truncate(a.get(), 1) == RELATTN_ERR_BAD_CACHE);
}

TEST_CASE("truncate keeps the recorded maxima; positions saturate as append's") {
  Config c;
  c.ring = false;
  Cache a(DescOf(c));
  REQUIRE(a.Append(Ids(0, 5)) == RELATTN_OK);
  const float k_max = a.get()->k_max_abs, v_max = a.get()->v_max_abs;
  REQUIRE(k_max > 0.0f);
  REQUIRE(relattn_kv_cache_truncate(a.get(), 1) == RELATTN_OK);
  CHECK(a.get()->k_max_abs == k_max);
  CHECK(a.get()->v_max_abs == v_max);
  const int64_t top[2] = {INT64_MAX - 1, INT64_MAX};
  REQUIRE(a.Append(Ids(50, 2), top) == RELATTN_OK);
  CHECK(relattn_kv_cache_next_position(a.get()) == INT64_MAX);
  REQUIRE(relattn_kv_cache_truncate(a.get(), 3) == RELATTN_OK);  // no change
  REQUIRE(relattn_kv_cache_truncate(a.get(), 2) == RELATTN_OK);
  CHECK(relattn_kv_cache_next_position(a.get()) == INT64_MAX);
}

// A cache worth copying: a wrapped ring with CACHE sinks and RoPE.
Config Saved(relattn_dtype k_dtype) {
  Config c;
  c.sinks = 3;
  c.rule = RELATTN_SINK_POSITIONS_CACHE;
  c.rope = true;
  c.k_dtype = k_dtype;
  return c;
}

TEST_CASE("a byte copy attaches as an equal cache of its own") {
  for (relattn_dtype k_dtype : {RELATTN_F32, RELATTN_F16, RELATTN_I8}) {
    CAPTURE(k_dtype);
    const Config c = Saved(k_dtype);
    Cache original(DescOf(c));
    REQUIRE(original.Append(Ids(0, 40)) == RELATTN_OK);  // wrapped, the sinks moved
    const std::vector<uint8_t> original_bytes = original.memory().Bytes();
    Memory copy(original.memory().size());
    std::memcpy(copy.get(), original.get(), copy.size());
    relattn_kv_cache* attached = nullptr;
    REQUIRE(relattn_kv_cache_attach(copy.get(), copy.size(), &attached) == RELATTN_OK);
    CHECK(static_cast<void*>(attached) == copy.get());
    CHECK(std::string(relattn_last_error()).empty());
    CHECK(copy.Bytes() == original_bytes);  // attach writes nothing
    CHECK(Decode(attached, 40, true) == Decode(original.get(), 40, true));
    // Appending to the copy leaves the original as it was; the copy is then
    // the cache that was given all the tokens.
    REQUIRE(AppendTo(attached, Ids(40, 5)) == RELATTN_OK);
    CHECK(original.memory().Bytes() == original_bytes);
    Cache more(DescOf(c));
    REQUIRE(more.Append(Ids(0, 40)) == RELATTN_OK);
    REQUIRE(more.Append(Ids(40, 5)) == RELATTN_OK);
    CHECK(Decode(attached, 45, true) == Decode(more.get(), 45, true));
    CHECK(Decode(original.get(), 40, true) != Decode(more.get(), 45, true));
    // And a truncate of the copy too.
    REQUIRE(relattn_kv_cache_truncate(attached, 2) == RELATTN_OK);
    CHECK(original.memory().Bytes() == original_bytes);
    // Its desc, read back, is the one the original was made with.
    relattn_kv_cache_desc read;
    std::memset(&read, 0xab, sizeof(read));
    REQUIRE(relattn_kv_cache_get_desc(attached, &read) == RELATTN_OK);
    relattn_kv_cache_desc made = DescOf(c);
    made.v_head_dim = made.head_dim;  // 0 means head_dim, and reads back as it
    CHECK(std::memcmp(&read, &made, sizeof(read)) == 0);
  }
}

TEST_CASE("get_desc: NULL arguments and a corrupted cache give a status, writing nothing") {
  const Config c = Saved(RELATTN_F16);
  Cache cache(DescOf(c));
  relattn_kv_cache_desc desc;
  CHECK(relattn_kv_cache_get_desc(cache.get(), nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(std::string(relattn_last_error()).find("desc") != std::string::npos);
  CHECK(relattn_kv_cache_get_desc(nullptr, &desc) == RELATTN_ERR_NULL_ARGUMENT);
  std::memset(&desc, 0xab, sizeof(desc));
  const relattn_kv_cache_desc before = desc;
  std::memset(cache.get(), 0, 8);  // the magic
  CHECK(relattn_kv_cache_get_desc(cache.get(), &desc) == RELATTN_ERR_BAD_CACHE);
  CHECK(std::memcmp(&desc, &before, sizeof(desc)) == 0);
}

// One corruption of a saved cache: what it does, the status and message.
struct Corruption {
  const char* what;
  void (*apply)(relattn_kv_cache* c);
  relattn_status status;
  const char* message;
};

relattn::KvCacheView View(relattn_kv_cache* c) { return relattn::ViewOf(c); }
float* KeyF32(relattn_kv_cache* c, int32_t h, int64_t s, int32_t e) {
  const int64_t stride = relattn::KeyGroupHeadStride(c->desc.capacity, c->desc.head_dim);
  return static_cast<float*>(View(c).k) + relattn::KeyGroupOffset(stride, h, s, c->desc.head_dim) +
         s % 16 + e * 16;
}

const Corruption kFloatCorruptions[] = {
    {"magic", [](relattn_kv_cache* c) { c->magic ^= 1; }, RELATTN_ERR_BAD_CACHE, "memory: magic"},
    {"version", [](relattn_kv_cache* c) { c->version = 7; }, RELATTN_ERR_BAD_CACHE,
     "header version 7: this library reads version 3"},
    {"n_kv_heads 0", [](relattn_kv_cache* c) { c->desc.n_kv_heads = 0; }, RELATTN_ERR_BAD_CACHE,
     "memory: desc.n_kv_heads = 0"},
    {"n_kv_heads 5000", [](relattn_kv_cache* c) { c->desc.n_kv_heads = 5000; },
     RELATTN_ERR_BAD_CACHE, "desc.n_kv_heads = 5000"},
    {"n_kv_heads 3", [](relattn_kv_cache* c) { c->desc.n_kv_heads = 3; },
     RELATTN_ERR_WORKSPACE_TOO_SMALL, "cache_bytes"},
    {"head_dim 0", [](relattn_kv_cache* c) { c->desc.head_dim = 0; }, RELATTN_ERR_BAD_CACHE,
     "desc.head_dim = 0"},
    {"head_dim 257", [](relattn_kv_cache* c) { c->desc.head_dim = 257; }, RELATTN_ERR_BAD_CACHE,
     "desc.head_dim = 257"},
    {"head_dim 8", [](relattn_kv_cache* c) { c->desc.head_dim = 8; }, RELATTN_ERR_BAD_CACHE,
     "rope"},
    {"v_head_dim 0", [](relattn_kv_cache* c) { c->desc.v_head_dim = 0; }, RELATTN_ERR_BAD_CACHE,
     "desc.v_head_dim = 0"},
    {"v_head_dim -1", [](relattn_kv_cache* c) { c->desc.v_head_dim = -1; }, RELATTN_ERR_BAD_CACHE,
     "desc.v_head_dim = -1"},
    {"v_head_dim 300", [](relattn_kv_cache* c) { c->desc.v_head_dim = 300; }, RELATTN_ERR_BAD_CACHE,
     "desc.v_head_dim = 300"},
    {"capacity 0", [](relattn_kv_cache* c) { c->desc.capacity = 0; }, RELATTN_ERR_BAD_CACHE,
     "desc.capacity = 0"},
    {"capacity 2^41", [](relattn_kv_cache* c) { c->desc.capacity = int64_t(1) << 41; },
     RELATTN_ERR_BAD_CACHE, "desc.capacity = 2199023255552"},
    {"capacity 1000", [](relattn_kv_cache* c) { c->desc.capacity = 1000; },
     RELATTN_ERR_WORKSPACE_TOO_SMALL, "cache_bytes"},
    {"capacity 20", [](relattn_kv_cache* c) { c->desc.capacity = 20; }, RELATTN_ERR_BAD_CACHE,
     "memory: length 24: must be in 0..20"},
    {"k_dtype 7", [](relattn_kv_cache* c) { c->desc.k_dtype = relattn_dtype(7); },
     RELATTN_ERR_BAD_CACHE, "desc.k_dtype = 7"},
    {"v_dtype 7", [](relattn_kv_cache* c) { c->desc.v_dtype = relattn_dtype(7); },
     RELATTN_ERR_BAD_CACHE, "desc.v_dtype = 7"},
    {"ring 0", [](relattn_kv_cache* c) { c->desc.ring = 0; }, RELATTN_ERR_BAD_CACHE,
     "need ring = 1"},
    {"n_sink_tokens -1", [](relattn_kv_cache* c) { c->desc.n_sink_tokens = -1; },
     RELATTN_ERR_BAD_CACHE, "desc.n_sink_tokens = -1"},
    {"n_sink_tokens 24", [](relattn_kv_cache* c) { c->desc.n_sink_tokens = 24; },
     RELATTN_ERR_BAD_CACHE, "desc.n_sink_tokens = 24"},
    {"n_sink_tokens 20", [](relattn_kv_cache* c) { c->desc.n_sink_tokens = 20; },
     RELATTN_ERR_WORKSPACE_TOO_SMALL, "cache_bytes"},
    {"sink_positions 5",
     [](relattn_kv_cache* c) { c->desc.sink_positions = relattn_sink_positions(5); },
     RELATTN_ERR_BAD_CACHE, "desc.sink_positions = 5"},
    {"rope pairing 9", [](relattn_kv_cache* c) { c->desc.rope.pairing = relattn_rope_pairing(9); },
     RELATTN_ERR_BAD_CACHE, "memory: desc.rope."},
    {"rope pairing NONE", [](relattn_kv_cache* c) { c->desc.rope.pairing = RELATTN_ROPE_NONE; },
     RELATTN_ERR_BAD_CACHE, "memory: rope (resolved): does not match desc.rope"},
    {"rope base", [](relattn_kv_cache* c) { c->desc.rope.base = 500.0f; }, RELATTN_ERR_BAD_CACHE,
     "does not match desc.rope"},
    {"rope base -1", [](relattn_kv_cache* c) { c->desc.rope.base = -1.0f; }, RELATTN_ERR_BAD_CACHE,
     "memory: desc.rope."},
    {"rope rotary_dims 3", [](relattn_kv_cache* c) { c->desc.rope.rotary_dims = 3; },
     RELATTN_ERR_BAD_CACHE, "memory: desc.rope."},
    {"rope scaling type 99",
     [](relattn_kv_cache* c) { c->desc.rope.scaling.type = relattn_rope_scaling_type(99); },
     RELATTN_ERR_BAD_CACHE, "memory: desc.rope."},
    {"rope scaling pointer",
     [](relattn_kv_cache* c) {
       c->desc.rope.scaling.inv_freq = reinterpret_cast<const double*>(uintptr_t{64});
     },
     RELATTN_ERR_BAD_CACHE, "table pointers must be NULL"},
    {"resolved rope flag 2",
     [](relattn_kv_cache* c) {
       reinterpret_cast<unsigned char*>(c)[offsetof(relattn_kv_cache, rope)] = 2;
     },
     RELATTN_ERR_BAD_CACHE, "not booleans"},
    {"resolved rope theta NaN", [](relattn_kv_cache* c) { c->rope.theta[0] = NAN; },
     RELATTN_ERR_BAD_CACHE, "does not match"},
    {"resolved rope pairs 0", [](relattn_kv_cache* c) { c->rope.pairs = 0; }, RELATTN_ERR_BAD_CACHE,
     "does not match"},
    {"length -1", [](relattn_kv_cache* c) { c->length = -1; }, RELATTN_ERR_BAD_CACHE,
     "memory: length -1"},
    {"length 25", [](relattn_kv_cache* c) { c->length = 25; }, RELATTN_ERR_BAD_CACHE,
     "memory: length 25"},
    {"length 23", [](relattn_kv_cache* c) { c->length = 23; }, RELATTN_ERR_BAD_CACHE, "next slot"},
    {"next_slot -1", [](relattn_kv_cache* c) { c->next_slot = -1; }, RELATTN_ERR_BAD_CACHE,
     "next slot -1"},
    {"next_slot 24", [](relattn_kv_cache* c) { c->next_slot = 24; }, RELATTN_ERR_BAD_CACHE,
     "next slot 24"},
    {"next_slot 1 (a sink)", [](relattn_kv_cache* c) { c->next_slot = 1; }, RELATTN_ERR_BAD_CACHE,
     "next slot 1"},
    {"next_position + 1", [](relattn_kv_cache* c) { c->next_position += 1; }, RELATTN_ERR_BAD_CACHE,
     "memory: next_position"},
    {"next_position INT64_MAX", [](relattn_kv_cache* c) { c->next_position = INT64_MAX; },
     RELATTN_ERR_BAD_CACHE, "next_position 9223372036854775807"},
    {"next_position INT64_MIN", [](relattn_kv_cache* c) { c->next_position = INT64_MIN; },
     RELATTN_ERR_BAD_CACHE, "next_position -9223372036854775808"},
    {"appending", [](relattn_kv_cache* c) { c->appending = 1; }, RELATTN_ERR_BUSY,
     "an append is marked running"},
    {"k_max_abs NaN", [](relattn_kv_cache* c) { c->k_max_abs = NAN; }, RELATTN_ERR_BAD_CACHE,
     "recorded maxima"},
    {"k_max_abs -1", [](relattn_kv_cache* c) { c->k_max_abs = -1.0f; }, RELATTN_ERR_BAD_CACHE,
     "recorded maxima"},
    {"k_max_abs inf", [](relattn_kv_cache* c) { c->k_max_abs = INFINITY; }, RELATTN_ERR_BAD_CACHE,
     "recorded maxima"},
    {"v_max_abs NaN", [](relattn_kv_cache* c) { c->v_max_abs = NAN; }, RELATTN_ERR_BAD_CACHE,
     "recorded maxima"},
    {"v_max_abs -1", [](relattn_kv_cache* c) { c->v_max_abs = -1.0f; }, RELATTN_ERR_BAD_CACHE,
     "recorded maxima"},
    {"k_max_abs too small", [](relattn_kv_cache* c) { c->k_max_abs = 0.25f; },
     RELATTN_ERR_BAD_CACHE, "exceeds the recorded maximum 0.25"},
    {"v_max_abs too small", [](relattn_kv_cache* c) { c->v_max_abs = 0.25f; },
     RELATTN_ERR_BAD_CACHE, "V value"},
    {"K value NaN", [](relattn_kv_cache* c) { *KeyF32(c, 1, 17, 3) = NAN; }, RELATTN_ERR_BAD_CACHE,
     "memory: slot 17 of KV head 1: K value nan is not finite"},
    {"K value huge", [](relattn_kv_cache* c) { *KeyF32(c, 1, 17, 3) = 1e30f; },
     RELATTN_ERR_BAD_CACHE, "slot 17 of KV head 1: K value 1e+30 exceeds the recorded maximum"},
    {"V value NaN",
     [](relattn_kv_cache* c) { static_cast<float*>(View(c).v)[(24 + 5) * kDim + 2] = NAN; },
     RELATTN_ERR_BAD_CACHE, "slot 5 of KV head 1: V value nan is not finite"},
    {"V value huge",
     [](relattn_kv_cache* c) { static_cast<float*>(View(c).v)[5 * kDim + 2] = -3.0f; },
     RELATTN_ERR_BAD_CACHE, "slot 5 of KV head 0: V value -3 exceeds the recorded maximum"},
    {"bad flag 2", [](relattn_kv_cache* c) { View(c).bad[24 + 7] = 2; }, RELATTN_ERR_BAD_CACHE,
     "slot 7 of KV head 1: bad flag 2"},
    {"position beyond 2^53 with rope",
     [](relattn_kv_cache* c) { View(c).positions[6] = int64_t(1) << 60; }, RELATTN_ERR_BAD_CACHE,
     "memory: slot 6: position 1152921504606846976"},
    {"sink_k NaN", [](relattn_kv_cache* c) { View(c).sink_k[kDim + 1] = NAN; },
     RELATTN_ERR_BAD_CACHE, "sink slot 0 of KV head 1: unrotated K value nan"},
};

const Corruption kInt8Corruptions[] = {
    {"row scale NaN", [](relattn_kv_cache* c) { View(c).k_scales[24 + 9] = NAN; },
     RELATTN_ERR_BAD_CACHE, "slot 9 of KV head 1: K row scale nan"},
    {"row scale -1", [](relattn_kv_cache* c) { View(c).k_scales[4] = -1.0f; },
     RELATTN_ERR_BAD_CACHE, "slot 4 of KV head 0: K row scale -1"},
    {"row scale above the maximum", [](relattn_kv_cache* c) { View(c).k_scales[4] = 1.0f; },
     RELATTN_ERR_BAD_CACHE, "slot 4 of KV head 0: K row scale 1"},
    {"K value -128",
     [](relattn_kv_cache* c) {
       const int64_t stride = relattn::KeyGroupHeadStride(c->desc.capacity, c->desc.head_dim);
       static_cast<int8_t*>(View(c).k)[relattn::KeyGroupOffset(stride, 0, 20, kDim) + 4 + 16] =
           -128;
     },
     RELATTN_ERR_BAD_CACHE, "slot 20 of KV head 0: K value -128"},
};

void CheckCorruptions(relattn_dtype k_dtype, const Corruption* begin, const Corruption* end) {
  const Config c = Saved(k_dtype);
  Cache saved(DescOf(c));
  REQUIRE(saved.Append(Ids(0, 26)) == RELATTN_OK);  // wrapped: sinks at 2..4
  REQUIRE(saved.get()->next_slot == 5);
  for (const Corruption* x = begin; x != end; ++x) {
    CAPTURE(std::string(x->what));
    Memory copy(saved.memory().size());
    std::memcpy(copy.get(), saved.get(), copy.size());
    relattn_kv_cache* attached = nullptr;
    REQUIRE(relattn_kv_cache_attach(copy.get(), copy.size(), &attached) == RELATTN_OK);
    x->apply(static_cast<relattn_kv_cache*>(copy.get()));
    const std::vector<uint8_t> corrupt = copy.Bytes();
    relattn_kv_cache* const untouched = reinterpret_cast<relattn_kv_cache*>(uintptr_t{0x40});
    attached = untouched;
    const relattn_status status = relattn_kv_cache_attach(copy.get(), copy.size(), &attached);
    const std::string message = relattn_last_error();
    CAPTURE(message);
    CHECK(status == x->status);
    CHECK(message.find(x->message) != std::string::npos);
    CHECK(attached == untouched);
    CHECK(copy.Bytes() == corrupt);
  }
}

TEST_CASE("attach refuses every corrupted header field and stored value, changing nothing") {
  CheckCorruptions(RELATTN_F32, std::begin(kFloatCorruptions), std::end(kFloatCorruptions));
  CheckCorruptions(RELATTN_I8, std::begin(kInt8Corruptions), std::end(kInt8Corruptions));
}

TEST_CASE("attach: too few bytes, NULL and misaligned arguments") {
  const Config c = Saved(RELATTN_F16);
  Cache saved(DescOf(c));
  REQUIRE(saved.Append(Ids(0, 10)) == RELATTN_OK);
  const size_t total = saved.memory().size();
  relattn_kv_cache* attached = nullptr;
  for (size_t bytes : {size_t(0), sizeof(relattn_kv_cache) - 1, total - 1}) {
    CAPTURE(bytes);
    CHECK(relattn_kv_cache_attach(saved.get(), bytes, &attached) ==
          RELATTN_ERR_WORKSPACE_TOO_SMALL);
    CHECK(std::string(relattn_last_error()).find("cache_bytes = " + std::to_string(bytes)) !=
          std::string::npos);
    CHECK(attached == nullptr);
  }
  CHECK(relattn_kv_cache_attach(saved.get(), total + 100, &attached) == RELATTN_OK);
  CHECK(attached == saved.get());
  attached = nullptr;
  CHECK(relattn_kv_cache_attach(nullptr, total, &attached) == RELATTN_ERR_NULL_ARGUMENT);
  CHECK(relattn_kv_cache_attach(saved.get(), total, nullptr) == RELATTN_ERR_NULL_ARGUMENT);
  Memory shifted(total + 64);
  char* odd = static_cast<char*>(shifted.get()) + 8;
  std::memcpy(odd, saved.get(), total);
  CHECK(relattn_kv_cache_attach(odd, total, &attached) == RELATTN_ERR_BAD_ALIGNMENT);
  CHECK(attached == nullptr);
  // An empty cache, and one emptied by truncate(0), attach too.
  Cache empty(DescOf(c));
  CHECK(relattn_kv_cache_attach(empty.get(), total, &attached) == RELATTN_OK);
  REQUIRE(relattn_kv_cache_truncate(saved.get(), 0) == RELATTN_OK);
  CHECK(relattn_kv_cache_attach(saved.get(), total, &attached) == RELATTN_OK);
}

// Attention over an attached cache (queries of its own dims): a status, or
// finite outputs unless a token is flagged; then an append gets a status.
void UseAttached(relattn_kv_cache* c) {
  const relattn_kv_cache_desc& d = c->desc;
  const int32_t heads = d.n_kv_heads, dim = d.head_dim, dv = d.v_head_dim;
  std::vector<float> q(size_t(heads) * dim, 0.5f), out(size_t(heads) * dv, 7.0f);
  relattn_attention_desc a;
  relattn_attention_desc_init(&a);
  a.n_q = 1;
  a.n_heads = heads;
  a.q = relattn::TokensHeadsDim(q.data(), RELATTN_F32, heads, dim);
  a.o = relattn::OutputTokensHeadsDim(out.data(), RELATTN_F32, heads, dv);
  a.q_pos.start = relattn_kv_cache_next_position(c);
  a.rope = d.rope;
  a.kv_cache = c;
  relattn::Workspace ws;
  if (relattn::Attention(a, ws, nullptr).ok()) {
    bool flagged = false;
    const relattn::KvCacheView view = View(c);
    for (int64_t i = 0; i < int64_t(heads) * d.capacity; ++i) flagged = flagged || view.bad[i];
    for (float x : out) CHECK((std::isfinite(x) || flagged));
  }
  std::vector<float> k(size_t(heads) * dim, 0.25f), v(size_t(heads) * dv, 0.25f);
  const relattn_tensor kt = relattn::TokensHeadsDim(k.data(), RELATTN_F32, heads, dim);
  const relattn_tensor vt = relattn::TokensHeadsDim(v.data(), RELATTN_F32, heads, dv);
  const relattn_status s = relattn_kv_cache_append(c, 1, &kt, &vt, nullptr);
  CHECK((s == RELATTN_OK || std::string(relattn_last_error()).size() > 0));
  if (s == RELATTN_OK) CHECK(relattn_kv_cache_truncate(c, 0) == RELATTN_OK);
}

TEST_CASE("attach of random bytes and random mutations: a status, never a crash") {
  const Config c = Saved(RELATTN_F16);
  Cache saved(DescOf(c));
  REQUIRE(saved.Append(Ids(0, 30)) == RELATTN_OK);
  const size_t total = saved.memory().size();
  int64_t accepted = 0, refused = 0;
#if defined(RELATTN_TEST_EMULATED)
  constexpr int kTrials = 400;
#else
  constexpr int kTrials = 4000;
#endif
  for (uint32_t seed = 1; seed <= kTrials; ++seed) {
    std::mt19937 rng(seed);
    Memory m(total);
    uint8_t* bytes = static_cast<uint8_t*>(m.get());
    const int kind = int(seed % 3);
    if (kind == 0) {  // random bytes, a plausible header start
      for (size_t i = 0; i < total; ++i) bytes[i] = uint8_t(rng());
      if (rng() % 2) std::memcpy(bytes, saved.get(), 8 + rng() % sizeof(relattn_kv_cache));
    } else {  // the saved cache, a few bytes flipped (header mostly)
      std::memcpy(bytes, saved.get(), total);
      const size_t span = kind == 1 ? sizeof(relattn_kv_cache) : total;
      for (uint32_t n = 1 + rng() % 4; n > 0; --n) bytes[rng() % span] ^= uint8_t(1 + rng() % 255);
    }
    const size_t size = rng() % 8 == 0 ? rng() % (total + 1) : total;
    relattn_kv_cache* attached = nullptr;
    const relattn_status s = relattn_kv_cache_attach(m.get(), size, &attached);
    if (s == RELATTN_OK) {
      ++accepted;
      REQUIRE(attached == m.get());
      UseAttached(attached);
    } else {
      ++refused;
      CHECK(attached == nullptr);
      CHECK(std::string(relattn_last_error()).size() > 0);
    }
  }
  CHECK(accepted > 0);
  CHECK(refused > 0);
  MESSAGE("random attach: ", accepted, " accepted, ", refused, " refused");
}

}  // namespace
}  // namespace relattn_test
