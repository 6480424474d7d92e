/**
 * The FFI table of the verbs shim (`build/libdeno_rdma_verbs.so`, sources in `ffi/native/`).
 *
 * Opened on first use, so importing the library never fails; the first verb call throws the
 * loader's error when the shim is not built. Handles are opaque pointers; descriptors are
 * Uint8Arrays laid out as in `ffi/records/verbs.ts`.
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";

/** File name of the verbs shim in the build folder. */
export const VERBS_SHIM_FILE = "libdeno_rdma_verbs.so";

const SYMBOLS = {
  drv_last_errno: { parameters: [], result: "i32" },
  drv_errno_name: { parameters: ["i32"], result: "pointer" },
  drv_errno_text: { parameters: ["i32"], result: "pointer" },
  drv_records: { parameters: [], result: "pointer" },

  drv_get_device_list: { parameters: ["buffer"], result: "pointer" },
  drv_free_device_list: { parameters: ["pointer"], result: "void" },
  drv_device_info: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  drv_open_device: { parameters: ["buffer"], result: "pointer" },
  drv_context_device_name: { parameters: ["pointer"], result: "pointer" },
  drv_close_device: { parameters: ["pointer"], result: "i32" },
  drv_query_device: { parameters: ["pointer", "buffer"], result: "i32" },
  drv_query_port: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  drv_query_gid: { parameters: ["pointer", "u32", "u32", "buffer"], result: "i32" },

  drv_alloc_pd: { parameters: ["pointer"], result: "pointer" },
  drv_dealloc_pd: { parameters: ["pointer"], result: "i32" },
  drv_reg_mr: { parameters: ["pointer", "pointer", "u64", "i32"], result: "pointer" },
  drv_dereg_mr: { parameters: ["pointer"], result: "i32" },
  drv_mr_lkey: { parameters: ["pointer"], result: "u32" },
  drv_mr_rkey: { parameters: ["pointer"], result: "u32" },

  drv_create_comp_channel: { parameters: ["pointer"], result: "pointer" },
  drv_destroy_comp_channel: { parameters: ["pointer"], result: "i32" },
  drv_create_cq: { parameters: ["pointer", "i32", "pointer", "i32"], result: "pointer" },
  drv_destroy_cq: { parameters: ["pointer"], result: "i32" },
  drv_cq_capacity: { parameters: ["pointer"], result: "i32" },
  drv_req_notify_cq: { parameters: ["pointer", "i32"], result: "i32" },
  drv_poll_cq: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  drv_poll_cq_checked: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  // Runs on a worker thread: returns -errno itself rather than through drv_last_errno.
  drv_wait_cq_event: { parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  drv_wait_async_event: {
    parameters: ["pointer", "i32", "buffer"],
    result: "i32",
    nonblocking: true,
  },

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
  drv_create_srq: { parameters: ["pointer", "u32", "u32", "u32"], result: "pointer" },
  drv_destroy_srq: { parameters: ["pointer"], result: "i32" },
  drv_arm_srq_limit: { parameters: ["pointer", "u32"], result: "i32" },
  drv_query_srq: { parameters: ["pointer", "buffer"], result: "i32" },
  drv_post_srq_recv: { parameters: ["pointer", "buffer"], result: "i32" },
  drv_destroy_qp: { parameters: ["pointer"], result: "i32" },
  drv_qp_num: { parameters: ["pointer"], result: "u32" },
  drv_qp_state: { parameters: ["pointer"], result: "i32" },
  drv_query_qp_attributes: { parameters: ["pointer", "buffer"], result: "i32" },
  drv_modify_qp_init: { parameters: ["pointer", "u32", "u32", "i32", "u32"], result: "i32" },
  drv_modify_qp_rtr: { parameters: ["pointer", "buffer"], result: "i32" },
  drv_modify_qp_rts: {
    parameters: ["pointer", "u32", "u32", "u32", "u32", "u32"],
    result: "i32",
  },
  drv_modify_qp_error: { parameters: ["pointer"], result: "i32" },
  drv_create_ah: { parameters: ["pointer", "buffer"], result: "pointer" },
  drv_destroy_ah: { parameters: ["pointer"], result: "i32" },

  drv_post_send: { parameters: ["pointer", "buffer"], result: "i32" },
  drv_post_send_chain: {
    parameters: ["pointer", "buffer", "u32", "i32", "buffer"],
    result: "i32",
  },
  drv_post_recv: { parameters: ["pointer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * drv_poll_cq_checked's result is -(POLL_FAILED + n) when one of its n completions failed
 * (DRV_POLL_FAILED in verbs_shim.h); -errno results are above it.
 */
export { POLL_FAILED } from "./records/verbs.ts";

/** The shim's symbols, typed. */
export type VerbsShim = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** Opens the shim on first call (throws the loader's NativeLibraryError if it is not built). */
export function verbsShim(): VerbsShim {
  library ??= openNativeLibrary(VERBS_SHIM_FILE, SYMBOLS);
  return library.symbols;
}

/** Reads a NUL-terminated C string returned by the shim. */
export function cString(pointer: Deno.PointerValue): string {
  return pointer === null ? "" : Deno.UnsafePointerView.getCString(pointer);
}
