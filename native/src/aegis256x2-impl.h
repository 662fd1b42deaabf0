/*
 * The body of AEGIS-256X2 (see aegis.c), written once over a two-lane vector type `V` and included once per
 * instruction set. The includer defines:
 *
 *   SUFFIX                 name suffix of the two functions defined here (seal_SUFFIX, open_SUFFIX)
 *   TARGET                 the function attribute that enables the instructions
 *   V                      two 128-bit AES blocks, lane 0 first in memory
 *   V_XOR(a, b), V_AND(a, b), V_AESENC(in, rk)   per lane
 *   V_LOAD(p), V_STORE(p, v)                     32 bytes, unaligned
 *   V_BCAST(p)             the 16 bytes at p in both lanes
 *   V_SET_LANES(l0, l1)    two __m128i into a V
 *   V_LANE0(v), V_LANE1(v) the lanes as __m128i
 *
 * Lane i runs its own AEGIS-256 state; the message is cut in 32-byte blocks whose first 16 bytes go to lane 0.
 */
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)

typedef struct {
  V s0, s1, s2, s3, s4, s5;
} CAT(state, SUFFIX);

TARGET static inline __attribute__((always_inline)) void CAT(update, SUFFIX)(CAT(state, SUFFIX) * s, V m) {
  V t = s->s5;
  s->s5 = V_AESENC(s->s4, s->s5);
  s->s4 = V_AESENC(s->s3, s->s4);
  s->s3 = V_AESENC(s->s2, s->s3);
  s->s2 = V_AESENC(s->s1, s->s2);
  s->s1 = V_AESENC(s->s0, s->s1);
  s->s0 = V_AESENC(t, V_XOR(s->s0, m));
}

/* The keystream for the next 32 bytes, per lane: S1 ^ S4 ^ S5 ^ (S2 & S3). */
TARGET static inline __attribute__((always_inline)) V CAT(keystream, SUFFIX)(const CAT(state, SUFFIX) * s) {
  return V_XOR(V_XOR(s->s1, s->s4), V_XOR(s->s5, V_AND(s->s2, s->s3)));
}

/* Init(key, nonce) with the lane contexts, then Absorb every 32-byte block of ZeroPad(ad, 256). */
TARGET static inline __attribute__((always_inline)) void CAT(begin, SUFFIX)(CAT(state, SUFFIX) * s, const uint8_t *key,
                                                                             const uint8_t *nonce, const uint8_t *ad,
                                                                             size_t ad_length) {
  const V k0 = V_BCAST(key), k1 = V_BCAST(key + 16), n0 = V_BCAST(nonce), n1 = V_BCAST(nonce + 16);
  const V c0 = V_BCAST(AEGIS_C0), c1 = V_BCAST(AEGIS_C1);
  const V kn0 = V_XOR(k0, n0), kn1 = V_XOR(k1, n1);
  /* ctx[i] = Byte(i) || Byte(D - 1) || zeros, D = 2 */
  const V ctx = V_SET_LANES(_mm_set_epi64x(0, 0x0100), _mm_set_epi64x(0, 0x0101));
  s->s0 = kn0;
  s->s1 = kn1;
  s->s2 = c1;
  s->s3 = c0;
  s->s4 = V_XOR(k0, c0);
  s->s5 = V_XOR(k1, c1);
  for (int i = 0; i < 4; i++) {
    s->s3 = V_XOR(s->s3, ctx), s->s5 = V_XOR(s->s5, ctx);
    CAT(update, SUFFIX)(s, k0);
    s->s3 = V_XOR(s->s3, ctx), s->s5 = V_XOR(s->s5, ctx);
    CAT(update, SUFFIX)(s, k1);
    s->s3 = V_XOR(s->s3, ctx), s->s5 = V_XOR(s->s5, ctx);
    CAT(update, SUFFIX)(s, kn0);
    s->s3 = V_XOR(s->s3, ctx), s->s5 = V_XOR(s->s5, ctx);
    CAT(update, SUFFIX)(s, kn1);
  }
  size_t i = 0;
  for (; i + 32 <= ad_length; i += 32) CAT(update, SUFFIX)(s, V_LOAD(ad + i));
  if (i < ad_length) {
    uint8_t pad[32] = {0};
    memcpy(pad, ad + i, ad_length - i);
    CAT(update, SUFFIX)(s, V_LOAD(pad));
  }
}

/* Finalize with a 128-bit tag: per lane t = S3 ^ (LE64(ad bits) || LE64(msg bits)), seven updates, then the XOR of
 * all six blocks of both lanes. */
TARGET static inline __attribute__((always_inline)) __m128i CAT(finish, SUFFIX)(CAT(state, SUFFIX) * s,
                                                                                 size_t ad_length, size_t msg_length) {
  const __m128i u = _mm_set_epi64x((long long)((uint64_t)msg_length * 8), (long long)((uint64_t)ad_length * 8));
  const V t = V_XOR(s->s3, V_SET_LANES(u, u));
  for (int i = 0; i < 7; i++) CAT(update, SUFFIX)(s, t);
  const V all = V_XOR(V_XOR(V_XOR(s->s0, s->s1), V_XOR(s->s2, s->s3)), V_XOR(s->s4, s->s5));
  return _mm_xor_si128(V_LANE0(all), V_LANE1(all));
}

/* Encrypt body[0, length) in place and write the tag at body + length. */
TARGET static void CAT(seal, SUFFIX)(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length,
                                     const uint8_t *nonce, const uint8_t *key) {
  CAT(state, SUFFIX) s;
  CAT(begin, SUFFIX)(&s, key, nonce, ad, ad_length);
  size_t i = 0;
  for (; i + 32 <= length; i += 32) {
    const V x = V_LOAD(body + i);
    const V z = CAT(keystream, SUFFIX)(&s);
    CAT(update, SUFFIX)(&s, x);
    V_STORE(body + i, V_XOR(x, z));
  }
  if (i < length) {
    uint8_t pad[32] = {0};
    memcpy(pad, body + i, length - i);
    const V x = V_LOAD(pad);
    const V z = CAT(keystream, SUFFIX)(&s);
    CAT(update, SUFFIX)(&s, x);
    V_STORE(pad, V_XOR(x, z));
    memcpy(body + i, pad, length - i);
  }
  _mm_storeu_si128((__m128i *)(body + length), CAT(finish, SUFFIX)(&s, ad_length, length));
  memset(&s, 0, sizeof s);
}

/* Decrypt body[0, length) in place and check the tag at body + length: 0 when authentic, else -1 with the body
 * zeroed (no unauthenticated plaintext is left behind). */
TARGET static int CAT(open, SUFFIX)(uint8_t *body, size_t length, const uint8_t *ad, size_t ad_length,
                                    const uint8_t *nonce, const uint8_t *key) {
  CAT(state, SUFFIX) s;
  CAT(begin, SUFFIX)(&s, key, nonce, ad, ad_length);
  size_t i = 0;
  for (; i + 32 <= length; i += 32) {
    const V x = V_XOR(V_LOAD(body + i), CAT(keystream, SUFFIX)(&s));
    CAT(update, SUFFIX)(&s, x);
    V_STORE(body + i, x);
  }
  if (i < length) {
    /* DecPartial: decrypt the zero-padded tail, zero what lies past the message, absorb that. */
    uint8_t pad[32] = {0};
    memcpy(pad, body + i, length - i);
    V_STORE(pad, V_XOR(V_LOAD(pad), CAT(keystream, SUFFIX)(&s)));
    memset(pad + (length - i), 0, 32 - (length - i));
    CAT(update, SUFFIX)(&s, V_LOAD(pad));
    memcpy(body + i, pad, length - i);
  }
  const __m128i expected = CAT(finish, SUFFIX)(&s, ad_length, length);
  const __m128i given = _mm_loadu_si128((const __m128i *)(body + length));
  /* Constant time: all 16 bytes compared at once, no early exit. */
  const int is_equal = _mm_movemask_epi8(_mm_cmpeq_epi8(expected, given)) == 0xffff;
  memset(&s, 0, sizeof s);
  if (!is_equal) {
    memset(body, 0, length);
    return -1;
  }
  return 0;
}

/* Seal two datagrams of the same body length at once: two independent state chains side by side (see open2). */
TARGET static void CAT(seal2, SUFFIX)(uint8_t *body_a, uint8_t *body_b, size_t length, const uint8_t *ad_a,
                                      const uint8_t *ad_b, size_t ad_length, const uint8_t *nonce_a,
                                      const uint8_t *nonce_b, const uint8_t *key) {
  CAT(state, SUFFIX) s, t;
  CAT(begin, SUFFIX)(&s, key, nonce_a, ad_a, ad_length);
  CAT(begin, SUFFIX)(&t, key, nonce_b, ad_b, ad_length);
  size_t i = 0;
  for (; i + 32 <= length; i += 32) {
    const V x = V_LOAD(body_a + i);
    const V y = V_LOAD(body_b + i);
    const V zx = CAT(keystream, SUFFIX)(&s);
    const V zy = CAT(keystream, SUFFIX)(&t);
    CAT(update, SUFFIX)(&s, x);
    CAT(update, SUFFIX)(&t, y);
    V_STORE(body_a + i, V_XOR(x, zx));
    V_STORE(body_b + i, V_XOR(y, zy));
  }
  if (i < length) {
    uint8_t pad[2][32] = {{0}};
    memcpy(pad[0], body_a + i, length - i);
    memcpy(pad[1], body_b + i, length - i);
    const V x = V_LOAD(pad[0]);
    const V y = V_LOAD(pad[1]);
    const V zx = CAT(keystream, SUFFIX)(&s);
    const V zy = CAT(keystream, SUFFIX)(&t);
    CAT(update, SUFFIX)(&s, x);
    CAT(update, SUFFIX)(&t, y);
    V_STORE(pad[0], V_XOR(x, zx));
    V_STORE(pad[1], V_XOR(y, zy));
    memcpy(body_a + i, pad[0], length - i);
    memcpy(body_b + i, pad[1], length - i);
  }
  _mm_storeu_si128((__m128i *)(body_a + length), CAT(finish, SUFFIX)(&s, ad_length, length));
  _mm_storeu_si128((__m128i *)(body_b + length), CAT(finish, SUFFIX)(&t, ad_length, length));
  memset(&s, 0, sizeof s);
  memset(&t, 0, sizeof t);
}

/*
 * Open two datagrams of the same body length at once (runs of received pieces: almost all are full-sized). Each
 * state's next update waits on the block just decrypted with it, a chain of about eight cycles per 32 bytes; two
 * independent chains side by side keep the AES units busy instead. Returns a mask: bit 0 set when `a` failed,
 * bit 1 when `b` did (a failed body is zeroed). Same results as two `open` calls.
 */
TARGET static int CAT(open2, SUFFIX)(uint8_t *body_a, uint8_t *body_b, size_t length, const uint8_t *ad_a,
                                     const uint8_t *ad_b, size_t ad_length, const uint8_t *nonce_a,
                                     const uint8_t *nonce_b, const uint8_t *key) {
  CAT(state, SUFFIX) s, t;
  CAT(begin, SUFFIX)(&s, key, nonce_a, ad_a, ad_length);
  CAT(begin, SUFFIX)(&t, key, nonce_b, ad_b, ad_length);
  size_t i = 0;
  for (; i + 32 <= length; i += 32) {
    const V x = V_XOR(V_LOAD(body_a + i), CAT(keystream, SUFFIX)(&s));
    const V y = V_XOR(V_LOAD(body_b + i), CAT(keystream, SUFFIX)(&t));
    CAT(update, SUFFIX)(&s, x);
    CAT(update, SUFFIX)(&t, y);
    V_STORE(body_a + i, x);
    V_STORE(body_b + i, y);
  }
  if (i < length) {
    uint8_t pad[2][32] = {{0}};
    memcpy(pad[0], body_a + i, length - i);
    memcpy(pad[1], body_b + i, length - i);
    V_STORE(pad[0], V_XOR(V_LOAD(pad[0]), CAT(keystream, SUFFIX)(&s)));
    V_STORE(pad[1], V_XOR(V_LOAD(pad[1]), CAT(keystream, SUFFIX)(&t)));
    memset(pad[0] + (length - i), 0, 32 - (length - i));
    memset(pad[1] + (length - i), 0, 32 - (length - i));
    CAT(update, SUFFIX)(&s, V_LOAD(pad[0]));
    CAT(update, SUFFIX)(&t, V_LOAD(pad[1]));
    memcpy(body_a + i, pad[0], length - i);
    memcpy(body_b + i, pad[1], length - i);
  }
  const __m128i expected_a = CAT(finish, SUFFIX)(&s, ad_length, length);
  const __m128i expected_b = CAT(finish, SUFFIX)(&t, ad_length, length);
  const int ok_a = _mm_movemask_epi8(_mm_cmpeq_epi8(expected_a, _mm_loadu_si128((const __m128i *)(body_a + length)))) == 0xffff;
  const int ok_b = _mm_movemask_epi8(_mm_cmpeq_epi8(expected_b, _mm_loadu_si128((const __m128i *)(body_b + length)))) == 0xffff;
  memset(&s, 0, sizeof s);
  memset(&t, 0, sizeof t);
  if (!ok_a) memset(body_a, 0, length);
  if (!ok_b) memset(body_b, 0, length);
  return (ok_a ? 0 : 1) | (ok_b ? 0 : 2);
}

#undef CAT
#undef CAT2
