/**
 * The connection manager (librdmacm): connect to and listen on IP addresses and ports, with an RC
 * queue pair per connection, CM events read without blocking the event loop. See cm/README.md.
 *
 * @module
 */
export {
  type CloseReason,
  CmConnection,
  type CmConnectOptions,
  type CmQueuePairOptions,
  connect,
  type ConnectionParameters,
} from "./connection.ts";
export { ConnectionRequest, listen, Listener, type ListenOptions } from "./listener.ts";
export { CmErrno, CmEventError } from "./errors.ts";
export { openUdEndpoint, type UdDestination, UdEndpoint, type UdEndpointOptions } from "./ud.ts";
export { type CmEvent, cmEventName, type UdPath } from "./events.ts";
