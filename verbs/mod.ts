/**
 * The verbs API: devices, contexts, protection domains, memory regions, completion queues, queue
 * pairs, shared receive queues, address handles and asynchronous events over libibverbs, through
 * Deno FFI and a small C shim.
 *
 * Lifetime: a parent refuses to close while its children are open (RdmaError EBUSY names them);
 * every handle has an idempotent `close()` and `[Symbol.dispose]`, and leaked handles are closed
 * by a FinalizationRegistry. See verbs/README.md.
 *
 * @module
 */
export {
  Access,
  DEFAULT_QKEY,
  GRH_BYTES,
  LinkLayer,
  Mtu,
  mtuBytes,
  PortState,
  QpState,
  QpType,
  SendFlags,
  WcFlags,
  WcOpcode,
  WcStatus,
  wcStatusName,
  WrOpcode,
} from "./constants.ts";
export { Errno, RdmaError } from "./errors.ts";
export { type DeviceInfo, formatGuid, listDevices, openDevice } from "./device.ts";
export { Context, type DeviceAttributes, type GidEntry, type PortAttributes } from "./context.ts";
export { NativeHandle } from "./handle.ts";
export { ProtectionDomain } from "./protection_domain.ts";
export { MemoryRegion, type MemorySource, type RegisterOptions } from "./memory_region.ts";
export { type MemoryTarget } from "./memory_target.ts";
export {
  CompletionQueue,
  type CompletionQueueOptions,
  type WaitOptions,
} from "./completion_queue.ts";
export { CompletionChannel } from "./completion_channel.ts";
export { pendingWaits, type ReadableWait, waitReadable } from "./fd_waiter.ts";
export { type WorkCompletion, WorkCompletions } from "./work_completions.ts";
export { CompletionError } from "./completion_error.ts";
export { type AsyncEvent, asyncEventName, AsyncEventType } from "./async_events.ts";
export { gidCompactText, gidText, gidWireText, parseGid } from "./gid.ts";
export { AddressHandle, type PathOptions } from "./address_handle.ts";
export { PreparedSend } from "./prepared_send.ts";
export { SharedReceiveQueue, type SharedReceiveQueueOptions } from "./shared_receive_queue.ts";
export { QueuePair, type QueuePairAttributes, type QueuePairOptions } from "./queue_pair.ts";
export type { ConnectionInfo, ConnectOptions, LocalInfo } from "./connection.ts";
export type { SendRequest } from "./send_encoding.ts";
export type { RecvRequest } from "./recv_encoding.ts";
export type { ScatterGather } from "./scatter_gather.ts";
