import { describe, expect, it } from 'vitest';
import { sampleReport } from '../api/fake-control.js';
import { formatConnections, formatEndpoints, formatIpam, formatPeers, formatStatus, formatTargets } from './status-format.js';

describe('status formatting of a fixed report', () => {
  it('formatStatus lays out service blocks with right-aligned labels, like weave status', () => {
    expect(formatStatus(sampleReport())).toBe(
      [
        '        Version: 0.1.0',
        '',
        '        Service: router',
        '       Protocol: weft 1..1',
        '           Name: 00:00:00:00:00:01(h1)',
        '     Encryption: disabled — anyone who reaches port 6783 can join and read traffic',
        '  PeerDiscovery: enabled',
        '        Targets: 2',
        '    Connections: 3 (2 established, 1 retrying)',
        '          Peers: 3 (with 6 established connections)',
        ' TrustedSubnets: none',
        '',
        '        Service: datapath',
        '           Mode: sleeve',
        '         Bridge: weft',
        '        Capture: tap',
        '       Offloads: checksum, TCP segmentation',
        '       BusyPoll: 200us',
        '            MTU: 1376',
        '        UDPPort: 6783',
        '        PathMTU: 00:00:00:00:00:02(h2) 1500',
        '        PathMTU: 00:00:00:00:00:03(h3) 1280 (unconfirmed)',
        '      Endpoints: 1',
        '',
        '        Service: ipam',
        '         Status: ready',
        '          Range: 10.32.0.0/12',
        '  DefaultSubnet: 10.32.0.0/12',
        '',
      ].join('\n'),
    );
  });

  it('formatStatus shows encryption, trusted subnets, and IPAM off; leaves out absent parts', () => {
    const r = sampleReport();
    r.router.encryption = true;
    r.router.trustedSubnets = ['10.0.0.0/8', '192.168.0.0/16'];
    r.router.connections = [];
    r.datapath = { mode: 'none', counters: {} };
    r.ipam = { status: 'off', range: '', defaultSubnet: '', peers: [], counters: {} };
    const text = formatStatus(r);
    expect(text).toContain('     Encryption: enabled\n');
    r.router.dataCipher = 'ChaCha20-Poly1305 (openssl)';
    expect(formatStatus(r)).toContain('     Encryption: enabled (ChaCha20-Poly1305 (openssl))\n');
    expect(text).toContain(' TrustedSubnets: 10.0.0.0/8, 192.168.0.0/16\n');
    expect(text).toContain('    Connections: 0\n');
    expect(text).toContain('           Mode: none\n      Endpoints: 1\n');
    expect(text).toContain('         Status: off\n');
    expect(text).not.toContain('Range');
    delete r.ipam;
    expect(formatStatus(r)).not.toContain('ipam');
  });

  it('formatStatus names the capture mode and its interface (--capture pcap)', () => {
    const r = sampleReport();
    r.datapath = { ...r.datapath, captureMode: 'pcap', capture: 'weft-pcap', offloads: [] };
    const text = formatStatus(r);
    expect(text).toContain('        Capture: pcap on weft-pcap\n       Offloads: none\n');
  });

  it('formatConnections prints one line per connection with direction, address, state, info', () => {
    expect(formatConnections(sampleReport())).toBe(
      [
        '-> 10.1.0.2:6783         established     sleeve 00:00:00:00:00:02(h2)',
        '<- 10.1.0.3:41234        established     sleeve 00:00:00:00:00:03(h3)',
        '-> 10.1.0.9:6783         retrying        retry in 4s: connect ECONNREFUSED',
        '',
      ].join('\n'),
    );
    const carried = sampleReport();
    carried.router.connections[0] = { ...carried.router.connections[0]!, info: 'unencrypted', carrier: 'fastdp' };
    carried.router.connections[1] = {
      ...carried.router.connections[1]!,
      info: 'unencrypted',
      carrier: 'sleeve',
      carrierReason: 'no heartbeat answered on UDP 6784',
    };
    expect(formatConnections(carried).split('\n').slice(0, 2)).toEqual([
      '-> 10.1.0.2:6783         established     unencrypted fastdp 00:00:00:00:00:02(h2)',
      '<- 10.1.0.3:41234        established     unencrypted sleeve (no heartbeat answered on UDP 6784) 00:00:00:00:00:03(h3)',
    ]);
    const r = sampleReport();
    r.router.connections[2]!.info = '';
    expect(formatConnections(r).split('\n')[2]).toBe('-> 10.1.0.9:6783         retrying        (no reason recorded)');
    r.router.connections[2] = { ...r.router.connections[2]!, state: 'connecting', info: 'dialling' };
    expect(formatConnections(r).split('\n')[2]).toBe('-> 10.1.0.9:6783         connecting      dialling');
    r.router.connections[0]!.isEncrypted = true;
    expect(formatConnections(r).split('\n')[0]).toBe('-> 10.1.0.2:6783         established     encrypted sleeve 00:00:00:00:00:02(h2)');
    r.router.connections[0]!.info = 'encrypted';
    expect(formatConnections(r).split('\n')[0]).toBe('-> 10.1.0.2:6783         established     encrypted 00:00:00:00:00:02(h2)');
    r.router.connections[0]!.dataCipher = 'AEGIS-256X2';
    expect(formatConnections(r).split('\n')[0]).toBe(
      '-> 10.1.0.2:6783         established     encrypted (AEGIS-256X2) 00:00:00:00:00:02(h2)',
    );
  });

  it('formatPeers prints the topology as a tree', () => {
    const lines = formatPeers(sampleReport()).split('\n');
    expect(lines.slice(0, 3)).toEqual([
      '00:00:00:00:00:01(h1)',
      '   -> 00:00:00:00:00:02(h2)            10.1.0.2:6783         established',
      '   <- 00:00:00:00:00:03(h3)            10.1.0.3:41234        established',
    ]);
    expect(lines.filter((l) => !l.startsWith(' ') && l.length > 0)).toHaveLength(3);
    const r = sampleReport();
    r.router.peers[0]!.connections[0]!.isEstablished = false;
    expect(formatPeers(r)).toContain('10.1.0.2:6783         unestablished');
  });

  it("formatPeers lists each peer's data path: direct, punched, or relayed through whom and why", () => {
    const r = sampleReport();
    r.router.paths = [
      { name: '00:00:00:00:00:02', nickname: 'h2', path: 'direct', endpoint: '10.1.0.2:6783' },
      { name: '00:00:00:00:00:03', nickname: 'h3', path: 'punched', endpoint: '203.0.113.7:6783' },
      {
        name: '00:00:00:00:00:04',
        nickname: 'h4',
        path: 'relayed',
        via: '00:00:00:00:00:02',
        viaNickname: 'h2',
        reason: 'punching failed 1 time(s): no answer',
      },
    ];
    const text = formatPeers(r);
    expect(text).toContain('\nData paths:\n');
    expect(text).toContain('   00:00:00:00:00:02(h2)            direct 10.1.0.2:6783\n');
    expect(text).toContain('   00:00:00:00:00:03(h3)            punched 203.0.113.7:6783\n');
    expect(text).toContain('   00:00:00:00:00:04(h4)            relayed via 00:00:00:00:00:02(h2): punching failed 1 time(s): no answer\n');
    expect(formatPeers(sampleReport())).not.toContain('Data paths');
  });

  it('formatTargets shows state, last error and next attempt', () => {
    expect(formatTargets(sampleReport())).toBe(
      ['10.1.0.2:6783         connected', '10.1.0.9:6783         retrying    connect ECONNREFUSED, next attempt in 4s', ''].join('\n'),
    );
  });

  it("formatIpam shows each peer's share and flags unreachable ones", () => {
    expect(formatIpam(sampleReport())).toBe(
      [
        '00:00:00:00:00:01(h1)               524288 IPs (50.0% of total)',
        '00:00:00:00:00:02(h2)               262144 IPs (25.0% of total)',
        '00:00:00:00:00:03(h3)               262144 IPs (25.0% of total) - unreachable!',
        '',
      ].join('\n'),
    );
    const r = sampleReport();
    r.ipam!.status = 'awaiting consensus';
    r.ipam!.peers = [];
    expect(formatIpam(r)).toBe('IPAM is awaiting consensus (range 10.32.0.0/12)\n');
    delete r.ipam;
    expect(formatIpam(r)).toContain('IPAM is off');
  });

  it('formatEndpoints prints one line per attached namespace', () => {
    expect(formatEndpoints(sampleReport())).toBe('c1 ethwe0 02:aa:bb:cc:dd:01 10.32.0.1/12\n');
    const r = sampleReport();
    r.endpoints = [];
    expect(formatEndpoints(r)).toBe('');
    // A runtime's container (CNI) is listed by its container id, not its namespace path.
    r.endpoints = [
      { target: '/run/netns/netns-1', interface: 'eth0', mac: '02:aa:bb:cc:dd:02', addresses: ['10.32.0.2/12'], containerId: '3f2a9c' },
    ];
    expect(formatEndpoints(r)).toBe('3f2a9c eth0 02:aa:bb:cc:dd:02 10.32.0.2/12\n');
  });

  it('formatStatus adds a docker block; formatEndpoints lists containers by short id and name', () => {
    const r = sampleReport();
    const id = 'ab12cd34ef56'.padEnd(64, '0');
    r.docker = {
      socket: '/run/docker/plugins/weft.sock',
      engine: 'unix:///var/run/docker.sock',
      isEngineReachable: true,
      engineVersion: '20.10.24',
      networks: [{ networkId: 'n1', subnets: ['10.32.0.0/12'], options: {} }],
      pools: [],
      endpoints: [
        {
          endpointId: 'e1'.padEnd(64, '1'),
          networkId: 'n1',
          hostIfname: 'vethwde11111111',
          mac: '02:00:00:00:00:09',
          addresses: ['10.32.0.9/12'],
          isJoined: true,
          containerId: id,
          containerName: 'web',
        },
        {
          endpointId: 'e2'.padEnd(64, '2'),
          networkId: 'n1',
          hostIfname: 'vethwde22222222',
          mac: '02:00:00:00:00:0a',
          addresses: ['10.32.0.10/12'],
          isJoined: false,
        },
      ],
      counters: {},
    };
    r.endpoints.push({
      target: '/proc/77/ns/net',
      interface: 'ethwe0',
      mac: '02:00:00:00:00:0b',
      addresses: ['10.32.0.11/12'],
      containerId: 'ffee'.padEnd(64, '3'),
      containerName: 'db',
    });
    expect(formatStatus(r)).toContain(
      '\n        Service: docker\n         Socket: /run/docker/plugins/weft.sock\n         Engine: unix:///var/run/docker.sock (reachable, 20.10.24)\n       Networks: 1\n      Endpoints: 2 (1 joined)\n',
    );
    const ps = formatEndpoints(r).split('\n');
    expect(ps).toContain('ffee33333333 db ethwe0 02:00:00:00:00:0b 10.32.0.11/12');
    expect(ps).toContain('ab12cd34ef56 web ethwe0 02:00:00:00:00:09 10.32.0.9/12');
    expect(ps.some((l) => l.includes('10.32.0.10'))).toBe(false);
  });
});
