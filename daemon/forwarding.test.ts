import { describe, expect, it } from 'vitest';
import { SnapshotBuilder, isTrusted, nameToId, withTrustedData } from './forwarding.js';
import type { DataSession } from '../crypto/data-session.js';

const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';
const C = '02:00:00:00:00:03';
const fakeSession = { overheadBytes: 16 } as unknown as DataSession;

describe('SnapshotBuilder', () => {
  it('maps names to 48-bit ids and routes to next hops', () => {
    const snap = new SnapshotBuilder().build({
      localName: A,
      unicast: new Map([
        [B, B],
        [C, B],
      ]),
      broadcast: new Map([
        [A, [B]],
        [C, []],
      ]),
      neighbours: [{ name: B, remoteHost: '10.9.0.2', udpPort: 6783, data: null }],
      trustedSubnets: [],
      underlayMtuBytes: 1500,
    });
    expect(nameToId(A)).toBe(0x020000000001);
    expect(snap.localPeer).toBe(0x020000000001);
    expect(snap.unicastNextHop.get(nameToId(C))).toBe(nameToId(B));
    expect(snap.broadcastNextHops.get(nameToId(A))).toEqual([nameToId(B)]);
    expect(snap.neighbours.get(nameToId(B))?.endpoint).toEqual({ address: '10.9.0.2', port: 6783 });
  });

  it('keeps endpoint objects stable across snapshots', () => {
    const b = new SnapshotBuilder();
    const inputs = {
      localName: A,
      unicast: new Map(),
      broadcast: new Map(),
      neighbours: [{ name: B, remoteHost: '::ffff:10.9.0.2', udpPort: 6783, data: null }],
      trustedSubnets: [],
      underlayMtuBytes: 1500,
    };
    const e1 = b.build(inputs).neighbours.get(nameToId(B))!.endpoint;
    const e2 = b.build(inputs).neighbours.get(nameToId(B))!.endpoint;
    expect(e1).toBe(e2);
    expect(e1.address).toBe('10.9.0.2');
  });

  it('sends in clear to peers inside a trusted subnet, sealed to others', () => {
    const snap = new SnapshotBuilder().build({
      localName: A,
      unicast: new Map(),
      broadcast: new Map(),
      neighbours: [
        { name: B, remoteHost: '10.9.0.2', udpPort: 6783, data: fakeSession },
        { name: C, remoteHost: '10.8.0.3', udpPort: 6783, data: fakeSession },
      ],
      trustedSubnets: ['10.9.0.0/16'],
      underlayMtuBytes: 1500,
    });
    expect(snap.neighbours.get(nameToId(B))!.session).toBeNull();
    expect(snap.neighbours.get(nameToId(C))!.session).toBe(fakeSession);
  });
});

describe('isTrusted', () => {
  it('matches IPv4, IPv4-mapped IPv6 and IPv6', () => {
    expect(isTrusted('192.168.5.4', ['192.168.0.0/16'])).toBe(true);
    expect(isTrusted('::ffff:192.168.5.4', ['192.168.0.0/16'])).toBe(true);
    expect(isTrusted('192.169.5.4', ['192.168.0.0/16'])).toBe(false);
    expect(isTrusted('fd00::1', ['fd00::/8'])).toBe(true);
    expect(isTrusted('not-an-ip', ['0.0.0.0/0'])).toBe(false);
  });
});

describe('withTrustedData', () => {
  const encrypted: { address: string; isEncrypted: boolean; info: string; dataCipher?: string; isDataClear?: boolean } = {
    address: '10.0.0.2:6783',
    isEncrypted: true,
    info: 'encrypted',
    dataCipher: 'AEGIS-256X2',
  };

  it('says a trusted connection sends data in the clear, and names no data cipher for it', () => {
    const c = withTrustedData(encrypted, ['10.0.0.0/24']);
    expect(c).toEqual({
      address: '10.0.0.2:6783',
      isEncrypted: true,
      isDataClear: true,
      info: 'encrypted control, clear data (trusted subnet)',
    });
    expect(withTrustedData({ ...encrypted, address: '[::ffff:10.0.0.2]:41000' }, ['10.0.0.0/24']).isDataClear).toBe(true);
  });

  it('leaves untrusted, unencrypted or unparsable connections alone', () => {
    expect(withTrustedData(encrypted, ['10.1.0.0/24'])).toBe(encrypted);
    expect(withTrustedData(encrypted, [])).toBe(encrypted);
    const clear = { ...encrypted, isEncrypted: false, info: 'unencrypted' };
    expect(withTrustedData(clear, ['10.0.0.0/24'])).toBe(clear);
    const odd = { ...encrypted, address: 'not an address' };
    expect(withTrustedData(odd, ['10.0.0.0/24'])).toBe(odd);
  });
});
