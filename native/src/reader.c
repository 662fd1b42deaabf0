/*
 * The poll-driven batch reader shared by TAP and UDP.
 *
 * libuv watches the fd (uv_poll, level-triggered, on the main loop). On readability we run `fill` (read()/recvmmsg
 * into fixed slots until EAGAIN or the slots are full) and call the JS callback once per batch with the count. The
 * slots are reused for the next batch, so JS must be done with a batch when its callback returns. At most
 * ROUNDS_PER_WAKE batches are read per wake so a flood cannot starve timers and control connections; the poll is
 * level-triggered, so whatever is left wakes us again on the next loop turn.
 */
#include "weft.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS_PER_WAKE 4

/* Every reader the env has started, so the env cleanup hook can stop them (a worker thread exiting). */
typedef struct weft_env_state {
  weft_reader *head;
} weft_env_state;

/* Tags the external handles readerStop/readerStats accept, so a stray external cannot be mistaken for ours. */
static const napi_type_tag READER_TAG = {0x7765667472656164ULL, 0x6572686e646c0001ULL};

static void on_close(uv_handle_t *handle) {
  weft_reader *r = handle->data;
  free(r->scratch);
  free(r);
}

static void delete_refs(weft_reader *r) {
  napi_env env = r->env;
  for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
  r->ref_count = 0;
  if (r->callback_ref) napi_delete_reference(env, r->callback_ref);
  if (r->resource_ref) napi_delete_reference(env, r->resource_ref);
  if (r->async_context) napi_async_destroy(env, r->async_context);
  r->callback_ref = NULL;
  r->resource_ref = NULL;
  r->async_context = NULL;
}

/* Stop polling and free the reader once libuv has closed its handle. `is_teardown`: the env is going away, so make
 * no N-API calls. Safe to call from inside the reader's own callback: libuv runs on_close on a later loop phase. */
static void reader_stop(weft_reader *r, int is_teardown) {
  if (r->is_stopped) return;
  r->is_stopped = 1;
  uv_poll_stop(&r->poll);
  if (!is_teardown) delete_refs(r);
  if (r->box) {
    r->box->wakes = r->wakes;
    r->box->batches = r->batches;
    r->box->packets = r->packets;
    r->box->truncated_drops = r->truncated_drops;
    r->box->read_errors = r->read_errors;
    r->box->reader = NULL;
    r->box = NULL;
  }
  for (weft_reader **p = &r->state->head; *p; p = &(*p)->next) {
    if (*p == r) {
      *p = r->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&r->poll, on_close);
}

static void deliver(weft_reader *r, int32_t count) {
  napi_env env = r->env;
  napi_value callback, resource, argv[1], result;
  napi_get_reference_value(env, r->callback_ref, &callback);
  napi_get_reference_value(env, r->resource_ref, &resource);
  napi_create_int32(env, count, &argv[0]);
  /* napi_make_callback (not napi_call_function): we enter JS from the loop, so Node must run its callback scope
   * (async hooks, then process.nextTick and microtasks after the batch). */
  if (napi_make_callback(env, r->async_context, resource, callback, 1, argv, &result) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error); /* same fate as a throw in any event handler: 'uncaughtException' */
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  weft_reader *r = handle->data;
  if (r->is_stopped) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  if (status < 0) {
    /* POLLERR: libuv has already stopped watching (a TAP whose device was deleted). Report it once as a negative
     * count and stop, rather than spin on an fd that will never read again. */
    r->read_errors++;
    deliver(r, status);
    reader_stop(r, 0);
  } else {
    r->wakes++;
    /* Past ROUNDS_PER_WAKE only to deliver packets already read (bounded: they fill at most the slots): the fd may
     * be drained, so nothing would wake us for them. */
    for (int round = 0; (round < ROUNDS_PER_WAKE || r->has_pending) && !r->is_stopped; round++) {
      r->is_drained = 0;
      uint32_t n = r->fill(r);
      if (n > 0) {
        r->batches++;
        r->packets += n;
        deliver(r, (int32_t)n);
      }
      if (r->is_drained && !r->has_pending) break;
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_env_cleanup(void *arg) {
  weft_env_state *state = arg;
  while (state->head) reader_stop(state->head, 1);
  free(state);
}

void weft_readers_init(napi_env env) {
  weft_env_state *state = calloc(1, sizeof *state);
  if (!state) return;
  napi_set_instance_data(env, state, NULL, NULL);
  napi_add_env_cleanup_hook(env, on_env_cleanup, state);
}

int weft_reader_args(napi_env env, weft_reader *r, napi_value buffer, napi_value offsets, napi_value lengths,
                     napi_value slot_bytes, napi_value headroom, int is_slots_from_buffer) {
  size_t buffer_len, offsets_len, lengths_len;
  if (weft_arg_buffer(env, buffer, "buffer", &r->buffer, &buffer_len) ||
      weft_arg_u32s(env, offsets, "offsets", &r->offsets, &offsets_len) ||
      weft_arg_u32s(env, lengths, "lengths", &r->lengths, &lengths_len) ||
      weft_arg_u32(env, slot_bytes, "slotBytes", &r->slot_bytes) ||
      weft_arg_u32(env, headroom, "headroomBytes", &r->headroom))
    return -1;
  if (r->headroom >= r->slot_bytes) {
    weft_throw_arg(env, "headroomBytes must be smaller than slotBytes");
    return -1;
  }
  r->entries = (uint32_t)offsets_len;
  r->slots = r->entries;
  if (is_slots_from_buffer) {
    size_t slots = buffer_len / r->slot_bytes;
    r->slots = slots < r->entries ? (uint32_t)slots : r->entries;
  }
  if (r->slots == 0 || lengths_len < r->entries) {
    weft_throw_arg(env, "offsets must have one entry per slot (at least 1) and lengths at least as many");
    return -1;
  }
  if ((uint64_t)r->slots * r->slot_bytes > buffer_len) {
    weft_throw_arg(env, "buffer must hold offsets.length slots of slotBytes each");
    return -1;
  }
  napi_create_reference(env, buffer, 1, &r->refs[r->ref_count++]);
  napi_create_reference(env, offsets, 1, &r->refs[r->ref_count++]);
  napi_create_reference(env, lengths, 1, &r->refs[r->ref_count++]);
  return 0;
}

static void box_finalize(napi_env env, void *data, void *hint) {
  weft_handle_box *box = data;
  if (box->reader) box->reader->box = NULL; /* dropped without readerStop: the reader lives on, unreachable */
  free(box);
}

napi_value weft_reader_start(napi_env env, weft_reader *r, napi_value callback) {
  uv_loop_t *loop;
  napi_value resource, name, handle;
  int err;
  r->env = env;
  napi_get_instance_data(env, (void **)&r->state);
  if (weft_arg_function(env, callback, "onBatch") != 0) goto fail;
  weft_handle_box *box = calloc(1, sizeof *box);
  if (!box) {
    weft_throw_errno(env, "reader", ENOMEM);
    goto fail;
  }
  napi_get_uv_event_loop(env, &loop);
  if ((err = uv_poll_init(loop, &r->poll, r->fd)) != 0) {
    free(box);
    weft_throw_errno(env, "uv_poll_init", -err);
    goto fail;
  }
  r->poll.data = r;
  if ((err = uv_poll_start(&r->poll, UV_READABLE, on_poll)) != 0) {
    free(box);
    weft_throw_errno(env, "uv_poll_start", -err);
    r->is_stopped = 1;
    delete_refs(r);
    uv_close((uv_handle_t *)&r->poll, on_close);
    return NULL;
  }
  napi_create_reference(env, callback, 1, &r->callback_ref);
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &r->resource_ref);
  napi_create_string_utf8(env, "weft:reader", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &r->async_context);
  napi_create_external(env, box, box_finalize, NULL, &handle);
  napi_type_tag_object(env, handle, &READER_TAG);
  box->reader = r;
  r->box = box;
  r->next = r->state->head;
  r->state->head = r;
  return handle;
fail:
  delete_refs(r);
  free(r->scratch);
  free(r);
  return NULL;
}

static weft_handle_box *box_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_ours = false;
  void *data;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_check_object_type_tag(env, argv[0], &READER_TAG, &is_ours) != napi_ok || !is_ours ||
      napi_get_value_external(env, argv[0], &data) != napi_ok) {
    weft_throw_arg(env, "reader must be a handle returned by tapReaderStart or udpReaderStart");
    return NULL;
  }
  return data;
}

/* readerStop(reader): stop polling. Idempotent. The fd stays open: close it with fdClose afterwards. */
napi_value weft_reader_stop(napi_env env, napi_callback_info info) {
  weft_handle_box *box = box_arg(env, info);
  if (box && box->reader) reader_stop(box->reader, 0);
  return NULL;
}

/* readerStats(reader): {wakes, batches, packets, truncatedDrops, readErrors, isStopped}. */
napi_value weft_reader_stats(napi_env env, napi_callback_info info) {
  weft_handle_box *box = box_arg(env, info);
  if (!box) return NULL;
  weft_reader *r = box->reader;
  napi_value out, stopped;
  napi_create_object(env, &out);
  weft_set_number(env, out, "wakes", r ? r->wakes : box->wakes);
  weft_set_number(env, out, "batches", r ? r->batches : box->batches);
  weft_set_number(env, out, "packets", r ? r->packets : box->packets);
  weft_set_number(env, out, "truncatedDrops", r ? r->truncated_drops : box->truncated_drops);
  weft_set_number(env, out, "readErrors", r ? r->read_errors : box->read_errors);
  napi_get_boolean(env, r == NULL, &stopped);
  napi_set_named_property(env, out, "isStopped", stopped);
  return out;
}
