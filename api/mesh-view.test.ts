import { describe, expect, it } from 'vitest';
import { sampleReport } from './fake-control.js';
import { meshPaths, meshView } from './mesh-view.js';

describe('meshPaths', () => {
  it('says direct over our own established connection, relayed through others, unreachable otherwise', () => {
    const r = sampleReport();
    expect(Object.fromEntries(meshPaths(r.router))).toEqual({ '00:00:00:00:00:02': 'direct', '00:00:00:00:00:03': 'direct' });
    // Our connection to h3 fails: h3 is still reached through h2.
    r.router.connections[1]!.state = 'failed';
    expect(meshPaths(r.router).get('00:00:00:00:00:03')).toBe('relayed');
    // h2 loses h3 too: nobody reaches it.
    r.router.peers[1]!.connections[1]!.isEstablished = false;
    r.router.peers[0]!.connections[1]!.isEstablished = false;
    expect(meshPaths(r.router).get('00:00:00:00:00:03')).toBe('unreachable');
  });
});

describe('meshView', () => {
  it('copies what the report shows, links once per pair, and no identity key', () => {
    const r = sampleReport();
    r.router.identity = 'SECRET-LOOKING-KEY';
    r.router.connections[0]!.identity = 'ANOTHER-KEY';
    r.datapath.counters = {
      bytes_in: 100,
      bytes_out: 200,
      datagrams_in: 3,
      datagrams_out: 4,
      drop_no_route: 2,
      udp_dropsSendError: 1,
      frames_in: 9,
    };
    const v = meshView(r);
    expect(JSON.stringify(v)).not.toContain('KEY');
    expect(v.self).toEqual({ name: '00:00:00:00:00:01', nickname: 'h1' });
    expect(v.links).toHaveLength(3);
    expect(v.peers.map((p) => p.path)).toEqual(['self', 'direct', 'direct']);
    expect(v.connections[2]).toMatchObject({ address: '10.1.0.9:6783', state: 'retrying', direction: 'out', cipher: 'none' });
    expect(v.datapath).toEqual({ mode: 'sleeve', bytesIn: 100, bytesOut: 200, packetsIn: 3, packetsOut: 4, drops: 3 });
    expect(v.endpoints[0]!.addresses).toEqual(['10.32.0.1/12']);
    expect(v.ipam!.peers).toHaveLength(3);
  });
});
