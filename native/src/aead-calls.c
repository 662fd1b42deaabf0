/*
 * The JS-facing calls of the data-plane AEADs, once for every cipher (aead.c: ChaCha20-Poly1305, aegis.c:
 * AEGIS-256X2): argument checks, range checks against the buffer, and runs. A cipher supplies a `weft_aead_cipher`
 * (its nonce size, whether it can run here, and seal/open of one datagram whose ranges were checked).
 *
 * Runs: one call seals (or opens) every datagram of a run, several datagrams under one key, instead of one call
 * each. N-API argument handling cost about as much as sealing a 1440-byte datagram with AEGIS-256X2, so a TCP
 * super-frame's 45 pieces cost one call instead of 45.
 */
#include "weft.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define KEY_BYTES 32
#define TAG_BYTES 16

static napi_value int_result(napi_env env, int32_t value) {
  napi_value out;
  napi_create_int32(env, value, &out);
  return out;
}

static int buffer_arg(napi_env env, napi_value v, uint8_t **data, size_t *len, size_t *bytes_before) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *raw;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, len, &raw, NULL, bytes_before) != napi_ok || type != napi_uint8_array) {
    weft_throw_arg(env, "buffer must be a Buffer");
    return -1;
  }
  *data = raw;
  return 0;
}

static int i32s_arg(napi_env env, napi_value v, const char *name, int32_t **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *raw;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, len, &raw, NULL, NULL) != napi_ok || type != napi_int32_array) {
    char message[96];
    snprintf(message, sizeof message, "%s must be an Int32Array", name);
    weft_throw_arg(env, message);
    return -1;
  }
  *data = raw;
  return 0;
}

/* nonce and key: sizes right, and the cipher can run here. 0, or -1 after throwing. */
static int key_args(napi_env env, const weft_aead_cipher *c, napi_value nonce, napi_value key, uint8_t **n, uint8_t **k,
                    const char *what) {
  size_t nonce_len, key_len;
  if (weft_arg_buffer(env, nonce, "nonce", n, &nonce_len) || weft_arg_buffer(env, key, "key", k, &key_len)) return -1;
  if (nonce_len != c->nonce_bytes || key_len != KEY_BYTES) {
    weft_throw_arg(env, c->nonce_bytes == 12 ? "nonce must be 12 bytes and key 32" : "nonce and key must be 32 bytes");
    return -1;
  }
  if (!c->ready()) {
    weft_throw_errno(env, what, ENOTSUP);
    return -1;
  }
  return 0;
}

/* (buffer, adOffset, adLength, bodyOffset, length, nonce, key): 0, or -1 after throwing. */
static int one_args(napi_env env, napi_callback_info info, const weft_aead_cipher *c, weft_aead_args *a, const char *what) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) {
    weft_throw_arg(env, "expected (buffer, adOffset, adLength, bodyOffset, length, nonce, key)");
    return -1;
  }
  if (buffer_arg(env, argv[0], &a->buffer, &a->buffer_len, &a->bytes_before) ||
      weft_arg_u32(env, argv[1], "adOffset", &a->ad_offset) || weft_arg_u32(env, argv[2], "adLength", &a->ad_length) ||
      weft_arg_u32(env, argv[3], "bodyOffset", &a->body_offset) || weft_arg_u32(env, argv[4], "length", &a->length))
    return -1;
  return key_args(env, c, argv[5], argv[6], &a->nonce, &a->key, what);
}

napi_value weft_aead_call_seal(napi_env env, napi_callback_info info, const weft_aead_cipher *c) {
  weft_aead_args a;
  if (one_args(env, info, c, &a, c->seal_name) != 0) return NULL;
  if ((uint64_t)a.ad_offset + a.ad_length > a.buffer_len ||
      (uint64_t)a.body_offset + a.length + TAG_BYTES > a.buffer_len || a.length > INT32_MAX - TAG_BYTES)
    return int_result(env, -1);
  c->seal(&a);
  return int_result(env, (int32_t)(a.length + TAG_BYTES));
}

napi_value weft_aead_call_open(napi_env env, napi_callback_info info, const weft_aead_cipher *c) {
  weft_aead_args a;
  if (one_args(env, info, c, &a, c->open_name) != 0) return NULL;
  if ((uint64_t)a.ad_offset + a.ad_length > a.buffer_len || (uint64_t)a.body_offset + a.length > a.buffer_len ||
      a.length < TAG_BYTES || a.length > INT32_MAX)
    return int_result(env, -1);
  a.length -= TAG_BYTES;
  return int_result(env, c->open(&a) == 0 ? (int32_t)a.length : -1);
}

/* Write seq as a big-endian u64 into the last 8 bytes of nonce. */
static void nonce_set_seq(uint8_t *nonce, size_t nonce_bytes, uint64_t seq) {
  for (int i = 0; i < 8; i++) nonce[nonce_bytes - 1 - i] = (uint8_t)(seq >> (8 * i));
}

/*
 * Seal runs: (buffer, offsets, bodyLengths, count, adLength, nonce, key). Open runs: (buffer, offsets,
 * sealedLengths, seqs, count, adLength, nonce, key, results). Datagram i has its AD (the clear header) at
 * offsets[i] and its body right after it. Every range is checked before anything is touched: returns 0, -1 after
 * throwing (bad arguments), or 1 when a datagram does not fit the buffer or a seq is not a u53 (the call returns -1).
 */
typedef struct {
  weft_aead_args one; /* buffer, bytes_before, nonce, key, ad_length */
  size_t count;
  uint32_t *offsets, *lengths;
  double *seqs;
  int32_t *results;
} run_args;

static int run_args_read(napi_env env, napi_callback_info info, const weft_aead_cipher *c, run_args *r, int is_open) {
  size_t argc = 9, offsets_len, lengths_len, seqs_len = 0, results_len = 0;
  napi_value argv[9];
  uint32_t count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < (is_open ? 9u : 7u)) {
    weft_throw_arg(env, is_open ? "expected (buffer, offsets, sealedLengths, seqs, count, adLength, nonce, key, results)"
                                : "expected (buffer, offsets, bodyLengths, count, adLength, nonce, key)");
    return -1;
  }
  napi_value *a = argv;
  if (buffer_arg(env, a[0], &r->one.buffer, &r->one.buffer_len, &r->one.bytes_before) ||
      weft_arg_u32s(env, a[1], "offsets", &r->offsets, &offsets_len) ||
      weft_arg_u32s(env, a[2], "lengths", &r->lengths, &lengths_len))
    return -1;
  if (is_open) {
    if (weft_arg_f64s(env, a[3], "seqs", &r->seqs, &seqs_len)) return -1;
    a++;
  }
  if (weft_arg_u32(env, a[3], "count", &count) || weft_arg_u32(env, a[4], "adLength", &r->one.ad_length) ||
      key_args(env, c, a[5], a[6], &r->one.nonce, &r->one.key, is_open ? c->open_run_name : c->seal_run_name) ||
      (is_open && i32s_arg(env, a[7], "results", &r->results, &results_len)))
    return -1;
  if (count > offsets_len || count > lengths_len || (is_open && (count > seqs_len || count > results_len))) {
    weft_throw_arg(env, "count is larger than an array");
    return -1;
  }
  r->count = count;
  for (size_t n = 0; n < count; n++) {
    const uint64_t end = (uint64_t)r->offsets[n] + r->one.ad_length + r->lengths[n] + (is_open ? 0 : TAG_BYTES);
    if (end > r->one.buffer_len || r->lengths[n] > INT32_MAX - TAG_BYTES) return 1;
    if (is_open && !(r->seqs[n] >= 0 && r->seqs[n] <= 9007199254740991.0)) return 1; /* a u53, as JS keeps them */
  }
  return 0;
}

napi_value weft_aead_call_seal_run(napi_env env, napi_callback_info info, const weft_aead_cipher *c) {
  run_args r;
  const int bad = run_args_read(env, info, c, &r, 0);
  if (bad < 0) return NULL;
  if (bad > 0) return int_result(env, -1);
  uint8_t nonce[32];
  const size_t nonce_bytes = c->nonce_bytes;
  memcpy(nonce, r.one.nonce, nonce_bytes);
  uint64_t seq = 0;
  for (size_t i = nonce_bytes - 8; i < nonce_bytes; i++) seq = (seq << 8) | nonce[i];
  uint8_t nonce_b[32];
  memcpy(nonce_b, nonce, nonce_bytes);
  weft_aead_args a = r.one, b = r.one;
  a.nonce = nonce;
  b.nonce = nonce_b;
  for (size_t i = 0; i < r.count; i++, seq++) {
    if (c->seal2 != NULL && i + 1 < r.count && r.lengths[i + 1] == r.lengths[i]) {
      nonce_set_seq(nonce, nonce_bytes, seq);
      nonce_set_seq(nonce_b, nonce_bytes, seq + 1);
      a.ad_offset = r.offsets[i];
      a.body_offset = r.offsets[i] + r.one.ad_length;
      b.ad_offset = r.offsets[i + 1];
      b.body_offset = r.offsets[i + 1] + r.one.ad_length;
      a.length = b.length = r.lengths[i];
      c->seal2(&a, &b);
      i++, seq++;
      continue;
    }
    nonce_set_seq(nonce, nonce_bytes, seq);
    a.ad_offset = r.offsets[i];
    a.body_offset = r.offsets[i] + r.one.ad_length;
    a.length = r.lengths[i];
    c->seal(&a);
  }
  return int_result(env, (int32_t)r.count);
}

napi_value weft_aead_call_open_run(napi_env env, napi_callback_info info, const weft_aead_cipher *c) {
  run_args r;
  const int bad = run_args_read(env, info, c, &r, 1);
  if (bad < 0) return NULL;
  if (bad > 0) return int_result(env, -1);
  uint8_t nonce[32], nonce_b[32];
  const size_t nonce_bytes = c->nonce_bytes;
  memcpy(nonce, r.one.nonce, nonce_bytes);
  memcpy(nonce_b, r.one.nonce, nonce_bytes);
  weft_aead_args a = r.one, b = r.one;
  a.nonce = nonce;
  b.nonce = nonce_b;
  for (size_t i = 0; i < r.count; i++) {
    if (c->open2 != NULL && i + 1 < r.count && r.lengths[i] >= TAG_BYTES && r.lengths[i + 1] == r.lengths[i]) {
      nonce_set_seq(nonce, nonce_bytes, (uint64_t)r.seqs[i]);
      nonce_set_seq(nonce_b, nonce_bytes, (uint64_t)r.seqs[i + 1]);
      a.ad_offset = r.offsets[i];
      a.body_offset = r.offsets[i] + r.one.ad_length;
      b.ad_offset = r.offsets[i + 1];
      b.body_offset = r.offsets[i + 1] + r.one.ad_length;
      a.length = b.length = r.lengths[i] - TAG_BYTES;
      const int failed = c->open2(&a, &b);
      r.results[i] = failed & 1 ? -1 : (int32_t)a.length;
      r.results[i + 1] = failed & 2 ? -1 : (int32_t)b.length;
      i++;
      continue;
    }
    if (r.lengths[i] < TAG_BYTES) {
      r.results[i] = -1;
      continue;
    }
    nonce_set_seq(nonce, nonce_bytes, (uint64_t)r.seqs[i]);
    a.ad_offset = r.offsets[i];
    a.body_offset = r.offsets[i] + r.one.ad_length;
    a.length = r.lengths[i] - TAG_BYTES;
    r.results[i] = c->open(&a) == 0 ? (int32_t)a.length : -1;
  }
  return int_result(env, (int32_t)r.count);
}
