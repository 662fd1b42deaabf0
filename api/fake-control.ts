/**
 * A recording `WeftControl` for API and CLI tests: answers `report()` from a fixed `Report`, records every call, and
 * throws whatever a test puts in `failWith`.
 */
import type { AttachRequest, EndpointReport, Report, WeftControl } from './control.js';

/** One call made on a `FakeControl`. */
export interface ControlCall {
  method: keyof WeftControl;
  args: unknown[];
}

export class FakeControl implements WeftControl {
  readonly calls: ControlCall[] = [];
  /** When set, the next call of that method throws it (then it is cleared). */
  failWith: Partial<Record<keyof WeftControl, unknown>> = {};

  constructor(public reportValue: Report = sampleReport()) {}

  report(): Report {
    this.record('report', []);
    return this.reportValue;
  }
  connect(peers: string[], replace: boolean): void {
    this.record('connect', [peers, replace]);
  }
  forget(peers: string[]): void {
    this.record('forget', [peers]);
  }
  async attach(request: AttachRequest): Promise<EndpointReport> {
    this.record('attach', [request]);
    return {
      target: request.target,
      interface: request.ifname ?? 'ethwe0',
      mac: request.mac ?? '02:00:00:00:00:01',
      addresses: request.addresses,
    };
  }
  async detachContainer(containerId: string, ifname: string): Promise<boolean> {
    this.record('detachContainer', [containerId, ifname]);
    return true;
  }

  async detach(target: string): Promise<void> {
    this.record('detach', [target]);
  }
  async expose(cidrs: string[]): Promise<string[]> {
    this.record('expose', [cidrs]);
    return cidrs;
  }
  async hide(cidrs: string[]): Promise<string[]> {
    this.record('hide', [cidrs]);
    return cidrs;
  }
  async prime(timeoutMs: number): Promise<void> {
    this.record('prime', [timeoutMs]);
  }

  async rmpeer(name: string): Promise<number> {
    this.record('rmpeer', [name]);
    return 0;
  }

  async reset(): Promise<void> {
    this.record('reset', []);
  }

  dnsAdd(name: string, addresses: string[]): string {
    this.record('dnsAdd', [name, addresses]);
    return `${name}.weft.local.`;
  }
  dnsRemove(name: string, addresses: string[]): number {
    this.record('dnsRemove', [name, addresses]);
    return addresses.length || 1;
  }
  dnsLookup(name: string): string[] {
    this.record('dnsLookup', [name]);
    return name === 'web' ? ['10.32.0.5', '10.32.0.6'] : [];
  }
  dnsArgs(): string {
    this.record('dnsArgs', []);
    return '--dns 10.32.0.1 --dns-search weft.local';
  }

  reloadAuthorizedPeers(): { keys: number; closed: string[] } {
    this.record('reloadAuthorizedPeers', []);
    return { keys: 2, closed: ['h3 (10.1.0.3:6783)'] };
  }

  async stop(): Promise<void> {
    this.record('stop', []);
  }

  private record(method: keyof WeftControl, args: unknown[]): void {
    this.calls.push({ method, args });
    const failure = this.failWith[method];
    if (failure !== undefined) {
      delete this.failWith[method];
      throw failure;
    }
  }
}

/**
 * A fixed report of a 3-peer mesh seen from h1 (00:00:00:00:00:01): two established connections, one target
 * retrying, IPAM ready, one container attached.
 */
export function sampleReport(): Report {
  const n1 = '00:00:00:00:00:01';
  const n2 = '00:00:00:00:00:02';
  const n3 = '00:00:00:00:00:03';
  return {
    version: '0.1.0',
    router: {
      protocol: 'weft 1..1',
      name: n1,
      nickname: 'h1',
      uid: '1001',
      encryption: false,
      peerDiscovery: true,
      trustedSubnets: [],
      httpAddr: '127.0.0.1:6784',
      listenAddr: '0.0.0.0:6783',
      targets: [
        { address: '10.1.0.2:6783', state: 'connected' },
        { address: '10.1.0.9:6783', state: 'retrying', lastError: 'connect ECONNREFUSED', nextAttemptInSeconds: 4 },
      ],
      connections: [
        { direction: '->', address: '10.1.0.2:6783', peer: n2, nickname: 'h2', state: 'established', info: 'sleeve', isEncrypted: false },
        { direction: '<-', address: '10.1.0.3:41234', peer: n3, nickname: 'h3', state: 'established', info: 'sleeve', isEncrypted: false },
        { direction: '->', address: '10.1.0.9:6783', state: 'retrying', info: 'retry in 4s: connect ECONNREFUSED', isEncrypted: false },
      ],
      peers: [
        {
          name: n1,
          nickname: 'h1',
          uid: '1001',
          version: 5,
          connections: [
            { name: n2, nickname: 'h2', address: '10.1.0.2:6783', isOutbound: true, isEstablished: true },
            { name: n3, nickname: 'h3', address: '10.1.0.3:41234', isOutbound: false, isEstablished: true },
          ],
        },
        {
          name: n2,
          nickname: 'h2',
          uid: '1002',
          version: 4,
          connections: [
            { name: n1, nickname: 'h1', address: '10.1.0.1:45678', isOutbound: false, isEstablished: true },
            { name: n3, nickname: 'h3', address: '10.1.0.3:6783', isOutbound: true, isEstablished: true },
          ],
        },
        {
          name: n3,
          nickname: 'h3',
          uid: '1003',
          version: 3,
          connections: [
            { name: n1, nickname: 'h1', address: '10.1.0.1:6783', isOutbound: true, isEstablished: true },
            { name: n2, nickname: 'h2', address: '10.1.0.2:51111', isOutbound: false, isEstablished: true },
          ],
        },
      ],
    },
    datapath: {
      mode: 'sleeve',
      bridge: 'weft',
      capture: 'tap',
      offloads: ['checksum', 'TCP segmentation'],
      busyPollMicros: 200,
      mtuBytes: 1376,
      udpPort: 6783,
      counters: { framesIn: 10, framesOut: 12, dropNoRoute: 1 },
      peers: [
        { name: n2, isEstablished: true, lastHeardSecondsAgo: 0.4, pathMtuBytes: 1500, isPathMtuConfirmed: true },
        { name: n3, isEstablished: true, lastHeardSecondsAgo: 0.7, pathMtuBytes: 1280, isPathMtuConfirmed: false },
      ],
    },
    endpoints: [{ target: 'c1', interface: 'ethwe0', mac: '02:aa:bb:cc:dd:01', addresses: ['10.32.0.1/12'] }],
    ipam: {
      status: 'ready',
      range: '10.32.0.0/12',
      defaultSubnet: '10.32.0.0/12',
      peers: [
        { name: n1, nickname: 'h1', addresses: 524288, share: 0.5, isReachable: true },
        { name: n2, nickname: 'h2', addresses: 262144, share: 0.25, isReachable: true },
        { name: n3, nickname: 'h3', addresses: 262144, share: 0.25, isReachable: false },
      ],
      counters: {},
    },
  };
}
