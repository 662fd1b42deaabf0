/**
 * The Docker integration's part of `weft report` (`GET /report`, `weft status`'s Docker block), declared once, here,
 * by its owner (`DockerPlugin.report()` builds it; the drivers keep their networks and pools in these shapes, in the
 * Store too); api/control.ts composes it into `Report`.
 *
 * Type-only and plain JSON: this file imports nothing, so api/, cli/ and cni/ may read it without loading the plugin's
 * code (its IPAM driver uses ipam/, which the CLI and the CNI plugin must not load). Keep it that way.
 */

/** One Docker network made with weft's driver. */
export interface DockerNetworkReport {
  networkId: string;
  subnets: string[];
  options: Record<string, string>;
}

/** One pool in use, as the Store and `weft status` have it. */
export interface DockerPool {
  id: string;
  subnet: string;
  ipRange: string;
}

/** One endpoint (a container's veth pair) of a weft network. */
export interface DockerEndpointReport {
  endpointId: string;
  networkId: string;
  hostIfname: string;
  mac: string;
  addresses: string[];
  isJoined: boolean;
  containerId?: string;
  containerName?: string;
}

/** `weft status`'s Docker block: the plugin socket, the engine, and what the drivers serve. */
export interface DockerReport {
  socket: string;
  /** The engine's API URL ('' when Docker integration is off). */
  engine: string;
  isEngineReachable: boolean;
  /** The engine's version, once it answered. */
  engineVersion?: string;
  /** Why the `weft` network could not be made yet, if it could not. */
  lastError?: string;
  networks: DockerNetworkReport[];
  pools: DockerPool[];
  endpoints: DockerEndpointReport[];
  counters: Record<string, number>;
}
