/*
 * AEGIS-256X2 (draft-irtf-cfrg-aegis-aead, "AEGIS-256X" with degree 2: 32-byte key, 32-byte nonce, 16-byte tag) in
 * place over ranges of a Buffer, with the CPU's AES round instruction.
 *
 * Why: the data plane seals and opens every byte that crosses the mesh. ChaCha20-Poly1305 (aead.c) costs about one
 * cycle per byte even with AVX-512. AEGIS-256 is one AES round per state block per 16 bytes, and its speed is bound
 * by the latency of that chain; AEGIS-256X2 runs two AEGIS-256 states side by side (lane 0 takes the first 16 bytes
 * of every 32), so one 256-bit VAES instruction advances both: about 13 GB/s per core here for 1440-byte bodies,
 * against 2.3 for ChaCha20-Poly1305. CPUs with AES-NI but no VAES run the two lanes as two 128-bit states (the same
 * bytes, somewhat slower). A router offers the cipher in its hello only when this CPU has AES instructions and the
 * known-answer tests in crypto/aegis256x2.ts pass; otherwise, or when the remote does not offer it, the connection
 * uses ChaCha20-Poly1305. Its security rests on AES's round function, like AEGIS-256's (the draft's parallel modes
 * share the properties of the cipher they are built on).
 *
 * Mechanism only: nonces, keys and replay protection are the caller's (crypto/aead-data-session.ts). Nothing is
 * allocated per call; no secret-dependent branches or table lookups (the AES round is one instruction).
 *
 * Per lane the state is six 128-bit blocks S0..S5. Update(M):
 *   S'0 = AESRound(S5, S0 ^ M), S'i = AESRound(S(i-1), Si) for i = 1..5
 * where AESRound(in, rk) is SubBytes, ShiftRows, MixColumns then XOR rk: exactly what AESENC computes.
 */
#include "weft.h"

#include <errno.h>
#include <string.h>

#define KEY_BYTES 32
#define NONCE_BYTES 32
#define TAG_BYTES 16

#if defined(__x86_64__)
#include <immintrin.h>

static const uint8_t AEGIS_C0[16] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d,
                                     0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62};
static const uint8_t AEGIS_C1[16] = {0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1,
                                     0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd};

/* Both lanes in one 256-bit register (VAES with AVX2). */
#define SUFFIX vaes
#define TARGET __attribute__((target("vaes,avx2,aes")))
#define V __m256i
#define V_XOR(a, b) _mm256_xor_si256((a), (b))
#define V_AND(a, b) _mm256_and_si256((a), (b))
#define V_AESENC(in, rk) _mm256_aesenc_epi128((in), (rk))
#define V_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define V_STORE(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), (v))
#define V_BCAST(p) _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define V_SET_LANES(l0, l1) _mm256_set_m128i((l1), (l0))
#define V_LANE0(v) _mm256_castsi256_si128(v)
#define V_LANE1(v) _mm256_extracti128_si256((v), 1)
#include "aegis256x2-impl.h"
#undef SUFFIX
#undef TARGET
#undef V
#undef V_XOR
#undef V_AND
#undef V_AESENC
#undef V_LOAD
#undef V_STORE
#undef V_BCAST
#undef V_SET_LANES
#undef V_LANE0
#undef V_LANE1

/* Two 128-bit registers per block (AES-NI only): the same function, one instruction per lane. */
typedef struct {
  __m128i l0, l1;
} lanes2;
#define AESNI __attribute__((target("aes,sse2"), always_inline)) static inline
AESNI lanes2 lanes_xor(lanes2 a, lanes2 b) { return (lanes2){_mm_xor_si128(a.l0, b.l0), _mm_xor_si128(a.l1, b.l1)}; }
AESNI lanes2 lanes_and(lanes2 a, lanes2 b) { return (lanes2){_mm_and_si128(a.l0, b.l0), _mm_and_si128(a.l1, b.l1)}; }
AESNI lanes2 lanes_aesenc(lanes2 a, lanes2 b) {
  return (lanes2){_mm_aesenc_si128(a.l0, b.l0), _mm_aesenc_si128(a.l1, b.l1)};
}
AESNI lanes2 lanes_load(const void *p) {
  return (lanes2){_mm_loadu_si128((const __m128i *)p), _mm_loadu_si128((const __m128i *)p + 1)};
}
AESNI void lanes_store(void *p, lanes2 v) {
  _mm_storeu_si128((__m128i *)p, v.l0);
  _mm_storeu_si128((__m128i *)p + 1, v.l1);
}
AESNI lanes2 lanes_bcast(const void *p) {
  const __m128i b = _mm_loadu_si128((const __m128i *)p);
  return (lanes2){b, b};
}
#define SUFFIX aesni
#define TARGET __attribute__((target("aes,sse2")))
#define V lanes2
#define V_XOR(a, b) lanes_xor((a), (b))
#define V_AND(a, b) lanes_and((a), (b))
#define V_AESENC(in, rk) lanes_aesenc((in), (rk))
#define V_LOAD(p) lanes_load(p)
#define V_STORE(p, v) lanes_store((p), (v))
#define V_BCAST(p) lanes_bcast(p)
#define V_SET_LANES(a, b) ((lanes2){(a), (b)})
#define V_LANE0(v) ((v).l0)
#define V_LANE1(v) ((v).l1)
#include "aegis256x2-impl.h"

/* 0: not supported, 1: AES-NI, 2: VAES. */
static int detect(void) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("sse2")) return 0;
  return __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx2") ? 2 : 1;
}
#else
static void seal_aesni(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length, const uint8_t *nonce,
                       const uint8_t *key) {}
static int open_aesni(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length, const uint8_t *nonce,
                      const uint8_t *key) {
  return -1;
}
static int open2_aesni(uint8_t *body_a, uint8_t *body_b, size_t length, const uint8_t *ad_a, const uint8_t *ad_b,
                       size_t ad_length, const uint8_t *nonce_a, const uint8_t *nonce_b, const uint8_t *key) {
  return 3;
}
static void seal2_aesni(uint8_t *body_a, uint8_t *body_b, size_t length, const uint8_t *ad_a, const uint8_t *ad_b,
                        size_t ad_length, const uint8_t *nonce_a, const uint8_t *nonce_b, const uint8_t *key) {}
#define seal_vaes seal_aesni
#define open_vaes open_aesni
#define seal2_vaes seal2_aesni
#define open2_vaes open2_aesni
static int detect(void) { return 0; }
#endif

static int detected = -1; /* detect() once */
static int level = -1;    /* what runs: detected, or lower when a test asks */

static int current_level(void) {
  if (detected < 0) detected = level = detect();
  return level;
}

static void aegis_seal(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length, const uint8_t *nonce,
                       const uint8_t *key) {
  if (level == 2) seal_vaes(body, length, ad, ad_length, nonce, key);
  else seal_aesni(body, length, ad, ad_length, nonce, key);
}

static int aegis_open(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length, const uint8_t *nonce,
                      const uint8_t *key) {
  return level == 2 ? open_vaes(body, length, ad, ad_length, nonce, key)
                    : open_aesni(body, length, ad, ad_length, nonce, key);
}


static int aegis_ready(void) { return current_level() != 0; }

static void aegis_seal_args(const weft_aead_args *a) {
  aegis_seal(a->buffer + a->body_offset, a->length, a->buffer + a->ad_offset, a->ad_length, a->nonce, a->key);
}

static int aegis_open_args(const weft_aead_args *a) {
  return aegis_open(a->buffer + a->body_offset, a->length, a->buffer + a->ad_offset, a->ad_length, a->nonce, a->key);
}

/* Two datagrams of one length under one key, interleaved (see seal2 and open2 in aegis256x2-impl.h). */
static void aegis_seal2_args(const weft_aead_args *a, const weft_aead_args *b) {
  uint8_t *const body_a = a->buffer + a->body_offset, *const body_b = b->buffer + b->body_offset;
  const uint8_t *const ad_a = a->buffer + a->ad_offset, *const ad_b = b->buffer + b->ad_offset;
  if (level == 2) seal2_vaes(body_a, body_b, a->length, ad_a, ad_b, a->ad_length, a->nonce, b->nonce, a->key);
  else seal2_aesni(body_a, body_b, a->length, ad_a, ad_b, a->ad_length, a->nonce, b->nonce, a->key);
}

static int aegis_open2_args(const weft_aead_args *a, const weft_aead_args *b) {
  uint8_t *const body_a = a->buffer + a->body_offset, *const body_b = b->buffer + b->body_offset;
  const uint8_t *const ad_a = a->buffer + a->ad_offset, *const ad_b = b->buffer + b->ad_offset;
  return level == 2 ? open2_vaes(body_a, body_b, a->length, ad_a, ad_b, a->ad_length, a->nonce, b->nonce, a->key)
                    : open2_aesni(body_a, body_b, a->length, ad_a, ad_b, a->ad_length, a->nonce, b->nonce, a->key);
}

static const weft_aead_cipher aegis256x2 = {
    .seal_name = "aegis256x2Seal",
    .open_name = "aegis256x2Open",
    .seal_run_name = "aegis256x2SealRun",
    .open_run_name = "aegis256x2OpenRun",
    .nonce_bytes = NONCE_BYTES,
    .ready = aegis_ready,
    .seal = aegis_seal_args,
    .open = aegis_open_args,
    .seal2 = aegis_seal2_args,
    .open2 = aegis_open2_args,
};

/*
 * aegis256x2Seal(buffer, adOffset, adLength, bodyOffset, bodyLength, nonce, key): encrypt buffer[bodyOffset,
 * +bodyLength) in place and write the 16-byte tag right after it, authenticating buffer[adOffset, +adLength).
 * Returns bodyLength + 16, or -1 when a range does not fit the buffer (nothing written). The AD may not overlap
 * the body. Throws ENOTSUP on a CPU without AES instructions (or not x86-64).
 */
napi_value weft_aegis256x2_seal(napi_env env, napi_callback_info info) {
  return weft_aead_call_seal(env, info, &aegis256x2);
}

/*
 * aegis256x2Open(buffer, adOffset, adLength, bodyOffset, sealedLength, nonce, key): check the tag at the end of
 * buffer[bodyOffset, +sealedLength) and decrypt the body in place. Returns the plaintext length, or -1 when the
 * datagram is not authentic (the body is then zeroed) or a range does not fit the buffer.
 */
napi_value weft_aegis256x2_open(napi_env env, napi_callback_info info) {
  return weft_aead_call_open(env, info, &aegis256x2);
}

/* aegis256x2SealRun(...): aeadSealRun's contract (aead.c) with AEGIS-256X2 and 32-byte nonces. */
napi_value weft_aegis256x2_seal_run(napi_env env, napi_callback_info info) {
  return weft_aead_call_seal_run(env, info, &aegis256x2);
}

/* aegis256x2OpenRun(...): aeadOpenRun's contract (aead.c) with AEGIS-256X2; a body that fails is zeroed. */
napi_value weft_aegis256x2_open_run(napi_env env, napi_callback_info info) {
  return weft_aead_call_open_run(env, info, &aegis256x2);
}

/* aegis256x2Implementation(): what computes AEGIS-256X2 here: "vaes", "aes-ni", or "" (not supported). */
napi_value weft_aegis256x2_implementation(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"", "aes-ni", "vaes"};
  napi_value out;
  napi_create_string_utf8(env, names[current_level()], NAPI_AUTO_LENGTH, &out);
  return out;
}

/* aegis256x2UseLevel(name): for tests, run the "aes-ni" code on a CPU that has VAES too (or go back to "vaes" when
 * it does). Returns what now runs. */
napi_value weft_aegis256x2_use(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[16];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || weft_arg_string(env, argv[0], "implementation", name, sizeof name)) return NULL;
  const int wanted = strcmp(name, "vaes") == 0 ? 2 : strcmp(name, "aes-ni") == 0 ? 1 : -1;
  if (wanted < 0) {
    weft_throw_arg(env, "implementation must be \"vaes\" or \"aes-ni\"");
    return NULL;
  }
  current_level();
  if (wanted <= detected) level = wanted;
  return weft_aegis256x2_implementation(env, info);
}
