/**
 * The FFI table of the verbs shim (`build/libdeno_rdma_verbs.so`, sources in `ffi/native/`).
 *
 * Each native library of the project has one such table, named alike: `<name>Symbols` (the
 * table, each symbol under a comment with its C declaration), `<NAME>_LIBRARY` (the file name in
 * the build folder), `<name>Native()` (the opened library's functions, opened on first call) and
 * `<Name>Native` (their type). Here: `verbsSymbols`, `VERBS_LIBRARY`, `verbsNative()`,
 * `VerbsNative`.
 *
 * Opened on first use, so importing the library never fails; the first verb call throws the
 * loader's error when the shim is not built. Handles are opaque pointers; descriptors are
 * Uint8Arrays laid out as in `ffi/records/verbs.ts`. Functions returning a pointer return NULL on
 * failure (the errno is `drv_last_errno()`); functions returning int return 0 or -errno.
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";

/** File name of the verbs shim in the build folder. */
export const VERBS_LIBRARY = "libdeno_rdma_verbs.so";

/** The shim's functions, by C name. */
export const verbsSymbols = {
  /** int drv_last_errno(void) */
  drv_last_errno: { parameters: [], result: "i32" },
  /** const char *drv_errno_name(int err) */
  drv_errno_name: { parameters: ["i32"], result: "pointer" },
  /** const char *drv_errno_text(int err) */
  drv_errno_text: { parameters: ["i32"], result: "pointer" },
  /** const char *drv_records(void) */
  drv_records: { parameters: [], result: "pointer" },

  /** struct ibv_device **drv_get_device_list(int32_t *count) */
  drv_get_device_list: { parameters: ["buffer"], result: "pointer" },
  /** void drv_free_device_list(struct ibv_device **list) */
  drv_free_device_list: { parameters: ["pointer"], result: "void" },
  /** int drv_device_info(struct ibv_device **list, int32_t index, struct drv_device_desc *out) */
  drv_device_info: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  /** struct ibv_context *drv_open_device(const char *name) */
  drv_open_device: { parameters: ["buffer"], result: "pointer" },
  /** const char *drv_context_device_name(struct ibv_context *context) */
  drv_context_device_name: { parameters: ["pointer"], result: "pointer" },
  /** int drv_close_device(struct ibv_context *context) */
  drv_close_device: { parameters: ["pointer"], result: "i32" },
  /** int drv_query_device(struct ibv_context *context, struct drv_device_attr_desc *out) */
  drv_query_device: { parameters: ["pointer", "buffer"], result: "i32" },
  /**
   * int drv_query_port(struct ibv_context *context, uint32_t port,
   *                    struct drv_port_attr_desc *out)
   */
  drv_query_port: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  /**
   * int drv_query_gid(struct ibv_context *context, uint32_t port, uint32_t index,
   *                   struct drv_gid_desc *out)
   */
  drv_query_gid: { parameters: ["pointer", "u32", "u32", "buffer"], result: "i32" },

  /** struct ibv_pd *drv_alloc_pd(struct ibv_context *context) */
  drv_alloc_pd: { parameters: ["pointer"], result: "pointer" },
  /** int drv_dealloc_pd(struct ibv_pd *pd) */
  drv_dealloc_pd: { parameters: ["pointer"], result: "i32" },
  /** struct ibv_mr *drv_reg_mr(struct ibv_pd *pd, void *addr, uint64_t length, int32_t access) */
  drv_reg_mr: { parameters: ["pointer", "pointer", "u64", "i32"], result: "pointer" },
  /** int drv_dereg_mr(struct ibv_mr *mr) */
  drv_dereg_mr: { parameters: ["pointer"], result: "i32" },
  /** uint32_t drv_mr_lkey(struct ibv_mr *mr) */
  drv_mr_lkey: { parameters: ["pointer"], result: "u32" },
  /** uint32_t drv_mr_rkey(struct ibv_mr *mr) */
  drv_mr_rkey: { parameters: ["pointer"], result: "u32" },

  /** struct ibv_comp_channel *drv_create_comp_channel(struct ibv_context *context) */
  drv_create_comp_channel: { parameters: ["pointer"], result: "pointer" },
  /** int drv_destroy_comp_channel(struct ibv_comp_channel *channel) */
  drv_destroy_comp_channel: { parameters: ["pointer"], result: "i32" },
  /**
   * struct ibv_cq *drv_create_cq(struct ibv_context *context, int32_t cqe,
   *                              struct ibv_comp_channel *channel, int32_t comp_vector)
   */
  drv_create_cq: { parameters: ["pointer", "i32", "pointer", "i32"], result: "pointer" },
  /** int drv_destroy_cq(struct ibv_cq *cq) */
  drv_destroy_cq: { parameters: ["pointer"], result: "i32" },
  /** int32_t drv_cq_capacity(struct ibv_cq *cq) */
  drv_cq_capacity: { parameters: ["pointer"], result: "i32" },
  /** int drv_req_notify_cq(struct ibv_cq *cq, int32_t solicited_only) */
  drv_req_notify_cq: { parameters: ["pointer", "i32"], result: "i32" },
  /** int32_t drv_poll_cq(struct ibv_cq *cq, int32_t max, struct drv_wc_desc *out) */
  drv_poll_cq: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  /**
   * int32_t drv_poll_cq_checked(struct ibv_cq *cq, int32_t max, struct drv_wc_desc *out)
   *
   * -(POLL_FAILED + n) when one of its n completions failed (`ffi/records/verbs.ts`).
   */
  drv_poll_cq_checked: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  /** int32_t drv_comp_channel_fd(struct ibv_comp_channel *channel) */
  drv_comp_channel_fd: { parameters: ["pointer"], result: "i32" },
  /** int32_t drv_take_cq_event(struct ibv_comp_channel *channel, uint64_t *cq_out) */
  drv_take_cq_event: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int32_t drv_context_async_fd(struct ibv_context *context) */
  drv_context_async_fd: { parameters: ["pointer"], result: "i32" },
  /**
   * int32_t drv_take_async_event(struct ibv_context *context, struct drv_async_event_desc *out)
   */
  drv_take_async_event: { parameters: ["pointer", "buffer"], result: "i32" },

  /** int32_t drv_waiter_create(struct drv_waiter **out) */
  drv_waiter_create: { parameters: ["buffer"], result: "i32" },
  /** int32_t drv_waiter_arm(struct drv_waiter *waiter, int32_t fd, uint64_t token) */
  drv_waiter_arm: { parameters: ["pointer", "i32", "u64"], result: "i32" },
  /** int32_t drv_waiter_disarm(struct drv_waiter *waiter, int32_t fd) */
  drv_waiter_disarm: { parameters: ["pointer", "i32"], result: "i32" },
  /**
   * int32_t drv_waiter_wait(struct drv_waiter *waiter, uint64_t *tokens, int32_t max,
   *                         int32_t timeout_ms)
   *
   * Runs on a worker thread: returns -errno itself rather than through drv_last_errno.
   */
  drv_waiter_wait: {
    parameters: ["pointer", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** int32_t drv_waiter_wake(struct drv_waiter *waiter) */
  drv_waiter_wake: { parameters: ["pointer"], result: "i32" },

  /**
   * struct ibv_qp *drv_create_qp(struct ibv_pd *pd, struct ibv_cq *send_cq,
   *                              struct ibv_cq *recv_cq, struct ibv_srq *srq, int32_t qp_type,
   *                              uint32_t max_send_wr, uint32_t max_recv_wr,
   *                              uint32_t max_send_sge, uint32_t max_recv_sge,
   *                              uint32_t max_inline_data, int32_t sq_sig_all)
   */
  drv_create_qp: {
    parameters: [
      "pointer",
      "pointer",
      "pointer",
      "pointer",
      "i32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "i32",
    ],
    result: "pointer",
  },
  /**
   * struct ibv_srq *drv_create_srq(struct ibv_pd *pd, uint32_t max_wr, uint32_t max_sge,
   *                                uint32_t srq_limit)
   */
  drv_create_srq: { parameters: ["pointer", "u32", "u32", "u32"], result: "pointer" },
  /** int drv_destroy_srq(struct ibv_srq *srq) */
  drv_destroy_srq: { parameters: ["pointer"], result: "i32" },
  /** int drv_arm_srq_limit(struct ibv_srq *srq, uint32_t limit) */
  drv_arm_srq_limit: { parameters: ["pointer", "u32"], result: "i32" },
  /** int drv_query_srq(struct ibv_srq *srq, struct drv_srq_attr_desc *out) */
  drv_query_srq: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int drv_post_srq_recv(struct ibv_srq *srq, const struct drv_recv_desc *d) */
  drv_post_srq_recv: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int drv_destroy_qp(struct ibv_qp *qp) */
  drv_destroy_qp: { parameters: ["pointer"], result: "i32" },
  /** uint32_t drv_qp_num(struct ibv_qp *qp) */
  drv_qp_num: { parameters: ["pointer"], result: "u32" },
  /** int32_t drv_qp_state(struct ibv_qp *qp) */
  drv_qp_state: { parameters: ["pointer"], result: "i32" },
  /** int drv_query_qp_attributes(struct ibv_qp *qp, struct drv_qp_attr_desc *out) */
  drv_query_qp_attributes: { parameters: ["pointer", "buffer"], result: "i32" },
  /**
   * int drv_modify_qp_init(struct ibv_qp *qp, uint32_t port, uint32_t pkey_index,
   *                        int32_t access_flags, uint32_t qkey)
   */
  drv_modify_qp_init: { parameters: ["pointer", "u32", "u32", "i32", "u32"], result: "i32" },
  /** int drv_modify_qp_rtr(struct ibv_qp *qp, const struct drv_path_desc *path) */
  drv_modify_qp_rtr: { parameters: ["pointer", "buffer"], result: "i32" },
  /**
   * int drv_modify_qp_rts(struct ibv_qp *qp, uint32_t sq_psn, uint32_t timeout,
   *                       uint32_t retry_cnt, uint32_t rnr_retry, uint32_t max_rd_atomic)
   */
  drv_modify_qp_rts: {
    parameters: ["pointer", "u32", "u32", "u32", "u32", "u32"],
    result: "i32",
  },
  /** int drv_modify_qp_error(struct ibv_qp *qp) */
  drv_modify_qp_error: { parameters: ["pointer"], result: "i32" },
  /** struct ibv_ah *drv_create_ah(struct ibv_pd *pd, const struct drv_path_desc *path) */
  drv_create_ah: { parameters: ["pointer", "buffer"], result: "pointer" },
  /** int drv_destroy_ah(struct ibv_ah *ah) */
  drv_destroy_ah: { parameters: ["pointer"], result: "i32" },

  /** int drv_post_send(struct ibv_qp *qp, const struct drv_send_desc *d) */
  drv_post_send: { parameters: ["pointer", "buffer"], result: "i32" },
  /**
   * int drv_post_send_chain(struct ibv_qp *qp, const struct drv_send_desc *d, uint32_t count,
   *                         int32_t signal_last, uint32_t *posted)
   */
  drv_post_send_chain: {
    parameters: ["pointer", "buffer", "u32", "i32", "buffer"],
    result: "i32",
  },
  /** int drv_post_recv(struct ibv_qp *qp, const struct drv_recv_desc *d) */
  drv_post_recv: { parameters: ["pointer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The shim's functions, typed. */
export type VerbsNative = Deno.DynamicLibrary<typeof verbsSymbols>["symbols"];

let library: Deno.DynamicLibrary<typeof verbsSymbols> | undefined;

/** The shim's functions, opening it on first call (throws the loader's NativeLibraryError if it
 * is not built). */
export function verbsNative(): VerbsNative {
  library ??= openNativeLibrary(VERBS_LIBRARY, verbsSymbols);
  return library.symbols;
}
