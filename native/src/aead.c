/*
 * ChaCha20-Poly1305 (RFC 8439: 32-byte key, 12-byte nonce, 16-byte tag) in place over ranges of a Buffer, built
 * from OpenSSL's ChaCha20 and Poly1305 primitives inside the running Node.
 *
 * Why not libsodium here: the same construction in libsodium (crypto_aead_chacha20poly1305_ietf, which the JS side
 * uses as the reference and the fallback) has SSE/AVX2 code only; OpenSSL's has AVX-512 code. With the per-call
 * overhead of OpenSSL's EVP layer (about 0.4 us) left out as well, a 1440-byte body seals about 2.5 times as fast.
 * Both produce identical bytes: the JS side checks that at start-up before using this one. Mechanism only: nonces,
 * keys and replay protection are the caller's (crypto/aead-data-session.ts). Nothing is allocated per call.
 */
#include "weft.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdalign.h>
#include <string.h>

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16

/* OpenSSL's ChaCha20 and Poly1305 primitives (crypto/chacha.h, crypto/poly1305.h), which pick SSSE3/AVX2/AVX-512
 * code at run time. Node exports them from its own libcrypto but ships no header for them, so they are looked up by
 * name: a Node without them leaves these NULL, aeadSeal/aeadOpen throw ENOTSUP, and the JS side uses libsodium. */
typedef void (*chacha20_ctr32_fn)(unsigned char *out, const unsigned char *in, size_t len, const unsigned int key[8],
                                  const unsigned int counter[4]);
typedef size_t (*poly1305_ctx_size_fn)(void);
typedef void (*poly1305_init_fn)(void *ctx, const unsigned char key[32]);
typedef void (*poly1305_update_fn)(void *ctx, const unsigned char *in, size_t len);
typedef void (*poly1305_final_fn)(void *ctx, unsigned char mac[16]);

static chacha20_ctr32_fn chacha20_ctr32;
static poly1305_init_fn poly1305_init;
static poly1305_update_fn poly1305_update;
static poly1305_final_fn poly1305_final;

/* OpenSSL's POLY1305 is about 240 bytes; the size is checked against Poly1305_ctx_size() at init. */
#define POLY1305_CTX_BYTES 512
static __thread alignas(64) unsigned char poly_ctx[POLY1305_CTX_BYTES];
static const unsigned char zeros[64];

void weft_aead_init(napi_env env) {
  if (chacha20_ctr32) return;
  poly1305_ctx_size_fn ctx_size = (poly1305_ctx_size_fn)dlsym(RTLD_DEFAULT, "Poly1305_ctx_size");
  chacha20_ctr32_fn chacha = (chacha20_ctr32_fn)dlsym(RTLD_DEFAULT, "ChaCha20_ctr32");
  poly1305_init = (poly1305_init_fn)dlsym(RTLD_DEFAULT, "Poly1305_Init");
  poly1305_update = (poly1305_update_fn)dlsym(RTLD_DEFAULT, "Poly1305_Update");
  poly1305_final = (poly1305_final_fn)dlsym(RTLD_DEFAULT, "Poly1305_Final");
  if (!ctx_size || !poly1305_init || !poly1305_update || !poly1305_final || ctx_size() > POLY1305_CTX_BYTES) return;
  chacha20_ctr32 = chacha; /* set last: it is what the calls test */
}

/* Poly1305 one-time key from block 0, then the body encrypted (seal) or decrypted (open) from block 1; the MAC
 * covers AD || pad16 || ciphertext || pad16 || le64(|AD|) || le64(|ciphertext|) (RFC 8439 section 2.8). */
static void poly_begin_with(const unsigned char block[64], const uint8_t *ad, size_t ad_length) {
  poly1305_init(poly_ctx, block);
  poly1305_update(poly_ctx, ad, ad_length);
  if (ad_length & 15) poly1305_update(poly_ctx, zeros, 16 - (ad_length & 15));
}

/* One ChaCha20 block (RFC 8439 section 2.3) in plain C: for the Poly1305 key block alone this is cheaper than the
 * start-up of OpenSSL's vector code. Little-endian host (as load_key assumes). */
#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d) \
  a += b, d ^= a, d = ROTL(d, 16), c += d, b ^= c, b = ROTL(b, 12), a += b, d ^= a, d = ROTL(d, 8), c += d, b ^= c, \
      b = ROTL(b, 7)
static void chacha20_block(unsigned char out[64], const unsigned int key[8], const unsigned int counter[4]) {
  uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, key[0], key[1], key[2], key[3],
                     key[4],     key[5],     key[6],     key[7],     counter[0], counter[1], counter[2], counter[3]};
  uint32_t x[16];
  memcpy(x, in, sizeof x);
  for (int i = 0; i < 10; i++) {
    QR(x[0], x[4], x[8], x[12]), QR(x[1], x[5], x[9], x[13]), QR(x[2], x[6], x[10], x[14]), QR(x[3], x[7], x[11], x[15]);
    QR(x[0], x[5], x[10], x[15]), QR(x[1], x[6], x[11], x[12]), QR(x[2], x[7], x[8], x[13]), QR(x[3], x[4], x[9], x[14]);
  }
  for (int i = 0; i < 16; i++) x[i] += in[i];
  memcpy(out, x, 64);
  memset(x, 0, sizeof x);
  memset(in, 0, sizeof in);
}

static void poly_begin(const unsigned int key[8], unsigned int counter[4], const uint8_t *ad, size_t ad_length) {
  unsigned char block[64];
  counter[0] = 0;
  chacha20_block(block, key, counter);
  poly_begin_with(block, ad, ad_length);
  memset(block, 0, sizeof block);
  counter[0] = 1;
}

/*
 * Seal's encryption with the Poly1305 key in the same pass: OpenSSL's ChaCha20 has a fixed start-up cost that, for
 * the 64-byte key block alone, was a fifth of the AEAD's time. When the 64 bytes in front of the body are ours to
 * borrow (headroom, or the previous datagram in a batch: anything but the AD, which is MACed after), they are saved,
 * zeroed, encrypted together with the body from block 0, read out as the key block and put back. Returns 0 when it
 * could not borrow them (the caller takes the two-call path).
 */
static int seal_in_one_pass(const weft_aead_args *a, const unsigned int k[8], unsigned int counter[4], uint8_t *body) {
  if (a->bytes_before + a->body_offset < 64 || a->length < 448) return 0; /* small bodies: nothing to win */
  uint8_t *front = body - 64;
  unsigned char saved[64], block[64];
  memcpy(saved, front, 64);
  memset(front, 0, 64);
  counter[0] = 0;
  chacha20_ctr32(front, front, 64 + (size_t)a->length, k, counter);
  memcpy(block, front, 64);
  memcpy(front, saved, 64); /* before the MAC reads the AD, which may lie in these bytes */
  poly_begin_with(block, a->buffer + a->ad_offset, a->ad_length);
  memset(block, 0, sizeof block);
  return 1;
}

static void poly_end(const uint8_t *ciphertext, size_t length, size_t ad_length, unsigned char tag[TAG_BYTES]) {
  uint8_t lengths[16];
  poly1305_update(poly_ctx, ciphertext, length);
  if (length & 15) poly1305_update(poly_ctx, zeros, 16 - (length & 15));
  for (int i = 0; i < 8; i++) {
    lengths[i] = (uint8_t)((uint64_t)ad_length >> (8 * i));
    lengths[8 + i] = (uint8_t)((uint64_t)length >> (8 * i));
  }
  poly1305_update(poly_ctx, lengths, sizeof lengths);
  poly1305_final(poly_ctx, tag);
}

static void load_key(const uint8_t *key, const uint8_t *nonce, unsigned int k[8], unsigned int counter[4]) {
  memcpy(k, key, KEY_BYTES); /* little-endian words on the x86 and ARM hosts OpenSSL's code runs on */
  memcpy(counter + 1, nonce, NONCE_BYTES);
}


/* The seal itself, ranges already checked. */
static void chacha_seal(const weft_aead_args *a) {
  unsigned int k[8], counter[4];
  uint8_t *body = a->buffer + a->body_offset;
  load_key(a->key, a->nonce, k, counter);
  if (!seal_in_one_pass(a, k, counter, body)) {
    poly_begin(k, counter, a->buffer + a->ad_offset, a->ad_length);
    chacha20_ctr32(body, body, a->length, k, counter);
  }
  poly_end(body, a->length, a->ad_length, body + a->length);
  memset(k, 0, sizeof k);
}

/* The open itself, ranges already checked (`length` is the body, the tag follows): 0 when authentic, else -1 with
 * the body left as it came (verified before decrypting). */
static int chacha_open(const weft_aead_args *a) {
  unsigned int k[8], counter[4];
  unsigned char tag[TAG_BYTES];
  const uint32_t body_length = a->length;
  uint8_t *body = a->buffer + a->body_offset;
  load_key(a->key, a->nonce, k, counter);
  poly_begin(k, counter, a->buffer + a->ad_offset, a->ad_length);
  poly_end(body, body_length, a->ad_length, tag);
  /* Constant time: the comparison must not tell a forger how many tag bytes were right. */
  unsigned char diff = 0;
  for (int i = 0; i < TAG_BYTES; i++) diff |= tag[i] ^ body[body_length + i];
  if (diff != 0) {
    memset(k, 0, sizeof k);
    return -1;
  }
  chacha20_ctr32(body, body, body_length, k, counter);
  memset(k, 0, sizeof k);
  return 0;
}

static int chacha_ready(void) { return chacha20_ctr32 != NULL; }

static const weft_aead_cipher chacha = {
    .seal_name = "aeadSeal",
    .open_name = "aeadOpen",
    .seal_run_name = "aeadSealRun",
    .open_run_name = "aeadOpenRun",
    .nonce_bytes = NONCE_BYTES,
    .ready = chacha_ready,
    .seal = chacha_seal,
    .open = chacha_open,
};

/*
 * aeadSeal(buffer, adOffset, adLength, bodyOffset, bodyLength, nonce, key): encrypt buffer[bodyOffset, +bodyLength)
 * in place and write the tag right after it, authenticating buffer[adOffset, +adLength). Returns bodyLength + 16, or
 * -1 when a range does not fit the buffer (nothing written).
 */
napi_value weft_aead_seal(napi_env env, napi_callback_info info) { return weft_aead_call_seal(env, info, &chacha); }

/*
 * aeadOpen(buffer, adOffset, adLength, bodyOffset, sealedLength, nonce, key): verify the tag at the end of
 * buffer[bodyOffset, +sealedLength) and decrypt the body in place. Returns the plaintext length, or -1 when the
 * datagram is not authentic (the body is left as it came) or a range does not fit the buffer.
 */
napi_value weft_aead_open(napi_env env, napi_callback_info info) { return weft_aead_call_open(env, info, &chacha); }

/*
 * aeadSealRun(buffer, offsets, bodyLengths, count, adLength, nonce, key): seal `count` datagrams under one key, as
 * aeadSeal would one by one: datagram i has its AD at offsets[i] (adLength bytes) and its body right after it; the
 * first uses `nonce`, each next one the nonce whose last 8 bytes (a big-endian counter) are one more. Returns
 * `count`, or -1 when a range does not fit the buffer (nothing written).
 */
napi_value weft_aead_seal_run(napi_env env, napi_callback_info info) {
  return weft_aead_call_seal_run(env, info, &chacha);
}

/*
 * aeadOpenRun(buffer, offsets, sealedLengths, seqs, count, adLength, nonce, key, results): open `count` datagrams
 * under one key, as aeadOpen would one by one, datagram i with `nonce`'s last 8 bytes set to seqs[i] (big-endian).
 * results[i] gets the plaintext length, or -1 when it is not authentic or shorter than a tag. Returns `count`, or
 * -1 when a range does not fit the buffer or a seq is not a u53 (nothing opened).
 */
napi_value weft_aead_open_run(napi_env env, napi_callback_info info) {
  return weft_aead_call_open_run(env, info, &chacha);
}
