/**
 * An attached endpoint as `weft ps`, `weft report` and the answer to `POST /attach` show it, declared once, here, by
 * its owner (netdev/endpoint.ts `attach` and `listEndpoints` return it); api/control.ts composes it into
 * `EndpointReport`, adding what the daemon knows of Docker containers.
 *
 * Type-only and plain JSON: this file imports nothing, so api/ and cli/ may read it without loading any device code
 * (it is the one file of netdev/ test/import-graph.test.ts lets them reach). Keep it that way.
 */

/** One attached endpoint: a veth pair, its container end in a namespace. */
export interface EndpointReport {
  /** The namespace or container the endpoint lives in, as given at attach. */
  target: string;
  /** Interface name inside the namespace. */
  interface: string;
  /** Its MAC, lower case; '' when the namespace could not be entered (see listEndpoints). */
  mac: string;
  /** Its global-scope addresses in CIDR form. */
  addresses: string[];
  /**
   * The container runtime's id for it (attached through CNI), or a Docker container's (`weft attach CONTAINER`, set
   * by the daemon); absent for `weft attach --netns/--pid`.
   */
  containerId?: string;
  /** The host end of its veth pair; in the answer to a new attach only (a CNI result lists the host-level interfaces too). */
  hostInterface?: string;
  /**
   * The container's default route set at attach (`AttachOptions.gateway`): for a runtime's container (`containerId`),
   * the host's exposed address in the container's subnet when there is one (`weft expose`). In attach's answer only.
   */
  gateway?: string;
}
