/*
 * AEGIS-256 (draft-irtf-cfrg-aegis-aead: 32-byte key, 32-byte nonce, 16-byte tag) in place over ranges of a Buffer,
 * with the AES round instruction (AES-NI) on x86-64.
 *
 * Why: the data plane seals and opens every byte that crosses the mesh. ChaCha20-Poly1305 (aead.c) costs about one
 * cycle per byte even with AVX-512; AEGIS-256 is one AES round per state block per 16 bytes, a few times less, and
 * its security rests on AES's round function. A router offers it in its hello only when this CPU has AES-NI and the
 * known-answer tests in crypto/aegis256.ts pass; otherwise, or when the remote does not offer it, the connection
 * uses ChaCha20-Poly1305. Mechanism only: nonces, keys and replay protection are the caller's
 * (crypto/aead-data-session.ts). Nothing is allocated per call; no secret-dependent branches or table lookups (the
 * AES round is one instruction).
 *
 * The state is six 128-bit blocks S0..S5. Update(M):
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

#define AEGIS_TARGET __attribute__((target("aes,sse2"), always_inline)) static inline

typedef struct {
  __m128i s0, s1, s2, s3, s4, s5;
} aegis_state;

AEGIS_TARGET void update(aegis_state *s, __m128i m) {
  __m128i t = s->s5;
  s->s5 = _mm_aesenc_si128(s->s4, s->s5);
  s->s4 = _mm_aesenc_si128(s->s3, s->s4);
  s->s3 = _mm_aesenc_si128(s->s2, s->s3);
  s->s2 = _mm_aesenc_si128(s->s1, s->s2);
  s->s1 = _mm_aesenc_si128(s->s0, s->s1);
  s->s0 = _mm_aesenc_si128(t, _mm_xor_si128(s->s0, m));
}

/* The keystream block for the next 16 bytes: S1 ^ S4 ^ S5 ^ (S2 & S3). */
AEGIS_TARGET __m128i keystream(const aegis_state *s) {
  return _mm_xor_si128(_mm_xor_si128(s->s1, s->s4), _mm_xor_si128(s->s5, _mm_and_si128(s->s2, s->s3)));
}

static const uint8_t C0[16] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d,
                               0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62};
static const uint8_t C1[16] = {0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1,
                               0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd};

/* Init(key, nonce), then Absorb every 16-byte block of ZeroPad(ad). */
AEGIS_TARGET void begin(aegis_state *s, const uint8_t *key, const uint8_t *nonce, const uint8_t *ad, size_t ad_length) {
  const __m128i k0 = _mm_loadu_si128((const __m128i *)key), k1 = _mm_loadu_si128((const __m128i *)(key + 16));
  const __m128i n0 = _mm_loadu_si128((const __m128i *)nonce), n1 = _mm_loadu_si128((const __m128i *)(nonce + 16));
  const __m128i c0 = _mm_loadu_si128((const __m128i *)C0), c1 = _mm_loadu_si128((const __m128i *)C1);
  const __m128i kn0 = _mm_xor_si128(k0, n0), kn1 = _mm_xor_si128(k1, n1);
  s->s0 = kn0;
  s->s1 = kn1;
  s->s2 = c1;
  s->s3 = c0;
  s->s4 = _mm_xor_si128(k0, c0);
  s->s5 = _mm_xor_si128(k1, c1);
  for (int i = 0; i < 4; i++) {
    update(s, k0);
    update(s, k1);
    update(s, kn0);
    update(s, kn1);
  }
  size_t i = 0;
  for (; i + 16 <= ad_length; i += 16) update(s, _mm_loadu_si128((const __m128i *)(ad + i)));
  if (i < ad_length) {
    uint8_t pad[16] = {0};
    memcpy(pad, ad + i, ad_length - i);
    update(s, _mm_loadu_si128((const __m128i *)pad));
  }
}

/* Finalize(|ad|, |msg|) with a 128-bit tag: S0 ^ S1 ^ S2 ^ S3 ^ S4 ^ S5 after seven updates. */
AEGIS_TARGET __m128i finish(aegis_state *s, size_t ad_length, size_t msg_length) {
  const __m128i lengths = _mm_set_epi64x((long long)((uint64_t)msg_length * 8), (long long)((uint64_t)ad_length * 8));
  const __m128i t = _mm_xor_si128(s->s3, lengths);
  for (int i = 0; i < 7; i++) update(s, t);
  return _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(s->s0, s->s1), _mm_xor_si128(s->s2, s->s3)),
                       _mm_xor_si128(s->s4, s->s5));
}

/* Encrypt body[0, length) in place and write the tag at body + length. */
__attribute__((target("aes,sse2"))) static void aegis256_seal(uint8_t *body, size_t length, const uint8_t *ad,
                                                              size_t ad_length, const uint8_t *nonce,
                                                              const uint8_t *key) {
  aegis_state s;
  begin(&s, key, nonce, ad, ad_length);
  size_t i = 0;
  for (; i + 16 <= length; i += 16) {
    const __m128i x = _mm_loadu_si128((const __m128i *)(body + i));
    const __m128i z = keystream(&s);
    update(&s, x);
    _mm_storeu_si128((__m128i *)(body + i), _mm_xor_si128(x, z));
  }
  if (i < length) {
    uint8_t pad[16] = {0};
    memcpy(pad, body + i, length - i);
    const __m128i x = _mm_loadu_si128((const __m128i *)pad);
    const __m128i z = keystream(&s);
    update(&s, x);
    _mm_storeu_si128((__m128i *)pad, _mm_xor_si128(x, z));
    memcpy(body + i, pad, length - i);
  }
  _mm_storeu_si128((__m128i *)(body + length), finish(&s, ad_length, length));
  memset(&s, 0, sizeof s);
}

/* Decrypt body[0, length) in place and check the tag at body + length. 0 when authentic; otherwise -1 and the body
 * is zeroed (no unauthenticated plaintext is left behind; the draft requires it). */
__attribute__((target("aes,sse2"))) static int aegis256_open(uint8_t *body, size_t length, const uint8_t *ad,
                                                             size_t ad_length, const uint8_t *nonce,
                                                             const uint8_t *key) {
  aegis_state s;
  begin(&s, key, nonce, ad, ad_length);
  size_t i = 0;
  for (; i + 16 <= length; i += 16) {
    const __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(body + i)), keystream(&s));
    update(&s, x);
    _mm_storeu_si128((__m128i *)(body + i), x);
  }
  if (i < length) {
    /* DecPartial: decrypt the zero-padded tail, then zero what lies past the message before absorbing it. */
    uint8_t pad[16] = {0};
    memcpy(pad, body + i, length - i);
    _mm_storeu_si128((__m128i *)pad, _mm_xor_si128(_mm_loadu_si128((const __m128i *)pad), keystream(&s)));
    memset(pad + (length - i), 0, 16 - (length - i));
    update(&s, _mm_loadu_si128((const __m128i *)pad));
    memcpy(body + i, pad, length - i);
  }
  const __m128i expected = finish(&s, ad_length, length);
  const __m128i given = _mm_loadu_si128((const __m128i *)(body + length));
  /* Constant time: one comparison of all 16 bytes, no early exit. */
  const int is_equal = _mm_movemask_epi8(_mm_cmpeq_epi8(expected, given)) == 0xffff;
  memset(&s, 0, sizeof s);
  if (!is_equal) {
    memset(body, 0, length);
    return -1;
  }
  return 0;
}

static int is_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
}
#else
static void aegis256_seal(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length, const uint8_t *nonce,
                          const uint8_t *key) {}
static int aegis256_open(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length, const uint8_t *nonce,
                         const uint8_t *key) {
  return -1;
}
static int is_supported(void) { return 0; }
#endif

static int supported = -1;

/* The seven arguments both calls share; 0 on success, -1 after throwing. `length` is the body (seal) or the body
 * plus tag (open); ranges are checked against the buffer here, never trusted. */
typedef struct {
  uint8_t *buffer, *nonce, *key;
  size_t buffer_len;
  uint32_t ad_offset, ad_length, body_offset, length;
} aegis_args;

static int read_args(napi_env env, napi_callback_info info, aegis_args *a, const char *what) {
  size_t argc = 7, nonce_len, key_len;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) {
    weft_throw_arg(env, "expected (buffer, adOffset, adLength, bodyOffset, length, nonce, key)");
    return -1;
  }
  if (weft_arg_buffer(env, argv[0], "buffer", &a->buffer, &a->buffer_len) ||
      weft_arg_u32(env, argv[1], "adOffset", &a->ad_offset) || weft_arg_u32(env, argv[2], "adLength", &a->ad_length) ||
      weft_arg_u32(env, argv[3], "bodyOffset", &a->body_offset) || weft_arg_u32(env, argv[4], "length", &a->length) ||
      weft_arg_buffer(env, argv[5], "nonce", &a->nonce, &nonce_len) ||
      weft_arg_buffer(env, argv[6], "key", &a->key, &key_len))
    return -1;
  if (nonce_len != NONCE_BYTES || key_len != KEY_BYTES) {
    weft_throw_arg(env, "nonce and key must be 32 bytes");
    return -1;
  }
  if (supported < 0) supported = is_supported();
  if (!supported) {
    weft_throw_errno(env, what, ENOTSUP);
    return -1;
  }
  return 0;
}

static napi_value int_result(napi_env env, int32_t value) {
  napi_value out;
  napi_create_int32(env, value, &out);
  return out;
}

/*
 * aegis256Seal(buffer, adOffset, adLength, bodyOffset, bodyLength, nonce, key): encrypt buffer[bodyOffset,
 * +bodyLength) in place and write the 16-byte tag right after it, authenticating buffer[adOffset, +adLength).
 * Returns bodyLength + 16, or -1 when a range does not fit the buffer (nothing written). The AD may not overlap
 * the body. Throws ENOTSUP on a CPU without AES instructions.
 */
napi_value weft_aegis256_seal(napi_env env, napi_callback_info info) {
  aegis_args a;
  if (read_args(env, info, &a, "aegis256Seal") != 0) return NULL;
  if ((uint64_t)a.ad_offset + a.ad_length > a.buffer_len ||
      (uint64_t)a.body_offset + a.length + TAG_BYTES > a.buffer_len || a.length > INT32_MAX - TAG_BYTES)
    return int_result(env, -1);
  aegis256_seal(a.buffer + a.body_offset, a.length, a.buffer + a.ad_offset, a.ad_length, a.nonce, a.key);
  return int_result(env, (int32_t)(a.length + TAG_BYTES));
}

/*
 * aegis256Open(buffer, adOffset, adLength, bodyOffset, sealedLength, nonce, key): check the tag at the end of
 * buffer[bodyOffset, +sealedLength) and decrypt the body in place. Returns the plaintext length, or -1 when the
 * datagram is not authentic (the body is then zeroed) or a range does not fit the buffer.
 */
napi_value weft_aegis256_open(napi_env env, napi_callback_info info) {
  aegis_args a;
  if (read_args(env, info, &a, "aegis256Open") != 0) return NULL;
  if ((uint64_t)a.ad_offset + a.ad_length > a.buffer_len || (uint64_t)a.body_offset + a.length > a.buffer_len ||
      a.length < TAG_BYTES || a.length > INT32_MAX)
    return int_result(env, -1);
  const uint32_t body_length = a.length - TAG_BYTES;
  if (aegis256_open(a.buffer + a.body_offset, body_length, a.buffer + a.ad_offset, a.ad_length, a.nonce, a.key) != 0)
    return int_result(env, -1);
  return int_result(env, (int32_t)body_length);
}

/* aegis256Supported(): true when this build and CPU can run AEGIS-256 (x86-64 with AES-NI). */
napi_value weft_aegis256_supported(napi_env env, napi_callback_info info) {
  if (supported < 0) supported = is_supported();
  napi_value out;
  napi_get_boolean(env, supported == 1, &out);
  return out;
}
