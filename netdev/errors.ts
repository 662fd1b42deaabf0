/**
 * Typed failures of the host network devices. Each has a stable `code` that `api/` and `cli/` match on, and a message
 * that names the device (or value) and says what to do.
 */
import { WeftError } from '../runtime/errors.js';

/** A command (`ip`, `ethtool`, `nsenter`) ran and failed. */
export class NetdevCommandError extends WeftError {
  readonly code = 'NETDEV_COMMAND_FAILED';
  override readonly status = 500;
  constructor(
    /** The device (or namespace) the command was about. */
    readonly device: string,
    /** The command line as run, space-joined (for people; it was executed without a shell). */
    readonly command: string,
    /** Its trimmed standard error, or the spawn error's message. */
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(`${device}: \`${command}\` failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr || 'no error output'}`);
  }
}

/** A program weft needs is not installed. */
export class MissingToolError extends WeftError {
  readonly code = 'MISSING_TOOL';
  override readonly status = 500;
  constructor(readonly tool: string) {
    super(`\`${tool}\` is not installed (or not on PATH); run scripts/setup.sh as root, or install ${packageOf(tool)}`);
  }
}

function packageOf(tool: string): string {
  switch (tool) {
    case 'ip':
      return 'iproute2';
    case 'nsenter':
      return 'util-linux';
    default:
      return tool;
  }
}

/** A value given by a user (CIDR, interface name, MAC, MTU) is malformed. */
export class InvalidNetdevInputError extends WeftError {
  readonly code = 'INVALID_NETDEV_INPUT';
  constructor(
    /** Which input: 'cidr', 'address', 'ifname', 'mac', 'mtuBytes', 'netns'. */
    readonly field: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`invalid ${field} ${JSON.stringify(value)}: expected ${expected}`);
  }
}

/** An attach/detach target is not one of the three accepted forms. */
export class InvalidTargetError extends WeftError {
  readonly code = 'INVALID_TARGET';
  constructor(readonly target: string) {
    super(
      `invalid target ${JSON.stringify(target)}: give an \`ip netns\` name, a path to a namespace file ` +
        '(/proc/PID/ns/net, /run/netns/NAME) or pid:PID',
    );
  }
}

/** The target's network namespace does not exist (the container stopped, the name is wrong). */
export class TargetNotFoundError extends WeftError {
  readonly code = 'TARGET_NOT_FOUND';
  override readonly status = 404;
  constructor(
    readonly target: string,
    readonly path: string,
  ) {
    super(`target ${JSON.stringify(target)}: no network namespace at ${path}; is the container or process still running?`);
  }
}

/** A device with the bridge's name exists but is not a Linux bridge, so weft will not adopt (or delete) it. */
export class NotABridgeError extends WeftError {
  readonly code = 'NOT_A_BRIDGE';
  override readonly status = 409;
  constructor(
    readonly device: string,
    readonly kind: string,
  ) {
    super(
      `device ${device} exists but is a ${kind || 'plain device'}, not a bridge; remove it (ip link del ${device}) ` +
        'or choose another bridge name',
    );
  }
}

/** There is no route to decide the underlay device from (no default route, or none to the given address). */
export class NoRouteError extends WeftError {
  readonly code = 'NO_ROUTE';
  override readonly status = 409;
  constructor(readonly destination: string) {
    super(
      `no route ${destination === 'default' ? 'is the default' : `to ${destination}`} to take the underlay MTU from; ` +
        'add one, or give the MTU explicitly',
    );
  }
}

/** The target is the namespace the host end would live in: attaching it would plug the host into itself. */
export class TargetIsHostError extends WeftError {
  readonly code = 'TARGET_IS_HOST';
  constructor(readonly target: string) {
    super(`target ${JSON.stringify(target)} is weft's own network namespace; attach a container's namespace instead`);
  }
}

/**
 * A container runtime asked for an interface that is already there: the namespace has a weft endpoint (weft gives a
 * namespace one), or an interface of that name. HTTP 409 through the API.
 */
export class EndpointExistsError extends WeftError {
  readonly code = 'ENDPOINT_EXISTS';
  override readonly status = 409;
  constructor(
    readonly target: string,
    readonly ifname: string,
    /** The container id (or target) of the endpoint already there; undefined when it is another interface. */
    readonly holder: string | undefined,
  ) {
    super(
      holder === undefined
        ? `${JSON.stringify(target)} already has an interface named ${ifname}; choose another interface name, or remove it first`
        : `${JSON.stringify(target)} already has its weft interface (attached for ${holder}); weft gives a namespace one ` +
            'interface: delete that attachment first (CNI DEL, or weft detach)',
    );
  }
}
