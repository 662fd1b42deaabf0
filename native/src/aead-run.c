/*
 * Runs: one native call seals (or opens) every datagram of a run, several datagrams under one key, instead of one
 * call each. N-API argument handling cost about as much as sealing a 1440-byte datagram with AEGIS-256X2, so a
 * TCP super-frame's 45 pieces now cost one call instead of 45. Shared argument checks here; the per-cipher loops
 * live next to each cipher (aead.c, aegis.c).
 */
#include "weft.h"

#include <stdio.h>
#include <string.h>

static int i32s(napi_env env, napi_value v, const char *name, int32_t **data, size_t *len) {
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

/*
 * Seal runs: (buffer, offsets, bodyLengths, count, adLength, nonce, key). Open runs: (buffer, offsets,
 * sealedLengths, seqs, count, adLength, nonce, key, results). Datagram i has its AD (the clear header) at
 * offsets[i] and its body right after it. Checks every range before anything is written: 0, or -1 after throwing
 * (bad arguments), or 1 when a datagram's range does not fit the buffer (the caller returns -1 to JS).
 */
int weft_read_run_args(napi_env env, napi_callback_info info, weft_run_args *r, int is_open, size_t nonce_bytes) {
  size_t argc = 9, n;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const size_t want = is_open ? 9 : 7;
  if (argc < want) {
    weft_throw_arg(env, is_open ? "expected (buffer, offsets, sealedLengths, seqs, count, adLength, nonce, key, results)"
                                : "expected (buffer, offsets, bodyLengths, count, adLength, nonce, key)");
    return -1;
  }
  size_t offsets_len, lengths_len, seqs_len = 0, results_len = 0, nonce_len, key_len;
  uint32_t count;
  napi_value *a = argv;
  bool is_typed = false;
  napi_typedarray_type type;
  void *data;
  if (napi_is_typedarray(env, a[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, a[0], &type, &r->buffer_len, &data, NULL, &r->bytes_before) != napi_ok ||
      type != napi_uint8_array) {
    weft_throw_arg(env, "buffer must be a Buffer");
    return -1;
  }
  r->buffer = data;
  if (weft_arg_u32s(env, a[1], "offsets", &r->offsets, &offsets_len) ||
      weft_arg_u32s(env, a[2], "lengths", &r->lengths, &lengths_len))
    return -1;
  if (is_open) {
    if (weft_arg_f64s(env, a[3], "seqs", &r->seqs, &seqs_len)) return -1;
    a++;
  }
  if (weft_arg_u32(env, a[3], "count", &count) || weft_arg_u32(env, a[4], "adLength", &r->ad_length) ||
      weft_arg_buffer(env, a[5], "nonce", &r->nonce, &nonce_len) || weft_arg_buffer(env, a[6], "key", &r->key, &key_len))
    return -1;
  if (is_open && i32s(env, a[7], "results", &r->results, &results_len)) return -1;
  if (nonce_len != nonce_bytes || key_len != 32) {
    weft_throw_arg(env, nonce_bytes == 12 ? "nonce must be 12 bytes and key 32" : "nonce and key must be 32 bytes");
    return -1;
  }
  if (count > offsets_len || count > lengths_len || (is_open && (count > seqs_len || count > results_len))) {
    weft_throw_arg(env, "count is larger than an array");
    return -1;
  }
  r->count = count;
  for (n = 0; n < count; n++) {
    const uint64_t end = (uint64_t)r->offsets[n] + r->ad_length + r->lengths[n] + (is_open ? 0 : 16);
    if (end > r->buffer_len || r->lengths[n] > INT32_MAX - 16) return 1;
    if (is_open && !(r->seqs[n] >= 0 && r->seqs[n] <= 9007199254740991.0)) return 1; /* a u53, as JS keeps them */
  }
  return 0;
}

/* Write seq as a big-endian u64 into the last 8 bytes of nonce. */
void weft_nonce_set_seq(uint8_t *nonce, size_t nonce_bytes, uint64_t seq) {
  for (int i = 0; i < 8; i++) nonce[nonce_bytes - 1 - i] = (uint8_t)(seq >> (8 * i));
}

/* The big-endian u64 in the last 8 bytes of nonce. */
uint64_t weft_nonce_seq(const uint8_t *nonce, size_t nonce_bytes) {
  uint64_t seq = 0;
  for (size_t i = nonce_bytes - 8; i < nonce_bytes; i++) seq = (seq << 8) | nonce[i];
  return seq;
}

napi_value weft_int_result(napi_env env, int32_t value) {
  napi_value out;
  napi_create_int32(env, value, &out);
  return out;
}
