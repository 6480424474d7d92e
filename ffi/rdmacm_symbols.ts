/**
 * The FFI table of the connection-manager shim (`build/libdeno_rdma_cm.so`, sources
 * `ffi/native/cm_shim.c` over librdmacm.so.1): `rdmacmSymbols`, `RDMACM_LIBRARY`,
 * `rdmacmNative()`, `RdmacmNative`, named as `ffi/verbs_symbols.ts` explains.
 *
 * Opened on first use. Handles are opaque pointers (struct rdma_event_channel *, struct
 * rdma_cm_id *); events and id descriptions are Uint8Arrays laid out as in `ffi/records/rdmacm.ts`.
 * Strings are NUL-terminated UTF-8 buffers. Functions returning a pointer return NULL on failure
 * (the errno is `drc_last_errno()`); functions returning int return 0 (or a count) or -errno, and
 * -(CM_GAI_FAILED + n) when a host name did not resolve (getaddrinfo error -n).
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";

/** File name of the connection-manager shim in the build folder. */
export const RDMACM_LIBRARY = "libdeno_rdma_cm.so";

/** The shim's functions, by C name. */
export const rdmacmSymbols = {
  /** int drc_last_errno(void) */
  drc_last_errno: { parameters: [], result: "i32" },
  /** const char *drc_records(void) */
  drc_records: { parameters: [], result: "pointer" },
  /**
   * const char *drc_gai_text(int32_t n)
   *
   * What getaddrinfo's error -n means.
   */
  drc_gai_text: { parameters: ["i32"], result: "pointer" },

  /**
   * struct rdma_event_channel *drc_create_channel(void)
   *
   * Its fd is nonblocking.
   */
  drc_create_channel: { parameters: [], result: "pointer" },
  /** int drc_destroy_channel(struct rdma_event_channel *channel) */
  drc_destroy_channel: { parameters: ["pointer"], result: "i32" },
  /** int32_t drc_channel_fd(struct rdma_event_channel *channel) */
  drc_channel_fd: { parameters: ["pointer"], result: "i32" },
  /**
   * int32_t drc_get_event(struct rdma_event_channel *channel, struct drc_event_desc *out)
   *
   * 1 (an event, already acknowledged), 0 (none pending) or -errno.
   */
  drc_get_event: { parameters: ["pointer", "buffer"], result: "i32" },

  /** struct rdma_cm_id *drc_create_id(struct rdma_event_channel *channel, int32_t port_space) */
  drc_create_id: { parameters: ["pointer", "i32"], result: "pointer" },
  /** int drc_destroy_id(struct rdma_cm_id *id) */
  drc_destroy_id: { parameters: ["pointer"], result: "i32" },
  /** int drc_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel) */
  drc_migrate_id: { parameters: ["pointer", "pointer"], result: "i32" },
  /**
   * int drc_resolve_addr(struct rdma_cm_id *id, const char *source, const char *host,
   *                      uint32_t port, int32_t timeout_ms)
   *
   * `source` may be NULL (any local address).
   */
  drc_resolve_addr: { parameters: ["pointer", "buffer", "buffer", "u32", "i32"], result: "i32" },
  /** int drc_resolve_route(struct rdma_cm_id *id, int32_t timeout_ms) */
  drc_resolve_route: { parameters: ["pointer", "i32"], result: "i32" },
  /**
   * int drc_listen(struct rdma_cm_id *id, const char *host, uint32_t port, int32_t backlog)
   *
   * `host` may be NULL (every local address); port 0 picks one (drc_id_info tells which).
   */
  drc_listen: { parameters: ["pointer", "buffer", "u32", "i32"], result: "i32" },
  /** int drc_id_info(struct rdma_cm_id *id, struct drc_id_desc *out) */
  drc_id_info: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int drc_attach_qp(struct rdma_cm_id *id, struct ibv_qp *qp) */
  drc_attach_qp: { parameters: ["pointer", "pointer"], result: "i32" },
  /** void drc_detach_qp(struct rdma_cm_id *id) */
  drc_detach_qp: { parameters: ["pointer"], result: "void" },
  /** int drc_share_qp(struct rdma_cm_id *id, struct ibv_qp *qp) */
  drc_share_qp: { parameters: ["pointer", "pointer"], result: "i32" },
  /** int drc_join_multicast(struct rdma_cm_id *id, const char *group) */
  drc_join_multicast: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int drc_leave_multicast(struct rdma_cm_id *id, const char *group) */
  drc_leave_multicast: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int drc_bind(struct rdma_cm_id *id, const char *host, uint32_t port) */
  drc_bind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  /**
   * int drc_connect(struct rdma_cm_id *id, const uint8_t *data, uint32_t len,
   *                 uint32_t responder_resources, uint32_t initiator_depth,
   *                 uint32_t retry_count, uint32_t rnr_retry_count)
   */
  drc_connect: {
    parameters: ["pointer", "buffer", "u32", "u32", "u32", "u32", "u32"],
    result: "i32",
  },
  /**
   * int drc_accept(struct rdma_cm_id *id, const uint8_t *data, uint32_t len,
   *                uint32_t responder_resources, uint32_t initiator_depth,
   *                uint32_t rnr_retry_count)
   */
  drc_accept: { parameters: ["pointer", "buffer", "u32", "u32", "u32", "u32"], result: "i32" },
  /** int drc_reject(struct rdma_cm_id *id, const uint8_t *data, uint32_t len) */
  drc_reject: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  /** int drc_disconnect(struct rdma_cm_id *id) */
  drc_disconnect: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The shim's functions, typed. */
export type RdmacmNative = Deno.DynamicLibrary<typeof rdmacmSymbols>["symbols"];

let library: Deno.DynamicLibrary<typeof rdmacmSymbols> | undefined;

/** The shim's functions, opening it on first call (throws the loader's NativeLibraryError if it
 * is not built). */
export function rdmacmNative(): RdmacmNative {
  library ??= openNativeLibrary(RDMACM_LIBRARY, rdmacmSymbols);
  return library.symbols;
}
