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
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS_PER_WAKE 4
/* Busy polling: at most this many fds watched while spinning, and at most this long in one spin (packets found
 * included) before the loop gets control back for timers and control connections. */
#define SPIN_MAX_FDS 8
#define SPIN_MAX_SESSION_NS 2000000ULL

/* Every reader the env has started, so the env cleanup hook can stop them (a worker thread exiting); and the busy
 * poll settings and budget shared by all of them. */
typedef struct weft_env_state {
  weft_reader *head;
  uint64_t spin_window_ns;   /* 0: busy polling off */
  double spin_share;         /* budget refill: idle spin allowed per ns of wall time */
  double spin_capacity_ns;   /* budget ceiling */
  double spin_budget_ns;     /* idle spin left */
  uint64_t spin_refilled_at; /* uv_hrtime() of the last refill */
  int is_spinning;
  double spins, spin_hits, spin_idle_ns, spin_busy_ns, spins_skipped;
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

/* Call the JS callback with `count`. Returns 0 when it returned `false` (nothing worth busy-polling for), else 1. */
static int deliver(weft_reader *r, int32_t count) {
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
    return 0;
  }
  bool value = true;
  napi_valuetype type;
  if (napi_typeof(env, result, &type) == napi_ok && type == napi_boolean) napi_get_value_bool(env, result, &value);
  return value ? 1 : 0;
}

/* Read and deliver up to ROUNDS_PER_WAKE batches. Past that only to deliver packets already read (bounded: they fill
 * at most the slots): the fd may be drained, so nothing would wake us for them. Returns the packets delivered in
 * batches whose callback did not say they were nothing worth busy-polling for. */
static uint32_t drain(weft_reader *r) {
  uint32_t total = 0;
  for (int round = 0; (round < ROUNDS_PER_WAKE || r->has_pending) && !r->is_stopped; round++) {
    r->is_drained = 0;
    uint32_t n = r->fill(r);
    if (n > 0) {
      r->batches++;
      r->packets += n;
      if (deliver(r, (int32_t)n)) total += n;
    }
    if (r->is_drained && !r->has_pending) break;
  }
  return total;
}

/*
 * Busy polling. At idle, every packet a router handles costs a wake-up from epoll, and on a virtual machine waking
 * an idle vCPU is the largest part of a router's latency. A request forwarded now is usually answered within a few
 * hundred microseconds, so after handling packets we keep polling every reader's fd (poll() with no timeout, and
 * sched_yield() so anything else runnable on this CPU still runs) for `spin_window_ns`, and handle what arrives
 * without sleeping. CPU time spent spinning with nothing to read is paid from a budget that refills at `spin_share`
 * of wall time, so a steady trickle of packets cannot turn the router into a busy loop; under load the fds are never
 * empty and epoll returns at once anyway, so spinning changes nothing there.
 */
static void refill(weft_env_state *s, uint64_t now) {
  s->spin_budget_ns += (double)(now - s->spin_refilled_at) * s->spin_share;
  if (s->spin_budget_ns > s->spin_capacity_ns) s->spin_budget_ns = s->spin_capacity_ns;
  s->spin_refilled_at = now;
}

/* CPU time this thread has used: what spinning costs, unlike wall time, which also runs while we are preempted. */
static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void busy_poll(weft_env_state *s) {
  if (s->spin_window_ns == 0 || s->is_spinning || !s->head) return;
  uint64_t now = uv_hrtime();
  refill(s, now);
  if (s->spin_budget_ns <= 0) {
    s->spins_skipped++;
    return;
  }
  s->is_spinning = 1;
  s->spins++;
  uint64_t session_end = now + SPIN_MAX_SESSION_NS;
  /* The loop stops on wall time (window, budget) and charges CPU time, which is never more. */
  uint64_t idle_since = now;
  uint64_t idle_cpu_since = thread_cpu_ns();
  uint64_t deadline = now + s->spin_window_ns;
  struct pollfd fds[SPIN_MAX_FDS];
  weft_reader *readers[SPIN_MAX_FDS];
  for (;;) {
    int count = 0;
    for (weft_reader *r = s->head; r && count < SPIN_MAX_FDS; r = r->next) {
      if (r->is_stopped) continue;
      fds[count].fd = r->fd;
      fds[count].events = POLLIN;
      fds[count].revents = 0;
      readers[count++] = r;
    }
    if (count == 0) break;
    int ready = poll(fds, (nfds_t)count, 0);
    if (ready > 0) {
      uint64_t found_cpu = thread_cpu_ns();
      s->spin_idle_ns += (double)(found_cpu - idle_cpu_since);
      s->spin_budget_ns -= (double)(found_cpu - idle_cpu_since);
      s->spin_hits++;
      uint32_t wanted = 0;
      for (int i = 0; i < count; i++) {
        if (!(fds[i].revents & POLLIN) || readers[i]->is_stopped) continue;
        napi_handle_scope scope;
        napi_open_handle_scope(readers[i]->env, &scope);
        wanted += drain(readers[i]);
        napi_close_handle_scope(readers[i]->env, scope);
      }
      idle_cpu_since = thread_cpu_ns();
      s->spin_busy_ns += (double)(idle_cpu_since - found_cpu);
      now = uv_hrtime();
      idle_since = now;
      if (wanted > 0) deadline = now + s->spin_window_ns; /* a heartbeat alone does not keep us spinning */
    } else {
      now = uv_hrtime();
      if (now >= deadline || s->spin_budget_ns - (double)(now - idle_since) <= 0) break;
      sched_yield();
    }
    if (now >= session_end) break;
  }
  uint64_t spent = thread_cpu_ns() - idle_cpu_since;
  s->spin_idle_ns += (double)spent;
  s->spin_budget_ns -= (double)spent;
  s->is_spinning = 0;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  weft_reader *r = handle->data;
  if (r->is_stopped) return;
  weft_env_state *s = r->state;
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  uint32_t delivered = 0;
  if (status < 0) {
    /* POLLERR: libuv has already stopped watching (a TAP whose device was deleted). Report it once as a negative
     * count and stop, rather than spin on an fd that will never read again. */
    r->read_errors++;
    deliver(r, status);
    reader_stop(r, 0);
  } else {
    r->wakes++;
    delivered = drain(r);
  }
  napi_close_handle_scope(env, scope);
  if (delivered > 0) busy_poll(s);
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

/*
 * busyPoll(windowMicros, sharePercent): after handling packets, keep polling all readers for windowMicros (0: off)
 * while the idle-spin budget lasts; the budget refills at sharePercent of wall time (1..100), up to 10 ms.
 */
napi_value weft_busy_poll(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t window_us, share_percent;
  weft_env_state *s;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argc > 0 ? argv[0] : NULL, "windowMicros", &window_us));
  WEFT_TRY(weft_arg_u32(env, argc > 1 ? argv[1] : NULL, "sharePercent", &share_percent));
  if (window_us > 100000 || share_percent < 1 || share_percent > 100) {
    weft_throw_arg(env, "busyPoll: windowMicros must be 0..100000 and sharePercent 1..100");
    return NULL;
  }
  napi_get_instance_data(env, (void **)&s);
  if (!s) return NULL;
  if (s->spin_window_ns == 0) {
    s->spin_refilled_at = uv_hrtime();
    s->spin_budget_ns = 0;
  }
  s->spin_window_ns = (uint64_t)window_us * 1000;
  s->spin_share = share_percent / 100.0;
  s->spin_capacity_ns = 10e6;
  return NULL;
}

/* busyPollStats(): {spins, hits, idleMicros, busyMicros, skipped} of this thread's busy polling. */
napi_value weft_busy_poll_stats(napi_env env, napi_callback_info info) {
  napi_value out;
  weft_env_state *s;
  napi_get_instance_data(env, (void **)&s);
  if (!s) return NULL;
  napi_create_object(env, &out);
  weft_set_number(env, out, "spins", s->spins);
  weft_set_number(env, out, "hits", s->spin_hits);
  weft_set_number(env, out, "idleMicros", s->spin_idle_ns / 1000);
  weft_set_number(env, out, "busyMicros", s->spin_busy_ns / 1000);
  weft_set_number(env, out, "skipped", s->spins_skipped);
  return out;
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
